//! The HTTP client for the FunnelFlux update endpoints.
//!
//! One [`Client::send`] is one delivery try: it refreshes the token ahead of expiry, sends
//! the body, reads at most `api.max_response_bytes` of the response, classifies it, and after
//! a 401 (or a 400 once the token's known expiry has passed) refreshes the token and sends
//! once more. Redirects are not followed, so the bearer token never leaves the API host.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use serde_json::Value;
use tracing::warn;

use super::ApiError;
use super::classify::{self, Answer, Context, Outcome, TransportError};
use super::token::{RefreshError, TokenStore};
use crate::config::ApiSettings;
use crate::outbox::{Outbox, now_ms};
use crate::secret::Secret;
use crate::telemetry;
use crate::updates::Kind;

/// An update endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Conversions,
    CustomEvents,
    Cost,
    ValidateReset,
    PerformReset,
}

impl Endpoint {
    /// The endpoint that delivers jobs of a kind; resets are performed (after validation).
    pub fn for_kind(kind: Kind) -> Endpoint {
        match kind {
            Kind::Conversions => Endpoint::Conversions,
            Kind::CustomEvents => Endpoint::CustomEvents,
            Kind::Cost => Endpoint::Cost,
            Kind::Reset => Endpoint::PerformReset,
        }
    }

    fn method(self) -> Method {
        match self {
            Endpoint::ValidateReset => Method::POST,
            Endpoint::PerformReset => Method::DELETE,
            _ => Method::PUT,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Conversions => "/reporting/update/conversions/",
            Endpoint::CustomEvents => "/reporting/update/customevents/",
            Endpoint::Cost => "/reporting/update/cost/",
            Endpoint::ValidateReset | Endpoint::PerformReset => "/reporting/update/reset/",
        }
    }

    /// Short name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Conversions => "conversions",
            Endpoint::CustomEvents => "custom events",
            Endpoint::Cost => "cost",
            Endpoint::ValidateReset => "reset validation",
            Endpoint::PerformReset => "reset",
        }
    }
}

/// The record of one delivery try, possibly two requests when the token was refreshed.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub started_at_ms: i64,
    pub latency: Duration,
    /// HTTP status of the last request, when a response arrived.
    pub status: Option<u16>,
    /// Transport error of the last request, when no response arrived.
    pub error: Option<String>,
    /// Bounded excerpt of the last response body.
    pub body: String,
    pub outcome: Outcome,
    /// Whether the token was refreshed during this try.
    pub refreshed: bool,
}

/// Client for the FunnelFlux API; cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<TokenStore>,
    max_response_bytes: usize,
    max_retry_after: Duration,
}

impl Client {
    /// Builds a client that takes its tokens from `tokens`.
    pub fn new(
        settings: &ApiSettings,
        tokens: Arc<TokenStore>,
        max_retry_after: Duration,
    ) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("ffrelay/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| ApiError::Build(err.to_string()))?;
        Ok(Client {
            http,
            base_url: settings.base_url.clone(),
            tokens,
            max_response_bytes: settings.max_response_bytes,
            max_retry_after,
        })
    }

    /// Builds a client with a token store on `outbox`, for one-off commands.
    pub async fn from_settings(settings: &ApiSettings, outbox: Outbox) -> Result<Client, ApiError> {
        let tokens = Arc::new(TokenStore::load(settings, outbox).await?);
        Client::new(settings, tokens, Duration::from_secs(900))
    }

    /// The token store this client uses.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    /// Sends one body to an endpoint, refreshing the token and retrying once when the
    /// answer says the token is no longer valid.
    pub async fn send(&self, endpoint: Endpoint, body: &Value) -> Exchange {
        let started = Instant::now();
        let started_at_ms = now_ms();
        let bytes = body.to_string().into_bytes();
        if self.tokens.is_due_for_refresh().await {
            self.refresh_ahead().await;
        }
        let Some(token) = self.tokens.access().await else {
            let reason =
                "no access token; set api.access_token or api.access_token_file".to_owned();
            return Exchange::without_request(started_at_ms, Outcome::Pause { reason });
        };

        let mut exchange = self.request(endpoint, &bytes, &token).await;
        if matches!(exchange.outcome, Outcome::RefreshToken { .. }) {
            exchange = match self
                .tokens
                .refresh(&self.http, &self.base_url, &token)
                .await
            {
                Ok(()) => self.resend(endpoint, &bytes).await,
                Err(err) => with_refresh_failure(exchange, err),
            };
        }
        exchange.started_at_ms = started_at_ms;
        exchange.latency = started.elapsed();
        exchange
    }

    /// Validates a reset body and returns how many hits it would delete.
    pub async fn validate_reset(&self, body: &Value) -> Result<i64, ApiError> {
        let endpoint = Endpoint::ValidateReset;
        let exchange = self.send(endpoint, body).await;
        match &exchange.outcome {
            Outcome::Delivered => parse_reset_count(&exchange.body),
            outcome => Err(ApiError::Request {
                endpoint: endpoint.name(),
                reason: describe(outcome),
            }),
        }
    }

