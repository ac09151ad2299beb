//! Rule expressions: CEL (the `cel` crate) compiled and type-checked at load against the
//! variables a rule may read ([`Schema`]), and evaluated per request over a [`Subject`].
//!
//! Variables (all always present; an absent value is `""` or `0`):
//!
//! ```text
//! caller.name, caller.project, caller.team, caller.environment           string
//! request.surface, request.client, request.group, request.reasoning_effort  string
//! request.stream, request.has_tools, request.has_images, request.json_schema  bool
//! request.estimated_input_tokens, request.max_output_tokens              int
//! headers["x-region"]       string, only headers listed in `rules_headers`
//! time.hour (0-23), time.weekday (0 = Sunday)   int, UTC
//! targets["provider/model"].healthy, .cooling  bool;  .latency_ms  double (0: unmeasured)
//! ```
//!
//! Evaluation is bounded: CEL has no loops (macros range over the fixed variables), the source
//! is capped at [`MAX_SOURCE_BYTES`] and its nesting by the parser, a panic inside the
//! interpreter is caught and reported as an error, and only the fields an expression reads are
//! built for it. The same [`Subject`] gives external policies their input ([`Subject::facts`]).

mod check;

use cel::Value;
use cel::objects::{Key, Map};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

/// Longest rule expression accepted.
pub const MAX_SOURCE_BYTES: usize = 4096;

/// The type of an object field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Bool,
    Int,
    Double,
    Str,
}

/// The fixed objects rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Obj {
    Caller,
    Request,
    Time,
    Target,
}

const CALLER: &[(&str, Field)] = &[
    ("name", Field::Str),
    ("project", Field::Str),
    ("team", Field::Str),
    ("environment", Field::Str),
];
const REQUEST: &[(&str, Field)] = &[
    ("surface", Field::Str),
    ("client", Field::Str),
    ("group", Field::Str),
    ("stream", Field::Bool),
    ("has_tools", Field::Bool),
    ("has_images", Field::Bool),
    ("json_schema", Field::Bool),
    ("estimated_input_tokens", Field::Int),
    ("max_output_tokens", Field::Int),
    ("reasoning_effort", Field::Str),
];
const TIME: &[(&str, Field)] = &[("hour", Field::Int), ("weekday", Field::Int)];
const TARGET: &[(&str, Field)] = &[
    ("healthy", Field::Bool),
    ("cooling", Field::Bool),
    ("latency_ms", Field::Double),
];

impl Obj {
    fn root(self) -> &'static str {
        match self {
            Obj::Caller => "caller",
            Obj::Request => "request",
            Obj::Time => "time",
            Obj::Target => "targets[...]",
        }
    }

    fn fields(self) -> &'static [(&'static str, Field)] {
        match self {
            Obj::Caller => CALLER,
            Obj::Request => REQUEST,
            Obj::Time => TIME,
            Obj::Target => TARGET,
        }
    }
}

/// Field names as CEL map keys, made once: `KEYS[obj][field]`.
static KEYS: LazyLock<[Vec<Key>; 4]> = LazyLock::new(|| {
    let keys = |fields: &[(&str, Field)]| {
        fields
            .iter()
            .map(|(n, _)| Key::String(Arc::new((*n).to_string())))
            .collect()
    };
    [keys(CALLER), keys(REQUEST), keys(TIME), keys(TARGET)]
});

/// The standard functions, registered once; each evaluation runs in a child scope of it.
static ROOT: LazyLock<cel::Context<'static>> = LazyLock::new(cel::Context::default);

/// What rules may name besides the fixed variables: the listed request headers and the
/// configuration's targets.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `rules_headers`, lower-case.
    pub headers: Vec<String>,
    /// Every target as `provider/model`, with its target id.
    pub targets: Vec<(String, usize)>,
}

/// What an expression (or a set of them) reads, so evaluation builds only that.
#[derive(Debug, Clone, Default)]
pub struct Uses {
    /// Bit `i`: field `i` of `caller`, `request`, `time`.
    fields: [u16; 3],
    /// Schema indices of headers read by name.
    headers: Vec<usize>,
    all_headers: bool,
    /// Schema indices of targets read by name.
    targets: Vec<usize>,
    all_targets: bool,
}

impl Uses {
    fn mark(&mut self, o: Obj, i: usize) {
        let slot = match o {
            Obj::Caller => 0,
            Obj::Request => 1,
            Obj::Time => 2,
            Obj::Target => return,
        };
        self.fields[slot] |= 1 << i;
    }

    /// Reads what `other` reads too.
    pub fn add(&mut self, other: &Uses) {
        for (a, b) in self.fields.iter_mut().zip(other.fields) {
            *a |= b;
        }
        self.headers.extend(&other.headers);
        self.targets.extend(&other.targets);
        self.all_headers |= other.all_headers;
        self.all_targets |= other.all_targets;
        self.headers.sort_unstable();
        self.headers.dedup();
        self.targets.sort_unstable();
        self.targets.dedup();
    }
}

