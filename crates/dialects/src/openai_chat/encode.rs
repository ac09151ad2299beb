//! Rewriting a Chat request for the upstream by splicing bytes: only `model` and, for streams,
//! `stream_options.include_usage` change; everything else stays byte-for-byte.

use super::decode::Inspected;
use serde_json::{Map, Value};

/// Rewrites `body` (the bytes `inspected` came from) for an upstream model.
pub fn rewrite_request(body: &[u8], inspected: &Inspected, upstream_model: &str) -> Vec<u8> {
    let model = serde_json::to_string(upstream_model).expect("a string serialises");
    let mut edits: Vec<(std::ops::Range<usize>, String)> =
        vec![(inspected.model_span.clone(), model)];
    if inspected.summary.stream && !inspected.include_usage {
        match &inspected.stream_options {
            Some((span, text)) => {
                let mut opts = serde_json::from_str::<Map<String, Value>>(text).unwrap_or_default();
                opts.insert("include_usage".into(), Value::Bool(true));
                let opts = serde_json::to_string(&opts).expect("a map serialises");
                edits.push((span.clone(), opts));
            }
            None => {
                let at = inspected.object_start + 1;
                edits.push((at..at, r#""stream_options":{"include_usage":true},"#.into()));
            }
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let extra: usize = edits.iter().map(|(_, s)| s.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut at = 0;
    for (span, text) in edits {
        out.extend_from_slice(&body[at..span.start]);
        out.extend_from_slice(text.as_bytes());
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai_chat::decode::inspect_request;

    fn rewrite(body: &str, model: &str) -> Value {
        let i = inspect_request(body.as_bytes()).unwrap();
        serde_json::from_slice(&rewrite_request(body.as_bytes(), &i, model)).unwrap()
    }

    #[test]
    fn rewrites_model_only_and_keeps_unknown_fields() {
        let body = r#"{"model":"coder","messages":[{"role":"user","content":"hi"}],"x_vendor":{"a":[1,2]},"temperature":0.25}"#;
        let i = inspect_request(body.as_bytes()).unwrap();
        let out = rewrite_request(body.as_bytes(), &i, "gpt-5");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            body.replace("\"coder\"", "\"gpt-5\"")
        );
    }

    #[test]
    fn forces_include_usage_on_streams() {
        let v = rewrite(
            r#"{"model":"c","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            "m",
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
        let v = rewrite(
            r#"{"stream":true,"stream_options":{"x":1},"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
        );
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        assert_eq!(v["model"], "m");
        let v = rewrite(
            r#"{"stream":true,"stream_options":null,"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn leaves_non_streams_alone() {
        let v = rewrite(
            r#"{"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
        );
        assert!(v.get("stream_options").is_none());
    }
}
