//! Turning a payload into a storable job: validation, the default ordering key, the batch
//! key, and the `not_before` time. The same rules check rows that other processes insert.

use chrono::DateTime;
use serde_json::Value;

use super::{Kind, PayloadError, default_ordering_key, options_key, validate};
use crate::outbox::NewJob;

/// Producer-supplied options of a job.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
    /// Earliest send time, RFC 3339 or Unix seconds.
    pub not_before: Option<String>,
}

/// Keys derived for a row that another process inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKeys {
    pub ordering_key: Option<String>,
    pub batch_key: Option<String>,
    pub not_before_ms: Option<i64>,
}

/// Validates a payload and builds the job to store.
pub fn prepare(kind: Kind, payload: &Value, options: JobOptions) -> Result<NewJob, PayloadError> {
    validate(kind, payload)?;
    let not_before_ms = options
        .not_before
        .as_deref()
        .map(parse_not_before)
        .transpose()
        .map_err(|message| PayloadError {
            field: "notBefore".into(),
            message,
        })?;
    check_key("idempotencyKey", options.idempotency_key.as_deref())?;
    check_key("orderingKey", options.ordering_key.as_deref())?;
    let ordering_key = options
        .ordering_key
        .or_else(|| default_ordering_key(kind, payload));
    Ok(NewJob {
        kind: kind.as_str().to_owned(),
        payload: payload.to_string(),
        idempotency_key: options.idempotency_key,
        ordering_key,
        batch_key: batch_key(kind, payload),
        not_before_ms,
    })
}

/// Checks a row written straight into the `jobs` table and derives its keys. The error is
/// the reason stored on the failed row.
pub fn check_row(
    kind: &str,
    payload: &str,
    ordering_key: Option<&str>,
    not_before: Option<&str>,
) -> Result<RowKeys, String> {
    let kind: Kind = kind
        .parse()
        .map_err(|err: super::UnknownKind| err.to_string())?;
    let body: Value = super::parse_strict(payload.as_bytes())
        .map_err(|err| format!("payload is not valid JSON: {err}"))?;
    validate(kind, &body).map_err(|err| err.to_string())?;
    let not_before_ms = not_before
        .filter(|text| !text.trim().is_empty())
        .map(parse_not_before)
        .transpose()
        .map_err(|message| format!("invalid not_before: {message}"))?;
    let ordering_key = match ordering_key {
        Some(key) => Some(key.to_owned()),
        None => default_ordering_key(kind, &body),
    };
    Ok(RowKeys {
        ordering_key,
        batch_key: batch_key(kind, &body),
        not_before_ms,
    })
}

/// Jobs with equal batch keys may be merged into one request: the kind plus the body
/// without its items.
fn batch_key(kind: Kind, payload: &Value) -> Option<String> {
    if !kind.is_batchable() {
        return None;
    }
    options_key(payload)
        .ok()
        .map(|options| format!("{kind}:{options}"))
}

fn check_key(field: &str, key: Option<&str>) -> Result<(), PayloadError> {
    match key {
        Some(key) if key.is_empty() || key.len() > 512 => Err(PayloadError {
            field: field.into(),
            message: format!("expected 1 to 512 characters, got {} characters", key.len()),
        }),
        _ => Ok(()),
    }
}

/// Parses an RFC 3339 time or Unix seconds into Unix milliseconds.
pub fn parse_not_before(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<i64>() {
        return seconds
            .checked_mul(1000)
            .ok_or_else(|| format!("{trimmed:?} is out of range"));
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|time| time.timestamp_millis())
        .map_err(|err| {
            format!("expected an RFC 3339 time such as 2026-12-04T10:00:00Z or Unix seconds, got {trimmed:?} ({err})")
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn single_hit_conversion_gets_hit_ordering_key() {
        let body = json!({"hits": [{"hitID": "abc123", "payout": 5}]});
        let job = prepare(Kind::Conversions, &body, JobOptions::default()).unwrap();
        assert_eq!(job.ordering_key.as_deref(), Some("hit:abc123"));
        assert!(job.batch_key.unwrap().starts_with("conversions:"));
    }

    #[test]
    fn explicit_ordering_key_wins() {
        let body = json!({"hits": [{"hitID": "abc123"}]});
        let options = JobOptions {
            ordering_key: Some("k".into()),
            ..Default::default()
        };
        let job = prepare(Kind::Conversions, &body, options).unwrap();
        assert_eq!(job.ordering_key.as_deref(), Some("k"));
    }

    #[test]
    fn cost_and_reset_are_not_batched() {
        let reset = json!({"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"});
        let job = prepare(Kind::Reset, &reset, JobOptions::default()).unwrap();
        assert_eq!(job.batch_key, None);
        assert_eq!(job.ordering_key, None);
    }

    #[test]
    fn not_before_accepts_rfc3339_and_seconds() {
        assert_eq!(parse_not_before("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_not_before("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_not_before("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        let err = parse_not_before("tomorrow").unwrap_err();
        assert!(err.contains("\"tomorrow\""), "{err}");
    }

    #[test]
    fn check_row_reports_each_problem() {
        assert!(
            check_row("refunds", "{}", None, None)
                .unwrap_err()
                .contains("refunds")
        );
        assert!(
            check_row("conversions", "not json", None, None)
                .unwrap_err()
                .contains("JSON")
        );
        let err = check_row("conversions", r#"{"hits": []}"#, None, None).unwrap_err();
        assert!(err.contains("hits"), "{err}");
        let ok = check_row(
            "conversions",
            r#"{"hits":[{"hitID":"a1"}]}"#,
            None,
            Some("1700000000"),
        );
        assert_eq!(ok.unwrap().not_before_ms, Some(1_700_000_000_000));
    }
}

#[cfg(test)]
mod adversarial {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            Just(json!("2026-12-01T00:00:00Z")),
            Just(json!("none")),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("hits".to_owned()),
                        Just("hitID".to_owned()),
                        Just("timeStart".to_owned()),
                        Just("timeEnd".to_owned()),
                        Just("postbackCalls".to_owned()),
                        Just("funnelIDs".to_owned()),
                        Just("trafficSourceIDs".to_owned()),
                        ".{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn prepare_never_panics_on_any_payload(body in arbitrary_json()) {
            for kind in Kind::ALL {
                let _ = prepare(kind, &body, JobOptions::default());
                let _ = check_row(kind.as_str(), &body.to_string(), None, None);
            }
        }

        #[test]
        fn check_row_never_panics_on_any_text(text in ".{0,64}", not_before in proptest::option::of(".{0,24}")) {
            for kind in ["conversions", "custom-events", "cost", "reset", "", "x"] {
                let _ = check_row(kind, &text, None, not_before.as_deref());
            }
        }

        #[test]
        fn accepted_conversion_keeps_every_field(extra in "[a-z]{1,8}", value in any::<i32>()) {
            let body = json!({"hits": [{"hitID": "abc1", extra.clone(): value}], "zz": value});
            let job = prepare(Kind::Conversions, &body, JobOptions::default())
                .map_err(|err| TestCaseError::fail(err.to_string()))?;
            let stored: Value = serde_json::from_str(&job.payload).unwrap();
            prop_assert_eq!(stored, body);
        }
    }
}
