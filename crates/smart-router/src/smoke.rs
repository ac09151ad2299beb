//! `smart-router smoke`: the production checklist against any running router, through its
//! public API only — readiness, version and license, models per token, the role boundaries, a
//! text request in each dialect (whole and streamed), a tool-call round trip in each dialect,
//! an image and a structured-output request where a group can take them, and the usage the
//! router recorded for exactly these requests. Checks that do not apply are skipped with the
//! reason. Output: a table, and a JSON evidence file (no tokens, no prompt or reply text).

use crate::client::{Http, Reply, clip};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A 1x1 red PNG.
const PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// What to check, and with which tokens.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The router's base URL (`http://host:port`).
    pub base_url: String,
    /// A caller token.
    pub token: String,
    /// An admin (or report-admin) token: usage excerpt, license, config.
    pub admin_token: Option<String>,
    /// A metrics-admin token.
    pub metrics_token: Option<String>,
    /// Groups to exercise (default: every group the caller token may use).
    pub groups: Vec<String>,
    /// Longest wait for one request.
    pub timeout: Duration,
    /// Also run the coding agents (`codex exec`, `claude -p`) on a file-writing task through
    /// the first group, when they are installed.
    pub agents: bool,
    /// The next router (this one's upstream) and an admin or report-admin token for it: adds
    /// the hop checks.
    pub next: Option<(String, String)>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// It does not apply here (the detail says why).
    Skip,
}

/// One line of the checklist.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Check {
    /// What was checked (`chat text [coder]`).
    pub name: String,
    /// How it went.
    pub outcome: Outcome,
    /// What was seen, or why it failed or was skipped.
    pub detail: String,
    /// The request id sent, for model requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// How long it took.
    pub ms: u64,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Report {
    /// The router checked.
    pub base_url: String,
    /// When (RFC 3339).
    pub at: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// What the router recorded for the smoke's requests (from `GET /admin/requests/{id}`).
    pub usage: Vec<Value>,
    /// `/version`'s answer.
    pub version: Value,
}

impl Report {
    /// How many checks failed.
    pub(crate) fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count()
    }

    /// The checklist as a text table.
    pub(crate) fn table(&self) -> String {
        let w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:w$}  {:6}  detail\n", "check", "result");
        for c in &self.checks {
            let r = match c.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            out.push_str(&format!("{:w$}  {r:6}  {}\n", c.name, c.detail));
        }
        if !self.usage.is_empty() {
            out.push_str("\nusage recorded for the smoke's requests:\n");
            out.push_str("request_id                          status  provider/model                 attempts fallback latency_ms  in/out tokens  cost_usd\n");
            for u in &self.usage {
                out.push_str(&format!(
                    "{:34}  {:6}  {:29}  {:8} {:8} {:10.1}  {:>6}/{:<6}  {:.6}\n",
                    u["request_id"].as_str().unwrap_or("-"),
                    u["status"].as_str().unwrap_or("-"),
                    format!(
                        "{}/{}",
                        u["provider"].as_str().unwrap_or("-"),
                        u["model"].as_str().unwrap_or("-")
                    ),
                    u["attempts"],
                    u["fallback"],
                    u["latency_ms"].as_f64().unwrap_or(0.0),
                    u["input_tokens"],
                    u["output_tokens"],
                    u["cost_usd"].as_f64().unwrap_or(0.0),
                ));
            }
        }
        let failed = self.failures();
        out.push_str(&format!(
            "\n{} checks: {} passed, {} failed, {} skipped\n",
            self.checks.len(),
            self.checks
                .iter()
                .filter(|c| c.outcome == Outcome::Pass)
                .count(),
            failed,
            self.checks
                .iter()
                .filter(|c| c.outcome == Outcome::Skip)
                .count(),
        ));
        out
    }
}

/// The smoke run's HTTP side.
struct Smoke {
    http: Http,
    opts: Options,
    run_id: String,
    n: u32,
    checks: Vec<Check>,
    request_ids: Vec<String>,
}

