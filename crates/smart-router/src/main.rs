//! The `smart-router` binary: CLI over the `router` crate (serve, demo, check-config,
//! hash-token). `anyhow` lives here only.

mod backup;
mod client;
mod codex;
mod demo;
mod diagnose;
mod license_cli;
mod log_format;
mod log_writer;
mod promote;
mod security_summary;
mod smoke;
mod store_cli;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use router::config::Config;
use router::license::LicenseState;
use router::state::{BuildInfo, Runtime};
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
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
    /// Create or upgrade the usage store's schema.
    Migrate {
        /// The TOML configuration file (its `store.url`).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Usage report from the store: totals, tokens, cost, latency percentiles.
    Report {
        /// The TOML configuration file (its `store.url`).
        #[arg(long, short)]
        config: PathBuf,
        /// Start: Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (default: 24 hours before --to).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Dimensions: caller,project,team,environment,client,surface,group,provider,model,status,quota,day,hour.
        #[arg(long, default_value = "group")]
        group_by: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Stream usage records of a time range to stdout as JSONL or CSV.
    Export {
        /// The TOML configuration file (its `store.url`).
        #[arg(long, short)]
        config: PathBuf,
        /// Start (default: 24 hours before --to).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
    /// Delete usage records older than N days.
    Purge {
        /// The TOML configuration file (its `store.url`).
        #[arg(long, short)]
        config: PathBuf,
        /// Age in days.
        #[arg(long)]
        older_than: u32,
    },
    /// Run the production checklist against a running router (public API only); exit 1 when
    /// a check fails.
    Smoke {
        /// The router's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        base_url: String,
        /// Environment variable holding a caller token.
        #[arg(long)]
        token_env: String,
        /// Environment variable holding an admin (or report-admin) token: usage excerpt, license.
        #[arg(long)]
        admin_token_env: Option<String>,
        /// Environment variable holding a metrics-admin token.
        #[arg(long)]
        metrics_token_env: Option<String>,
        /// Groups to exercise (repeatable; default: every group the caller token may use).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Also write the evidence as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Longest wait for one request, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Also run `codex exec` and `claude -p` on a file-writing task through the first
        /// group, when they are on PATH.
        #[arg(long)]
        agents: bool,
        /// Hop checks: the next router (this one's upstream), e.g. http://10.0.0.2:8080.
        #[arg(long)]
        next_base_url: Option<String>,
        /// Environment variable holding an admin or report-admin token for the next router.
        #[arg(long)]
        next_admin_token_env: Option<String>,
    },
    /// Promote a config: validate it (and its license), show the semantic diff, back up the
    /// config in force, replace it atomically, reload the router and run the smoke; roll back
    /// automatically when the reload or the smoke fails. Exit 0 promoted, 1 refused (nothing
    /// changed), 2 smoke failed and rolled back, 3 the rollback failed.
    Promote {
        /// The candidate config.
        #[arg(long)]
        from: PathBuf,
        /// The config in force (the file the router was started with).
        #[arg(long)]
        to: PathBuf,
        /// The router's base URL: reload it there (and run the smoke there).
        #[arg(long)]
        reload_url: Option<String>,
        /// Environment variable holding an admin token (required with --reload-url).
        #[arg(long)]
        admin_token_env: Option<String>,
        /// Environment variable holding a caller token: run the smoke after the reload.
        #[arg(long)]
        smoke_token_env: Option<String>,
        /// Groups the smoke exercises (repeatable; default: all the token may use).
        #[arg(long = "smoke-group")]
        smoke_groups: Vec<String>,
        /// Print the diff only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Put an earlier config back in force (the newest backup, or --backup ID), backing up the
    /// current one first, and reload the router.
    Rollback {
        /// The config in force.
        #[arg(long)]
        to: PathBuf,
        /// The backup to restore (see `backups`); default: the newest.
        #[arg(long)]
        backup: Option<String>,
        /// The router's base URL: reload it there.
        #[arg(long)]
        reload_url: Option<String>,
        /// Environment variable holding an admin token.
        #[arg(long)]
        admin_token_env: Option<String>,
        /// Environment variable holding a caller token: run the smoke after the reload.
        #[arg(long)]
        smoke_token_env: Option<String>,
    },
    /// Back up a deployment: the config, its license, the usage store (a consistent snapshot
    /// while the router runs), secret files only with --include-secrets, and a manifest with
    /// the SHA-256 of every file.
    Backup {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The directory the archive is created in.
        #[arg(long)]
        out: PathBuf,
        /// Also copy `file:` secrets (mode 0600); otherwise they are listed by reference.
        #[arg(long)]
        include_secrets: bool,
    },
    /// Restore a backup into a new directory (and a store): every checksum is verified first.
    Restore {
        /// The archive directory (`smart-router-backup-...`).
        #[arg(long)]
        from: PathBuf,
        /// A new (or empty) directory for the restored files.
        #[arg(long)]
        to: PathBuf,
        /// The empty store to load the usage records into (default for SQLite backups:
        /// DIR/usage.db; required for PostgreSQL backups).
        #[arg(long)]
        store: Option<String>,
    },
    /// List the backups `promote` and `rollback` made of a config file.
    Backups {
        /// The config in force.
        #[arg(long)]
        to: PathBuf,
    },
    /// Security and retention summary of a config: key and token sources (inline flagged),
    /// operator roles, retention, content capture, PII policies, license. Exit 1 when
    /// something is flagged.
    SecuritySummary {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Write a support bundle (.tar.gz) with no secret and no content: the running router's
    /// (with an admin token), else what the config alone tells.
    Diagnose {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
        /// The running router (default: http://<server.listen>).
        #[arg(long)]
        url: Option<String>,
        /// The environment variable holding an admin token (to include the live state).
        #[arg(long)]
        admin_token_env: Option<String>,
    },
    /// License tooling: keygen, sign, verify, status.
    License {
        #[command(subcommand)]
        command: license_cli::LicenseCommand,
    },
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
        /// The caller (a `[[callers]]` name), for rules and policies.
        #[arg(long)]
        caller: Option<String>,
        /// The client software as the router names it (codex, claude-code, openai-python...).
        #[arg(long, default_value = "other")]
        client: String,
        /// The caller's dialect: openai_chat, openai_responses or anthropic_messages.
        #[arg(long, default_value = "openai_chat")]
        surface: String,
        /// A request header, `name=value` (repeatable; rules see those in rules_headers).
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        /// The request streams.
        #[arg(long)]
        stream: bool,
        /// The reasoning effort asked for (low, medium, high...).
        #[arg(long)]
        reasoning_effort: Option<String>,
    },
}

fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("SMART_ROUTER_COMMIT"),
        build_date: env!("SMART_ROUTER_BUILD_DATE"),
    }
}

/// Logs to stderr through [`log_writer`] (never blocking a request on the output); the guard
/// flushes what is queued when dropped.
fn init_logging(format: LogFormat, level: &str) -> log_writer::LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = log_writer::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .fmt_fields(log_format::JsonFields)
            .event_format(log_format::JsonLines)
            .init(),
    }
    guard
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
        Command::License { command } => license_cli::run(command),
        Command::Diagnose {
            config,
            out,
            url,
            admin_token_env,
        } => {
            diagnose::run(&config, &out, url, admin_token_env.as_deref())?;
            Ok(())
        }
        Command::SecuritySummary { config, json } => {
            if !security_summary::run(&config, json)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Promote {
            from,
            to,
            reload_url,
            admin_token_env,
            smoke_token_env,
            smoke_groups,
            dry_run,
        } => {
            let target =
                promote_target(reload_url, admin_token_env, smoke_token_env, smoke_groups)?;
            let code = runtime()?.block_on(promote::promote(&from, &to, &target, dry_run))?;
            std::process::exit(code);
        }
        Command::Rollback {
            to,
            backup,
            reload_url,
            admin_token_env,
            smoke_token_env,
        } => {
            let target = promote_target(reload_url, admin_token_env, smoke_token_env, Vec::new())?;
            let code = runtime()?.block_on(promote::rollback(&to, backup.as_deref(), &target))?;
            std::process::exit(code);
        }
        Command::Backup {
            config,
            out,
            include_secrets,
        } => runtime()?
            .block_on(backup::backup(&config, &out, include_secrets))
            .map(|_| ()),
        Command::Restore { from, to, store } => {
            runtime()?.block_on(backup::restore(&from, &to, store))
        }
        Command::Backups { to } => {
            promote::print_backups(&to);
            Ok(())
        }
        Command::Smoke {
            base_url,
            token_env,
            admin_token_env,
            metrics_token_env,
            groups,
            json,
            timeout_secs,
            agents,
            next_base_url,
            next_admin_token_env,
        } => {
            let next = match (next_base_url, next_admin_token_env) {
                (Some(url), Some(var)) => Some((url, smoke::token_from_env(&var)?)),
                (None, None) => None,
                _ => anyhow::bail!("--next-base-url and --next-admin-token-env go together"),
            };
            let opts = smoke::Options {
                base_url,
                token: smoke::token_from_env(&token_env)?,
                admin_token: admin_token_env
                    .as_deref()
                    .map(smoke::token_from_env)
                    .transpose()?,
                metrics_token: metrics_token_env
                    .as_deref()
                    .map(smoke::token_from_env)
                    .transpose()?,
                groups,
                timeout: std::time::Duration::from_secs(timeout_secs),
                agents,
                next,
            };
            let report = runtime()?.block_on(smoke::run(opts))?;
            print!("{}", report.table());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if report.failures() > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .context("reading the token from stdin")?;
            let token = token.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!("{}", router::config::hash_token_hex(token));
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
            caller,
            client,
            surface,
            headers,
            stream,
            reasoning_effort,
        } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            let surface = [
                dialects::Dialect::OpenAiChat,
                dialects::Dialect::OpenAiResponses,
                dialects::Dialect::AnthropicMessages,
            ]
            .into_iter()
            .find(|d| d.as_str() == surface)
            .with_context(|| {
                format!(
                    "--surface {surface:?}: use openai_chat, openai_responses or anthropic_messages"
                )
            })?;
            let caller = match caller {
                None => None,
                Some(name) => Some(
                    config
                        .callers
                        .iter()
                        .find(|c| c.name == name)
                        .with_context(|| format!("no caller named {name:?}"))?,
                ),
            };
            let mut map = http::HeaderMap::new();
            for h in &headers {
                let (k, v) = h
                    .split_once('=')
                    .with_context(|| format!("--header {h:?}: write NAME=VALUE"))?;
                map.append(
                    http::HeaderName::from_bytes(k.trim().as_bytes())
                        .with_context(|| format!("--header {h:?}: bad header name"))?,
                    http::HeaderValue::from_str(v.trim())
                        .with_context(|| format!("--header {h:?}: bad header value"))?,
                );
            }
            let req = router::routing::RequestSummary {
                group: group.clone(),
                stream,
                needs: router::routing::Needs {
                    tools,
                    images,
                    json_schema,
                },
                estimated_prompt_tokens: tokens,
                max_output_tokens,
                session_key: None,
                reasoning_effort: reasoning_effort
                    .as_deref()
                    .map(dialects::canonical::effort_level),
            };
            let described = router::policy::explain::Described {
                caller,
                client: &client,
                surface,
                headers: &map,
                summary: &req,
            };
            let text = router::policy::explain::explain(&config, &described)
                .map_err(anyhow::Error::msg)?;
            print!("{text}");
            Ok(())
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
        Command::Migrate { config } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            runtime()?.block_on(async {
                let store = router::usage::store::open(&config.store.url)?;
                store.migrate().await?;
                println!("usage store ready: {}", redact_url(&config.store.url));
                Ok(())
            })
        }
        Command::Report {
            config,
            from,
            to,
            group_by,
            format,
        } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            require_feature(&config, router::license::Feature::AdminReports)?;
            runtime()?.block_on(store_cli::report(&config, from, to, &group_by, format))
        }
        Command::Export {
            config,
            from,
            to,
            format,
        } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            require_feature(&config, router::license::Feature::Exports)?;
            runtime()?.block_on(store_cli::export(
                &config,
                from,
                to,
                format == ExportFormat::Csv,
            ))
        }
        Command::Purge { config, older_than } => {
            let config = load_config(&config).map_err(anyhow::Error::msg)?;
            runtime()?.block_on(async {
                let store = router::usage::store::open(&config.store.url)?;
                store.migrate().await?;
                let n = router::usage::retention::purge(
                    store.as_ref(),
                    router::usage::retention::cutoff_ms(older_than),
                )
                .await?;
                println!("purged {n} usage records older than {older_than} days");
                Ok(())
            })
        }
        Command::Serve { config, listen } => {
            let _logs = init_logging(cli.log_format, &cli.log_level);
            let config_path = config;
            let mut config = match load_config(&config_path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            if let Some(l) = listen {
                config.server.listen = l.parse().context("--listen must be IP:PORT")?;
            }
            // A license that does not verify, or does not admit this config, refuses start
            // (never a silent downgrade to evaluation).
            let license = match router::license::load(&config, std::time::SystemTime::now()) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            runtime()?.block_on(serve(Launch {
                config,
                license,
                source: Some(config_path),
            }))
        }
        Command::Demo { listen } => {
            let _logs = init_logging(cli.log_format, &cli.log_level);
            runtime()?.block_on(demo::run(&listen))
        }
    }
}

