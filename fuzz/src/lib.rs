//! The fuzz targets' bodies, one function per target, each with its oracle: no panic anywhere,
//! and what the router would send on is well-formed (a spliced passthrough body still parses
//! with the new model; a translation decodes again in its target dialect; SSE framing does not
//! depend on how the bytes were chunked). `src/bin/*.rs` feed them AFL's inputs.

use bytes::{Bytes, BytesMut};
use dialects::canonical::{EncodeOptions, Event};
use dialects::translate::{self, AnswerContext, StreamDecoder, StreamEncoder};
use dialects::{Dialect, passthrough, sse};

/// Every dialect.
pub const DIALECTS: [Dialect; 3] = [
    Dialect::OpenAiChat,
    Dialect::AnthropicMessages,
    Dialect::OpenAiResponses,
];

fn others(d: Dialect) -> impl Iterator<Item = Dialect> {
    DIALECTS.into_iter().filter(move |o| *o != d)
}

fn answer_context() -> AnswerContext {
    AnswerContext {
        model: "group".into(),
        created: 1,
        include_usage: true,
        shapes: Default::default(),
    }
}

/// A request body of dialect `d`: inspection and passthrough rewrite, decoding, and encoding
/// for each other dialect.
pub fn request(d: Dialect, data: &[u8]) {
    if let Ok(inspected) = passthrough::inspect_request(d, data) {
        let out = passthrough::rewrite_request(data, &inspected, "model-upstream", Some(7));
        let again = passthrough::inspect_request(d, &out)
            .unwrap_or_else(|e| panic!("a rewritten body no longer inspects: {e}"));
        assert_eq!(again.summary.group, "model-upstream", "model not replaced");
        assert_eq!(again.summary.stream, inspected.summary.stream);
    }
    let _ = passthrough::inspect_count_tokens(d, data);
    let Ok((req, _)) = translate::decode_request(d, data) else {
        return;
    };
    let opts = EncodeOptions {
        model: "model-upstream",
        reasoning: data.len() % 2 == 0,
        max_output_tokens: Some(4096),
    };
    for to in others(d) {
        let enc = translate::encode_request(to, &req, &opts);
        if let Err(e) = translate::decode_request(to, &enc.body) {
            panic!(
                "{} -> {}: the encoded request does not decode: {e}\n{}",
                d.as_str(),
                to.as_str(),
                String::from_utf8_lossy(&enc.body)
            );
        }
    }
}

/// A whole response body of dialect `d`: usage tap, decoding, and encoding for the others.
pub fn response(d: Dialect, data: &[u8]) {
    let _ = passthrough::response_usage(d, data);
    let _ = translate::is_error_body(d, data);
    let _ = translate::error_message(data);
    let Ok(resp) = translate::decode_response(d, data) else {
        return;
    };
    let _ = resp.clone().answer_structured("structured_response");
    for to in others(d) {
        let body = translate::encode_response(to, &resp, &answer_context());
        if let Err(e) = translate::decode_response(to, &body) {
            panic!(
                "{} -> {}: the encoded response does not decode: {e}\n{}",
                d.as_str(),
                to.as_str(),
                String::from_utf8_lossy(&body)
            );
        }
    }
}

/// Splits `data` into chunks whose sizes come from its first byte.
fn chunks(data: &[u8]) -> impl Iterator<Item = Bytes> + '_ {
    let size = usize::from(data.first().copied().unwrap_or(0) % 61) + 1;
    data.get(1..).unwrap_or(&[]).chunks(size).map(Bytes::copy_from_slice)
}

