//! Dynamic routing rules and external policies (issue 17): rules route by caller, client,
//! content shape, headers and target health, first match wins, deny in every dialect, fail
//! open or closed, shadow; external policies over OPA's Data API (wire shape, allow, deny,
//! route, allow-listed headers, timeouts, refused connections, garbage, undefined decisions,
//! the circuit breaker, the decision cache, shadow), with evidence on records and in metrics.

mod common;

use axum::extract::State;
use axum::http::HeaderMap as AxHeaders;
use bytes::Bytes;
use common::{Harness, send};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BASE: &str = r#"
rules_headers = ["x-region"]
[server]
listen = "127.0.0.1:0"
[providers.fake]
kind = "openai"
base_url = "FAKE"
[providers.claude]
kind = "anthropic"
base_url = "FAKE_ROOT"
[groups.coder]
strategy = "priority"
[[groups.coder.targets]]
provider = "fake"
model = "m-default"
capabilities = ["tools", "images"]
[[groups.coder.targets]]
provider = "fake"
model = "m-big"
capabilities = ["tools", "images"]
RULES
[groups.vision]
[[groups.vision.targets]]
provider = "fake"
model = "m-vision"
capabilities = ["images"]
[groups.eu]
[[groups.eu.targets]]
provider = "claude"
model = "m-eu"
capabilities = ["tools", "images"]
[[callers]]
name = "app"
project = "proj"
groups = ["coder"]
token = "app-token"
[[callers]]
name = "vee"
team = "vision"
groups = ["coder"]
token = "vee-token"
[[callers]]
name = "metrics"
roles = ["metrics-admin", "report-admin"]
groups = ["*"]
token = "metrics-token"
POLICIES
"#;

fn config(rules: &str, policies: &str) -> String {
    BASE.replace("RULES", rules).replace("POLICIES", policies)
}

const RULES: &str = r#"
[[groups.coder.rules]]
name = "broken-skip"
when = 'headers[caller.name] == "x"'
route = { deny = "never" }
[[groups.coder.rules]]
name = "vision-team-images"
when = 'request.has_images && caller.team == "vision"'
route = { targets = ["fake/m-vision"] }
[[groups.coder.rules]]
name = "eu-shadow"
when = 'headers["x-region"] == "eu"'
route = { deny = "shadow rules never deny" }
mode = "shadow"
[[groups.coder.rules]]
name = "eu-region"
when = 'headers["x-region"] == "eu"'
route = { group = "eu" }
[[groups.coder.rules]]
name = "long-prompts"
when = 'request.estimated_input_tokens > 2000 && targets["fake/m-big"].healthy'
route = { targets = ["fake/m-big"] }
[[groups.coder.rules]]
name = "no-codex"
when = 'request.client == "codex"'
route = { deny = "Codex is not allowed on this group" }
"#;

