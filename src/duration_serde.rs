//! Durations as humantime strings in settings: "6s", "1500ms", "1m30s".
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error};

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
            D::Error::custom(format!(
                "{t:?} is not a duration such as \"6s\" or \"1500ms\" ({e})"
            ))
        }),
        Raw::Number(n) => Err(D::Error::custom(format!(
            "{n} has no unit; write a duration such as \"{n}s\""
        ))),
    }
}
