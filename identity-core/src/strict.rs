//! Strict JSON: one parse into a tree that refuses duplicate object members at any depth.
//!
//! `serde_json` keeps the last of two equal members; other implementations keep the first,
//! so a document with duplicates means different things to different parsers. Such
//! documents are refused. Depth is bounded by `serde_json`'s recursion limit (128) and
//! size by the caller's byte cap, checked before this parse.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::Error;
use crate::error::clip;
use crate::jws::Name;

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

// ------------------------------------------------------------------ streaming strictness

/// What a registered claim wants from its value while it streams to the caller's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Want {
    /// Nothing: the value is only checked for duplicate members.
    Any,
    /// A JSON string (`iss`, `sub`, `jti`).
    Str,
    /// A NumericDate (`exp`, `nbf`, `iat`).
    Date,
    /// A string or an array of strings (`aud`).
    Aud,
    /// One element of the `aud` array.
    AudItem,
}

/// What the value of a registered claim turned out to be.
#[derive(Default, Debug)]
pub(crate) enum Got {
    /// Not read (yet).
    #[default]
    Nothing,
    /// A string.
    Str(String),
    /// An array of strings (so far).
    Strs(Vec<String>),
    /// A valid NumericDate.
    Date(u64),
    /// Any other JSON type, or a value out of range.
    Wrong,
}

/// A NumericDate from a JSON number written with a fraction or an exponent: non-negative,
/// finite, truncated toward zero (RFC 7519 allows fractional seconds).
pub(crate) fn date_from_f64(v: f64) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (0.0..1.8e19).contains(&v).then_some(v as u64)
}

/// The state of one streaming parse: the first duplicate member, and the registered claim
/// value being captured (at most one at a time: registered claims are top-level members).
#[derive(Default)]
pub(crate) struct Cx {
    duplicate: Cell<Option<String>>,
    got: Cell<Got>,
}

impl Cx {
    /// The first duplicate member name met, if any.
    pub(crate) fn take_duplicate(&self) -> Option<String> {
        self.duplicate.take()
    }
    /// The captured registered value (and resets the capture).
    pub(crate) fn take(&self) -> Got {
        self.got.take()
    }
    /// Records the first duplicate member and fails the parse.
    pub(crate) fn duplicate<E: de::Error>(&self, name: &str) -> E {
        let name = clip(name);
        let msg = format!("duplicate member {name:?}");
        self.duplicate.set(Some(name));
        E::custom(msg)
    }
    #[inline]
    fn wrong(&self, want: Want) {
        if want != Want::Any {
            self.got.set(Got::Wrong);
        }
    }
    #[inline]
    fn string(&self, want: Want, s: &str) {
        match want {
            Want::Any => {}
            Want::Str | Want::Aud => self.got.set(Got::Str(s.to_owned())),
            Want::AudItem => match self.got.take() {
                Got::Strs(mut v) => {
                    v.push(s.to_owned());
                    self.got.set(Got::Strs(v));
                }
                _ => self.got.set(Got::Wrong),
            },
            Want::Date => self.got.set(Got::Wrong),
        }
    }
    fn bytes(&self, want: Want, b: &[u8]) {
        match core::str::from_utf8(b) {
            Ok(s) => self.string(want, s),
            Err(_) => self.wrong(want),
        }
    }
    #[inline]
    fn date(&self, want: Want, d: Option<u64>) {
        match (want, d) {
            (Want::Any, _) => {}
            (Want::Date, Some(d)) => self.got.set(Got::Date(d)),
            _ => self.got.set(Got::Wrong),
        }
    }
    /// Starts an array; gives what its elements want.
    #[inline]
    fn seq(&self, want: Want) -> Want {
        match want {
            Want::Any => Want::Any,
            Want::Aud => {
                self.got.set(Got::Strs(Vec::new()));
                Want::AudItem
            }
            _ => {
                self.got.set(Got::Wrong);
                Want::Any
            }
        }
    }
}

/// A JSON value on its way to the caller's type, unchanged, except that every object in
/// it (at any depth) is refused on a duplicate member, values the caller skips are still
/// walked for duplicates, and a registered claim's value is captured as it goes by.
/// Nothing is buffered: no [`Value`] is built.
pub(crate) struct Strict<'c, D> {
    pub(crate) de: D,
    pub(crate) cx: &'c Cx,
    pub(crate) want: Want,
}

