//! Detection: the built-in detectors and the operator's custom patterns, compiled into one
//! [`Detector`] per policy. A text is scanned once by a `RegexSet` of every pattern; only the
//! detectors that matched look for their positions, and each candidate is validated (Luhn for
//! cards, mod-97 for IBANs, SSN ranges, address parsing, digit counts) so order numbers,
//! timestamps and version strings are not flagged. The `regex` crate matches in linear time, and
//! compiled patterns are size-limited, so no pattern can stall a request.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::sync::Arc;

/// Largest compiled form of one pattern (bytes).
const SIZE_LIMIT: usize = 1 << 20;

/// A built-in detector: its config name, its pattern, its raw-body prefilter (a pattern that
/// matches the JSON text of a body wherever the detector could match one of its strings), and
/// its validation.
struct BuiltIn {
    name: &'static str,
    pattern: &'static str,
    prefilter: &'static str,
    validate: fn(&str) -> Option<usize>,
    /// The match may not touch a letter or digit on either side.
    isolated: bool,
    /// Every match holds a digit and is at most [`WINDOW`] bytes long: the raw scan looks only
    /// around digits.
    windowed: bool,
}

/// Reach of a windowed detector's raw scan on each side of a digit (longer than any of their
/// matches).
const WINDOW: usize = 72;

const EMAIL: &str = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}";
// Prefilters are necessary parts of their detector's matches that begin with a rare byte or a
// literal (`@`, a digit, `:`, `sk-`, ...), so the raw scan jumps between candidates instead of
// stepping through every byte of prose.
const EMAIL_PREFILTER: &str = r"@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}";
const IBAN_PREFILTER: &str = r"\d{2}(?: ?[A-Z0-9]){11,30}";
const IP_PREFILTER: &str = r"(?:\d{1,3}\.){3}\d{1,3}|:[0-9A-Fa-f]{0,4}:";
const PHONE: &str = r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){1,4}[ .\-]?\d{2,6}|\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}|0\d{2,4}[ /\-]\d{3,8}";
const CARD: &str = r"\d(?:[ \-]?\d){12,18}";
const IBAN: &str = r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}";
const SSN: &str = r"\d{3}-\d{2}-\d{4}";
const IP: &str = r"(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}";
const SECRET: &str = r"sk-(?:proj-|ant-[a-z0-9]{2,8}-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|xox[abposr]-[A-Za-z0-9\-]{10,}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----";
const SECRET_PREFILTER: &str = r"sk-(?:proj-|ant-[a-z0-9]{2,8}-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|xox[abposr]-[A-Za-z0-9\-]{10,}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}|-----BEGIN[A-Z ]*PRIVATE KEY-----";

const BUILT_INS: &[BuiltIn] = &[
    BuiltIn {
        name: "email",
        pattern: EMAIL,
        prefilter: EMAIL_PREFILTER,
        validate: whole,
        isolated: false,
        windowed: false,
    },
    BuiltIn {
        name: "phone",
        pattern: PHONE,
        prefilter: PHONE,
        validate: phone,
        isolated: true,
        windowed: true,
    },
    BuiltIn {
        name: "credit_card",
        pattern: CARD,
        prefilter: CARD,
        validate: card,
        isolated: true,
        windowed: true,
    },
    BuiltIn {
        name: "iban",
        pattern: IBAN,
        prefilter: IBAN_PREFILTER,
        validate: iban,
        isolated: true,
        windowed: true,
    },
    BuiltIn {
        name: "us_ssn",
        pattern: SSN,
        prefilter: SSN,
        validate: ssn,
        isolated: true,
        windowed: true,
    },
    BuiltIn {
        name: "ip_address",
        pattern: IP,
        prefilter: IP_PREFILTER,
        validate: ip,
        isolated: true,
        windowed: true,
    },
    BuiltIn {
        name: "secret",
        pattern: SECRET,
        prefilter: SECRET_PREFILTER,
        validate: secret,
        isolated: true,
        windowed: false,
    },
];

/// Names of the built-in detectors, in the order the README lists them.
pub fn built_in_names() -> impl Iterator<Item = &'static str> {
    BUILT_INS.iter().map(|b| b.name)
}

/// A custom pattern, as configured.
#[derive(Debug, Clone)]
pub struct Custom {
    /// Its kind's name (`employee_id`).
    pub name: String,
    /// The regular expression.
    pub regex: String,
}

/// Why a detector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// No built-in detector has this name.
    #[error("unknown detector {0:?}")]
    Unknown(String),
    /// A custom pattern does not compile (or is too large).
    #[error("custom pattern {name:?}: {reason}")]
    Pattern {
        /// Its name.
        name: String,
        /// The compiler's reason.
        reason: String,
    },
}

