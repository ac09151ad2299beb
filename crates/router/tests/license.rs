//! Issue 15: signed licenses — the format and its verification (every tampering refused,
//! naming the problem and the file), status by an injected clock, admission of a config
//! (dates, binding, features), and a running router's status, metrics, gating and admin
//! endpoint.

mod common;

use common::{Harness, default_config, send};
use ed25519_dalek::{Signer, SigningKey};
use router::license::{
    Clock, License, LicenseError, LicenseFile, LicenseState, Refusal, Status, sign_payload,
    signed_message,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The development key's private half (the published one `build.rs` trusts by default).
fn dev_key() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/license/dev-2026.key"),
    )
    .unwrap()
}

/// 2030-01-01T00:00:00Z.
const T0: i64 = 1_893_456_000;

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn stamp(secs: i64) -> String {
    router::license::rfc3339(secs)
}

/// A payload valid from T0 for 365 days, 10 grace days, with `extra` fields merged in.
fn payload(extra: Value) -> Value {
    let mut p = json!({
        "license_id": "LIC-0042",
        "customer": "Acme Corp",
        "issued_at": stamp(T0),
        "not_before": stamp(T0),
        "expires_at": stamp(T0 + 365 * 86_400),
        "grace_days": 10,
        "features": ["routing", "usage_reporting", "admin_reports", "exports", "quotas", "private_upstreams"],
        "max_instances": 3,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            p.as_object_mut().unwrap().remove(k);
        } else {
            p[k] = v.clone();
        }
    }
    p
}

/// A temporary file holding `bytes`.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sr-license-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A license file signed by the tool (which checks the payload first).
fn signed(name: &str, p: Value) -> PathBuf {
    let f = sign_payload(&dev_key(), "dev-2026", p).unwrap();
    file(name, serde_json::to_string_pretty(&f).unwrap().as_bytes())
}

/// A license file signed over whatever payload is given (no checks): for payloads the tool
/// refuses to sign.
fn raw_signed(p: &Value) -> Value {
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&dev_key().trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    let sig = key.sign(&signed_message(p).unwrap());
    json!({"payload": p, "signature": router::config::hex(&sig.to_bytes())})
}

fn read(path: &Path) -> Result<License, LicenseError> {
    LicenseFile::read(path)
}

#[test]
fn a_signed_license_round_trips() {
    let path = signed(
        "round-trip.json",
        payload(json!({"deployment_id": "prod-eu", "hostnames": ["router-*"], "notes": "pilot"})),
    );
    let l = read(&path).unwrap();
    assert_eq!(l.license_id, "LIC-0042");
    assert_eq!(l.customer, "Acme Corp");
    assert_eq!(l.issued_at, T0);
    assert_eq!(l.expires_at, T0 + 365 * 86_400);
    assert_eq!(l.grace_days, 10);
    assert_eq!(l.max_instances, 3);
    assert_eq!(l.deployment_id.as_deref(), Some("prod-eu"));
    assert_eq!(l.hostnames, vec!["router-*"]);
    assert_eq!(l.notes.as_deref(), Some("pilot"));
    assert_eq!(l.key_id, "dev-2026");
    assert!(l.has(router::license::Feature::Quotas));
    assert!(!l.has(router::license::Feature::PiiFiltering));
    // The key id may also sit beside the payload instead of inside it (then it is not signed,
    // but only a trusted key's signature verifies).
    let unsigned_id = payload(json!({}));
    let f = raw_signed(&unsigned_id);
    let f = json!({"payload": unsigned_id, "key_id": "dev-2026", "signature": f["signature"]});
    assert_eq!(
        read(&file("beside.json", f.to_string().as_bytes()))
            .unwrap()
            .key_id,
        "dev-2026"
    );
    // A key id signed inside the payload cannot move out of it.
    let mut inside = payload(json!({}));
    inside["key_id"] = json!("dev-2026");
    let f = raw_signed(&inside);
    let mut moved = f.clone();
    moved["payload"].as_object_mut().unwrap().remove("key_id");
    moved["key_id"] = json!("dev-2026");
    assert!(matches!(
        read(&file("moved.json", moved.to_string().as_bytes())),
        Err(LicenseError::BadSignature { .. })
    ));
}

