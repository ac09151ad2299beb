//! Compiles in the public keys license signatures are verified with.
//!
//! Official builds set `SMART_ROUTER_LICENSE_KEYS` to `ID=HEX[,ID=HEX...]` (Ed25519 public
//! keys, 64 hex characters). Without it, the build trusts the published development key
//! `dev-2026`, whose private half is in `crates/router/tests/fixtures/license/`: such builds
//! accept development-signed licenses.

use std::fmt::Write;

const DEV_KEY: (&str, &str) = (
    "dev-2026",
    "c4f3b6ea1598d5ef9debe7743c71350858f14efbf69dec7c14b40ae75325e756",
);

fn main() {
    println!("cargo:rerun-if-env-changed=SMART_ROUTER_LICENSE_KEYS");
    let keys: Vec<(String, String)> = match std::env::var("SMART_ROUTER_LICENSE_KEYS") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|pair| {
                let (id, hex) = pair
                    .trim()
                    .split_once('=')
                    .expect("SMART_ROUTER_LICENSE_KEYS is ID=HEX[,ID=HEX...]");
                assert!(
                    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                    "license key {id}: 64 hex characters expected"
                );
                (id.to_string(), hex.to_ascii_lowercase())
            })
            .collect(),
        _ => vec![(DEV_KEY.0.to_string(), DEV_KEY.1.to_string())],
    };
    let official = std::env::var("SMART_ROUTER_LICENSE_KEYS").is_ok_and(|v| !v.trim().is_empty());
    let mut out =
        String::from("/// The public keys licenses are verified with: (key id, Ed25519 key).\n");
    out.push_str("pub(crate) const TRUSTED_KEYS: &[(&str, [u8; 32])] = &[\n");
    for (id, hex) in &keys {
        let bytes: Vec<String> = (0..32)
            .map(|i| format!("0x{}", &hex[2 * i..2 * i + 2]))
            .collect();
        writeln!(out, "    ({id:?}, [{}]),", bytes.join(", ")).unwrap();
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// Whether the trusted keys are the vendor's (else the development key)."
    )
    .unwrap();
    writeln!(out, "pub(crate) const OFFICIAL_KEYS: bool = {official};").unwrap();
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("license_keys.rs");
    std::fs::write(path, out).unwrap();
}
