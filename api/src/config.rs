//! The `activity-api` command line. Every option can also be set from the
//! environment variable named beside it; secrets are never printed.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

/// A key or password from the command line or environment. Its `Debug` and
/// `Display` print `<redacted>`, so logging a `Config` (or an error holding one)
/// cannot leak it; the value is reached only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes, for the one place that signs or verifies with them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Serves the history of every entity over HTTP (read-only).
///
/// Runs as an AWS Lambda function behind API Gateway when AWS_LAMBDA_RUNTIME_API is set.
#[derive(Debug, Parser)]
#[command(name = "activity-api", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ACTIVITY_API_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// DynamoDB table of activity records.
    #[arg(long, env = "ACTIVITY_TABLE", default_value = domain::table::DEFAULT_TABLE)]
    pub table: String,

    /// Key (16 bytes or more) that signs page tokens. Every instance must share it,
    /// or a token issued by one is refused by another.
    #[arg(long, env = "ACTIVITY_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Secret,

    /// Shared secret (32 bytes or more) for HS256 bearer tokens.
    #[arg(long, env = "ACTIVITY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// JWKS file path or http(s) URL with the RS256/ES256 keys of the identity provider.
    #[arg(long, env = "ACTIVITY_JWKS")]
    pub jwks: Option<String>,

    /// Required `iss` claim.
    #[arg(long, env = "ACTIVITY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim.
    #[arg(long, env = "ACTIVITY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Comma-separated groups; a caller must be in one of them (`groups` claim).
    #[arg(long, env = "ACTIVITY_ALLOWED_GROUPS", value_delimiter = ',')]
    pub allowed_groups: Vec<String>,

    /// Comma-separated origins allowed to call from a browser.
    #[arg(long, env = "ACTIVITY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "ACTIVITY_REQUEST_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub request_timeout_secs: u64,

    /// TOML file naming, per caller group, the target types its members may read
    /// (docs/api.md, Access); when unset every caller reads every record, and a
    /// warning at start says so.
    #[arg(long, env = "ACTIVITY_ACCESS_FILE")]
    pub access_file: Option<std::path::PathBuf>,

    /// What to run; the server when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Extra commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an HS256 token signed with ACTIVITY_JWT_SECRET, for local development.
    DevToken {
        /// Subject claim.
        #[arg(long, default_value = "developer")]
        sub: String,
        /// Comma-separated groups claim.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Hours until it expires.
        #[arg(long, default_value_t = 12)]
        hours: u64,
    },
}

impl Config {
    /// The verifier's settings.
    pub fn auth(&self) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            hs256_secret: self.jwt_secret.as_ref().map(|s| s.expose().to_vec()),
            jwks: self.jwks.as_deref().map(crate::auth::JwksSource::parse),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            allowed_groups: self
                .allowed_groups
                .iter()
                .map(|g| g.trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect(),
        }
    }

    /// The router's cross-cutting settings.
    pub fn http(&self) -> crate::HttpSettings {
        crate::HttpSettings {
            cors_origins: self
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn config_is_well_formed() {
        Config::command().debug_assert();
    }

    const TOKEN_KEY: &str = "page-token-key-0123456789";
    const JWT_SECRET: &str = "jwt-secret-that-is-at-least-32-bytes-long";

    fn parsed() -> Config {
        let args = [
            "activity-api",
            "--token-key",
            TOKEN_KEY,
            "--jwt-secret",
            JWT_SECRET,
        ];
        Config::try_parse_from(args).expect("valid arguments")
    }

    #[test]
    fn secrets_are_not_printed_when_the_config_is_logged() {
        let config = parsed();
        for printed in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!printed.contains(TOKEN_KEY), "{printed}");
            assert!(!printed.contains(JWT_SECRET), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
        assert_eq!(config.token_key.to_string(), "<redacted>");
    }

    #[test]
    fn secrets_reach_the_code_that_uses_them_intact() {
        let config = parsed();
        assert_eq!(config.token_key.expose(), TOKEN_KEY.as_bytes());
        assert_eq!(
            config.auth().hs256_secret.as_deref(),
            Some(JWT_SECRET.as_bytes())
        );
    }

    #[test]
    fn configuration_page_documents_every_environment_variable() {
        let page = include_str!("../../docs/configuration.md");
        let missing: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().to_string()))
            .filter(|e| !page.contains(&format!("`{e}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks {missing:?}"
        );
    }
}
