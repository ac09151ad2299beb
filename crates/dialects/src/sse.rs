//! Server-Sent Events framing: split a byte stream into complete events and encode events.
//! Knows nothing about any dialect. Lines may end in `\n` or `\r\n`; an event ends at a blank line.

use bytes::{Bytes, BytesMut};
use std::borrow::Cow;

/// Splits an SSE byte stream, arriving in arbitrary chunks, into runs of complete events. What
/// has not ended yet is held, up to a limit: a line or event that grows past it is an error
/// (an upstream that never ends a line cannot grow the buffer without bound).
#[derive(Debug)]
pub struct Splitter {
    pending: BytesMut,
    /// Bytes at the start of `pending` already searched for a frame end (none found).
    scanned: usize,
    limit: usize,
}

/// An event (or a line) grew past the splitter's limit without ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event grew past {limit} bytes without ending")]
pub struct EventTooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

impl Splitter {
    /// A splitter with nothing buffered that holds at most `limit` bytes of an unfinished event.
    pub fn new(limit: usize) -> Self {
        Splitter {
            pending: BytesMut::new(),
            scanned: 0,
            limit,
        }
    }

    /// Feeds one chunk; returns the bytes of every event completed by it, in order (possibly
    /// empty). When nothing is buffered and the chunk ends on an event boundary, the returned
    /// bytes share the chunk's memory (no copy). Each byte is searched for a frame end once.
    pub fn push(&mut self, chunk: Bytes) -> Result<Bytes, EventTooLarge> {
        if self.pending.is_empty() {
            let end = last_frame_end(&chunk, 0);
            if end == Some(chunk.len()) {
                return Ok(chunk);
            }
            let end = end.unwrap_or(0);
            self.hold(&chunk[end..])?;
            return Ok(chunk.slice(..end));
        }
        let from = self.scanned;
        self.pending.extend_from_slice(&chunk);
        match last_frame_end(&self.pending, from) {
            Some(end) => {
                let run = self.pending.split_to(end).freeze();
                self.scanned = self.pending.len();
                self.check()?;
                Ok(run)
            }
            None => {
                self.scanned = self.pending.len();
                self.check()?;
                Ok(Bytes::new())
            }
        }
    }

    /// Keeps an unfinished tail.
    fn hold(&mut self, tail: &[u8]) -> Result<(), EventTooLarge> {
        self.pending.extend_from_slice(tail);
        self.scanned = self.pending.len();
        self.check()
    }

    fn check(&mut self) -> Result<(), EventTooLarge> {
        if self.pending.len() > self.limit {
            self.pending = BytesMut::new();
            self.scanned = 0;
            return Err(EventTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Bytes of an event not yet completed (what is left when the stream ends early).
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

/// Is the `\n` at `p` the end of a frame that starts at `start`?
fn ends_frame(buf: &[u8], start: usize, p: usize) -> bool {
    if p == start || buf[p - 1] == b'\n' {
        return true;
    }
    buf[p - 1] == b'\r' && (p - 1 == start || buf[p - 2] == b'\n')
}

/// End (exclusive) of the last complete frame in `buf`, which starts at a frame boundary and
/// has no frame end before `from` (so only the newlines from there on are looked at).
fn last_frame_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut start = 0;
    let mut last = None;
    for p in memchr::memchr_iter(b'\n', &buf[from..]).map(|p| p + from) {
        if ends_frame(buf, start, p) {
            start = p + 1;
            last = Some(start);
        }
    }
    last
}

/// Iterates the frames in a run of complete events, each with its terminating blank line.
pub fn frames(run: &[u8]) -> Frames<'_> {
    Frames { run, pos: 0 }
}

/// Iterator over the frames of a run; see [`frames`].
#[derive(Debug)]
pub struct Frames<'a> {
    run: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = (usize, &'a [u8]);

    /// Yields (offset in the run, frame bytes).
    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        if start >= self.run.len() {
            return None;
        }
        for p in memchr::memchr_iter(b'\n', &self.run[start..]) {
            let p = start + p;
            if ends_frame(self.run, start, p) {
                self.pos = p + 1;
                return Some((start, &self.run[start..=p]));
            }
        }
        self.pos = self.run.len();
        Some((start, &self.run[start..]))
    }
}

/// Lines of a frame without their line endings (found with `memchr`: frames are scanned for
/// every event that passes through).
fn lines(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(frame);
    std::iter::from_fn(move || {
        let r = rest?;
        let line = match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                &r[..i]
            }
            None => {
                rest = None;
                r
            }
        };
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

/// Value of a field line (`name:value`, one optional space after the colon).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// The `data` of a frame: its data lines joined by `\n`; `None` when it has none (a comment).
pub fn frame_data(frame: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut out: Option<Cow<'_, [u8]>> = None;
    for value in lines(frame).filter_map(|l| field(l, b"data")) {
        out = Some(match out {
            None => Cow::Borrowed(value),
            Some(prev) => {
                let mut v = prev.into_owned();
                v.push(b'\n');
                v.extend_from_slice(value);
                Cow::Owned(v)
            }
        });
    }
    out
}

/// The `event` name of a frame, if it has one.
pub fn frame_event(frame: &[u8]) -> Option<&str> {
    lines(frame)
        .filter_map(|l| field(l, b"event"))
        .last()
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Encodes one event. `data` must not contain newlines (JSON from serde_json never does).
pub fn encode(event: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 16 + event.map_or(0, |e| e.len() + 8));
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>) {
        let mut s = Splitter::new(1 << 20);
        let mut out = Vec::new();
        let mut prev = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(prev, input.len());
            out.extend_from_slice(&s.push(Bytes::copy_from_slice(&input[prev..c])).unwrap());
            prev = c;
        }
        (out, s.pending().to_vec())
    }

