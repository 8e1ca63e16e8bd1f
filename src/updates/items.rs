//! The item array of a request body: finding it, counting it, packing several bodies into
//! one request, splitting one body into several, and the default ordering keys.
//!
//! FunnelFlux does not document the property names of its nested arrays, so the item array
//! is found by shape: the one field whose value is an array of objects. Every function here
//! is pure. Fields other than the item array are copied unchanged and keep their order, and
//! items are never reordered, dropped or duplicated.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::Kind;

/// Reasons a body cannot be treated as a request with an item array.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemsError {
    /// The body is not a JSON object.
    #[error("invalid request body: expected a JSON object")]
    NotAnObject,
    /// No field contains an array of objects.
    #[error(
        "missing item array: expected one field whose value is an array of objects \
         (an empty array is recognised only when it is the body's only array field)"
    )]
    NoItemArray,
    /// Several fields contain arrays of objects, so the item array is unclear.
    #[error("ambiguous item array: fields {0:?} all contain objects, expected exactly one")]
    AmbiguousItemArray(Vec<String>),
    /// The item array contains an element that is not an object.
    #[error("invalid item {field}[{index}]: expected an object, got {found}")]
    ItemNotAnObject {
        /// Name of the item array.
        field: String,
        /// Position of the element in the item array.
        index: usize,
        /// The element, rendered as JSON and shortened.
        found: String,
    },
    /// A request size limit of zero items.
    #[error("invalid max items per request 0: expected at least 1")]
    ZeroMaxItems,
    /// A body passed to `pack` whose options or item field differ from the first body's.
    #[error("body {index} cannot share a request: its options differ from body 0")]
    OptionsDiffer {
        /// Index of the body in the input to `pack`.
        index: usize,
    },
}

/// A request body built by [`pack`] and the input bodies it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The request body: the first member's body with the concatenated items.
    pub body: Value,
    /// Indexes into the input of `pack`, in input order.
    pub members: Vec<usize>,
}

/// Returns the name of the item array: the one field whose value is an array of objects.
///
/// A non-empty array counts when it contains at least one object, and then every element
/// must be an object. An empty array counts only when it is the body's only array field.
pub fn item_field(body: &Map<String, Value>) -> Result<String, ItemsError> {
    let candidates: Vec<&String> = body
        .iter()
        .filter(|(_, value)| contains_object(value))
        .map(|(name, _)| name)
        .collect();
    match candidates.as_slice() {
        [name] => check_elements(name, &body[name.as_str()]).map(|()| (*name).clone()),
        [] => only_empty_array(body).ok_or(ItemsError::NoItemArray),
        many => Err(ItemsError::AmbiguousItemArray(
            many.iter().map(|name| (*name).clone()).collect(),
        )),
    }
}

/// Returns the hit ID of an item: the first string field whose name, lowercased, is
/// `hitid`, `idhit` or `hit`.
pub fn hit_id(item: &Map<String, Value>) -> Option<&str> {
    item.iter()
        .filter(|(name, _)| is_hit_id_name(name))
        .find_map(|(_, value)| value.as_str())
}

/// Returns a canonical string of the body without its items, so that bodies with equal
/// options have equal keys.
///
/// Object keys are sorted at every depth. The item array's value is replaced by `null`,
/// so its name still takes part: bodies whose item arrays have different names never
/// share a key.
pub fn options_key(body: &Value) -> Result<String, ItemsError> {
    let object = body.as_object().ok_or(ItemsError::NotAnObject)?;
    let field = item_field(object)?;
    let mut key = String::new();
    write_canonical_object(object, Some(&field), &mut key);
    Ok(key)
}