/// The router `promote` and `rollback` act on, with tokens read from the environment.
fn promote_target(
    reload_url: Option<String>,
    admin_token_env: Option<String>,
    smoke_token_env: Option<String>,
    smoke_groups: Vec<String>,
) -> Result<promote::Target> {
    anyhow::ensure!(
        reload_url.is_none() || admin_token_env.is_some(),
        "--reload-url needs --admin-token-env (an admin token reloads the router)"
    );
    anyhow::ensure!(
        smoke_token_env.is_none() || reload_url.is_some(),
        "--smoke-token-env needs --reload-url (where the smoke runs)"
    );
    Ok(promote::Target {
        reload_url,
        admin_token: admin_token_env
            .as_deref()
            .map(smoke::token_from_env)
            .transpose()?,
        smoke_token: smoke_token_env
            .as_deref()
            .map(smoke::token_from_env)
            .transpose()?,
        smoke_groups,
    })
}

/// Refuses a command of a feature the configured license does not include (unlicensed
/// evaluation allows every feature).
fn require_feature(config: &Config, feature: router::license::Feature) -> Result<()> {
    let Some(path) = &config.license.path else {
        return Ok(());
    };
    let license = router::license::LicenseFile::read(path)?;
    anyhow::ensure!(
        license.has(feature),
        "feature {:?} is not licensed (license {} has: {})",
        feature.name(),
        license.license_id,
        license.features.join(", ")
    );
    Ok(())
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
            match router::license::load(&c, std::time::SystemTime::now()) {
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
                Ok(license) => {
                    println!(
                        "{}: ok ({} providers, {} groups, {} callers)",
                        file.display(),
                        c.providers.len(),
                        c.groups.len(),
                        c.callers.len()
                    );
                    match license {
                        Some(l) => println!(
                            "license {} for {}: {}, expires {}",
                            l.license_id,
                            l.customer,
                            l.status(std::time::SystemTime::now()).as_str(),
                            router::license::rfc3339(l.expires_at)
                        ),
                        None => println!(
                            "no license: unlicensed evaluation (every feature, one instance)"
                        ),
                    }
                }
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// A store URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// What `serve` (and `demo`) start from.
pub(crate) struct Launch {
    /// The validated config.
    pub config: Config,
    /// Its verified license (`None`: unlicensed evaluation).
    pub license: Option<router::license::License>,
    /// The file it came from, for reloads (`None`: not reloadable).
    pub source: Option<PathBuf>,
}

/// Serves until SIGTERM/SIGINT, drains, then flushes usage; reloads the config on SIGHUP,
/// `POST /admin/config/reload` and (with `server.watch_config`) when the file changes.
pub(crate) async fn serve_until(
    launch: Launch,
    listener: tokio::net::TcpListener,
    banner: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let Launch {
        config,
        license,
        source,
    } = launch;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let addr = listener.local_addr()?;
    let licensed = LicenseState::new(license, router::license::system_clock());
    match licensed.license() {
        Some(l) => tracing::info!(
            license_id = %l.license_id,
            customer = %l.customer,
            status = licensed.status().as_str(),
            expires_at = %router::license::rfc3339(l.expires_at),
            "license verified"
        ),
        None => tracing::info!(
            "no license configured: unlicensed evaluation (every feature, one instance)"
        ),
    }
    let mut stops: Vec<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )> = Vec::new();
    let mut writer = None;
    let (recorder, store, licensed) = if config.store.url == "none" {
        tracing::warn!("store.url = \"none\": usage records are logged only, never stored");
        (Recorder::new(&config), None, Arc::new(licensed))
    } else {
        let store =
            router::usage::store::open(&config.store.url).context("opening the usage store")?;
        if let Err(e) = store.migrate().await {
            tracing::warn!(error = %e, store = %redact_url(&config.store.url), "usage store unreachable at start; records are spooled until it answers");
        }
        // Replicas sharing a PostgreSQL store count against the license's instance limit. A
        // store that does not answer now delays registration (the heartbeat registers when it
        // is back) rather than keeping the router down.
        let licensed =
            Arc::new(licensed.with_registry(store.clone(), config.license.heartbeat_interval));
        match licensed.register().await {
            Ok(()) => {}
            Err(e @ router::license::RegisterError::Full { .. }) => anyhow::bail!("{e}"),
            Err(e) => {
                tracing::warn!(error = %e, "instance registration deferred until the store answers")
            }
        }
        let w = Arc::new(router::usage::Writer::spawn(
            store.clone(),
            config.store.writer.clone(),
        ));
        writer = Some(w.clone());
        let (stop, rx) = tokio::sync::watch::channel(false);
        stops.push((
            stop,
            tokio::spawn(router::usage::retention::run(
                store.clone(),
                config.store.retention_days,
                rx,
            )),
        ));
        (Recorder::new(&config).with_writer(w), Some(store), licensed)
    };
    let tracer = router::telemetry::Tracer::from_config(&config.telemetry)?.map(Arc::new);
    let recorder = match &tracer {
        Some(t) => {
            tracing::info!(
                endpoint = %redact_url(config.telemetry.traces_url.as_deref().unwrap_or("-")),
                sampling_ratio = t.sampling_ratio,
                "exporting traces over OTLP/HTTP"
            );
            recorder.with_tracer(t.clone())
        }
        None => recorder,
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    stops.push((stop, tokio::spawn(licensed.clone().watch(rx))));
    let live = router::reload::Live::new(
        Runtime::new(config, recorder, build_info(), store).with_license(licensed),
        source,
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    stops.push((stop, tokio::spawn(live.clone().watch(rx))));
    // Installed before the banner: a SIGHUP from then on reloads (never terminates).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    stops.push((stop, tokio::spawn(reload_on_sighup(live.clone(), hup, rx))));
    banner(addr);
    tracing::info!(%addr, "listening");
    let drained = router::server::serve(listener, live, shutdown_signal()).await?;
    for (stop, task) in stops {
        let _ = stop.send(true);
        let _ = task.await;
    }
    if let Some(w) = writer {
        w.shutdown().await;
    }
    if let Some(t) = tracer {
        // The export thread blocks: not on the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || t.flush()).await;
    }
    tracing::info!(drained, "stopped");
    Ok(())
}

/// Reloads the config on every SIGHUP until `stop` turns true.
async fn reload_on_sighup(
    live: Arc<router::reload::Live>,
    mut hup: tokio::signal::unix::Signal,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                let _ = live.reload().await;
            }
            _ = stop.changed() => return,
        }
    }
}

async fn serve(launch: Launch) -> Result<()> {
    let (listen, backlog) = (
        launch.config.server.listen,
        launch.config.server.listen_backlog,
    );
    let listener =
        router::server::bind(listen, backlog).with_context(|| format!("binding {listen}"))?;
    serve_until(launch, listener, |addr| {
        println!("smart-router listening on http://{addr}");
        let _ = std::io::stdout().flush();
    })
    .await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
