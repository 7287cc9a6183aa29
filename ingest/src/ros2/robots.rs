//! Which robot a ROS topic belongs to, and whether it is recorded at all.
//!
//! One ingest process records one ROS domain `D` (`ROS_DOMAIN_ID`, default 0). It serves the
//! configured robots of that domain: `[[robots]]` with `domain_id = D`, and those without a
//! `domain_id` (they are on whichever domain the ingest records). Robots of other domains keep
//! their robot id (ids are indexes into the pipeline's robot list, the same in every ingest
//! process), but their topics are not recorded here: their own domain's ingest records them.
//!
//! A topic belongs to the served robot with the longest namespace that prefixes it
//! (`[[robots]] namespace`, default `/<name>`); else to the served robot named by its first
//! namespace level; else to the domain's fallback robot: the one robot configured with
//! `domain_id = D` if there is exactly one (its topics need no namespace, e.g. `/imu`), otherwise
//! `ingest.default_robot`. A topic under the namespace of a robot of another domain is not
//! recorded (it is logged once). The robot's include/exclude regexes (or the `[ingest]` ones)
//! then decide if it is recorded.

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
    /// Recorded by this ingest (its domain is this process's domain, or it names none).
    served: bool,
    /// The configured `domain_id`.
    domain_id: Option<u32>,
}

/// Maps topics to robot ids (indexes into [`RobotMap::names`]).
#[derive(Debug, Clone)]
pub struct RobotMap {
    robots: Vec<Robot>,
    /// Where topics outside every served namespace go.
    fallback_id: u16,
    domain_id: u32,
}

/// Where a topic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Record it for this robot id.
    Record(u16),
    /// Filtered out by include/exclude.
    Skip,
    /// Under the namespace of a robot (this id) of another ROS domain: that domain's ingest
    /// records it.
    OtherDomain(u16),
}

/// A bad `ROS_DOMAIN_ID`.
#[derive(Debug, thiserror::Error)]
#[error("environment variable ROS_DOMAIN_ID=`{0}` is not a ROS domain id (an integer 0..=232)")]
pub struct DomainIdError(pub String);

/// The ROS domain this process records: `ROS_DOMAIN_ID` (what rcl and r2r use), default 0.
pub fn domain_from_env() -> Result<u32, DomainIdError> {
    parse_domain(std::env::var("ROS_DOMAIN_ID").ok().as_deref())
}

/// A `ROS_DOMAIN_ID` value (unset or empty: 0).
fn parse_domain(value: Option<&str>) -> Result<u32, DomainIdError> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v.parse::<u32>().ok().filter(|&d| d <= 232).ok_or_else(|| DomainIdError(v.to_string())),
    }
}

