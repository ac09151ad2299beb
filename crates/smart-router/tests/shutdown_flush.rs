//! SIGTERM under load: every request answered before shutdown has its usage record stored.

mod common;

use fake_upstream::{FakeUpstream, Script};

#[test]
fn sigterm_under_load_keeps_every_answered_request() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let n = 40;
    for _ in 0..n {
        fake.enqueue(Script {
            delay_ms: 400,
            ..Script::default()
        });
    }
    let base_url = fake.openai_base_url();
    let mut served = common::Served::start("sigterm", |dir| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
drain_timeout_ms = 10000
{}
[providers.fake]
kind = "openai"
base_url = "{base_url}"
[groups.g]
[[groups.g.targets]]
provider = "fake"
model = "m"
[[callers]]
name = "app"
groups = ["g"]
token = "t"
"#,
            common::sqlite_store(dir, "flush_interval_ms = 5000")
        )
    });
    let addr = served.addr.clone();
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let id = format!("load-{i}");
                common::chat(&addr, "t", "g", &[("x-request-id", &id)]).status == 200
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
    let exit = served.sigterm();
    let answered = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(answered, n, "in-flight requests drain");
    let stored = rt.block_on(async {
        let db = served.dir.join("usage.db");
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
}
