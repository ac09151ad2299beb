//! Issue 16: config reload. The new file is validated whole before anything changes; a bad one
//! leaves the config in force (error kept, counted); a good one is swapped in atomically —
//! requests in flight finish on their config, new ones follow the new weights and callers —
//! and what the router learned about targets that remain (health, affinity) is kept.

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::Script;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Group `g` over models `m-a` and `m-b` (weights given), caller `app` and, when `extra` is
/// set, a second caller with that token; an admin and a report-admin.
fn config(weight_a: u32, weight_b: u32, extra: Option<&str>) -> String {
    let extra = extra.map_or(String::new(), |t| {
        format!("[[callers]]\nname = \"late\"\ngroups = [\"g\"]\ntoken = \"{t}\"\n")
    });
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
model = "m-a"
weight = {weight_a}
[[groups.g.targets]]
provider = "fake"
model = "m-b"
weight = {weight_b}
[[callers]]
name = "app"
groups = ["g"]
token = "app-token"
[[callers]]
name = "root"
roles = ["admin"]
groups = ["*"]
token = "admin-token"
[[callers]]
name = "ops"
roles = ["report-admin"]
groups = ["*"]
token = "report-token"
{extra}
"#
    )
}

fn chat(stream: bool) -> Bytes {
    Bytes::from(
        json!({"model": "g", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
    )
}

async fn ask(h: &Harness, token: &str, stream: bool) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {token}"))],
        chat(stream),
    )
    .await
}

/// Whether a response is a whole, good answer (a stream must end with `[DONE]`).
fn whole(r: &common::Resp, stream: bool) -> bool {
    r.status == 200 && (!stream || r.sse_data().last().map(String::as_str) == Some("[DONE]"))
}

async fn admin(h: &Harness, method: &str, path: &str, token: &str) -> common::Resp {
    send(
        method,
        &h.url(path),
        &[("authorization", &format!("Bearer {token}"))],
        Bytes::new(),
    )
    .await
}

/// 20 reloads while streaming and non-streaming requests run: none fails, and after each
/// reload new requests follow the new weights and the new caller table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_nothing_and_take_effect_at_once() {
    let h = Arc::new(Harness::with_config(&config(1, 0, None)).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let (h, stop, done, failed) = (h.clone(), stop.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                let stream = i % 2 == 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = ask(&h, "app-token", stream).await;
                    if whole(&r, stream) {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed: {} {}", r.status, r.text());
                    }
                }
            })
        })
        .collect();
    let mut hashes = std::collections::HashSet::new();
    for i in 0..20u32 {
        let (a, b, model) = if i % 2 == 0 {
            (0, 1, "m-b")
        } else {
            (1, 0, "m-a")
        };
        let late = format!("late-token-{i}");
        h.rewrite(&config(a, b, Some(&late)));
        let r = if i % 2 == 0 {
            let r = h.live.reload().await.unwrap();
            r.hash
        } else {
            let resp = admin(&h, "POST", "/admin/config/reload", "admin-token").await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            resp.json()["config_hash"].as_str().unwrap().to_string()
        };
        assert!(hashes.insert(r.clone()), "each config has its own hash");
        // New requests: the new weights, the new caller, not the previous one.
        for stream in [false, true] {
            let resp = ask(&h, "app-token", stream).await;
            assert!(whole(&resp, stream), "{}", resp.text());
            assert_eq!(
                resp.header("x-router-target"),
                Some(format!("fake/{model}").as_str())
            );
        }
        let resp = ask(&h, &late, false).await;
        assert_eq!(
            resp.status,
            200,
            "the caller added by reload {i}: {}",
            resp.text()
        );
        if i > 0 {
            let gone = ask(&h, &format!("late-token-{}", i - 1), false).await;
            assert_eq!(gone.status, 401, "the caller removed by reload {i}");
        }
        let v = send("GET", &h.url("/version"), &[], Bytes::new()).await;
        assert_eq!(v.json()["config_hash"], r.as_str());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", done + failed);
    assert!(done >= 60, "the load ran: {done} requests");
    let m = admin(&h, "GET", "/metrics", "admin-token").await.text();
    assert!(m.contains("smart_router_config_reloads_total 20"), "{m}");
    assert!(
        m.contains("smart_router_config_reload_failures_total 0"),
        "{m}"
    );
}

