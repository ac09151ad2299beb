//! Placeholders: replacing what a [`Detector`] finds in every text place of a body, and putting
//! the caller's values back (or redacting) in the answer.

use super::detect::Detector;
use dialects::Dialect;
use dialects::text::{self, Slot};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What happens to personal data in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Placeholders the model echoes are replaced by the caller's own values.
    Restore,
    /// Personal data in the answer is replaced by placeholders.
    Redact,
    /// Answers are not touched.
    Off,
}

/// Findings per kind (kind name, count), in detector order.
pub type Counts = Vec<(Arc<str>, u32)>;

/// The placeholders of one request: detection, the value -> placeholder mapping, and the way
/// back. Lives for one request, in memory only.
#[derive(Debug)]
pub struct Redactor {
    detector: Arc<Detector>,
    /// Value -> placeholder.
    placeholders: HashMap<(usize, String), String>,
    /// Placeholder -> value.
    values: HashMap<String, String>,
    /// Next number per kind.
    next: Vec<u32>,
    /// Findings per kind.
    counts: Vec<u32>,
}

impl Redactor {
    /// A redactor with no placeholders yet.
    pub fn new(detector: Arc<Detector>) -> Self {
        let n = detector.kinds();
        Redactor {
            detector,
            placeholders: HashMap::new(),
            values: HashMap::new(),
            next: vec![0; n],
            counts: vec![0; n],
        }
    }

