//! External policy stages: one per `[[policies]]` entry, asked about every request it applies
//! to, over OPA's Data API — `POST url` with `{"input": {...}}` (the rule variables, the rule
//! that matched, and the request's text only when `send_content` and content governance allow
//! it; never a token or a key), answered by `{"result": ...}`:
//!
//! ```text
//! true | false                                   allow | deny
//! {"allow": bool,                                required
//!  "reason": "shown to the caller on deny",
//!  "route": {"group": "name"} | {"targets": ["provider/model", ...]},
//!  "headers": {"x-tenant": "blue"}}              only names in allow_headers are kept
//! ```
//!
//! No usable decision — a timeout, a refused connection, a non-2xx status, an answer without
//! `result` (OPA's undefined decision) or of another shape, a route to nothing — follows
//! `on_error` exactly (allow or deny). After `breaker_failures` such failures in a row the
//! breaker opens: for `breaker_open_ms` the service is not asked and `on_error` applies; then
//! one request tries it again. Decisions may be cached per (caller, group, client, surface).
//! Shadow mode asks and records, and changes nothing.

use super::rules::policy_denied;
use super::{Decision, Governed, Stage};
use crate::auth::Caller;
use crate::config::GroupConfig;
use crate::config::pii::covers_group;
use crate::config::policies::{PolicyConfig, PolicyOnError};
use crate::config::rules::Route;
use crate::metrics::{GovernanceMetrics, PolicyLabels, PolicyNameLabels};
use crate::upstream::HttpClient;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest policy answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most request text sent when content may be sent.
const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Most cached decisions per policy.
const MAX_CACHED: usize = 10_000;

/// A route as a policy names it (resolved per request against the config in force).
#[derive(Debug, Clone, PartialEq)]
enum NamedRoute {
    Group(String),
    Targets(Vec<String>),
}

/// A usable decision.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Allow {
        route: Option<NamedRoute>,
        headers: Vec<(HeaderName, HeaderValue)>,
        /// Headers the policy asked for that are not allow-listed (dropped).
        dropped: usize,
    },
    Deny {
        reason: String,
    },
}

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Service,
    Cache,
    Breaker,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Service => "service",
            Source::Cache => "cache",
            Source::Breaker => "breaker",
        }
    }
}

/// One policy as a governance stage.
#[derive(Debug)]
pub struct PolicyStage {
    config: PolicyConfig,
    client: HttpClient,
    breaker: Breaker,
    cache: Mutex<HashMap<CacheKey, (Instant, Verdict)>>,
    counters: Counters,
}

/// (caller index, group index, client, surface). The client is one of the router's own static
/// names, so its address identifies it (no string hashing per request).
type CacheKey = (usize, usize, usize, dialects::Dialect);

/// Consecutive failures and, while open, until when (ms since `epoch`; 0: closed).
#[derive(Debug)]
struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    epoch: Instant,
    gauge: Gauge,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether this request may ask the service: always while closed, never while open; once
    /// the open time is over, one request (the probe) asks, and the others are kept off for
    /// `probe` (its timeout) until its answer closes or reopens the breaker.
    fn admit(&self, probe: Duration) -> bool {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        if until > now {
            return false;
        }
        let next = now + probe.as_millis() as u64;
        self.open_until_ms
            .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open_until_ms.swap(0, Ordering::Relaxed) != 0 {
            self.gauge.set(0);
        }
    }

    fn failure(&self, threshold: u32, open: Duration) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= threshold {
            self.open_until_ms
                .store(self.now_ms() + open.as_millis() as u64, Ordering::Relaxed);
            self.gauge.set(1);
        }
    }
}

/// Decision counters resolved once: `[outcome][source]`.
#[derive(Debug)]
struct Counters {
    by: [[Counter; 3]; 4],
    duration: Histogram,
}

const OUTCOMES: [&str; 4] = ["allow", "deny", "route", "error"];

impl Counters {
    fn count(&self, outcome: &str, source: Source) {
        let o = OUTCOMES.iter().position(|x| *x == outcome).unwrap_or(3);
        self.by[o][source as usize].inc();
    }
}