/// Every way a file can be wrong: a precise error naming the file (and the field), never a
/// panic, never a license.
#[test]
fn every_tampering_is_refused_naming_the_file() {
    let good = signed("good.json", payload(json!({})));
    let bytes = std::fs::read(&good).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();

    let check = |name: &str, body: &[u8], want: &dyn Fn(&LicenseError) -> bool, says: &str| {
        let path = file(name, body);
        let err = read(&path).expect_err(name);
        let text = err.to_string();
        assert!(want(&err), "{name}: {err:?}");
        assert!(text.contains(&path.display().to_string()), "{name}: {text}");
        assert!(text.contains(says), "{name}: {text}");
    };
    check(
        "truncated.json",
        &bytes[..bytes.len() / 2],
        &|e| matches!(e, LicenseError::Malformed { .. }),
        "not a license file",
    );
    check(
        "not-json.json",
        b"LICENSE: Acme, forever",
        &|e| matches!(e, LicenseError::Malformed { .. }),
        "not a license file",
    );
    check(
        "empty.json",
        b"",
        &|e| matches!(e, LicenseError::Malformed { .. }),
        "not a license file",
    );
    check(
        "array.json",
        b"[1,2]",
        &|e| matches!(e, LicenseError::Malformed { .. }),
        "not a JSON object",
    );
    let mut short = v.clone();
    short["signature"] = json!(v["signature"].as_str().unwrap()[..100].to_string());
    check(
        "short-signature.json",
        short.to_string().as_bytes(),
        &|e| matches!(e, LicenseError::SignatureLength { len: 100, .. }),
        "128 hex characters",
    );
    let mut nonhex = v.clone();
    nonhex["signature"] = json!("zz".repeat(64));
    check(
        "nonhex-signature.json",
        nonhex.to_string().as_bytes(),
        &|e| matches!(e, LicenseError::SignatureLength { .. }),
        "signature",
    );
    let other_key = raw_signed(&payload(json!({"key_id": "vendor-2031"})));
    check(
        "unknown-key.json",
        other_key.to_string().as_bytes(),
        &|e| matches!(e, LicenseError::UnknownKey { key_id, .. } if key_id == "vendor-2031"),
        "dev-2026",
    );
    // Signed by another key that claims to be the trusted one.
    let stranger = router::license::generate().unwrap();
    let forged = sign_payload(&stranger.private_hex, "dev-2026", payload(json!({}))).unwrap();
    check(
        "forged.json",
        forged.to_string().as_bytes(),
        &|e| matches!(e, LicenseError::BadSignature { .. }),
        "does not match",
    );
    for missing in [
        "license_id",
        "customer",
        "issued_at",
        "not_before",
        "expires_at",
        "grace_days",
        "features",
        "max_instances",
    ] {
        let p = payload(json!({ missing: null, "key_id": "dev-2026" }));
        check(
            &format!("missing-{missing}.json"),
            raw_signed(&p).to_string().as_bytes(),
            &|e| matches!(e, LicenseError::Field { field, .. } if *field == missing),
            &format!("payload.{missing}"),
        );
    }
    let p = payload(json!({}));
    check(
        "no-key-id.json",
        raw_signed(&p).to_string().as_bytes(),
        &|e| {
            matches!(
                e,
                LicenseError::Field {
                    field: "key_id",
                    ..
                }
            )
        },
        "payload.key_id",
    );
    for (name, extra, says) in [
        (
            "expires-before-start",
            json!({"expires_at": stamp(T0 - 1)}),
            "expires_at is not after not_before",
        ),
        (
            "starts-before-issue",
            json!({"issued_at": stamp(T0 + 10)}),
            "not_before is before issued_at",
        ),
    ] {
        let mut p = payload(extra);
        p["key_id"] = json!("dev-2026");
        check(
            &format!("{name}.json"),
            raw_signed(&p).to_string().as_bytes(),
            &|e| matches!(e, LicenseError::Dates { .. }),
            says,
        );
    }
    for (field, value, says) in [
        ("expires_at", json!("2031-01-01"), "RFC 3339"),
        ("expires_at", json!("2031-01-01T00:00:00+02:00"), "RFC 3339"),
        ("grace_days", json!(-1), "whole number"),
        ("max_instances", json!(0), "at least 1"),
        (
            "features",
            json!(["routing", "teleportation"]),
            "unknown feature",
        ),
        ("features", json!("routing"), "list of strings"),
        ("customer", json!(""), "non-empty string"),
    ] {
        let mut p = payload(json!({ field: value }));
        p["key_id"] = json!("dev-2026");
        check(
            &format!("bad-{field}.json"),
            raw_signed(&p).to_string().as_bytes(),
            &|e| matches!(e, LicenseError::Field { field: f, .. } if *f == field),
            says,
        );
    }
    // A field nobody signed for cannot be added.
    let mut added = v.clone();
    added["payload"]["max_instances_override"] = json!(99);
    check(
        "added-field.json",
        added.to_string().as_bytes(),
        &|e| matches!(e, LicenseError::Field { .. }),
        "unknown field",
    );
    // Each field edited after signing.
    for (field, value) in [
        ("license_id", json!("LIC-0043")),
        ("customer", json!("Acme Corp.")),
        ("issued_at", json!(stamp(T0 - 1))),
        ("not_before", json!(stamp(T0 + 1))),
        ("expires_at", json!(stamp(T0 + 3650 * 86_400))),
        ("grace_days", json!(11)),
        ("features", json!(["routing"])),
        ("max_instances", json!(300)),
        ("deployment_id", json!("anything")),
        ("hostnames", json!(["*"])),
        ("notes", json!("unlimited")),
    ] {
        let mut edited = v.clone();
        edited["payload"][field] = value;
        check(
            &format!("edited-{field}.json"),
            edited.to_string().as_bytes(),
            &|e| matches!(e, LicenseError::BadSignature { .. }),
            "does not match",
        );
    }
}

