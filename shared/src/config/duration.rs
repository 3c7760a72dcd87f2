//! Durations in configuration are human-readable strings: `"15m"`,
//! `"30s"`, `"250ms"`, `"1h 30m"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de};

/// Serializes a duration as `"15m"`.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Parses `"15m"`-style durations.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        de::Error::custom(format_args!(
            "invalid duration {text:?} ({e}); write it like \"30s\", \"15m\" or \"250ms\""
        ))
    })
}
