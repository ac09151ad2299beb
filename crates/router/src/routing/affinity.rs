//! Session affinity: a session keeps hitting the target it used last, so provider prompt
//! caches pay off. A bounded map (sharded, TTL) from (group, session key) to target id.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

#[derive(Debug)]
struct Entry {
    target: usize,
    expires: Instant,
}

/// Remembers each session's last target.
#[derive(Debug)]
pub struct Affinity {
    shards: Vec<Mutex<HashMap<u64, Entry>>>,
    per_shard: usize,
    ttl: Duration,
    hasher: RandomState,
}

impl Affinity {
    /// A map of at most about `max_sessions` sessions, each kept `ttl` after its last use.
    pub fn new(max_sessions: usize, ttl: Duration) -> Self {
        Affinity {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_sessions.div_ceil(SHARDS).max(1),
            ttl,
            hasher: RandomState::new(),
        }
    }

    fn slot(&self, group: &str, key: &str) -> (usize, u64) {
        let h = self.hasher.hash_one((group, key));
        ((h as usize) % SHARDS, h)
    }

    /// The target the session used last, if remembered and not expired.
    pub fn get(&self, group: &str, key: &str) -> Option<usize> {
        let (shard, h) = self.slot(group, key);
        let map = self.shards[shard].lock().expect("affinity lock");
        map.get(&h)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.target)
    }

    /// Remembers that the session used `target`.
    pub fn set(&self, group: &str, key: &str, target: usize) {
        let (shard, h) = self.slot(group, key);
        let now = Instant::now();
        let mut map = self.shards[shard].lock().expect("affinity lock");
        if map.len() >= self.per_shard && !map.contains_key(&h) {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.per_shard {
                if let Some(k) = map.keys().next().copied() {
                    map.remove(&k);
                }
            }
        }
        map.insert(
            h,
            Entry {
                target,
                expires: now + self.ttl,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_group_and_stays_bounded() {
        let a = Affinity::new(32, Duration::from_secs(60));
        a.set("g", "s1", 3);
        assert_eq!(a.get("g", "s1"), Some(3));
        assert_eq!(a.get("other", "s1"), None);
        for i in 0..1000 {
            a.set("g", &format!("k{i}"), i);
        }
        let total: usize = a.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 32, "{total}");
    }

    #[test]
    fn expires() {
        let a = Affinity::new(8, Duration::ZERO);
        a.set("g", "s", 1);
        assert_eq!(a.get("g", "s"), None);
    }
}
