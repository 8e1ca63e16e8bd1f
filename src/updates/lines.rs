//! The FunnelFlux manual-upload lines format for conversions, one conversion per line:
//! `HIT_ID[:TRANSACTION_ID][, PAYOUT]`.
//!
//! Each line becomes one conversions request body, `{"hits": [{"hitID": ..,
//! "transactionID": .., "payout": ..}]}`, with `transactionID` and `payout` present only
//! when the line has them.
//!
//! NOTE: the property names `hits`, `hitID`, `transactionID` and `payout` are assumptions.
//! FunnelFlux does not document the names inside the conversions body, and these are the
//! names the built-in mock API uses. The item array is found by shape elsewhere in ffrelay,
//! so only the producer of these bodies depends on the names.
//!
//! Blank lines and lines starting with `#` are skipped. Surrounding whitespace, including
//! a trailing `\r`, is trimmed from the line and from each part.

use serde_json::{Map, Number, Value};

/// Maximum significant digits of a payout. An f64 keeps every decimal of up to 15
/// significant digits, so a longer payout would be sent as a different number.
pub const MAX_PAYOUT_DIGITS: usize = 15;

/// Maximum length of a hit ID in characters. FunnelFlux hit IDs are about 24 to 26.
pub const MAX_HIT_ID_CHARS: usize = 64;

/// A line that does not follow `HIT_ID[:TRANSACTION_ID][, PAYOUT]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The hit ID is empty, too long or has characters other than `a-z` and `0-9`.
    #[error(
        "invalid hit ID {0:?}: expected 1 to {MAX_HIT_ID_CHARS} lowercase ASCII letters and digits"
    )]
    InvalidHitId(String),
    /// A `:` follows the hit ID with no transaction ID after it.
    #[error("missing transaction ID after \"{0}:\": expected an ID after the colon, or no colon")]
    EmptyTransactionId(String),
    /// The payout is not a plain decimal number of at most `MAX_PAYOUT_DIGITS` significant
    /// digits.
    #[error(
        "invalid payout {0:?}: expected a decimal number of at most {MAX_PAYOUT_DIGITS} \
         significant digits such as 12.50, or -1 to delete the conversion"
    )]
    InvalidPayout(String),
}

/// Parses one line into a conversions request body, or `None` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Value>, LineError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }

    // Transaction IDs contain no commas, so the first comma starts the payout.
    let (conversion, payout) = match line.split_once(',') {
        Some((conversion, payout)) => (conversion, Some(payout.trim())),
        None => (line, None),
    };
    // Hit IDs contain no colons, so the first colon starts the transaction ID.
    let (hit_id, transaction_id) = match conversion.split_once(':') {
        Some((hit_id, transaction_id)) => (hit_id.trim(), Some(transaction_id.trim())),
        None => (conversion.trim(), None),
    };

    let mut hit = Map::new();
    hit.insert("hitID".to_owned(), Value::from(parse_hit_id(hit_id)?));
    if let Some(transaction_id) = transaction_id {
        let transaction_id = parse_transaction_id(hit_id, transaction_id)?;
        hit.insert("transactionID".to_owned(), Value::from(transaction_id));
    }
    if let Some(payout) = payout {
        hit.insert("payout".to_owned(), Value::Number(parse_payout(payout)?));
    }
    Ok(Some(conversions_body(hit)))
}

/// Parses every line of `text`, returning each conversion with its 1-based line number.
///
/// Stops at the first invalid line and returns its number with the error.
pub fn parse_lines(text: &str) -> Result<Vec<(usize, Value)>, (usize, LineError)> {
    let mut bodies = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(body) = parse_line(line).map_err(|error| (number, error))? {
            bodies.push((number, body));
        }
    }
    Ok(bodies)
}

fn parse_hit_id(text: &str) -> Result<&str, LineError> {
    let valid_chars = text
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
    if valid_chars && (1..=MAX_HIT_ID_CHARS).contains(&text.len()) {
        return Ok(text);
    }
    Err(LineError::InvalidHitId(text.to_owned()))
}

fn parse_transaction_id<'a>(hit_id: &str, text: &'a str) -> Result<&'a str, LineError> {
    if text.is_empty() {
        return Err(LineError::EmptyTransactionId(hit_id.to_owned()));
    }
    Ok(text)
}

