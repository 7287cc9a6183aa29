//! Which robot a ROS topic belongs to, and whether it is recorded at all.
//!
//! A topic belongs to the configured robot with the longest namespace that prefixes it
//! (`[[robots]] namespace`, default `/<name>`); else to the robot named by its first namespace
//! level if that robot is in the pipeline's robot list; else to `ingest.default_robot`. The
//! robot's include/exclude regexes (or the `[ingest]` ones) then decide if it is recorded.

use regex::Regex;
use shared::config::Config;

/// A bad include/exclude regex in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: bad regex `{pattern}`: {source}")]
pub struct FilterError {
    /// The configuration key.
    pub key: String,
    /// The pattern.
    pub pattern: String,
    /// Why.
    #[source]
    pub source: regex::Error,
}

#[derive(Debug, Clone)]
struct Filter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Filter {
    /// Compiles `(pattern, config key)` pairs; an empty pattern means "no filter".
    fn new(include: (&str, &str), exclude: (&str, &str)) -> Result<Filter, FilterError> {
        let compile = |(pattern, key): (&str, &str)| -> Result<Option<Regex>, FilterError> {
            if pattern.is_empty() {
                return Ok(None);
            }
            Regex::new(pattern).map(Some).map_err(|source| FilterError {
                key: key.to_string(),
                pattern: pattern.to_string(),
                source,
            })
        };
        Ok(Filter { include: compile(include)?, exclude: compile(exclude)? })
    }

    fn accepts(&self, topic: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(topic))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(topic))
    }
}

#[derive(Debug, Clone)]
struct Robot {
    name: String,
    /// Namespace with a trailing `/` (`/robot1/`); `None` for robots without one.
    namespace: Option<String>,
    filter: Filter,
}

/// Maps topics to robot ids (indexes into [`RobotMap::names`]).
#[derive(Debug, Clone)]
pub struct RobotMap {
    robots: Vec<Robot>,
    default_id: u16,
}

/// Where a topic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Record it for this robot id.
    Record(u16),
    /// Filtered out by include/exclude.
    Skip,
}

impl RobotMap {
    /// Builds the robot list of a ROS 2 ingest: the configured robots (`[[robots]]`, or the
    /// default `robot1..N` with namespaces `/robotN`), then `ingest.default_robot`.
    pub fn new(config: &Config) -> Result<RobotMap, FilterError> {
        let ingest = &config.ingest;
        let mut robots = Vec::new();
        for name in config.robot_names() {
            let rc = config.robots.iter().find(|r| r.name == name);
            let ns = rc.and_then(|r| r.namespace.clone()).unwrap_or_else(|| format!("/{name}"));
            let ns = if ns.ends_with('/') { ns } else { format!("{ns}/") };
            let include = match rc.and_then(|r| r.include.as_deref()) {
                Some(own) => (own, "robots.include"),
                None => (ingest.include.as_str(), "ingest.include"),
            };
            let exclude = match rc.and_then(|r| r.exclude.as_deref()) {
                Some(own) => (own, "robots.exclude"),
                None => (ingest.exclude.as_str(), "ingest.exclude"),
            };
            robots.push(Robot { name, namespace: Some(ns), filter: Filter::new(include, exclude)? });
        }
        let default_id = match robots.iter().position(|r| r.name == ingest.default_robot) {
            Some(i) => i,
            None => {
                robots.push(Robot {
                    name: ingest.default_robot.clone(),
                    namespace: None,
                    filter: Filter::new((&ingest.include, "ingest.include"), (&ingest.exclude, "ingest.exclude"))?,
                });
                robots.len() - 1
            }
        };
        Ok(RobotMap { robots, default_id: default_id as u16 })
    }

    /// Robot names, index = robot id.
    pub fn names(&self) -> Vec<String> {
        self.robots.iter().map(|r| r.name.clone()).collect()
    }

    /// The robot of a topic and whether it is recorded.
    pub fn route(&self, topic: &str) -> Route {
        let by_namespace = self
            .robots
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.namespace.as_deref().filter(|ns| topic.starts_with(ns)).map(|ns| (i, ns.len())))
            .max_by_key(|&(_, len)| len)
            .map(|(i, _)| i);
        let first_level = || {
            let level = topic.strip_prefix('/')?.split('/').next()?;
            self.robots.iter().position(|r| r.name == level)
        };
        let id = by_namespace.or_else(first_level).unwrap_or(self.default_id as usize);
        match self.robots.get(id) {
            Some(r) if r.filter.accepts(topic) => Route::Record(id as u16),
            _ => Route::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::RobotConfig;

    fn robot(name: &str, ns: Option<&str>, exclude: Option<&str>) -> RobotConfig {
        RobotConfig {
            name: name.into(),
            namespace: ns.map(Into::into),
            domain_id: None,
            include: None,
            exclude: exclude.map(Into::into),
        }
    }

    #[test]
    fn routes_by_namespace_then_default() {
        let mut c = Config {
            robots: vec![robot("robot1", None, None), robot("arm", Some("/robot1/arm"), None)],
            ..Config::default()
        };
        c.ingest.exclude = "/rosout$".into();
        let m = RobotMap::new(&c).unwrap();
        assert_eq!(m.names(), ["robot1", "arm", "default"]);
        assert_eq!(m.route("/robot1/imu"), Route::Record(0));
        assert_eq!(m.route("/robot1/arm/joint"), Route::Record(1));
        assert_eq!(m.route("/robot10/imu"), Route::Record(2));
        assert_eq!(m.route("/tf"), Route::Record(2));
        assert_eq!(m.route("/rosout"), Route::Skip);
    }

    #[test]
    fn per_robot_filter_and_bad_regex() {
        let mut c =
            Config { robots: vec![robot("r1", None, Some("camera")), robot("r2", None, None)], ..Config::default() };
        let m = RobotMap::new(&c).unwrap();
        assert_eq!(m.route("/r1/camera/image"), Route::Skip);
        assert_eq!(m.route("/r2/camera/image"), Route::Record(1));
        c.ingest.include = "(".into();
        let e = RobotMap::new(&c).unwrap_err();
        assert_eq!(e.key, "ingest.include");
    }
}
