//! Job kinds and the rules for their payloads: validation of the documented fields,
//! batching, splitting and ordering keys. Everything here is pure.

mod items;
mod json;
mod kind;
mod lines;
mod prepare;
mod validate;

pub use items::{
    Chunk, ItemsError, default_ordering_key, halves, hit_id, item_count, item_field, options_key,
    pack, split,
};
pub use json::parse_strict;
pub use kind::{Kind, UnknownKind};
pub use lines::{LineError, MAX_HIT_ID_CHARS, parse_line, parse_lines};
pub use prepare::{JobOptions, RowKeys, check_row, parse_not_before, prepare};
pub use validate::{PayloadError, validate};
