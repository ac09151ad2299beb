//! Unit tests of the routing decisions (integration tests drive them over HTTP).

use super::*;
use crate::upstream::UpstreamError;
use dialects::canonical::Needs;

fn config(extra: &str) -> Config {
    crate::config::parse(&format!(
        r#"
        [providers.a]
        kind = "openai"
        base_url = "http://127.0.0.1:1/v1"
        [groups.g]
        fallback_groups = ["h"]
        [[groups.g.targets]]
        provider = "a"
        model = "heavy"
        weight = 3
        capabilities = ["tools"]
        price = {{ input = 3.0, output = 15.0 }}
        [[groups.g.targets]]
        provider = "a"
        model = "light"
        weight = 1
        context_window = 100
        price = {{ input = 0.5, output = 1.0 }}
        [groups.h]
        strategy = "priority"
        [[groups.h.targets]]
        provider = "a"
        model = "backup"
        [[groups.h.targets]]
        provider = "a"
        model = "heavy"
        {extra}
        "#
    ))
    .unwrap()
}

fn req(tools: bool, tokens: u32) -> RequestSummary {
    RequestSummary {
        group: "g".into(),
        stream: false,
        needs: Needs {
            tools,
            ..Needs::default()
        },
        estimated_prompt_tokens: tokens,
        max_output_tokens: None,
        session_key: None,
        reasoning_effort: None,
    }
}

fn models(c: &Config, p: &AttemptPlan) -> Vec<String> {
    p.targets
        .iter()
        .map(|t| c.groups[t.group].targets[t.target].model.clone())
        .collect()
}

struct Fixture {
    health: Health,
    affinity: Affinity,
}

impl Fixture {
    fn new(c: &Config) -> Self {
        Fixture {
            health: Health::new(c.target_count, &c.routing),
            affinity: Affinity::new(100, Duration::from_secs(60)),
        }
    }
    fn state(&self) -> RoutingState<'_> {
        RoutingState {
            health: &self.health,
            affinity: &self.affinity,
        }
    }
}

fn id_of(c: &Config, model: &str) -> usize {
    c.groups
        .iter()
        .flat_map(|g| &g.targets)
        .find(|t| t.model == model)
        .unwrap()
        .id
}

fn cool(f: &Fixture, id: usize, secs: u64) {
    f.health.record_failure(
        id,
        &UpstreamError::Status {
            provider: "a".into(),
            status: http::StatusCode::TOO_MANY_REQUESTS,
            body: bytes::Bytes::new(),
            retry_after: Some(Duration::from_secs(secs)),
        },
    );
}

#[test]
fn weighted_order_follows_weights_then_fallbacks() {
    let c = config("");
    let f = Fixture::new(&c);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut heavy_first = 0;
    for _ in 0..4000 {
        let p = plan_attempts(&c, f.state(), "g", &req(false, 10), &mut rng).unwrap();
        let m = models(&c, &p);
        assert_eq!(
            &m[2..],
            ["backup"],
            "fallback after own targets, no duplicates"
        );
        heavy_first += usize::from(m[0] == "heavy");
    }
    let share = heavy_first as f64 / 4000.0;
    assert!((0.72..0.78).contains(&share), "heavy first {share}");
}

#[test]
fn eligibility_excludes_with_reasons() {
    let c = config("");
    let f = Fixture::new(&c);
    let mut rng = fastrand::Rng::with_seed(1);
    let p = plan_attempts(&c, f.state(), "g", &req(true, 500), &mut rng).unwrap();
    assert_eq!(models(&c, &p), ["heavy"]);
    let mut none = config("");
    none.groups[0].fallback_groups.clear();
    none.groups[0].targets[0].capabilities.tools = false;
    let e = plan_attempts(&none, f.state(), "g", &req(true, 500), &mut rng).unwrap_err();
    assert_eq!(e.reasons.len(), 2);
    assert!(e.reasons[0].contains("a/heavy: request has tools"), "{e:?}");
    assert_eq!(e.cooling, None);
}

