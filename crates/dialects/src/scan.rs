//! The borrowed scan every dialect's passthrough inspection shares: what an inspection yields
//! ([`Inspected`]), what a tapped stream event is ([`Tap`]), and the helpers that read a body in
//! one pass (spans of raw values, text statistics, the body-shape check). A leaf: it knows no
//! dialect, and every dialect module may use it.

use crate::canonical::{RequestSummary, Usage};
use crate::{DecodeError, Dialect};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;

/// A request inspected for passthrough: its summary and where the fields to rewrite sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The dialect of the body.
    pub dialect: Dialect,
    /// The canonical summary.
    pub summary: RequestSummary,
    /// Byte span of the `model` value (the JSON string, quotes included).
    pub model_span: Range<usize>,
    /// Byte span and text of the `stream_options` value, when present (Chat only).
    pub stream_options: Option<(Range<usize>, String)>,
    /// The caller asked for `stream_options.include_usage: true` (Chat only).
    pub include_usage: bool,
    /// Offset of the body's opening `{`.
    pub object_start: usize,
    /// Byte span of the output cap (`max_tokens` / `max_completion_tokens`), when present.
    pub max_tokens_span: Option<Range<usize>>,
}

/// What one SSE event of a passed-through stream is, as far as the router cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    /// The stream's proper end (`[DONE]`, `message_stop`).
    Done,
    /// The upstream reported an error mid-stream.
    Error,
    /// Usage the router forced on (Chat's final usage chunk): drop it if the caller did not ask.
    ForcedUsage(Usage),
    /// Usage the caller gets anyway.
    Usage(Usage),
    /// The stream's end, carrying the final usage (Responses' `response.completed`).
    DoneWithUsage(Usage),
    /// Anything else.
    Other,
}

/// Checks that a body is one JSON object (its first non-blank byte is `{`) before any typed
/// parse: serde's derived structs also accept arrays, read positionally, which must never be
/// taken for a request. Returns the offset of the opening brace.
pub(crate) fn object_start(body: &[u8]) -> Result<usize, DecodeError> {
    let Some(at) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(DecodeError::EmptyBody);
    };
    let found = match body[at] {
        b'{' => return Ok(at),
        b'[' => "an array",
        b'"' => "a string",
        b'n' => "null",
        b't' | b'f' => "a boolean",
        b'-' | b'0'..=b'9' => "a number",
        _ => {
            return Err(serde_json::from_slice::<serde::de::IgnoredAny>(body)
                .err()
                .map_or(
                    DecodeError::NotAnObject {
                        found: "something else",
                    },
                    DecodeError::from,
                ));
        }
    };
    Err(DecodeError::NotAnObject { found })
}

/// The `model` string from its raw value, validated.
pub(crate) fn model_of(raw: Option<&serde_json::value::RawValue>) -> Result<String, DecodeError> {
    let raw = raw.ok_or(DecodeError::MissingField { field: "model" })?;
    let group: String = serde_json::from_str(raw.get()).map_err(|_| DecodeError::InvalidField {
        field: "model",
        reason: "must be a string",
    })?;
    if group.is_empty() {
        return Err(DecodeError::InvalidField {
            field: "model",
            reason: "must not be empty",
        });
    }
    Ok(group)
}

/// A token count from its raw value: absent or `null` is none; a non-negative integer is taken
/// (saturating at `u32::MAX`); anything else is refused, naming `field`.
pub(crate) fn raw_u32(
    raw: Option<&serde_json::value::RawValue>,
    field: &'static str,
) -> Result<Option<u32>, DecodeError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    let text = raw.get();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n = text.parse::<u64>().unwrap_or(u64::MAX);
        return Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)));
    }
    Err(DecodeError::InvalidField {
        field,
        reason: "must be a non-negative integer",
    })
}

/// Deserializes a field as its raw value even when it is `null` (so `null` keeps its span).
pub(crate) fn always_some<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de serde_json::value::RawValue>, D::Error> {
    <&serde_json::value::RawValue>::deserialize(d).map(Some)
}

/// Byte span of a borrowed raw value inside `body`.
pub(crate) fn span_of(body: &[u8], raw: &serde_json::value::RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.get().len()
}

/// Text size and image count of any JSON value, gathered while parsing it (no allocation):
/// string lengths count as text except image payloads (`data`, and `url`s that are `data:`
/// URLs); objects whose `type` is an image type count as images.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) text_bytes: usize,
    pub(crate) images: usize,
    pub(crate) items: usize,
}

impl Stats {
    /// Adds another value's counts.
    pub(crate) fn add(&mut self, other: &Stats) {
        self.text_bytes += other.text_bytes;
        self.images += other.images;
        self.items += other.items;
    }

    /// The estimate with the tools' definitions (about four bytes per token) added.
    pub(crate) fn estimate_with_tools(&self, tools: &[&serde_json::value::RawValue]) -> u32 {
        let tools_bytes: usize = tools.iter().map(|t| t.get().len()).sum();
        self.estimate_tokens()
            .saturating_add(u32::try_from(tools_bytes / 4).unwrap_or(u32::MAX))
    }

    /// About four bytes of text per token, a few tokens per item, ~85 per image.
    pub(crate) fn estimate_tokens(&self) -> u32 {
        let t = self.text_bytes / 4 + self.items * 4 + self.images * 85;
        u32::try_from(t).unwrap_or(u32::MAX)
    }
}

impl<'de> serde::Deserialize<'de> for Stats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut s = Stats::default();
        Walk {
            stats: &mut s,
            key: Key::Other,
        }
        .deserialize(d)?;
        Ok(s)
    }
}