enum Auth<'a> {
    Bearer(&'a str),
    AnthropicKey(&'a str),
    None,
}

impl Smoke {
    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        request_id: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut headers: Vec<(&str, String)> = Vec::new();
        match auth {
            Auth::Bearer(t) => headers.push(("authorization", format!("Bearer {t}"))),
            Auth::AnthropicKey(t) => {
                headers.push(("x-api-key", t.to_string()));
                headers.push(("anthropic-version", "2023-06-01".into()));
            }
            Auth::None => {}
        }
        if let Some(id) = request_id {
            headers.push(("x-request-id", id.to_string()));
        }
        self.http.call(method, path, &headers, body).await
    }

    fn record(
        &mut self,
        name: String,
        outcome: Outcome,
        detail: String,
        id: Option<String>,
        t: Instant,
    ) {
        self.checks.push(Check {
            name,
            outcome,
            detail,
            request_id: id,
            ms: t.elapsed().as_millis() as u64,
        });
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        let id = format!("smoke-{}-{:03}", self.run_id, self.n);
        self.request_ids.push(id.clone());
        id
    }

    /// A GET that must answer `want`.
    async fn expect_status(
        &mut self,
        name: &str,
        path: &str,
        token: Option<&str>,
        want: u16,
    ) -> Option<Reply> {
        let t = Instant::now();
        let auth = token.map_or(Auth::None, Auth::Bearer);
        match self.call("GET", path, auth, None, None).await {
            Ok(r) if r.status == want => {
                self.record(name.into(), Outcome::Pass, format!("HTTP {want}"), None, t);
                Some(r)
            }
            Ok(r) => {
                let d = format!("expected HTTP {want}, got {}", r.error());
                self.record(name.into(), Outcome::Fail, d, None, t);
                None
            }
            Err(e) => {
                self.record(name.into(), Outcome::Fail, e, None, t);
                None
            }
        }
    }

    /// A model request: `check` judges a 200 answer (`Ok(detail)` passes). A 400
    /// `no_eligible_target` about a capability is a skip when `optional`.
    async fn model_check(
        &mut self,
        name: String,
        path: &str,
        anthropic: bool,
        body: Value,
        optional: bool,
        check: impl FnOnce(&Reply) -> Result<String, String>,
    ) -> Option<Reply> {
        let id = self.next_id();
        let t = Instant::now();
        let token = self.opts.token.clone();
        let auth = if anthropic {
            Auth::AnthropicKey(&token)
        } else {
            Auth::Bearer(&token)
        };
        match self.call("POST", path, auth, Some(&id), Some(&body)).await {
            Ok(r) if r.status == 200 => match check(&r) {
                Ok(d) => {
                    self.record(name, Outcome::Pass, d, Some(id), t);
                    Some(r)
                }
                Err(d) => {
                    self.record(name, Outcome::Fail, d, Some(id), t);
                    None
                }
            },
            Ok(r)
                if optional
                    && r.status == 400
                    && String::from_utf8_lossy(&r.body).contains("capability") =>
            {
                let d = format!("no target of the group takes it ({})", r.error());
                self.record(name, Outcome::Skip, d, Some(id), t);
                None
            }
            Ok(r) => {
                self.record(name, Outcome::Fail, r.error(), Some(id), t);
                None
            }
            Err(e) => {
                self.record(name, Outcome::Fail, e, Some(id), t);
                None
            }
        }
    }

    fn skip(&mut self, name: String, why: &str) {
        self.checks.push(Check {
            name,
            outcome: Outcome::Skip,
            detail: why.into(),
            request_id: None,
            ms: 0,
        });
    }
}