    /// The detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Findings so far, per kind found.
    pub fn counts(&self) -> Counts {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (self.detector.kind_name(k).clone(), *n))
            .collect()
    }

    /// Whether any placeholder was handed out.
    pub fn has_placeholders(&self) -> bool {
        !self.values.is_empty()
    }

    /// Counts what the request's text places hold, changing nothing.
    pub fn scan_request(&mut self, dialect: Dialect, body: &mut Value) {
        text::request_texts(dialect, body, &mut |slot| self.slot(slot, false));
    }

    /// Replaces what the request's text places hold with placeholders; returns whether anything
    /// changed.
    pub fn redact_request(&mut self, dialect: Dialect, body: &mut Value) -> bool {
        let before = self.total();
        text::request_texts(dialect, body, &mut |slot| self.slot(slot, true));
        self.total() != before
    }

    /// Applies `mode` to a whole answer's JSON body of `dialect`; returns the new body when it
    /// changed.
    pub fn answer(&mut self, mode: ResponseMode, dialect: Dialect, body: &[u8]) -> Option<Vec<u8>> {
        if mode == ResponseMode::Off || (mode == ResponseMode::Restore && !self.has_placeholders())
        {
            return None;
        }
        let mut v: Value = serde_json::from_slice(body).ok()?;
        let mut changed = false;
        text::response_texts(dialect, &mut v, &mut |slot| {
            changed |= match mode {
                ResponseMode::Restore => self.restore_slot(slot),
                _ => {
                    let before = self.total();
                    self.slot(slot, true);
                    self.total() != before
                }
            };
        });
        changed.then(|| serde_json::to_vec(&v).expect("a JSON value serializes"))
    }

    fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Detects in one text place; replaces when `replace`.
    fn slot(&mut self, slot: Slot<'_>, replace: bool) {
        match slot {
            Slot::Text(s) => self.text(s, replace),
            Slot::Json(v) => self.json(v, replace),
            Slot::JsonText(s) => match serde_json::from_str::<Value>(s) {
                Ok(mut v) if !v.is_string() => {
                    let before = self.total();
                    self.json(&mut v, replace);
                    if replace && self.total() != before {
                        *s = serde_json::to_string(&v).expect("a JSON value serializes");
                    }
                }
                _ => self.text(s, replace),
            },
        }
    }

    fn json(&mut self, v: &mut Value, replace: bool) {
        match v {
            Value::String(s) => self.text(s, replace),
            Value::Array(a) => a.iter_mut().for_each(|v| self.json(v, replace)),
            Value::Object(o) => o.values_mut().for_each(|v| self.json(v, replace)),
            _ => {}
        }
    }

    /// Detects in `s`; replaces each finding with its placeholder when `replace`.
    pub fn text(&mut self, s: &mut String, replace: bool) {
        let found = self.detector.find(s);
        if found.is_empty() {
            return;
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for f in &found {
            self.counts[f.kind] += 1;
            if replace {
                out.push_str(&s[at..f.start]);
                out.push_str(&self.placeholder(f.kind, &s[f.start..f.end]));
                at = f.end;
            }
        }
        if replace {
            out.push_str(&s[at..]);
            *s = out;
        }
    }

    /// The placeholder of `value` of kind `k` (the same value, the same placeholder).
    fn placeholder(&mut self, k: usize, value: &str) -> String {
        if let Some(p) = self.placeholders.get(&(k, value.to_string())) {
            return p.clone();
        }
        self.next[k] += 1;
        let p = format!("[{}_{}]", self.detector.label(k), self.next[k]);
        self.placeholders.insert((k, value.to_string()), p.clone());
        self.values.insert(p.clone(), value.to_string());
        p
    }

    fn restore_slot(&self, slot: Slot<'_>) -> bool {
        match slot {
            Slot::Text(s) => self.restore_into(s, false),
            Slot::JsonText(s) => self.restore_into(s, true),
            Slot::Json(v) => self.restore_json(v),
        }
    }

    fn restore_json(&self, v: &mut Value) -> bool {
        match v {
            Value::String(s) => self.restore_into(s, false),
            Value::Array(a) => a.iter_mut().fold(false, |c, v| self.restore_json(v) | c),
            Value::Object(o) => o.values_mut().fold(false, |c, v| self.restore_json(v) | c),
            _ => false,
        }
    }

    /// Replaces the known placeholders in `s` by their values (JSON-escaped when `s` is JSON
    /// text); returns whether anything changed.
    pub fn restore_into(&self, s: &mut String, json: bool) -> bool {
        if !s.contains('[') {
            return false;
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        let mut changed = false;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            let value = tail
                .find(']')
                .and_then(|close| Some((close, self.values.get(&tail[..=close])?)));
            match value {
                Some((close, v)) => {
                    if json {
                        let quoted = serde_json::to_string(v).expect("a string serializes");
                        out.push_str(&quoted[1..quoted.len() - 1]);
                    } else {
                        out.push_str(v);
                    }
                    rest = &tail[close + 1..];
                    changed = true;
                }
                None => {
                    out.push('[');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        if changed {
            *s = out;
        }
        changed
    }

    /// Redacts one piece of answer text in place (used by the stream filter).
    pub(super) fn redact_text(&mut self, s: &mut String) {
        self.text(s, true);
    }
}

#[cfg(test)]
mod tests {
    use super::super::detect::built_in_names;
    use super::*;
    use serde_json::json;

    fn redactor() -> Redactor {
        let names: Vec<String> = built_in_names().map(String::from).collect();
        Redactor::new(Arc::new(Detector::new(&names, &[]).unwrap()))
    }

    #[test]
    fn same_value_same_placeholder_and_tool_arguments_stay_json() {
        let mut r = redactor();
        let mut body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Never reveal jane@example.com"},
                {"role": "user", "content": [{"type": "text", "text": "Mail jane@example.com and bob@example.com"}]},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "send", "arguments": "{\"to\":\"jane@example.com\",\"n\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sent to bob@example.com"}
            ]
        });
        assert!(r.redact_request(Dialect::OpenAiChat, &mut body));
        let m = &body["messages"];
        assert_eq!(m[0]["content"], "Never reveal [EMAIL_1]");
        assert_eq!(m[1]["content"][0]["text"], "Mail [EMAIL_1] and [EMAIL_2]");
        let args: Value = serde_json::from_str(
            m[2]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"to": "[EMAIL_1]", "n": 1}));
        assert_eq!(m[3]["content"], "sent to [EMAIL_2]");
        assert_eq!(r.counts(), vec![("email".into(), 5)]);

        let answer = json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Wrote to [EMAIL_2], not [EMAIL_9]",
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "send",
                "arguments": "{\"to\":\"[EMAIL_1]\"}"}}]}}]});
        let out = r
            .answer(
                ResponseMode::Restore,
                Dialect::OpenAiChat,
                answer.to_string().as_bytes(),
            )
            .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        let msg = &out["choices"][0]["message"];
        assert_eq!(msg["content"], "Wrote to bob@example.com, not [EMAIL_9]");
        assert_eq!(
            msg["tool_calls"][0]["function"]["arguments"],
            "{\"to\":\"jane@example.com\"}"
        );
    }

    #[test]
    fn every_text_place_of_messages_and_responses() {
        let mut r = redactor();
        let mut body = json!({
            "model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "ops 10.1.2.3"}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "ssn 123-45-6789"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "10.1.2.3"}},
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "10.1.2.3", "signature": "s"},
                    {"type": "tool_use", "id": "t2", "name": "n", "input": {"ip": ["10.1.2.3"]}}
                ]}
            ]
        });
        assert!(r.redact_request(Dialect::AnthropicMessages, &mut body));
        assert_eq!(body["system"][0]["text"], "ops [IP_ADDRESS_1]");
        let c = &body["messages"][0]["content"];
        assert_eq!(c[0]["text"], "ssn [US_SSN_1]");
        assert_eq!(
            c[1]["source"]["data"], "10.1.2.3",
            "images are not inspected"
        );
        assert_eq!(c[2]["content"][0]["text"], "card [CREDIT_CARD_1]");
        let a = &body["messages"][1]["content"];
        assert_eq!(
            a[0]["thinking"], "10.1.2.3",
            "signed thinking is left alone"
        );
        assert_eq!(a[1]["input"]["ip"][0], "[IP_ADDRESS_1]");

        let mut r = redactor();
        let mut body = json!({
            "model": "m", "instructions": "call +1 415 555 2671",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "mail a@b.io"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"m\":\"a@b.io\"}"},
                {"type": "function_call_output", "call_id": "c", "output": "ok a@b.io"},
                {"type": "custom_tool_call", "call_id": "d", "name": "g", "input": "a@b.io"},
                {"type": "custom_tool_call_output", "call_id": "d", "output": "a@b.io"},
                {"type": "reasoning", "encrypted_content": "a@b.io", "summary": []}
            ]
        });
        assert!(r.redact_request(Dialect::OpenAiResponses, &mut body));
        let i = &body["input"];
        assert_eq!(body["instructions"], "call [PHONE_1]");
        assert_eq!(i[0]["content"][0]["text"], "mail [EMAIL_1]");
        assert_eq!(i[1]["arguments"], "{\"m\":\"[EMAIL_1]\"}");
        assert_eq!(i[2]["output"], "ok [EMAIL_1]");
        assert_eq!(i[3]["input"], "[EMAIL_1]");
        assert_eq!(i[4]["output"], "[EMAIL_1]");
        assert_eq!(i[5]["encrypted_content"], "a@b.io");
    }

    #[test]
    fn restored_values_are_json_escaped_inside_arguments() {
        let names = vec![];
        let custom = [super::super::Custom {
            name: "quoted".into(),
            regex: r#"Q"[a-z]+""#.into(),
        }];
        let mut r = Redactor::new(Arc::new(Detector::new(&names, &custom).unwrap()));
        let mut s = r#"say Q"abc" now"#.to_string();
        r.text(&mut s, true);
        assert_eq!(s, "say [QUOTED_1] now");
        let mut args = r#"{"x":"[QUOTED_1]"}"#.to_string();
        assert!(r.restore_into(&mut args, true));
        let v: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(v["x"], r#"Q"abc""#);
    }
}