fn chat(text: &str, image: bool) -> Value {
    let content = if image {
        json!([{"type": "text", "text": text},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    } else {
        json!(text)
    };
    json!({"model": "coder", "messages": [{"role": "user", "content": content}]})
}

async fn post(h: &Harness, token: &str, body: &Value, extra: &[(&str, &str)]) -> common::Resp {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    send(
        "POST",
        &h.url("/v1/chat/completions"),
        &headers,
        Bytes::from(body.to_string()),
    )
    .await
}

/// The model the fake upstream received last.
fn last_model(h: &Harness) -> String {
    let reqs = h.fake.requests();
    reqs.last().expect("a request upstream").body["model"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn metrics(h: &Harness) -> String {
    send(
        "GET",
        &h.url("/metrics"),
        &[("authorization", "Bearer metrics-token")],
        Bytes::new(),
    )
    .await
    .text()
}

fn notes(o: &router::outcome::RequestOutcome) -> String {
    o.annotations
        .iter()
        .map(|a| format!("{}: {}", a.stage, a.note))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_by_caller_content_headers_and_client_first_match_wins() {
    let mut h = Harness::with_config(&config(RULES, "")).await;

    // No rule matches: the group's own plan (priority: m-default). The failing rule is skipped.
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_model(&h), "m-default");
    let o = h.outcome().await;
    assert_eq!(o.rule, None);
    assert!(notes(&o).contains("error in broken-skip"), "{}", notes(&o));

    // The vision team's images go to the vision target; the same request from `app` does not.
    post(&h, "vee-token", &chat("see", true), &[]).await;
    assert_eq!(last_model(&h), "m-vision");
    assert_eq!(
        h.outcome().await.rule.as_deref(),
        Some("vision-team-images")
    );
    post(&h, "app-token", &chat("see", true), &[]).await;
    assert_eq!(last_model(&h), "m-default");
    h.outcome().await;

    // A listed header routes to another group (an Anthropic upstream: translated); the shadow
    // rule before it matched too, was recorded, and denied nothing.
    let r = post(&h, "app-token", &chat("hi", false), &[("x-region", "eu")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_model(&h), "m-eu");
    let o = h.outcome().await;
    assert_eq!(o.rule.as_deref(), Some("eu-region"));
    assert!(
        notes(&o).contains("shadow match eu-shadow"),
        "{}",
        notes(&o)
    );

    // A long prompt goes to the big target (while it is healthy).
    let long = "word ".repeat(3000);
    post(&h, "app-token", &chat(&long, false), &[]).await;
    assert_eq!(last_model(&h), "m-big");
    assert_eq!(h.outcome().await.rule.as_deref(), Some("long-prompts"));

    // Order: a long prompt with images from the vision team matches the earlier rule.
    post(&h, "vee-token", &chat(&long, true), &[]).await;
    assert_eq!(last_model(&h), "m-vision");
    h.outcome().await;

    // The client rule denies Codex, 403 policy_denied with the operator's reason.
    let upstream_before = h.fake.requests().len();
    let r = post(
        &h,
        "app-token",
        &chat("hi", false),
        &[
            ("user-agent", "codex_exec/0.1"),
            ("originator", "codex_exec"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["code"], "policy_denied");
    assert_eq!(e["error"]["message"], "Codex is not allowed on this group");
    assert_eq!(
        h.fake.requests().len(),
        upstream_before,
        "denied before upstream"
    );
    let o = h.outcome().await;
    assert_eq!(o.rule.as_deref(), Some("no-codex"));
    assert_eq!(o.http_status, 403);

    let m = metrics(&h).await;
    for line in [
        r#"smart_router_rule_evaluations_total{group="coder",rule="vision-team-images",outcome="matched"} 2"#,
        r#"smart_router_rule_evaluations_total{group="coder",rule="eu-shadow",outcome="shadow_matched"} 1"#,
        r#"smart_router_rule_evaluations_total{group="coder",rule="no-codex",outcome="matched"} 1"#,
        r#"smart_router_rule_evaluations_total{group="coder",rule="broken-skip",outcome="error"} 7"#,
    ] {
        assert!(m.contains(line), "{line} not in metrics:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_speak_each_dialect_and_on_error_deny_fails_closed() {
    let rules = r#"
[[groups.coder.rules]]
name = "closed"
when = 'headers[caller.name] == "x"'
route = { targets = ["fake/m-big"] }
on_error = "deny"
"#;
    let mut h = Harness::with_config(&config(rules, "")).await;
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "policy_denied");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be evaluated")
    );
    assert_eq!(h.outcome().await.rule.as_deref(), Some("closed"));
    // The same denial on the Anthropic surface has Anthropic's error shape.
    let r = send(
        "POST",
        &h.url("/v1/messages"),
        &[
            ("x-api-key", "app-token"),
            ("anthropic-version", "2023-06-01"),
        ],
        Bytes::from(
            json!({"model": "coder", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let e = r.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "permission_error");
    assert!(h.fake.requests().is_empty(), "nothing went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_health_is_seen_by_rules() {
    let rules = r#"
[[groups.coder.rules]]
name = "big-when-healthy"
when = 'targets["fake/m-big"].healthy && !targets["fake/m-big"].cooling'
route = { targets = ["fake/m-big"] }
"#;
    let mut h = Harness::with_config(&config(rules, "")).await;
    post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(last_model(&h), "m-big");
    h.outcome().await;
    // A failure of m-big (the rule's only target: no fallback) makes it unhealthy; the rule no
    // longer matches and the group's own plan serves.
    h.fake.enqueue(fake_upstream::Script {
        status: Some(503),
        ..Default::default()
    });
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(last_model(&h), "m-big");
    h.outcome().await;
    post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(last_model(&h), "m-default");
    assert_eq!(h.outcome().await.rule, None);
}

/// An OPA-like policy service: records what it is asked and answers as told.
#[derive(Clone, Default)]
struct Opa {
    asked: Arc<Mutex<Vec<(String, AxHeaders, Value)>>>,
    answer: Arc<Mutex<Answer>>,
}

#[derive(Clone, Default)]
enum Answer {
    #[default]
    Allow,
    Json(Value),
    Status(u16),
    Garbage,
    Slow(Duration),
}

impl Opa {
    async fn start() -> (Opa, String) {
        let opa = Opa::default();
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(Self::handle))
            .with_state(opa.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/data/router/decision",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (opa, url)
    }

    async fn handle(
        State(opa): State<Opa>,
        uri: axum::http::Uri,
        headers: AxHeaders,
        body: Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        opa.asked
            .lock()
            .unwrap()
            .push((uri.path().to_string(), headers, v));
        let answer = opa.answer.lock().unwrap().clone();
        match answer {
            Answer::Allow => axum::Json(json!({"result": {"allow": true}})).into_response(),
            Answer::Json(v) => axum::Json(v).into_response(),
            Answer::Status(s) => axum::http::StatusCode::from_u16(s).unwrap().into_response(),
            Answer::Garbage => "this is not json".into_response(),
            Answer::Slow(d) => {
                tokio::time::sleep(d).await;
                axum::Json(json!({"result": true})).into_response()
            }
        }
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn count(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

fn policy(url: &str, extra: &str) -> String {
    format!(
        r#"
[[policies]]
name = "central"
url = "{url}"
headers = {{ authorization = "Bearer policy-secret" }}
allow_headers = ["x-tenant"]
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_asked_over_opas_data_api_and_its_decisions_are_followed() {
    let (opa, url) = Opa::start().await;
    let rules = r#"
[[groups.coder.rules]]
name = "vision-team-images"
when = 'request.has_images && caller.team == "vision"'
route = { targets = ["fake/m-vision"] }
"#;
    let mut h = Harness::with_config(&config(
        rules,
        &policy(&url, "on_error = \"deny\"\ntimeout_ms = 2000"),
    ))
    .await;

    // Wire shape: POST {"input": ...} to the URL with the configured header; the input has
    // the rule variables and the rule that matched, and no token, key or content.
    let r = post(
        &h,
        "vee-token",
        &chat("my secret prompt", true),
        &[("x-region", "eu")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    {
        let asked = opa.asked.lock().unwrap();
        let (path, headers, body) = asked.last().unwrap();
        assert_eq!(path, "/v1/data/router/decision");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["authorization"], "Bearer policy-secret");
        let input = &body["input"];
        assert_eq!(input["caller"]["name"], "vee");
        assert_eq!(input["caller"]["team"], "vision");
        assert_eq!(input["request"]["group"], "coder");
        assert_eq!(input["request"]["has_images"], true);
        assert_eq!(input["request"]["surface"], "openai_chat");
        assert_eq!(input["headers"], json!({"x-region": "eu"}));
        assert_eq!(input["rule"], "vision-team-images");
        assert!(input["time"]["hour"].is_u64());
        assert!(
            input["targets"]["fake/m-default"]["healthy"]
                .as_bool()
                .unwrap()
        );
        assert!(input.get("content").is_none());
        let text = body.to_string();
        assert!(
            !text.contains("vee-token") && !text.contains("secret prompt"),
            "{text}"
        );
    }
    let o = h.outcome().await;
    assert!(notes(&o).contains("central: allow in"), "{}", notes(&o));

    // Deny with the operator's reason.
    opa.set(Answer::Json(
        json!({"result": {"allow": false, "reason": "Outside business hours"}}),
    ));
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "policy_denied");
    assert_eq!(r.json()["error"]["message"], "Outside business hours");
    h.outcome().await;
    // A bare boolean result works too.
    opa.set(Answer::Json(json!({"decision_id": "d1", "result": false})));
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error"]["message"],
        "The request was refused by policy."
    );
    h.outcome().await;

    // Route to a group, with an allow-listed header for the upstream (the other is dropped).
    opa.set(Answer::Json(
        json!({"result": {"allow": true, "route": {"group": "vision"},
        "headers": {"x-tenant": "blue", "x-evil": "1", "authorization": "Bearer stolen"}}}),
    ));
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = h.fake.requests().last().unwrap().clone();
    assert_eq!(up.body["model"], "m-vision");
    assert_eq!(up.header("x-tenant"), Some("blue"));
    assert_eq!(up.header("x-evil"), None);
    assert_ne!(up.header("authorization"), Some("Bearer stolen"));
    let o = h.outcome().await;
    assert!(
        notes(&o).contains("2 header(s) not allow-listed dropped"),
        "{}",
        notes(&o)
    );
    // Route to targets.
    opa.set(Answer::Json(
        json!({"result": {"allow": true, "route": {"targets": ["fake/m-big"]}}}),
    ));
    post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(last_model(&h), "m-big");
    h.outcome().await;

    // A route to nothing, garbage, an error status, an undefined decision: on_error = deny.
    for bad in [
        Answer::Json(json!({"result": {"allow": true, "route": {"group": "nope"}}})),
        Answer::Garbage,
        Answer::Status(500),
        Answer::Json(json!({})),
        Answer::Json(json!({"result": {"reason": "no allow"}})),
    ] {
        opa.set(bad);
        let r = post(&h, "app-token", &chat("hi", false), &[]).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("gave no decision")
        );
        let o = h.outcome().await;
        assert!(notes(&o).contains("error:"), "{}", notes(&o));
        assert!(notes(&o).contains("on_error=deny"), "{}", notes(&o));
    }
    let m = metrics(&h).await;
    assert!(
        m.contains(r#"smart_router_policy_decisions_total{policy="central",outcome="error",source="service",mode="enforce"} 5"#),
        "{m}"
    );
    assert!(m.contains(r#"smart_router_policy_decisions_total{policy="central",outcome="route",source="service",mode="enforce"} 2"#), "{m}");
    assert!(m.contains("smart_router_policy_duration_seconds_count{policy=\"central\"}"));
    assert!(!m.contains("policy-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_follow_on_error_and_open_the_breaker() {
    let (opa, url) = Opa::start().await;
    opa.set(Answer::Slow(Duration::from_millis(500)));
    let extra =
        "on_error = \"allow\"\ntimeout_ms = 50\nbreaker_failures = 3\nbreaker_open_ms = 60000";
    let mut h = Harness::with_config(&config("", &policy(&url, extra))).await;
    // Fail open: each slow answer times out after ~50 ms and the request goes on.
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let r = post(&h, "app-token", &chat("hi", false), &[]).await;
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        let o = h.outcome().await;
        assert!(notes(&o).contains("error: timeout"), "{}", notes(&o));
    }
    // Three failures opened the breaker: the service is not asked any more.
    let asked = opa.count();
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(opa.count(), asked);
    let o = h.outcome().await;
    assert!(
        notes(&o).contains("circuit open (breaker)"),
        "{}",
        notes(&o)
    );
    let m = metrics(&h).await;
    assert!(
        m.contains(r#"smart_router_policy_circuit_open{policy="central"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"smart_router_policy_decisions_total{policy="central",outcome="error",source="breaker",mode="enforce"} 1"#), "{m}");

    // After its open time the breaker lets a request try again; a success closes it.
    let (opa, url) = Opa::start().await;
    opa.set(Answer::Status(503));
    let extra = "on_error = \"deny\"\nbreaker_failures = 2\nbreaker_open_ms = 300";
    let mut h = Harness::with_config(&config("", &policy(&url, extra))).await;
    for _ in 0..2 {
        assert_eq!(
            post(&h, "app-token", &chat("hi", false), &[]).await.status,
            403
        );
        h.outcome().await;
    }
    assert_eq!(
        post(&h, "app-token", &chat("hi", false), &[]).await.status,
        403
    );
    assert!(notes(&h.outcome().await).contains("circuit open"));
    assert_eq!(opa.count(), 2);
    opa.set(Answer::Allow);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        post(&h, "app-token", &chat("hi", false), &[]).await.status,
        200
    );
    h.outcome().await;
    assert_eq!(opa.count(), 3);
    let m = metrics(&h).await;
    assert!(
        m.contains(r#"smart_router_policy_circuit_open{policy="central"} 0"#),
        "{m}"
    );

    // A refused connection, failing closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let extra = "on_error = \"deny\"\ntimeout_ms = 1000";
    let mut h = Harness::with_config(&config(
        "",
        &policy(&format!("http://{closed}/v1/data/x"), extra),
    ))
    .await;
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 403);
    let o = h.outcome().await;
    assert!(notes(&o).contains("error: unreachable"), "{}", notes(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_decisions_and_shadow_mode() {
    let (opa, url) = Opa::start().await;
    let extra = "on_error = \"deny\"\ncache_ttl_ms = 60000";
    let mut h = Harness::with_config(&config("", &policy(&url, extra))).await;
    for _ in 0..3 {
        assert_eq!(
            post(&h, "app-token", &chat("hi", false), &[]).await.status,
            200
        );
        h.outcome().await;
    }
    assert_eq!(opa.count(), 1, "one ask, then the cache");
    // Another caller is another cache key.
    post(&h, "vee-token", &chat("hi", false), &[]).await;
    let o = h.outcome().await;
    assert_eq!(opa.count(), 2);
    assert!(notes(&o).contains("allow in"), "{}", notes(&o));
    post(&h, "vee-token", &chat("hi", false), &[]).await;
    assert!(notes(&h.outcome().await).contains("allow (cache)"));

    // Shadow: a deny is recorded and changes nothing.
    let (opa, url) = Opa::start().await;
    opa.set(Answer::Json(
        json!({"result": {"allow": false, "reason": "no"}}),
    ));
    let extra = "on_error = \"deny\"\nmode = \"shadow\"";
    let mut h = Harness::with_config(&config("", &policy(&url, extra))).await;
    let r = post(&h, "app-token", &chat("hi", false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let o = h.outcome().await;
    assert!(notes(&o).contains("central: shadow deny"), "{}", notes(&o));
    opa.set(Answer::Garbage);
    assert_eq!(
        post(&h, "app-token", &chat("hi", false), &[]).await.status,
        200
    );
    let m = metrics(&h).await;
    assert!(m.contains(r#"smart_router_policy_decisions_total{policy="central",outcome="deny",source="service",mode="shadow"} 1"#), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_goes_to_a_policy_only_when_capture_allows_it() {
    let (opa, url) = Opa::start().await;
    let extra = "on_error = \"allow\"\nsend_content = true";
    // No capture policy: no content even with send_content.
    let mut h = Harness::with_config(&config("", &policy(&url, extra))).await;
    post(&h, "app-token", &chat("the prompt text", false), &[]).await;
    h.outcome().await;
    assert!(
        opa.asked.lock().unwrap()[0].2["input"]
            .get("content")
            .is_none()
    );
    // A capture policy covering the request: the text places are sent.
    let capture = "[[capture_policies]]\nname = \"all\"\ncapture = \"all\"\n";
    let mut h =
        Harness::with_config(&config("", &format!("{}{capture}", policy(&url, extra)))).await;
    post(&h, "app-token", &chat("the prompt text", false), &[]).await;
    h.outcome().await;
    let asked = opa.asked.lock().unwrap();
    assert_eq!(asked[1].2["input"]["content"], json!(["the prompt text"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_name_the_rule_and_reports_group_by_it() {
    for url in [common::sqlite_url(), common::postgres_url()] {
        let h = Harness::with_store(&config(RULES, ""), &url).await;
        post(&h, "vee-token", &chat("see", true), &[]).await;
        post(&h, "vee-token", &chat("see", true), &[]).await;
        post(&h, "app-token", &chat("hi", false), &[("x-region", "eu")]).await;
        post(&h, "app-token", &chat("hi", false), &[]).await;
        assert!(h.written(4).await);
        let r = send(
            "GET",
            &h.url("/admin/reports/usage?group_by=rule"),
            &[("authorization", "Bearer metrics-token")],
            Bytes::new(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rows = r.json()["rows"].as_array().unwrap().clone();
        let count = |rule: &str| {
            rows.iter()
                .find(|r| r["key"]["rule"] == rule)
                .map_or(0, |r| r["requests"].as_i64().unwrap())
        };
        assert_eq!(
            (count("vision-team-images"), count("eu-region"), count("")),
            (2, 1, 1),
            "{rows:?}"
        );
        let store = h.store.clone().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move { store.export(i64::MIN, i64::MAX, tx).await });
        let mut annotated = 0;
        while let Some(rec) = rx.recv().await {
            let rec = rec.unwrap();
            if rec.rule.as_deref() == Some("eu-region") {
                assert!(
                    rec.annotations.contains("shadow match eu-shadow"),
                    "{}",
                    rec.annotations
                );
                annotated += 1;
            }
        }
        assert_eq!(annotated, 1);
    }
}

#[test]
fn bad_rules_and_policies_are_reported_with_their_paths() {
    let rules = r#"
[[groups.coder.rules]]
name = "typo"
when = 'caller.teem == "x"'
route = { targets = ["fake/m-nope"] }
[[groups.coder.rules]]
name = "typo"
when = 'request.estimated_input_tokens > "many"'
route = { group = "coder" }
on_error = "ignore"
[[groups.coder.rules]]
name = "two-routes"
when = 'true'
route = { group = "eu", deny = "x" }
[[groups.coder.rules]]
name = "secret-header"
when = 'headers["authorization"] == "x"'
route = { deny = "x" }
"#;
    let policies = r#"
[[policies]]
name = "p"
url = "ftp://x"
on_error = "maybe"
allow_headers = ["authorization"]
"#;
    let text = config(rules, policies)
        .replace("FAKE_ROOT", "http://127.0.0.1:1")
        .replace("FAKE", "http://127.0.0.1:1/v1");
    let err = router::config::parse(&text).unwrap_err().to_string();
    for needle in [
        "groups.coder.rules[0].when: `caller` has no field `teem`",
        "did you mean `team`",
        "groups.coder.rules[0].route.targets[0]: no target",
        "groups.coder.rules[1].name",
        "groups.coder.rules[1].when: `>` orders numbers or strings",
        "groups.coder.rules[1].route.group: routes to its own group",
        "groups.coder.rules[1].on_error",
        "groups.coder.rules[2].route: give exactly one of targets, group or deny",
        "groups.coder.rules[3].when: header `authorization` is not in rules_headers",
        "policies[0].url",
        "policies[0].on_error",
        "policies[0].allow_headers[0]",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // Failing open or closed is never implicit.
    let text = config(
        "",
        "[[policies]]\nname = \"q\"\nurl = \"http://127.0.0.1:1/x\"\n",
    )
    .replace("FAKE_ROOT", "http://127.0.0.1:1")
    .replace("FAKE", "http://127.0.0.1:1/v1");
    let err = router::config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("on_error"), "{err}");
}