/// A compiled, type-checked rule expression.
pub struct Expression {
    program: cel::Program,
    uses: Uses,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression")
            .field("uses", &self.uses)
            .finish_non_exhaustive()
    }
}

/// Compiles `source` and checks it is a condition over the variables `schema` allows; the
/// error says what is wrong (syntax, an unknown name, a type mismatch).
pub fn compile(source: &str, schema: &Schema) -> Result<Expression, String> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(format!(
            "is {} bytes; a rule expression may have at most {MAX_SOURCE_BYTES}",
            source.len()
        ));
    }
    if source.trim().is_empty() {
        return Err("is empty".into());
    }
    let program = std::panic::catch_unwind(|| cel::Program::compile(source))
        .map_err(|_| "could not be parsed".to_string())?
        .map_err(|e| format!("does not parse: {}", one_line(&e.to_string())))?;
    let mut checker = check::Checker::new(schema);
    let ty = checker.check(program.expression())?;
    if !matches!(ty, check::Ty::Bool | check::Ty::Dyn) {
        return Err(format!(
            "is a {ty:?} expression, not a condition (it must be true or false)"
        ));
    }
    Ok(Expression {
        program,
        uses: checker.uses,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Expression {
    /// What the expression reads.
    pub fn uses(&self) -> &Uses {
        &self.uses
    }

    /// Evaluates the expression over `bound` (built for at least what it reads). An error
    /// (a missing key, a type the checker could not see, a value that is not a bool, a panic in
    /// the interpreter) is returned, never raised; its text names no request value.
    pub fn eval(&self, bound: &Bound) -> Result<bool, EvalError> {
        let mut cx = ROOT.new_inner_scope();
        cx.set_variable_resolver(bound);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.program.execute(&cx))) {
            Ok(Ok(Value::Bool(b))) => Ok(b),
            Ok(Ok(_)) => Err(EvalError::NotABool),
            Ok(Err(_)) => Err(EvalError::Failed),
            Err(_) => Err(EvalError::Panicked),
        }
    }
}

/// Why an evaluation gave no answer (the class only: the interpreter's message may quote values
/// the caller sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The interpreter reported an error (no such key, no such overload, division by zero...).
    #[error("the expression could not be evaluated")]
    Failed,
    /// The expression produced something other than true or false.
    #[error("the expression did not evaluate to true or false")]
    NotABool,
    /// The interpreter panicked (caught).
    #[error("the interpreter failed")]
    Panicked,
}

/// A target's state as rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetState {
    /// Not cooling down and no failure since its last success.
    pub healthy: bool,
    /// Cooling down after failures.
    pub cooling: bool,
    /// Recent time to first byte (EWMA); 0 when unmeasured.
    pub latency_ms: f64,
}

/// One request as rules and policies see it (no content, no token).
pub struct Subject<'a> {
    /// Caller name.
    pub caller: &'a str,
    /// Caller's project.
    pub project: Option<&'a str>,
    /// Caller's team.
    pub team: Option<&'a str>,
    /// Caller's environment.
    pub environment: Option<&'a str>,
    /// The caller's dialect (`openai_chat`, `anthropic_messages`, `openai_responses`).
    pub surface: &'a str,
    /// The client software (`codex`, `claude-code`, `openai-python`, ...).
    pub client: &'a str,
    /// The group asked for.
    pub group: &'a str,
    /// A streamed answer was asked for.
    pub stream: bool,
    /// The request offers tools.
    pub has_tools: bool,
    /// The request carries images.
    pub has_images: bool,
    /// The request asks for a JSON schema.
    pub json_schema: bool,
    /// Estimated prompt tokens.
    pub estimated_input_tokens: u32,
    /// The caller's output cap.
    pub max_output_tokens: Option<u32>,
    /// Reasoning effort asked for.
    pub reasoning_effort: Option<&'a str>,
    /// The request headers (only the schema's are read).
    pub headers: &'a http::HeaderMap,
    /// Now.
    pub now: SystemTime,
    /// A target's state, by target id.
    pub target: &'a (dyn Fn(usize) -> TargetState + Sync),
}

/// The variables one request binds, built once for every expression that reads them.
#[derive(Debug, Default)]
pub struct Bound {
    caller: Option<Value>,
    request: Option<Value>,
    time: Option<Value>,
    headers: Option<Value>,
    targets: Option<Value>,
}

impl cel::context::VariableResolver for Bound {
    fn resolve(&self, name: &str) -> Option<Value> {
        match name {
            "caller" => self.caller.clone(),
            "request" => self.request.clone(),
            "time" => self.time.clone(),
            "headers" => self.headers.clone(),
            "targets" => self.targets.clone(),
            _ => None,
        }
    }
}

fn text(s: Option<&str>) -> Value {
    Value::String(Arc::new(s.unwrap_or("").to_string()))
}