/// Parses a decimal such as `12.50` or `-1` through serde_json, so the number is the one
/// a JSON parser reads from the same text (`12.50` becomes `12.5`, never `12.4999…`).
fn parse_payout(text: &str) -> Result<Number, LineError> {
    let invalid = || LineError::InvalidPayout(text.to_owned());
    if !is_plain_decimal(text) || significant_digits(text) > MAX_PAYOUT_DIGITS {
        return Err(invalid());
    }
    // serde_json rejects leading zeros and numbers too large for an f64.
    serde_json::from_str::<Number>(text).map_err(|_| invalid())
}

/// Counts the digits of a plain decimal from its first non-zero digit to its last
/// non-zero digit.
fn significant_digits(text: &str) -> usize {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.trim_matches('0').len()
}

/// Returns whether `text` is an optional minus, digits, and an optional fraction, with no
/// exponent, sign `+` or surrounding space.
fn is_plain_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

fn conversions_body(hit: Map<String, Value>) -> Value {
    let mut body = Map::new();
    body.insert("hits".to_owned(), Value::Array(vec![Value::Object(hit)]));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn parsed(line: &str) -> Value {
        parse_line(line).unwrap().unwrap()
    }

    #[test]
    fn hit_id_alone() {
        let body = parsed("abc123def456ghi789jkl012");
        assert_eq!(
            body,
            json!({ "hits": [{ "hitID": "abc123def456ghi789jkl012" }] })
        );
    }

    #[test]
    fn all_parts_in_order() {
        let body = parsed("  abc:order-17 ,  12.50 \r");
        let expected =
            json!({ "hits": [{ "hitID": "abc", "transactionID": "order-17", "payout": 12.5 }] });
        assert_eq!(body, expected);
        assert_eq!(
            body.to_string(),
            r#"{"hits":[{"hitID":"abc","transactionID":"order-17","payout":12.5}]}"#
        );
    }

    #[test]
    fn payout_without_transaction() {
        assert_eq!(
            parsed("abc, -1"),
            json!({ "hits": [{ "hitID": "abc", "payout": -1 }] })
        );
        assert_eq!(parsed("abc,0.1")["hits"][0]["payout"].to_string(), "0.1");
        assert_eq!(
            parsed("abc,19.99")["hits"][0]["payout"].to_string(),
            "19.99"
        );
        assert_eq!(parsed("abc,100")["hits"][0]["payout"].to_string(), "100");
    }

    #[test]
    fn transaction_keeps_inner_text() {
        let body = parsed("abc:tx 1:part");
        assert_eq!(body["hits"][0]["transactionID"], "tx 1:part");
    }

    #[test]
    fn blank_and_comment_lines_skipped() {
        for line in ["", "   ", "\r", "\t\r", "# header", "  #abc, 5"] {
            assert_eq!(parse_line(line), Ok(None), "line {line:?}");
        }
    }

    #[test]
    fn invalid_lines_name_the_value() {
        let too_long = "a".repeat(65);
        let cases = [
            ("ABC", LineError::InvalidHitId("ABC".into())),
            ("ab-c", LineError::InvalidHitId("ab-c".into())),
            (":tx", LineError::InvalidHitId(String::new())),
            (", 5", LineError::InvalidHitId(String::new())),
            (too_long.as_str(), LineError::InvalidHitId(too_long.clone())),
            ("abc:", LineError::EmptyTransactionId("abc".into())),
            ("abc: , 5", LineError::EmptyTransactionId("abc".into())),
            ("abc,", LineError::InvalidPayout(String::new())),
            ("abc, 1e3", LineError::InvalidPayout("1e3".into())),
            ("abc, +5", LineError::InvalidPayout("+5".into())),
            ("abc, .5", LineError::InvalidPayout(".5".into())),
            ("abc, 5.", LineError::InvalidPayout("5.".into())),
            ("abc, 007", LineError::InvalidPayout("007".into())),
            ("abc, NaN", LineError::InvalidPayout("NaN".into())),
            ("abc, 1,5", LineError::InvalidPayout("1,5".into())),
            ("abc:tx,a, 5", LineError::InvalidPayout("a, 5".into())),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line), Err(expected), "line {line:?}");
        }
    }

    #[test]
    fn max_length_hit_id_accepted() {
        let hit_id = "z".repeat(MAX_HIT_ID_CHARS);
        assert_eq!(parsed(&hit_id)["hits"][0]["hitID"], hit_id.as_str());
    }

    #[test]
    fn payout_beyond_f64_precision_rejected() {
        for payout in [
            "99999999999999999999999999",
            "0.1234567890123456",
            "1000000000000001",
        ] {
            let err = parse_line(&format!("abc, {payout}")).unwrap_err();
            assert_eq!(err, LineError::InvalidPayout(payout.to_owned()));
        }
        for payout in [
            "123456789012.345",
            "0.000000000000001",
            "100000000000000000000",
        ] {
            let body = parsed(&format!("abc, {payout}"));
            let expected: Value = serde_json::from_str(payout).unwrap();
            assert_eq!(body["hits"][0]["payout"], expected, "{payout}");
        }
    }

    #[test]
    fn huge_payout_rejected() {
        let huge = format!("1{}", "0".repeat(400));
        let err = parse_line(&format!("abc, {huge}")).unwrap_err();
        assert_eq!(err, LineError::InvalidPayout(huge));
    }

    #[test]
    fn error_messages_show_expected_form() {
        let err = parse_line("ABC").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid hit ID "ABC": expected 1 to 64 lowercase ASCII letters and digits"#
        );
        let err = parse_line("abc, x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"invalid payout "x": expected a decimal number"#)
        );
    }

    #[test]
    fn parse_lines_numbers_lines() {
        let text = "# conversions\r\nabc, 5\r\n\r\ndef:t1\nghi";
        let bodies = parse_lines(text).unwrap();
        let numbers: Vec<usize> = bodies.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, vec![2, 4, 5]);
        assert_eq!(
            bodies[1].1,
            json!({ "hits": [{ "hitID": "def", "transactionID": "t1" }] })
        );
    }

    #[test]
    fn parse_lines_reports_first_error() {
        let result = parse_lines("abc\n\nBAD\nALSO-BAD");
        assert_eq!(result, Err((3, LineError::InvalidHitId("BAD".into()))));
        assert_eq!(parse_lines(""), Ok(vec![]));
    }

    fn padding() -> impl Strategy<Value = String> {
        "[ \t]{0,2}"
    }

    proptest! {
        #[test]
        fn valid_line_round_trips(
            hit_id in "[a-z0-9]{1,64}",
            transaction_id in proptest::option::of("[A-Za-z0-9_./-]([A-Za-z0-9_.:/ -]{0,20}[A-Za-z0-9_./-])?"),
            payout in proptest::option::of("-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,6})?"),
            pads in proptest::collection::vec(padding(), 5),
            carriage_return in any::<bool>(),
        ) {
            let mut line = format!("{}{hit_id}", pads[0]);
            if let Some(transaction_id) = &transaction_id {
                line.push_str(&format!("{}:{}{transaction_id}", pads[1], pads[2]));
            }
            if let Some(payout) = &payout {
                line.push_str(&format!("{},{}{payout}", pads[3], pads[4]));
            }
            if carriage_return {
                line.push('\r');
            }

            let body = parse_line(&line).unwrap().unwrap();
            let hit = &body["hits"][0];
            prop_assert_eq!(hit["hitID"].as_str(), Some(hit_id.as_str()));
            prop_assert_eq!(hit.get("transactionID").and_then(Value::as_str), transaction_id.as_deref());
            let expected_payout = payout.map(|text| serde_json::from_str::<Value>(&text).unwrap());
            prop_assert_eq!(hit.get("payout").cloned(), expected_payout);
            prop_assert_eq!(hit.as_object().unwrap().len(), 1 + usize::from(transaction_id.is_some()) + usize::from(hit.get("payout").is_some()));
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_line(&text);
            let _ = parse_lines(&text);
        }

        #[test]
        fn near_valid_text_never_panics(text in "[a-z0-9A-Z:,.# \r\n+-]{0,40}") {
            if let Ok(bodies) = parse_lines(&text) {
                for (number, body) in bodies {
                    prop_assert!(number >= 1);
                    prop_assert!(body["hits"][0]["hitID"].is_string());
                }
            }
        }
    }
}
