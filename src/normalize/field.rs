//! Reading a payload's fields straight from its JSON text, without a tree: a [`Field`]
//! accepts any JSON type and says which it was, so a field of an unexpected type is the
//! same "missing" or "wrong type" it would be in a tree, never a failed parse.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::NormalizeError;

/// One field's value: a string (borrowed from the text unless it has escapes), an object
/// read as `T`, or anything else.
#[derive(Debug, PartialEq)]
pub enum Field<'a, T = IgnoredAny> {
    Str(Cow<'a, str>),
    Object(T),
    Other,
}

impl<T> Field<'_, T> {
    /// The trimmed string, when it is a non-empty one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s.trim()).filter(|s| !s.is_empty()),
            _ => None,
        }
    }

    /// The object, when it is one.
    pub fn as_object(&self) -> Option<&T> {
        match self {
            Field::Object(t) => Some(t),
            _ => None,
        }
    }
}

/// A non-empty string, or None when absent, null, empty or not a string.
pub fn opt<'f, T>(field: &'f Option<Field<'_, T>>) -> Option<&'f str> {
    field.as_ref().and_then(Field::as_str)
}

/// A required non-empty string: Missing when absent, null or empty, WrongType otherwise.
pub fn req<'f, T>(field: &'f Option<Field<'_, T>>, name: &'static str) -> Result<&'f str, NormalizeError> {
    match field {
        None => Err(NormalizeError::Missing(name)),
        Some(Field::Str(s)) if s.trim().is_empty() => Err(NormalizeError::Missing(name)),
        Some(Field::Str(s)) => Ok(s.trim()),
        Some(_) => Err(NormalizeError::WrongType(name)),
    }
}

/// An RFC 3339 time; None when absent or not a valid time.
pub fn opt_time<T>(field: &Option<Field<'_, T>>) -> Option<DateTime<Utc>> {
    opt(field).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Field<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for FieldVisitor<'a, T> {
    type Value = Field<'a, T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Field::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Field::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Doc<'a> {
        #[serde(borrow, default)]
        a: Option<Field<'a>>,
        #[serde(borrow, default)]
        inner: Option<Field<'a, Inner<'a>>>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        b: Option<Field<'a>>,
    }

    fn doc(text: &str) -> Doc<'_> {
        match serde_json::from_str(text) {
            Ok(d) => d,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn every_json_type_is_read_and_told_apart() {
        assert_eq!(req(&doc(r#"{"a":" x "}"#).a, "a"), Ok("x"));
        assert!(matches!(doc(r#"{"a":"\u0041"}"#).a, Some(Field::Str(Cow::Owned(_)))), "escaped: owned");
        assert!(matches!(doc(r#"{"a":"A"}"#).a, Some(Field::Str(Cow::Borrowed("A")))));
        for (text, expected) in [
            (r#"{}"#, NormalizeError::Missing("a")),
            (r#"{"a":null}"#, NormalizeError::Missing("a")),
            (r#"{"a":"  "}"#, NormalizeError::Missing("a")),
            (r#"{"a":7}"#, NormalizeError::WrongType("a")),
            (r#"{"a":true}"#, NormalizeError::WrongType("a")),
            (r#"{"a":[1,{"x":2}]}"#, NormalizeError::WrongType("a")),
            (r#"{"a":{"x":[2]}}"#, NormalizeError::WrongType("a")),
        ] {
            assert_eq!(req(&doc(text).a, "a"), Err(expected), "{text}");
            assert_eq!(opt(&doc(text).a), None, "{text}");
        }
    }

    #[test]
    fn objects_are_read_as_their_type_and_other_types_are_not_objects() {
        let d = doc(r#"{"inner":{"b":"y","c":[1,2]}}"#);
        assert_eq!(d.inner.as_ref().and_then(Field::as_object).map(|i| opt(&i.b)), Some(Some("y")));
        assert_eq!(doc(r#"{"inner":"s"}"#).inner.as_ref().and_then(Field::as_object), None);
        assert_eq!(doc(r#"{"inner":[]}"#).inner.as_ref().and_then(Field::as_object), None);
    }

    #[test]
    fn times_are_rfc3339_or_none() {
        assert!(opt_time(&doc(r#"{"a":"2022-07-13T11:54:55.765Z"}"#).a).is_some());
        assert_eq!(opt_time(&doc(r#"{"a":"yesterday"}"#).a), None);
        assert_eq!(opt_time(&doc(r#"{"a":5}"#).a), None);
    }
}
