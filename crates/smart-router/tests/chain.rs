//! Router-to-router: a team router whose provider is an enterprise router, two real processes
//! on loopback, the fake upstream behind the enterprise router.

mod common;

use common::{Served, chat, sqlite_store};
use fake_upstream::{FakeUpstream, Script};

/// `serve` on `config`, with its usage store in its own directory.
fn start(name: &str, config: &str) -> Served {
    Served::start(&format!("chain-{name}"), |dir| {
        format!("{}{config}", sqlite_store(dir, ""))
    })
}

#[test]
fn two_router_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let enterprise = start(
        "enterprise",
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
name = "enterprise"
[providers.fake]
kind = "openai"
base_url = "{}"
api_key = "sk-enterprise-key"
[groups.ent-coder]
[[groups.ent-coder.targets]]
provider = "fake"
model = "m-coder"
[groups.ent-secret]
[[groups.ent-secret.targets]]
provider = "fake"
model = "m-secret"
[groups.ent-busy]
[[groups.ent-busy.targets]]
provider = "fake"
model = "m-busy"
[[callers]]
name = "team-router"
groups = ["ent-coder", "ent-busy"]
token = "team-upstream-token"
"#,
            fake.openai_base_url()
        ),
    );
    let ent_url = format!("http://{}/v1", enterprise.addr);
    let team = start(
        "team",
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
name = "team"
[providers.ent]
kind = "openai"
base_url = "{ent_url}"
api_key = "team-upstream-token"
[providers.ent-misconfigured]
kind = "openai"
base_url = "{ent_url}"
api_key = "not-the-right-token"
[groups.coder]
[[groups.coder.targets]]
provider = "ent"
model = "ent-coder"
[groups.secret]
[[groups.secret.targets]]
provider = "ent"
model = "ent-secret"
[groups.badcred]
[[groups.badcred.targets]]
provider = "ent-misconfigured"
model = "ent-coder"
[groups.failover]
strategy = "priority"
[[groups.failover.targets]]
provider = "ent"
model = "ent-busy"
[[groups.failover.targets]]
provider = "ent"
model = "ent-coder"
[[callers]]
name = "app"
groups = ["coder", "secret", "badcred", "failover"]
token = "app-token"
[[callers]]
name = "other"
groups = ["failover"]
token = "other-token"
"#
        ),
    );

    // The happy path: one request id across both hops, parent ids, shrinking budget.
    let r = chat(
        &team.addr,
        "app-token",
        "coder",
        &[
            ("x-request-id", "chain-req-1"),
            ("x-router-timeout-ms", "5000"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id").as_deref(), Some("chain-req-1"));
    assert_eq!(
        r.header("x-router-target").as_deref(),
        Some("ent/ent-coder")
    );
    let seen = fake.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.body["model"], "m-coder");
    assert_eq!(last.header("x-request-id"), Some("chain-req-1"));
    assert_eq!(last.header("x-router-parent-id"), Some("enterprise"));
    assert_eq!(
        last.header("authorization"),
        Some("Bearer sk-enterprise-key")
    );
    let budget: u64 = last.header("x-router-timeout-ms").unwrap().parse().unwrap();
    assert!(
        budget <= 4800 && budget > 4000,
        "5000 ms minus two 100 ms hop margins: {budget}"
    );
    let ent_logs = enterprise.logs_with(&["chain-req-1", "request finished"]);
    let ent_line = ent_logs
        .lines()
        .find(|l| l.contains("chain-req-1") && l.contains("request finished"))
        .expect(&ent_logs);
    assert!(ent_line.contains("\"parent_id\":\"team\""), "{ent_line}");
    assert!(
        ent_line.contains("\"caller\":\"team-router\""),
        "{ent_line}"
    );
    assert!(
        team.logs_with(&["chain-req-1", "\"caller\":\"app\""])
            .lines()
            .any(|l| l.contains("chain-req-1") && l.contains("\"caller\":\"app\""))
    );
    for secret in ["app-token", "team-upstream-token", "sk-enterprise-key"] {
        assert!(
            !ent_logs.contains(secret) && !team.logs().contains(secret),
            "{secret} leaked into logs"
        );
    }

    // Auth at both hops: the app's token means nothing to the enterprise router.
    assert_eq!(
        chat(&enterprise.addr, "app-token", "ent-coder", &[]).status,
        401
    );
    // Group access at both hops.
    let r = chat(&team.addr, "other-token", "coder", &[]);
    assert_eq!(
        r.status, 404,
        "team router refuses a group the caller may not use"
    );
    let r = chat(&team.addr, "app-token", "secret", &[]);
    assert_eq!(
        r.status, 404,
        "enterprise refuses the team router's group: {}",
        r.body
    );
    assert!(r.body.contains("model_not_found"));

    // The enterprise rejects the team router's credential: 502 at the team router.
    let r = chat(&team.addr, "app-token", "badcred", &[]);
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("upstream_credential_rejected"));

    // Enterprise 429 with Retry-After: the team router falls back and cools that target.
    fake.enqueue(Script {
        status: Some(429),
        headers: [("retry-after".into(), "30".into())].into(),
        ..Script::default()
    });
    let r = chat(&team.addr, "app-token", "failover", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-router-attempts").as_deref(), Some("2"));
    assert_eq!(
        r.header("x-router-target").as_deref(),
        Some("ent/ent-coder")
    );
    // The enterprise now has no eligible target for ent-busy (cooling): 503 + Retry-After.
    let r = chat(&enterprise.addr, "team-upstream-token", "ent-busy", &[]);
    assert_eq!(r.status, 503);
    assert!(r.body.contains("no_eligible_target"));
    assert!(r.header("retry-after").is_some());
    // And the team router skips its cooling target without asking.
    let before = fake.requests().len();
    let r = chat(&team.addr, "app-token", "failover", &[]);
    assert_eq!(
        (r.status, r.header("x-router-attempts")),
        (200, Some("1".to_string()))
    );
    assert_eq!(fake.requests().len(), before + 1);

    // A timeout deep in the chain is a 504 at the edge.
    fake.enqueue(Script {
        delay_ms: 3000,
        ..Script::default()
    });
    let t0 = std::time::Instant::now();
    let r = chat(
        &team.addr,
        "app-token",
        "coder",
        &[("x-router-timeout-ms", "400")],
    );
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(t0.elapsed().as_millis() < 2000);
}
