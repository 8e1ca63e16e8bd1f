//! The four kinds of update and the names they carry everywhere: the CLI, the HTTP API and
//! the `jobs.kind` column.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of update, one per FunnelFlux update endpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Conversions on existing hits: `PUT /reporting/update/conversions/`.
    Conversions,
    /// Custom events on existing hits: `PUT /reporting/update/customevents/`.
    CustomEvents,
    /// Ad spend for funnels and traffic sources: `PUT /reporting/update/cost/`.
    Cost,
    /// A destructive data reset: validated with `POST`, performed with `DELETE`.
    Reset,
}

impl Kind {
    /// Every kind, in a stable order for reports.
    pub const ALL: [Kind; 4] = [
        Kind::Conversions,
        Kind::CustomEvents,
        Kind::Cost,
        Kind::Reset,
    ];

    /// The name used in the CLI, the HTTP API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Conversions => "conversions",
            Kind::CustomEvents => "custom-events",
            Kind::Cost => "cost",
            Kind::Reset => "reset",
        }
    }

    /// Maximum number of items one request of this kind may carry, when the API sets one.
    pub fn max_items_per_request(self) -> Option<usize> {
        match self {
            Kind::CustomEvents => Some(10),
            _ => None,
        }
    }

    /// Whether jobs of this kind with equal options may share one request.
    pub fn is_batchable(self) -> bool {
        matches!(self, Kind::Conversions | Kind::CustomEvents)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a kind name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job kind {0:?}: expected conversions, custom-events, cost or reset")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn unknown_kind_names_the_value() {
        let err = "refunds".parse::<Kind>().unwrap_err();
        assert!(err.to_string().contains("\"refunds\""));
    }
}
