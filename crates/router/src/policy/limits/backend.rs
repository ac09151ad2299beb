//! Where counters live: in this process (`memory`), or in Redis shared by every replica. Both
//! answer the same four questions; the ledger above them keeps the hot path local (leases).

use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the shared backend did not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    /// No answer in time.
    #[error("the limits backend did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis refused or failed.
    #[error("the limits backend failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The counter operations limits need.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Takes up to `want` units of `key` without passing `limit`; returns what was granted and
    /// the counter's total after. The key expires after `ttl`.
    fn lease<'a>(
        &'a self,
        key: &'a str,
        want: u64,
        limit: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(u64, u64), BackendError>>;
    /// Adds `delta` (possibly negative) to `key`; returns the total after.
    fn add<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<i64, BackendError>>;
    /// The value of `key`, if it exists.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, BackendError>>;
    /// Sets `key` to `value` unless it exists; returns the value it has after.
    fn set_absent<'a>(
        &'a self,
        key: &'a str,
        value: i64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<i64, BackendError>>;
    /// Whether the counters are shared with other replicas.
    fn shared(&self) -> bool;
}

/// Counters in this process.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    counters: Mutex<HashMap<String, (i64, Instant)>>,
}

impl Memory {
    fn with<T>(&self, key: &str, ttl: Duration, f: impl FnOnce(&mut i64) -> T) -> T {
        let now = Instant::now();
        let mut map = self.counters.lock().expect("counters lock");
        if map.len() > 4096 {
            map.retain(|_, (_, until)| *until > now);
        }
        let slot = map.entry(key.to_string()).or_insert((0, now + ttl));
        if slot.1 <= now {
            *slot = (0, now + ttl);
        }
        f(&mut slot.0)
    }

    /// Reads without creating.
    fn read(&self, key: &str) -> Option<i64> {
        let map = self.counters.lock().expect("counters lock");
        map.get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| *v)
    }
}

impl Backend for Memory {
    fn lease<'a>(
        &'a self,
        key: &'a str,
        want: u64,
        limit: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(u64, u64), BackendError>> {
        let out = self.with(key, ttl, |used| {
            let have = u64::try_from(*used).unwrap_or(0);
            let grant = want.min(limit.saturating_sub(have));
            *used += i64::try_from(grant).unwrap_or(i64::MAX);
            (grant, u64::try_from(*used).unwrap_or(0))
        });
        Box::pin(async move { Ok(out) })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        let out = self.with(key, ttl, |v| {
            *v = v.saturating_add(delta);
            *v
        });
        Box::pin(async move { Ok(out) })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, BackendError>> {
        let out = self.read(key);
        Box::pin(async move { Ok(out) })
    }

    fn set_absent<'a>(
        &'a self,
        key: &'a str,
        value: i64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        let existing = self.read(key);
        let out = match existing {
            Some(v) => v,
            None => self.with(key, ttl, |v| {
                *v = value;
                value
            }),
        };
        Box::pin(async move { Ok(out) })
    }

    fn shared(&self) -> bool {
        false
    }
}

/// The lease script: takes up to ARGV[1] units of KEYS[1] without passing ARGV[2], atomically.
const LEASE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant < 0 then grant = 0 end
if grant > 0 then
  used = redis.call('INCRBY', KEYS[1], grant)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {grant, used}
";

/// Counters in Redis, shared by every replica. The connection is made on first use and
/// re-made by the connection manager after failures; every call is bounded by `timeout`.
#[derive(Debug)]
pub(crate) struct Redis {
    client: redis::Client,
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    timeout: Duration,
    lease: redis::Script,
}

impl Redis {
    /// A backend for `url` (nothing is connected yet).
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, BackendError> {
        Ok(Redis {
            client: redis::Client::open(url)?,
            conn: tokio::sync::OnceCell::new(),
            timeout,
            lease: redis::Script::new(LEASE),
        })
    }

    async fn conn(&self) -> Result<redis::aio::ConnectionManager, BackendError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = self
            .conn
            .get_or_try_init(|| {
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Runs `f` within the timeout.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))?
    }
}

fn secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

impl Backend for Redis {
    fn lease<'a>(
        &'a self,
        key: &'a str,
        want: u64,
        limit: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(u64, u64), BackendError>> {
        Box::pin(self.bounded(async move {
            let mut c = self.conn().await?;
            let (grant, used): (i64, i64) = self
                .lease
                .key(key)
                .arg(want)
                .arg(limit)
                .arg(secs(ttl))
                .invoke_async(&mut c)
                .await?;
            Ok((
                u64::try_from(grant).unwrap_or(0),
                u64::try_from(used).unwrap_or(0),
            ))
        }))
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        Box::pin(self.bounded(async move {
            let mut c = self.conn().await?;
            let (total, _): (i64, i64) = redis::pipe()
                .atomic()
                .cmd("INCRBY")
                .arg(key)
                .arg(delta)
                .cmd("EXPIRE")
                .arg(key)
                .arg(secs(ttl))
                .query_async(&mut c)
                .await?;
            Ok(total)
        }))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, BackendError>> {
        Box::pin(self.bounded(async move {
            let mut c = self.conn().await?;
            let v: Option<i64> = redis::cmd("GET").arg(key).query_async(&mut c).await?;
            Ok(v)
        }))
    }

    fn set_absent<'a>(
        &'a self,
        key: &'a str,
        value: i64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        Box::pin(self.bounded(async move {
            let mut c = self.conn().await?;
            let (_, v): (Option<String>, i64) = redis::pipe()
                .cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
                .arg("EX")
                .arg(secs(ttl))
                .cmd("GET")
                .arg(key)
                .query_async(&mut c)
                .await?;
            Ok(v)
        }))
    }

    fn shared(&self) -> bool {
        true
    }
}