/// Packs bodies with equal options into request bodies of at most `max_items` items, in
/// input order.
///
/// A body that fits joins the current chunk. A body with more than `max_items` items is
/// split across chunks that carry only that body, and its index appears in each of them.
/// Each chunk's body is its first member's body with the item array replaced by the
/// concatenated items. Returns `OptionsDiffer` when a body's options key differs from the
/// first body's, because its options would otherwise be lost.
pub fn pack(bodies: &[&Value], max_items: usize) -> Result<Vec<Chunk>, ItemsError> {
    if max_items == 0 {
        return Err(ItemsError::ZeroMaxItems);
    }
    check_same_options(bodies)?;
    let mut packer = Packer::new(max_items);
    for (index, body) in bodies.iter().enumerate() {
        packer.add(index, body)?;
    }
    Ok(packer.finish())
}

/// Splits one body into bodies of at most `max_items` items each, in item order.
///
/// A body with no items comes back as a single copy.
pub fn split(body: &Value, max_items: usize) -> Result<Vec<Value>, ItemsError> {
    if max_items == 0 {
        return Err(ItemsError::ZeroMaxItems);
    }
    let (field, items) = items_of(body)?;
    if items.is_empty() {
        return Ok(vec![body.clone()]);
    }
    let parts = items
        .chunks(max_items)
        .map(|part| with_items(body, &field, part.to_vec()))
        .collect();
    Ok(parts)
}

/// Returns the two halves used to isolate a rejected job in a batch, the first half
/// rounded down, or `None` for fewer than two elements.
pub fn halves<T>(items: &[T]) -> Option<(&[T], &[T])> {
    if items.len() < 2 {
        return None;
    }
    Some(items.split_at(items.len() / 2))
}

/// Returns the default ordering key of a job, or `None` when it has none.
///
/// Conversions and custom events get `hit:<id>` when every item carries the same hit ID.
/// Cost gets `cost:` followed by the canonical JSON of its segment: the sorted, deduplicated
/// `trafficSourceIDs` and `funnelIDs`, then `timeStart` and `timeEnd` in UTC when they parse
/// as RFC 3339. Resets get `None` because a barrier orders them.
pub fn default_ordering_key(kind: Kind, body: &Value) -> Option<String> {
    match kind {
        Kind::Conversions | Kind::CustomEvents => single_hit_key(body),
        Kind::Cost => cost_segment_key(body),
        Kind::Reset => None,
    }
}

/// Returns the number of items in the body's item array.
pub fn item_count(body: &Value) -> Result<usize, ItemsError> {
    items_of(body).map(|(_, items)| items.len())
}

/// Accumulates chunks for [`pack`].
struct Packer {
    max_items: usize,
    done: Vec<Chunk>,
    current: Option<Open>,
}

/// The chunk being filled: the body it is based on, its item field, items and members.
struct Open {
    base: Value,
    field: String,
    items: Vec<Value>,
    members: Vec<usize>,
}

impl Packer {
    fn new(max_items: usize) -> Self {
        Self {
            max_items,
            done: Vec::new(),
            current: None,
        }
    }

    fn add(&mut self, index: usize, body: &Value) -> Result<(), ItemsError> {
        let (field, items) = items_of(body)?;
        if items.len() > self.max_items {
            return self.add_split(index, body);
        }

        let open_len = self.current.as_ref().map_or(0, |open| open.items.len());
        if open_len + items.len() > self.max_items {
            self.close();
        }
        let open = self.current.get_or_insert_with(|| Open {
            base: body.clone(),
            field,
            items: Vec::new(),
            members: Vec::new(),
        });
        open.items.extend(items.iter().cloned());
        open.members.push(index);
        Ok(())
    }