/// A change to any byte of the signed payload fails: every position of the canonical
/// encoding, replaced by another character, is refused (as a bad signature, or as a file that
/// no longer parses) — never accepted.
#[test]
fn no_byte_of_the_payload_can_change() {
    let mut p = payload(json!({"deployment_id": "prod-eu", "notes": "pilot"}));
    p["key_id"] = json!("dev-2026");
    let f = raw_signed(&p);
    let canonical = router::license::canonical(&p).unwrap();
    let sig = f["signature"].as_str().unwrap();
    let path = file("byte.json", b"");
    let mut refused = 0;
    for i in 0..canonical.len() {
        for replacement in [b'x', b'1'] {
            if canonical[i] == replacement {
                continue;
            }
            let mut changed = canonical.clone();
            changed[i] = replacement;
            let mut body = b"{\"payload\":".to_vec();
            body.extend_from_slice(&changed);
            body.extend_from_slice(format!(",\"signature\":\"{sig}\"}}").as_bytes());
            std::fs::write(&path, &body).unwrap();
            assert!(
                read(&path).is_err(),
                "byte {i} changed to {:?} was accepted",
                replacement as char
            );
            refused += 1;
        }
    }
    assert!(refused > 2 * 200, "{refused}");
    // The untouched bytes verify.
    let mut body = b"{\"payload\":".to_vec();
    body.extend_from_slice(&canonical);
    body.extend_from_slice(format!(",\"signature\":\"{sig}\"}}").as_bytes());
    std::fs::write(&path, &body).unwrap();
    read(&path).unwrap();
}

#[test]
fn status_follows_the_clock() {
    let l = read(&signed("status.json", payload(json!({})))).unwrap();
    let end = T0 + 365 * 86_400;
    for (t, want) in [
        (T0 - 1, Status::NotYetValid),
        (T0, Status::Licensed),
        (end, Status::Licensed),
        (end + 1, Status::Grace),
        (end + 10 * 86_400, Status::Grace),
        (end + 10 * 86_400 + 1, Status::Expired),
    ] {
        assert_eq!(l.status(at(t)), want, "at {}", stamp(t));
    }
    assert_eq!(Status::NotYetValid.as_str(), "invalid");
    assert_eq!(Status::Grace.as_str(), "grace");
}

/// A config with everything the features table covers.
fn config(extra: &str) -> router::config::Config {
    let text = format!(
        r#"
[server]
deployment_id = "prod-eu"
[providers.local]
kind = "openai"
base_url = "http://10.0.0.5/v1"
[providers.cloud]
kind = "openai"
base_url = "https://api.openai.com/v1"
[groups.g]
[[groups.g.targets]]
provider = "cloud"
model = "m"
[[callers]]
name = "ops"
roles = ["report-admin"]
groups = ["*"]
token = "ops-token-1234567890"
[[quotas]]
name = "per-caller"
scope = "caller"
requests_per_minute = 10
{extra}
"#
    );
    router::config::parse(&text).unwrap()
}

