//! JSON log lines written straight into the output buffer: one object per event with the
//! timestamp, level, message and fields, the target, and the enclosing spans' fields under
//! `span`. tracing-subscriber's own JSON format builds a map of values per event and re-parses
//! span fields for every line, which costs more than proxying the request the line is about.

use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format: one JSON object per line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonLines;

/// The span field format: `"name":value` pairs, comma-separated (embedded by [`JsonLines`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonFields;

/// Writes `s` as a JSON string.
fn json_str(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        w.write_str(s)?;
        return w.write_char('"');
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if esc.is_empty() {
            write!(w, "\\u{:04x}", b)?;
        } else {
            w.write_str(esc)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])?;
    w.write_char('"')
}

/// Writes each field as `"name":value`, a comma before all but the first.
struct Fields<'a, W: Write> {
    w: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: Write> Fields<'_, W> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        if !self.first {
            self.w.write_char(',')?;
        }
        self.first = false;
        json_str(self.w, field.name())?;
        self.w.write_char(':')
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| value(self.w));
        }
    }
}

impl<W: Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |w| {
            if value.is_finite() {
                write!(w, "{value}")
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.put(field, |w| json_str(w, &text));
    }
}

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut v = Fields {
            w: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut v = Fields {
            first: current.fields.is_empty(),
            w: &mut current.fields,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\",", event.metadata().level())?;
        let mut v = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        w.write_str(",\"target\":")?;
        json_str(&mut w, event.metadata().target())?;
        if let Some(scope) = ctx.event_scope() {
            let mut opened = false;
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<FormattedFields<N>>() else {
                    continue;
                };
                if fields.fields.is_empty() {
                    continue;
                }
                w.write_str(if opened { "," } else { ",\"span\":{" })?;
                opened = true;
                w.write_str(&fields.fields)?;
            }
            if opened {
                w.write_char('}')?;
            }
        }
        w.write_str("}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_a_json_object_with_fields_and_span() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r-1");
            let _in = span.enter();
            tracing::info!(
                caller = "alice",
                status = 200u64,
                latency_ms = 0.849,
                ok = true,
                delta = -3i64,
                note = %"quote \" backslash \\ newline \n tab \t bell \u{7}",
                "request finished"
            );
        });
        tracing::subscriber::with_default(
            tracing_subscriber::fmt()
                .with_writer({
                    let out = buf.clone();
                    move || out.clone()
                })
                .fmt_fields(JsonFields)
                .event_format(JsonLines)
                .finish(),
            || tracing::warn!("outside any span"),
        );
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2);
        let l = &lines[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["message"], "request finished");
        assert_eq!(l["caller"], "alice");
        assert_eq!(l["status"], 200);
        assert_eq!(l["latency_ms"], 0.849);
        assert_eq!(l["ok"], true);
        assert_eq!(l["delta"], -3);
        assert_eq!(
            l["note"],
            "quote \" backslash \\ newline \n tab \t bell \u{7}"
        );
        assert_eq!(l["span"]["request_id"], "r-1");
        assert!(l["target"].as_str().unwrap().starts_with("smart_router"));
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["message"], "outside any span");
        assert!(lines[1].get("span").is_none());
    }
}
