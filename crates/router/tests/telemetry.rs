//! Issue 18: what a traced request carries (below the e2e test, which decodes the exported
//! spans of two routers): the caller's trace continued, each attempt's span sent upstream as
//! `traceparent`, the governance stages and routing timed, and nothing at all with telemetry
//! off.

mod common;

use common::Harness;
use serde_json::json;

fn config(telemetry: bool) -> String {
    let telemetry = if telemetry {
        "[telemetry]\notlp_endpoint = \"FAKE_ROOT\"\n"
    } else {
        ""
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.fake]
kind = "openai"
base_url = "FAKE"
[groups.g]
[[groups.g.targets]]
provider = "fake"
model = "m"
[[groups.g.rules]]
name = "never"
when = 'request.estimated_input_tokens > 1000000'
route = {{ deny = "too big" }}
[[callers]]
name = "app"
groups = ["g"]
token = "app-token"
{telemetry}"#
    )
}

async fn ask(h: &Harness, traceparent: Option<&str>) -> common::Resp {
    let mut headers = vec![("authorization", "Bearer app-token")];
    if let Some(t) = traceparent {
        headers.push(("traceparent", t));
    }
    common::send(
        "POST",
        &h.url("/v1/chat/completions"),
        &headers,
        bytes::Bytes::from(
            json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ),
    )
    .await
}

#[tokio::test]
async fn a_traced_request_continues_the_callers_trace_and_names_its_attempt_upstream() {
    let mut h = Harness::with_config(&config(true)).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = ask(&h, Some(&format!("00-{trace}-00f067aa0ba902b7-01"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let o = h.outcome().await;
    let t = o.trace.as_deref().expect("traced");
    assert_eq!(format!("{:032x}", t.trace_id), trace);
    assert_eq!(t.parent_span_id, Some(0x00f067aa0ba902b7));
    assert!(t.sampled);
    assert_ne!(t.span_id, 0);
    // The rules stage ran and was timed; routing planned one target.
    assert_eq!(t.stages.len(), 1, "{:?}", t.stages);
    let (name, from, to, denied) = &t.stages[0];
    assert!(!denied && from <= to, "{name}");
    let (plan_from, plan_to, planned) = t.plan.expect("routing timed");
    assert!(plan_from <= plan_to && planned == 1);
    // The attempt's span went upstream, after the stages.
    let a = &o.attempts[0];
    assert_ne!(a.span_id, 0);
    assert!(a.offset >= plan_to);
    let sent = h.fake.requests();
    let up = sent
        .iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .unwrap();
    assert_eq!(
        up.header("traceparent"),
        Some(format!("00-{trace}-{:016x}-01", a.span_id).as_str())
    );
    // Without a caller's trace, a new one (sampling 1.0 by default).
    assert_eq!(ask(&h, None).await.status, 200);
    let fresh = h.outcome().await;
    let ft = fresh.trace.as_deref().unwrap();
    assert!(ft.parent_span_id.is_none() && ft.sampled && ft.trace_id != t.trace_id);
}

#[tokio::test]
async fn with_telemetry_off_nothing_is_traced_or_sent() {
    let mut h = Harness::with_config(&config(false)).await;
    let r = ask(
        &h,
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    )
    .await;
    assert_eq!(r.status, 200);
    let o = h.outcome().await;
    assert!(o.trace.is_none());
    assert_eq!(o.attempts[0].span_id, 0);
    let sent = h.fake.requests();
    assert!(sent.iter().all(|r| r.header("traceparent").is_none()));
}
