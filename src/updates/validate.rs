//! Validation of a job's payload, which is the request body sent to FunnelFlux.
//!
//! Only the fields that FunnelFlux documents are checked, plus ffrelay's own `maxHits` guard
//! on resets. Every other field passes through unchecked, because the API's item properties
//! and extra objects are not documented. The first failed check is returned, naming the field
//! and the value found.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::Kind;
use super::items::{ItemsError, excerpt, item_field};

/// Accepted values of `postbackCalls`.
const POSTBACK_CALLS: [&str; 3] = ["none", "onlyOnce", "all"];

/// Optional string-array filters of a data reset.
const RESET_FILTERS: [&str; 6] = [
    "restrictToCampaignIDs",
    "restrictToFunnelIDs",
    "restrictToTrafficSourceIDs",
    "restrictToCountryCodes",
    "restrictToVisitorIDs",
    "restrictToIPs",
];

/// An invalid payload: the field at fault (empty for the body as a whole) and what was
/// expected instead of the value found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", render(.field, .message))]
pub struct PayloadError {
    /// Path of the field, such as `postbackCalls` or `hits[3]`, or empty for the body.
    pub field: String,
    /// The expected form of the value, followed by the value found.
    pub message: String,
}

/// Checks the documented fields of a request body of the given kind.
pub fn validate(kind: Kind, body: &Value) -> Result<(), PayloadError> {
    let object = body.as_object().ok_or_else(|| {
        PayloadError::new("", format!("expected a JSON object, got {}", excerpt(body)))
    })?;
    match kind {
        Kind::Conversions => validate_conversions(object),
        Kind::CustomEvents => validate_custom_events(object),
        Kind::Cost => validate_cost(object),
        Kind::Reset => validate_reset(object),
    }
}

impl PayloadError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Builds the error for a value of the wrong type or form.
    fn expected(field: &str, expected: &str, found: &Value) -> Self {
        Self::new(
            field,
            format!("expected {expected}, got {}", excerpt(found)),
        )
    }

    fn missing(field: &str, expected: &str) -> Self {
        Self::new(
            field,
            format!("missing required field, expected {expected}"),
        )
    }
}

fn render(field: &str, message: &str) -> String {
    if field.is_empty() {
        format!("invalid request body: {message}")
    } else {
        format!("invalid field {field:?}: {message}")
    }
}

fn validate_conversions(body: &Map<String, Value>) -> Result<(), PayloadError> {
    check_non_empty_items(body)?;
    check_postback_options(body)?;
    check_optional(body, "forcePostbacks", check_bool)?;
    check_optional(body, "overridePayout", check_number_or_null)
}

/// Checks a custom-events body. More than 10 items is valid because ffrelay splits such a
/// body into requests of at most 10.
fn validate_custom_events(body: &Map<String, Value>) -> Result<(), PayloadError> {
    check_non_empty_items(body)?;
    check_postback_options(body)
}

fn validate_cost(body: &Map<String, Value>) -> Result<(), PayloadError> {
    check_required(body, "funnelIDs", "an array of strings", check_strings)?;
    check_required(
        body,
        "trafficSourceIDs",
        "an array of strings",
        check_strings,
    )?;
    check_time_range(body)?;
    find_items(body).map(|_| ())
}

fn validate_reset(body: &Map<String, Value>) -> Result<(), PayloadError> {
    check_time_range(body)?;
    for name in RESET_FILTERS {
        check_optional(body, name, check_strings)?;
    }
    check_optional(body, "maxHits", check_max_hits)
}

fn check_postback_options(body: &Map<String, Value>) -> Result<(), PayloadError> {
    check_optional(body, "postbackCalls", check_postback_calls)?;
    check_optional(body, "disablePostbacks", check_bool)
}

/// Runs `check` on the field when the body has it.
fn check_optional(
    body: &Map<String, Value>,
    name: &str,
    check: fn(&str, &Value) -> Result<(), PayloadError>,
) -> Result<(), PayloadError> {
    match body.get(name) {
        Some(value) => check(name, value),
        None => Ok(()),
    }
}

/// Runs `check` on the field, or rejects the body when the field is absent.
fn check_required(
    body: &Map<String, Value>,
    name: &str,
    expected: &str,
    check: fn(&str, &Value) -> Result<(), PayloadError>,
) -> Result<(), PayloadError> {
    match body.get(name) {
        Some(value) => check(name, value),
        None => Err(PayloadError::missing(name, expected)),
    }
}