/// Runs the checklist.
pub(crate) async fn run(opts: Options) -> Result<Report> {
    let http = Http::new(&opts.base_url, opts.timeout);
    let run_id = format!("{:x}", router::time::now_ms());
    let mut s = Smoke {
        http,
        opts: opts.clone(),
        run_id,
        n: 0,
        checks: Vec::new(),
        request_ids: Vec::new(),
    };
    s.expect_status("readyz", "/readyz", None, 200).await;
    let version = s
        .expect_status("version", "/version", None, 200)
        .await
        .map(|r| r.json())
        .unwrap_or(Value::Null);
    // Models each token sees, and the role boundaries.
    let models = s
        .expect_status(
            "models (caller token)",
            "/v1/models",
            Some(&opts.token),
            200,
        )
        .await
        .map(|r| r.json())
        .unwrap_or(Value::Null);
    let visible: Vec<String> = models["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (path, what) in [
        ("/metrics", "metrics"),
        ("/admin/reports/usage", "admin reports"),
        ("/admin/config", "admin config"),
    ] {
        s.expect_status(
            &format!("caller token refused: {what}"),
            path,
            Some(&opts.token),
            403,
        )
        .await;
    }
    match opts.metrics_token.clone() {
        Some(t) => {
            s.expect_status("metrics (metrics token)", "/metrics", Some(&t), 200)
                .await;
        }
        None => s.skip(
            "metrics (metrics token)".into(),
            "no --metrics-token-env given",
        ),
    }
    let groups: Vec<String> = if opts.groups.is_empty() {
        visible.clone()
    } else {
        opts.groups.clone()
    };
    if groups.is_empty() {
        s.record(
            "groups".into(),
            Outcome::Fail,
            "the caller token may use no group".into(),
            None,
            Instant::now(),
        );
    }
    for g in &groups {
        if !visible.contains(g) {
            let d = format!("{g:?} is not in the caller token's /v1/models");
            s.record(format!("group {g}"), Outcome::Fail, d, None, Instant::now());
        }
        dialect_checks(&mut s, g).await;
    }
    if let Some((next, next_token)) = opts.next.clone() {
        match groups.first() {
            Some(g) => hop_checks(&mut s, g, &next, &next_token).await,
            None => s.skip("hops".into(), "no group to send through"),
        }
    }
    if opts.agents {
        match groups.first() {
            Some(g) => {
                for agent in [Agent::Codex, Agent::Claude] {
                    agent_check(&mut s, agent, g).await;
                }
            }
            None => s.skip("agents".into(), "no group to run them on"),
        }
    }
    // The usage the router recorded for exactly these requests.
    let mut usage = Vec::new();
    match opts.admin_token.clone() {
        None => s.skip("usage excerpt".into(), "no --admin-token-env given"),
        Some(t) => {
            let t0 = Instant::now();
            let ids = s.request_ids.clone();
            let mut missing = Vec::new();
            for id in &ids {
                let found = records_of(&s.http, &t, id).await;
                match found {
                    Some(v) if v["records"].is_array() => {
                        for rec in v["records"].as_array().unwrap() {
                            usage.push(json!({
                                "request_id": rec["request_id"],
                                "group": rec["group"],
                                "provider": rec["provider"],
                                "model": rec["model"],
                                "status": rec["status"],
                                "http_status": rec["http_status"],
                                "attempts": rec["attempts"],
                                "fallback": rec["fallback"],
                                "latency_ms": rec["latency_ms"],
                                "input_tokens": rec["input_tokens"],
                                "output_tokens": rec["output_tokens"],
                                "cost_usd": rec["cost_usd"],
                                "config_hash": rec["config_hash"],
                            }));
                        }
                    }
                    Some(v) => {
                        missing.push(format!("{id}: {}", v["error"].as_str().unwrap_or("?")))
                    }
                    None => missing.push(format!("{id}: not recorded within 5 s")),
                }
            }
            if ids.is_empty() {
                s.skip("usage excerpt".into(), "no model request was made");
            } else if missing.is_empty() {
                let d = format!("{} records for {} requests", usage.len(), ids.len());
                s.record("usage excerpt".into(), Outcome::Pass, d, None, t0);
            } else {
                let d = format!(
                    "{} of {} requests: {}",
                    missing.len(),
                    ids.len(),
                    missing.join("; ")
                );
                let outcome = if missing.iter().all(|m| m.contains("store")) {
                    Outcome::Skip
                } else {
                    Outcome::Fail
                };
                s.record("usage excerpt".into(), outcome, d, None, t0);
            }
            match s
                .call("GET", "/admin/license", Auth::Bearer(&t), None, None)
                .await
            {
                Ok(r) if r.status == 200 => {
                    let j = r.json();
                    let word = j["status"].as_str().unwrap_or("?").to_string();
                    let d = match j["license"]["license_id"].as_str() {
                        Some(id) => format!(
                            "{word} ({id}, expires {})",
                            j["license"]["expires_at"].as_str().unwrap_or("?")
                        ),
                        None => word.clone(),
                    };
                    let ok = matches!(word.as_str(), "licensed" | "grace" | "unlicensed");
                    let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
                    s.record("license".into(), outcome, d, None, Instant::now());
                }
                Ok(r) => s.record(
                    "license".into(),
                    Outcome::Fail,
                    r.error(),
                    None,
                    Instant::now(),
                ),
                Err(e) => s.record("license".into(), Outcome::Fail, e, None, Instant::now()),
            }
        }
    }
    if opts.admin_token.is_none() {
        let word = version["license"].as_str().unwrap_or("?").to_string();
        let ok = matches!(word.as_str(), "licensed" | "grace" | "unlicensed");
        let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
        s.record(
            "license (from /version)".into(),
            outcome,
            word,
            None,
            Instant::now(),
        );
    }
    Ok(Report {
        base_url: opts.base_url,
        at: router::time::rfc3339_ms(router::time::now_ms()),
        checks: s.checks,
        usage,
        version,
    })
}

