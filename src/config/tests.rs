use std::collections::HashMap;
use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(file: Option<PathBuf>, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&Sources {
        file,
        env: env(pairs),
    })
}

fn invalid_keys(err: ConfigError) -> Vec<String> {
    match err {
        ConfigError::Invalid(list) => list.into_iter().map(|s| s.key).collect(),
        other => panic!("expected invalid settings, got {other}"),
    }
}

#[test]
fn defaults_match_documented_values() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.api.base_url, "https://api.funnelflux.pro/v1");
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8650");
    assert_eq!(s.delivery.backoff_initial, Duration::from_secs(1));
    assert_eq!(s.delivery.backoff_max, Duration::from_secs(300));
    assert_eq!(s.delivery.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(s.delivery.shutdown_grace, Duration::from_secs(20));
    assert_eq!(s.delivery.max_attempts, None);
    assert_eq!(s.log.format, LogFormat::Text);
}

#[test]
fn file_then_environment_override_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ffrelay.toml");
    std::fs::write(
        &path,
        "[delivery]\nworkers = 7\nlinger = \"250ms\"\n[database]\npath = \"a.db\"\n",
    )
    .unwrap();
    let s = load(Some(path), &[("FFRELAY__DELIVERY__WORKERS", "9")]).unwrap();
    assert_eq!(s.delivery.workers, 9, "environment wins over the file");
    assert_eq!(
        s.delivery.linger,
        Duration::from_millis(250),
        "file wins over defaults"
    );
    assert_eq!(s.database.path, PathBuf::from("a.db"));
}

#[test]
fn rate_limit_zero_means_unlimited() {
    let s = load(None, &[("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0")]).unwrap();
    assert_eq!(s.delivery.rate_limit_per_second, None);
    let s = load(None, &[("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "2.5")]).unwrap();
    assert_eq!(s.delivery.rate_limit_per_second, Some(2.5));
}

#[test]
fn tokens_are_read_from_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access");
    let mut file = std::fs::File::create(&access).unwrap();
    writeln!(file, "tok-from-file").unwrap();
    let access_str = access.display().to_string();
    let s = load(None, &[("FFRELAY__API__ACCESS_TOKEN_FILE", &access_str)]).unwrap();
    assert_eq!(s.api.access_token.expose(), "tok-from-file");
    assert_eq!(s.api.access_token_file, Some(access));
}

#[test]
fn token_and_token_file_together_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access");
    std::fs::write(&access, "a").unwrap();
    let access_str = access.display().to_string();
    let pairs = [
        ("FFRELAY__API__ACCESS_TOKEN", "inline-secret"),
        ("FFRELAY__API__ACCESS_TOKEN_FILE", access_str.as_str()),
    ];
    let err = load(None, &pairs).unwrap_err();
    assert!(
        !err.to_string().contains("inline-secret"),
        "secret leaked: {err}"
    );
    assert_eq!(invalid_keys(err), ["api.access_token"]);
}

#[test]
fn every_invalid_setting_is_reported_at_once() {
    let pairs = [
        ("FFRELAY__DELIVERY__WORKERS", "0"),
        ("FFRELAY__DELIVERY__LEASE", "soon"),
        ("FFRELAY__API__BASE_URL", "http://api.example.test/v1"),
        ("FFRELAY__LOG__FORMAT", "xml"),
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "-3"),
    ];
    let err = load(None, &pairs).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("delivery.lease = \"soon\""), "{message}");
    let mut keys = invalid_keys(err);
    keys.sort();
    let expected = [
        "api.base_url",
        "delivery.lease",
        "delivery.rate_limit_per_second",
        "delivery.workers",
        "log.format",
    ];
    assert_eq!(keys, expected);
}

#[test]
fn unknown_keys_are_reported() {
    let err = load(None, &[("FFRELAY__DELIVERY__WORKRES", "3")]).unwrap_err();
    assert_eq!(invalid_keys(err), ["delivery.workres"]);
}

#[test]
fn loopback_http_base_url_is_accepted() {
    let s = load(
        None,
        &[("FFRELAY__API__BASE_URL", "http://127.0.0.1:9/v1/")],
    )
    .unwrap();
    assert_eq!(s.api.base_url, "http://127.0.0.1:9/v1");
}

#[test]
fn non_loopback_listen_needs_ingest_token() {
    let err = load(None, &[("FFRELAY__SERVER__LISTEN", "0.0.0.0:8650")]).unwrap_err();
    assert_eq!(invalid_keys(err), ["server.listen"]);
    let pairs = [
        ("FFRELAY__SERVER__LISTEN", "0.0.0.0:8650"),
        ("FFRELAY__SERVER__INGEST_TOKEN", "s3cret"),
    ];
    assert!(load(None, &pairs).is_ok());
}

#[test]
fn redacted_output_hides_secrets_and_reloads() {
    let pairs = [
        ("FFRELAY__API__ACCESS_TOKEN", "very-secret-access"),
        ("FFRELAY__API__REFRESH_TOKEN", "very-secret-refresh"),
        ("FFRELAY__SERVER__INGEST_TOKEN", "very-secret-ingest"),
    ];
    let text = load(None, &pairs).unwrap().redacted();
    assert!(!text.contains("very-secret"), "{text}");
    assert!(text.contains("access_token = \"[redacted]\""), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, text.replace("\"[redacted]\"", "\"x\"")).unwrap();
    let reloaded = load(Some(path), &[]).unwrap();
    assert_eq!(reloaded.delivery.max_age, Duration::from_secs(7 * 86_400));
}

#[test]
fn backoff_initial_above_max_is_rejected() {
    let err = load(
        None,
        &[
            ("FFRELAY__DELIVERY__BACKOFF_INITIAL", "10m"),
            ("FFRELAY__DELIVERY__BACKOFF_MAX", "1s"),
        ],
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("delivery.backoff_initial = \"10m\""),
        "{message}"
    );
    assert!(
        message.contains("at most delivery.backoff_max (1s)"),
        "{message}"
    );
}

#[test]
fn unknown_key_error_shows_its_value() {
    let err = load(None, &[("FFRELAY__DELIVERY__WORKERZ", "8")]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("delivery.workerz = \"8\""), "{message}");
}
