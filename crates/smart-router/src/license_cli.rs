//! `smart-router license keygen|sign|verify|status`: the vendor's tooling (key pairs, signing)
//! and the operator's (is this license good, for this config, now).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use router::license::{License, LicenseFile, LicenseState, Status};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `license` subcommands.
#[derive(Subcommand)]
pub(crate) enum LicenseCommand {
    /// Generate an Ed25519 key pair: PREFIX (private key, mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Sign a payload (JSON) with a private key; prints the license file.
    Sign {
        /// The private key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The payload (see the README for its fields).
        #[arg(long)]
        payload: PathBuf,
        /// The key's id as builds trust it (default: the payload's `key_id`).
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Verify a license: signature, fields, dates; with --config also the deployment binding
    /// and the features the config uses. Exit 0 when it may be used now, 1 otherwise.
    Verify {
        /// The license file.
        file: PathBuf,
        /// A configuration to check it against.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// The status of the license a configuration names, with the live instances on a shared
    /// store. Exit 0 when licensed, in grace or unlicensed; 1 when expired or invalid.
    Status {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print the JSON `GET /admin/license` answers.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `license` subcommand.
pub(crate) fn run(cmd: LicenseCommand) -> Result<()> {
    match cmd {
        LicenseCommand::Keygen { out, force } => keygen(&out, force),
        LicenseCommand::Sign {
            key,
            payload,
            key_id,
        } => sign(&key, &payload, key_id),
        LicenseCommand::Verify { file, config } => verify(&file, config.as_deref()),
        LicenseCommand::Status { config, json } => status(&config, json),
    }
}

fn keygen(out: &Path, force: bool) -> Result<()> {
    let pair = router::license::generate().map_err(anyhow::Error::msg)?;
    let public = PathBuf::from(format!("{}.pub", out.display()));
    let write = |path: &Path, text: &str, mode: u32| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .create_new(!force)
            .mode(mode)
            .open(path)
            .with_context(|| format!("writing {} (pass --force to replace it)", path.display()))?;
        writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    };
    write(out, &pair.private_hex, 0o600)?;
    // An existing file keeps its mode: make sure the private key is not readable by others.
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    write(&public, &pair.public_hex, 0o644)?;
    println!(
        "wrote {} (private key, mode 0600) and {}",
        out.display(),
        public.display()
    );
    println!(
        "builds that trust it: SMART_ROUTER_LICENSE_KEYS=<key id>={} cargo build --release",
        pair.public_hex
    );
    Ok(())
}

fn sign(key: &Path, payload: &Path, key_id: Option<String>) -> Result<()> {
    let private = std::fs::read_to_string(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let text = std::fs::read(payload)
        .with_context(|| format!("reading the payload {}", payload.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not JSON", payload.display()))?;
    let in_payload = value.get("key_id").and_then(|v| v.as_str());
    let key_id = match (key_id, in_payload) {
        (Some(a), Some(b)) if a != b => {
            bail!("--key-id {a:?} differs from the payload's key_id {b:?}")
        }
        (Some(a), _) => a,
        (None, Some(b)) => b.to_string(),
        (None, None) => bail!("name the signing key's id: --key-id ID (or key_id in the payload)"),
    };
    let file = router::license::sign_payload(&private, &key_id, value)
        .map_err(|e| anyhow::anyhow!("{}: {e}", payload.display()))?;
    println!("{}", serde_json::to_string_pretty(&file)?);
    Ok(())
}

/// Prints what a license says, and its status at `now`.
fn describe(l: &License, now: SystemTime) {
    let status = l.status(now);
    println!("{}: signature ok (key {})", l.path.display(), l.key_id);
    println!("  license   {} for {}", l.license_id, l.customer);
    println!("  status    {}", status.as_str());
    println!(
        "  valid     {} .. {} (+{} grace days, to {})",
        router::license::rfc3339(l.not_before),
        router::license::rfc3339(l.expires_at),
        l.grace_days,
        router::license::rfc3339(l.grace_end())
    );
    println!("  features  {}", l.features.join(", "));
    println!("  instances at most {}", l.max_instances);
    if let Some(d) = &l.deployment_id {
        println!("  deployment_id {d}");
    }
    if !l.hostnames.is_empty() {
        println!("  hostnames {}", l.hostnames.join(", "));
    }
}

fn usable(status: Status) -> bool {
    matches!(
        status,
        Status::Licensed | Status::Grace | Status::Unlicensed
    )
}

fn verify(file: &Path, config: Option<&Path>) -> Result<()> {
    let now = SystemTime::now();
    let license = match LicenseFile::read(file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    describe(&license, now);
    let problems: Vec<String> = match config {
        Some(path) => {
            let config = super::load_config(path).map_err(anyhow::Error::msg)?;
            license
                .admit(&config, now, &router::license::hostname())
                .iter()
                .map(ToString::to_string)
                .collect()
        }
        None if !usable(license.status(now)) => vec![format!(
            "{}: the license is {} now",
            file.display(),
            license.status(now).as_str()
        )],
        None => Vec::new(),
    };
    if !problems.is_empty() {
        for p in problems {
            eprintln!("{p}");
        }
        std::process::exit(1);
    }
    Ok(())
}

fn status(config_path: &Path, json: bool) -> Result<()> {
    let config = super::load_config(config_path).map_err(anyhow::Error::msg)?;
    let license = match &config.license.path {
        None => None,
        Some(path) => match LicenseFile::read(path) {
            Ok(l) => Some(l),
            Err(e) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"status": "invalid", "error": e.to_string()})
                    );
                } else {
                    println!("invalid");
                    eprintln!("{e}");
                }
                std::process::exit(1);
            }
        },
    };
    let mut state = LicenseState::new(license, router::license::system_clock());
    // The store's pool lives in the runtime: kept until the end of the command.
    let rt = super::runtime()?;
    let _guard = rt.enter();
    let live = if config.store.url == "none" {
        None
    } else {
        let store = router::usage::store::open(&config.store.url)?;
        state = state.with_registry(store, config.license.heartbeat_interval);
        rt.block_on(state.live_instances())
    };
    let status = state.status();
    let problems: Vec<String> = state.license().map_or_else(Vec::new, |l| {
        l.admit(&config, state.now(), &router::license::hostname())
            .iter()
            .map(ToString::to_string)
            .collect()
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&state.report(live))?);
    } else {
        println!("{}", status.as_str());
        match state.license() {
            Some(l) => describe(&l, state.now()),
            None => println!(
                "  no license configured: unlicensed evaluation (every feature, one instance)"
            ),
        }
        match live {
            None => println!("  instances not counted (an SQLite store serves one process)"),
            Some(Ok(live)) => {
                println!(
                    "  live instances {} of {}",
                    live.len(),
                    state.max_instances()
                );
                for i in live {
                    println!(
                        "    {} on {} (started {}, last seen {})",
                        i.instance_id,
                        i.hostname,
                        router::time::rfc3339_ms(i.started_at_ms),
                        router::time::rfc3339_ms(i.last_seen_ms)
                    );
                }
            }
            Some(Err(e)) => println!("  live instances unknown: the store did not answer ({e})"),
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if !usable(status) || !problems.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
