//! Issue 18: the console's sessions and switches, below the browser tests (tests/e2e/
//! test_console.py drives the pages in chromium). A session names a token's hash and is
//! checked against the config in force: a reload that removes the token ends it; a reload that
//! turns the console off makes every console path 404; sign-in never puts the token anywhere
//! but the form body.

mod common;

use bytes::Bytes;
use common::{Harness, send};

fn config(admin_token: &str, console: bool) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
console = {console}
[providers.fake]
kind = "openai"
base_url = "FAKE"
[groups.g]
[[groups.g.targets]]
provider = "fake"
model = "m"
[[callers]]
name = "app"
groups = ["g"]
token = "app-token"
[[callers]]
name = "root"
roles = ["admin"]
token = "{admin_token}"
"#
    )
}

async fn sign_in(h: &Harness, token: &str) -> common::Resp {
    send(
        "POST",
        &h.url("/console/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from(format!("token={token}")),
    )
    .await
}

async fn page(h: &Harness, path: &str, cookie: &str) -> common::Resp {
    send("GET", &h.url(path), &[("cookie", cookie)], Bytes::new()).await
}

#[tokio::test]
async fn a_session_ends_when_a_reload_removes_its_token_and_the_console_can_be_turned_off() {
    let h = Harness::with_config(&config("admin-1", true)).await;
    // A caller token and an unknown token get the form again, without a cookie.
    let r = sign_in(&h, "app-token").await;
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(sign_in(&h, "nope").await.status, 401);

    let r = sign_in(&h, "admin-1").await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/console/"));
    let set = r.header("set-cookie").unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        set.contains("Max-Age=28800") && !set.contains("Secure"),
        "{set}"
    );
    assert!(
        !set.contains("admin-1"),
        "the cookie is a session id, not the token"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let system = page(&h, "/console/system", &cookie).await;
    assert_eq!(system.status, 200);
    let csp = system.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(system.header("cache-control"), Some("no-store"));
    assert!(!system.text().contains("admin-1"));

    // Behind a TLS-ending proxy the cookie is Secure.
    let r = send(
        "POST",
        &h.url("/console/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-proto", "https"),
        ],
        Bytes::from("token=admin-1"),
    )
    .await;
    assert!(r.header("set-cookie").unwrap().contains("; Secure"));

    // The same token after a reload: the session goes on.
    h.rewrite(&config("admin-1", true));
    h.live.reload().await.unwrap();
    assert_eq!(page(&h, "/console/system", &cookie).await.status, 200);
    // Its token removed by a reload: the session is over.
    h.rewrite(&config("admin-2", true));
    h.live.reload().await.unwrap();
    let r = page(&h, "/console/system", &cookie).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));

    // Console off: every console path is a 404, sign-in included.
    h.rewrite(&config("admin-2", false));
    h.live.reload().await.unwrap();
    assert_eq!(sign_in(&h, "admin-2").await.status, 404);
    assert_eq!(page(&h, "/console/", "").await.status, 404);
    assert_eq!(page(&h, "/console/login", "").await.status, 404);
}