fn check_postback_calls(name: &str, value: &Value) -> Result<(), PayloadError> {
    if value
        .as_str()
        .is_some_and(|text| POSTBACK_CALLS.contains(&text))
    {
        return Ok(());
    }
    let expected = format!("one of {}", POSTBACK_CALLS.join(", "));
    Err(PayloadError::expected(name, &expected, value))
}

fn check_bool(name: &str, value: &Value) -> Result<(), PayloadError> {
    if value.is_boolean() {
        return Ok(());
    }
    Err(PayloadError::expected(name, "true or false", value))
}

fn check_number_or_null(name: &str, value: &Value) -> Result<(), PayloadError> {
    if value.is_number() || value.is_null() {
        return Ok(());
    }
    Err(PayloadError::expected(name, "a number or null", value))
}

fn check_strings(name: &str, value: &Value) -> Result<(), PayloadError> {
    let Some(elements) = value.as_array() else {
        return Err(PayloadError::expected(name, "an array of strings", value));
    };
    match elements.iter().position(|element| !element.is_string()) {
        None => Ok(()),
        Some(index) => {
            let field = format!("{name}[{index}]");
            Err(PayloadError::expected(&field, "a string", &elements[index]))
        }
    }
}

fn check_max_hits(name: &str, value: &Value) -> Result<(), PayloadError> {
    if value.is_u64() {
        return Ok(());
    }
    Err(PayloadError::expected(
        name,
        "a non-negative integer",
        value,
    ))
}

/// Checks `timeStart` and `timeEnd` and that the start is strictly before the end.
fn check_time_range(body: &Map<String, Value>) -> Result<(), PayloadError> {
    let start = parse_time(body, "timeStart")?;
    let end = parse_time(body, "timeEnd")?;
    if start < end {
        return Ok(());
    }
    let expected = format!("a time after timeStart {}", excerpt(&body["timeStart"]));
    Err(PayloadError::expected(
        "timeEnd",
        &expected,
        &body["timeEnd"],
    ))
}

fn parse_time(
    body: &Map<String, Value>,
    name: &str,
) -> Result<DateTime<FixedOffset>, PayloadError> {
    const EXPECTED: &str = "an RFC 3339 date-time with offset, such as \"2026-01-31T00:00:00Z\"";
    let value = body
        .get(name)
        .ok_or_else(|| PayloadError::missing(name, EXPECTED))?;
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .ok_or_else(|| PayloadError::expected(name, EXPECTED, value))
}

fn check_non_empty_items(body: &Map<String, Value>) -> Result<(), PayloadError> {
    let field = find_items(body)?;
    match &body[field.as_str()] {
        Value::Array(items) if items.is_empty() => Err(PayloadError::new(
            field,
            "expected a non-empty array of items, got []",
        )),
        _ => Ok(()),
    }
}

/// Finds the item array by shape, turning a failure into an error naming the fields.
fn find_items(body: &Map<String, Value>) -> Result<String, PayloadError> {
    item_field(body).map_err(|error| match error {
        ItemsError::NoItemArray => no_item_array(body),
        ItemsError::AmbiguousItemArray(names) => PayloadError::new(
            "",
            format!(
                "expected exactly one field whose value is an array of objects, got {}",
                names.join(", ")
            ),
        ),
        ItemsError::ItemNotAnObject {
            field,
            index,
            found,
        } => PayloadError::new(
            format!("{field}[{index}]"),
            format!("expected an object, got {found}"),
        ),
        other => PayloadError::new("", other.to_string()),
    })
}

