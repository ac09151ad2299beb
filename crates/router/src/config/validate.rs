//! From [`RawConfig`] to [`Config`]: every check, every problem reported with its key path.

use super::error::choice;
use super::raw::{RawConfig, RawGroup, RawProvider, RawTarget};
use super::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Parses and validates a configuration file's text.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let mut unknown = Vec::new();
    let de = toml::Deserializer::new(text);
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(key_path(&path.to_string()));
    let de = serde_ignored::Deserializer::new(de, &mut on_unknown);
    let raw: RawConfig = match serde_path_to_error::deserialize(de) {
        Ok(raw) => raw,
        Err(e) => {
            let path = key_path(&e.path().to_string());
            let path = if path.is_empty() {
                "(file)".into()
            } else {
                path
            };
            let message = parse_message(&path, &e.into_inner(), text);
            return Err(ConfigErrors(vec![ConfigError::Parse { path, message }]));
        }
    };
    let mut errors: Vec<ConfigError> = unknown
        .into_iter()
        .map(|path| ConfigError::UnknownKey { path })
        .collect();
    let hash = hex(&Sha256::digest(text.as_bytes()));
    match validate(raw, hash) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(more) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// A serde path (`budgets.1.match.?.colour`) as our errors spell key paths
/// (`budgets[1].match.colour`).
fn key_path(raw: &str) -> String {
    let mut out = String::new();
    for seg in raw.split('.').filter(|s| *s != "?") {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// A TOML parse or type error as we report it: the position (line and column) and the
/// parser's description — never the offending line's text, which may hold an inline secret.
/// Under `providers` and `callers` (and when the key is unknown) quoted values are cut from
/// the description too (a type error names the value it found).
fn parse_message(path: &str, e: &toml::de::Error, text: &str) -> String {
    let mut message = e.message().trim().replace('\n', " ");
    let sensitive =
        path == "(file)" || path.starts_with("providers") || path.starts_with("callers");
    if sensitive {
        message = without_quoted(&message);
    }
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// `s` without what stands between double quotes or backticks.
fn without_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut open: Option<char> = None;
    for c in s.chars() {
        match (open, c) {
            (None, '"' | '`') => {
                open = Some(c);
                out.push_str("(value)");
            }
            (Some(q), c) if c == q => open = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    out
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates a parsed file; `hash` identifies the file's bytes.
pub fn validate(raw: RawConfig, hash: String) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let server = validate_server(&raw, &mut errors);
    let rs = &raw.store;
    let store = StoreConfig {
        url: rs.url.clone(),
        retention_days: rs.retention_days,
        writer: WriterConfig {
            batch_size: rs.batch_size.max(1),
            flush_interval: Duration::from_millis(rs.flush_interval_ms.max(1)),
            queue_capacity: rs.queue_capacity.max(1),
            spool_path: rs.spool_path.clone().into(),
            spool_max_bytes: rs.spool_max_bytes,
            retry_interval: Duration::from_secs(1),
        },
    };
    if store.url != "none"
        && !["sqlite://", "postgres://", "postgresql://"]
            .iter()
            .any(|p| store.url.starts_with(p))
    {
        errors.push(ConfigError::InvalidValue {
            path: "store.url".into(),
            reason: format!(
                "{:?} must start with sqlite:// or postgres://, or be \"none\"",
                store.url
            ),
        });
    }
    let provider_names: Vec<&str> = raw.providers.keys().map(String::as_str).collect();
    let providers: Vec<Option<ProviderConfig>> = raw
        .providers
        .iter()
        .map(|(name, p)| validate_provider(name, p, &mut errors, &mut warnings))
        .collect();
    let group_names: Vec<&str> = raw.groups.keys().map(String::as_str).collect();
    let routing = validate_routing(&raw, &mut errors);
    let names = Names {
        providers: &provider_names,
        groups: &group_names,
    };
    let group_targets: Vec<super::rules::GroupTargets<'_>> = raw
        .groups
        .iter()
        .map(|(name, g)| super::rules::GroupTargets {
            name,
            targets: g
                .targets
                .iter()
                .map(|t| (t.provider.as_str(), t.model.as_str()))
                .collect(),
        })
        .collect();
    let (rule_schema, rule_targets, group_rule_targets) =
        super::rules::schema(&group_targets, &raw.rules_headers, &mut errors);
    let groups: Vec<Option<GroupConfig>> = raw
        .groups
        .iter()
        .map(|(name, g)| {
            let rules = super::rules::validate_rules(
                name,
                &g.rules,
                &group_targets,
                &rule_schema,
                &mut errors,
            );
            let mut group = validate_group(name, g, names, &routing, &mut errors)?;
            group.rules = rules;
            Some(group)
        })
        .collect();
    let callers =
        super::callers::validate_callers(&raw.callers, &group_names, &mut errors, &mut warnings);
    let limits = super::limits::validate_limits(
        super::limits::LimitsInput {
            limits: &raw.limits,
            quotas: &raw.quotas,
            budgets: &raw.budgets,
            group_names: &group_names,
        },
        &groups,
        &mut errors,
        &mut warnings,
    );
    let pii_policies = super::pii::validate_pii(&raw.pii_policies, &group_names, &mut errors);
    let capture_policies =
        super::capture::validate_capture(&raw.capture_policies, &group_names, &mut errors);
    let policies = super::policies::validate_policies(&raw.policies, &group_names, &mut errors);
    let telemetry =
        super::telemetry::validate_telemetry(&raw.telemetry, &raw.server.name, &mut errors);
    if let Some(l) = &raw.license {
        if l.heartbeat_interval_ms < 100 {
            errors.push(ConfigError::InvalidValue {
                path: "license.heartbeat_interval_ms".into(),
                reason: format!("{} must be at least 100", l.heartbeat_interval_ms),
            });
        }
        if l.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            errors.push(ConfigError::InvalidValue {
                path: "license.path".into(),
                reason: "must name a file (leave it out for unlicensed evaluation)".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut groups: Vec<GroupConfig> = groups.into_iter().flatten().collect();
    for (i, g) in groups.iter_mut().enumerate() {
        g.index = i;
    }
    let target_count = assign_target_ids(&mut groups);
    Ok(Config {
        server: server.expect("no errors means the server section is valid"),
        store,
        routing,
        providers: providers.into_iter().flatten().collect(),
        groups,
        callers,
        limits,
        license: LicenseConfig {
            path: raw
                .license
                .as_ref()
                .and_then(|l| l.path.as_ref())
                .map(PathBuf::from),
            heartbeat_interval: Duration::from_millis(
                raw.license
                    .as_ref()
                    .map_or(5000, |l| l.heartbeat_interval_ms),
            ),
        },
        telemetry,
        pii_policies,
        capture_policies,
        policies,
        rule_schema: std::sync::Arc::new(rule_schema),
        rule_targets,
        group_rule_targets,
        warnings,
        hash,
        target_count,
    })
}

/// Gives every distinct (provider, model) pair one id; returns how many there are.
fn assign_target_ids(groups: &mut [GroupConfig]) -> usize {
    let mut ids: HashMap<(usize, String), usize> = HashMap::new();
    for t in groups.iter_mut().flat_map(|g| g.targets.iter_mut()) {
        let next = ids.len();
        t.id = *ids.entry((t.provider, t.model.clone())).or_insert(next);
    }
    ids.len()
}

fn validate_routing(raw: &RawConfig, errors: &mut Vec<ConfigError>) -> RoutingConfig {
    let r = &raw.routing;
    if r.max_attempts == 0 {
        errors.push(ConfigError::InvalidValue {
            path: "routing.max_attempts".into(),
            reason: "must be at least 1".into(),
        });
    }
    if !(0.0..=1.0).contains(&r.latency_exploration) {
        errors.push(ConfigError::InvalidValue {
            path: "routing.latency_exploration".into(),
            reason: "must be between 0 and 1".into(),
        });
    }
    if r.affinity_max_sessions == 0 {
        errors.push(ConfigError::InvalidValue {
            path: "routing.affinity_max_sessions".into(),
            reason: "must be at least 1".into(),
        });
    }
    RoutingConfig {
        max_attempts: r.max_attempts.max(1),
        retries_per_target: r.retries_per_target,
        retry_backoff: Duration::from_millis(r.retry_backoff_ms),
        cooldown_after_failures: r.cooldown_after_failures.max(1),
        cooldown: Duration::from_millis(r.cooldown_ms),
        hop_margin: Duration::from_millis(r.hop_margin_ms),
        latency_exploration: r.latency_exploration,
        cost_assumed_output_tokens: r.cost_assumed_output_tokens,
        affinity_ttl: Duration::from_millis(r.affinity_ttl_ms),
        affinity_max_sessions: r.affinity_max_sessions.max(1),
    }
}

fn validate_server(raw: &RawConfig, errors: &mut Vec<ConfigError>) -> Option<ServerConfig> {
    let s = &raw.server;
    let listen = match s.listen.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(ConfigError::InvalidValue {
                path: "server.listen".into(),
                reason: format!("{:?} is not an IP address with a port", s.listen),
            });
            None
        }
    };
    for (key, v) in [
        ("max_body_bytes", s.max_body_bytes),
        ("request_timeout_ms", s.request_timeout_ms),
        ("listen_backlog", u64::from(s.listen_backlog)),
        ("header_read_timeout_ms", s.header_read_timeout_ms),
        ("idle_timeout_ms", s.idle_timeout_ms),
        ("console_session_ttl_ms", s.console_session_ttl_ms),
    ] {
        if v == 0 {
            errors.push(ConfigError::InvalidValue {
                path: format!("server.{key}"),
                reason: "must be greater than 0".into(),
            });
        }
    }
    Some(ServerConfig {
        listen: listen?,
        max_body_bytes: usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX),
        request_timeout: Duration::from_millis(s.request_timeout_ms),
        drain_timeout: Duration::from_millis(s.drain_timeout_ms),
        name: s.name.clone(),
        listen_backlog: s.listen_backlog,
        header_read_timeout: Duration::from_millis(s.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(s.idle_timeout_ms),
        max_connections: (s.max_connections > 0).then_some(s.max_connections),
        deployment_id: s.deployment_id.clone(),
        watch_config: s.watch_config,
        console: s.console,
        console_session_ttl: Duration::from_millis(s.console_session_ttl_ms),
    })
}

fn validate_provider(
    name: &str,
    p: &RawProvider,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<ProviderConfig> {
    let path = format!("providers.{name}");
    let kind = choice(errors, format!("{path}.kind"), &p.kind, ProviderKind::ALL);
    let base_url = p.base_url.trim_end_matches('/').to_string();
    let url_ok = match base_url.parse::<http::Uri>() {
        Ok(u) => matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some(),
        Err(_) => false,
    };
    if !url_ok {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.base_url"),
            reason: format!("{:?} is not an http:// or https:// URL", p.base_url),
        });
    }
    let api_key = match p.api_key.as_deref().map(resolve_secret) {
        None => None,
        Some(Ok((secret, source))) => {
            if source == SecretSource::Inline {
                warnings.push(format!(
                    "{path}.api_key: written inline; use env:NAME or file:/path in production"
                ));
            }
            Some(secret)
        }
        Some(Err(source)) => {
            errors.push(ConfigError::Secret {
                path: format!("{path}.api_key"),
                source,
            });
            None
        }
    };
    let headers = super::headers::secret_headers(&path, &p.headers, errors);
    for (key, v) in [
        ("max_response_bytes", p.max_response_bytes),
        ("max_event_bytes", p.max_event_bytes),
        ("read_timeout_ms", p.read_timeout_ms),
    ] {
        if v == 0 {
            errors.push(ConfigError::InvalidValue {
                path: format!("{path}.{key}"),
                reason: "must be greater than 0".into(),
            });
        }
    }
    Some(ProviderConfig {
        name: name.to_string(),
        kind: kind?,
        base_url,
        api_key,
        headers,
        connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        read_timeout: Duration::from_millis(p.read_timeout_ms),
        max_response_bytes: usize::try_from(p.max_response_bytes).unwrap_or(usize::MAX),
        max_event_bytes: usize::try_from(p.max_event_bytes).unwrap_or(usize::MAX),
        pool_idle_timeout: Duration::from_millis(p.pool_idle_timeout_ms),
    })
}

/// The names a group may refer to.
#[derive(Clone, Copy)]
struct Names<'a> {
    providers: &'a [&'a str],
    groups: &'a [&'a str],
}

fn validate_group(
    name: &str,
    g: &RawGroup,
    names: Names<'_>,
    routing: &RoutingConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<GroupConfig> {
    let Names { providers, groups } = names;
    let path = format!("groups.{name}");
    let strategy = choice(
        errors,
        format!("{path}.strategy"),
        &g.strategy,
        Strategy::ALL,
    );
    if g.targets.is_empty() {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.targets"),
            reason: "a group needs at least one target".into(),
        });
    } else if g.targets.iter().all(|t| t.weight == 0) {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.targets"),
            reason: "every target has weight 0, so the group can serve nothing".into(),
        });
    }
    for (i, f) in g.fallback_groups.iter().enumerate() {
        let p = format!("{path}.fallback_groups[{i}]");
        if f == name {
            errors.push(ConfigError::InvalidValue {
                path: p,
                reason: "a group cannot fall back to itself".into(),
            });
        } else if !groups.contains(&f.as_str()) {
            errors.push(ConfigError::UnknownName {
                path: p,
                what: "group",
                name: f.clone(),
                suggestion: suggest(f, groups.iter().copied()),
            });
        }
    }
    const AFFINITY: &[(&str, bool)] = &[("none", false), ("session", true)];
    let session_affinity = choice(errors, format!("{path}.affinity"), &g.affinity, AFFINITY);
    if g.max_attempts == Some(0) {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.max_attempts"),
            reason: "must be at least 1".into(),
        });
    }
    if g.timeout_ms == Some(0) {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.timeout_ms"),
            reason: "must be greater than 0".into(),
        });
    }
    let targets: Vec<Option<TargetConfig>> = g
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| validate_target(&format!("{path}.targets[{i}]"), t, providers, errors))
        .collect();
    Some(GroupConfig {
        index: 0,
        name: name.to_string(),
        strategy: strategy?,
        fallback_groups: g.fallback_groups.clone(),
        timeout: g.timeout_ms.map(Duration::from_millis),
        max_attempts: g.max_attempts.unwrap_or(routing.max_attempts).max(1),
        session_affinity: session_affinity?,
        targets: targets.into_iter().collect::<Option<Vec<_>>>()?,
        rules: Vec::new(),
    })
}

