//! S3 credentials: from the standard AWS environment variables or an AWS-style credentials
//! file, never from the main configuration. The secret lives in a [`Secret`], whose `Debug` and
//! `Display` print `***`, so no log line, error or status can carry it.
//!
//! Precedence (the AWS SDKs' order): `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+
//! `AWS_SESSION_TOKEN`) in the environment; else the file named by `[sync] credentials_file`;
//! else `AWS_SHARED_CREDENTIALS_FILE`; else no credentials, and requests go unsigned (for
//! servers that allow anonymous writes). The profile read from a file is `AWS_PROFILE`, or
//! `default`.

use std::fmt;
use std::path::Path;

use crate::error::{Result, UploadError};

/// A string that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the credentials came from (safe to log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A credentials file and the profile used.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The profile section.
        profile: String,
    },
    /// None found: requests are unsigned.
    Anonymous,
}

/// Access key, secret and optional session token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id (not secret by AWS's definition, but we do not log it either).
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Where they came from.
    pub source: CredentialSource,
}

impl Credentials {
    /// Loads the credentials as described in the module docs. `Ok(None)`: no credentials.
    pub fn load(credentials_file: Option<&Path>) -> Result<Option<Credentials>> {
        Self::load_with(credentials_file, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`Credentials::load`] with an explicit environment (tests).
    pub fn load_with(
        credentials_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>> {
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                return Ok(Some(Credentials {
                    access_key_id: Secret::new(id),
                    secret_access_key: Secret::new(secret),
                    session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
                    source: CredentialSource::Environment,
                }))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(UploadError::Credentials(
                    "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set".into(),
                ))
            }
            (None, None) => {}
        }
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let file =
            credentials_file.map(Path::to_path_buf).or_else(|| env("AWS_SHARED_CREDENTIALS_FILE").map(Into::into));
        let Some(path) = file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| UploadError::Credentials(format!("cannot read {}: {e}", path.display())))?;
        let c = parse_credentials_file(&text, &profile)
            .map_err(|reason| UploadError::Credentials(format!("{}: profile [{profile}]: {reason}", path.display())))?;
        Ok(Some(Credentials { source: CredentialSource::File { path, profile }, ..c }))
    }
}

/// Parses the INI-style AWS credentials file and returns the keys of `profile`. Errors name
/// the missing key, never a value.
fn parse_credentials_file(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut in_profile = false;
    let mut found_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            in_profile = name == profile;
            found_profile |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    if !found_profile {
        return Err("profile not found".into());
    }
    let id = id.ok_or("aws_access_key_id missing")?;
    let secret = secret.ok_or("aws_secret_access_key missing")?;
    Ok(Credentials {
        access_key_id: Secret::new(id),
        secret_access_key: Secret::new(secret),
        session_token: token.map(Secret::new),
        source: CredentialSource::Anonymous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn secret_never_prints() {
        let c = Credentials {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG"),
            session_token: Some(Secret::new("tok")),
            source: CredentialSource::Environment,
        };
        let s = format!("{c:?} {}", c.secret_access_key);
        assert!(!s.contains("wJalr"), "{s}");
        assert!(!s.contains("AKIDEXAMPLE"), "{s}");
        assert!(!s.contains("tok\""), "{s}");
    }

    #[test]
    fn environment_wins() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("id".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("sec".to_string()),
            _ => None,
        };
        let c = Credentials::load_with(Some(Path::new("/nonexistent")), env).unwrap().unwrap();
        assert_eq!(c.source, CredentialSource::Environment);
        assert_eq!(c.secret_access_key.expose(), "sec");
    }

    #[test]
    fn half_set_environment_is_an_error() {
        let env = |k: &str| (k == "AWS_ACCESS_KEY_ID").then(|| "id".to_string());
        assert!(Credentials::load_with(None, env).is_err());
    }

    #[test]
    fn file_profile_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "# comment\n[other]\naws_access_key_id = no\naws_secret_access_key = no\n\n[default]\n\
             aws_access_key_id = AK\naws_secret_access_key = s3cr3t/x=\n",
        )
        .unwrap();
        let c = Credentials::load_with(Some(&path), no_env).unwrap().unwrap();
        assert_eq!(c.access_key_id.expose(), "AK");
        assert_eq!(c.secret_access_key.expose(), "s3cr3t/x=");
        assert!(c.session_token.is_none());
        assert!(matches!(c.source, CredentialSource::File { ref profile, .. } if profile == "default"));
    }

    #[test]
    fn file_errors_name_keys_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[default]\naws_access_key_id = VISIBLE\n").unwrap();
        let e = Credentials::load_with(Some(&path), no_env).unwrap_err().to_string();
        assert!(e.contains("aws_secret_access_key missing"), "{e}");
        assert!(!e.contains("VISIBLE"), "{e}");
        assert!(Credentials::load_with(None, no_env).unwrap().is_none());
    }
}