/// What a dialect accepts as a message: its roles, and whether content blocks must be objects
/// with a string `type`.
#[derive(Debug)]
pub(crate) struct MessageRules {
    /// Accepted values of `role`.
    pub(crate) roles: &'static [&'static str],
    /// Content arrays hold typed blocks (Anthropic), not just any values.
    pub(crate) typed_blocks: bool,
}

/// A `messages` array walked once: its text statistics and how many messages it has, each
/// checked against a dialect's [`MessageRules`] (a role it knows, content of an accepted shape).
#[derive(Debug, Default)]
pub(crate) struct Messages {
    pub(crate) stats: Stats,
    pub(crate) count: usize,
}

impl Messages {
    /// Deserializes and checks a `messages` array (for `deserialize_with`).
    pub(crate) fn read<'de, D: Deserializer<'de>>(
        d: D,
        rules: &'static MessageRules,
    ) -> Result<Option<Messages>, D::Error> {
        let mut out = Messages::default();
        d.deserialize_seq(MessagesVisitor {
            rules,
            out: &mut out,
        })?;
        Ok(Some(out))
    }
}

/// A content-like value (a string, null, or an array of parts — typed blocks when `rules` say
/// so) walked once for its statistics; anything else is refused.
pub(crate) fn content_stats<'de, D: Deserializer<'de>>(
    d: D,
    rules: &'static MessageRules,
) -> Result<Option<Stats>, D::Error> {
    let mut stats = Stats::default();
    ContentSeed {
        rules,
        stats: &mut stats,
    }
    .deserialize(d)?;
    Ok(Some(stats))
}

struct MessagesVisitor<'s> {
    rules: &'static MessageRules,
    out: &'s mut Messages,
}

impl<'de> Visitor<'de> for MessagesVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(MessageSeed {
                rules: self.rules,
                stats: &mut self.out.stats,
            })?
            .is_some()
        {
            self.out.count += 1;
        }
        Ok(())
    }
}

struct MessageSeed<'s> {
    rules: &'static MessageRules,
    stats: &'s mut Stats,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.stats.items += 1;
        let mut role = false;
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match k.as_ref() {
                "role" => {
                    let r = map.next_value::<std::borrow::Cow<'de, str>>()?;
                    if !self.rules.roles.contains(&r.as_ref()) {
                        return Err(de::Error::custom(format_args!(
                            "a message role must be one of {}",
                            self.rules.roles.join(", ")
                        )));
                    }
                    role = true;
                }
                "content" => map.next_value_seed(ContentSeed {
                    rules: self.rules,
                    stats: &mut *self.stats,
                })?,
                other => map.next_value_seed(Walk {
                    stats: &mut *self.stats,
                    key: key_of(other),
                })?,
            }
        }
        if !role {
            return Err(de::Error::custom("each message needs a role"));
        }
        Ok(())
    }
}

struct ContentSeed<'s> {
    rules: &'static MessageRules,
    stats: &'s mut Stats,
}

impl<'de> DeserializeSeed<'de> for ContentSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContentSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content: a string or an array of content parts")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.stats.text_bytes += v.len();
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.rules.typed_blocks {
            return Walk {
                stats: self.stats,
                key: Key::Other,
            }
            .visit_seq(seq);
        }
        while seq
            .next_element_seed(BlockSeed {
                stats: &mut *self.stats,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// A content block that must be an object with a string `type`.
struct BlockSeed<'s> {
    stats: &'s mut Stats,
}

impl<'de> DeserializeSeed<'de> for BlockSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BlockSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a content block object with a type")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.stats.items += 1;
        let mut typed = false;
        while let Some(k) = map.next_key::<KeyName>()? {
            if k.0 == Key::Type {
                let t = map.next_value::<std::borrow::Cow<'de, str>>()?;
                if matches!(t.as_ref(), "image" | "image_url" | "input_image") {
                    self.stats.images += 1;
                }
                typed = true;
            } else {
                map.next_value_seed(Walk {
                    stats: &mut *self.stats,
                    key: k.0,
                })?;
            }
        }
        if !typed {
            return Err(de::Error::custom("each content block needs a type"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Key {
    Type,
    Payload,
    Url,
    Other,
}

struct Walk<'s> {
    stats: &'s mut Stats,
    key: Key,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.key {
            Key::Type => {
                if matches!(v, "image" | "image_url" | "input_image") {
                    self.stats.images += 1;
                }
            }
            Key::Payload => {}
            Key::Url if v.starts_with("data:") => {}
            _ => self.stats.text_bytes += v.len(),
        }
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Walk {
                stats: &mut *self.stats,
                key: Key::Other,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.stats.items += 1;
        while let Some(k) = map.next_key::<KeyName>()? {
            map.next_value_seed(Walk {
                stats: &mut *self.stats,
                key: k.0,
            })?;
        }
        Ok(())
    }
}

struct KeyName(Key);

fn key_of(name: &str) -> Key {
    match name {
        "type" => Key::Type,
        "data" => Key::Payload,
        "url" => Key::Url,
        _ => Key::Other,
    }
}

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(key_of(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_skip_image_payloads() {
        let s: Stats = serde_json::from_str(
            r#"[{"role":"user","content":[{"type":"text","text":"hello"},
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"QUFBQUFBQUFBQUFBQUFB"}},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]"#,
        )
        .unwrap();
        assert_eq!(s.images, 2);
        assert!(s.text_bytes < 60, "{s:?}");
    }
}