impl PolicyStage {
    /// The stages of a configuration's policies, in file order.
    pub fn all(policies: &[PolicyConfig], metrics: &GovernanceMetrics) -> Vec<Arc<dyn Stage>> {
        policies
            .iter()
            .map(|p| {
                let mode = if p.shadow { "shadow" } else { "enforce" };
                let counter = |outcome, source| {
                    metrics
                        .policies
                        .get_or_create(&PolicyLabels {
                            policy: p.name.clone(),
                            outcome,
                            source,
                            mode,
                        })
                        .clone()
                };
                let by = OUTCOMES.map(|o| {
                    [Source::Service, Source::Cache, Source::Breaker]
                        .map(|s| counter(o, s.as_str()))
                });
                let name = PolicyNameLabels {
                    policy: p.name.clone(),
                };
                let gauge = metrics.policy_circuit_open.get_or_create(&name).clone();
                gauge.set(0);
                Arc::new(PolicyStage {
                    client: crate::upstream::http_client(p.timeout, Duration::from_secs(90)),
                    breaker: Breaker {
                        failures: AtomicU32::new(0),
                        open_until_ms: AtomicU64::new(0),
                        epoch: Instant::now(),
                        gauge,
                    },
                    cache: Mutex::new(HashMap::new()),
                    counters: Counters {
                        by,
                        duration: metrics.policy_duration.get_or_create(&name).clone(),
                    },
                    config: p.clone(),
                }) as Arc<dyn Stage>
            })
            .collect()
    }

    /// What the policy is asked about a request.
    fn input_of(request: &Governed<'_>, send_content: bool) -> Value {
        let (config, group) = (request.config, request.group.index);
        let rule = request.effects.rule.as_deref();
        let mut input = request.with_subject(|s| input(s, config, group, rule));
        if send_content && request.may_share_content() {
            input["content"] = content(request);
        }
        input
    }

    fn cache_key(request: &Governed<'_>) -> CacheKey {
        (
            request.caller.index,
            request.group.index,
            request.client.as_ptr() as usize,
            request.surface,
        )
    }

