//! Reads each setting from the layered configuration, converting it to its type and
//! collecting every problem instead of stopping at the first.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{InvalidSetting, LogFormat, ServerSettings, Settings};
use crate::secret::Secret;

/// Typed access to the layered settings, remembering every key read and every error.
pub(super) struct Reader<'a> {
    layered: &'a config::Config,
    known: BTreeSet<String>,
    errors: Vec<InvalidSetting>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(layered: &'a config::Config) -> Self {
        Self {
            layered,
            known: BTreeSet::new(),
            errors: Vec::new(),
        }
    }

    pub(super) fn into_errors(self) -> Vec<InvalidSetting> {
        self.errors
    }

    fn raw(&mut self, key: &str) -> String {
        self.known.insert(key.to_owned());
        match self.layered.get_string(key) {
            Ok(value) => value,
            Err(err) => {
                self.invalid(key, "", &format!("a value ({err})"));
                String::new()
            }
        }
    }

    fn invalid(&mut self, key: &str, value: &str, expected: &str) {
        self.errors.push(InvalidSetting {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        });
    }

    pub(super) fn integer<T: TryFrom<u64> + Default>(
        &mut self,
        key: &str,
        min: u64,
        max: u64,
    ) -> T {
        let raw = self.raw(key);
        let parsed = raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n));
        match parsed.and_then(|n| T::try_from(n).ok()) {
            Some(value) => value,
            None => {
                self.invalid(key, &raw, &format!("a whole number from {min} to {max}"));
                T::default()
            }
        }
    }

    pub(super) fn float(&mut self, key: &str, min: f64, max: f64) -> f64 {
        let raw = self.raw(key);
        match raw.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && (min..=max).contains(&value) => value,
            _ => {
                self.invalid(key, &raw, &format!("a number from {min} to {max}"));
                min
            }
        }
    }

    pub(super) fn duration(&mut self, key: &str) -> Duration {
        let raw = self.raw(key);
        match humantime::parse_duration(raw.trim()) {
            Ok(value) => value,
            Err(err) => {
                let expected =
                    format!("a duration with a unit such as \"250ms\", \"20s\" or \"7d\" ({err})");
                self.invalid(key, &raw, &expected);
                Duration::from_secs(1)
            }
        }
    }

    pub(super) fn positive_duration(&mut self, key: &str) -> Duration {
        self.min_duration(key, Duration::from_millis(1))
    }

    pub(super) fn min_duration(&mut self, key: &str, min: Duration) -> Duration {
        let errors_before = self.errors.len();
        let value = self.duration(key);
        if self.errors.len() == errors_before && value < min {
            let raw = humantime::format_duration(value).to_string();
            self.invalid(
                key,
                &raw,
                &format!("at least {}", humantime::format_duration(min)),
            );
            return min;
        }
        value
    }

    pub(super) fn path(&mut self, key: &str) -> PathBuf {
        let raw = self.raw(key);
        if raw.trim().is_empty() {
            self.invalid(key, &raw, "a file path");
        }
        PathBuf::from(raw.trim())
    }

    pub(super) fn path_opt(&mut self, key: &str) -> Option<PathBuf> {
        let raw = self.raw(key);
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| PathBuf::from(trimmed))
    }

    pub(super) fn socket_addr(&mut self, key: &str) -> SocketAddr {
        let raw = self.raw(key);
        match raw.trim().parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.invalid(
                    key,
                    &raw,
                    "an IP address and port such as \"127.0.0.1:8650\"",
                );
                SocketAddr::from(([127, 0, 0, 1], 8650))
            }
        }
    }

    /// A secret given inline or in a file named by `file_key`, but not both.
    pub(super) fn secret(&mut self, key: &str, file_key: &str) -> Secret {
        let inline = self.raw(key);
        let Some(path) = self.path_opt(file_key) else {
            return Secret::new(inline.trim());
        };
        if !inline.trim().is_empty() {
            self.invalid(
                key,
                "[redacted]",
                &format!("either {key} or {file_key}, not both"),
            );
        }
        match std::fs::read_to_string(&path) {
            Ok(content) => Secret::new(content.trim()),
            Err(err) => {
                let shown = path.display().to_string();
                self.invalid(file_key, &shown, &format!("a readable file ({err})"));
                Secret::default()
            }
        }
    }

    pub(super) fn secret_opt(&mut self, key: &str) -> Option<Secret> {
        let raw = self.raw(key);
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| Secret::new(trimmed))
    }

    pub(super) fn base_url(&mut self, key: &str) -> String {
        let raw = self.raw(key);
        let trimmed = raw.trim().trim_end_matches('/').to_owned();
        let expected = "an https:// URL, or http:// with a loopback host";
        match reqwest::Url::parse(&trimmed) {
            Ok(url) if url.scheme() == "https" && url.host().is_some() => {}
            Ok(url) if url.scheme() == "http" && is_loopback_host(&url) => {}
            _ => self.invalid(key, &raw, expected),
        }
        trimmed
    }

    pub(super) fn log_level(&mut self, key: &str) -> String {
        let raw = self.raw(key);
        if tracing_subscriber::EnvFilter::try_new(raw.trim()).is_err() {
            self.invalid(
                key,
                &raw,
                "a level (error, warn, info, debug, trace) or a tracing filter",
            );
        }
        raw.trim().to_owned()
    }

    pub(super) fn log_format(&mut self, key: &str) -> LogFormat {
        let raw = self.raw(key);
        match raw.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                self.invalid(key, &raw, "\"text\" or \"json\"");
                LogFormat::Text
            }
        }
    }

    /// Reports every key in the layered settings that no reader asked for.
    pub(super) fn check_unknown_keys(&mut self) {
        let tables: HashMap<String, config::Value> = match self.layered.clone().try_deserialize() {
            Ok(tables) => tables,
            Err(err) => {
                return self.invalid("(top level)", "", &format!("sections of keys ({err})"));
            }
        };
        let mut unknown = Vec::new();
        for (section, value) in tables {
            match value.into_table() {
                Ok(keys) => unknown.extend(keys.into_keys().map(|k| format!("{section}.{k}"))),
                Err(_) => unknown.push(section),
            }
        }
        unknown.retain(|key| !self.known.contains(key));
        unknown.sort();
        for key in unknown {
            let value = self.layered.get_string(&key).unwrap_or_default();
            self.invalid(&key, &value, "a known setting (see config/ffrelay.toml)");
        }
    }

    /// Reports a retry backoff whose first delay is longer than its maximum, which would
    /// make every delay the maximum.
    pub(super) fn check_backoff(&mut self, initial: Duration, max: Duration) {
        if initial <= max {
            return;
        }
        let shown = humantime::format_duration(initial).to_string();
        let expected = format!(
            "at most delivery.backoff_max ({})",
            humantime::format_duration(max)
        );
        self.invalid("delivery.backoff_initial", &shown, &expected);
    }

    pub(super) fn check_listen_token(&mut self, server: &ServerSettings) {
        if !server.listen.ip().is_loopback() && server.ingest_token.is_none() {
            let expected = "a loopback address, or set server.ingest_token to listen elsewhere";
            self.invalid("server.listen", &server.listen.to_string(), expected);
        }
    }
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Renders the effective settings as TOML with secrets replaced by `[redacted]`.
pub(super) fn render_redacted(s: &Settings) -> String {
    let d = |value: Duration| format!("{:?}", humantime::format_duration(value).to_string());
    let secret = |value: &Secret| format!("{:?}", value.to_string());
    let path = |value: &Option<PathBuf>| {
        format!(
            "{:?}",
            value
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    };
    let a = &s.api;
    let l = &s.delivery;
    let mut out = String::new();
    let _ = writeln!(out, "[api]\nbase_url = {:?}", a.base_url);
    let _ = writeln!(
        out,
        "access_token = {}\nrefresh_token = {}",
        secret(&a.access_token),
        secret(&a.refresh_token)
    );
    let _ = writeln!(
        out,
        "access_token_file = {}\nrefresh_token_file = {}",
        path(&a.access_token_file),
        path(&a.refresh_token_file)
    );
    let _ = writeln!(out, "token_refresh_margin = {}", d(a.token_refresh_margin));
    let _ = writeln!(
        out,
        "request_timeout = {}\nconnect_timeout = {}",
        d(a.request_timeout),
        d(a.connect_timeout)
    );
    let _ = writeln!(out, "max_response_bytes = {}\n", a.max_response_bytes);
    let _ = writeln!(
        out,
        "[database]\npath = {:?}",
        s.database.path.display().to_string()
    );
    let _ = writeln!(out, "busy_timeout = {}\n", d(s.database.busy_timeout));
    let token = s.server.ingest_token.clone().unwrap_or_default();
    let _ = writeln!(out, "[server]\nlisten = {:?}", s.server.listen.to_string());
    let _ = writeln!(
        out,
        "ingest_token = {}\nmax_body_bytes = {}\n",
        secret(&token),
        s.server.max_body_bytes
    );
    let _ = writeln!(out, "[delivery]\nworkers = {}", l.workers);
    let _ = writeln!(
        out,
        "rate_limit_per_second = {:?}",
        l.rate_limit_per_second.unwrap_or(0.0)
    );
    let _ = writeln!(
        out,
        "burst = {}\nmax_batch_items = {}",
        l.burst, l.max_batch_items
    );
    let _ = writeln!(
        out,
        "linger = {}\npoll_interval = {}\nlease = {}",
        d(l.linger),
        d(l.poll_interval),
        d(l.lease)
    );
    let _ = writeln!(
        out,
        "backoff_initial = {}\nbackoff_max = {}",
        d(l.backoff_initial),
        d(l.backoff_max)
    );
    let _ = writeln!(
        out,
        "max_retry_after = {}\nmax_age = {}",
        d(l.max_retry_after),
        d(l.max_age)
    );
    let _ = writeln!(out, "max_attempts = {}", l.max_attempts.unwrap_or(0));
    let _ = writeln!(out, "shutdown_grace = {}", d(l.shutdown_grace));
    let _ = writeln!(
        out,
        "breaker_failure_ratio = {:?}\n",
        l.breaker_failure_ratio
    );
    let _ = writeln!(out, "[reset]\nmax_hits = {}\n", s.reset.max_hits);
    let _ = writeln!(
        out,
        "[retention]\ndelivered = {}\ninterval = {}\n",
        d(s.retention.delivered),
        d(s.retention.interval)
    );
    let format = match s.log.format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let _ = write!(
        out,
        "[log]\nlevel = {:?}\nformat = {:?}\n",
        s.log.level, format
    );
    out
}