impl<'c, D> Strict<'c, D> {
    fn wrap<V>(&self, v: V) -> Wrap<'c, V> {
        Wrap {
            v,
            cx: self.cx,
            want: self.want,
        }
    }
}

macro_rules! forward_wrapped {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            let w = self.wrap(v);
            self.de.$method(w)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<'_, D> {
    type Error = D::Error;
    forward_wrapped! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let w = self.wrap(v);
        self.de.deserialize_unit_struct(name, w)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let w = self.wrap(v);
        self.de.deserialize_newtype_struct(name, w)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        let w = self.wrap(v);
        self.de.deserialize_tuple(len, w)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        let w = self.wrap(v);
        self.de.deserialize_tuple_struct(name, len, w)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        let w = self.wrap(v);
        self.de.deserialize_struct(name, fields, w)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        let w = self.wrap(v);
        self.de.deserialize_enum(name, variants, w)
    }
    /// A value the caller skips is walked all the same: a duplicate member hiding in an
    /// ignored claim is still refused, and a registered claim is still captured.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        let w = self.wrap(IgnoredAny);
        self.de.deserialize_any(w)?;
        v.visit_unit()
    }
    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A seed whose deserializer is wrapped in [`Strict`].
pub(crate) struct WrapSeed<'c, S> {
    pub(crate) seed: S,
    pub(crate) cx: &'c Cx,
    pub(crate) want: Want,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Strict {
            de: d,
            cx: self.cx,
            want: self.want,
        })
    }
}

