//! Validation of update bodies as the mock assumes the API checks them.
//!
//! The documented fields are checked, and the nested names (`hits`, `hitID`,
//! `transactionID`, `payout`, `event`, `costSegments`) are the mock's own assumptions,
//! since FunnelFlux does not publish them. Unknown fields are accepted. Each validator
//! returns the number of accepted items, or the first invalid field.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

/// An invalid field, sent as the body of a 400 response.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rejection {
    pub(crate) error: String,
    pub(crate) field: String,
    pub(crate) value: Value,
}

impl Rejection {
    pub(crate) fn new(field: impl Into<String>, value: &Value, error: impl Into<String>) -> Self {
        Rejection {
            error: error.into(),
            field: field.into(),
            value: value.clone(),
        }
    }

    /// Returns the JSON body `{"error": .., "field": .., "value": ..}`.
    pub(crate) fn to_body(&self) -> String {
        let body = json!({ "error": self.error, "field": self.field, "value": self.value });
        body.to_string()
    }
}

type Checked<T> = Result<T, Rejection>;

/// Validates a conversions body and returns the number of hits.
pub(crate) fn conversions(body: &Value) -> Checked<usize> {
    let object = as_object(body)?;
    let hits = hits(object, 1, None)?;
    for (index, hit) in hits.iter().enumerate() {
        let hit = hit_object(hit, index)?;
        hit_id(hit, index)?;
        optional(
            hit,
            "transactionID",
            &format!("hits[{index}]."),
            Value::is_string,
        )?;
        optional(hit, "payout", &format!("hits[{index}]."), Value::is_number)?;
    }
    postback_options(object)?;
    let payout_or_null = |v: &Value| v.is_number() || v.is_null();
    optional(object, "overridePayout", "", payout_or_null)?;
    optional(object, "forcePostbacks", "", Value::is_boolean)?;
    Ok(hits.len())
}

/// Validates a custom events body (1 to 10 hits, each with an `event` from 1 to 10) and
/// returns the number of hits.
pub(crate) fn custom_events(body: &Value) -> Checked<usize> {
    let object = as_object(body)?;
    let hits = hits(object, 1, Some(10))?;
    for (index, hit) in hits.iter().enumerate() {
        let hit = hit_object(hit, index)?;
        hit_id(hit, index)?;
        event_number(hit, index)?;
    }
    postback_options(object)?;
    Ok(hits.len())
}

/// Validates a cost body and returns the number of cost segments.
pub(crate) fn cost(body: &Value) -> Checked<usize> {
    let object = as_object(body)?;
    string_array(object, "funnelIDs", true)?;
    string_array(object, "trafficSourceIDs", true)?;
    time_range(object)?;
    let segments = required(object, "costSegments")?;
    let segments = segments.as_array().ok_or_else(|| {
        Rejection::new(
            "costSegments",
            segments,
            "invalid costSegments: expected an array",
        )
    })?;
    Ok(segments.len())
}

/// Validates a reset body (for both validate and perform) and returns 1.
pub(crate) fn reset(body: &Value) -> Checked<usize> {
    const RESTRICTIONS: [&str; 6] = [
        "restrictToCampaignIDs",
        "restrictToFunnelIDs",
        "restrictToTrafficSourceIDs",
        "restrictToCountryCodes",
        "restrictToVisitorIDs",
        "restrictToIPs",
    ];
    let object = as_object(body)?;
    time_range(object)?;
    for name in RESTRICTIONS {
        string_array(object, name, false)?;
    }
    Ok(1)
}

fn as_object(body: &Value) -> Checked<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| Rejection::new("", body, "invalid body: expected a JSON object"))
}

fn required<'a>(object: &'a Map<String, Value>, name: &str) -> Checked<&'a Value> {
    object
        .get(name)
        .ok_or_else(|| Rejection::new(name, &Value::Null, format!("missing {name}")))
}

/// Checks that `name`, when present, passes `is_valid`; `prefix` locates the object.
fn optional(
    object: &Map<String, Value>,
    name: &str,
    prefix: &str,
    is_valid: fn(&Value) -> bool,
) -> Checked<()> {
    match object.get(name) {
        Some(value) if !is_valid(value) => {
            let field = format!("{prefix}{name}");
            Err(Rejection::new(
                &field,
                value,
                format!("invalid {field}: {value}"),
            ))
        }
        _ => Ok(()),
    }
}

