//! SIGTERM under load: every request answered before shutdown has its usage record stored.

use fake_upstream::{FakeUpstream, Script};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn sigterm_under_load_keeps_every_answered_request() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let dir = std::env::temp_dir().join(format!("sr-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("usage.db");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
drain_timeout_ms = 10000
[store]
url = "sqlite://{}"
spool_path = "{}"
flush_interval_ms = 5000
[providers.fake]
kind = "openai"
base_url = "{}"
[groups.g]
[[groups.g.targets]]
provider = "fake"
model = "m"
[[callers]]
name = "app"
groups = ["g"]
token = "t"
"#,
            db.display(),
            dir.join("spool").display(),
            fake.openai_base_url()
        ),
    )
    .unwrap();
    let n = 40;
    for _ in 0..n {
        fake.enqueue(Script {
            delay_ms: 400,
            ..Script::default()
        });
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_smart-router"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("smart-router listening on http://")
        .expect(&line)
        .to_string();
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body = r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#;
                let mut s = TcpStream::connect(&addr).unwrap();
                write!(s, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer t\r\nx-request-id: load-{i}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
                let mut resp = String::new();
                s.read_to_string(&mut resp).unwrap();
                resp.starts_with("HTTP/1.1 200")
            })
        })
        .collect();
    // Every request is in flight at the fake; the flush interval (5 s) has not passed: the
    // records can only reach the store through the shutdown flush.
    let t0 = std::time::Instant::now();
    while fake.requests().len() < n && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(fake.requests().len(), n);
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let answered = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert!(child.wait().unwrap().success());
    assert_eq!(answered, n, "in-flight requests drain");
    let stored = rt.block_on(async {
        let store = router::usage::store::open(&format!("sqlite://{}", db.display())).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move { store.export(0, i64::MAX, tx).await });
        let mut ids = Vec::new();
        while let Some(r) = rx.recv().await {
            ids.push(r.unwrap().request_id);
        }
        ids
    });
    assert_eq!(
        stored.len(),
        answered,
        "every answered request has its record: {stored:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
