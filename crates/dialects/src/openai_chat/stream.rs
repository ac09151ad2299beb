//! Tapping a Chat Completions stream without re-encoding it: each `data:` payload is classified
//! with a cheap byte search, and only payloads that carry usage are parsed.

use crate::canonical::Usage;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// What one `data:` payload of a Chat stream is, as far as the router cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// The `[DONE]` terminator.
    Done,
    /// An `{"error": ...}` payload sent by the upstream mid-stream.
    Error,
    /// The final usage chunk (`choices` empty); the caller may not have asked for it.
    UsageOnly(Usage),
    /// A chunk with choices that also carries usage.
    WithUsage(Usage),
    /// Any other chunk.
    Other,
}

#[derive(Deserialize)]
struct UsageChunkView {
    #[serde(default)]
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<super::Usage>,
}

/// Classifies one `data:` payload.
pub fn tap_chunk(data: &[u8]) -> ChunkKind {
    let data = data.trim_ascii();
    if data == b"[DONE]" {
        return ChunkKind::Done;
    }
    if data.starts_with(b"{\"error\"") {
        return ChunkKind::Error;
    }
    let Some(at) = memchr::memmem::find(data, b"\"usage\"") else {
        return ChunkKind::Other;
    };
    let rest = data[at + 7..].trim_ascii_start();
    let rest = rest.strip_prefix(b":").unwrap_or(rest).trim_ascii_start();
    if rest.first() != Some(&b'{') {
        return ChunkKind::Other;
    }
    match serde_json::from_slice::<UsageChunkView>(data) {
        Ok(UsageChunkView {
            choices,
            usage: Some(u),
        }) if choices.is_empty() => ChunkKind::UsageOnly(u.into()),
        Ok(UsageChunkView { usage: Some(u), .. }) => ChunkKind::WithUsage(u.into()),
        _ => ChunkKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_chunks() {
        assert_eq!(tap_chunk(b"[DONE]"), ChunkKind::Done);
        assert_eq!(tap_chunk(br#"{"error":{"message":"x"}}"#), ChunkKind::Error);
        assert_eq!(
            tap_chunk(
                br#"{"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#
            ),
            ChunkKind::Other
        );
        let k = tap_chunk(
            br#"{"id":"a","choices":[],"usage": {"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        );
        match k {
            ChunkKind::UsageOnly(u) => assert_eq!((u.input_tokens, u.output_tokens), (3, 2)),
            other => panic!("unexpected {other:?}"),
        }
        let k = tap_chunk(
            br#"{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        );
        assert!(matches!(k, ChunkKind::WithUsage(_)));
    }
}
