//! Classification of one API response or transport error into a delivery [`Outcome`].
//!
//! Everything here is a pure function of its inputs: no clock reads, no I/O, no logging.
//! The caller passes the current time in [`Context`], so tests need no real clock.
//! Reasons are built from the status, the response body and the transport error text
//! only, and never contain the access token because this module never receives it.

use std::time::{Duration, SystemTime};

/// Maximum number of characters of a response body or error message kept in a reason.
pub const MAX_REASON_CHARS: usize = 500;

/// Next step for a request after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The API accepted the request.
    Delivered,
    /// Retry later. `after` is the server's `Retry-After`, clamped to
    /// [`Context::max_retry_after`], or `None` when the caller picks a backoff delay.
    /// `throttled` is true only for 429.
    Retry {
        after: Option<Duration>,
        reason: String,
        throttled: bool,
    },
    /// Refresh the access token, then retry the request once.
    RefreshToken { reason: String },
    /// Pause all delivery until an operator or a probe request resolves it.
    Pause { reason: String },
    /// Permanent failure of this request, with the API's message.
    Failed { reason: String },
}

/// An HTTP response as far as classification needs it.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    /// HTTP status code.
    pub status: u16,
    /// Raw value of the `Retry-After` header, when present.
    pub retry_after: Option<&'a str>,
    /// Response body, or an excerpt of it.
    pub body: &'a str,
}

/// Failure of a request that produced no complete HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The request or the response took longer than the configured timeout.
    Timeout,
    /// The connection could not be established (DNS, TCP or TLS).
    Connect,
    /// The connection broke while the response body was read.
    Body,
    /// Any other failure of the HTTP client.
    Other,
}

/// Facts about the moment and the token that classification depends on.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Current wall-clock time, used to turn an HTTP-date `Retry-After` into a delay.
    pub now: SystemTime,
    /// Whether the known expiry time of the access token has passed.
    pub token_expired: bool,
    /// Upper bound for a delay taken from `Retry-After`.
    pub max_retry_after: Duration,
}

