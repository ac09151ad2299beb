//! The routing-rules stage: one per group that has `[[groups.NAME.rules]]`. The group's rules
//! are evaluated in file order over the request's variables (each read from the request when
//! an expression reaches it); the first enforced rule that matches decides — route to targets, to another
//! group, or deny (403 `policy_denied` with the operator's reason). A shadow rule that matches
//! is recorded and changes nothing; a rule whose expression fails is skipped or denies, as its
//! `on_error` says. Every outcome is counted per rule and noted on the usage record.

use super::{Decision, Denial, Governed, Stage};
use crate::auth::Caller;
use crate::config::GroupConfig;
use crate::config::rules::{Route, RuleConfig, RuleOnError};
use crate::metrics::{GovernanceMetrics, RuleLabels};
use crate::rules::Schema;
use futures_util::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;

/// One group's rules as a governance stage.
#[derive(Debug)]
pub struct RulesStage {
    name: Arc<str>,
    group: usize,
    rules: Vec<Rule>,
    schema: Arc<Schema>,
}

/// A rule with its counters resolved once.
#[derive(Debug)]
struct Rule {
    config: RuleConfig,
    matched: Counter,
    errors: Counter,
}

/// A denial for a rule or a policy: 403 `policy_denied` with the operator's reason.
pub fn policy_denied(message: String) -> Denial {
    Denial {
        status: 403,
        code: "policy_denied",
        kind: "policy_denied",
        message,
        retry_after: None,
    }
}

impl RulesStage {
    /// The stages of a configuration's groups that have rules.
    pub fn all(
        groups: &[GroupConfig],
        schema: &Arc<Schema>,
        metrics: &GovernanceMetrics,
    ) -> Vec<Arc<dyn Stage>> {
        groups
            .iter()
            .filter(|g| !g.rules.is_empty())
            .map(|g| {
                let group: Arc<str> = g.name.as_str().into();
                let rules = g
                    .rules
                    .iter()
                    .map(|r| {
                        let counter = |outcome| {
                            metrics
                                .rules
                                .get_or_create(&RuleLabels {
                                    group: group.clone(),
                                    rule: r.name.clone(),
                                    outcome,
                                })
                                .clone()
                        };
                        Rule {
                            config: r.clone(),
                            matched: counter(if r.shadow {
                                "shadow_matched"
                            } else {
                                "matched"
                            }),
                            errors: counter("error"),
                        }
                    })
                    .collect();
                Arc::new(RulesStage {
                    name: format!("rules:{}", g.name).into(),
                    group: g.index,
                    rules,
                    schema: schema.clone(),
                }) as Arc<dyn Stage>
            })
            .collect()
    }

    fn decide_now(&self, request: &mut Governed<'_>) -> Decision {
        let results: Vec<_> = request.with_subject(|s| {
            // Evaluated up to the first enforced match: later rules never run.
            let mut out = Vec::with_capacity(self.rules.len());
            for rule in &self.rules {
                let r = &rule.config;
                let result = r.when.eval(s, &self.schema);
                let decides = matches!(result, Ok(true)) && !r.shadow
                    || (result.is_err() && r.on_error == RuleOnError::Deny && !r.shadow);
                out.push(result);
                if decides {
                    break;
                }
            }
            out
        });
        for (rule, result) in self.rules.iter().zip(results) {
            let r = &rule.config;
            match result {
                Ok(false) => {}
                Ok(true) if r.shadow => {
                    rule.matched.inc();
                    request.annotate(&self.name, format!("shadow match {}", r.name));
                }
                Ok(true) => {
                    rule.matched.inc();
                    request.decided_by_rule(&r.name);
                    request.annotate(&self.name, format!("matched {}", r.name));
                    return match &r.route {
                        Route::Deny(reason) => Decision::Deny(policy_denied(reason.to_string())),
                        route => {
                            request.route(route.clone());
                            Decision::Allow
                        }
                    };
                }
                Err(e) => {
                    rule.errors.inc();
                    request.annotate(&self.name, format!("error in {}: {e}", r.name));
                    if r.on_error == RuleOnError::Deny && !r.shadow {
                        request.decided_by_rule(&r.name);
                        return Decision::Deny(policy_denied(
                            "The request was refused: a routing rule could not be evaluated."
                                .into(),
                        ));
                    }
                }
            }
        }
        Decision::Allow
    }
}

impl Stage for RulesStage {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn applies_to(&self, _caller: &Caller, group: &GroupConfig) -> bool {
        group.index == self.group
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        Box::pin(std::future::ready(self.decide_now(request)))
    }
}
