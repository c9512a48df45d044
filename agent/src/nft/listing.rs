//! Walks an `nft -j list` listing, `{"nftables": [{kind: body}, ...]}`, one
//! piece at a time. At 10,000 Services a table's listing is ~19 MB of JSON
//! and its dispatch map alone has 100,000 elements: as one
//! `serde_json::Value` tree the listing took several times its size, so
//! neither the listing nor any whole set or map is ever held here.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::NftError;

/// What is done with a listing, as it is read.
pub trait Reader {
    /// One element of a set or map. `head` holds the object's other
    /// fields (nft prints `elem` last; were it not, elements would be
    /// held back until the object is whole).
    fn element(&mut self, kind: &str, head: &Map<String, Value>, element: Value);

    /// An object, once read, without its elements.
    fn object(&mut self, kind: &str, obj: Map<String, Value>);
}

/// Feeds every object of the listing `de` reads to `reader`, in order.
pub fn read<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    reader: &mut impl Reader,
) -> Result<(), NftError> {
    let found = Root(reader)
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(NftError::Json)?;
    match found {
        true => Ok(()),
        false => Err(NftError::Malformed(
            "no top-level \"nftables\" array".into(),
        )),
    }
}

/// The top-level object; yields whether it held the `nftables` array.
struct Root<'a, V>(&'a mut V);

impl<'de, V: Reader> DeserializeSeed<'de> for Root<'_, V> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, V: Reader> Visitor<'de> for Root<'_, V> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an nft JSON listing")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "nftables" && !found {
                map.next_value_seed(List(&mut *self.0))?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The `nftables` array.
struct List<'a, V>(&'a mut V);

impl<'de, V: Reader> DeserializeSeed<'de> for List<'_, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, V: Reader> Visitor<'de> for List<'_, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the \"nftables\" array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Entry(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One `{kind: body}` of the array.
struct Entry<'a, V>(&'a mut V);

impl<'de, V: Reader> DeserializeSeed<'de> for Entry<'_, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, V: Reader> Visitor<'de> for Entry<'_, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {kind: body}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some(kind) = map.next_key::<String>()? {
            map.next_value_seed(Body {
                kind: &kind,
                reader: &mut *self.0,
            })?;
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// An object's body: its fields, elements handed over one by one.
struct Body<'a, V> {
    kind: &'a str,
    reader: &'a mut V,
}

impl<'de, V: Reader> DeserializeSeed<'de> for Body<'_, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, V: Reader> Visitor<'de> for Body<'_, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an nft object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut head = Map::new();
        let mut held = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key != "elem" {
                let value = map.next_value::<Value>()?;
                head.insert(key, value);
                continue;
            }
            let sink = match head.contains_key("name") && head.contains_key("table") {
                true => Sink::Reader(&mut *self.reader),
                false => Sink::Held(&mut held),
            };
            map.next_value_seed(Elements {
                kind: self.kind,
                head: &head,
                sink,
            })?;
        }
        for element in held {
            self.reader.element(self.kind, &head, element);
        }
        self.reader.object(self.kind, head);
        Ok(())
    }
}

/// Where elements go: to the reader, or held until the object is whole.
enum Sink<'a, V> {
    Reader(&'a mut V),
    Held(&'a mut Vec<Value>),
}

/// An `elem` array.
struct Elements<'a, V> {
    kind: &'a str,
    head: &'a Map<String, Value>,
    sink: Sink<'a, V>,
}

impl<'de, V: Reader> DeserializeSeed<'de> for Elements<'_, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, V: Reader> Visitor<'de> for Elements<'_, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an elem array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Elements { kind, head, sink } = self;
        match sink {
            Sink::Reader(reader) => {
                while let Some(element) = seq.next_element::<Value>()? {
                    reader.element(kind, head, element);
                }
            }
            Sink::Held(held) => {
                while let Some(element) = seq.next_element::<Value>()? {
                    held.push(element);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Writes down what it is given, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Reader for Log {
        fn element(&mut self, kind: &str, head: &Map<String, Value>, element: Value) {
            self.0
                .push(format!("{kind} {} elem {element}", head["name"]));
        }

        fn object(&mut self, kind: &str, obj: Map<String, Value>) {
            self.0.push(format!("{kind} {}", Value::Object(obj)));
        }
    }

    fn log(json: &str) -> Result<Vec<String>, NftError> {
        let mut log = Log::default();
        read(serde_json::Deserializer::from_str(json), &mut log)?;
        Ok(log.0)
    }

    #[test]
    fn hands_over_elements_then_the_object_without_them() {
        let json = r#"{"nftables": [{"metainfo": {"v": 1}},
            {"set": {"name": "s", "table": "t", "elem": [1, 2], "x": 0}}], "other": [1]}"#;
        assert_eq!(
            log(json).unwrap(),
            [
                r#"metainfo {"v":1}"#,
                r#"set "s" elem 1"#,
                r#"set "s" elem 2"#,
                r#"set {"name":"s","table":"t","x":0}"#,
            ]
        );
    }

    #[test]
    fn elements_before_the_name_are_held_until_the_object_is_whole() {
        let json = r#"{"nftables": [{"map": {"elem": [[1, 2]], "table": "t", "name": "m"}}]}"#;
        assert_eq!(
            log(json).unwrap(),
            [r#"map "m" elem [1,2]"#, r#"map {"name":"m","table":"t"}"#]
        );
    }

    #[test]
    fn rejects_what_is_not_a_listing() {
        assert!(matches!(log("{}"), Err(NftError::Malformed(_))));
        assert!(matches!(log("nope"), Err(NftError::Json(_))));
        assert!(matches!(
            log(r#"{"nftables": [{"set": {"name": "s"}}] "#),
            Err(NftError::Json(_))
        ));
    }
}