/// An upstream stream of dialect `d`: framing, the passthrough tap, decoding, and encoding for
/// each other dialect, whose output must frame and decode again.
pub fn stream(d: Dialect, data: &[u8]) {
    let mut splitter = sse::Splitter::new(1 << 16);
    let mut decoder = StreamDecoder::new(d, data.len().is_multiple_of(3).then(|| "structured_response".into()));
    let mut encoders: Vec<(Dialect, StreamEncoder)> = others(d)
        .map(|to| (to, StreamEncoder::new(to, answer_context())))
        .collect();
    let mut outs: Vec<BytesMut> = encoders.iter().map(|_| BytesMut::new()).collect();
    let mut events: Vec<Event> = Vec::new();
    let feed = |events: &mut Vec<Event>,
                    encoders: &mut Vec<(Dialect, StreamEncoder)>,
                    outs: &mut Vec<BytesMut>| {
        for ev in events.drain(..) {
            for ((_, enc), out) in encoders.iter_mut().zip(outs.iter_mut()) {
                enc.encode(&ev, out);
            }
        }
    };
    for chunk in chunks(data) {
        let Ok(run) = splitter.push(chunk) else {
            return;
        };
        for (_, frame) in sse::frames(&run) {
            let Some(payload) = sse::frame_data(frame) else {
                continue;
            };
            let _ = passthrough::tap_event(d, sse::frame_event(frame), &payload);
            if decoder.decode(&payload, &mut events).is_err() {
                return;
            }
            feed(&mut events, &mut encoders, &mut outs);
        }
    }
    decoder.end(&mut events);
    feed(&mut events, &mut encoders, &mut outs);
    for ((to, enc), out) in encoders.iter().zip(outs) {
        let _ = enc.warnings();
        let mut again = StreamDecoder::new(*to, None);
        let mut sink = Vec::new();
        let mut split = sse::Splitter::new(usize::MAX);
        let run = split.push(out.freeze()).expect("no limit");
        assert!(split.pending().is_empty(), "an encoded stream ends mid-event");
        for (_, frame) in sse::frames(&run) {
            let Some(payload) = sse::frame_data(frame) else {
                continue;
            };
            if let Err(e) = again.decode(&payload, &mut sink) {
                panic!(
                    "{} -> {}: an encoded event does not decode: {e}\n{}",
                    d.as_str(),
                    to.as_str(),
                    String::from_utf8_lossy(frame)
                );
            }
        }
    }
}

/// SSE framing: the events found do not depend on how the bytes were chunked, and never
/// exceed the limit unfinished.
pub fn sse_splitter(data: &[u8]) {
    let limit = 4096;
    let mut whole = sse::Splitter::new(usize::MAX);
    let expected = whole
        .push(Bytes::copy_from_slice(data.get(1..).unwrap_or(&[])))
        .expect("no limit");
    let mut pieces = sse::Splitter::new(usize::MAX);
    let mut got = Vec::new();
    for c in chunks(data) {
        got.extend_from_slice(&pieces.push(c).expect("no limit"));
    }
    assert_eq!(got, &expected[..], "chunking changed the events");
    assert_eq!(whole.pending(), pieces.pending());
    let mut bounded = sse::Splitter::new(limit);
    for c in chunks(data) {
        if bounded.push(c).is_err() {
            break;
        }
        assert!(bounded.pending().len() <= limit);
    }
    for (_, f) in sse::frames(&expected) {
        let _ = sse::frame_event(f);
        let _ = sse::frame_data(f);
    }
}

/// The config loader: any text is a config or a list of errors, never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match router::config::parse(text) {
        Ok(c) => {
            let _ = format!("{c:?}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let _ = errors.to_string();
        }
    }
}

/// The published development key (its private half is in the repository's test fixtures).
const DEV_KEY: &str = include_str!("../../crates/router/tests/fixtures/license/dev-2026.key");

/// `license`: bytes as a license file. The first byte picks the mode: even, the file as it is
/// (verification must refuse it unless the signature holds); odd, its payload signed first with
/// the development key, so every field check behind the signature is reached. Oracle: no panic,
/// and a license that verifies has consistent dates and re-verifies after a re-encode.
pub fn license(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let path = std::path::Path::new("fuzz.json");
    let public = {
        let hex = include_str!("../../crates/router/tests/fixtures/license/dev-2026.key.pub").trim();
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        k
    };
    let trusted = [("dev-2026", public)];
    let file = if mode % 2 == 1 {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        let payload = v.get("payload").cloned().unwrap_or(v);
        match router::license::sign_payload(DEV_KEY, "dev-2026", payload) {
            Ok(f) => f.to_string().into_bytes(),
            Err(e) => {
                assert!(!e.is_empty());
                return;
            }
        }
    } else {
        rest.to_vec()
    };
    match router::license::LicenseFile::parse(path, &file, &trusted) {
        Ok(l) => {
            assert!(l.not_before >= l.issued_at && l.expires_at > l.not_before);
            assert!(l.max_instances >= 1);
            let _ = l.status(std::time::SystemTime::now());
            // The same JSON re-encoded (other whitespace, other key order) still verifies.
            let v: serde_json::Value = serde_json::from_slice(&file).unwrap();
            let again = serde_json::to_vec_pretty(&v).unwrap();
            router::license::LicenseFile::parse(path, &again, &trusted).unwrap();
        }
        Err(e) => {
            assert!(e.to_string().contains("fuzz.json"));
        }
    }
}