/// Classifies the result of one request into the [`Outcome`] the caller acts on.
///
/// `result` is either the HTTP response or the transport error kind with its message.
pub fn classify(result: Result<&Answer<'_>, (TransportError, &str)>, context: &Context) -> Outcome {
    match result {
        Ok(answer) => classify_answer(answer, context),
        Err((error, message)) => classify_transport(error, message),
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date.
///
/// A date in the past gives zero. A number of seconds too large for `u64` saturates.
/// Returns `None` for any other value.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

fn classify_answer(answer: &Answer<'_>, context: &Context) -> Outcome {
    let status = answer.status;
    match status {
        200..=299 => Outcome::Delivered,
        408 | 425 | 429 | 500..=599 => retry_answer(answer, context),
        401 => Outcome::RefreshToken {
            reason: status_reason(answer),
        },
        400 if context.token_expired => Outcome::RefreshToken {
            reason: format!("{} (the access token has expired)", status_reason(answer)),
        },
        403 => Outcome::Pause {
            reason: format!("{} (access forbidden)", status_reason(answer)),
        },
        400..=499 => Outcome::Failed {
            reason: status_reason(answer),
        },
        _ => Outcome::Failed {
            reason: unexpected_status_reason(answer),
        },
    }
}

fn retry_answer(answer: &Answer<'_>, context: &Context) -> Outcome {
    let after = answer
        .retry_after
        .and_then(|value| parse_retry_after(value, context.now))
        .map(|delay| delay.min(context.max_retry_after));

    Outcome::Retry {
        after,
        reason: status_reason(answer),
        throttled: answer.status == 429,
    }
}

fn classify_transport(error: TransportError, message: &str) -> Outcome {
    let summary = match error {
        TransportError::Timeout => "request timed out",
        TransportError::Connect => "connection failed",
        TransportError::Body => "reading the response body failed",
        TransportError::Other => "request failed",
    };

    Outcome::Retry {
        after: None,
        reason: format!("{summary}: {}", excerpt(message)),
        throttled: false,
    }
}

/// Formats `http STATUS: DETAIL`, where the detail is the API's message or a body excerpt.
fn status_reason(answer: &Answer<'_>) -> String {
    format!("http {}: {}", answer.status, body_detail(answer.body))
}

fn unexpected_status_reason(answer: &Answer<'_>) -> String {
    let status = answer.status;
    let summary = match status {
        100..=199 => "unexpected informational status",
        300..=399 => "unexpected redirect",
        _ => "invalid http status",
    };
    format!(
        "{summary} {status} from the API: {}",
        body_detail(answer.body)
    )
}

/// Picks the API's error message out of a JSON body, else an excerpt of the whole body.
fn body_detail(body: &str) -> String {
    if body.trim().is_empty() {
        return "(empty body)".to_owned();
    }
    match json_message(body) {
        Some(message) => excerpt(&message),
        None => excerpt(body),
    }
}

/// Reads `message`, `error` or `error.message` from a JSON object body.
fn json_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let object = value.as_object()?;

    if let Some(message) = object.get("message").and_then(|v| v.as_str()) {
        return Some(message.to_owned());
    }
    match object.get("error")? {
        serde_json::Value::String(message) => Some(message.clone()),
        serde_json::Value::Object(error) => error.get("message")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Cuts `text` to [`MAX_REASON_CHARS`] characters and turns control characters into spaces,
/// so that a reason stays on one log line. Appends `…` when it cut something.
fn excerpt(text: &str) -> String {
    let mut chars = text.trim().chars();
    let mut out: String = chars
        .by_ref()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of an outcome without its reason text.
    #[derive(Debug, PartialEq)]
    enum Shape {
        Delivered,
        Retry(Option<Duration>, bool),
        Refresh,
        Pause,
        Failed,
    }

    fn shape(outcome: &Outcome) -> (Shape, &str) {
        match outcome {
            Outcome::Delivered => (Shape::Delivered, ""),
            Outcome::Retry {
                after,
                throttled,
                reason,
            } => (Shape::Retry(*after, *throttled), reason),
            Outcome::RefreshToken { reason } => (Shape::Refresh, reason),
            Outcome::Pause { reason } => (Shape::Pause, reason),
            Outcome::Failed { reason } => (Shape::Failed, reason),
        }
    }

    fn now() -> SystemTime {
        httpdate::parse_http_date("Wed, 02 Dec 2026 10:00:00 GMT").expect("valid date")
    }

    fn context(token_expired: bool) -> Context {
        Context {
            now: now(),
            token_expired,
            max_retry_after: Duration::from_secs(300),
        }
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    /// One table row: status, `Retry-After`, body, token expired, expected shape, and a
    /// text the reason must contain.
    type Case<'a> = (u16, Option<&'a str>, &'a str, bool, Shape, &'a str);

    #[test]
    fn answers_classify_by_table() {
        use Shape::*;
        let json_message = r#"{"message":"hit not found"}"#;
        let json_error = r#"{"error":"invalid payout"}"#;
        let json_nested = r#"{"error":{"code":7,"message":"too large"}}"#;
        let future = "Wed, 02 Dec 2026 10:00:30 GMT";
        let past = "Wed, 02 Dec 2026 09:00:00 GMT";
        let cases: &[Case] = &[
            (200, None, "", false, Delivered, ""),
            (204, Some("5"), "", false, Delivered, ""),
            (299, None, "", true, Delivered, ""),
            (
                101,
                None,
                "",
                false,
                Failed,
                "unexpected informational status 101",
            ),
            (301, None, "moved", false, Failed, "unexpected redirect 301"),
            (
                302,
                None,
                "",
                false,
                Failed,
                "unexpected redirect 302 from the API: (empty body)",
            ),
            (
                400,
                None,
                json_message,
                false,
                Failed,
                "http 400: hit not found",
            ),
            (
                400,
                None,
                "bad",
                true,
                Refresh,
                "the access token has expired",
            ),
            (401, None, "expired", false, Refresh, "http 401: expired"),
            (
                403,
                None,
                json_error,
                false,
                Pause,
                "http 403: invalid payout",
            ),
            (404, None, "", false, Failed, "http 404: (empty body)"),
            (408, None, "", false, Retry(None, false), "http 408"),
            (409, None, json_nested, false, Failed, "http 409: too large"),
            (413, None, "", false, Failed, "http 413"),
            (422, None, json_error, false, Failed, "invalid payout"),
            (425, Some("3"), "", false, Retry(secs(3), false), "http 425"),
            (429, None, "", false, Retry(None, true), "http 429"),
            (429, Some("7"), "", false, Retry(secs(7), true), ""),
            (429, Some(future), "", false, Retry(secs(30), true), ""),
            (429, Some(past), "", false, Retry(secs(0), true), ""),
            (429, Some("soon"), "", false, Retry(None, true), ""),
            (429, Some("86400"), "", false, Retry(secs(300), true), ""),
            (
                500,
                None,
                "<html>oops</html>",
                false,
                Retry(None, false),
                "<html>oops</html>",
            ),
            (501, None, "", false, Retry(None, false), "http 501"),
            (
                503,
                Some(" 12 "),
                "",
                false,
                Retry(secs(12), false),
                "http 503",
            ),
            (599, None, "", false, Retry(None, false), ""),
            (700, None, "", false, Failed, "invalid http status 700"),
        ];

        for (status, retry_after, body, expired, expected, text) in cases {
            let answer = Answer {
                status: *status,
                retry_after: *retry_after,
                body,
            };
            let outcome = classify(Ok(&answer), &context(*expired));
            let (got, reason) = shape(&outcome);
            assert_eq!(
                &got, expected,
                "status {status}, retry-after {retry_after:?}"
            );
            assert!(reason.contains(text), "status {status}: reason {reason:?}");
        }
    }

    #[test]
    fn transport_errors_are_retried() {
        let cases = [
            (TransportError::Timeout, "request timed out: after 30s"),
            (TransportError::Connect, "connection failed: after 30s"),
            (
                TransportError::Body,
                "reading the response body failed: after 30s",
            ),
            (TransportError::Other, "request failed: after 30s"),
        ];
        for (error, expected) in cases {
            let outcome = classify(Err((error, "after 30s")), &context(true));
            let retry = Outcome::Retry {
                after: None,
                reason: expected.to_owned(),
                throttled: false,
            };
            assert_eq!(outcome, retry, "{error:?}");
        }
    }

    #[test]
    fn retry_after_parses_each_form() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", secs(0)),
            ("120", secs(120)),
            ("99999999999999999999999", secs(u64::MAX)),
            ("Wed, 02 Dec 2026 10:01:00 GMT", secs(60)),
            ("Wednesday, 02-Dec-26 10:01:00 GMT", secs(60)),
            ("Wed Dec  2 10:01:00 2026", secs(60)),
            ("Tue, 01 Dec 2026 10:00:00 GMT", secs(0)),
            ("", None),
            ("-5", None),
            ("1.5", None),
            ("tomorrow", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now()), *expected, "{value:?}");
        }
    }

    #[test]
    fn long_body_is_cut_on_char_boundary() {
        let body = "é".repeat(MAX_REASON_CHARS + 10);
        let answer = Answer {
            status: 422,
            retry_after: None,
            body: &body,
        };
        let Outcome::Failed { reason } = classify(Ok(&answer), &context(false)) else {
            panic!("422 must fail");
        };
        let detail = reason.trim_start_matches("http 422: ");
        assert_eq!(detail.chars().count(), MAX_REASON_CHARS + 1);
        assert!(detail.ends_with("é…"));
    }

    #[test]
    fn reason_stays_on_one_line() {
        let answer = Answer {
            status: 500,
            retry_after: None,
            body: "line one\nline two\r\n",
        };
        let outcome = classify(Ok(&answer), &context(false));
        let (_, reason) = shape(&outcome);
        assert_eq!(reason, "http 500: line one line two");
    }
}
