//! Ed25519 keys: the public keys compiled into this build (see `build.rs`), and the signing
//! side the `license` commands use (key generation, signing a payload).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/license_keys.rs"));

/// The keys licenses are verified with: (key id, public key).
pub(crate) fn trusted() -> &'static [(&'static str, [u8; 32])] {
    TRUSTED_KEYS
}

/// The ids of the trusted keys, and whether they are the vendor's (else the published
/// development key).
pub fn trusted_key_ids() -> (Vec<&'static str>, bool) {
    (
        TRUSTED_KEYS.iter().map(|(id, _)| *id).collect(),
        OFFICIAL_KEYS,
    )
}

/// A 64-byte signature from 128 hex characters.
pub(crate) fn signature_from_hex(s: &str) -> Option<[u8; 64]> {
    let s = s.trim();
    if s.len() != 128 {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether `sig` is `key`'s signature of `message` (strict verification).
pub(crate) fn verify(key: &[u8; 32], message: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(sig))
        .is_ok()
}

/// A key pair as `license keygen` writes it: 64 hex characters each.
#[derive(Clone)]
pub struct KeyPair {
    /// The private key (seed), hex.
    pub private_hex: String,
    /// The public key, hex.
    pub public_hex: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("private_hex", &"***")
            .field("public_hex", &self.public_hex)
            .finish()
    }
}

/// A new key pair from the operating system's randomness.
pub fn generate() -> Result<KeyPair, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok(KeyPair {
        private_hex: crate::config::hex(&seed),
        public_hex: crate::config::hex(&key.verifying_key().to_bytes()),
    })
}

/// Signs a payload with a private key (64 hex characters) under `key_id`: the license file's
/// JSON (`payload`, `key_id`, `signature`).
pub fn sign_payload(private_hex: &str, key_id: &str, mut payload: Value) -> Result<Value, String> {
    let seed = parse_key(private_hex).ok_or("the private key is not 64 hex characters")?;
    let key = SigningKey::from_bytes(&seed);
    let obj = payload
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    if key_id.trim().is_empty() {
        return Err("the key id is empty".into());
    }
    obj.insert("key_id".into(), Value::String(key_id.to_string()));
    let message = super::signed_message(&payload)?;
    let sig = key.sign(&message);
    let file = serde_json::json!({
        "payload": payload,
        "signature": crate::config::hex(&sig.to_bytes()),
    });
    // What a router will check, checked now: every field, and the dates' order.
    let public = key.verifying_key().to_bytes();
    super::LicenseFile::parse(
        std::path::Path::new("(payload)"),
        file.to_string().as_bytes(),
        &[(key_id, public)],
    )
    .map_err(|e| e.to_string())?;
    Ok(file)
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