/// The caller's visitor, seeing every value through [`Strict`].
struct Wrap<'c, V> {
    v: V,
    cx: &'c Cx,
    want: Want,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.v.expecting(f)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<V::Value, E> {
        self.cx.wrong(self.want);
        self.v.visit_bool(b)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<V::Value, E> {
        self.cx.date(self.want, u64::try_from(n).ok());
        self.v.visit_i64(n)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<V::Value, E> {
        self.cx.date(self.want, Some(n));
        self.v.visit_u64(n)
    }
    fn visit_i128<E: de::Error>(self, n: i128) -> Result<V::Value, E> {
        self.cx.date(self.want, u64::try_from(n).ok());
        self.v.visit_i128(n)
    }
    fn visit_u128<E: de::Error>(self, n: u128) -> Result<V::Value, E> {
        self.cx.date(self.want, u64::try_from(n).ok());
        self.v.visit_u128(n)
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<V::Value, E> {
        self.cx.date(self.want, date_from_f64(x));
        self.v.visit_f64(x)
    }
    fn visit_char<E: de::Error>(self, c: char) -> Result<V::Value, E> {
        self.cx.string(self.want, c.encode_utf8(&mut [0; 4]));
        self.v.visit_char(c)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<V::Value, E> {
        self.cx.string(self.want, s);
        self.v.visit_str(s)
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<V::Value, E> {
        self.cx.string(self.want, s);
        self.v.visit_borrowed_str(s)
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<V::Value, E> {
        self.cx.string(self.want, &s);
        self.v.visit_string(s)
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<V::Value, E> {
        self.cx.bytes(self.want, b);
        self.v.visit_bytes(b)
    }
    fn visit_borrowed_bytes<E: de::Error>(self, b: &'de [u8]) -> Result<V::Value, E> {
        self.cx.bytes(self.want, b);
        self.v.visit_borrowed_bytes(b)
    }
    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<V::Value, E> {
        self.cx.bytes(self.want, &b);
        self.v.visit_byte_buf(b)
    }
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.cx.wrong(self.want);
        self.v.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.cx.wrong(self.want);
        self.v.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.v.visit_some(Strict {
            de: d,
            cx: self.cx,
            want: self.want,
        })
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.v.visit_newtype_struct(Strict {
            de: d,
            cx: self.cx,
            want: self.want,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let want = self.cx.seq(self.want);
        self.v.visit_seq(StrictSeq {
            seq,
            cx: self.cx,
            want,
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.cx.wrong(self.want);
        self.v.visit_map(StrictMap {
            map,
            cx: self.cx,
            names: Names::new(),
        })
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.cx.wrong(self.want);
        self.v.visit_enum(StrictEnum { data, cx: self.cx })
    }
}

struct StrictSeq<'c, A> {
    seq: A,
    cx: &'c Cx,
    want: Want,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<'_, A> {
    type Error = A::Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.seq.next_element_seed(WrapSeed {
            seed,
            cx: self.cx,
            want: self.want,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// An object whose member names are checked for duplicates as they stream by.
pub(crate) struct StrictMap<'c, 'de, A> {
    pub(crate) map: A,
    pub(crate) cx: &'c Cx,
    pub(crate) names: Names<'de>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<'_, 'de, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(Name(k)) = self.map.next_key::<Name<'de>>()? else {
            return Ok(None);
        };
        if let Err(k) = self.names.insert(k.clone()) {
            return Err(self.cx.duplicate(&k));
        }
        seed.deserialize(Key::new(k)).map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(WrapSeed {
            seed,
            cx: self.cx,
            want: Want::Any,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

struct StrictEnum<'c, A> {
    data: A,
    cx: &'c Cx,
}

impl<'c, 'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for StrictEnum<'c, A> {
    type Error = A::Error;
    type Variant = StrictEnum<'c, A::Variant>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (v, data) = self.data.variant_seed(seed)?;
        Ok((v, StrictEnum { data, cx: self.cx }))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for StrictEnum<'_, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.data.unit_variant()
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.data.newtype_variant_seed(WrapSeed {
            seed,
            cx: self.cx,
            want: Want::Any,
        })
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, A::Error> {
        self.data.tuple_variant(
            len,
            Wrap {
                v,
                cx: self.cx,
                want: Want::Any,
            },
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, A::Error> {
        self.data.struct_variant(
            fields,
            Wrap {
                v,
                cx: self.cx,
                want: Want::Any,
            },
        )
    }
}

/// A member name handed to the caller's type: a string, or (like `serde_json` does for
/// map keys) a number or a bool parsed from it when the type asks for one.
pub(crate) struct Key<'de, E> {
    name: Cow<'de, str>,
    error: PhantomData<E>,
}

impl<'de, E> Key<'de, E> {
    pub(crate) fn new(name: Cow<'de, str>) -> Self {
        Self {
            name,
            error: PhantomData,
        }
    }
    fn parse<T: core::str::FromStr>(&self) -> Result<T, E>
    where
        E: de::Error,
    {
        self.name.parse().map_err(|_| {
            E::invalid_value(
                de::Unexpected::Str(&self.name),
                &"a member name of that type",
            )
        })
    }
}

macro_rules! key_number {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            let n: $t = self.parse()?;
            v.$visit(n)
        }
    )*};
}

impl<'de, E: de::Error> Deserializer<'de> for Key<'de, E> {
    type Error = E;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        match self.name {
            Cow::Borrowed(s) => v.visit_borrowed_str(s),
            Cow::Owned(s) => v.visit_string(s),
        }
    }
    key_number! {
        deserialize_i8 visit_i8 i8; deserialize_i16 visit_i16 i16; deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64; deserialize_i128 visit_i128 i128;
        deserialize_u8 visit_u8 u8; deserialize_u16 visit_u16 u16; deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64; deserialize_u128 visit_u128 u128;
        deserialize_f32 visit_f32 f32; deserialize_f64 visit_f64 f64; deserialize_bool visit_bool bool;
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_enum(de::value::CowStrDeserializer::new(self.name))
    }
    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// Member names of one object, for duplicate detection without a tree: a short inline
/// list, then an ordered set once the object is large (bounded work per member).
pub(crate) struct Names<'de> {
    few: [Cow<'de, str>; Names::FEW],
    len: usize,
    many: BTreeSet<Cow<'de, str>>,
}

impl<'de> Names<'de> {
    const FEW: usize = 8;

    pub(crate) fn new() -> Self {
        Self {
            few: Default::default(),
            len: 0,
            many: BTreeSet::new(),
        }
    }

    /// Inserts `name`; gives it back if the object already had it.
    pub(crate) fn insert(&mut self, name: Cow<'de, str>) -> Result<(), Cow<'de, str>> {
        if self.many.is_empty() {
            let few = self.few.get(..self.len).unwrap_or_default();
            if few.contains(&name) {
                return Err(name);
            }
            if let Some(slot) = self.few.get_mut(self.len) {
                *slot = name;
                self.len += 1;
                return Ok(());
            }
            self.many.extend(self.few.iter_mut().map(core::mem::take));
        }
        if self.many.contains(&name) {
            return Err(name);
        }
        self.many.insert(name);
        Ok(())
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