/// One kind of personal data a detector finds.
#[derive(Debug)]
struct Kind {
    name: Arc<str>,
    /// Placeholder label: `EMAIL`, `EMPLOYEE_ID`.
    label: String,
    regex: Regex,
    validate: fn(&str) -> Option<usize>,
    isolated: bool,
}

/// One finding in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Byte range in the text.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// Index of its kind in the detector.
    pub kind: usize,
}

/// The compiled detectors of one policy.
#[derive(Debug)]
pub struct Detector {
    kinds: Vec<Kind>,
    set: RegexSet,
    /// Matches a body's JSON text wherever a text in it could hold a finding; none when a
    /// custom pattern could match across a JSON escape (then every body is walked).
    prefilter: Option<Prefilter>,
}

/// The raw-body scan: patterns that begin with a literal (`@`, `sk-`, ...) each run over the
/// whole text, where the regex engine jumps between occurrences of its literals (SIMD); a set
/// of them would lose that and step through every byte. Patterns built around digits run, as
/// one set, only on windows around the digits, which are found eight bytes at a time.
#[derive(Debug)]
struct Prefilter {
    whole: Vec<regex::bytes::Regex>,
    windowed: Option<regex::bytes::RegexSet>,
}

impl Prefilter {
    fn is_match(&self, raw: &[u8]) -> bool {
        if self.whole.iter().any(|r| r.is_match(raw)) {
            return true;
        }
        let Some(set) = &self.windowed else {
            return false;
        };
        let mut at = 0;
        while let Some(p) = next_digit(raw, at) {
            // Digits within reach of each other share one window.
            let mut last = p;
            while let Some(q) = next_digit(&raw[..(last + WINDOW + 1).min(raw.len())], last + 1) {
                last = q;
            }
            let end = (last + WINDOW + 1).min(raw.len());
            if set.is_match(&raw[p.saturating_sub(WINDOW)..end]) {
                return true;
            }
            at = end;
        }
        false
    }
}

/// The position of the first ASCII digit in `b` at or after `from`, eight bytes at a time: a
/// byte is a digit when it XOR `0x30` is below 10.
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while i + 8 <= b.len() {
        let word: [u8; 8] = b[i..i + 8].try_into().expect("eight bytes");
        let x = u64::from_le_bytes(word) ^ (ONES * 0x30);
        if x.wrapping_sub(ONES * 10) & !x & HIGH != 0 {
            break;
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| i + p)
}