#[test]
fn cooling_targets_are_skipped_and_all_cooling_reports_the_shortest_wait() {
    let c = config("");
    let f = Fixture::new(&c);
    let mut rng = fastrand::Rng::with_seed(3);
    cool(&f, id_of(&c, "heavy"), 20);
    let p = plan_attempts(&c, f.state(), "g", &req(false, 10), &mut rng).unwrap();
    assert_eq!(models(&c, &p), ["light", "backup"]);
    cool(&f, id_of(&c, "light"), 5);
    cool(&f, id_of(&c, "backup"), 9);
    let e = plan_attempts(&c, f.state(), "g", &req(false, 10), &mut rng).unwrap_err();
    let wait = e.cooling.unwrap();
    assert!(
        wait <= Duration::from_secs(5) && wait > Duration::from_secs(4),
        "{wait:?}"
    );
}

#[test]
fn priority_keeps_config_order() {
    let c = config("");
    let f = Fixture::new(&c);
    let mut rng = fastrand::Rng::with_seed(3);
    let p = plan_attempts(&c, f.state(), "h", &req(false, 10), &mut rng).unwrap();
    assert_eq!(models(&c, &p), ["backup", "heavy"]);
}

#[test]
fn cost_orders_by_estimated_price() {
    let c = config("");
    let mut c2 = c.clone();
    c2.groups[0].strategy = Strategy::Cost;
    let f = Fixture::new(&c2);
    let mut rng = fastrand::Rng::with_seed(3);
    let p = plan_attempts(&c2, f.state(), "g", &req(false, 10), &mut rng).unwrap();
    assert_eq!(models(&c2, &p)[..2], ["light", "heavy"]);
}

#[test]
fn latency_prefers_fast_targets_and_explores_a_little() {
    let mut c = config("");
    c.groups[0].strategy = Strategy::Latency;
    let f = Fixture::new(&c);
    f.health
        .record_success(id_of(&c, "heavy"), Duration::from_millis(50));
    f.health
        .record_success(id_of(&c, "light"), Duration::from_millis(300));
    let mut rng = fastrand::Rng::with_seed(11);
    let mut light_first = 0;
    for _ in 0..2000 {
        let p = plan_attempts(&c, f.state(), "g", &req(false, 10), &mut rng).unwrap();
        light_first += usize::from(models(&c, &p)[0] == "light");
    }
    let share = light_first as f64 / 2000.0;
    assert!((0.03..0.08).contains(&share), "explored {share}");
}

#[test]
fn session_affinity_sticks_while_healthy() {
    let mut c = config("");
    c.groups[0].session_affinity = true;
    let f = Fixture::new(&c);
    let mut r = req(false, 10);
    r.session_key = Some("sess".into());
    let mut rng = fastrand::Rng::with_seed(5);
    let p = plan_attempts(&c, f.state(), "g", &r, &mut rng).unwrap();
    assert_eq!(p.affinity_hit, Some(false));
    f.affinity.set("g", "sess", id_of(&c, "light"));
    for _ in 0..50 {
        let p = plan_attempts(&c, f.state(), "g", &r, &mut rng).unwrap();
        assert_eq!(
            (models(&c, &p)[0].as_str(), p.affinity_hit),
            ("light", Some(true))
        );
    }
    cool(&f, id_of(&c, "light"), 30);
    let p = plan_attempts(&c, f.state(), "g", &r, &mut rng).unwrap();
    assert_eq!(
        (models(&c, &p)[0].as_str(), p.affinity_hit),
        ("heavy", Some(false))
    );
}

#[test]
fn explain_lists_order_and_exclusions() {
    let c = config("");
    let e = explain(&c, "g", &req(false, 500)).unwrap();
    let text = e.to_string();
    assert!(
        text.contains("1. a/heavy  [weight 3 (100% chance to go first)]"),
        "{text}"
    );
    assert!(text.contains("2. a/backup  [fallback group `h`]"), "{text}");
    assert!(
        text.contains(
            "excluded: a/light: estimated prompt of 500 tokens exceeds the context window of 100"
        ),
        "{text}"
    );
}
