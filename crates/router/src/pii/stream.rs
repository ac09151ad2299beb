//! The filter on a streamed answer's canonical events: text and tool-argument deltas pass
//! through [`Redactor`] with a bounded look-behind, so a placeholder or a value split across
//! deltas is still caught. With `restore`, only an unfinished `[...` (at most
//! [`MAX_PLACEHOLDER_BYTES`]) is held back; every other delta goes out at once. With `redact`,
//! the trailing run of characters that could still grow into a value (letters, digits, `@._%+-:/()=`
//! and spaces between digits; at most [`LOOK_BEHIND_BYTES`]) is held, and an unfinished PEM
//! block up to [`PEM_BYTES`]. Anything else (a tool call starting, the finish) releases what is
//! held first.

use super::redact::{Redactor, ResponseMode};
use dialects::canonical::Event;

/// Most bytes of answer text held back while they could still be part of a value (redact).
pub const LOOK_BEHIND_BYTES: usize = 256;
/// Longest placeholder held back while unfinished (restore).
pub const MAX_PLACEHOLDER_BYTES: usize = 64;
/// Most bytes of an unfinished PEM private key held back (redact).
pub const PEM_BYTES: usize = 8192;

/// Held text of one stream: the answer text, and each tool call's arguments.
#[derive(Debug)]
pub struct StreamFilter {
    redactor: Redactor,
    mode: ResponseMode,
    text: String,
    args: Vec<(usize, String)>,
}

impl StreamFilter {
    /// A filter applying `mode` with the request's placeholders.
    pub fn new(redactor: Redactor, mode: ResponseMode) -> Self {
        StreamFilter {
            redactor,
            mode,
            text: String::new(),
            args: Vec::new(),
        }
    }

    /// Whether the filter changes anything (restore with no placeholder does not).
    pub fn active(&self) -> bool {
        match self.mode {
            ResponseMode::Restore => self.redactor.has_placeholders(),
            ResponseMode::Redact => true,
            ResponseMode::Off => false,
        }
    }

    /// Passes one event: what may go out now is pushed to `out`.
    pub fn filter(&mut self, ev: Event, out: &mut Vec<Event>) {
        match ev {
            Event::TextDelta(s) => {
                self.text.push_str(&s);
                let mut held = std::mem::take(&mut self.text);
                let emit = self.release(&mut held, false);
                self.text = held;
                if !emit.is_empty() {
                    out.push(Event::TextDelta(emit));
                }
            }
            Event::ToolCallArgs { index, delta } => {
                let at = match self.args.iter().position(|(i, _)| *i == index) {
                    Some(at) => at,
                    None => {
                        self.args.push((index, String::new()));
                        self.args.len() - 1
                    }
                };
                let mut held = std::mem::take(&mut self.args[at].1);
                held.push_str(&delta);
                let emit = self.release(&mut held, true);
                self.args[at].1 = held;
                if !emit.is_empty() {
                    out.push(Event::ToolCallArgs { index, delta: emit });
                }
            }
            other => {
                self.flush(out);
                out.push(other);
            }
        }
    }

    /// Releases everything held (the answer ends, or a new part begins).
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        if !self.text.is_empty() {
            let mut t = std::mem::take(&mut self.text);
            self.finish_piece(&mut t, false);
            out.push(Event::TextDelta(t));
        }
        for (index, mut delta) in std::mem::take(&mut self.args) {
            if !delta.is_empty() {
                self.finish_piece(&mut delta, true);
                out.push(Event::ToolCallArgs { index, delta });
            }
        }
    }

    /// Splits `held` into what goes out now (returned, filtered) and what stays.
    fn release(&mut self, held: &mut String, json: bool) -> String {
        let cut = match self.mode {
            ResponseMode::Off => held.len(),
            ResponseMode::Restore => restore_cut(held),
            ResponseMode::Redact => {
                let mut cut = redact_cut(held);
                for f in self.redactor.detector().find(held) {
                    if f.start < cut && f.end > cut {
                        cut = f.start;
                    }
                }
                cut
            }
        };
        let rest = held.split_off(cut);
        let mut emit = std::mem::replace(held, rest);
        self.finish_piece(&mut emit, json);
        emit
    }

    fn finish_piece(&mut self, s: &mut String, json: bool) {
        match self.mode {
            ResponseMode::Off => {}
            ResponseMode::Restore => {
                self.redactor.restore_into(s, json);
            }
            ResponseMode::Redact => self.redactor.redact_text(s),
        }
    }
}

/// Restore: hold an unfinished placeholder (`[` with no `]` after it, not too long).
fn restore_cut(s: &str) -> usize {
    match s.rfind('[') {
        Some(open) if !s[open..].contains(']') && s.len() - open <= MAX_PLACEHOLDER_BYTES => open,
        _ => s.len(),
    }
}