impl RobotMap {
    /// Builds the robot list of a ROS 2 ingest of ROS domain `domain_id`: the configured robots
    /// (`[[robots]]`, or the default `robot1..N` with namespaces `/robotN`), then
    /// `ingest.default_robot`.
    pub fn new(config: &Config, domain_id: u32) -> Result<RobotMap, FilterError> {
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
            let domain = rc.and_then(|r| r.domain_id);
            robots.push(Robot {
                name,
                namespace: Some(ns),
                filter: Filter::new(include, exclude)?,
                served: domain.is_none_or(|d| d == domain_id),
                domain_id: domain,
            });
        }
        let default_id = match robots.iter().position(|r| r.name == ingest.default_robot) {
            Some(i) => i,
            None => {
                robots.push(Robot {
                    name: ingest.default_robot.clone(),
                    namespace: None,
                    filter: Filter::new((&ingest.include, "ingest.include"), (&ingest.exclude, "ingest.exclude"))?,
                    served: true,
                    domain_id: None,
                });
                robots.len() - 1
            }
        };
        let mut of_domain = robots.iter().enumerate().filter(|(_, r)| r.domain_id == Some(domain_id)).map(|(i, _)| i);
        let fallback_id = match (of_domain.next(), of_domain.next()) {
            (Some(only), None) => only,
            _ => default_id,
        };
        Ok(RobotMap { robots, fallback_id: fallback_id as u16, domain_id })
    }

    /// Robot names, index = robot id (the same list in every ingest process of the pipeline).
    pub fn names(&self) -> Vec<String> {
        self.robots.iter().map(|r| r.name.clone()).collect()
    }

    /// The ROS domain this map serves.
    pub fn domain_id(&self) -> u32 {
        self.domain_id
    }

    /// Names of the robots this ingest records (its domain's, and those without a domain).
    pub fn served(&self) -> Vec<&str> {
        self.robots.iter().filter(|r| r.served).map(|r| r.name.as_str()).collect()
    }

    /// The robot that topics outside every served namespace belong to.
    pub fn fallback(&self) -> &str {
        self.robots.get(self.fallback_id as usize).map_or("", |r| r.name.as_str())
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
        let id = by_namespace.or_else(first_level).unwrap_or(self.fallback_id as usize);
        match self.robots.get(id) {
            Some(r) if !r.served => Route::OtherDomain(id as u16),
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

    fn on_domain(name: &str, ns: Option<&str>, domain: u32) -> RobotConfig {
        RobotConfig { domain_id: Some(domain), ..robot(name, ns, None) }
    }

    #[test]
    fn routes_by_namespace_then_default() {
        let mut c = Config {
            robots: vec![robot("robot1", None, None), robot("arm", Some("/robot1/arm"), None)],
            ..Config::default()
        };
        c.ingest.exclude = "/rosout$".into();
        let m = RobotMap::new(&c, 0).unwrap();
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
        let m = RobotMap::new(&c, 0).unwrap();
        assert_eq!(m.route("/r1/camera/image"), Route::Skip);
        assert_eq!(m.route("/r2/camera/image"), Route::Record(1));
        c.ingest.include = "(".into();
        let e = RobotMap::new(&c, 0).unwrap_err();
        assert_eq!(e.key, "ingest.include");
    }

    #[test]
    fn one_ingest_per_domain_serves_only_its_robots_with_the_same_ids() {
        let c = Config {
            robots: vec![
                on_domain("alpha", None, 1),
                on_domain("beta", None, 2),
                on_domain("gamma", Some("/gamma"), 2),
                robot("shared", None, None),
            ],
            ..Config::default()
        };
        let d1 = RobotMap::new(&c, 1).unwrap();
        let d2 = RobotMap::new(&c, 2).unwrap();
        // Robot ids agree between the processes (the writer and the viewer key robots by id).
        assert_eq!(d1.names(), ["alpha", "beta", "gamma", "shared", "default"]);
        assert_eq!(d1.names(), d2.names());
        assert_eq!(d1.served(), ["alpha", "shared", "default"]);
        assert_eq!(d2.served(), ["beta", "gamma", "shared", "default"]);
        // Domain 1 has one robot: un-namespaced topics are alpha's.
        assert_eq!(d1.fallback(), "alpha");
        assert_eq!(d1.route("/imu"), Route::Record(0));
        assert_eq!(d1.route("/alpha/imu"), Route::Record(0));
        assert_eq!(d1.route("/shared/imu"), Route::Record(3));
        // Topics of robots on other domains are that domain's ingest's.
        assert_eq!(d1.route("/beta/imu"), Route::OtherDomain(1));
        assert_eq!(d1.route("/gamma/scan"), Route::OtherDomain(2));
        // Domain 2 has two robots: by namespace, the rest to the default robot.
        assert_eq!(d2.fallback(), "default");
        assert_eq!(d2.route("/beta/imu"), Route::Record(1));
        assert_eq!(d2.route("/gamma/scan"), Route::Record(2));
        assert_eq!(d2.route("/imu"), Route::Record(4));
        assert_eq!(d2.route("/alpha/imu"), Route::OtherDomain(0));
        // A domain without configured robots: everything not namespaced goes to the default.
        let d7 = RobotMap::new(&c, 7).unwrap();
        assert_eq!(d7.served(), ["shared", "default"]);
        assert_eq!(d7.route("/imu"), Route::Record(4));
        assert_eq!(d7.route("/alpha/imu"), Route::OtherDomain(0));
    }

    #[test]
    fn domain_id_values_and_the_error_names_the_variable() {
        assert_eq!(parse_domain(Some("12")).unwrap(), 12);
        assert_eq!(parse_domain(Some(" 7 ")).unwrap(), 7);
        assert!(parse_domain(Some("twelve")).unwrap_err().to_string().contains("ROS_DOMAIN_ID=`twelve`"));
        assert!(parse_domain(Some("233")).is_err());
        assert_eq!(parse_domain(Some("")).unwrap(), 0);
        assert_eq!(parse_domain(None).unwrap(), 0);
    }
}
