//! Strict JSON: one parse into a tree that refuses duplicate object members at any depth.
//!
//! `serde_json` keeps the last of two equal members; other implementations keep the first,
//! so a document with duplicates means different things to different parsers. Such
//! documents are refused. Depth is bounded by `serde_json`'s recursion limit (128) and
//! size by the caller's byte cap, checked before this parse.

use core::cell::Cell;
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::Error;
use crate::error::clip;

/// A seed producing a [`Value`]; on a duplicate member it records the name and fails.
#[derive(Clone, Copy)]
pub(crate) struct StrictSeed<'a> {
    pub(crate) duplicate: &'a Cell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(e) = seq.next_element_seed(self)? {
            v.push(e);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                let msg = format!("duplicate member {:?}", clip(&k));
                self.duplicate.set(Some(clip(&k)));
                return Err(de::Error::custom(msg));
            }
            let v = map.next_value_seed(self)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

/// Parses `bytes` as one JSON object (nothing but whitespace after it), refusing duplicate
/// members at every depth.
///
/// # Errors
/// [`Error::DuplicateMember`] or [`Error::Json`], naming `part`.
pub(crate) fn parse_object(bytes: &[u8], part: &'static str) -> Result<Map<String, Value>, Error> {
    let duplicate = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictSeed {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::Json {
            part,
            detail: "expected a JSON object".into(),
        }),
        Err(e) => match duplicate.take() {
            Some(name) => Err(Error::DuplicateMember { part, name }),
            None => Err(Error::Json {
                part,
                detail: clip(&e.to_string()),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"b":{"c":[{"d":1}]}}"#, "x").is_ok());
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#, "x").unwrap_err(),
            Error::DuplicateMember {
                part: "x",
                name: "a".into()
            }
        );
        assert_eq!(
            parse_object(br#"{"a":{"b":[{"c":1,"c":1}]}}"#, "x").unwrap_err(),
            Error::DuplicateMember {
                part: "x",
                name: "c".into()
            }
        );
        // escaped spelling of the same name is the same member
        assert!(matches!(
            parse_object(br#"{"exp":1,"\u0065xp":2}"#, "x").unwrap_err(),
            Error::DuplicateMember { .. }
        ));
    }

    #[test]
    fn refuses_non_objects_trailing_data_and_deep_nesting() {
        assert!(matches!(
            parse_object(b"[1]", "x").unwrap_err(),
            Error::Json { .. }
        ));
        assert!(matches!(
            parse_object(b"{} {}", "x").unwrap_err(),
            Error::Json { .. }
        ));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            parse_object(deep.as_bytes(), "x").unwrap_err(),
            Error::Json { .. }
        ));
    }
}
