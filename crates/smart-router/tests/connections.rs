//! Connection hardening (issue 12), the way it broke: with a lowered file limit, 1,100 silent
//! connections plus 200 slowloris connections (one header byte every half second) used to make
//! the router stop answering anyone. Now a normal request is answered within a second, and the
//! silent connections are closed once the header-read timeout passes.

mod common;

use common::{Served, sqlite_store};
use fake_upstream::FakeUpstream;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Raises this test process's own soft file limit (it holds 1,300+ sockets itself).
fn raise_own_file_limit() {
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), "--nofile=16384:"])
        .status();
}

async fn normal_request(addr: &str) -> (u16, Duration) {
    let started = Instant::now();
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer test-token\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, started.elapsed())
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
async fn closed(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn silent_and_slowloris_connections_do_not_stop_the_router() {
    raise_own_file_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let served = Served::start_limited("connections", Some(1024), |dir| {
        format!(
            r#"{}
[server]
listen = "127.0.0.1:0"
header_read_timeout_ms = 2000
idle_timeout_ms = 2000
[providers.fake]
kind = "openai"
base_url = "{}"
[groups.fast]
[[groups.fast.targets]]
provider = "fake"
model = "m"
[[callers]]
name = "app"
groups = ["*"]
token = "test-token"
[[callers]]
name = "ops"
roles = ["metrics-admin"]
token = "metrics-token"
"#,
            sqlite_store(dir, ""),
            fake.openai_base_url()
        )
    });
    let addr = served.addr.clone();
    rt.block_on(async move {
        let (status, took) = normal_request(&addr).await;
        assert_eq!(status, 200, "before the attack");
        let mut silent = Vec::new();
        for _ in 0..1_100 {
            silent.push(TcpStream::connect(&addr).await.expect("connect"));
        }
        let attack_started = Instant::now();
        let mut slow = Vec::new();
        for _ in 0..200 {
            let addr = addr.clone();
            slow.push(tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(&addr).await else {
                    return;
                };
                let head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-padding: ";
                for b in head.iter().chain(std::iter::repeat(&b'a')).take(40) {
                    if s.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, took_under_attack) = normal_request(&addr).await;
        assert_eq!(status, 200, "a normal request during the attack");
        assert!(
            took_under_attack < Duration::from_secs(1),
            "answered in {took_under_attack:?} (before the attack: {took:?})"
        );
        // Every silent connection is closed by the header-read timeout (2 s), or earlier when
        // it was evicted to make room.
        let deadline = attack_started + Duration::from_millis(2_000 + 3_000);
        let mut still_open = 0;
        for s in &mut silent {
            let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
            if !closed(s, wait).await {
                still_open += 1;
            }
        }
        assert_eq!(still_open, 0, "silent connections left open after the timeout");
        let (status, _) = normal_request(&addr).await;
        assert_eq!(status, 200, "after the attack");
        for t in slow {
            t.abort();
        }
        // The closes are counted by reason, without any caller label.
        let req = "GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer metrics-token\r\nconnection: close\r\n\r\n";
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let closed_by = |reason: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("smart_router_connections_closed_total{{reason=\"{reason}\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        assert!(
            closed_by("header_timeout") + closed_by("evicted") >= 1_100.0,
            "closes counted: {}",
            out.lines().filter(|l| l.contains("connections_")).collect::<Vec<_>>().join("\n")
        );
    });
}

/// Idle keep-alive connections are closed after `idle_timeout`, and a connection that has
/// served a request is not cut by the header-read timeout while it is busy.
#[test]
fn idle_keep_alive_connections_are_closed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let served = Served::start("idle", |dir| {
        format!(
            "{}\n[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_ms = 500\nidle_timeout_ms = 1000\n",
            sqlite_store(dir, "")
        )
    });
    let addr = served.addr.clone();
    rt.block_on(async move {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let idle_from = Instant::now();
        assert!(
            closed(&mut s, Duration::from_secs(5)).await,
            "idle connection closed"
        );
        let idle = idle_from.elapsed();
        assert!(
            idle >= Duration::from_millis(900) && idle < Duration::from_millis(3_000),
            "closed after {idle:?} idle (timeout 1 s)"
        );
    });
}