    fn cached(&self, key: &CacheKey) -> Option<Verdict> {
        if self.config.cache_ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: CacheKey, verdict: &Verdict) {
        if self.config.cache_ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (now + self.config.cache_ttl, verdict.clone()));
    }

    /// Asks the service; `Err` is a short class of what went wrong (never the answer's text).
    async fn ask(&self, input: Value) -> Result<Verdict, &'static str> {
        let body = serde_json::to_vec(&json!({ "input": input })).expect("JSON serializes");
        let mut req = http::Request::post(self.config.url.clone())
            .body(Full::new(Bytes::from(body)))
            .expect("a POST to a validated URI builds");
        let h = req.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in &self.config.headers {
            h.insert(k.clone(), v.clone());
        }
        let call = async {
            let resp = self.client.request(req).await.map_err(|_| "unreachable")?;
            if !resp.status().is_success() {
                return Err("error status");
            }
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|_| "answer unreadable or too large")?
                .to_bytes();
            Ok(bytes)
        };
        let bytes = tokio::time::timeout(self.config.timeout, call)
            .await
            .map_err(|_| "timeout")??;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| "answer is not JSON")?;
        self.verdict(&answer)
    }

    /// Reads OPA's answer: `{"result": bool}` or `{"result": {"allow": bool, ...}}`.
    fn verdict(&self, answer: &Value) -> Result<Verdict, &'static str> {
        let result = answer
            .get("result")
            .ok_or("no result (undefined decision)")?;
        if let Some(allow) = result.as_bool() {
            return Ok(if allow {
                Verdict::Allow {
                    route: None,
                    headers: Vec::new(),
                    dropped: 0,
                }
            } else {
                Verdict::Deny {
                    reason: String::new(),
                }
            });
        }
        let allow = result
            .get("allow")
            .and_then(Value::as_bool)
            .ok_or("result has no boolean allow")?;
        if !allow {
            let reason = match result.get("reason") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => clean_reason(s),
                Some(_) => return Err("reason is not a string"),
            };
            return Ok(Verdict::Deny { reason });
        }
        let route = match result.get("route") {
            None | Some(Value::Null) => None,
            Some(r) => Some(Self::route(r)?),
        };
        let mut headers = Vec::new();
        let mut dropped = 0;
        match result.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok();
                    let value = v
                        .as_str()
                        .filter(|v| v.len() <= 1024)
                        .and_then(|v| HeaderValue::from_str(v).ok());
                    match (name, value) {
                        (Some(n), Some(v)) if self.config.allow_headers.contains(&n) => {
                            headers.push((n, v));
                        }
                        _ => dropped += 1,
                    }
                }
            }
            Some(_) => return Err("headers is not an object"),
        }
        Ok(Verdict::Allow {
            route,
            headers,
            dropped,
        })
    }

    /// A route as the policy wrote it, by name (resolved per request against the config).
    fn route(r: &Value) -> Result<NamedRoute, &'static str> {
        if let Some(g) = r.get("group").and_then(Value::as_str) {
            return Ok(NamedRoute::Group(g.to_string()));
        }
        let targets = r
            .get("targets")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty() && t.len() <= 64)
            .ok_or("route names neither a group nor targets")?;
        let labels: Vec<&str> = targets.iter().filter_map(Value::as_str).collect();
        if labels.len() != targets.len() {
            return Err("route targets are not strings");
        }
        Ok(NamedRoute::Targets(
            labels.into_iter().map(str::to_string).collect(),
        ))
    }

    async fn decide_async(&self, request: &mut Governed<'_>) -> Decision {
        let name = self.config.name.clone();
        let key = Self::cache_key(request);
        let (decided, source, took) = if let Some(v) = self.cached(&key) {
            (Ok(v), Source::Cache, None)
        } else if !self.breaker.admit(self.config.timeout) {
            (Err("circuit open"), Source::Breaker, None)
        } else {
            let input = Self::input_of(request, self.config.send_content);
            let started = Instant::now();
            let answer = self.ask(input).await;
            let took = started.elapsed();
            self.counters.duration.observe(took.as_secs_f64());
            match &answer {
                Ok(v) => {
                    self.breaker.success();
                    self.remember(key, v);
                }
                Err(_) => self
                    .breaker
                    .failure(self.config.breaker_failures, self.config.breaker_open),
            }
            (answer, Source::Service, Some(took))
        };
        // A route names groups and targets: resolve it against the request's config.
        let decided = decided.and_then(|v| match v {
            Verdict::Allow {
                route: Some(r),
                headers,
                dropped,
            } => resolve(request, &r).map(|route| {
                (
                    Some(route),
                    Verdict::Allow {
                        route: None,
                        headers,
                        dropped,
                    },
                )
            }),
            v => Ok((None, v)),
        });
        let mode = if self.config.shadow { "shadow " } else { "" };
        let timing: std::borrow::Cow<'static, str> = match (took, source) {
            (Some(t), _) => format!(" in {:.2} ms", t.as_secs_f64() * 1000.0).into(),
            (None, Source::Cache) => " (cache)".into(),
            (None, _) => " (breaker)".into(),
        };
        match decided {
            Ok((_, Verdict::Deny { reason })) => {
                self.counters.count("deny", source);
                request.annotate(&name, format!("{mode}deny{timing}"));
                if self.config.shadow {
                    return Decision::Allow;
                }
                let message = if reason.is_empty() {
                    "The request was refused by policy.".to_string()
                } else {
                    reason
                };
                Decision::Deny(policy_denied(message))
            }
            Ok((
                route,
                Verdict::Allow {
                    headers, dropped, ..
                },
            )) => {
                let outcome = if route.is_some() { "route" } else { "allow" };
                self.counters.count(outcome, source);
                let extra = if dropped > 0 {
                    format!(", {dropped} header(s) not allow-listed dropped")
                } else {
                    String::new()
                };
                request.annotate(&name, format!("{mode}{outcome}{timing}{extra}"));
                if !self.config.shadow {
                    if let Some(r) = route {
                        request.route(r);
                    }
                    for (k, v) in headers {
                        request.upstream_header(k, v);
                    }
                }
                Decision::Allow
            }
            Err(why) => {
                self.counters.count("error", source);
                let fail = match self.config.on_error {
                    PolicyOnError::Allow => "allow",
                    PolicyOnError::Deny => "deny",
                };
                request.annotate(
                    &name,
                    format!("{mode}error: {why}{timing}; on_error={fail}"),
                );
                if self.config.shadow || self.config.on_error == PolicyOnError::Allow {
                    return Decision::Allow;
                }
                Decision::Deny(policy_denied(
                    "The request was refused: the policy service gave no decision.".into(),
                ))
            }
        }
    }
}

