//! Routing and resilience over HTTP: strategies, eligibility, retries, cooldown, deadlines,
//! affinity, explainability headers. The fake upstream records which model each attempt asked.

mod common;

use bytes::Bytes;
use common::{Harness, TOKEN, send};
use fake_upstream::Script;
use serde_json::{Value, json};

const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
[routing]
cooldown_after_failures = 2
cooldown_ms = 400
retry_backoff_ms = 1
[providers.fake]
kind = "openai"
base_url = "FAKE"
[[callers]]
name = "app"
groups = ["*"]
token = "test-token"
"#;

fn cfg(groups: &str) -> String {
    format!("{BASE}\n{groups}")
}

const TWO: &str = r#"
[groups.g]
strategy = "priority"
[[groups.g.targets]]
provider = "fake"
model = "first"
capabilities = ["tools", "images", "json_schema"]
[[groups.g.targets]]
provider = "fake"
model = "second"
capabilities = ["tools", "images", "json_schema"]
"#;

fn body(group: &str) -> Value {
    json!({"model": group, "messages": [{"role": "user", "content": "hi"}]})
}

fn upstream_models(h: &Harness) -> Vec<String> {
    h.fake
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn weighted_distribution_follows_weights() {
    let h = Harness::with_config(&cfg(r#"
        [groups.g]
        [[groups.g.targets]]
        provider = "fake"
        model = "heavy"
        weight = 3
        [[groups.g.targets]]
        provider = "fake"
        model = "light"
        weight = 1
        [[groups.g.targets]]
        provider = "fake"
        model = "off"
        weight = 0
        "#))
    .await;
    for _ in 0..400 {
        assert_eq!(h.chat(&body("g")).await.status, 200);
    }
    let m = upstream_models(&h);
    let heavy = m.iter().filter(|x| *x == "heavy").count();
    assert!(!m.iter().any(|x| x == "off"), "weight 0 disables a target");
    assert!(
        (260..=340).contains(&heavy),
        "heavy served {heavy} of 400 (expected ~300)"
    );
}

#[tokio::test]
async fn eligibility_rules_pick_capable_targets() {
    let h = Harness::with_config(&cfg(r#"
        [groups.g]
        strategy = "priority"
        [[groups.g.targets]]
        provider = "fake"
        model = "plain"
        context_window = 50
        [[groups.g.targets]]
        provider = "fake"
        model = "tools"
        capabilities = ["tools"]
        [[groups.g.targets]]
        provider = "fake"
        model = "vision"
        capabilities = ["images"]
        [[groups.g.targets]]
        provider = "fake"
        model = "schema"
        capabilities = ["json_schema"]
        [[groups.g.targets]]
        provider = "fake"
        model = "big"
        "#))
    .await;
    let tool = json!([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]);
    let cases = [
        (json!({"tools": tool}), "tools"),
        (
            json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}]}),
            "vision",
        ),
        (
            json!({"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}}}),
            "schema",
        ),
        // Over plain's context window of 50 tokens: the next target in priority order.
        (
            json!({"messages":[{"role":"user","content":"x".repeat(400)}]}),
            "tools",
        ),
        (json!({}), "plain"),
    ];
    for (extra, want) in cases {
        let mut b = body("g");
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = h.chat(&b).await;
        assert_eq!(
            r.header("x-router-target"),
            Some(&*format!("fake/{want}")),
            "{extra}"
        );
    }
    let mut both = body("g");
    both["tools"] = tool.clone();
    both["messages"] =
        json!([{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}]);
    let r = h.chat(&both).await;
    assert_eq!(r.status, 400);
    let e = r.json()["error"].clone();
    assert_eq!(e["code"], "no_eligible_target");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("fake/tools: request has images")
            && msg.contains("fake/vision: request has tools"),
        "{msg}"
    );
}

#[tokio::test]
async fn retryable_statuses_fall_back_and_others_return() {
    let no_cooldown = cfg(TWO).replace(
        "cooldown_after_failures = 2",
        "cooldown_after_failures = 100",
    );
    let h = Harness::with_config(&no_cooldown).await;
    for status in [408u16, 409, 429, 500, 502, 503, 504, 529] {
        h.fake.enqueue(Script {
            status: Some(status),
            ..Script::default()
        });
        let r = h.chat(&body("g")).await;
        assert_eq!(r.status, 200, "{status} falls back");
        assert_eq!(r.header("x-router-attempts"), Some("2"));
        assert_eq!(r.header("x-router-target"), Some("fake/second"));
    }
    for status in [400u16, 404, 413, 422] {
        let before = h.fake.requests().len();
        h.fake.enqueue(Script {
            status: Some(status),
            error: Some(format!("nope {status}")),
            ..Script::default()
        });
        let r = h.chat(&body("g")).await;
        assert_eq!(r.status.as_u16(), status);
        assert_eq!(r.json()["error"]["message"], format!("nope {status}"));
        assert_eq!(
            h.fake.requests().len(),
            before + 1,
            "{status} is not retried"
        );
    }
}

#[tokio::test]
async fn credential_rejection_is_502_cools_the_target_and_falls_back() {
    let mut h = Harness::with_config(&cfg(TWO)).await;
    h.fake.enqueue(Script {
        status: Some(403),
        ..Script::default()
    });
    let r = h.chat(&body("g")).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.outcome().await.attempts[0].outcome, "credential_rejected");
    let r = h.chat(&body("g")).await;
    assert_eq!(
        r.header("x-router-target"),
        Some("fake/second"),
        "first cools down"
    );
    // Only one target: the caller sees a 502, not the provider's 403.
    let h1 = Harness::with_config(&cfg(
        "[groups.one]\n[[groups.one.targets]]\nprovider = \"fake\"\nmodel = \"m\"\n",
    ))
    .await;
    h1.fake.enqueue(Script {
        status: Some(401),
        ..Script::default()
    });
    let r = h1.chat(&body("one")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_credential_rejected");
}

#[tokio::test]
async fn consecutive_failures_cool_a_target_down_until_it_recovers() {
    let h = Harness::with_config(&cfg(TWO)).await;
    for _ in 0..2 {
        h.fake.enqueue(Script {
            status: Some(500),
            ..Script::default()
        });
        assert_eq!(h.chat(&body("g")).await.status, 200);
    }
    let before = h.fake.requests().len();
    let r = h.chat(&body("g")).await;
    assert_eq!(r.header("x-router-target"), Some("fake/second"));
    assert_eq!(
        h.fake.requests().len(),
        before + 1,
        "the cooling target is not tried"
    );
    tokio::time::sleep(std::time::Duration::from_millis(450)).await; // cooldown_ms = 400
    let r = h.chat(&body("g")).await;
    assert_eq!(
        r.header("x-router-target"),
        Some("fake/first"),
        "recovered after the cooldown"
    );
}

#[tokio::test]
async fn retry_after_cools_down_and_all_cooling_is_503_with_retry_after() {
    let h = Harness::with_config(&cfg(
        "[groups.one]\n[[groups.one.targets]]\nprovider = \"fake\"\nmodel = \"m\"\n",
    ))
    .await;
    h.fake.enqueue(Script {
        status: Some(429),
        headers: [("retry-after".into(), "3".into())].into(),
        ..Script::default()
    });
    let r = h.chat(&body("one")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    let r = h.chat(&body("one")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "no_eligible_target");
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((2..=3).contains(&ra), "{ra}");
    assert_eq!(
        h.fake.requests().len(),
        1,
        "a cooling target gets no traffic"
    );
}

#[tokio::test]
async fn max_attempts_and_retries_per_target_bound_the_attempts() {
    let three = r#"
        [groups.g]
        strategy = "priority"
        max_attempts = 2
        [[groups.g.targets]]
        provider = "fake"
        model = "a"
        [[groups.g.targets]]
        provider = "fake"
        model = "b"
        [[groups.g.targets]]
        provider = "fake"
        model = "c"
    "#;
    let h = Harness::with_config(&cfg(three)).await;
    for _ in 0..3 {
        h.fake.enqueue(Script {
            status: Some(502),
            ..Script::default()
        });
    }
    let r = h.chat(&body("g")).await;
    assert_eq!(r.status, 502);
    assert_eq!(upstream_models(&h), ["a", "b"]);
    let retries = cfg(three).replace(
        "retry_backoff_ms = 1",
        "retry_backoff_ms = 1\nretries_per_target = 1\nmax_attempts = 5",
    );
    let retries = retries.replace("max_attempts = 2\n", "");
    let h = Harness::with_config(&retries).await;
    h.fake.enqueue(Script {
        status: Some(500),
        ..Script::default()
    });
    let r = h.chat(&body("g")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        upstream_models(&h),
        ["a", "a"],
        "one retry on the same target"
    );
}

#[tokio::test]
async fn no_fallback_after_the_first_byte() {
    let h = Harness::with_config(&cfg(TWO)).await;
    h.fake.enqueue(Script {
        text: Some("a b c d".into()),
        close_after_events: Some(2),
        chunk_delay_ms: 20,
        ..Script::default()
    });
    let mut b = body("g");
    b["stream"] = json!(true);
    let r = h.chat(&b).await;
    assert_eq!(r.status, 200);
    assert!(r.sse_data().last().unwrap().contains("\"error\""));
    assert_eq!(
        upstream_models(&h),
        ["first"],
        "the stream had begun: no second attempt"
    );
}

#[tokio::test]
async fn group_budget_is_enforced_and_forwarded_upstream() {
    let h = Harness::with_config(&cfg(
        "[groups.slow]\ntimeout_ms = 300\n[[groups.slow.targets]]\nprovider = \"fake\"\nmodel = \"m\"\n",
    ))
    .await;
    h.fake.enqueue(Script {
        delay_ms: 2000,
        ..Script::default()
    });
    let r = h.chat(&body("slow")).await;
    assert_eq!(r.status, 504);
    let sent: u64 = h.fake.requests()[0]
        .header("x-router-timeout-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        sent <= 200 && sent > 100,
        "budget minus the 100 ms hop margin: {sent}"
    );
    assert_eq!(
        h.fake.requests()[0].header("x-router-parent-id"),
        Some("smart-router")
    );
    // The caller may lower the budget, never raise it.
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("x-router-timeout-ms", "100000"),
        ],
        Bytes::from(body("slow").to_string()),
    )
    .await;
    assert_eq!(r.status, 200);
    let sent: u64 = h.fake.requests()[1]
        .header("x-router-timeout-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent <= 200, "{sent}");
}

#[tokio::test]
async fn session_affinity_sticks_and_moves_when_the_target_cools_down() {
    let mut h = Harness::with_config(&cfg(r#"
        [groups.g]
        affinity = "session"
        [[groups.g.targets]]
        provider = "fake"
        model = "x"
        [[groups.g.targets]]
        provider = "fake"
        model = "y"
        "#))
    .await;
    let ask = |h: &Harness, sid: &str| {
        let url = h.url("/v1/chat/completions");
        let sid = sid.to_string();
        async move {
            send(
                "POST",
                &url,
                &[
                    ("authorization", "Bearer test-token"),
                    ("x-session-id", &sid),
                ],
                Bytes::from(body("g").to_string()),
            )
            .await
        }
    };
    let first = ask(&h, "s1")
        .await
        .header("x-router-target")
        .unwrap()
        .to_string();
    assert_eq!(h.outcome().await.affinity_hit, Some(false));
    for _ in 0..20 {
        assert_eq!(
            ask(&h, "s1").await.header("x-router-target").unwrap(),
            first
        );
        assert_eq!(h.outcome().await.affinity_hit, Some(true));
    }
    // Its target answers 429 with Retry-After and cools down: the session moves.
    h.fake.enqueue(Script {
        status: Some(429),
        headers: [("retry-after".into(), "30".into())].into(),
        ..Script::default()
    });
    let moved = ask(&h, "s1")
        .await
        .header("x-router-target")
        .unwrap()
        .to_string();
    assert_ne!(moved, first);
    assert_eq!(
        ask(&h, "s1").await.header("x-router-target").unwrap(),
        moved,
        "and sticks there"
    );
    // prompt_cache_key in the body is a session key too.
    let mut b = body("g");
    b["prompt_cache_key"] = json!("pck-1");
    let t1 = h
        .chat(&b)
        .await
        .header("x-router-target")
        .unwrap()
        .to_string();
    for _ in 0..10 {
        assert_eq!(h.chat(&b).await.header("x-router-target").unwrap(), t1);
    }
}

#[tokio::test]
async fn a_stalled_stream_ends_with_an_error_event() {
    let mut h = Harness::with_config(
        &cfg("[groups.one]\n[[groups.one.targets]]\nprovider = \"fake\"\nmodel = \"m\"\n").replace(
            "base_url = \"FAKE\"",
            "base_url = \"FAKE\"\nread_timeout_ms = 250",
        ),
    )
    .await;
    h.fake.enqueue(Script {
        chunks: Some(vec!["a".into(), "b".into()]),
        text: Some("ab".into()),
        chunk_delay_ms: 150,
        ..Script::default()
    });
    h.fake.enqueue(Script {
        chunk_delay_ms: 1000,
        ..Script::default()
    });
    let mut b = body("one");
    b["stream"] = json!(true);
    let ok = h.chat(&b).await;
    assert_eq!(
        ok.sse_data().last().map(String::as_str),
        Some("[DONE]"),
        "150 ms gaps are within 250 ms"
    );
    h.outcome().await;
    let stalled = h.chat(&b).await;
    assert_eq!(
        stalled.status,
        504,
        "no first byte within the read timeout: {}",
        stalled.text()
    );
    assert_eq!(h.outcome().await.error_kind, Some("timeout"));
    h.fake.enqueue(Script {
        stall_after_events: Some(2),
        ..Script::default()
    });
    let t0 = std::time::Instant::now();
    let mid = h.chat(&b).await;
    assert_eq!(mid.status, 200);
    let last: Value = serde_json::from_str(mid.sse_data().last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 250 ms"),
        "{last}"
    );
    assert!(t0.elapsed().as_millis() < 2000);
    assert_eq!(h.outcome().await.error_kind, Some("timeout"));
}