/// `GET /admin/requests/{id}` with `token`, waiting up to 5 s for the record to be written:
/// the answer (`{"records": [...]}`), or `{"error": ...}`; `None` when nothing came.
async fn records_of(http: &Http, token: &str, id: &str) -> Option<Value> {
    // The writer flushes every few hundred ms.
    for _ in 0..50 {
        let auth = [("authorization", format!("Bearer {token}"))];
        match http
            .call("GET", &format!("/admin/requests/{id}"), &auth, None)
            .await
        {
            Ok(r) if r.status == 200 => return Some(r.json()),
            Ok(r) if r.status == 404 => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(r) => return Some(json!({"error": r.error()})),
            Err(e) => return Some(json!({"error": e})),
        }
    }
    None
}

/// The budget (`hop: timeout_ms=N`) a record says its router was given.
fn hop_budget(records: &Value) -> Option<u64> {
    records["records"].as_array()?.iter().find_map(|r| {
        r["annotations"].as_array()?.iter().find_map(|a| {
            (a["stage"] == "hop")
                .then(|| {
                    a["note"]
                        .as_str()?
                        .strip_prefix("timeout_ms=")?
                        .parse()
                        .ok()
                })
                .flatten()
        })
    })
}

/// `--hops`: a request through this router to the next one carries its id there (with this
/// router as its parent), and the time budget shrinks across the hop.
async fn hop_checks(s: &mut Smoke, g: &str, next: &str, next_token: &str) {
    const SENT_MS: u64 = 30_000;
    let id = s.next_id();
    let t = Instant::now();
    let token = s.opts.token.clone();
    let body = json!({"model": g, "max_tokens": 16, "messages": [{"role": "user", "content": "Reply with OK."}]});
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("x-request-id", id.clone()),
        ("x-router-timeout-ms", SENT_MS.to_string()),
    ];
    match s
        .http
        .call("POST", "/v1/chat/completions", &headers, Some(&body))
        .await
    {
        Ok(r) if r.status == 200 => {}
        Ok(r) => {
            s.record(
                format!("hop: request [{g}]"),
                Outcome::Fail,
                r.error(),
                Some(id),
                t,
            );
            return;
        }
        Err(e) => {
            s.record(format!("hop: request [{g}]"), Outcome::Fail, e, Some(id), t);
            return;
        }
    }
    let next_http = Http::new(next, s.opts.timeout);
    let inner = records_of(&next_http, next_token, &id).await;
    let parent = inner
        .as_ref()
        .and_then(|v| v["records"].as_array()?.first().cloned())
        .map(|r| r["parent_id"].clone());
    match (&inner, parent) {
        (Some(_), Some(Value::String(p))) => {
            let d = format!("the next router recorded {id} with parent {p:?}");
            s.record(
                format!("hop: request id at the next router [{g}]"),
                Outcome::Pass,
                d,
                Some(id.clone()),
                t,
            );
        }
        (Some(v), _) if v["error"].is_string() => {
            let d = format!(
                "the next router's /admin/requests: {}",
                v["error"].as_str().unwrap_or("?")
            );
            s.record(
                format!("hop: request id at the next router [{g}]"),
                Outcome::Fail,
                d,
                Some(id.clone()),
                t,
            );
        }
        _ => {
            let d = format!(
                "the next router has no record of {id} from a parent router (is --next-base-url this router's upstream?)"
            );
            s.record(
                format!("hop: request id at the next router [{g}]"),
                Outcome::Fail,
                d,
                Some(id.clone()),
                t,
            );
        }
    }
    let inner_budget = inner.as_ref().and_then(hop_budget);
    let outer_budget = match &s.opts.admin_token {
        Some(a) => records_of(&s.http, a, &id)
            .await
            .as_ref()
            .and_then(hop_budget),
        None => Some(SENT_MS),
    };
    let name = format!("hop: time budget shrinks [{g}]");
    match (outer_budget, inner_budget) {
        (Some(o), Some(i)) if i < o => {
            s.record(
                name,
                Outcome::Pass,
                format!("{o} ms here, {i} ms at the next router"),
                Some(id),
                t,
            );
        }
        (o, i) => {
            let d = format!("budget here {o:?} ms, at the next router {i:?} ms");
            s.record(name, Outcome::Fail, d, Some(id), t);
        }
    }
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