/// A request in flight when its group is removed finishes on the config it started with.
#[tokio::test]
async fn a_request_in_flight_finishes_on_its_config() {
    let h = Harness::with_config(&config(1, 0, None)).await;
    h.fake.enqueue(Script {
        delay_ms: 400,
        text: Some("slow answer".into()),
        ..Script::default()
    });
    let slow = {
        let url = h.url("/v1/chat/completions");
        tokio::spawn(async move {
            send(
                "POST",
                &url,
                &[("authorization", "Bearer app-token")],
                chat(false),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The new config has no group `g` and no caller `app`.
    h.rewrite(
        &config(1, 0, None)
            .replace("[groups.g]", "[groups.other]")
            .replace("[[groups.g.targets]]", "[[groups.other.targets]]")
            .replace(
                "groups = [\"g\"]\ntoken = \"app-token\"",
                "groups = [\"other\"]\ntoken = \"app-token-2\"",
            ),
    );
    h.live.reload().await.unwrap();
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "slow answer");
    // New requests see the new config.
    assert_eq!(ask(&h, "app-token", false).await.status, 401);
}

/// An invalid file leaves everything as it was, says why (with key paths) in the response,
/// the log and `GET /admin/config`, and is counted.
#[tokio::test]
async fn a_bad_reload_keeps_the_config_in_force() {
    let h = Harness::with_config(&config(1, 0, None)).await;
    let before = h.live.current().config.hash.clone();
    h.rewrite(&config(1, 0, None).replace(
        "provider = \"fake\"\nmodel = \"m-b\"",
        "provider = \"fakee\"\nmodel = \"m-b\"",
    ));
    let r = admin(&h, "POST", "/admin/config/reload", "admin-token").await;
    assert_eq!(r.status, 422, "{}", r.text());
    let j = r.json();
    assert_eq!(j["error"]["code"], "config_invalid");
    let errors = j["errors"].to_string();
    assert!(
        errors.contains("groups.g.targets[1].provider: no provider named \\\"fakee\\\""),
        "{errors}"
    );
    assert_eq!(h.live.current().config.hash, before);
    let served = ask(&h, "app-token", false).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("x-router-target"), Some("fake/m-a"));
    // Not TOML at all.
    h.rewrite("[server\nlisten = ");
    assert!(h.live.reload().await.is_err());
    let c = admin(&h, "GET", "/admin/config", "admin-token")
        .await
        .json();
    assert_eq!(c["config_hash"], before.as_str());
    assert_eq!(c["reload_failures"], 2);
    assert_eq!(c["reloads"], 0);
    assert!(
        c["last_reload_error"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("line"),
        "{c}"
    );
    assert_eq!(c["source"], h.config_path.display().to_string());
    let m = admin(&h, "GET", "/metrics", "admin-token").await.text();
    assert!(
        m.contains("smart_router_config_reload_failures_total 2"),
        "{m}"
    );
    // Fixed: it loads, and `restart_needed` names what only a restart applies.
    h.rewrite(&config(0, 1, None).replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\""));
    let r = admin(&h, "POST", "/admin/config/reload", "admin-token")
        .await
        .json();
    assert_eq!(r["status"], "reloaded");
    assert_eq!(r["previous_hash"], before.as_str());
    assert!(
        r["restart_needed"][0]
            .as_str()
            .unwrap()
            .starts_with("server.listen changed"),
        "{r}"
    );
    assert_eq!(
        ask(&h, "app-token", false).await.header("x-router-target"),
        Some("fake/m-b")
    );
}

/// `GET /admin/config` and `POST /admin/config/reload` are for admin tokens only.
#[tokio::test]
async fn the_config_endpoints_are_admin_only() {
    let h = Harness::with_config(&config(1, 0, None)).await;
    for (method, path) in [("GET", "/admin/config"), ("POST", "/admin/config/reload")] {
        for (token, want) in [
            (None, 401),
            (Some("app-token"), 403),
            (Some("report-token"), 403),
            (Some("nope"), 401),
            (Some("admin-token"), 200),
        ] {
            let headers: Vec<(&str, String)> = token
                .map(|t| vec![("authorization", format!("Bearer {t}"))])
                .unwrap_or_default();
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = send(method, &h.url(path), &headers, Bytes::new()).await;
            assert_eq!(
                r.status.as_u16(),
                want,
                "{method} {path} {token:?}: {}",
                r.text()
            );
        }
    }
}

/// A target that cools down stays cooling after a reload that keeps it; a new target gets an
/// id of its own and the old ids keep their meaning.
#[tokio::test]
async fn what_was_learned_about_remaining_targets_survives() {
    let h = Harness::with_config(&config(1, 0, None)).await;
    let a_id = h.live.current().config.groups[0].targets[0].id;
    for _ in 0..3 {
        h.fake.enqueue(Script {
            status: Some(503),
            ..Script::default()
        });
    }
    // Three 503s from m-a (m-b has weight 0 but is tried as a fallback).
    for _ in 0..3 {
        let _ = ask(&h, "app-token", false).await;
    }
    assert!(
        h.live.current().health.cooling(a_id).is_some(),
        "m-a cools down"
    );
    let with_c = config(1, 1, None).replace(
        "[[callers]]\nname = \"app\"",
        "[[groups.g.targets]]\nprovider = \"fake\"\nmodel = \"m-c\"\n[[callers]]\nname = \"app\"",
    );
    // m-a moves to the end of the list; its id stays.
    let reordered = with_c.replacen(
        "[[groups.g.targets]]\nprovider = \"fake\"\nmodel = \"m-a\"\nweight = 1\n",
        "",
        1,
    ) .replace("[[callers]]\nname = \"app\"", "[[groups.g.targets]]\nprovider = \"fake\"\nmodel = \"m-a\"\n[[callers]]\nname = \"app\"");
    h.rewrite(&reordered);
    h.live.reload().await.unwrap();
    let now = h.live.current();
    let ids: Vec<(String, usize)> = now.config.groups[0]
        .targets
        .iter()
        .map(|t| (t.model.clone(), t.id))
        .collect();
    let id_of = |m: &str| ids.iter().find(|(x, _)| x == m).unwrap().1;
    assert_eq!(id_of("m-a"), a_id, "{ids:?}");
    assert_ne!(id_of("m-c"), id_of("m-a"));
    assert_ne!(id_of("m-c"), id_of("m-b"));
    assert!(
        now.health.cooling(a_id).is_some(),
        "the cooldown survived the reload"
    );
    // Traffic avoids the cooling target.
    for _ in 0..4 {
        let r = ask(&h, "app-token", false).await;
        assert_ne!(r.header("x-router-target"), Some("fake/m-a"));
    }
}

/// Without a file (an embedded runtime), a reload says there is nothing to reload.
#[tokio::test]
async fn a_router_without_a_file_cannot_reload() {
    let text = config(1, 0, None).replace("FAKE", "http://127.0.0.1:9/v1");
    let c = router::config::parse(&text).unwrap();
    let rt = router::state::Runtime::new(
        c,
        router::usage::Recorder::new(&router::config::parse(&text).unwrap()),
        Default::default(),
        None,
    );
    let live = router::reload::Live::new(rt, None);
    let e = live.reload().await.unwrap_err();
    assert!(matches!(e, router::reload::ReloadError::NoSource), "{e}");
    let v: Value = live.report();
    assert_eq!(v["source"], Value::Null);
}