fn validate_target(
    path: &str,
    t: &RawTarget,
    providers: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<TargetConfig> {
    let provider = providers.iter().position(|p| *p == t.provider);
    if provider.is_none() {
        errors.push(ConfigError::UnknownName {
            path: format!("{path}.provider"),
            what: "provider",
            name: t.provider.clone(),
            suggestion: suggest(&t.provider, providers.iter().copied()),
        });
    }
    if t.model.trim().is_empty() {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.model"),
            reason: "must not be empty".into(),
        });
    }
    const CAPS: &[(&str, u8)] = &[
        ("tools", 0),
        ("images", 1),
        ("json_schema", 2),
        ("reasoning", 3),
    ];
    let mut capabilities = Capabilities::default();
    for (i, c) in t.capabilities.iter().enumerate() {
        match choice(errors, format!("{path}.capabilities[{i}]"), c, CAPS) {
            Some(0) => capabilities.tools = true,
            Some(1) => capabilities.images = true,
            Some(2) => capabilities.json_schema = true,
            Some(_) => capabilities.reasoning = true,
            None => {}
        }
    }
    let price = t.price.as_ref().map(|p| Price {
        input: p.input,
        cached_input: p.cached_input.unwrap_or(p.input),
        output: p.output,
    });
    if let Some(p) = price {
        if [p.input, p.cached_input, p.output]
            .iter()
            .any(|v| !v.is_finite() || *v < 0.0)
        {
            errors.push(ConfigError::InvalidValue {
                path: format!("{path}.price"),
                reason: "prices must be finite and not negative".into(),
            });
        }
    }
    if t.context_window == Some(0) {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.context_window"),
            reason: "must be greater than 0".into(),
        });
    }
    Some(TargetConfig {
        id: 0,
        provider: provider?,
        model: t.model.clone(),
        weight: t.weight,
        capabilities,
        context_window: t.context_window,
        max_output_tokens: t.max_output_tokens,
        price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [server]
        listen = "127.0.0.1:0"
        [providers.openai]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        api_key = "sk-test"
        [groups.fast]
        strategy = "priority"
        [[groups.fast.targets]]
        provider = "openai"
        model = "gpt-x"
        capabilities = ["tools"]
        price = { input = 1.0, output = 2.0 }
        [[callers]]
        name = "app"
        groups = ["fast"]
        token = "tok"
    "#;

    #[test]
    fn good_config_validates() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.groups[0].strategy, Strategy::Priority);
        assert!(c.groups[0].targets[0].capabilities.tools);
        assert_eq!(c.groups[0].targets[0].price.unwrap().cached_input, 1.0);
        assert_eq!(c.callers[0].token_sha256, hash_token("tok"));
        assert!(c.callers[0].roles.caller);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert_eq!(c.hash.len(), 64);
        assert!(c.group("fast").is_some() && c.group("nope").is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = r#"
            [server]
            listen = "nowhere"
            colour = "blue"
            [providers.openai]
            kind = "opeani"
            base_url = "ftp://x"
            api_key = "env:SMART_ROUTER_TEST_UNSET_KEY"
            [groups.coder]
            strategy = "fastest"
            fallback_groups = ["fsat", "coder"]
            [[groups.coder.targets]]
            provider = "opnai"
            model = "m"
            capabilities = ["tool"]
            [groups.fast]
            [[callers]]
            name = "a"
            groups = ["coderr"]
            token_sha256 = "abc"
            [[callers]]
            name = "a"
            roles = ["superuser"]
            token = "file:/nonexistent/token"
        "#;
        let errs = parse(bad).unwrap_err().to_string();
        for want in [
            "server.colour: unknown key",
            "server.listen: \"nowhere\" is not an IP address",
            "providers.openai.kind: \"opeani\" is not one of openai, anthropic, openai-responses (did you mean \"openai\"?)",
            "providers.openai.base_url: \"ftp://x\" is not an http",
            "providers.openai.api_key: environment variable SMART_ROUTER_TEST_UNSET_KEY is not set",
            "groups.coder.strategy: \"fastest\" is not one of weighted, priority, latency, cost",
            "groups.coder.fallback_groups[0]: no group named \"fsat\" (did you mean \"fast\"?)",
            "groups.coder.fallback_groups[1]: a group cannot fall back to itself",
            "groups.coder.targets[0].provider: no provider named \"opnai\" (did you mean \"openai\"?)",
            "groups.coder.targets[0].capabilities[0]: \"tool\" is not one of tools, images, json_schema, reasoning (did you mean \"tools\"?)",
            "groups.fast.targets: a group needs at least one target",
            "callers[0].groups[0]: no group named \"coderr\" (did you mean \"coder\"?)",
            "callers[0].token_sha256: must be 64 hex characters",
            "callers[1].name: duplicate caller \"a\"",
            "callers[1].roles[0]: \"superuser\" is not one of caller, metrics-admin, report-admin, admin",
            "callers[1].token: cannot read secret file /nonexistent/token",
        ] {
            assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
        }
    }

    #[test]
    fn duplicate_tokens_and_type_errors() {
        let dup = GOOD.to_string()
            + "\n[[callers]]\nname = \"b\"\ntoken_sha256 = \""
            + &hex(&hash_token("tok"))
            + "\"\n";
        let errs = parse(&dup).unwrap_err().to_string();
        assert!(
            errs.contains("callers[1]: same token as callers[0]"),
            "{errs}"
        );
        let errs = parse("[server]\nmax_body_bytes = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(errs.starts_with("server.max_body_bytes: "), "{errs}");
        let errs = parse("[server\n").unwrap_err().to_string();
        assert!(errs.starts_with("(file): "), "{errs}");
    }

    #[test]
    fn limits_are_validated_with_their_paths() {
        let bad = GOOD.to_string()
            + r#"
            [limits]
            backend = "memcached://x"
            on_backend_error = "ignore"
            lease_fraction = 0
            [[quotas]]
            name = "q"
            scope = "org"
            requests_per_minute = 0
            groups = ["fsat"]
            [[quotas]]
            name = "q"
            [[budgets]]
            name = "b b"
            usd = -1
            period = "year"
            warn_at = 2
            [[budgets]]
            name = "fine"
            usd = 5
            match = { colour = "blue" }
        "#;
        let errs = parse(&bad).unwrap_err().to_string();
        for want in [
            "limits.backend: \"memcached://x\" must be \"memory\" or a redis://HOST:PORT/DB URL",
            "limits.on_backend_error: \"ignore\" is not one of allow, deny",
            "limits.lease_fraction: must be greater than 0 and at most 1",
            "quotas[0].scope: \"org\" is not one of caller, project, team, environment, global",
            "quotas[0].requests_per_minute: must be at least 1",
            "quotas[0].groups[0]: no group named \"fsat\" (did you mean \"fast\"?)",
            "quotas[1].name: duplicate quota or budget \"q\"",
            "quotas[1]: sets no limit",
            "budgets[0].name: must be 1 to 64 letters",
            "budgets[0].usd: must be a positive amount",
            "budgets[0].period: \"year\" is not one of day, week, month",
            "budgets[0].warn_at: must be greater than 0 and at most 1",
            "budgets[1].match.colour: unknown key",
        ] {
            assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
        }
        // A budget over unpriced targets works, with a warning.
        let unpriced = GOOD.replace("price = { input = 1.0, output = 2.0 }", "")
            + "\n[[budgets]]\nname = \"b\"\nusd = 5\n";
        let c = parse(&unpriced).unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("budgets[0]: group \"fast\" has targets without a price")),
            "{:?}",
            c.warnings
        );
        assert_eq!(c.limits.budgets[0].usd, 5.0);
    }

    /// Issue 12: provider `headers` could not come from `env:`/`file:` and showed in `Debug`.
    #[test]
    fn issue_12_provider_headers_take_secret_references_and_stay_hidden() {
        let dir = std::env::temp_dir().join(format!("sr-hdr-{}", std::process::id()));
        std::fs::write(&dir, "org-from-file-123\n").unwrap();
        let text = GOOD.replace(
            "api_key = \"sk-test\"",
            &format!(
                "api_key = \"sk-test\"\nheaders = {{ \"openai-organization\" = \"file:{}\", \"x-extra\" = \"plain-inline-value\" }}",
                dir.display()
            ),
        );
        let c = parse(&text).unwrap();
        let headers = &c.providers[0].headers;
        let org = headers
            .iter()
            .find(|(k, _)| k == "openai-organization")
            .unwrap();
        assert_eq!(org.1.to_str().unwrap(), "org-from-file-123");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("org-from-file-123"),
            "Debug shows a header value"
        );
        assert!(
            !debug.contains("plain-inline-value"),
            "Debug shows a header value"
        );
        assert!(!debug.contains("sk-test"), "Debug shows the key");
        let missing = GOOD.replace(
            "api_key = \"sk-test\"",
            "api_key = \"sk-test\"\nheaders = { \"x-k\" = \"env:SMART_ROUTER_TEST_UNSET_HEADER\" }",
        );
        let errs = parse(&missing).unwrap_err().to_string();
        assert!(
            errs.contains("providers.openai.headers.x-k: environment variable SMART_ROUTER_TEST_UNSET_HEADER is not set"),
            "{errs}"
        );
        std::fs::remove_file(&dir).unwrap();
    }

    /// Issue 12: a parse or type error names the key path and position, never the line's text
    /// (which can hold an inline key with a missing quote) nor a secret value it found.
    #[test]
    fn issue_12_parse_errors_never_print_the_line_or_its_value() {
        let broken_quote = "[providers.openai]\nkind = \"openai\"\napi_key = \"sk-live-abcdef123456\nbase_url = \"http://x\"\n";
        let errs = parse(broken_quote).unwrap_err().to_string();
        assert!(errs.contains("line 3, column"), "{errs}");
        assert!(!errs.contains("sk-live"), "{errs}");
        let wrong_type = "[providers.openai]\nkind = \"openai\"\nbase_url = \"http://x\"\nconnect_timeout_ms = \"sk-live-abcdef123456\"\n";
        let errs = parse(wrong_type).unwrap_err().to_string();
        assert!(
            errs.starts_with("providers.openai.connect_timeout_ms: line 4"),
            "{errs}"
        );
        assert!(!errs.contains("sk-live"), "{errs}");
        let caller = "[[callers]]\nname = \"a\"\ntoken = [\"tok-secret-value\"]\n";
        let errs = parse(caller).unwrap_err().to_string();
        assert!(errs.starts_with("callers[0].token: line 3"), "{errs}");
        assert!(!errs.contains("tok-secret-value"), "{errs}");
    }
}
