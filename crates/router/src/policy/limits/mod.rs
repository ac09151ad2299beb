//! Quotas and budgets: one governance [`Stage`] per `[[quotas]]` and per `[[budgets]]`, in file
//! order, over one [`Ledger`] (leases of a memory or Redis backend).
//!
//! A quota counts requests and tokens per calendar minute (UTC) and requests in flight, per
//! subject of its scope (a caller, project, team, environment, or everyone). Requests and
//! concurrency are checked at admission; tokens are reserved from the request's estimate (its
//! input plus its maximum output, or `limits.assumed_output_tokens`) and settled with the real
//! usage when the response ends. A budget counts USD per calendar period, charged from the
//! priced usage record. Over a limit, an `enforce` stage refuses (429 in the caller's dialect,
//! with `Retry-After`); a `shadow` stage only records `would_reject`. Every response of a
//! limited caller reports its request and token limits in the dialect's rate-limit headers.

mod backend;
mod ledger;

use ledger::LedgerSettings;

use super::{Decision, Denial, Governed, Hold, Settled, Stage};
use crate::auth::Caller;
use crate::config::GroupConfig;
use crate::config::limits::{
    Applies, BudgetConfig, LimitsConfig, Mode, Period, QuotaConfig, Scope,
};
use crate::metrics::LimitsMetrics;
use crate::usage::store::UsageStore;
use backend::Backend;
use dialects::canonical::LimitWindow;
use futures_util::future::BoxFuture;
use ledger::{Ledger, Taken};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The limits of one configuration: its stages and what the operator endpoints read.
#[derive(Debug)]
pub struct Limits {
    quotas: Vec<Arc<QuotaStage>>,
    budgets: Vec<Arc<BudgetStage>>,
    ledger: Arc<Ledger>,
}

/// Why the limits could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("limits backend: {0}")]
pub struct LimitsError(#[from] backend::BackendError);

impl Limits {
    /// Builds the stages of `config` (a Redis backend connects on first use).
    pub fn new(
        config: &LimitsConfig,
        store: Option<Arc<dyn UsageStore>>,
        metrics: LimitsMetrics,
    ) -> Result<Self, LimitsError> {
        let prefix = &config.key_prefix;
        let backend: Arc<dyn Backend> = match &config.redis_url {
            Some(url) => Arc::new(backend::Redis::new(url, config.backend_timeout)?),
            None => Arc::new(backend::Memory::default()),
        };
        let ledger = Ledger::new(
            backend,
            LedgerSettings {
                on_error: config.on_backend_error,
                replicas: config.expected_replicas,
                lease_fraction: config.lease_fraction,
            },
            metrics.backend_up.clone(),
        );
        let quotas = config
            .quotas
            .iter()
            .map(|q| {
                Arc::new(QuotaStage {
                    name: q.name.as_str().into(),
                    key: format!("{prefix}:q:{}", q.name),
                    config: q.clone(),
                    ledger: ledger.clone(),
                    assumed_output: u64::from(config.assumed_output_tokens),
                    metrics: metrics.clone(),
                })
            })
            .collect();
        let budgets = config
            .budgets
            .iter()
            .map(|b| {
                Arc::new(BudgetStage {
                    name: b.name.as_str().into(),
                    key: format!("{prefix}:b:{}", b.name),
                    config: b.clone(),
                    ledger: ledger.clone(),
                    store: store.clone(),
                    metrics: metrics.clone(),
                })
            })
            .collect();
        Ok(Limits {
            quotas,
            budgets,
            ledger,
        })
    }

    /// The governance stages, quotas first then budgets, each in file order.
    pub fn stages(&self) -> Vec<Arc<dyn Stage>> {
        let quotas = self.quotas.iter().map(|q| q.clone() as Arc<dyn Stage>);
        let budgets = self.budgets.iter().map(|b| b.clone() as Arc<dyn Stage>);
        quotas.chain(budgets).collect()
    }

    /// Whether the backend answered last time it was asked.
    pub fn backend_up(&self) -> bool {
        self.ledger.backend_up()
    }

    /// Every quota and budget with its current use per subject of `callers` (JSON for the
    /// operator endpoints; with one caller, its own view: only what counts it).
    pub async fn report(&self, callers: &[Arc<Caller>]) -> serde_json::Value {
        let own = callers.len() == 1;
        let mut quotas = Vec::new();
        for q in &self.quotas {
            let mut subjects = Vec::new();
            for subject in subjects_of(&q.config.applies, callers) {
                subjects.push(q.current(&subject).await);
            }
            if own && subjects.is_empty() {
                continue;
            }
            quotas.push(serde_json::json!({
                "name": &*q.name,
                "scope": q.config.applies.scope.as_str(),
                "mode": mode_str(q.config.mode),
                "requests_per_minute": q.config.requests_per_minute,
                "tokens_per_minute": q.config.tokens_per_minute,
                "concurrent_requests": q.config.concurrent_requests,
                "subjects": subjects,
            }));
        }
        let mut budgets = Vec::new();
        for b in &self.budgets {
            let mut subjects = Vec::new();
            for subject in subjects_of(&b.config.applies, callers) {
                subjects.push(b.current(&subject).await);
            }
            if own && subjects.is_empty() {
                continue;
            }
            budgets.push(serde_json::json!({
                "name": &*b.name,
                "scope": b.config.applies.scope.as_str(),
                "mode": mode_str(b.config.mode),
                "usd": b.config.usd,
                "period": period_str(b.config.period),
                "warn_at": b.config.warn_at,
                "subjects": subjects,
            }));
        }
        serde_json::json!({
            "backend": if self.ledger.shared() { "redis" } else { "memory" },
            "backend_up": self.ledger.backend_up(),
            "quotas": quotas,
            "budgets": budgets,
        })
    }
}

fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Shadow => "shadow",
    }
}

