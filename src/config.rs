//! Settings: built-in defaults, then a TOML file, then `FFRELAY__SECTION__KEY` environment
//! variables, validated into typed values.
//!
//! The built-in defaults are `config/ffrelay.toml` itself, embedded at build time, so the
//! documented defaults and the real ones cannot drift apart. Validation reads every key and
//! reports every invalid or unknown setting at once. Secrets are held as [`Secret`] and are
//! redacted in [`Settings::redacted`].

mod reader;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use reader::Reader;

/// The documented defaults, used as the lowest configuration layer.
pub const DEFAULTS_TOML: &str = include_str!("../config/ffrelay.toml");

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "FFRELAY";

/// The effective configuration of one process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api: ApiSettings,
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub delivery: DeliverySettings,
    pub reset: ResetSettings,
    pub retention: RetentionSettings,
    pub log: LogSettings,
}

/// Connection to the FunnelFlux API and the tokens it needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: String,
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub access_token_file: Option<PathBuf>,
    pub refresh_token_file: Option<PathBuf>,
    pub token_refresh_margin: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_response_bytes: usize,
}

/// Location and locking behaviour of the SQLite outbox.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

/// The HTTP server for ingest, admin, health and metrics.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub ingest_token: Option<Secret>,
    pub max_body_bytes: usize,
}

/// The worker pool and its retry, rate and batching limits.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub workers: usize,
    /// Requests per second for all workers together; `None` means no limit.
    pub rate_limit_per_second: Option<f64>,
    pub burst: u32,
    pub max_batch_items: usize,
    pub linger: Duration,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_retry_after: Duration,
    pub max_age: Duration,
    /// Attempts after which a job fails for good; `None` means unlimited.
    pub max_attempts: Option<u32>,
    pub shutdown_grace: Duration,
    pub breaker_failure_ratio: f64,
}

/// The guard on destructive data resets.
#[derive(Debug, Clone)]
pub struct ResetSettings {
    pub max_hits: i64,
}

/// How long finished jobs are kept.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    pub delivered: Duration,
    pub interval: Duration,
}

/// Log filter and output format.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where settings come from, besides the built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file from `--config` or `FFRELAY_CONFIG`.
    pub file: Option<PathBuf>,
    /// Environment variables; tests pass their own map instead of the process environment.
    pub env: HashMap<String, String>,
}

impl Sources {
    /// Sources from the process environment and an optional file.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let env = std::env::vars()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        Self { file, env }
    }
}

/// A setting that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    pub key: String,
    /// The value as given, or `[redacted]` for secrets.
    pub value: String,
    pub expected: String,
}

/// Error while loading settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read configuration: {0}")]
    Read(#[from] config::ConfigError),
    #[error("invalid configuration:\n{}", format_invalid(.0))]
    Invalid(Vec<InvalidSetting>),
}

fn format_invalid(settings: &[InvalidSetting]) -> String {
    let lines: Vec<String> = settings
        .iter()
        .map(|s| format!("  {} = {:?}: {}", s.key, s.value, s.expected))
        .collect();
    lines.join("\n")
}

impl Settings {
    /// Loads and validates settings from the defaults and the given sources.
    pub fn load(sources: &Sources) -> Result<Settings, ConfigError> {
        let layered = layer(sources)?;
        let mut reader = Reader::new(&layered);
        let settings = read_settings(&mut reader);
        reader.check_unknown_keys();
        reader.check_listen_token(&settings.server);
        let delivery = &settings.delivery;
        reader.check_backoff(delivery.backoff_initial, delivery.backoff_max);
        match reader.into_errors() {
            errors if errors.is_empty() => Ok(settings),
            errors => Err(ConfigError::Invalid(errors)),
        }
    }

    /// Built-in defaults only, for commands and tests that need no file.
    pub fn defaults() -> Result<Settings, ConfigError> {
        Self::load(&Sources::default())
    }

    /// The effective settings as TOML, with every secret replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        reader::render_redacted(self)
    }
}

fn layer(sources: &Sources) -> Result<config::Config, config::ConfigError> {
    let defaults = config::File::from_str(DEFAULTS_TOML, config::FileFormat::Toml);
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(path) = &sources.file {
        builder = builder.add_source(config::File::from(path.as_path()).required(true));
    }
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .source(Some(sources.env.clone().into_iter().collect()));
    builder.add_source(env).build()
}

fn read_settings(r: &mut Reader<'_>) -> Settings {
    Settings {
        api: ApiSettings {
            base_url: r.base_url("api.base_url"),
            access_token: r.secret("api.access_token", "api.access_token_file"),
            refresh_token: r.secret("api.refresh_token", "api.refresh_token_file"),
            access_token_file: r.path_opt("api.access_token_file"),
            refresh_token_file: r.path_opt("api.refresh_token_file"),
            token_refresh_margin: r.duration("api.token_refresh_margin"),
            request_timeout: r.positive_duration("api.request_timeout"),
            connect_timeout: r.positive_duration("api.connect_timeout"),
            max_response_bytes: r.integer("api.max_response_bytes", 256, 16 << 20),
        },
        database: DatabaseSettings {
            path: r.path("database.path"),
            busy_timeout: r.duration("database.busy_timeout"),
        },
        server: ServerSettings {
            listen: r.socket_addr("server.listen"),
            ingest_token: r.secret_opt("server.ingest_token"),
            max_body_bytes: r.integer("server.max_body_bytes", 1024, 256 << 20),
        },
        delivery: read_delivery(r),
        reset: ResetSettings {
            max_hits: r.integer("reset.max_hits", 0, i64::MAX as u64),
        },
        retention: RetentionSettings {
            delivered: r.positive_duration("retention.delivered"),
            interval: r.positive_duration("retention.interval"),
        },
        log: LogSettings {
            level: r.log_level("log.level"),
            format: r.log_format("log.format"),
        },
    }
}

fn read_delivery(r: &mut Reader<'_>) -> DeliverySettings {
    let rate = r.float("delivery.rate_limit_per_second", 0.0, 1_000_000.0);
    let attempts: u32 = r.integer("delivery.max_attempts", 0, u32::MAX as u64);
    DeliverySettings {
        workers: r.integer("delivery.workers", 1, 512),
        rate_limit_per_second: (rate > 0.0).then_some(rate),
        burst: r.integer("delivery.burst", 1, 1_000_000),
        max_batch_items: r.integer("delivery.max_batch_items", 1, 100_000),
        linger: r.duration("delivery.linger"),
        poll_interval: r.positive_duration("delivery.poll_interval"),
        lease: r.min_duration("delivery.lease", Duration::from_secs(2)),
        backoff_initial: r.positive_duration("delivery.backoff_initial"),
        backoff_max: r.positive_duration("delivery.backoff_max"),
        max_retry_after: r.positive_duration("delivery.max_retry_after"),
        max_age: r.positive_duration("delivery.max_age"),
        max_attempts: (attempts > 0).then_some(attempts),
        shutdown_grace: r.duration("delivery.shutdown_grace"),
        breaker_failure_ratio: r.float("delivery.breaker_failure_ratio", 0.05, 1.0),
    }
}

/// Whether an address is on the loopback interface.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Resolves the configuration file from `--config` or `FFRELAY_CONFIG`.
pub fn config_file(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("FFRELAY_CONFIG")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests;
