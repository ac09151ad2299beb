//! Console sessions (signed in with a token, carried by a cookie): a random id (256 bits, in the cookie) -> the signed-in token's hash and
//! when the session ends. In memory, bounded, kept across config reloads; the table is keyed
//! by the SHA-256 of the id, so the ids themselves are not kept either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sessions kept; starting one more first drops the expired ones, then the oldest.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Session {
    token_hash: [u8; 32],
    started: Instant,
    expires: Instant,
}

/// The live console sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Starts a session for the token with hash `token_hash`, lasting `ttl`; returns its id.
    pub fn start(&self, token_hash: [u8; 32], ttl: Duration) -> String {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random source works");
        let id = crate::config::hex(&raw);
        let now = Instant::now();
        let session = Session {
            token_hash,
            started: now,
            expires: now + ttl,
        };
        let mut table = self.table.lock().expect("sessions lock");
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| s.expires > now);
        }
        if table.len() >= MAX_SESSIONS {
            if let Some(oldest) = table.iter().min_by_key(|(_, s)| s.started).map(|(k, _)| *k) {
                table.remove(&oldest);
            }
        }
        table.insert(crate::config::hash_token(&id), session);
        id
    }

    /// The token hash of a live session (an expired one is removed).
    pub fn get(&self, id: &str) -> Option<[u8; 32]> {
        let key = crate::config::hash_token(id);
        let mut table = self.table.lock().expect("sessions lock");
        let s = *table.get(&key)?;
        if s.expires <= Instant::now() {
            table.remove(&key);
            return None;
        }
        Some(s.token_hash)
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        let key = crate::config::hash_token(id);
        self.table.lock().expect("sessions lock").remove(&key);
    }

    /// How many sessions are kept (live or not yet swept).
    pub fn len(&self) -> usize {
        self.table.lock().expect("sessions lock").len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_expire_end_and_stay_bounded() {
        let s = Sessions::default();
        let a = s.start([1; 32], Duration::from_secs(60));
        assert_eq!(a.len(), 64);
        assert_eq!(s.get(&a), Some([1; 32]));
        assert_eq!(s.get("nope"), None);
        let b = s.start([2; 32], Duration::ZERO);
        assert_ne!(a, b);
        assert_eq!(s.get(&b), None, "expired");
        s.end(&a);
        assert_eq!(s.get(&a), None, "signed out");
        for _ in 0..MAX_SESSIONS + 5 {
            s.start([3; 32], Duration::from_secs(60));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}