#[test]
fn admission_names_the_binding_and_each_unlicensed_key() {
    let c = config("");
    let full = read(&signed("full.json", payload(json!({})))).unwrap();
    assert_eq!(full.admit(&c, at(T0 + 1), "router-1"), vec![]);

    let narrow = read(&signed(
        "narrow.json",
        payload(json!({"features": ["routing"], "deployment_id": "prod-us", "hostnames": ["router-*", "gw?"]})),
    ))
    .unwrap();
    let refusals: Vec<String> = narrow
        .admit(&c, at(T0 + 1), "db-7")
        .iter()
        .map(ToString::to_string)
        .collect();
    let all = refusals.join("\n");
    for needle in [
        "payload.deployment_id: this license is bound to deployment_id \"prod-us\", but server.deployment_id is \"prod-eu\"",
        "payload.hostnames: this license is bound to hostnames [\"router-*\", \"gw?\"], but this host is \"db-7\"",
        "callers[0].roles: feature \"admin_reports\" is not licensed",
        "quotas[0]: feature \"quotas\" is not licensed",
        "providers.local.base_url: feature \"private_upstreams\" is not licensed",
        "store.url: feature \"usage_reporting\" is not licensed",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(!all.contains("providers.cloud"), "{all}");
    assert_eq!(refusals.len(), 6, "{all}");
    assert_eq!(
        narrow.admit(&c, at(T0 + 1), "gw1").len(),
        5,
        "the glob matches gw1"
    );
    assert_eq!(narrow.admit(&c, at(T0 + 1), "ROUTER-eu-3").len(), 5);

    // Dates: before the start and after grace refuse, with what to do.
    let early = full.admit(&c, at(T0 - 5), "h");
    assert!(
        matches!(early[..], [Refusal::NotYetValid { .. }]),
        "{early:?}"
    );
    let late = full.admit(&c, at(T0 + 400 * 86_400), "h");
    assert!(matches!(late[..], [Refusal::Expired { .. }]), "{late:?}");
    assert!(
        late[0]
            .to_string()
            .contains("install a renewed license.json")
    );
    let grace = full.admit(&c, at(T0 + 370 * 86_400), "h");
    assert_eq!(grace, vec![], "grace admits");
}

/// A clock the test moves.
fn clock(start: i64) -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start));
    let n = now.clone();
    (Arc::new(move || at(n.load(Ordering::Relaxed))), now)
}

#[test]
fn warnings_come_daily_in_the_last_month_in_grace_and_after() {
    let l = read(&signed("warn.json", payload(json!({})))).unwrap();
    let end = l.expires_at;
    let (c, now) = clock(end - 40 * 86_400);
    let s = LicenseState::new(Some(l), c);
    assert_eq!(s.warning(), None, "40 days before expiry: quiet");
    now.store(end - 30 * 86_400 + 60, Ordering::Relaxed);
    let w = s.warning().expect("30 days before");
    assert!(
        w.message.contains("expires on") && w.message.contains("in 29 days"),
        "{w:?}"
    );
    now.store(end - 30 * 86_400 + 3600, Ordering::Relaxed);
    assert_eq!(s.warning(), None, "once a day");
    now.store(end - 29 * 86_400 + 60, Ordering::Relaxed);
    assert!(s.warning().is_some(), "the next day again");
    now.store(end + 86_400, Ordering::Relaxed);
    let w = s.warning().unwrap();
    assert!(
        !w.expired && w.message.contains("grace period ends on"),
        "{w:?}"
    );
    now.store(end + 20 * 86_400, Ordering::Relaxed);
    let w = s.warning().unwrap();
    assert!(w.expired, "{w:?}");
    assert!(
        w.message.contains("keeps serving") && w.message.contains("renewed"),
        "{w:?}"
    );
    assert_eq!(
        LicenseState::new(None, router::license::system_clock()).warning(),
        None
    );
}

fn licensed_config() -> String {
    default_config()
        + r#"
    [[callers]]
    name = "ops"
    roles = ["report-admin"]
    groups = ["*"]
    token = "report-token"

    [[callers]]
    name = "root"
    roles = ["admin"]
    groups = ["*"]
    token = "admin-token"
    "#
}

