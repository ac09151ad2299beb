//! `loadgen`: the in-repo load generator for `scripts/bench`. Closed loop (`--concurrency N`)
//! or open loop (`--rate R` requests/s, latency measured from each request's scheduled start,
//! so a slow server cannot hide queueing), bounded by `--duration` and `--requests`. Streams are
//! read to the end; time to first byte is measured too. Prints one JSON object.
//!
//! `loadgen --url URL --body FILE [--header 'k: v']... [--concurrency N | --rate R]
//!          [--duration SECS] [--requests N] [--warmup SECS]`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    body: Bytes,
    headers: Vec<(String, String)>,
    concurrency: usize,
    rate: Option<f64>,
    duration: Duration,
    requests: u64,
    warmup: Duration,
}

fn parse() -> Args {
    let mut a = Args {
        url: String::new(),
        body: Bytes::new(),
        headers: Vec::new(),
        concurrency: 1,
        rate: None,
        duration: Duration::from_secs(5),
        requests: u64::MAX,
        warmup: Duration::from_millis(500),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--url" => a.url = v,
            "--body" => a.body = Bytes::from(std::fs::read(&v).expect("body file")),
            "--header" => {
                let (k, v) = v.split_once(':').expect("header is 'name: value'");
                a.headers.push((k.trim().into(), v.trim().into()));
            }
            "--concurrency" => a.concurrency = v.parse().expect("number"),
            "--rate" => a.rate = Some(v.parse().expect("number")),
            "--duration" => a.duration = Duration::from_secs_f64(v.parse().expect("seconds")),
            "--requests" => a.requests = v.parse().expect("number"),
            "--warmup" => a.warmup = Duration::from_secs_f64(v.parse().expect("seconds")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.url.is_empty(), "--url is required");
    a
}

#[derive(Default)]
struct Sample {
    latency_us: Vec<u64>,
    ttfb_us: Vec<u64>,
    errors: u64,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request; returns (ttfb, total) or None on error.
async fn one(client: &HttpClient, a: &Args, started: Instant) -> Option<(Duration, Duration)> {
    let mut req = http::Request::post(&a.url);
    for (k, v) in &a.headers {
        req = req.header(k, v);
    }
    let resp = client
        .request(req.body(Full::new(a.body.clone())).ok()?)
        .await
        .ok()?;
    let ok = resp.status().is_success();
    let mut body = resp.into_body();
    let mut ttfb = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if ttfb.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            ttfb = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    ok.then(|| (ttfb.unwrap_or(total), total))
}

fn pct(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let a = Arc::new(parse());
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(http);
    // Warm up connections and the server.
    let warm_end = Instant::now() + a.warmup;
    while Instant::now() < warm_end {
        one(&client, &a, Instant::now()).await;
    }
    let issued = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let end = t0 + a.duration;
    let mut tasks = Vec::new();
    match a.rate {
        None => {
            for _ in 0..a.concurrency {
                let (a, client, issued) = (a.clone(), client.clone(), issued.clone());
                tasks.push(tokio::spawn(async move {
                    let mut s = Sample::default();
                    while Instant::now() < end
                        && issued.fetch_add(1, Ordering::Relaxed) < a.requests
                    {
                        match one(&client, &a, Instant::now()).await {
                            Some((ttfb, total)) => {
                                s.ttfb_us.push(ttfb.as_micros() as u64);
                                s.latency_us.push(total.as_micros() as u64);
                            }
                            None => s.errors += 1,
                        }
                    }
                    s
                }));
            }
        }
        Some(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
            let mut n = 0u64;
            loop {
                let scheduled = t0 + interval.mul_f64(n as f64);
                if scheduled >= end || n >= a.requests {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let (a, client, tx) = (a.clone(), client.clone(), tx.clone());
                tokio::spawn(async move {
                    let mut s = Sample::default();
                    match one(&client, &a, scheduled).await {
                        Some((ttfb, total)) => {
                            s.ttfb_us.push(ttfb.as_micros() as u64);
                            s.latency_us.push(total.as_micros() as u64);
                        }
                        None => s.errors += 1,
                    }
                    let _ = tx.send(s);
                });
                n += 1;
            }
            drop(tx);
            tasks.push(tokio::spawn(async move {
                let mut all = Sample::default();
                while let Some(s) = rx.recv().await {
                    all.latency_us.extend(s.latency_us);
                    all.ttfb_us.extend(s.ttfb_us);
                    all.errors += s.errors;
                }
                all
            }));
        }
    }
    let mut all = Sample::default();
    for t in tasks {
        let s = t.await.expect("worker");
        all.latency_us.extend(s.latency_us);
        all.ttfb_us.extend(s.ttfb_us);
        all.errors += s.errors;
    }
    let secs = t0.elapsed().as_secs_f64();
    let ok = all.latency_us.len() as u64;
    println!(
        "{}",
        serde_json::json!({
            "requests": ok + all.errors,
            "ok": ok,
            "errors": all.errors,
            "seconds": secs,
            "rps": ok as f64 / secs,
            "latency_ms": {"p50": pct(&mut all.latency_us, 0.5), "p90": pct(&mut all.latency_us, 0.9),
                           "p99": pct(&mut all.latency_us, 0.99), "max": pct(&mut all.latency_us, 1.0)},
            "ttfb_ms": {"p50": pct(&mut all.ttfb_us, 0.5), "p99": pct(&mut all.ttfb_us, 0.99)},
        })
    );
}
