//! Anthropic Messages (`POST /v1/messages`): passthrough inspection, translation to and from the
//! canonical model (requests, responses, stream events), stream usage tap and error shape.

pub mod decode;
pub mod encode;
pub mod error;
pub mod stream;
pub(crate) mod text;
pub mod types;

/// Protocol headers a caller's Messages request carries that an Anthropic upstream should get.
pub const FORWARDED_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta"];

/// Tool-use ids Anthropic accepts: `^[a-zA-Z0-9_-]+$`. Others are mapped reversibly.
const ID_ESCAPE: &str = "srx_";

/// An id Anthropic accepts, derived reversibly from any id.
pub fn encode_tool_id(id: &str) -> String {
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid && !id.starts_with(ID_ESCAPE) {
        return id.to_string();
    }
    let mut out = String::with_capacity(ID_ESCAPE.len() + id.len() * 2);
    out.push_str(ID_ESCAPE);
    for b in id.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The original of an id made by [`encode_tool_id`].
pub fn decode_tool_id(id: &str) -> String {
    let Some(hex) = id.strip_prefix(ID_ESCAPE) else {
        return id.to_string();
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes
        .filter(|_| hex.len() % 2 == 0)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| id.to_string())
}

/// The session id inside Claude Code's `metadata.user_id` (a JSON string with `session_id`, or
/// the older `user_..._session_<uuid>` form).
pub fn session_from_user_id(user_id: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(user_id) {
        return v
            .get("session_id")
            .and_then(|s| s.as_str())
            .map(str::to_string);
    }
    user_id
        .rsplit_once("_session_")
        .map(|(_, s)| s.to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_ids() {
        assert_eq!(
            session_from_user_id(r#"{"device_id":"d","account_uuid":"","session_id":"abc-1"}"#)
                .as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            session_from_user_id("user_x_account__session_u-2").as_deref(),
            Some("u-2")
        );
        assert_eq!(session_from_user_id("plain"), None);
    }

    proptest! {
        #[test]
        fn tool_ids_round_trip_and_fit(id in "\\PC{1,30}") {
            let enc = encode_tool_id(&id);
            prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            prop_assert_eq!(decode_tool_id(&enc), id);
        }
    }
}