    /// Adds a body too large for one request as chunks that carry only that body.
    fn add_split(&mut self, index: usize, body: &Value) -> Result<(), ItemsError> {
        self.close();
        for part in split(body, self.max_items)? {
            self.done.push(Chunk {
                body: part,
                members: vec![index],
            });
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(open) = self.current.take() {
            self.done.push(Chunk {
                body: with_items(&open.base, &open.field, open.items),
                members: open.members,
            });
        }
    }

    fn finish(mut self) -> Vec<Chunk> {
        self.close();
        self.done
    }
}

/// Returns the item field's name and its items.
fn items_of(body: &Value) -> Result<(String, &Vec<Value>), ItemsError> {
    let object = body.as_object().ok_or(ItemsError::NotAnObject)?;
    let field = item_field(object)?;
    match object.get(&field) {
        Some(Value::Array(items)) => Ok((field, items)),
        _ => Err(ItemsError::NoItemArray),
    }
}

/// Returns a copy of `body` with the value of `field` replaced by `items`, in place.
fn with_items(body: &Value, field: &str, items: Vec<Value>) -> Value {
    let mut copy = body.clone();
    if let Some(object) = copy.as_object_mut() {
        // With `preserve_order`, inserting an existing key keeps its position.
        object.insert(field.to_owned(), Value::Array(items));
    }
    copy
}

fn check_same_options(bodies: &[&Value]) -> Result<(), ItemsError> {
    let Some(first) = bodies.first() else {
        return Ok(());
    };
    let first_key = options_key(first)?;
    for (index, body) in bodies.iter().enumerate().skip(1) {
        if options_key(body)? != first_key {
            return Err(ItemsError::OptionsDiffer { index });
        }
    }
    Ok(())
}

fn contains_object(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|elements| elements.iter().any(Value::is_object))
}

fn check_elements(field: &str, value: &Value) -> Result<(), ItemsError> {
    let elements = value.as_array().map_or(&[][..], Vec::as_slice);
    match elements.iter().position(|element| !element.is_object()) {
        None => Ok(()),
        Some(index) => Err(ItemsError::ItemNotAnObject {
            field: field.to_owned(),
            index,
            found: excerpt(&elements[index]),
        }),
    }
}

fn only_empty_array(body: &Map<String, Value>) -> Option<String> {
    let mut arrays = body.iter().filter(|(_, value)| value.is_array());
    match (arrays.next(), arrays.next()) {
        (Some((name, Value::Array(items))), None) if items.is_empty() => Some(name.clone()),
        _ => None,
    }
}

fn is_hit_id_name(name: &str) -> bool {
    ["hitid", "idhit", "hit"]
        .iter()
        .any(|candidate| name.eq_ignore_ascii_case(candidate))
}

/// Renders a value as JSON for an error message, cut to about 80 characters.
pub(crate) fn excerpt(value: &Value) -> String {
    const MAX_CHARS: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= MAX_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_CHARS).collect();
    format!("{cut}...")
}

fn single_hit_key(body: &Value) -> Option<String> {
    let (_, items) = items_of(body).ok()?;
    let mut ids = items
        .iter()
        .map(|item| item.as_object().and_then(hit_id))
        .collect::<Option<BTreeSet<&str>>>()?
        .into_iter();
    match (ids.next(), ids.next()) {
        (Some(id), None) => Some(format!("hit:{id}")),
        _ => None,
    }
}

fn cost_segment_key(body: &Value) -> Option<String> {
    let object = body.as_object()?;
    let segment = Value::Array(vec![
        sorted_strings(object.get("trafficSourceIDs")?)?,
        sorted_strings(object.get("funnelIDs")?)?,
        utc_time(object.get("timeStart")?)?,
        utc_time(object.get("timeEnd")?)?,
    ]);
    Some(format!("cost:{segment}"))
}

fn sorted_strings(value: &Value) -> Option<Value> {
    let strings: BTreeSet<&str> = value
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect::<Option<_>>()?;
    Some(strings.into_iter().map(Value::from).collect())
}

/// Normalises an RFC 3339 time to UTC so that equal instants give equal keys. Other
/// strings are kept as they are.
fn utc_time(value: &Value) -> Option<Value> {
    let text = value.as_str()?;
    let normalised = match DateTime::parse_from_rfc3339(text) {
        Ok(time) => time
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        Err(_) => text.to_owned(),
    };
    Some(Value::String(normalised))
}

