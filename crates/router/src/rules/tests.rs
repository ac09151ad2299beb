use super::*;

fn schema() -> Schema {
    Schema {
        headers: vec!["x-region".into(), "x-tier".into()],
        targets: vec![("gpu/qwen-vl".into(), 0), ("openai/gpt-4o".into(), 1)],
    }
}

fn state(id: usize) -> TargetState {
    TargetState {
        healthy: id == 0,
        cooling: id != 0,
        latency_ms: 12.5 * (id as f64 + 1.0),
    }
}

/// A subject: caller `alice` of team `vision`, a Codex request with images, 50,000 tokens,
/// `x-region: eu`, on Wednesday 2026-11-18 at 22:30 UTC.
fn with_subject<T>(f: impl FnOnce(&Subject<'_>) -> T) -> T {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-region", "eu".parse().unwrap());
    headers.insert("authorization", "Bearer secret".parse().unwrap());
    let s = Subject {
        caller: "alice",
        project: Some("search"),
        team: Some("vision"),
        environment: None,
        surface: "openai_responses",
        client: "codex",
        group: "coder",
        stream: true,
        has_tools: true,
        has_images: true,
        json_schema: false,
        estimated_input_tokens: 50_000,
        max_output_tokens: None,
        reasoning_effort: Some("high"),
        headers: &headers,
        now: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_041_000),
        target: &state,
    };
    f(&s)
}

fn eval(src: &str) -> Result<bool, EvalError> {
    let e = compile(src, &schema()).unwrap_or_else(|e| panic!("{src}: {e}"));
    with_subject(|s| e.eval(s, &schema()))
}

#[test]
fn every_variable_reads_the_request() {
    for (src, want) in [
        ("caller.name == 'alice'", true),
        ("caller.project == 'search'", true),
        ("caller.team == 'vision'", true),
        ("caller.environment == ''", true),
        ("request.surface == 'openai_responses'", true),
        ("request.client == 'codex'", true),
        ("request.group == 'coder'", true),
        ("request.stream", true),
        ("request.has_tools", true),
        ("request.has_images && caller.team == 'vision'", true),
        ("request.json_schema", false),
        ("request.estimated_input_tokens > 32000", true),
        ("request.max_output_tokens == 0", true),
        ("request.reasoning_effort == 'high'", true),
        ("headers['x-region'] == 'eu'", true),
        ("headers['x-tier'] == ''", true),
        ("time.hour == 22", true),
        ("time.weekday == 3", true),
        ("targets['gpu/qwen-vl'].healthy", true),
        ("targets['openai/gpt-4o'].cooling", true),
        ("targets['openai/gpt-4o'].latency_ms > 20.0", true),
        (
            "request.client.startsWith('cod') && size(caller.name) == 5",
            true,
        ),
        ("request.group in ['coder', 'chat']", true),
        ("'x-region' in headers", true),
        ("int(request.estimated_input_tokens / 1000) == 50", true),
    ] {
        assert_eq!(eval(src), Ok(want), "{src}");
    }
}

#[test]
fn type_and_name_errors_are_found_at_load() {
    for (src, needle) in [
        ("caller.teem == 'x'", "did you mean `team`"),
        ("user.name == 'x'", "unknown variable `user`"),
        (
            "request.estimated_input_tokens > 'big'",
            "orders numbers or strings",
        ),
        ("caller.team == 3", "compares a string with a int"),
        ("request.client", "not a condition"),
        ("headers['authorization'] == 'x'", "not in rules_headers"),
        (
            "targets['gpu/qwen-v'].healthy",
            "did you mean `gpu/qwen-vl`",
        ),
        ("caller == 'x'", "is an object"),
        ("request.has_images && 1", "needs conditions"),
        ("matches(caller.name, 'a.*')", "unknown function"),
        ("caller.name ==", "does not parse"),
        ("", "is empty"),
    ] {
        let err = compile(src, &schema()).expect_err(src);
        assert!(err.contains(needle), "{src}: {err}");
    }
    let long = format!("caller.name == '{}'", "a".repeat(MAX_SOURCE_BYTES));
    assert!(compile(&long, &schema()).unwrap_err().contains("at most"));
    let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
    assert!(compile(&deep, &schema()).is_err());
}

#[test]
fn runtime_failures_are_errors_not_panics() {
    // A key the checker cannot see (computed) and a division by zero fail, naming no value.
    assert_eq!(eval("headers[caller.name] == 'x'"), Err(EvalError::Failed));
    assert_eq!(
        eval("request.estimated_input_tokens / request.max_output_tokens > 1"),
        Err(EvalError::Failed)
    );
}

#[test]
fn shadowing_macro_variables_and_literal_reuse_evaluate_correctly() {
    for (src, want) in [
        // A macro variable named like a root is that variable, not the request's.
        ("['a', 'b'].exists(request, request == 'b')", true),
        (
            "['x'].all(caller, caller == 'x') && caller.name == 'alice'",
            true,
        ),
        // The same literal twice, and a literal used as a map key.
        ("caller.name == 'alice' && 'alice' == caller.name", true),
        ("{'alice': 1}[caller.name] == 1", true),
        (
            "has(request.client) && has(targets['gpu/qwen-vl'].healthy)",
            true,
        ),
        ("targets.exists(t, t == 'gpu/qwen-vl')", true),
        ("size(headers) == 2", true),
        ("headers['X-Region'] == 'eu'", true),
    ] {
        assert_eq!(eval(src), Ok(want), "{src}");
    }
    // Evaluating twice gives the same (the literal table is reused, not consumed).
    let e = compile("caller.team == 'vision'", &schema()).unwrap();
    with_subject(|s| {
        assert_eq!(e.eval(s, &schema()), Ok(true));
        assert_eq!(e.eval(s, &schema()), Ok(true));
    });
}

#[test]
fn facts_have_every_variable_and_no_other_header() {
    with_subject(|s| {
        let f = s.facts(&schema(), &[0]);
        assert_eq!(f["caller"]["team"], "vision");
        assert_eq!(f["request"]["estimated_input_tokens"], 50_000);
        assert_eq!(f["headers"], json!({"x-region": "eu", "x-tier": ""}));
        assert_eq!(f["time"], json!({"hour": 22, "weekday": 3}));
        assert_eq!(f["targets"]["gpu/qwen-vl"]["healthy"], true);
        assert!(!f.to_string().contains("secret"));
    });
}
