//! The argument of `ControlCommand::Export` as the viewer sends it to the exporter service: one
//! compact JSON object `{"format":"parquet","robot":"robot1","topic":"REGEX","start":"T","end":"T"}`
//! in which every key but `format` is optional (left out when empty). Times are passed through as
//! typed (the exporter accepts ns, seconds with `s`, or RFC 3339) and checked by the exporter.

use serde::Serialize;

/// The control request's argument holds at most this many bytes (256 with the NUL).
pub const MAX_ARG_BYTES: usize = 255;

/// What the robot selector shows for "every robot" (sent as no `robot` key).
pub const ALL_ROBOTS: &str = "all robots";

/// One export, as the dialog describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportRequest {
    /// `parquet`, `csv`, `npy`, `tfrecord` or `mcap`.
    pub format: String,
    /// Only this robot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robot: Option<String>,
    /// Only topics matching this regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// From this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Until this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl ExportRequest {
    /// A request from the dialog's fields: blanks trimmed, empty fields and
    /// [`ALL_ROBOTS`] left out.
    pub fn from_fields(format: &str, robot: &str, topic: &str, start: &str, end: &str) -> ExportRequest {
        ExportRequest {
            format: format.trim().to_string(),
            robot: non_empty(robot).filter(|r| r != ALL_ROBOTS),
            topic: non_empty(topic),
            start: non_empty(start),
            end: non_empty(end),
        }
    }

    /// The compact JSON argument, or why it cannot be sent.
    pub fn to_arg(&self) -> Result<String, String> {
        if self.format.is_empty() {
            return Err("choose an export format".into());
        }
        let arg = serde_json::to_string(self).map_err(|e| format!("encoding the request: {e}"))?;
        if arg.len() > MAX_ARG_BYTES {
            return Err(format!(
                "export request is {} bytes, at most {MAX_ARG_BYTES} fit: shorten the topic regex",
                arg.len()
            ));
        }
        Ok(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_format_is_required_and_keys_keep_their_order() {
        let r = ExportRequest::from_fields("parquet", ALL_ROBOTS, " ", "", "");
        assert_eq!(r.to_arg().unwrap(), r#"{"format":"parquet"}"#);
        let r = ExportRequest::from_fields(
            "csv",
            "robot1",
            "^/robot1/(imu|scan)$",
            "2026-01-01T00:00:00Z",
            "1700000000.5s",
        );
        assert_eq!(
            r.to_arg().unwrap(),
            r#"{"format":"csv","robot":"robot1","topic":"^/robot1/(imu|scan)$","start":"2026-01-01T00:00:00Z","end":"1700000000.5s"}"#
        );
        // Quotes and backslashes in a regex are escaped, so the argument stays one JSON object.
        let r = ExportRequest::from_fields("mcap", "", r#"a\.b"c"#, "", "");
        let back: serde_json::Value = serde_json::from_str(&r.to_arg().unwrap()).unwrap();
        assert_eq!(back["topic"], r#"a\.b"c"#);
    }

    #[test]
    fn too_long_or_formatless_requests_are_refused() {
        let r = ExportRequest::from_fields("parquet", "", &"x".repeat(300), "", "");
        assert!(r.to_arg().unwrap_err().contains("at most 255"));
        assert!(ExportRequest::from_fields("", "", "", "", "").to_arg().is_err());
    }
}
