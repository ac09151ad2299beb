//! Bounds on caller-controlled text that reaches a usage record, a log line or an error body.
//! Longer values are cut (at a character boundary, marked with `…`), never stored whole.

use std::borrow::Cow;

/// Longest request id or parent id kept (longer ones are replaced or dropped).
pub const MAX_ID_LEN: usize = 128;
/// Longest requested model (group) name recorded, logged or echoed.
pub const MAX_NAME_LEN: usize = 256;
/// Longest request path echoed in an error.
pub const MAX_PATH_LEN: usize = 256;

/// `s` cut to at most `max` bytes at a character boundary, with `…` marking a cut.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// An id (request id, parent router name) if it is printable ASCII of at most
/// [`MAX_ID_LEN`] characters; anything else is not an id the router keeps.
pub fn id(s: &str) -> Option<&str> {
    let ok = !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_at_char_boundaries() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééé", 3), "é…");
        assert_eq!(
            clip(&"x".repeat(100_000), MAX_NAME_LEN).len(),
            MAX_NAME_LEN + 3
        );
        assert_eq!(id("good-id_1.2"), Some("good-id_1.2"));
        assert_eq!(id("has space"), None);
        assert_eq!(id(&"a".repeat(129)), None);
    }
}
