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
//! is capped at [`MAX_SOURCE_BYTES`] and its nesting by the parser, and a panic inside the
//! interpreter is caught and reported as an error. It is also cheap: after checking, each
//! field access (`request.client`, `headers["x-region"]`, `targets["p/m"].healthy`) is
//! rewritten into one variable that is computed from the request only when evaluation reaches
//! it, and string literals are made once — no per-request maps. The same [`Subject`] gives
//! external policies their input ([`Subject::facts`]).

mod check;
mod rewrite;

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

/// A compiled, type-checked rule expression (rewritten for evaluation, see the module docs).
pub struct Expression {
    expr: cel::IdedExpr,
    /// String literals, made once: variable `\u{1}N` is `literals[N]`.
    literals: Vec<Value>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression").finish_non_exhaustive()
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
    let mut expr = std::panic::catch_unwind(|| cel::parser::Parser::new().parse(source))
        .map_err(|_| "could not be parsed".to_string())?
        .map_err(|e| format!("does not parse: {}", one_line(&e.to_string())))?;
    let ty = check::Checker::new(schema).check(&expr)?;
    if !matches!(ty, check::Ty::Bool | check::Ty::Dyn) {
        return Err(format!(
            "is a {ty:?} expression, not a condition (it must be true or false)"
        ));
    }
    let mut literals = Vec::new();
    rewrite::rewrite(&mut expr, schema, &mut Vec::new(), &mut literals);
    Ok(Expression { expr, literals })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Expression {
    /// Evaluates the expression for `subject`. An error (a missing key, a type the checker
    /// could not see, a value that is not a bool, a panic in the interpreter) is returned,
    /// never raised; it names no request value.
    pub fn eval(&self, subject: &Subject<'_>, schema: &Schema) -> Result<bool, EvalError> {
        let lazy = Lazy {
            subject,
            schema,
            literals: &self.literals,
        };
        let mut cx = ROOT.new_inner_scope();
        cx.set_variable_resolver(&lazy);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cx.resolve(&self.expr))) {
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

/// Resolves the rewritten variables of one evaluation from the subject, when reached.
struct Lazy<'a> {
    subject: &'a Subject<'a>,
    schema: &'a Schema,
    literals: &'a [Value],
}

impl cel::context::VariableResolver for Lazy<'_> {
    fn resolve(&self, name: &str) -> Option<Value> {
        let (tag, rest) = name.split_at_checked(1)?;
        match tag {
            rewrite::LITERAL => self.literals.get(rest.parse::<usize>().ok()?).cloned(),
            rewrite::FIELD => {
                let (obj, i) = rest.split_at_checked(1)?;
                Some(self.subject.field(obj, i.parse().ok()?))
            }
            rewrite::HEADER => {
                let h = self.schema.headers.get(rest.parse::<usize>().ok()?)?;
                Some(text(self.subject.header(h)))
            }
            rewrite::TARGET => {
                let (t, f) = rest.split_once('.')?;
                let (_, id) = self.schema.targets.get(t.parse::<usize>().ok()?)?;
                Some(target_field(&(self.subject.target)(*id), f.parse().ok()?))
            }
            _ => match name {
                "headers" => Some(self.subject.all_headers(self.schema)),
                "targets" => Some(self.subject.all_targets(self.schema)),
                _ => None,
            },
        }
    }
}

fn text(s: Option<&str>) -> Value {
    Value::String(Arc::new(s.unwrap_or("").to_string()))
}

fn target_field(s: &TargetState, f: usize) -> Value {
    match f {
        0 => Value::Bool(s.healthy),
        1 => Value::Bool(s.cooling),
        _ => Value::Float(s.latency_ms),
    }
}

impl Subject<'_> {
    /// Field `i` of object `obj` (`c`aller, `r`equest, `t`ime).
    fn field(&self, obj: &str, i: usize) -> Value {
        match (obj, i) {
            ("c", 0) => text(Some(self.caller)),
            ("c", 1) => text(self.project),
            ("c", 2) => text(self.team),
            ("c", _) => text(self.environment),
            ("r", 0) => text(Some(self.surface)),
            ("r", 1) => text(Some(self.client)),
            ("r", 2) => text(Some(self.group)),
            ("r", 3) => Value::Bool(self.stream),
            ("r", 4) => Value::Bool(self.has_tools),
            ("r", 5) => Value::Bool(self.has_images),
            ("r", 6) => Value::Bool(self.json_schema),
            ("r", 7) => Value::Int(i64::from(self.estimated_input_tokens)),
            ("r", 8) => Value::Int(i64::from(self.max_output_tokens.unwrap_or(0))),
            ("r", _) => text(self.reasoning_effort),
            (_, 0) => Value::Int(i64::from(hour_and_weekday(self.now).0)),
            _ => Value::Int(i64::from(hour_and_weekday(self.now).1)),
        }
    }

    /// `headers` as a map (for expressions that index it with a computed key).
    fn all_headers(&self, schema: &Schema) -> Value {
        let map: HashMap<Key, Value> = schema
            .headers
            .iter()
            .map(|h| (Key::from(h.as_str()), text(self.header(h))))
            .collect();
        Value::Map(Map { map: Arc::new(map) })
    }

    /// `targets` as a map (for expressions that index it with a computed key or range over it).
    fn all_targets(&self, schema: &Schema) -> Value {
        let map: HashMap<Key, Value> = schema
            .targets
            .iter()
            .map(|(label, id)| {
                let s = (self.target)(*id);
                let fields: HashMap<Key, Value> = TARGET
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| (Key::from(*n), target_field(&s, i)))
                    .collect();
                (
                    Key::from(label.as_str()),
                    Value::Map(Map {
                        map: Arc::new(fields),
                    }),
                )
            })
            .collect();
        Value::Map(Map { map: Arc::new(map) })
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