impl Detector {
    /// Compiles the built-ins named in `detect` and the `custom` patterns.
    pub fn new(detect: &[String], custom: &[Custom]) -> Result<Self, DetectError> {
        let mut kinds = Vec::new();
        let (mut whole_body, mut windowed) = (Vec::new(), Vec::new());
        let mut prefilter_ok = true;
        for name in detect {
            let b = BUILT_INS
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| DetectError::Unknown(name.clone()))?;
            kinds.push(Kind {
                name: b.name.into(),
                label: b.name.to_ascii_uppercase(),
                regex: compile(b.name, b.pattern)?,
                validate: b.validate,
                isolated: b.isolated,
            });
            if b.windowed {
                windowed.push(b.prefilter.to_string());
            } else {
                whole_body.push(b.prefilter.to_string());
            }
        }
        for c in custom {
            kinds.push(Kind {
                name: c.name.as_str().into(),
                label: c.name.to_ascii_uppercase(),
                regex: compile(&c.name, &c.regex)?,
                validate: whole,
                isolated: false,
            });
            prefilter_ok &= survives_json_escaping(&c.regex);
            whole_body.push(c.regex.clone());
        }
        let set = RegexSetBuilder::new(kinds.iter().map(|k| k.regex.as_str()))
            .size_limit(SIZE_LIMIT * 4)
            .build()
            .map_err(|e| DetectError::Pattern {
                name: "(all patterns)".into(),
                reason: e.to_string(),
            })?;
        let raw_set = |patterns: &[String]| {
            (!patterns.is_empty()).then(|| {
                regex::bytes::RegexSetBuilder::new(patterns)
                    .size_limit(SIZE_LIMIT * 4)
                    .build()
            })
        };
        let raw_each: Result<Vec<regex::bytes::Regex>, _> = whole_body
            .iter()
            .map(|p| {
                regex::bytes::RegexBuilder::new(p)
                    .size_limit(SIZE_LIMIT)
                    .build()
            })
            .collect();
        let prefilter = match (raw_each, raw_set(&windowed).transpose()) {
            (Ok(whole), Ok(windowed)) if prefilter_ok => Some(Prefilter { whole, windowed }),
            _ => None,
        };
        Ok(Detector {
            kinds,
            set,
            prefilter,
        })
    }

    /// Whether a body's JSON text may hold a finding in one of its strings. `false` is exact:
    /// nothing in any string of the body would be found. A body with `\u` or `\/` escapes is
    /// always walked (an escaped character could hide a value from the raw scan).
    pub fn may_contain(&self, raw: &[u8]) -> bool {
        let Some(pre) = &self.prefilter else {
            return true;
        };
        memchr::memmem::find_iter(raw, b"\\").any(|i| matches!(raw.get(i + 1), Some(b'u' | b'/')))
            || pre.is_match(raw)
    }

    /// The validated findings in `text`, in order, not overlapping (at one position the
    /// longest wins).
    pub fn find(&self, text: &str) -> Vec<Found> {
        let mut found = Vec::new();
        if !self.set.is_match(text) {
            return found;
        }
        for k in self.set.matches(text).iter() {
            let kind = &self.kinds[k];
            for m in kind.regex.find_iter(text) {
                let Some(len) = (kind.validate)(m.as_str()) else {
                    continue;
                };
                let end = m.start() + len;
                if kind.isolated && !isolated(text, m.start(), end) {
                    continue;
                }
                found.push(Found {
                    start: m.start(),
                    end,
                    kind: k,
                });
            }
        }
        found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut last_end = 0;
        found.retain(|f| {
            let keep = f.start >= last_end;
            if keep {
                last_end = f.end;
            }
            keep
        });
        found
    }

    /// The config name of kind `k` (`email`).
    pub fn kind_name(&self, k: usize) -> &Arc<str> {
        &self.kinds[k].name
    }

    /// The placeholder label of kind `k` (`EMAIL`).
    pub fn label(&self, k: usize) -> &str {
        &self.kinds[k].label
    }

    /// How many kinds it detects.
    pub fn kinds(&self) -> usize {
        self.kinds.len()
    }
}

fn compile(name: &str, pattern: &str) -> Result<Regex, DetectError> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| DetectError::Pattern {
            name: name.into(),
            reason: e.to_string(),
        })
}

/// Whether every match `pattern` can make in a decoded JSON string also appears, byte for
/// byte, in the string's JSON text: it matches no quote, backslash or control character (those
/// are escaped in JSON text) and asserts nothing about its neighbours (an escape changes them).
fn survives_json_escaping(pattern: &str) -> bool {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn ok(h: &Hir) -> bool {
        let bad = |c: u32| c == u32::from(b'"') || c == u32::from(b'\\') || c < 0x20;
        match h.kind() {
            HirKind::Empty => true,
            HirKind::Literal(l) => !l.0.iter().any(|&b| bad(u32::from(b))),
            HirKind::Class(Class::Unicode(c)) => c
                .ranges()
                .iter()
                .all(|r| range_ok(u32::from(r.start()), u32::from(r.end()))),
            HirKind::Class(Class::Bytes(c)) => c
                .ranges()
                .iter()
                .all(|r| range_ok(u32::from(r.start()), u32::from(r.end()))),
            HirKind::Look(_) => false,
            HirKind::Repetition(r) => ok(&r.sub),
            HirKind::Capture(c) => ok(&c.sub),
            HirKind::Concat(hs) | HirKind::Alternation(hs) => hs.iter().all(ok),
        }
    }
    regex_syntax::parse(pattern).is_ok_and(|h| ok(&h))
}

/// A character range with no quote, backslash or control character in it.
fn range_ok(start: u32, end: u32) -> bool {
    let holds = |c: u32| start <= c && c <= end;
    start >= 0x20 && !holds(0x22) && !holds(0x5c)
}

/// No letter or digit right before `start` or right after `end`, nor a `.`, `-` or space
/// joining the match to more digits (a longer dotted, dashed or grouped number).
fn isolated(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let joined = |sep: Option<&u8>, next: Option<&u8>| {
        matches!(sep, Some(b'.' | b'-' | b' ')) && next.is_some_and(u8::is_ascii_digit)
    };
    let before_ok = start == 0
        || !(word(start - 1) || start >= 2 && joined(b.get(start - 1), b.get(start - 2)));
    let after_ok = !word(end) && !joined(b.get(end), b.get(end + 1));
    before_ok && after_ok
}

fn whole(s: &str) -> Option<usize> {
    Some(s.len())
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
}