fn hits(object: &Map<String, Value>, min: usize, max: Option<usize>) -> Checked<&Vec<Value>> {
    let value = required(object, "hits")?;
    let hits = value
        .as_array()
        .ok_or_else(|| Rejection::new("hits", value, "invalid hits: expected an array"))?;
    let too_many = max.is_some_and(|max| hits.len() > max);
    if hits.len() < min || too_many {
        let limit = max.map_or(format!("at least {min}"), |max| format!("{min} to {max}"));
        let error = format!("invalid hits: {} items, expected {limit}", hits.len());
        return Err(Rejection::new("hits", &json!(hits.len()), error));
    }
    Ok(hits)
}

fn hit_object(hit: &Value, index: usize) -> Checked<&Map<String, Value>> {
    hit.as_object().ok_or_else(|| {
        let field = format!("hits[{index}]");
        Rejection::new(&field, hit, format!("invalid {field}: expected an object"))
    })
}

/// Checks `hitID`: a non-empty string of lowercase ASCII letters and digits.
fn hit_id(hit: &Map<String, Value>, index: usize) -> Checked<()> {
    let field = format!("hits[{index}].hitID");
    let value = hit.get("hitID").unwrap_or(&Value::Null);
    let is_valid = value.as_str().is_some_and(|id| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if is_valid {
        return Ok(());
    }
    let error = format!("invalid {field} {value}: expected lowercase ASCII letters and digits");
    Err(Rejection::new(field, value, error))
}

fn event_number(hit: &Map<String, Value>, index: usize) -> Checked<()> {
    let field = format!("hits[{index}].event");
    let value = hit.get("event").unwrap_or(&Value::Null);
    if value
        .as_u64()
        .is_some_and(|event| (1..=10).contains(&event))
    {
        return Ok(());
    }
    let error = format!("invalid {field} {value}: expected an integer from 1 to 10");
    Err(Rejection::new(field, value, error))
}

/// Checks `postbackCalls` (none, onlyOnce or all) and `disablePostbacks` when present.
fn postback_options(object: &Map<String, Value>) -> Checked<()> {
    let is_mode = |v: &Value| matches!(v.as_str(), Some("none" | "onlyOnce" | "all"));
    optional(object, "postbackCalls", "", is_mode)?;
    optional(object, "disablePostbacks", "", Value::is_boolean)
}

fn string_array(object: &Map<String, Value>, name: &str, is_required: bool) -> Checked<()> {
    let value = match object.get(name) {
        Some(value) => value,
        None if is_required => {
            return Err(Rejection::new(
                name,
                &Value::Null,
                format!("missing {name}"),
            ));
        }
        None => return Ok(()),
    };
    let is_valid = value
        .as_array()
        .is_some_and(|items| items.iter().all(Value::is_string));
    if is_valid {
        return Ok(());
    }
    let error = format!("invalid {name} {value}: expected an array of strings");
    Err(Rejection::new(name, value, error))
}

/// Checks `timeStart` and `timeEnd`: RFC 3339 date-times with the start before the end.
fn time_range(object: &Map<String, Value>) -> Checked<()> {
    let start = date_time(object, "timeStart")?;
    let end = date_time(object, "timeEnd")?;
    if start < end {
        return Ok(());
    }
    let value = object.get("timeEnd").unwrap_or(&Value::Null);
    let error = format!("invalid timeEnd {value}: expected a time after timeStart");
    Err(Rejection::new("timeEnd", value, error))
}

fn date_time(object: &Map<String, Value>, name: &str) -> Checked<DateTime<FixedOffset>> {
    let value = required(object, name)?;
    let parsed = value.as_str().map(DateTime::parse_from_rfc3339);
    if let Some(Ok(time)) = parsed {
        return Ok(time);
    }
    let error = format!("invalid {name} {value}: expected an RFC 3339 date-time");
    Err(Rejection::new(name, value, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_count_hits() {
        let body = json!({"hits": [{"hitID": "abc1"}, {"hitID": "def2", "payout": 1.5}]});
        assert_eq!(conversions(&body), Ok(2));
    }

    #[test]
    fn uppercase_hit_id_rejected() {
        let body = json!({"hits": [{"hitID": "abc"}, {"hitID": "ABC"}]});
        let rejection = conversions(&body).unwrap_err();
        assert_eq!(rejection.field, "hits[1].hitID");
        assert_eq!(rejection.value, json!("ABC"));
    }

    #[test]
    fn custom_events_limit_is_ten() {
        let hit = json!({"hitID": "a", "event": 3});
        let eleven = json!({ "hits": vec![hit; 11] });
        assert_eq!(custom_events(&eleven).unwrap_err().field, "hits");
    }

    #[test]
    fn time_range_must_increase() {
        let body = json!({"timeStart": "2024-01-02T00:00:00Z", "timeEnd": "2024-01-01T00:00:00Z"});
        assert_eq!(reset(&body).unwrap_err().field, "timeEnd");
    }
}