/// Redact: hold the trailing run that could still grow into a value, and an unfinished PEM
/// block.
fn redact_cut(s: &str) -> usize {
    if let Some(p) = s.rfind("-----BEGIN") {
        if !s[p..].contains("-----END") && s.len() - p <= PEM_BYTES {
            return p;
        }
    }
    let b = s.as_bytes();
    let run = |c: u8| c.is_ascii_alphanumeric() || b"@._%+-:/()=".contains(&c);
    let mut cut = b.len();
    while cut > 0 && b.len() - cut < LOOK_BEHIND_BYTES {
        let c = b[cut - 1];
        let space_in_number = c == b' '
            && (cut >= 2 && b[cut - 2].is_ascii_digit()
                || b.get(cut).is_some_and(u8::is_ascii_digit));
        if run(c) || space_in_number {
            cut -= 1;
        } else {
            break;
        }
    }
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::super::detect::{Detector, built_in_names};
    use super::*;
    use std::sync::Arc;

    fn redactor() -> Redactor {
        let names: Vec<String> = built_in_names().map(String::from).collect();
        Redactor::new(Arc::new(Detector::new(&names, &[]).unwrap()))
    }

    fn run(filter: &mut StreamFilter, deltas: &[&str]) -> (String, usize) {
        let mut out = Vec::new();
        for d in deltas {
            filter.filter(Event::TextDelta(d.to_string()), &mut out);
        }
        let before_finish = out.len();
        filter.filter(
            Event::Finish {
                reason: dialects::canonical::FinishReason::Stop,
                stop_sequence: None,
            },
            &mut out,
        );
        let text = out
            .iter()
            .filter_map(|e| match e {
                Event::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        (text, before_finish)
    }

    /// Every split of `text` into two deltas.
    fn splits(text: &str) -> impl Iterator<Item = (&str, &str)> {
        (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .map(|i| text.split_at(i))
    }

    #[test]
    fn redacts_values_split_at_every_boundary() {
        let text = "Write to jane.doe@example.com or pay with 4111 1111 1111 1111, thanks.";
        for (a, b) in splits(text) {
            let mut f = StreamFilter::new(redactor(), ResponseMode::Redact);
            let (out, _) = run(&mut f, &[a, b]);
            assert_eq!(
                out, "Write to [EMAIL_1] or pay with [CREDIT_CARD_1], thanks.",
                "split {a:?} | {b:?}"
            );
        }
    }

    #[test]
    fn restores_placeholders_split_at_every_boundary() {
        let mut seed = redactor();
        let mut prompt = "mail jane@example.com card 4111 1111 1111 1111".to_string();
        seed.text(&mut prompt, true);
        assert_eq!(prompt, "mail [EMAIL_1] card [CREDIT_CARD_1]");
        let answer = "Sent [EMAIL_1] the receipt for [CREDIT_CARD_1] [sic].";
        for (a, b) in splits(answer) {
            let mut r = redactor();
            let mut p = "mail jane@example.com card 4111 1111 1111 1111".to_string();
            r.text(&mut p, true);
            let mut f = StreamFilter::new(r, ResponseMode::Restore);
            let (out, _) = run(&mut f, &[a, b]);
            assert_eq!(
                out, "Sent jane@example.com the receipt for 4111 1111 1111 1111 [sic].",
                "split {a:?} | {b:?}"
            );
        }
    }

    #[test]
    fn text_without_a_candidate_goes_out_at_once() {
        let mut r = redactor();
        let mut p = "jane@example.com".to_string();
        r.text(&mut p, true);
        let mut f = StreamFilter::new(r, ResponseMode::Restore);
        let mut out = Vec::new();
        f.filter(Event::TextDelta("Hello there, ".into()), &mut out);
        assert_eq!(out, vec![Event::TextDelta("Hello there, ".into())]);
        out.clear();
        f.filter(Event::TextDelta("see [EMA".into()), &mut out);
        assert_eq!(out, vec![Event::TextDelta("see ".into())]);
    }

    #[test]
    fn tool_arguments_are_restored_as_json() {
        let mut r = redactor();
        let mut p = "jane@example.com".to_string();
        r.text(&mut p, true);
        let mut f = StreamFilter::new(r, ResponseMode::Restore);
        let mut out = Vec::new();
        for d in ["{\"to\":\"[EM", "AIL_1]\"}"] {
            f.filter(
                Event::ToolCallArgs {
                    index: 0,
                    delta: d.into(),
                },
                &mut out,
            );
        }
        f.flush(&mut out);
        let args: String = out
            .iter()
            .filter_map(|e| match e {
                Event::ToolCallArgs { delta, .. } => Some(delta.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, "{\"to\":\"jane@example.com\"}");
    }
}