    #[test]
    fn splits_lf_and_crlf_events() {
        let input = b"data: a\n\nevent: x\r\ndata: b\r\n\r\ndata: partial";
        let (done, pending) = split_all(input, &[3, 9, 20]);
        assert_eq!(done, b"data: a\n\nevent: x\r\ndata: b\r\n\r\n");
        assert_eq!(pending, b"data: partial");
        let fr: Vec<_> = frames(&done).map(|(_, f)| f.to_vec()).collect();
        assert_eq!(fr.len(), 2);
        assert_eq!(frame_data(&fr[0]).unwrap().as_ref(), b"a");
        assert_eq!(frame_event(&fr[1]), Some("x"));
        assert_eq!(frame_data(&fr[1]).unwrap().as_ref(), b"b");
    }

    #[test]
    fn joins_multi_line_data_and_ignores_comments() {
        let frame = b": keepalive\ndata: one\ndata:two\n\n";
        assert_eq!(frame_data(frame).unwrap().as_ref(), b"one\ntwo");
        assert!(frame_data(b": ping\n\n").is_none());
    }

    #[test]
    fn whole_chunk_is_returned_without_copy() {
        let chunk = Bytes::from_static(b"data: a\n\ndata: b\n\n");
        let mut s = Splitter::new(64);
        let out = s.push(chunk.clone()).unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }

    /// An upstream that never ends a line: the held bytes stay under the limit, then the
    /// splitter refuses; what came before is still delivered.
    #[test]
    fn an_endless_line_is_cut_at_the_limit() {
        let mut s = Splitter::new(1000);
        let first = s
            .push(Bytes::from_static(b"data: ok\n\ndata: xxxx"))
            .unwrap();
        assert_eq!(&first[..], b"data: ok\n\n");
        let mut refused = None;
        for i in 0..100 {
            match s.push(Bytes::from(vec![b'x'; 100])) {
                Ok(run) => assert!(run.is_empty() && s.pending().len() <= 1000),
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (i, e) = refused.expect("refused before 10,000 bytes");
        assert_eq!(e.limit, 1000);
        assert!(i <= 10, "refused after {i} chunks");
        assert!(s.pending().is_empty(), "the buffer is released");
    }

    /// A boundary split across chunks in every way (`\r\n\r\n` cut between any two bytes) is
    /// still found, with each chunk scanned once.
    #[test]
    fn boundaries_straddling_chunks_are_found() {
        let input = b"data: a\r\n\r\ndata: b\n\n";
        for cut in 0..input.len() {
            for cut2 in cut..input.len() {
                let (done, pending) = split_all(input, &[cut, cut2]);
                assert_eq!(done, input, "cuts {cut} {cut2}");
                assert!(pending.is_empty());
            }
        }
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            datas in proptest::collection::vec("[a-z{}\":, ]{0,20}", 1..8),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let input: String = datas.iter().map(|d| format!("data: {d}{nl}{nl}")).collect();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let (done, pending) = split_all(input.as_bytes(), &cuts);
            prop_assert!(pending.is_empty());
            let got: Vec<Vec<u8>> = frames(&done).map(|(_, f)| frame_data(f).unwrap().into_owned()).collect();
            let want: Vec<Vec<u8>> = datas.iter().map(|d| d.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn encode_then_split_round_trips(event in proptest::option::of("[a-z.]{1,12}"), data in "[ -~]{0,40}") {
            let bytes = encode(event.as_deref(), data.as_bytes());
            let (done, pending) = split_all(&bytes, &[1, 5]);
            prop_assert!(pending.is_empty());
            prop_assert_eq!(frame_event(&done), event.as_deref());
            let got = frame_data(&done).unwrap().into_owned();
            prop_assert_eq!(got.as_slice(), data.as_bytes());
        }
    }
}