/// Writes `value` as JSON with object keys sorted at every depth.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(object) => write_canonical_object(object, None, out),
        Value::Array(elements) => {
            out.push('[');
            for (position, element) in elements.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_canonical(element, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Writes an object with sorted keys, writing `null` for the value of `blank`.
fn write_canonical_object(object: &Map<String, Value>, blank: Option<&str>, out: &mut String) {
    let mut names: Vec<&String> = object.keys().collect();
    names.sort();
    out.push('{');
    for (position, name) in names.into_iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(name.as_str()).to_string());
        out.push(':');
        if blank == Some(name.as_str()) {
            out.push_str("null");
        } else {
            write_canonical(&object[name.as_str()], out);
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn conversions(ids: &[&str]) -> Value {
        let hits: Vec<Value> = ids.iter().map(|id| json!({ "hitID": id })).collect();
        json!({ "postbackCalls": "none", "hits": hits, "extra": { "b": 1, "a": 2 } })
    }

    fn items(body: &Value) -> Vec<Value> {
        let (_, items) = items_of(body).unwrap();
        items.clone()
    }

    #[test]
    fn item_field_finds_array_of_objects() {
        let body = object(json!({ "funnelIDs": ["f"], "segments": [{ "cost": 1 }] }));
        assert_eq!(item_field(&body), Ok("segments".to_owned()));
    }

    #[test]
    fn item_field_accepts_only_empty_array() {
        let body = object(json!({ "postbackCalls": "all", "hits": [] }));
        assert_eq!(item_field(&body), Ok("hits".to_owned()));
    }

    #[test]
    fn item_field_ignores_empty_array_beside_others() {
        let body = object(json!({ "funnelIDs": ["f"], "segments": [] }));
        assert_eq!(item_field(&body), Err(ItemsError::NoItemArray));
        let two_empty = object(json!({ "a": [], "b": [] }));
        assert_eq!(item_field(&two_empty), Err(ItemsError::NoItemArray));
    }

    #[test]
    fn item_field_rejects_missing_array() {
        let body = object(json!({ "postbackCalls": "all", "ids": ["a", "b"] }));
        assert_eq!(item_field(&body), Err(ItemsError::NoItemArray));
        assert_eq!(item_field(&Map::new()), Err(ItemsError::NoItemArray));
    }

    #[test]
    fn item_field_rejects_two_arrays() {
        let body = object(json!({ "hits": [{}], "other": [{ "x": 1 }] }));
        let expected = ItemsError::AmbiguousItemArray(vec!["hits".into(), "other".into()]);
        assert_eq!(item_field(&body), Err(expected));
    }

    #[test]
    fn item_field_rejects_mixed_array() {
        let body = object(json!({ "hits": [{ "hitID": "a" }, 5] }));
        let err = item_field(&body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid item hits[1]: expected an object, got 5"
        );
    }

    #[test]
    fn errors_name_fields() {
        let err = ItemsError::AmbiguousItemArray(vec!["hits".into(), "rows".into()]);
        assert!(err.to_string().contains("[\"hits\", \"rows\"]"));
    }

    #[test]
    fn hit_id_matches_names_ignoring_case() {
        for name in ["hitID", "hitid", "HITID", "idHit", "hit", "Hit"] {
            let item = object(json!({ name: "abc" }));
            assert_eq!(hit_id(&item), Some("abc"), "field {name}");
        }
    }

    #[test]
    fn hit_id_skips_other_fields() {
        assert_eq!(hit_id(&object(json!({ "hits": "abc" }))), None);
        assert_eq!(hit_id(&object(json!({ "hitID": 12 }))), None);
        assert_eq!(
            hit_id(&object(json!({ "hit": 1, "hitID": "b" }))),
            Some("b")
        );
    }

    #[test]
    fn options_key_ignores_items_and_key_order() {
        let first = json!({ "a": 1, "hits": [{ "hitID": "x" }], "o": { "p": 1, "q": 2 } });
        let second = json!({ "o": { "q": 2, "p": 1 }, "hits": [{ "hitID": "y" }], "a": 1 });
        assert_eq!(options_key(&first), options_key(&second));
        assert_eq!(
            options_key(&first).unwrap(),
            r#"{"a":1,"hits":null,"o":{"p":1,"q":2}}"#
        );
    }

    #[test]
    fn options_key_differs_on_options() {
        let all = json!({ "postbackCalls": "all", "hits": [{}] });
        let none = json!({ "postbackCalls": "none", "hits": [{}] });
        assert_ne!(options_key(&all), options_key(&none));
        let renamed = json!({ "postbackCalls": "all", "rows": [{}] });
        assert_ne!(options_key(&all), options_key(&renamed));
        assert_eq!(options_key(&json!([1])), Err(ItemsError::NotAnObject));
    }

    #[test]
    fn pack_merges_small_bodies() {
        let (a, b, c) = (
            conversions(&["a"]),
            conversions(&["b", "c"]),
            conversions(&["d"]),
        );
        let chunks = pack(&[&a, &b, &c], 3).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].members, vec![0, 1]);
        assert_eq!(chunks[0].body, conversions(&["a", "b", "c"]));
        assert_eq!(chunks[1].members, vec![2]);
        assert_eq!(chunks[1].body, conversions(&["d"]));
    }

    #[test]
    fn pack_keeps_field_order() {
        let a = conversions(&["a"]);
        let chunks = pack(&[&a, &a], 10).unwrap();
        let names: Vec<&String> = chunks[0].body.as_object().unwrap().keys().collect();
        assert_eq!(names, ["postbackCalls", "hits", "extra"]);
    }

    #[test]
    fn pack_gives_large_body_own_chunks() {
        let (a, big, c) = (
            conversions(&["a"]),
            conversions(&["b", "c", "d"]),
            conversions(&["e"]),
        );
        let chunks = pack(&[&a, &big, &c], 2).unwrap();
        let members: Vec<Vec<usize>> = chunks.iter().map(|c| c.members.clone()).collect();
        assert_eq!(members, vec![vec![0], vec![1], vec![1], vec![2]]);
        assert_eq!(chunks[1].body, conversions(&["b", "c"]));
        assert_eq!(chunks[2].body, conversions(&["d"]));
    }

    #[test]
    fn pack_rejects_bad_input() {
        let a = conversions(&["a"]);
        assert_eq!(pack(&[&a], 0), Err(ItemsError::ZeroMaxItems));
        let other = json!({ "postbackCalls": "all", "hits": [{}] });
        assert_eq!(
            pack(&[&a, &other], 5),
            Err(ItemsError::OptionsDiffer { index: 1 })
        );
        assert_eq!(pack(&[], 5), Ok(vec![]));
    }

    #[test]
    fn split_cuts_in_order() {
        let body = conversions(&["a", "b", "c", "d", "e"]);
        let parts = split(&body, 2).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], conversions(&["a", "b"]));
        assert_eq!(parts[2], conversions(&["e"]));
        assert_eq!(split(&conversions(&[]), 2).unwrap(), vec![conversions(&[])]);
        assert_eq!(split(&body, 0), Err(ItemsError::ZeroMaxItems));
    }

    #[test]
    fn halves_round_down() {
        assert_eq!(halves::<u8>(&[]), None);
        assert_eq!(halves(&[1]), None);
        assert_eq!(halves(&[1, 2, 3]), Some((&[1][..], &[2, 3][..])));
    }

    #[test]
    fn ordering_key_for_single_hit() {
        let body = conversions(&["abc", "abc"]);
        assert_eq!(
            default_ordering_key(Kind::Conversions, &body),
            Some("hit:abc".into())
        );
        assert_eq!(
            default_ordering_key(Kind::CustomEvents, &body),
            Some("hit:abc".into())
        );
        let two = conversions(&["abc", "def"]);
        assert_eq!(default_ordering_key(Kind::Conversions, &two), None);
        let unnamed = json!({ "hits": [{ "hitID": "abc" }, { "id": "abc" }] });
        assert_eq!(default_ordering_key(Kind::Conversions, &unnamed), None);
        assert_eq!(
            default_ordering_key(Kind::Conversions, &conversions(&[])),
            None
        );
    }

    #[test]
    fn ordering_key_for_cost_segment() {
        let body = json!({
            "funnelIDs": ["f2", "f1"], "trafficSourceIDs": ["t"],
            "timeStart": "2026-01-01T01:00:00+01:00", "timeEnd": "2026-01-02T00:00:00Z",
            "segments": [{ "cost": 1 }]
        });
        let expected = r#"cost:[["t"],["f1","f2"],"2026-01-01T00:00:00Z","2026-01-02T00:00:00Z"]"#;
        assert_eq!(
            default_ordering_key(Kind::Cost, &body),
            Some(expected.into())
        );
        assert_eq!(
            default_ordering_key(Kind::Cost, &json!({ "funnelIDs": [] })),
            None
        );
    }

    #[test]
    fn ordering_key_none_for_reset() {
        let body = json!({ "timeStart": "2026-01-01T00:00:00Z", "hits": [{ "hitID": "a" }] });
        assert_eq!(default_ordering_key(Kind::Reset, &body), None);
    }

    #[test]
    fn item_count_counts_items() {
        assert_eq!(item_count(&conversions(&["a", "b"])), Ok(2));
        assert_eq!(item_count(&json!("x")), Err(ItemsError::NotAnObject));
    }

    fn body_sizes() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0usize..25, 0..12)
    }

    /// Builds one body per size, with items numbered across all bodies.
    fn numbered_bodies(sizes: &[usize]) -> Vec<Value> {
        let mut next = 0;
        sizes
            .iter()
            .map(|&size| {
                let hits: Vec<Value> = (next..next + size).map(|n| json!({ "n": n })).collect();
                next += size;
                json!({ "postbackCalls": "all", "hits": hits })
            })
            .collect()
    }

    proptest! {
        #[test]
        fn pack_preserves_items(sizes in body_sizes(), max_items in 1usize..12) {
            let bodies = numbered_bodies(&sizes);
            let refs: Vec<&Value> = bodies.iter().collect();
            let chunks = pack(&refs, max_items).unwrap();

            let packed: Vec<Value> = chunks.iter().flat_map(|chunk| items(&chunk.body)).collect();
            let original: Vec<Value> = bodies.iter().flat_map(items).collect();
            prop_assert_eq!(packed, original);

            for chunk in &chunks {
                prop_assert!(item_count(&chunk.body).unwrap() <= max_items);
                prop_assert!(!chunk.members.is_empty());
            }

            let mut members: Vec<usize> = chunks.iter().flat_map(|c| c.members.clone()).collect();
            members.dedup();
            prop_assert_eq!(members, (0..bodies.len()).collect::<Vec<_>>());
        }

        #[test]
        fn pack_splits_only_large_bodies(sizes in body_sizes(), max_items in 1usize..12) {
            let bodies = numbered_bodies(&sizes);
            let refs: Vec<&Value> = bodies.iter().collect();
            for chunk in pack(&refs, max_items).unwrap() {
                let shared = chunk.members.len() > 1;
                let has_large = chunk.members.iter().any(|&m| sizes[m] > max_items);
                prop_assert!(!(shared && has_large));
            }
        }

        #[test]
        fn split_then_concat_is_identity(size in 0usize..60, max_items in 1usize..15) {
            let body = numbered_bodies(&[size]).remove(0);
            let parts = split(&body, max_items).unwrap();
            let joined: Vec<Value> = parts.iter().flat_map(items).collect();
            prop_assert_eq!(joined, items(&body));
            prop_assert_eq!(parts.len(), size.div_ceil(max_items).max(1));
            for part in &parts {
                prop_assert!(item_count(part).unwrap() <= max_items);
            }
        }

        #[test]
        fn halves_cover_input(values in proptest::collection::vec(any::<u8>(), 0..40)) {
            match halves(&values) {
                None => prop_assert!(values.len() < 2),
                Some((first, second)) => {
                    prop_assert_eq!(first.len(), values.len() / 2);
                    prop_assert!(!first.is_empty() && !second.is_empty());
                    prop_assert_eq!([first, second].concat(), values);
                }
            }
        }
    }
}