fn no_item_array(body: &Map<String, Value>) -> PayloadError {
    let arrays: Vec<&str> = body
        .iter()
        .filter(|(_, value)| value.is_array())
        .map(|(name, _)| name.as_str())
        .collect();
    let found = match arrays.as_slice() {
        [] => "no array field".to_owned(),
        names => format!("only the array fields {}", names.join(", ")),
    };
    PayloadError::new(
        "",
        format!(
            "missing item array: expected one field whose value is a non-empty array of objects, got {found}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conversion() -> Value {
        json!({ "hits": [{ "hitID": "abc", "payout": 5 }], "postbackCalls": "all" })
    }

    fn custom_event() -> Value {
        json!({ "hits": [{ "hitID": "abc", "event": 1 }], "disablePostbacks": true })
    }

    fn cost() -> Value {
        json!({
            "funnelIDs": ["f1"], "trafficSourceIDs": [],
            "timeStart": "2026-01-01T00:00:00Z", "timeEnd": "2026-01-02T00:00:00+02:00",
            "costSegments": [{ "cost": 12.5 }]
        })
    }

    fn reset() -> Value {
        json!({
            "timeStart": "2026-01-01T00:00:00Z", "timeEnd": "2026-01-02T00:00:00Z",
            "restrictToIPs": ["10.0.0.1"], "maxHits": 1000, "extra": { "keep": true }
        })
    }

    /// Returns `base` with `name` set to `value`, or removed when `value` is `None`.
    fn with(base: Value, name: &str, value: Option<Value>) -> Value {
        let mut body = base;
        let object = body.as_object_mut().unwrap();
        match value {
            Some(value) => object.insert(name.to_owned(), value),
            None => object.remove(name),
        };
        body
    }

    #[test]
    fn valid_bodies_pass() {
        assert_eq!(validate(Kind::Conversions, &conversion()), Ok(()));
        assert_eq!(validate(Kind::CustomEvents, &custom_event()), Ok(()));
        assert_eq!(validate(Kind::Cost, &cost()), Ok(()));
        assert_eq!(validate(Kind::Reset, &reset()), Ok(()));
    }

    #[test]
    fn optional_fields_accept_documented_values() {
        let cases = [
            ("postbackCalls", json!("none")),
            ("postbackCalls", json!("onlyOnce")),
            ("disablePostbacks", json!(false)),
            ("forcePostbacks", json!(true)),
            ("overridePayout", json!(null)),
            ("overridePayout", json!(-1)),
            ("overridePayout", json!(2.75)),
            ("unknownField", json!({ "any": ["thing"] })),
        ];
        for (name, value) in cases {
            let body = with(conversion(), name, Some(value.clone()));
            assert_eq!(
                validate(Kind::Conversions, &body),
                Ok(()),
                "{name} = {value}"
            );
        }
    }

    #[test]
    fn display_names_field_and_value() {
        let body = with(conversion(), "postbackCalls", Some(json!("sometimes")));
        let err = validate(Kind::Conversions, &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid field "postbackCalls": expected one of none, onlyOnce, all, got "sometimes""#
        );
    }

    #[test]
    fn display_for_whole_body() {
        let err = validate(Kind::Cost, &json!([1, 2])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid request body: expected a JSON object, got [1,2]"
        );
    }

    /// Asserts that `body` of `kind` is rejected on `field` with a message containing `part`.
    fn assert_rejected(kind: Kind, body: &Value, field: &str, part: &str) {
        let err = validate(kind, body).expect_err(&format!("{kind} accepted {body}"));
        assert_eq!(err.field, field, "{kind} {body}: {err}");
        assert!(err.message.contains(part), "{kind} {body}: {err}");
    }

    #[test]
    fn conversions_reject_bad_fields() {
        let cases = [
            (
                "postbackCalls",
                json!("sometimes"),
                "postbackCalls",
                r#"got "sometimes""#,
            ),
            ("postbackCalls", json!(null), "postbackCalls", "got null"),
            (
                "disablePostbacks",
                json!("yes"),
                "disablePostbacks",
                r#"got "yes""#,
            ),
            (
                "forcePostbacks",
                json!(1),
                "forcePostbacks",
                "expected true or false, got 1",
            ),
            (
                "overridePayout",
                json!("5"),
                "overridePayout",
                r#"number or null, got "5""#,
            ),
            (
                "hits",
                json!([]),
                "hits",
                "non-empty array of items, got []",
            ),
            (
                "hits",
                json!([{ "hitID": "a" }, "b"]),
                "hits[1]",
                r#"an object, got "b""#,
            ),
        ];
        for (name, value, field, part) in cases {
            let body = with(conversion(), name, Some(value));
            assert_rejected(Kind::Conversions, &body, field, part);
        }
    }

    #[test]
    fn conversions_reject_missing_items() {
        let body = with(conversion(), "hits", None);
        assert_rejected(Kind::Conversions, &body, "", "missing item array");
        let strings = with(conversion(), "hits", Some(json!(["abc"])));
        assert_rejected(Kind::Conversions, &strings, "", "array fields hits");
        let two = with(conversion(), "more", Some(json!([{ "hitID": "x" }])));
        assert_rejected(Kind::Conversions, &two, "", "got hits, more");
    }

    #[test]
    fn custom_events_reject_bad_fields() {
        let cases = [
            (
                "postbackCalls",
                json!("twice"),
                "postbackCalls",
                r#"got "twice""#,
            ),
            ("disablePostbacks", json!(0), "disablePostbacks", "got 0"),
            ("hits", json!([]), "hits", "got []"),
            (
                "hits",
                json!([{ "hitID": "a" }, 7]),
                "hits[1]",
                "expected an object, got 7",
            ),
        ];
        for (name, value, field, part) in cases {
            let body = with(custom_event(), name, Some(value));
            assert_rejected(Kind::CustomEvents, &body, field, part);
        }
    }

    #[test]
    fn custom_events_allow_more_than_ten() {
        let hits: Vec<Value> = (0..25)
            .map(|n| json!({ "hitID": format!("h{n}") }))
            .collect();
        let body = with(custom_event(), "hits", Some(Value::from(hits)));
        assert_eq!(validate(Kind::CustomEvents, &body), Ok(()));
    }

    #[test]
    fn cost_rejects_bad_fields() {
        let cases = [
            ("funnelIDs", None, "funnelIDs", "missing required field"),
            (
                "funnelIDs",
                Some(json!("f1")),
                "funnelIDs",
                r#"array of strings, got "f1""#,
            ),
            (
                "funnelIDs",
                Some(json!(["f1", 2])),
                "funnelIDs[1]",
                "a string, got 2",
            ),
            (
                "trafficSourceIDs",
                None,
                "trafficSourceIDs",
                "missing required field",
            ),
            (
                "trafficSourceIDs",
                Some(json!(null)),
                "trafficSourceIDs",
                "got null",
            ),
            ("timeStart", None, "timeStart", "missing required field"),
            (
                "timeStart",
                Some(json!("2026-01-01")),
                "timeStart",
                r#"got "2026-01-01""#,
            ),
            (
                "timeEnd",
                Some(json!("2026-01-02T00:00:00")),
                "timeEnd",
                "RFC 3339",
            ),
            (
                "timeEnd",
                Some(json!(1767225600)),
                "timeEnd",
                "got 1767225600",
            ),
            (
                "costSegments",
                None,
                "",
                "array fields funnelIDs, trafficSourceIDs",
            ),
            (
                "costSegments",
                Some(json!([{}, 1])),
                "costSegments[1]",
                "an object, got 1",
            ),
        ];
        for (name, value, field, part) in cases {
            let body = with(cost(), name, value);
            assert_rejected(Kind::Cost, &body, field, part);
        }
    }

    #[test]
    fn time_range_must_be_increasing() {
        let equal = with(cost(), "timeEnd", Some(json!("2026-01-01T01:00:00+01:00")));
        let part =
            r#"a time after timeStart "2026-01-01T00:00:00Z", got "2026-01-01T01:00:00+01:00""#;
        assert_rejected(Kind::Cost, &equal, "timeEnd", part);
        let earlier = with(reset(), "timeEnd", Some(json!("2025-12-31T00:00:00Z")));
        assert_rejected(Kind::Reset, &earlier, "timeEnd", "a time after timeStart");
    }

    #[test]
    fn reset_rejects_bad_fields() {
        let mut cases = vec![
            (
                "timeStart",
                None,
                "timeStart",
                "missing required field".to_owned(),
            ),
            (
                "timeEnd",
                Some(json!("tomorrow")),
                "timeEnd",
                r#"got "tomorrow""#.into(),
            ),
            (
                "maxHits",
                Some(json!(-1)),
                "maxHits",
                "non-negative integer, got -1".into(),
            ),
            ("maxHits", Some(json!(1.5)), "maxHits", "got 1.5".into()),
            (
                "maxHits",
                Some(json!("10")),
                "maxHits",
                r#"got "10""#.into(),
            ),
        ];
        for name in RESET_FILTERS {
            cases.push((name, Some(json!("a")), name, r#"strings, got "a""#.into()));
        }
        for (name, value, field, part) in cases {
            let body = with(reset(), name, value);
            assert_rejected(Kind::Reset, &body, field, &part);
        }
    }

    #[test]
    fn reset_filter_elements_are_strings() {
        for name in RESET_FILTERS {
            let body = with(reset(), name, Some(json!(["ok", false])));
            assert_rejected(Kind::Reset, &body, &format!("{name}[1]"), "got false");
            let empty = with(reset(), name, Some(json!([])));
            assert_eq!(validate(Kind::Reset, &empty), Ok(()), "{name} = []");
        }
    }

    #[test]
    fn reset_accepts_zero_max_hits() {
        let body = with(reset(), "maxHits", Some(json!(0)));
        assert_eq!(validate(Kind::Reset, &body), Ok(()));
    }

    #[test]
    fn non_objects_rejected_for_every_kind() {
        for kind in Kind::ALL {
            assert_rejected(kind, &json!("text"), "", r#"a JSON object, got "text""#);
        }
    }
}
