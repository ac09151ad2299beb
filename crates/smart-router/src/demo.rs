//! `smart-router demo`: the fake upstream and the router in one process on loopback, with a
//! built-in config and a demo token. No provider keys, nothing leaves the machine.

use anyhow::{Context, Result};
use std::io::Write;

/// The demo caller's token, which is also an admin (loopback only; never use it in a real
/// deployment).
pub(crate) const DEMO_TOKEN: &str = "sr-demo-token";
/// A caller-only token (what an application would hold), e.g. for `smoke --token-env`.
pub(crate) const DEMO_APP_TOKEN: &str = "sr-demo-app-token";

/// The demo configuration for a fake upstream at `fake_base_url`.
pub(crate) fn demo_config(listen: &str, fake_base_url: &str) -> String {
    format!(
        r#"
[server]
listen = "{listen}"

[store]
url = "sqlite://smart-router-demo.db"
spool_path = "smart-router-demo.spool"

[providers.fake]
kind = "openai"
base_url = "{fake_base_url}"

[groups.fast]
strategy = "priority"
[[groups.fast.targets]]
provider = "fake"
model = "fake-fast"
capabilities = ["tools", "images", "json_schema"]
price = {{ input = 0.1, output = 0.4 }}

[groups.coder]
strategy = "weighted"
fallback_groups = ["fast"]
[[groups.coder.targets]]
provider = "fake"
model = "fake-coder-large"
weight = 3
capabilities = ["tools", "images", "json_schema", "reasoning"]
context_window = 200000
price = {{ input = 1.25, cached_input = 0.125, output = 10.0 }}
[[groups.coder.targets]]
provider = "fake"
model = "fake-coder-small"
weight = 1
capabilities = ["tools", "json_schema"]
context_window = 32000
price = {{ input = 0.25, output = 2.0 }}

[[callers]]
name = "demo"
project = "demo"
roles = ["caller", "admin"]
groups = ["*"]
token = "{DEMO_TOKEN}"

[[callers]]
name = "demo-app"
project = "demo"
groups = ["*"]
token = "{DEMO_APP_TOKEN}"
"#
    )
}

/// Runs the demo until interrupted.
pub(crate) async fn run(listen: &str) -> Result<()> {
    let fake = fake_upstream::FakeUpstream::start()
        .await
        .context("starting the fake upstream")?;
    let text = demo_config(listen, &fake.openai_base_url());
    let config = router::config::parse(&text).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let listener = router::server::bind(config.server.listen, config.server.listen_backlog)
        .with_context(|| {
            format!("binding {listen} (pass --listen 127.0.0.1:PORT to use another port)")
        })?;
    super::serve_until(
        super::Launch {
            config,
            license: None,
            source: None,
        },
        listener,
        |addr| {
        let base = format!("http://{addr}");
        println!("smart-router demo listening on {base}");
        println!("  OpenAI base URL:    {base}/v1  (chat/completions, responses)");
        println!("  Anthropic base URL: {base}     (v1/messages)");
        println!("  token:              {DEMO_TOKEN}  (caller and admin)");
        println!("  app token:          {DEMO_APP_TOKEN}  (caller only)");
        println!("  model groups:       fast, coder");
        println!("  console:            {base}/console/  (sign in with the token above)");
        println!("  usage report:       curl {base}/admin/reports/usage -H 'Authorization: Bearer {DEMO_TOKEN}'");
        println!("  try:");
        println!(
            "    curl -N {base}/v1/chat/completions -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'content-type: application/json' -d '{{\"model\":\"coder\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello there\"}}]}}'"
        );
        let _ = std::io::stdout().flush();
    })
    .await?;
    drop(fake);
    Ok(())
}