fn phone(s: &str) -> Option<usize> {
    let n = digits(s).count();
    let b = s.as_bytes();
    // ISO dates (2024-01-15) are not phone numbers.
    let date = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    ((8..=15).contains(&n) && !date).then_some(s.len())
}

fn luhn(ds: &[u32]) -> bool {
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn card(s: &str) -> Option<usize> {
    let ds: Vec<u32> = digits(s).collect();
    let plausible = (13..=19).contains(&ds.len())
        && (2..=6).contains(&ds[0])
        && luhn(&ds)
        && ds.iter().any(|&d| d != ds[0]);
    plausible.then_some(s.len())
}

fn mod97(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut rem: u32 = 0;
    for &c in rearranged {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// An IBAN, or a shorter one at its start (the pattern may take in a following word in
/// capitals): tries the whole match, then without each trailing space-separated group.
fn iban(s: &str) -> Option<usize> {
    let mut end = s.len();
    loop {
        if mod97(&s[..end]) {
            return Some(end);
        }
        end = s[..end].rfind(' ')?;
    }
}

fn ssn(s: &str) -> Option<usize> {
    let area: u32 = s[0..3].parse().ok()?;
    let group: u32 = s[4..6].parse().ok()?;
    let serial: u32 = s[7..11].parse().ok()?;
    let valid = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    valid.then_some(s.len())
}

fn ip(s: &str) -> Option<usize> {
    if s.contains(':') {
        let groups = s.split(':').filter(|g| !g.is_empty()).count();
        let ok = s.parse::<std::net::Ipv6Addr>().is_ok()
            && groups >= 2
            && s.bytes().any(|b| b.is_ascii_digit());
        return ok.then_some(s.len());
    }
    s.parse::<std::net::Ipv4Addr>().is_ok().then_some(s.len())
}

fn secret(s: &str) -> Option<usize> {
    if let Some(body) = s.strip_prefix("sk-") {
        // Keys are random: words joined by dashes ("sk-learn-...") are not.
        let count = |f: fn(&u8) -> bool| body.as_bytes().iter().filter(|b| f(b)).count();
        let random = count(u8::is_ascii_digit) >= 2
            && count(u8::is_ascii_uppercase) >= 2
            && count(u8::is_ascii_lowercase) >= 2;
        return random.then_some(s.len());
    }
    Some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Detector {
        let names: Vec<String> = built_in_names().map(String::from).collect();
        Detector::new(
            &names,
            &[Custom {
                name: "employee_id".into(),
                regex: "EMP-[0-9]{6}".into(),
            }],
        )
        .unwrap()
    }

    fn kinds(d: &Detector, text: &str) -> Vec<String> {
        d.find(text)
            .iter()
            .map(|f| format!("{}={}", d.kind_name(f.kind), &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn true_positives() {
        let d = all();
        let cases = [
            (
                "mail jane.doe+x@example.co.uk now",
                "email=jane.doe+x@example.co.uk",
            ),
            ("call +1 415 555 2671.", "phone=+1 415 555 2671"),
            ("call (415) 555-2671", "phone=(415) 555-2671"),
            (
                "card 4111 1111 1111 1111 ok",
                "credit_card=4111 1111 1111 1111",
            ),
            (
                "card 5500-0000-0000-0004",
                "credit_card=5500-0000-0000-0004",
            ),
            (
                "iban DE89 3704 0044 0532 0130 00 THANKS",
                "iban=DE89 3704 0044 0532 0130 00",
            ),
            ("iban GB82WEST12345698765432", "iban=GB82WEST12345698765432"),
            ("ssn 123-45-6789", "us_ssn=123-45-6789"),
            ("host 192.168.10.20", "ip_address=192.168.10.20"),
            (
                "addr 2001:db8::8a2e:370:7334",
                "ip_address=2001:db8::8a2e:370:7334",
            ),
            (
                "key sk-proj-AbCdEf0123456789XyZaBcDeF",
                "secret=sk-proj-AbCdEf0123456789XyZaBcDeF",
            ),
            ("aws AKIAIOSFODNN7EXAMPLE", "secret=AKIAIOSFODNN7EXAMPLE"),
            (
                "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "secret=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ),
            (
                "slack xoxb-1234567890-abcdef",
                "secret=xoxb-1234567890-abcdef",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_abcdefgh",
                "secret=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_abcdefgh",
            ),
            ("id EMP-123456", "employee_id=EMP-123456"),
        ];
        for (text, want) in cases {
            assert_eq!(kinds(&d, text), vec![want.to_string()], "{text}");
        }
        let pem = "x -----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY----- y";
        assert_eq!(d.find(pem).len(), 1);
        assert_eq!(d.kind_name(d.find(pem)[0].kind).as_ref(), "secret");
    }

    #[test]
    fn false_positives_are_not_flagged() {
        let d = all();
        for text in [
            "order 4111111111111112 shipped",         // fails Luhn
            "timestamp 1700000000123 and 2024-01-15", // epoch millis, a date
            "at 12:30:45 today",                      // a time
            "version 1.2.3 and 10.0.3.400",           // not addresses
            "ssn 000-12-3456 or 666-12-3456",         // invalid areas
            "iban DE00 3704 0044 0532 0130 00",       // fails mod-97
            "use sk-learn-classification-pipeline",   // words, not a key
            "std::vector and Bad::Cafe",              // code, not IPv6
            "user@localhost",                         // no domain
            "1111 1111 1111 1111",                    // one repeated digit
        ] {
            assert_eq!(kinds(&d, text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn the_prefilter_never_misses_what_the_walk_finds() {
        let d = all();
        assert!(d.prefilter.is_some());
        for text in [
            "mail jane@example.com",
            "card 4111 1111 1111 1111",
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
            "line\n123-45-6789",
            "tab\tEMP-123456",
        ] {
            let raw = serde_json::to_vec(&serde_json::json!({ "content": text })).unwrap();
            assert!(!d.find(text).is_empty(), "{text}");
            assert!(d.may_contain(&raw), "{text}");
        }
        // Values anywhere in long text, next to JSON numbers or far from them.
        let prose = "The reading room needs more light and quieter corners. ".repeat(10);
        for value in [
            "4111 1111 1111 1111",
            "DE89 3704 0044 0532 0130 00",
            "fe80::1ff:fe23:4567:890a",
            "+44 20 7946 0958",
            "192.168.0.1",
            "123-45-6789",
            "a.b@example.org",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            for at in [0, 57, prose.len()] {
                let text = format!("{} {value} {}", &prose[..at], &prose[at..]);
                assert!(!d.find(&text).is_empty(), "{value} at {at}");
                let raw = serde_json::to_vec(
                    &serde_json::json!({"max_tokens": 64, "content": text, "n": 1}),
                )
                .unwrap();
                assert!(d.may_contain(&raw), "{value} at {at}");
            }
        }
        let clean = serde_json::to_vec(&serde_json::json!({"content": "nothing here\n"})).unwrap();
        assert!(!d.may_contain(&clean));
        // An escaped character always sends the body to the walk.
        assert!(d.may_contain(br#"{"content":"jane\u0040example.com"}"#));
    }

    #[test]
    fn next_digit_finds_every_digit_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for d in b'0'..=b'9' {
                    // Bytes on either side of the digit range must not count.
                    let mut b: Vec<u8> =
                        (0..len).map(|i| [b'/', b':', b'a', 0x80][i % 4]).collect();
                    b[at] = d;
                    assert_eq!(next_digit(&b, 0), Some(at), "len {len} at {at}");
                    assert_eq!(next_digit(&b, at + 1), None);
                }
            }
            let none: Vec<u8> = (0..len)
                .map(|i| (i * 37 % 256) as u8)
                .filter(|c| !c.is_ascii_digit())
                .collect();
            assert_eq!(next_digit(&none, 0), None);
        }
    }

    #[test]
    fn patterns_that_cross_escapes_disable_the_prefilter() {
        assert!(survives_json_escaping("EMP-[0-9]{6}"));
        assert!(!survives_json_escaping(r"EMP\s[0-9]+"));
        assert!(!survives_json_escaping(r"\bEMP-[0-9]{6}\b"));
        assert!(!survives_json_escaping(r#"say "[a-z]+""#));
        assert!(!survives_json_escaping(r"x.y"));
        let d = Detector::new(
            &[],
            &[Custom {
                name: "x".into(),
                regex: r"\bEMP\b".into(),
            }],
        )
        .unwrap();
        assert!(d.prefilter.is_none());
        assert!(d.may_contain(b"{}"));
    }

    #[test]
    fn bad_patterns_and_names_are_errors() {
        assert!(matches!(
            Detector::new(&["emails".into()], &[]),
            Err(DetectError::Unknown(_))
        ));
        let bad = Custom {
            name: "x".into(),
            regex: "(unclosed".into(),
        };
        assert!(matches!(
            Detector::new(&[], &[bad]),
            Err(DetectError::Pattern { .. })
        ));
        let huge = Custom {
            name: "y".into(),
            regex: r"\w{1000}\w{1000}\w{1000}".into(),
        };
        assert!(Detector::new(&[], &[huge]).is_err());
    }
}
