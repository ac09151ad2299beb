//! Quotas and budgets: one governance [`Stage`] for all `[[quotas]]` and `[[budgets]]` (in file
//! order, quotas first), over one [`Ledger`] (leases of a memory or Redis backend).
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
use crate::time::{now_ms, rfc3339_ms};
use crate::usage::store::UsageStore;
use backend::Backend;
use dialects::canonical::{LimitWindow, count_value};
use futures_util::future::BoxFuture;
use ledger::{Ledger, SpendCounter, Taken, WindowCounter};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The limits of one configuration: its stages and what the operator endpoints read.
#[derive(Debug)]
pub struct Limits {
    quotas: Vec<Arc<QuotaStage>>,
    budgets: Vec<Arc<BudgetStage>>,
    ledger: Arc<Ledger>,
    stage: Arc<LimitsStage>,
    /// What the ledger was built from: a reloaded config with the same keeps the ledger.
    ledger_key: String,
}

/// The backend settings a ledger is built from, as one comparable value.
fn ledger_key(config: &LimitsConfig) -> String {
    format!(
        "{:?}|{:?}|{}|{}|{:?}",
        config.redis_url,
        config.on_backend_error,
        config.expected_replicas,
        config.lease_fraction,
        config.backend_timeout
    )
}

/// Why the limits could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("limits backend: {0}")]
pub struct LimitsError(#[from] backend::BackendError);

impl Limits {
    /// Builds the stages of `config` (a Redis backend connects on first use).
    pub fn new(
        config: &LimitsConfig,
        callers: &[Arc<Caller>],
        groups: &[GroupConfig],
        store: Option<Arc<dyn UsageStore>>,
        metrics: LimitsMetrics,
    ) -> Result<Self, LimitsError> {
        Self::carried(None, config, callers, groups, store, metrics)
    }

    /// Like [`Limits::new`] for a reloaded config: when its backend settings are those of
    /// `previous`, the ledger (backend connection and counts) is kept, so windows and budgets
    /// go on counting where they were.
    pub fn carried(
        previous: Option<&Limits>,
        config: &LimitsConfig,
        callers: &[Arc<Caller>],
        groups: &[GroupConfig],
        store: Option<Arc<dyn UsageStore>>,
        metrics: LimitsMetrics,
    ) -> Result<Self, LimitsError> {
        let prefix = &config.key_prefix;
        let key = ledger_key(config);
        let ledger = match previous.filter(|p| p.ledger_key == key) {
            Some(p) => p.ledger.clone(),
            None => {
                let backend: Arc<dyn Backend> = match &config.redis_url {
                    Some(url) => Arc::new(backend::Redis::new(url, config.backend_timeout)?),
                    None => Arc::new(backend::Memory::default()),
                };
                Ledger::new(
                    backend,
                    LedgerSettings {
                        on_error: config.on_backend_error,
                        replicas: config.expected_replicas,
                        lease_fraction: config.lease_fraction,
                    },
                    metrics.backend_up.clone(),
                )
            }
        };
        let quotas: Vec<Arc<QuotaStage>> = config
            .quotas
            .iter()
            .map(|q| {
                let key = format!("{prefix}:q:{}", q.name);
                let by_caller = per_subject(&q.applies, callers, |subject| QuotaCounters {
                    subject: subject.to_string(),
                    requests: WindowCounter::new(format!("{key}:r:{subject}")),
                    tokens: WindowCounter::new(format!("{key}:t:{subject}")),
                    in_flight: AtomicU64::new(0),
                });
                Arc::new(QuotaStage {
                    name: q.name.as_str().into(),
                    by_caller,
                    config: q.clone(),
                    ledger: ledger.clone(),
                    assumed_output: u64::from(config.assumed_output_tokens),
                    metrics: metrics.clone(),
                    reset_at: Mutex::new((i64::MIN, Arc::from(""))),
                    limit_values: [
                        count_value(q.requests_per_minute.unwrap_or(0)),
                        count_value(q.tokens_per_minute.unwrap_or(0)),
                    ],
                })
            })
            .collect();
        let budgets: Vec<Arc<BudgetStage>> = config
            .budgets
            .iter()
            .map(|b| {
                let key = format!("{prefix}:b:{}", b.name);
                let by_caller = per_subject(&b.applies, callers, |subject| BudgetCounter {
                    subject: subject.to_string(),
                    spend: Arc::new(SpendCounter::new(format!("{key}:{subject}"))),
                });
                Arc::new(BudgetStage {
                    name: b.name.as_str().into(),
                    by_caller,
                    config: b.clone(),
                    ledger: ledger.clone(),
                    store: store.clone(),
                    metrics: metrics.clone(),
                })
            })
            .collect();
        let stage = Arc::new(LimitsStage::new(
            ledger.clone(),
            quotas.clone(),
            budgets.clone(),
            callers,
            groups,
        ));
        Ok(Limits {
            quotas,
            budgets,
            ledger,
            stage,
            ledger_key: key,
        })
    }

    /// The governance stage of all quotas and budgets.
    pub fn stage(&self) -> Arc<dyn Stage> {
        self.stage.clone()
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
            for counters in distinct(&q.by_caller, callers) {
                subjects.push(q.current(&counters));
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
            for counter in distinct(&b.by_caller, callers) {
                subjects.push(b.current(&counter).await);
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

/// One `T` per subject of the callers a quota or budget counts, shared by callers of the same
/// subject, indexed by caller (`None`: not counted).
fn per_subject<T>(
    a: &Applies,
    callers: &[Arc<Caller>],
    make: impl Fn(&str) -> T,
) -> Vec<Option<Arc<T>>> {
    let m = &a.matches;
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let mut made: Vec<(String, Arc<T>)> = Vec::new();
    callers
        .iter()
        .map(|c| {
            let counted = is(&m.caller, Some(&c.name))
                && is(&m.project, c.project.as_deref())
                && is(&m.team, c.team.as_deref())
                && is(&m.environment, c.environment.as_deref());
            let subject = subject(a.scope, c).filter(|_| counted)?;
            if let Some((_, t)) = made.iter().find(|(s, _)| *s == subject) {
                return Some(t.clone());
            }
            let t = Arc::new(make(&subject));
            made.push((subject, t.clone()));
            Some(t)
        })
        .collect()
}

/// The distinct counters of `callers` (in first-seen order).
fn distinct<T>(by_caller: &[Option<Arc<T>>], callers: &[Arc<Caller>]) -> Vec<Arc<T>> {
    let mut out: Vec<Arc<T>> = Vec::new();
    for c in callers {
        if let Some(Some(t)) = by_caller.get(c.index) {
            if !out.iter().any(|o| Arc::ptr_eq(o, t)) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// The calendar minute of `ms`, and the time until the next one.
fn minute(ms: i64) -> (i64, Duration) {
    let w = ms.div_euclid(60_000);
    let left = (w + 1) * 60_000 - ms;
    (w, Duration::from_millis(u64::try_from(left).unwrap_or(0)))
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

/// A quota's counters for one subject.
#[derive(Debug)]
struct QuotaCounters {
    subject: String,
    requests: WindowCounter,
    tokens: WindowCounter,
    in_flight: AtomicU64,
}

/// One `[[quotas]]`.
#[derive(Debug)]
pub(crate) struct QuotaStage {
    name: Arc<str>,
    /// The counters of each caller's subject, by caller index.
    by_caller: Vec<Option<Arc<QuotaCounters>>>,
    config: QuotaConfig,
    ledger: Arc<Ledger>,
    assumed_output: u64,
    metrics: LimitsMetrics,
    /// RFC 3339 of the end of the current minute, made once per minute.
    reset_at: Mutex<(i64, Arc<str>)>,
    /// The request and token limits as header values.
    limit_values: [http::HeaderValue; 2],
}

/// What a quota took for a request before deciding.
#[derive(Debug, Default)]
struct Taken2 {
    request: bool,
    tokens: Option<u64>,
    slot: bool,
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

    fn current(&self, c: &QuotaCounters) -> serde_json::Value {
        let (w, _) = minute(now_ms());
        serde_json::json!({
            "subject": &c.subject,
            "requests_this_minute": self.config.requests_per_minute.map(|_| self.ledger.in_window(&c.requests, w)),
            "tokens_this_minute": self.config.tokens_per_minute.map(|_| self.ledger.in_window(&c.tokens, w)),
            "in_flight": self.config.concurrent_requests.map(|_| c.in_flight.load(Ordering::Relaxed)),
        })
    }

    /// The end of minute `w` as RFC 3339 (for Anthropic's reset headers), made once a minute.
    fn reset_at(&self, w: i64) -> Arc<str> {
        let mut cache = self.reset_at.lock().expect("reset lock");
        if cache.0 != w {
            *cache = (w, rfc3339_ms((w + 1) * 60_000).into());
        }
        cache.1.clone()
    }

    /// What a window reports in the headers (`which`: 0 requests, 1 tokens).
    fn window(
        &self,
        which: usize,
        limit: u64,
        t: Taken,
        reset_after: Duration,
        w: i64,
    ) -> LimitWindow {
        LimitWindow {
            limit,
            limit_value: self.limit_values[which].clone(),
            remaining: t.remaining,
            reset_after,
            reset_at: self.reset_at(w),
        }
    }

    /// Takes a concurrency slot of this replica's share.
    fn acquire(&self, c: &QuotaCounters, limit: u64) -> bool {
        let share = self.ledger.slots(limit);
        c.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < share).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back what was taken for a request that does not go on.
    fn give_back(&self, c: &QuotaCounters, w: i64, taken: &Taken2) {
        if taken.request {
            self.ledger.settle(&c.requests, w, 1, 0);
        }
        if let Some(n) = taken.tokens {
            self.ledger.settle(&c.tokens, w, n, 0);
        }
        if taken.slot {
            c.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Counts a request: what was taken (to settle when it ends), or the refusal (with what
    /// was taken given back). Shadow mode never refuses.
    async fn evaluate(&self, request: &mut Governed<'_>) -> Result<Option<QuotaTaken>, Denial> {
        let Some(Some(c)) = self.by_caller.get(request.caller.index).cloned() else {
            return Ok(None);
        };
        let (w, reset) = minute(now_ms());
        let mut refusal: Option<(&'static str, u64, Duration)> = None;
        let mut taken = Taken2::default();
        let mut requests_window = None;
        let mut tokens_window = None;
        if let Some(limit) = self.config.requests_per_minute {
            let t = self
                .ledger
                .take(&c.requests, w, 1, limit)
                .await
                .map_err(|_| unavailable())?;
            requests_window = Some(self.window(0, limit, t, reset, w));
            taken.request = t.allowed;
            if !t.allowed {
                refusal = Some(("requests per minute", limit, reset));
            }
        }
        if let (Some(limit), None) = (self.config.tokens_per_minute, &refusal) {
            let s = request.summary();
            let estimate = u64::from(s.estimated_prompt_tokens)
                + s.max_output_tokens.map_or(self.assumed_output, u64::from);
            // A request larger than the whole limit reserves the whole limit (it can pass once
            // a minute) instead of never.
            let want = estimate.clamp(1, limit);
            let t = self
                .ledger
                .take(&c.tokens, w, want, limit)
                .await
                .map_err(|_| unavailable())?;
            tokens_window = Some(self.window(1, limit, t, reset, w));
            if t.allowed {
                taken.tokens = Some(want);
            } else {
                refusal = Some(("tokens per minute", limit, reset));
            }
        }
        if let (Some(limit), None) = (self.config.concurrent_requests, &refusal) {
            taken.slot = self.acquire(&c, limit);
            if !taken.slot {
                refusal = Some(("concurrent requests", limit, Duration::from_secs(1)));
            }
        }
        request.rate_limits(requests_window, tokens_window);
        if let Some((what, limit, retry)) = refusal {
            self.give_back(&c, w, &taken);
            if self.config.mode == Mode::Shadow {
                self.count("would_reject");
                request.would_reject(&self.name, what);
                return Ok(None);
            }
            self.count("rejected");
            request.limited(&self.name, what);
            return Err(rate_limited(&self.name, what, limit, retry));
        }
        Ok(Some(QuotaTaken {
            counters: c,
            window: w,
            taken,
        }))
    }
}

/// What a quota counted for a request: a request, reserved tokens, a concurrency slot.
#[derive(Debug)]
struct QuotaTaken {
    counters: Arc<QuotaCounters>,
    window: i64,
    taken: Taken2,
}

impl QuotaTaken {
    fn settle(&self, ledger: &Ledger, end: &Settled) {
        let c = &self.counters;
        if self.taken.request && end.refused {
            // Refused by a later stage: the request never happened.
            ledger.settle(&c.requests, self.window, 1, 0);
        }
        if let Some(reserved) = self.taken.tokens {
            let used = end.usage.map_or(0, |u| u.input_tokens + u.output_tokens);
            ledger.settle(&c.tokens, self.window, reserved, used);
        }
        if self.taken.slot {
            c.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A budget's counter for one subject.
#[derive(Debug)]
struct BudgetCounter {
    subject: String,
    spend: Arc<SpendCounter>,
}

/// One `[[budgets]]`.
#[derive(Debug)]
pub(crate) struct BudgetStage {
    name: Arc<str>,
    /// The counter of each caller's subject, by caller index.
    by_caller: Vec<Option<Arc<BudgetCounter>>>,
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

/// How long a period's counter is kept: to its end, and a day more.
fn period_ttl(end: i64) -> Duration {
    Duration::from_millis(u64::try_from(end - now_ms()).unwrap_or(0)) + Duration::from_secs(86_400)
}

impl BudgetStage {
    /// Spend so far this period, micro-USD (rebuilt from the usage store when the counter is
    /// missing).
    async fn spent(&self, b: &BudgetCounter, start: i64, end: i64) -> i64 {
        let rebuild = async {
            let store = self.store.as_ref()?;
            let groups: Option<Vec<String>> = self
                .config
                .applies
                .groups
                .as_ref()
                .map(|g| g.iter().cloned().collect());
            let column = match self.config.applies.scope {
                Scope::Caller => Some("caller"),
                Scope::Project => Some("project"),
                Scope::Team => Some("team"),
                Scope::Environment => Some("environment"),
                Scope::Global => None,
            };
            let usd = store
                .spend(column, &b.subject, groups.as_deref(), start)
                .await
                .map_err(|e| tracing::warn!(error = %e, budget = %self.name, "budget not rebuilt from the usage store"))
                .ok()?;
            Some((usd * 1e6).round() as i64)
        };
        self.ledger
            .spent(&b.spend, start, period_ttl(end), rebuild)
            .await
    }

    async fn current(&self, b: &BudgetCounter) -> serde_json::Value {
        let (start, end) = period(self.config.period, now_ms());
        let spent = self.spent(b, start, end).await as f64 / 1e6;
        serde_json::json!({
            "subject": &b.subject,
            "spent_usd": spent,
            "remaining_usd": (self.config.usd - spent).max(0.0),
            "period_start": rfc3339_ms(start),
            "period_end": rfc3339_ms(end),
        })
    }

    /// Checks a request against the budget: the charge to make when it ends, or the refusal.
    async fn evaluate(&self, request: &mut Governed<'_>) -> Result<Option<BudgetTaken>, Denial> {
        let Some(Some(b)) = self.by_caller.get(request.caller.index).cloned() else {
            return Ok(None);
        };
        let now = now_ms();
        let (start, end) = period(self.config.period, now);
        let spent_usd = self.spent(&b, start, end).await as f64 / 1e6;
        let share = spent_usd / self.config.usd;
        if share >= self.config.warn_at {
            request.response_header(
                "x-router-budget",
                format!("{}={:.3}", self.name, share.min(9.999)),
            );
            self.count("warned");
        }
        if spent_usd >= self.config.usd {
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
                        rfc3339_ms(end)
                    ),
                    retry_after: Some(retry),
                });
            }
        }
        Ok(Some(BudgetTaken {
            counter: b.spend.clone(),
            start,
            ttl: period_ttl(end),
        }))
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

/// The charge of a request to a budget, made when it ends.
#[derive(Debug)]
struct BudgetTaken {
    counter: Arc<SpendCounter>,
    start: i64,
    ttl: Duration,
}

/// All quotas and budgets as one governance stage: one decision (and one hold) per request
/// for however many apply, quotas first then budgets, each in file order. Which apply to a
/// caller and group is resolved once per configuration.
#[derive(Debug)]
struct LimitsStage {
    name: Arc<str>,
    ledger: Arc<Ledger>,
    quotas: Vec<Arc<QuotaStage>>,
    budgets: Vec<Arc<BudgetStage>>,
    /// `plan[caller][group]`: the quotas and budgets that count such requests.
    plan: Vec<Vec<Counting>>,
}

/// Indices of the quotas and of the budgets that count one caller's requests to one group.
type Counting = (Box<[u16]>, Box<[u16]>);

impl LimitsStage {
    fn new(
        ledger: Arc<Ledger>,
        quotas: Vec<Arc<QuotaStage>>,
        budgets: Vec<Arc<BudgetStage>>,
        callers: &[Arc<Caller>],
        groups: &[GroupConfig],
    ) -> Self {
        let idx = |i: usize| u16::try_from(i).expect("fewer than 65,536 quotas");
        let plan = callers
            .iter()
            .map(|c| {
                groups
                    .iter()
                    .map(|g| {
                        let q: Box<[u16]> = (0..quotas.len())
                            .filter(|&i| applies(&quotas[i].config.applies, c, g))
                            .map(idx)
                            .collect();
                        let b: Box<[u16]> = (0..budgets.len())
                            .filter(|&i| applies(&budgets[i].config.applies, c, g))
                            .map(idx)
                            .collect();
                        (q, b)
                    })
                    .collect()
            })
            .collect();
        LimitsStage {
            name: "limits".into(),
            ledger,
            quotas,
            budgets,
            plan,
        }
    }

    fn planned(&self, caller: usize, group: usize) -> Option<&Counting> {
        self.plan.get(caller)?.get(group)
    }

    async fn evaluate(&self, request: &mut Governed<'_>) -> Decision {
        if request.purpose() == super::Purpose::CountTokens {
            // Counting tokens generates nothing: it is not counted against limits.
            return Decision::Allow;
        }
        let Some((quotas, budgets)) = self.planned(request.caller.index, request.group.index)
        else {
            return Decision::Allow;
        };
        let mut hold = LimitsHold {
            ledger: self.ledger.clone(),
            quotas: Vec::with_capacity(quotas.len()),
            budgets: Vec::with_capacity(budgets.len()),
        };
        let refused = Settled {
            usage: None,
            cost_usd: 0.0,
            http_status: 429,
            refused: true,
        };
        for &i in quotas.iter() {
            match self.quotas[usize::from(i)].evaluate(request).await {
                Ok(Some(t)) => hold.quotas.push(t),
                Ok(None) => {}
                Err(denial) => {
                    // What earlier quotas counted for this request is given back.
                    Box::new(hold).settle(&refused);
                    return Decision::Deny(denial);
                }
            }
        }
        for &i in budgets.iter() {
            match self.budgets[usize::from(i)].evaluate(request).await {
                Ok(Some(t)) => hold.budgets.push(t),
                Ok(None) => {}
                Err(denial) => {
                    Box::new(hold).settle(&refused);
                    return Decision::Deny(denial);
                }
            }
        }
        if !hold.quotas.is_empty() || !hold.budgets.is_empty() {
            request.hold(Box::new(hold));
        }
        Decision::Allow
    }
}

impl Stage for LimitsStage {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool {
        self.planned(caller.index, group.index)
            .is_some_and(|(q, b)| !q.is_empty() || !b.is_empty())
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        Box::pin(self.evaluate(request))
    }
}

/// What the limits counted for a request, settled once when it ends.
#[derive(Debug)]
struct LimitsHold {
    ledger: Arc<Ledger>,
    quotas: Vec<QuotaTaken>,
    budgets: Vec<BudgetTaken>,
}

impl Hold for LimitsHold {
    fn settle(self: Box<Self>, end: &Settled) {
        for q in &self.quotas {
            q.settle(&self.ledger, end);
        }
        if end.refused {
            return;
        }
        let micros = (end.cost_usd * 1e6).round() as i64;
        for b in &self.budgets {
            self.ledger.charge(&b.counter, b.start, micros, b.ttl);
        }
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
        assert_eq!(rfc3339_ms(ms), "2026-11-29T12:00:00Z");
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
        let k = WindowCounter::new("k".into());
        let mut admitted = 0;
        for _ in 0..50 {
            if ledger.take(&k, 7, 1, 20).await.unwrap().allowed {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 20);
        assert_eq!(
            ledger.take(&k, 8, 1, 20).await.unwrap().remaining,
            19,
            "a new window"
        );
        // Tokens: a reservation settled lower gives the rest back.
        let t = WindowCounter::new("t".into());
        assert!(ledger.take(&t, 1, 80, 100).await.unwrap().allowed);
        assert!(!ledger.take(&t, 1, 30, 100).await.unwrap().allowed);
        ledger.settle(&t, 1, 80, 50);
        assert!(ledger.take(&t, 1, 30, 100).await.unwrap().allowed);
    }
}