fn period_str(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

/// The subject a caller counts as under `scope`; `None` when the caller has no such
/// attribute (a project quota does not count callers without a project).
fn subject(scope: Scope, caller: &Caller) -> Option<String> {
    match scope {
        Scope::Caller => Some(caller.name.clone()),
        Scope::Project => caller.project.clone(),
        Scope::Team => caller.team.clone(),
        Scope::Environment => caller.environment.clone(),
        Scope::Global => Some("*".into()),
    }
}

/// Whether a quota or budget counts this caller's requests to this group.
fn applies(a: &Applies, caller: &Caller, group: &GroupConfig) -> bool {
    let m = &a.matches;
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    a.groups.as_ref().is_none_or(|g| g.contains(&group.name))
        && subject(a.scope, caller).is_some()
        && is(&m.caller, Some(&caller.name))
        && is(&m.project, caller.project.as_deref())
        && is(&m.team, caller.team.as_deref())
        && is(&m.environment, caller.environment.as_deref())
}

/// The distinct subjects of the callers a quota or budget can count.
fn subjects_of(a: &Applies, callers: &[Arc<Caller>]) -> Vec<String> {
    let m = &a.matches;
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let mut out: Vec<String> = callers
        .iter()
        .filter(|c| {
            is(&m.caller, Some(&c.name))
                && is(&m.project, c.project.as_deref())
                && is(&m.team, c.team.as_deref())
                && is(&m.environment, c.environment.as_deref())
        })
        .filter_map(|c| subject(a.scope, c))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 of Unix milliseconds (seconds precision).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let date = crate::time::format_date(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{date}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// The calendar minute of `ms`, and the time until the next one.
fn minute(ms: i64) -> (i64, Duration) {
    let w = ms.div_euclid(60_000);
    let left = (w + 1) * 60_000 - ms;
    (w, Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

fn window(limit: u64, taken: Taken, reset_after: Duration, now: i64) -> LimitWindow {
    LimitWindow {
        limit,
        remaining: taken.remaining,
        reset_after,
        reset_at: rfc3339(now + reset_after.as_millis() as i64),
    }
}

fn rate_limited(name: &str, what: &str, limit: u64, retry: Duration) -> Denial {
    Denial {
        status: 429,
        code: "rate_limit_exceeded",
        kind: "quota_exceeded",
        message: format!(
            "Rate limit reached for quota {name} on {what}: limit {limit}. Please try again in {}s.",
            retry.as_secs().max(1)
        ),
        retry_after: Some(retry.max(Duration::from_secs(1))),
    }
}

fn unavailable() -> Denial {
    Denial {
        status: 503,
        code: "limits_unavailable",
        kind: "limits_unavailable",
        message: "The limits backend is unreachable and this router refuses limited requests until it answers.".into(),
        retry_after: Some(Duration::from_secs(1)),
    }
}

/// One `[[quotas]]`.
#[derive(Debug)]
pub(crate) struct QuotaStage {
    name: Arc<str>,
    key: String,
    config: QuotaConfig,
    ledger: Arc<Ledger>,
    assumed_output: u64,
    metrics: LimitsMetrics,
}

impl QuotaStage {
    fn count(&self, outcome: &'static str) {
        self.metrics
            .decisions
            .get_or_create(&crate::metrics::QuotaLabels {
                quota: self.name.clone(),
                outcome,
            })
            .inc();
    }

    async fn current(&self, subject: &str) -> serde_json::Value {
        let (w, _) = minute(now_ms());
        let requests = self.config.requests_per_minute.map(|_| {
            serde_json::json!(
                self.ledger
                    .in_window(&format!("{}:r:{subject}", self.key), w)
            )
        });
        let tokens = self.config.tokens_per_minute.map(|_| {
            serde_json::json!(
                self.ledger
                    .in_window(&format!("{}:t:{subject}", self.key), w)
            )
        });
        serde_json::json!({
            "subject": subject,
            "requests_this_minute": requests,
            "tokens_this_minute": tokens,
            "in_flight": self.config.concurrent_requests.map(|_| self.ledger.in_flight(&format!("{}:c:{subject}", self.key))),
        })
    }

    async fn evaluate(&self, request: &mut Governed<'_>) -> Result<Decision, Denial> {
        let Some(subject) = subject(self.config.applies.scope, request.caller) else {
            return Ok(Decision::Allow);
        };
        if request.purpose() == super::Purpose::CountTokens {
            // Counting tokens generates nothing: it is not counted against quotas.
            return Ok(Decision::Allow);
        }
        let now = now_ms();
        let (w, reset) = minute(now);
        let mut refusal: Option<(String, u64, Duration)> = None;
        let mut requests_window = None;
        let mut tokens_window = None;
        let mut counted: Option<String> = None;
        let mut reserved: Option<(String, u64)> = None;
        if let Some(limit) = self.config.requests_per_minute {
            let key = format!("{}:r:{subject}", self.key);
            let t = self
                .ledger
                .take(&key, w, 1, limit)
                .await
                .map_err(|_| unavailable())?;
            requests_window = Some(window(limit, t, reset, now));
            if t.allowed {
                counted = Some(key);
            } else {
                refusal = Some(("requests per minute".into(), limit, reset));
            }
        }
        if let (Some(limit), None) = (self.config.tokens_per_minute, &refusal) {
            let s = request.summary();
            let estimate = u64::from(s.estimated_prompt_tokens)
                + s.max_output_tokens.map_or(self.assumed_output, u64::from);
            // A request larger than the whole limit reserves the whole limit (it can pass once
            // a minute) instead of never.
            let want = estimate.clamp(1, limit);
            let key = format!("{}:t:{subject}", self.key);
            let t = self
                .ledger
                .take(&key, w, want, limit)
                .await
                .map_err(|_| unavailable())?;
            tokens_window = Some(window(limit, t, reset, now));
            if t.allowed {
                reserved = Some((key, want));
            } else {
                refusal = Some(("tokens per minute".into(), limit, reset));
            }
        }
        let mut slot = None;
        if let (Some(limit), None) = (self.config.concurrent_requests, &refusal) {
            let key = format!("{}:c:{subject}", self.key);
            let (ok, _) = self.ledger.acquire(&key, limit);
            if ok {
                slot = Some(key);
            } else {
                refusal = Some(("concurrent requests".into(), limit, Duration::from_secs(1)));
            }
        }
        request.rate_limits(requests_window, tokens_window);
        if let Some((what, limit, retry)) = refusal {
            // Give back what was taken before the refusal.
            if let Some(key) = counted.take() {
                self.ledger.settle(&key, w, 1, 0);
            }
            if let Some((key, n)) = reserved.take() {
                self.ledger.settle(&key, w, n, 0);
            }
            if let Some(key) = slot.take() {
                self.ledger.release(&key);
            }
            if self.config.mode == Mode::Shadow {
                self.count("would_reject");
                request.would_reject(&self.name, &what);
                return Ok(Decision::Allow);
            }
            self.count("rejected");
            request.limited(&self.name, &what);
            return Err(rate_limited(&self.name, &what, limit, retry));
        }
        if counted.is_some() || reserved.is_some() || slot.is_some() {
            request.hold(Box::new(QuotaHold {
                ledger: self.ledger.clone(),
                window: w,
                request: counted,
                tokens: reserved,
                slot,
            }));
        }
        Ok(Decision::Allow)
    }
}

impl Stage for QuotaStage {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool {
        applies(&self.config.applies, caller, group)
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            match self.evaluate(request).await {
                Ok(d) => d,
                Err(denial) => Decision::Deny(denial),
            }
        })
    }
}

/// A counted request, reserved tokens and a concurrency slot, until the request ends.
#[derive(Debug)]
struct QuotaHold {
    ledger: Arc<Ledger>,
    window: i64,
    request: Option<String>,
    tokens: Option<(String, u64)>,
    slot: Option<String>,
}

impl Hold for QuotaHold {
    fn settle(self: Box<Self>, end: &Settled) {
        if let (Some(key), true) = (&self.request, end.refused) {
            // Refused by a later stage: the request never happened.
            self.ledger.settle(key, self.window, 1, 0);
        }
        if let Some((key, reserved)) = &self.tokens {
            let used = end.usage.map_or(0, |u| u.input_tokens + u.output_tokens);
            self.ledger.settle(key, self.window, *reserved, used);
        }
        if let Some(key) = &self.slot {
            self.ledger.release(key);
        }
    }
}

/// One `[[budgets]]`.
#[derive(Debug)]
pub(crate) struct BudgetStage {
    name: Arc<str>,
    key: String,
    config: BudgetConfig,
    ledger: Arc<Ledger>,
    store: Option<Arc<dyn UsageStore>>,
    metrics: LimitsMetrics,
}

/// The current period of `p` at `ms`: its start and end (Unix ms).
fn period(p: Period, ms: i64) -> (i64, i64) {
    let day = ms.div_euclid(86_400_000);
    let (y, m, _) = crate::time::civil_from_days(day);
    let (start, end) = match p {
        Period::Day => (day, day + 1),
        Period::Week => {
            // 1970-01-01 was a Thursday: Monday is day 4 of that week.
            let monday = day - (day + 3).rem_euclid(7);
            (monday, monday + 7)
        }
        Period::Month => {
            let first = crate::time::days_from_civil(y, m, 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (first, crate::time::days_from_civil(ny, nm, 1))
        }
    };
    (start * 86_400_000, end * 86_400_000)
}

impl BudgetStage {
    fn period_key(&self, subject: &str, start: i64) -> String {
        format!("{}:{subject}:{start}", self.key)
    }

    /// Spend so far this period, micro-USD (rebuilt from the usage store when the counter is
    /// missing).
    async fn spent(&self, subject: &str, start: i64, end: i64) -> i64 {
        let key = self.period_key(subject, start);
        let ttl = Duration::from_millis(u64::try_from(end - now_ms()).unwrap_or(0))
            + Duration::from_secs(86_400);
        let rebuild = async {
            let store = self.store.as_ref()?;
            let scope = self.config.applies.scope;
            let groups: Option<Vec<String>> = self
                .config
                .applies
                .groups
                .as_ref()
                .map(|g| g.iter().cloned().collect());
            let column = match scope {
                Scope::Caller => Some("caller"),
                Scope::Project => Some("project"),
                Scope::Team => Some("team"),
                Scope::Environment => Some("environment"),
                Scope::Global => None,
            };
            let usd = store
                .spend(column, subject, groups.as_deref(), start)
                .await
                .map_err(|e| tracing::warn!(error = %e, budget = %self.name, "budget not rebuilt from the usage store"))
                .ok()?;
            Some((usd * 1e6).round() as i64)
        };
        self.ledger.spent(&key, ttl, rebuild).await
    }

    async fn current(&self, subject: &str) -> serde_json::Value {
        let (start, end) = period(self.config.period, now_ms());
        let spent = self.spent(subject, start, end).await as f64 / 1e6;
        serde_json::json!({
            "subject": subject,
            "spent_usd": spent,
            "remaining_usd": (self.config.usd - spent).max(0.0),
            "period_start": rfc3339(start),
            "period_end": rfc3339(end),
        })
    }

    async fn evaluate(&self, request: &mut Governed<'_>) -> Result<Decision, Denial> {
        let Some(subject) = subject(self.config.applies.scope, request.caller) else {
            return Ok(Decision::Allow);
        };
        if request.purpose() == super::Purpose::CountTokens {
            return Ok(Decision::Allow);
        }
        let now = now_ms();
        let (start, end) = period(self.config.period, now);
        let spent_usd = self.spent(&subject, start, end).await as f64 / 1e6;
        let share = spent_usd / self.config.usd;
        if share >= self.config.warn_at {
            request.response_header(
                "x-router-budget",
                format!("{}={:.3}", self.name, share.min(9.999)),
            );
            self.count("warned");
        }
        let over = spent_usd >= self.config.usd;
        if over {
            let what = format!(
                "{} USD per {}",
                self.config.usd,
                period_str(self.config.period)
            );
            if self.config.mode == Mode::Shadow {
                self.count("would_reject");
                request.would_reject(&self.name, &what);
            } else {
                self.count("rejected");
                request.limited(&self.name, &what);
                request.response_header("x-should-retry", "false".into());
                let retry = Duration::from_millis(u64::try_from(end - now).unwrap_or(0));
                return Err(Denial {
                    status: 429,
                    code: "insufficient_quota",
                    kind: "budget_exceeded",
                    message: format!(
                        "Budget {} of {} USD per {} is spent; it renews at {}.",
                        self.name,
                        self.config.usd,
                        period_str(self.config.period),
                        rfc3339(end)
                    ),
                    retry_after: Some(retry),
                });
            }
        }
        request.hold(Box::new(BudgetHold {
            ledger: self.ledger.clone(),
            key: self.period_key(&subject, start),
            ttl: Duration::from_millis(u64::try_from(end - now).unwrap_or(0))
                + Duration::from_secs(86_400),
        }));
        Ok(Decision::Allow)
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .decisions
            .get_or_create(&crate::metrics::QuotaLabels {
                quota: self.name.clone(),
                outcome,
            })
            .inc();
    }
}

impl Stage for BudgetStage {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool {
        applies(&self.config.applies, caller, group)
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            match self.evaluate(request).await {
                Ok(d) => d,
                Err(denial) => Decision::Deny(denial),
            }
        })
    }
}

/// The charge of a request to a budget, made when it ends.
#[derive(Debug)]
struct BudgetHold {
    ledger: Arc<Ledger>,
    key: String,
    ttl: Duration,
}

impl Hold for BudgetHold {
    fn settle(self: Box<Self>, end: &Settled) {
        let micros = (end.cost_usd * 1e6).round() as i64;
        self.ledger.charge(&self.key, micros, self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::limits::OnBackendError;

    #[test]
    fn periods_are_calendar_periods() {
        // 2026-11-29 (a Sunday) 12:00 UTC.
        let ms = crate::time::parse_time_ms("2026-11-29T12:00:00Z").unwrap();
        let day = |s: &str| crate::time::parse_time_ms(s).unwrap();
        assert_eq!(
            period(Period::Day, ms),
            (day("2026-11-29"), day("2026-11-30"))
        );
        assert_eq!(
            period(Period::Week, ms),
            (day("2026-11-23"), day("2026-11-30"))
        );
        assert_eq!(
            period(Period::Month, ms),
            (day("2026-11-01"), day("2026-12-01"))
        );
        let dec = day("2026-12-31T23:59:59Z");
        assert_eq!(
            period(Period::Month, dec),
            (day("2026-12-01"), day("2027-01-01"))
        );
        assert_eq!(rfc3339(ms), "2026-11-29T12:00:00Z");
        assert_eq!(minute(90_500), (1, Duration::from_millis(29_500)));
    }

    #[tokio::test]
    async fn memory_windows_admit_exactly_the_limit() {
        let ledger = Ledger::new(
            Arc::new(backend::Memory::default()),
            LedgerSettings {
                on_error: OnBackendError::Allow,
                replicas: 1,
                lease_fraction: 0.1,
            },
            Default::default(),
        );
        let mut admitted = 0;
        for _ in 0..50 {
            if ledger.take("k", 7, 1, 20).await.unwrap().allowed {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 20);
        assert_eq!(
            ledger.take("k", 8, 1, 20).await.unwrap().remaining,
            19,
            "a new window"
        );
        // Tokens: a reservation settled lower gives the rest back.
        assert!(ledger.take("t", 1, 80, 100).await.unwrap().allowed);
        assert!(!ledger.take("t", 1, 30, 100).await.unwrap().allowed);
        ledger.settle("t", 1, 80, 50);
        assert!(ledger.take("t", 1, 30, 100).await.unwrap().allowed);
    }
}