fn object(slot: usize, bits: u16, value: impl Fn(usize) -> Value) -> Option<Value> {
    if bits == 0 {
        return None;
    }
    let keys = &KEYS[slot];
    let mut map = HashMap::with_capacity(bits.count_ones() as usize);
    for (i, key) in keys.iter().enumerate() {
        if bits & (1 << i) != 0 {
            map.insert(key.clone(), value(i));
        }
    }
    Some(Value::Map(Map { map: Arc::new(map) }))
}

impl Subject<'_> {
    /// Binds what `uses` reads.
    pub fn bind(&self, uses: &Uses, schema: &Schema) -> Bound {
        let [caller, request, time] = uses.fields;
        let (hour, weekday) = hour_and_weekday(self.now);
        let headers = (uses.all_headers || !uses.headers.is_empty()).then(|| {
            let which: Vec<usize> = if uses.all_headers {
                (0..schema.headers.len()).collect()
            } else {
                uses.headers.clone()
            };
            let map: HashMap<Key, Value> = which
                .into_iter()
                .map(|i| {
                    let name = &schema.headers[i];
                    (Key::from(name.as_str()), text(self.header(name)))
                })
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        });
        let targets = (uses.all_targets || !uses.targets.is_empty()).then(|| {
            let which: Vec<usize> = if uses.all_targets {
                (0..schema.targets.len()).collect()
            } else {
                uses.targets.clone()
            };
            let map: HashMap<Key, Value> = which
                .into_iter()
                .map(|i| {
                    let (label, id) = &schema.targets[i];
                    let s = (self.target)(*id);
                    let v = object(3, 0b111, |f| match f {
                        0 => Value::Bool(s.healthy),
                        1 => Value::Bool(s.cooling),
                        _ => Value::Float(s.latency_ms),
                    });
                    (Key::from(label.as_str()), v.expect("three fields"))
                })
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        });
        Bound {
            caller: object(0, caller, |i| match i {
                0 => text(Some(self.caller)),
                1 => text(self.project),
                2 => text(self.team),
                _ => text(self.environment),
            }),
            request: object(1, request, |i| match i {
                0 => text(Some(self.surface)),
                1 => text(Some(self.client)),
                2 => text(Some(self.group)),
                3 => Value::Bool(self.stream),
                4 => Value::Bool(self.has_tools),
                5 => Value::Bool(self.has_images),
                6 => Value::Bool(self.json_schema),
                7 => Value::Int(i64::from(self.estimated_input_tokens)),
                8 => Value::Int(i64::from(self.max_output_tokens.unwrap_or(0))),
                _ => text(self.reasoning_effort),
            }),
            time: object(2, time, |i| {
                Value::Int(i64::from(if i == 0 { hour } else { weekday }))
            }),
            headers,
            targets,
        }
    }

    /// A listed header's value, cut to 256 bytes (at a character boundary).
    fn header(&self, name: &str) -> Option<&str> {
        let v = self.headers.get(name)?.to_str().ok()?;
        Some(&v[..floor_boundary(v, 256)])
    }

    /// Every variable as JSON: the input external policies receive, and what `explain`
    /// shows. Targets are those of `targets` (ids into the schema).
    pub fn facts(&self, schema: &Schema, targets: &[usize]) -> serde_json::Value {
        let (hour, weekday) = hour_and_weekday(self.now);
        let headers: serde_json::Map<String, serde_json::Value> = schema
            .headers
            .iter()
            .map(|h| (h.clone(), json!(self.header(h).unwrap_or(""))))
            .collect();
        let targets: serde_json::Map<String, serde_json::Value> = targets
            .iter()
            .filter_map(|&i| schema.targets.get(i))
            .map(|(label, id)| {
                let s = (self.target)(*id);
                (
                    label.clone(),
                    json!({"healthy": s.healthy, "cooling": s.cooling, "latency_ms": s.latency_ms}),
                )
            })
            .collect();
        json!({
            "caller": {
                "name": self.caller,
                "project": self.project.unwrap_or(""),
                "team": self.team.unwrap_or(""),
                "environment": self.environment.unwrap_or(""),
            },
            "request": {
                "surface": self.surface,
                "client": self.client,
                "group": self.group,
                "stream": self.stream,
                "has_tools": self.has_tools,
                "has_images": self.has_images,
                "json_schema": self.json_schema,
                "estimated_input_tokens": self.estimated_input_tokens,
                "max_output_tokens": self.max_output_tokens.unwrap_or(0),
                "reasoning_effort": self.reasoning_effort.unwrap_or(""),
            },
            "headers": headers,
            "time": {"hour": hour, "weekday": weekday},
            "targets": targets,
        })
    }
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// UTC hour (0-23) and weekday (0 = Sunday) of `t`.
fn hour_and_weekday(t: SystemTime) -> (u8, u8) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    // 1970-01-01 was a Thursday (4).
    (((secs % 86_400) / 3600) as u8, ((days + 4) % 7) as u8)
}

#[cfg(test)]
mod tests;
