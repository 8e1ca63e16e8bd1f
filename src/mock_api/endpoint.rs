//! The `/v1` endpoints the mock serves, resolved from a method and a path. Paths match with
//! or without the trailing slash.

use axum::http::{Method, StatusCode};

/// One endpoint of the mocked FunnelFlux API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `PUT /v1/reporting/update/conversions/`
    Conversions,
    /// `PUT /v1/reporting/update/customevents/`
    CustomEvents,
    /// `PUT /v1/reporting/update/cost/`
    Cost,
    /// `POST /v1/reporting/update/reset/`
    ResetValidate,
    /// `DELETE /v1/reporting/update/reset/`
    ResetPerform,
    /// `POST /v1/auth/validate`
    AuthValidate,
}

impl Endpoint {
    /// Number of update endpoints, which are the first variants and index `MockStats` counters.
    pub(crate) const UPDATES: usize = 5;

    /// Resolves `method` and `path` (including `/v1`), or returns 404 for an unknown path and
    /// 405 for a known path with another method.
    pub(crate) fn resolve(method: &Method, path: &str) -> Result<Endpoint, StatusCode> {
        let route = path.strip_prefix("/v1").ok_or(StatusCode::NOT_FOUND)?;
        let route = route.trim_end_matches('/');
        let (expected, endpoint) = match route {
            "/reporting/update/conversions" => (Method::PUT, Endpoint::Conversions),
            "/reporting/update/customevents" => (Method::PUT, Endpoint::CustomEvents),
            "/reporting/update/cost" => (Method::PUT, Endpoint::Cost),
            "/reporting/update/reset" => return Self::resolve_reset(method),
            "/auth/validate" => (Method::POST, Endpoint::AuthValidate),
            _ => return Err(StatusCode::NOT_FOUND),
        };
        if *method != expected {
            return Err(StatusCode::METHOD_NOT_ALLOWED);
        }
        Ok(endpoint)
    }

    fn resolve_reset(method: &Method) -> Result<Endpoint, StatusCode> {
        match *method {
            Method::POST => Ok(Endpoint::ResetValidate),
            Method::DELETE => Ok(Endpoint::ResetPerform),
            _ => Err(StatusCode::METHOD_NOT_ALLOWED),
        }
    }

    /// Index of an update endpoint into per-endpoint counters; `None` for `AuthValidate`.
    pub(crate) fn update_index(self) -> Option<usize> {
        match self {
            Endpoint::Conversions => Some(0),
            Endpoint::CustomEvents => Some(1),
            Endpoint::Cost => Some(2),
            Endpoint::ResetValidate => Some(3),
            Endpoint::ResetPerform => Some(4),
            Endpoint::AuthValidate => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_accepts_both_slash_forms() {
        let with = Endpoint::resolve(&Method::PUT, "/v1/reporting/update/cost/");
        let without = Endpoint::resolve(&Method::PUT, "/v1/reporting/update/cost");
        assert_eq!(with, Ok(Endpoint::Cost));
        assert_eq!(without, Ok(Endpoint::Cost));
    }

    #[test]
    fn resolve_rejects_wrong_method_and_path() {
        let wrong_method = Endpoint::resolve(&Method::GET, "/v1/reporting/update/cost/");
        let wrong_path = Endpoint::resolve(&Method::PUT, "/v1/reporting/update/other/");
        assert_eq!(wrong_method, Err(StatusCode::METHOD_NOT_ALLOWED));
        assert_eq!(wrong_path, Err(StatusCode::NOT_FOUND));
    }
}
