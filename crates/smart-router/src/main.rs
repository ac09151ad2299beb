//! The `smart-router` binary: CLI over the `router` crate (serve, demo, check-config,
//! hash-token). `anyhow` lives here only.

mod codex;
mod demo;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use router::config::Config;
use router::server::{BuildInfo, Runtime};
use router::usage::Recorder;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "smart-router", version, about = "A self-hosted LLM gateway")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `router=debug`.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router with a configuration file.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Override `server.listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run a self-contained demo: a fake upstream and the router in one process, no keys.
    Demo {
        /// Where the router listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Validate a configuration file without starting; lists every problem. Exit 0 or 1.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Print the SHA-256 of a token read from standard input, for `token_sha256`.
    HashToken,
    /// Print a Codex CLI `config.toml` for using a group through this router.
    CodexConfig {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The group Codex should use.
        #[arg(long)]
        group: String,
        /// The router's URL as Codex reaches it (default: from `server.listen`).
        #[arg(long)]
        base_url: Option<String>,
        /// The environment variable Codex reads the router token from.
        #[arg(long, default_value = "ROUTER_TOKEN")]
        env_key: String,
    },
    /// Show the targets a group would try for a request, in order, and why others are excluded.
    Explain {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The group.
        #[arg(long)]
        group: String,
        /// The request offers tools.
        #[arg(long)]
        tools: bool,
        /// The request has images.
        #[arg(long)]
        images: bool,
        /// The request asks for a JSON schema response.
        #[arg(long)]
        json_schema: bool,
        /// Estimated prompt tokens.
        #[arg(long, default_value_t = 1000)]
        tokens: u32,
        /// Maximum output tokens (for the cost strategy).
        #[arg(long)]
        max_output_tokens: Option<u32>,
    },
}

fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("SMART_ROUTER_COMMIT"),
        build_date: env!("SMART_ROUTER_BUILD_DATE"),
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Reads and validates a config file; the error lists every problem.
fn load_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read config file: {e}", path.display()))?;
    router::config::parse(&text).map_err(|errs| errs.to_string())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .context("reading the token from stdin")?;
            let token = token.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!("{}", router::auth::hash_token_hex(token));
            Ok(())
        }
        Command::Explain {
            config,
            group,
            tools,
            images,
            json_schema,
            tokens,
            max_output_tokens,
        } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            let req = router::routing::RequestSummary {
                group: group.clone(),
                stream: false,
                needs: router::routing::Needs {
                    tools,
                    images,
                    json_schema,
                },
                estimated_prompt_tokens: tokens,
                max_output_tokens,
                session_key: None,
            };
            match router::routing::explain(&config, &group, &req) {
                Some(e) => {
                    print!("{e}");
                    Ok(())
                }
                None => anyhow::bail!("no group named {group:?}"),
            }
        }
        Command::CodexConfig {
            config,
            group,
            base_url,
            env_key,
        } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            let base = base_url.unwrap_or_else(|| format!("http://{}", config.server.listen));
            match codex::config_toml(&config, &group, &base, &env_key) {
                Some(text) => {
                    print!("{text}");
                    Ok(())
                }
                None => anyhow::bail!("no group named {group:?}"),
            }
        }
        Command::Serve { config, listen } => {
            init_logging(cli.log_format, &cli.log_level);
            let mut config = match load_config(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            if let Some(l) = listen {
                config.server.listen = l.parse().context("--listen must be IP:PORT")?;
            }
            runtime()?.block_on(serve(config))
        }
        Command::Demo { listen } => {
            init_logging(cli.log_format, &cli.log_level);
            runtime()?.block_on(demo::run(&listen))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn check_config(file: &Path) -> Result<()> {
    match load_config(file) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok ({} providers, {} groups, {} callers)",
                file.display(),
                c.providers.len(),
                c.groups.len(),
                c.callers.len()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// Binds, prints the address, serves until SIGTERM/SIGINT, drains.
async fn serve(config: Config) -> Result<()> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Runtime::new(config, Recorder::log_only(), build_info()));
    println!("smart-router listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, "listening");
    let drained = router::server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!(drained, "stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
