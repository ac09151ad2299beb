//! Per-target health, in memory and lock-free: consecutive failures, cooldown, and an EWMA of
//! time to first byte. Indexed by [`crate::config::TargetConfig::id`], so a (provider, model)
//! pair listed by several groups has one health. Target ids stay the same across config
//! reloads, and a reloaded config's health shares the entries of the targets it keeps
//! ([`Health::carried`]), so requests still running on the old config feed the same state.

use crate::config::RoutingConfig;
use crate::upstream::UpstreamError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Weight of the newest sample in the time-to-first-byte EWMA.
const EWMA_ALPHA: f64 = 0.3;

#[derive(Debug, Default)]
struct TargetHealth {
    consecutive_failures: AtomicU32,
    /// Milliseconds since `Health::epoch` until which the target cools down (0: healthy).
    cooldown_until_ms: AtomicU64,
    /// EWMA of time to first byte in microseconds, as f64 bits (0: no sample yet).
    ewma_ttfb_us: AtomicU64,
}

/// Health of every target.
#[derive(Debug)]
pub struct Health {
    targets: Vec<Arc<TargetHealth>>,
    epoch: Instant,
    failures_to_cool: u32,
    cooldown: Duration,
}

impl Health {
    /// Health for `count` targets, all healthy.
    pub fn new(count: usize, routing: &RoutingConfig) -> Self {
        Health {
            targets: (0..count).map(|_| Arc::default()).collect(),
            epoch: Instant::now(),
            failures_to_cool: routing.cooldown_after_failures,
            cooldown: routing.cooldown,
        }
    }

    /// Health for `count` targets under new routing settings, sharing `previous`'s entries
    /// (failures, cooldowns, latency) for the ids it has: a config reload keeps what the router
    /// learned about the targets that remain.
    pub fn carried(count: usize, routing: &RoutingConfig, previous: &Health) -> Self {
        Health {
            targets: (0..count)
                .map(|id| previous.targets.get(id).cloned().unwrap_or_default())
                .collect(),
            epoch: previous.epoch,
            failures_to_cool: routing.cooldown_after_failures,
            cooldown: routing.cooldown,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// How much longer target `id` cools down, if it does.
    pub fn cooling(&self, id: usize) -> Option<Duration> {
        let until = self.targets[id].cooldown_until_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// The recent time to first byte of target `id`, if it has served anything.
    pub fn ttfb(&self, id: usize) -> Option<Duration> {
        let bits = self.targets[id].ewma_ttfb_us.load(Ordering::Relaxed);
        (bits != 0).then(|| Duration::from_secs_f64(f64::from_bits(bits) / 1e6))
    }

    /// Failed attempts at target `id` since its last success or cooldown.
    pub fn failures(&self, id: usize) -> u32 {
        self.targets[id]
            .consecutive_failures
            .load(Ordering::Relaxed)
    }

    /// Target `id` as rules see it: healthy (no cooldown, no failure since its last success),
    /// cooling, and its recent time to first byte in ms (0: unmeasured).
    pub fn state(&self, id: usize) -> crate::rules::TargetState {
        let cooling = self.cooling(id).is_some();
        let failures = self.failures(id);
        crate::rules::TargetState {
            healthy: !cooling && failures == 0,
            cooling,
            latency_ms: self.ttfb(id).map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        }
    }

    /// A successful attempt: resets the failure count and feeds the latency EWMA.
    pub fn record_success(&self, id: usize, ttfb: Duration) {
        let t = &self.targets[id];
        t.consecutive_failures.store(0, Ordering::Relaxed);
        let sample = ttfb.as_secs_f64() * 1e6;
        let old = t.ewma_ttfb_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            EWMA_ALPHA * sample + (1.0 - EWMA_ALPHA) * f64::from_bits(old)
        };
        // A lost race between two updates only drops one sample.
        t.ewma_ttfb_us
            .store(new.max(1.0).to_bits(), Ordering::Relaxed);
    }

    /// A failed attempt. Only failures that are the target's fault count: a credential
    /// rejection or a 429 with `Retry-After` cools it down at once; other retryable failures
    /// cool it down after `cooldown_after_failures` in a row.
    pub fn record_failure(&self, id: usize, err: &UpstreamError) {
        if !err.retryable() {
            return;
        }
        let t = &self.targets[id];
        let cool_for = match err {
            UpstreamError::CredentialRejected { .. } => Some(self.cooldown),
            UpstreamError::Status {
                retry_after: Some(ra),
                ..
            } => Some(*ra),
            _ => {
                let n = t.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                (n >= self.failures_to_cool).then_some(self.cooldown)
            }
        };
        if let Some(d) = cool_for {
            t.consecutive_failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + d.as_millis() as u64;
            t.cooldown_until_ms.fetch_max(until, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    fn routing() -> RoutingConfig {
        crate::config::parse("").unwrap().routing
    }

    fn status(code: u16, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError::Status {
            provider: "p".into(),
            status: StatusCode::from_u16(code).unwrap(),
            body: Bytes::new(),
            retry_after,
        }
    }

    #[test]
    fn consecutive_failures_cool_down_and_success_resets() {
        let h = Health::new(1, &routing());
        h.record_failure(0, &status(500, None));
        h.record_failure(0, &status(500, None));
        h.record_success(0, Duration::from_millis(5));
        h.record_failure(0, &status(500, None));
        h.record_failure(0, &status(500, None));
        assert!(h.cooling(0).is_none());
        h.record_failure(0, &status(502, None));
        assert!(h.cooling(0).unwrap() > Duration::from_secs(29));
    }

    #[test]
    fn retry_after_sets_the_cooldown_and_client_errors_do_not_count() {
        let h = Health::new(2, &routing());
        h.record_failure(0, &status(429, Some(Duration::from_secs(7))));
        let c = h.cooling(0).unwrap();
        assert!(
            c > Duration::from_secs(6) && c <= Duration::from_secs(7),
            "{c:?}"
        );
        for _ in 0..10 {
            h.record_failure(1, &status(400, None));
        }
        assert!(h.cooling(1).is_none());
    }

    #[test]
    fn ewma_tracks_recent_latency() {
        let h = Health::new(1, &routing());
        assert!(h.ttfb(0).is_none());
        h.record_success(0, Duration::from_millis(100));
        h.record_success(0, Duration::from_millis(10));
        let t = h.ttfb(0).unwrap().as_secs_f64() * 1000.0;
        assert!((t - 73.0).abs() < 0.5, "{t}");
    }
}