fn chat_body() -> bytes::Bytes {
    bytes::Bytes::from(
        json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
}

/// While running, the clock moves through licensed, grace and expired: `/version` and the
/// metrics follow, and traffic is served throughout.
#[tokio::test]
async fn a_running_router_reports_expiry_and_keeps_serving() {
    let l = read(&signed("running.json", payload(json!({})))).unwrap();
    let end = l.expires_at;
    let (c, now) = clock(T0 + 86_400);
    let h = Harness::licensed(&licensed_config(), Arc::new(LicenseState::new(Some(l), c))).await;
    for (t, word, valid) in [
        (T0 + 86_400, "licensed", 1),
        (end + 86_400, "grace", 1),
        (end + 30 * 86_400, "expired", 0),
    ] {
        now.store(t, Ordering::Relaxed);
        let v = send("GET", &h.url("/version"), &[], bytes::Bytes::new()).await;
        assert_eq!(v.json()["license"], word);
        let chat = send(
            "POST",
            &h.url("/v1/chat/completions"),
            &[("authorization", "Bearer test-token")],
            chat_body(),
        )
        .await;
        assert_eq!(chat.status, 200, "{word}: {}", chat.text());
        let m = send(
            "GET",
            &h.url("/metrics"),
            &[("authorization", "Bearer metrics-token")],
            bytes::Bytes::new(),
        )
        .await
        .text();
        let valid_line = format!(
            "smart_router_license_valid{{license_id=\"LIC-0042\",status=\"{word}\"}} {valid}"
        );
        assert!(m.contains(&valid_line), "{valid_line} not in:\n{m}");
        let expiry = format!(
            "smart_router_license_expiry_seconds{{license_id=\"LIC-0042\",status=\"{word}\"}} {}",
            end - t
        );
        assert!(m.contains(&expiry), "{expiry} not in:\n{m}");
        assert_eq!(m.matches("smart_router_license_valid{").count(), 1, "{m}");
    }
}

#[tokio::test]
async fn unlicensed_evaluation_says_so_and_allows_everything() {
    let h = Harness::with_config(&licensed_config()).await;
    let v = send("GET", &h.url("/version"), &[], bytes::Bytes::new()).await;
    assert_eq!(v.json()["license"], "unlicensed");
    let a = send(
        "GET",
        &h.url("/admin/license"),
        &[("authorization", "Bearer admin-token")],
        bytes::Bytes::new(),
    )
    .await;
    let j = a.json();
    assert_eq!(j["status"], "unlicensed");
    assert_eq!(j["license"], Value::Null);
    assert_eq!(j["instances"]["max"], 1);
    assert!(
        j["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["allowed"] == true)
    );
    assert_eq!(j["development_keys"], true);
    let m = send(
        "GET",
        &h.url("/metrics"),
        &[("authorization", "Bearer metrics-token")],
        bytes::Bytes::new(),
    )
    .await
    .text();
    assert!(
        m.contains("smart_router_license_valid{license_id=\"none\",status=\"unlicensed\"} 0"),
        "{m}"
    );
    assert!(!m.contains("smart_router_license_expiry_seconds{"), "{m}");
    let r = send(
        "GET",
        &h.url("/admin/limits"),
        &[("authorization", "Bearer admin-token")],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `/admin/license`: admin and report-admin read it; others are refused in the OpenAI shape.
#[tokio::test]
async fn the_license_endpoint_role_matrix() {
    let l = read(&signed(
        "roles.json",
        payload(json!({"features": ["routing", "usage_reporting"]})),
    ))
    .unwrap();
    let (c, _) = clock(T0 + 86_400);
    let h = Harness::licensed(&licensed_config(), Arc::new(LicenseState::new(Some(l), c))).await;
    for (token, status) in [
        (None, 401),
        (Some("test-token"), 403),
        (Some("metrics-token"), 403),
        (Some("report-token"), 200),
        (Some("admin-token"), 200),
        (Some("wrong-token"), 401),
    ] {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let r = send(
            "GET",
            &h.url("/admin/license"),
            &headers,
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(r.status.as_u16(), status, "{token:?}: {}", r.text());
        let j = r.json();
        if status == 200 {
            assert_eq!(j["status"], "licensed");
            assert_eq!(j["license"]["license_id"], "LIC-0042");
            assert_eq!(j["license"]["customer"], "Acme Corp");
            assert_eq!(j["license"]["expires_at"], stamp(T0 + 365 * 86_400));
            assert_eq!(j["license"]["grace_ends_at"], stamp(T0 + 375 * 86_400));
            assert_eq!(j["instances"]["counted"], false);
            let allowed: Vec<&str> = j["features"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["allowed"] == true)
                .map(|f| f["feature"].as_str().unwrap())
                .collect();
            assert_eq!(allowed, vec!["routing", "usage_reporting"]);
        } else {
            assert!(j["error"]["message"].is_string(), "{j}");
            assert!(!r.text().contains("LIC-0042"), "{}", r.text());
        }
    }
}

/// With a license, the endpoints of features it lacks answer 403 `feature_not_licensed` (to
/// every role, after authentication); the others work.
#[tokio::test]
async fn endpoints_of_unlicensed_features_are_refused() {
    let l = read(&signed(
        "gating.json",
        payload(json!({"features": ["routing", "usage_reporting"]})),
    ))
    .unwrap();
    let (c, _) = clock(T0 + 86_400);
    let h = Harness::licensed(&licensed_config(), Arc::new(LicenseState::new(Some(l), c))).await;
    for (path, feature) in [
        ("/admin/reports/usage", "admin_reports"),
        ("/admin/requests/abc", "admin_reports"),
        ("/admin/limits", "admin_reports"),
        ("/admin/exports/usage", "exports"),
    ] {
        let r = send(
            "GET",
            &h.url(path),
            &[("authorization", "Bearer admin-token")],
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        let j = r.json();
        assert_eq!(j["error"]["code"], "feature_not_licensed", "{path}: {j}");
        let msg = j["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("\"{feature}\"")) && msg.contains("LIC-0042"),
            "{msg}"
        );
        // Without a token it is still 401: nothing about the license is shown to strangers.
        let anon = send("GET", &h.url(path), &[], bytes::Bytes::new()).await;
        assert_eq!(anon.status, 401, "{path}");
    }
    // usage_reporting is licensed: the caller's own usage is not refused for licensing (no
    // store in this harness, so it is 503).
    let own = send(
        "GET",
        &h.url("/v1/router/usage"),
        &[("authorization", "Bearer test-token")],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(own.status, 503, "{}", own.text());
}

/// A reload checks the license like a start: a config using a feature the license lacks, or a
/// license past grace, is refused (the config in force stays); a renewed license is taken.
#[tokio::test]
async fn reloads_check_the_license() {
    let narrow = signed(
        "reload-narrow.json",
        payload(
            json!({"license_id": "LIC-A", "features": ["routing", "usage_reporting", "private_upstreams"]}),
        ),
    );
    let wide = signed(
        "reload-wide.json",
        payload(
            json!({"license_id": "LIC-B", "features": ["routing", "usage_reporting", "private_upstreams", "quotas"]}),
        ),
    );
    let expired = signed(
        "reload-expired.json",
        payload(
            json!({"license_id": "LIC-C", "expires_at": stamp(T0 + 2 * 86_400), "grace_days": 0}),
        ),
    );
    let text = |license: &Path, quota: bool| {
        format!(
            "{}\n[license]\npath = \"{}\"\n{}",
            default_config().replace("roles = [\"metrics-admin\"]", "roles = [\"admin\"]"),
            license.display(),
            if quota {
                "[[quotas]]\nname = \"q\"\nrequests_per_minute = 100\n"
            } else {
                ""
            }
        )
    };
    let (c, now) = clock(T0 + 86_400);
    let h = Harness::licensed(
        &text(&narrow, false),
        Arc::new(LicenseState::new(Some(read(&narrow).unwrap()), c)),
    )
    .await;
    let before = h.live.current().config.hash.clone();
    h.rewrite(&text(&narrow, true));
    let e = h.live.reload().await.unwrap_err().to_string();
    assert!(
        e.contains("quotas[0]: feature \"quotas\" is not licensed (license LIC-A"),
        "{e}"
    );
    assert_eq!(h.live.current().config.hash, before);
    // A renewed license with the feature: taken, and shown.
    h.rewrite(&text(&wide, true));
    h.live.reload().await.unwrap();
    let a = send(
        "GET",
        &h.url("/admin/license"),
        &[("authorization", "Bearer metrics-token")],
        bytes::Bytes::new(),
    )
    .await
    .json();
    assert_eq!(a["license"]["license_id"], "LIC-B", "{a}");
    // Past grace (by the injected clock): refused with what to do; traffic goes on.
    now.store(T0 + 5 * 86_400, Ordering::Relaxed);
    h.rewrite(&text(&expired, false));
    let e = h.live.reload().await.unwrap_err().to_string();
    assert!(e.contains("install a renewed license.json"), "{e}");
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", "Bearer test-token")],
        chat_body(),
    )
    .await;
    assert_eq!(r.status, 200);
}