    async fn refresh_ahead(&self) {
        let Some(token) = self.tokens.access().await else {
            return;
        };
        let result = self
            .tokens
            .refresh(&self.http, &self.base_url, &token)
            .await;
        let label = refresh_label(&result);
        metrics::counter!(telemetry::TOKEN_REFRESHES, "result" => label).increment(1);
        if let Err(err) = result {
            warn!(error = %err, "refresh ahead of expiry failed; using the current token");
        }
    }

    async fn resend(&self, endpoint: Endpoint, bytes: &[u8]) -> Exchange {
        metrics::counter!(telemetry::TOKEN_REFRESHES, "result" => "ok").increment(1);
        let Some(token) = self.tokens.access().await else {
            let reason = "no access token after refresh".to_owned();
            return Exchange::without_request(now_ms(), Outcome::Pause { reason });
        };
        let mut exchange = self.request(endpoint, bytes, &token).await;
        exchange.refreshed = true;
        if let Outcome::RefreshToken { reason } = &exchange.outcome {
            let reason = format!("the API rejected a freshly refreshed token: {reason}");
            exchange.outcome = Outcome::Pause { reason };
        }
        exchange
    }

    async fn request(&self, endpoint: Endpoint, bytes: &[u8], token: &Secret) -> Exchange {
        let started_at_ms = now_ms();
        let started = Instant::now();
        let url = format!("{}{}", self.base_url, endpoint.path());
        let sent = self
            .http
            .request(endpoint.method(), url)
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes.to_vec())
            .send()
            .await;
        let context = Context {
            now: SystemTime::now(),
            token_expired: self.tokens.is_expired().await,
            max_retry_after: self.max_retry_after,
        };
        let mut exchange = match sent {
            Ok(response) => self.read_answer(endpoint, response, &context).await,
            Err(err) => transport_exchange(&err, &context),
        };
        exchange.started_at_ms = started_at_ms;
        exchange.latency = started.elapsed();
        exchange
    }

    async fn read_answer(
        &self,
        endpoint: Endpoint,
        mut response: reqwest::Response,
        context: &Context,
    ) -> Exchange {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let (body, body_error) = read_bounded(&mut response, self.max_response_bytes).await;

        // A success needs no body, except a reset validation, which must carry the count.
        let needs_body = endpoint == Endpoint::ValidateReset || !status.is_success();
        if let (Some(err), true) = (&body_error, needs_body) {
            return transport_exchange(err, context);
        }
        let answer = Answer {
            status: status.as_u16(),
            retry_after: retry_after.as_deref(),
            body: &body,
        };
        let outcome = classify::classify(Ok(&answer), context);
        Exchange {
            status: Some(status.as_u16()),
            body,
            outcome,
            ..Exchange::without_request(0, Outcome::Delivered)
        }
    }
}

impl Exchange {
    fn without_request(started_at_ms: i64, outcome: Outcome) -> Exchange {
        Exchange {
            started_at_ms,
            latency: Duration::ZERO,
            status: None,
            error: None,
            body: String::new(),
            outcome,
            refreshed: false,
        }
    }
}

/// Reads at most `limit` bytes of the body; the rest is not read.
async fn read_bounded(
    response: &mut reqwest::Response,
    limit: usize,
) -> (String, Option<reqwest::Error>) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit.saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() >= limit {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => return (String::from_utf8_lossy(&bytes).into_owned(), Some(err)),
        }
    }
    (String::from_utf8_lossy(&bytes).into_owned(), None)
}

fn transport_exchange(err: &reqwest::Error, context: &Context) -> Exchange {
    let kind = if err.is_timeout() {
        TransportError::Timeout
    } else if err.is_connect() {
        TransportError::Connect
    } else if err.is_body() || err.is_decode() {
        TransportError::Body
    } else {
        TransportError::Other
    };
    let message = error_chain(err);
    let outcome = classify::classify(Err((kind, &message)), context);
    Exchange {
        error: Some(message),
        outcome,
        ..Exchange::without_request(0, Outcome::Delivered)
    }
}

/// The error and its sources on one line, without the URL.
fn error_chain(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn with_refresh_failure(mut exchange: Exchange, err: RefreshError) -> Exchange {
    metrics::counter!(telemetry::TOKEN_REFRESHES, "result" => refresh_label(&Err(err.clone())))
        .increment(1);
    exchange.outcome = match err {
        RefreshError::Refused(_) => Outcome::Pause {
            reason: err.to_string(),
        },
        RefreshError::Unavailable(_) => Outcome::Retry {
            after: None,
            reason: err.to_string(),
            throttled: false,
        },
    };
    exchange
}

fn refresh_label(result: &Result<(), RefreshError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(RefreshError::Refused(_)) => "refused",
        Err(RefreshError::Unavailable(_)) => "error",
    }
}

fn parse_reset_count(body: &str) -> Result<i64, ApiError> {
    let endpoint = Endpoint::ValidateReset.name();
    let value: Value = serde_json::from_str(body).map_err(|err| ApiError::Body {
        endpoint,
        reason: format!("not JSON ({err})"),
    })?;
    value
        .get("value")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::Body {
            endpoint,
            reason: "missing integer field \"value\"".into(),
        })
}

/// One-line description of an outcome that is not a success.
pub(crate) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered => "delivered".into(),
        Outcome::Retry { reason, .. }
        | Outcome::RefreshToken { reason }
        | Outcome::Pause { reason }
        | Outcome::Failed { reason } => reason.clone(),
    }
}
