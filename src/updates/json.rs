//! Strict JSON parsing for producer input: like `serde_json`, but an object with the same
//! key twice is an error instead of silently keeping the last value, because ffrelay must
//! not guess which of two payouts or hit IDs a producer meant.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses JSON text, rejecting duplicate object keys. Nesting is limited by serde_json's
/// recursion limit (128 levels).
pub fn parse_strict(text: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("number {value} is not finite")))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "duplicate key {key:?} in an object"
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_is_rejected_with_its_name() {
        let err = parse_strict(br#"{"hits": [{"hitID": "a", "hitID": "b"}]}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key \"hitID\""), "{err}");
    }

    #[test]
    fn same_key_in_sibling_objects_is_fine() {
        let value = parse_strict(br#"[{"a": 1}, {"a": 2}]"#).unwrap();
        assert_eq!(value, serde_json::json!([{"a": 1}, {"a": 2}]));
    }

    #[test]
    fn parse_matches_serde_json_on_valid_input() {
        let text = br#"{"z": 1, "a": [true, null, -3, 1.5, 18446744073709551615, "s"], "m": {}}"#;
        let strict = parse_strict(text).unwrap();
        let plain: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, plain);
        let keys: Vec<&String> = strict.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["z", "a", "m"], "field order is kept");
    }

    #[test]
    fn deep_nesting_and_trailing_text_are_rejected() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(parse_strict(b"{} {}").is_err());
        assert!(
            parse_strict(b"1e400").is_err(),
            "numbers out of range are errors"
        );
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert!(parse_strict(b"{\"a\": \"\xff\"}").is_err());
    }
}
