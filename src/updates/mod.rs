//! Job kinds and the rules for their payloads: validation of the documented fields,
//! batching, splitting and ordering keys. Everything here is pure.

mod kind;

pub use kind::{Kind, UnknownKind};
