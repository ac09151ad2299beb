//! `fake-upstream [--listen ADDR] [--log FILE] [--no-record]`: runs the fake provider until
//! interrupted (SIGINT or SIGTERM) and
//! prints `fake-upstream listening on http://ADDR` once it accepts connections.

use std::io::Write;

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut options = fake_upstream::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--no-record" {
            options.no_record = true;
            continue;
        }
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--log", Some(v)) => options.log_file = Some(v.into()),
            _ => {
                eprintln!("usage: fake-upstream [--listen ADDR] [--log FILE] [--no-record]");
                std::process::exit(2);
            }
        }
    }
    let addr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-upstream: bad --listen {listen:?}: {e}");
            std::process::exit(2);
        }
    };
    let fake = match fake_upstream::FakeUpstream::start_on(addr, options).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-upstream: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("fake-upstream listening on http://{}", fake.addr());
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