/// A policy's input for a request to `config.groups[group]` (the rule variables, its group's
/// targets only, and the rule that matched); what `explain` shows too.
pub fn input(
    subject: &crate::rules::Subject<'_>,
    config: &crate::config::Config,
    group: usize,
    rule: Option<&str>,
) -> Value {
    let mut input = subject.facts(&config.rule_schema, &config.group_rule_targets[group]);
    input["rule"] = json!(rule);
    input
}

/// Resolves a policy's route against the request's config; a name that is not there (or the
/// request's own group) is a bad answer.
fn resolve(request: &Governed<'_>, r: &NamedRoute) -> Result<Route, &'static str> {
    let config = request.config;
    match r {
        NamedRoute::Group(g) => config
            .group_index(g)
            .filter(|&gi| gi != request.group.index)
            .map(Route::Group)
            .ok_or("route to a group that does not exist"),
        NamedRoute::Targets(labels) => labels
            .iter()
            .map(|l| config.target_by_label(l, request.group.index))
            .collect::<Option<Vec<_>>>()
            .map(|t| Route::Targets(t.into()))
            .ok_or("route to a target that does not exist"),
    }
}

/// A deny reason as callers get it: one line, printable, at most 512 bytes.
fn clean_reason(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::bounds::clip(one.trim(), 512).into_owned()
}

/// The request's text places, in order, at most [`MAX_CONTENT_BYTES`] in all.
fn content(request: &Governed<'_>) -> Value {
    let Ok(mut body) = serde_json::from_slice::<Value>(request.body()) else {
        return json!([]);
    };
    let mut out: Vec<String> = Vec::new();
    let mut left = MAX_CONTENT_BYTES;
    dialects::text::request_texts(request.surface, &mut body, &mut |slot| {
        let text = match slot {
            dialects::text::Slot::Text(s) | dialects::text::Slot::JsonText(s) => s.clone(),
            dialects::text::Slot::Json(v) => v.to_string(),
        };
        if left > 0 && !text.is_empty() {
            let cut = crate::bounds::clip(&text, left).into_owned();
            left = left.saturating_sub(cut.len());
            out.push(cut);
        }
    });
    json!(out)
}

impl Stage for PolicyStage {
    fn name(&self) -> &Arc<str> {
        &self.config.name
    }

    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool {
        covers_group(&self.config.applies, group)
            && self.config.applies.covers(
                &caller.name,
                caller.project.as_deref(),
                caller.team.as_deref(),
                caller.environment.as_deref(),
                &group.name,
            )
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        Box::pin(self.decide_async(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_lets_one_probe_through_and_closes_on_success() {
        let b = Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            gauge: Gauge::default(),
        };
        let probe = Duration::from_secs(60);
        b.failure(2, Duration::from_millis(30));
        assert!(b.admit(probe), "one failure keeps it closed");
        b.failure(2, Duration::from_millis(30));
        assert!(!b.admit(probe), "open");
        assert_eq!(b.gauge.get(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit(probe), "the probe");
        assert!(!b.admit(probe), "only one probe while it runs");
        b.failure(2, Duration::from_millis(30));
        assert!(!b.admit(probe), "a failed probe reopens it");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit(probe));
        b.success();
        assert!(b.admit(probe) && b.admit(probe), "closed again");
        assert_eq!(b.gauge.get(), 0);
    }
}