/// Text, stream, tools, image and structured output for one group, in each dialect.
async fn dialect_checks(s: &mut Smoke, g: &str) {
    let ask = "Reply with the single word OK.";
    // Chat Completions.
    s.model_check(
        format!("chat text [{g}]"),
        "/v1/chat/completions",
        false,
        json!({"model": g, "max_tokens": 32, "messages": [{"role": "user", "content": ask}]}),
        false,
        |r| {
            let j = r.json();
            let text = j["choices"][0]["message"]["content"].as_str().unwrap_or("");
            if text.is_empty() {
                return Err("no text in choices[0].message.content".into());
            }
            Ok(format!(
                "{} chars, {} output tokens",
                text.len(),
                j["usage"]["completion_tokens"]
            ))
        },
    )
    .await;
    s.model_check(
        format!("chat stream [{g}]"),
        "/v1/chat/completions",
        false,
        json!({"model": g, "max_tokens": 32, "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": ask}]}),
        false,
        |r| {
            let data = r.sse();
            if data.last().map(String::as_str) != Some("[DONE]") {
                return Err("the stream did not end with [DONE]".into());
            }
            let text: usize = data
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::len))
                .sum();
            if text == 0 {
                return Err("no content deltas".into());
            }
            Ok(format!("{} events, {text} chars", data.len()))
        },
    )
    .await;
    // Responses.
    s.model_check(
        format!("responses text [{g}]"),
        "/v1/responses",
        false,
        json!({"model": g, "max_output_tokens": 32, "input": ask}),
        false,
        |r| {
            let j = r.json();
            let text: String = j["output"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|o| o["content"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c["text"].as_str().map(str::to_string))
                .collect();
            if text.is_empty() || j["status"] != "completed" {
                return Err(format!(
                    "status {}, {} chars of output text",
                    j["status"],
                    text.len()
                ));
            }
            Ok(format!("{} chars", text.len()))
        },
    )
    .await;
    s.model_check(
        format!("responses stream [{g}]"),
        "/v1/responses",
        false,
        json!({"model": g, "max_output_tokens": 32, "stream": true, "input": ask}),
        false,
        |r| {
            let events: Vec<Value> = r
                .sse()
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect();
            let done = events.iter().any(|e| e["type"] == "response.completed");
            let deltas = events
                .iter()
                .filter(|e| e["type"] == "response.output_text.delta")
                .count();
            if !done || deltas == 0 {
                return Err(format!(
                    "{} events, completed: {done}, text deltas: {deltas}",
                    events.len()
                ));
            }
            Ok(format!("{} events", events.len()))
        },
    )
    .await;
    // Anthropic Messages.
    s.model_check(
        format!("messages text [{g}]"),
        "/v1/messages",
        true,
        json!({"model": g, "max_tokens": 32, "messages": [{"role": "user", "content": ask}]}),
        false,
        |r| {
            let j = r.json();
            let text = j["content"][0]["text"].as_str().unwrap_or("");
            if text.is_empty() || j["type"] != "message" {
                return Err("no text block in content[0]".into());
            }
            Ok(format!(
                "{} chars, stop_reason {}",
                text.len(),
                j["stop_reason"]
            ))
        },
    )
    .await;
    s.model_check(
        format!("messages stream [{g}]"),
        "/v1/messages",
        true,
        json!({"model": g, "max_tokens": 32, "stream": true, "messages": [{"role": "user", "content": ask}]}),
        false,
        |r| {
            let events: Vec<Value> = r.sse().iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
            let stop = events.iter().any(|e| e["type"] == "message_stop");
            let deltas = events.iter().filter(|e| e["delta"]["type"] == "text_delta").count();
            if !stop || deltas == 0 {
                return Err(format!("{} events, message_stop: {stop}, text deltas: {deltas}", events.len()));
            }
            Ok(format!("{} events", events.len()))
        },
    )
    .await;
    tool_round_trips(s, g).await;
    // An image, for groups with a target that takes images.
    s.model_check(
        format!("image [{g}]"),
        "/v1/chat/completions",
        false,
        json!({"model": g, "max_tokens": 32, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What colour is this pixel? One word."},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PIXEL_PNG}")}}
        ]}]}),
        true,
        |r| {
            let text = r.json()["choices"][0]["message"]["content"].as_str().unwrap_or("").len();
            if text == 0 {
                return Err("no text".into());
            }
            Ok(format!("{text} chars"))
        },
    )
    .await;
    // Structured output, for groups with a json_schema target.
    s.model_check(
        format!("structured output [{g}]"),
        "/v1/chat/completions",
        false,
        json!({"model": g, "max_tokens": 64, "messages": [{"role": "user", "content": "Answer OK in the field `answer`."}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": {
                   "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false}}}}),
        true,
        |r| {
            let text = r.json()["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string();
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if v["answer"].is_string() => Ok("a JSON object with a string `answer`".into()),
                _ => Err("the reply is not a JSON object with a string `answer`".into()),
            }
        },
    )
    .await;
}

/// A forced tool call, then the tool's result sent back and a text answer, in each dialect.
async fn tool_round_trips(s: &mut Smoke, g: &str) {
    let ask = "What is the weather in Paris? Use the tool.";
    let result = "18 degrees and sunny";
    // Chat.
    let first = s
        .model_check(
            format!("chat tool call [{g}]"),
            "/v1/chat/completions",
            false,
            json!({"model": g, "max_tokens": 128, "messages": [{"role": "user", "content": ask}],
                   "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": weather_schema()}}],
                   "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
            true,
            |r| {
                let call = &r.json()["choices"][0]["message"]["tool_calls"][0];
                let args = call["function"]["arguments"].as_str().unwrap_or("");
                if call["function"]["name"] != "get_weather" || serde_json::from_str::<Value>(args).is_err() {
                    return Err("no get_weather call with JSON arguments".into());
                }
                Ok("get_weather called".into())
            },
        )
        .await;
    match first {
        None => s.skip(format!("chat tool result [{g}]"), "no tool call to answer"),
        Some(r) => {
            let msg = r.json()["choices"][0]["message"].clone();
            let id = msg["tool_calls"][0]["id"].clone();
            s.model_check(
                format!("chat tool result [{g}]"),
                "/v1/chat/completions",
                false,
                json!({"model": g, "max_tokens": 128, "messages": [
                    {"role": "user", "content": ask}, msg,
                    {"role": "tool", "tool_call_id": id, "content": result}],
                    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": weather_schema()}}]}),
                false,
                |r| {
                    let text = r.json()["choices"][0]["message"]["content"].as_str().unwrap_or("").len();
                    if text == 0 {
                        return Err("no text after the tool result".into());
                    }
                    Ok(format!("{text} chars"))
                },
            )
            .await;
        }
    }
    // Responses.
    let tool = json!({"type": "function", "name": "get_weather", "description": "Weather in a city", "parameters": weather_schema()});
    let first = s
        .model_check(
            format!("responses tool call [{g}]"),
            "/v1/responses",
            false,
            json!({"model": g, "max_output_tokens": 128, "input": ask, "tools": [tool],
                   "tool_choice": {"type": "function", "name": "get_weather"}}),
            true,
            |r| {
                let j = r.json();
                let call = j["output"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|o| o["type"] == "function_call");
                match call {
                    Some(c) if c["name"] == "get_weather" && c["call_id"].is_string() => {
                        Ok("get_weather called".into())
                    }
                    _ => Err("no function_call output item for get_weather".into()),
                }
            },
        )
        .await;
    match first {
        None => s.skip(
            format!("responses tool result [{g}]"),
            "no tool call to answer",
        ),
        Some(r) => {
            let j = r.json();
            let call = j["output"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["type"] == "function_call")
                .cloned()
                .unwrap_or(Value::Null);
            s.model_check(
                format!("responses tool result [{g}]"),
                "/v1/responses",
                false,
                json!({"model": g, "max_output_tokens": 128, "tools": [tool], "input": [
                    {"role": "user", "content": ask},
                    {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
                    {"type": "function_call_output", "call_id": call["call_id"], "output": result}]}),
                false,
                |r| {
                    let j = r.json();
                    let text: usize = j["output"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|o| o["content"].as_array().cloned().unwrap_or_default())
                        .filter_map(|c| c["text"].as_str().map(str::len))
                        .sum();
                    if text == 0 {
                        return Err("no output text after the tool result".into());
                    }
                    Ok(format!("{text} chars"))
                },
            )
            .await;
        }
    }
    // Messages.
    let tool = json!({"name": "get_weather", "description": "Weather in a city", "input_schema": weather_schema()});
    let first = s
        .model_check(
            format!("messages tool call [{g}]"),
            "/v1/messages",
            true,
            json!({"model": g, "max_tokens": 128, "messages": [{"role": "user", "content": ask}],
                   "tools": [tool], "tool_choice": {"type": "tool", "name": "get_weather"}}),
            true,
            |r| {
                let j = r.json();
                let call = j["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "tool_use");
                match call {
                    Some(c) if c["name"] == "get_weather" && c["input"].is_object() => {
                        Ok("get_weather called".into())
                    }
                    _ => Err("no tool_use block for get_weather".into()),
                }
            },
        )
        .await;
    match first {
        None => s.skip(
            format!("messages tool result [{g}]"),
            "no tool call to answer",
        ),
        Some(r) => {
            let j = r.json();
            let id = j["content"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "tool_use")
                .map(|c| c["id"].clone())
                .unwrap_or(Value::Null);
            s.model_check(
                format!("messages tool result [{g}]"),
                "/v1/messages",
                true,
                json!({"model": g, "max_tokens": 128, "tools": [tool], "messages": [
                    {"role": "user", "content": ask},
                    {"role": "assistant", "content": j["content"]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": result}]}]}),
                false,
                |r| {
                    let text: usize = r.json()["content"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["text"].as_str().map(str::len))
                        .sum();
                    if text == 0 {
                        return Err("no text after the tool result".into());
                    }
                    Ok(format!("{text} chars"))
                },
            )
            .await;
        }
    }
}

/// Reads a token from an environment variable (tokens never go on the command line).
pub(crate) fn token_from_env(var: &str) -> Result<String> {
    let t = std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
    anyhow::ensure!(!t.trim().is_empty(), "environment variable {var} is empty");
    Ok(t.trim().to_string())
}

/// A coding agent the smoke can drive.
#[derive(Debug, Clone, Copy)]
enum Agent {
    Codex,
    Claude,
}

/// The file-writing task the agents get, and what the file must hold afterwards.
const AGENT_TASK: &str = "Create a file named hello.txt containing exactly: hello from the router";
const AGENT_FILE_TEXT: &str = "hello from the router";

/// An executable on `PATH`.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Runs `codex exec` or `claude -p` on the file task through group `g`, in a scratch home
/// and work directory, with telemetry and update checks off.
async fn agent_check(s: &mut Smoke, agent: Agent, g: &str) {
    let (bin, name) = match agent {
        Agent::Codex => ("codex", format!("agent codex exec [{g}]")),
        Agent::Claude => ("claude", format!("agent claude -p [{g}]")),
    };
    let Some(exe) = on_path(bin) else {
        s.skip(name, &format!("{bin} is not on PATH"));
        return;
    };
    let t = Instant::now();
    let base = s.opts.base_url.trim_end_matches('/').to_string();
    let token = s.opts.token.clone();
    let group = g.to_string();
    let timeout = s.opts.timeout.max(Duration::from_secs(240));
    let result = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let root = std::env::temp_dir().join(format!("smart-router-smoke-{bin}-{}", router::ids::uuid_v7()));
        let (home, work) = (root.join("home"), root.join("work"));
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.current_dir(&work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        match agent {
            Agent::Codex => {
                let config = format!(
                    "model = \"{group}\"\nmodel_provider = \"smart-router\"\n\n[model_providers.smart-router]\nname = \"smart-router\"\nbase_url = \"{base}/v1\"\nenv_key = \"ROUTER_TOKEN\"\nwire_api = \"responses\"\nsupports_websockets = false\n"
                );
                std::fs::write(home.join("config.toml"), config).map_err(|e| e.to_string())?;
                cmd.env("CODEX_HOME", &home).env("ROUTER_TOKEN", &token).args([
                    "exec", "--skip-git-repo-check", "--ephemeral", "-s", "workspace-write", AGENT_TASK,
                ]);
            }
            Agent::Claude => {
                cmd.env("ANTHROPIC_BASE_URL", &base)
                    .env("ANTHROPIC_AUTH_TOKEN", &token)
                    .env("ANTHROPIC_MODEL", &group)
                    .env("ANTHROPIC_SMALL_FAST_MODEL", &group)
                    .env("DISABLE_TELEMETRY", "1")
                    .env("DISABLE_AUTOUPDATER", "1")
                    .env("DISABLE_ERROR_REPORTING", "1")
                    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                    .args(["-p", AGENT_TASK, "--permission-mode", "acceptEdits", "--output-format", "json"]);
            }
        }
        let child = cmd.spawn().map_err(|e| format!("starting {bin}: {e}"))?;
        let out = wait_with_timeout(child, timeout)?;
        let written = std::fs::read_to_string(work.join("hello.txt")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&root);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{bin} exited with {}: {}", out.status, clip(err.trim())));
        }
        if written.trim_end_matches('\n') != AGENT_FILE_TEXT {
            return Err(format!("{bin} finished but hello.txt holds {:?}", clip(&written)));
        }
        Ok("wrote hello.txt through the router".into())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match result {
        Ok(d) => s.record(name, Outcome::Pass, d, None, t),
        Err(e) => s.record(name, Outcome::Fail, e, None, t),
    }
}

/// Waits for `child` up to `timeout` (then kills it), collecting its output.
fn wait_with_timeout(
    mut child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    use std::io::Read;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let readers = (
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut b);
            }
            b
        }),
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut b);
            }
            b
        }),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no result within {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(std::process::Output {
        status,
        stdout: readers.0.join().unwrap_or_default(),
        stderr: readers.1.join().unwrap_or_default(),
    })
}
