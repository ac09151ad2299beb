//! The spans of a finished request, built from its outcome and handed to OpenTelemetry's batch
//! processor (a bounded queue — full means dropped and counted by the SDK — and one export
//! thread), which sends them to the collector with the OTLP/HTTP exporter (protobuf).
//!
//! Spans (GenAI semantic conventions plus ours, never content, tokens or keys):
//! `{operation} {group}` (server, the request) with children `govern {stage}` (each governance
//! stage that ran), `route {group}` (planning) and `{operation} {model}` (client, each upstream
//! attempt, whose id went upstream in `traceparent`).

use crate::config::telemetry::TelemetryConfig;
use crate::outcome::{RequestOutcome, Trace};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {reason}")]
    Exporter {
        /// What failed.
        reason: String,
    },
}

/// Exports the spans of sampled requests.
pub struct Tracer {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
    /// Share of new traces sampled.
    pub sampling_ratio: f64,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("sampling_ratio", &self.sampling_ratio)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// The tracer `[telemetry]` asks for, or `None` when it names no endpoint.
    pub fn from_config(c: &TelemetryConfig) -> Result<Option<Tracer>, TelemetryError> {
        let Some(url) = &c.traces_url else {
            return Ok(None);
        };
        let headers = c
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(c.export_timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| TelemetryError::Exporter {
                reason: e.to_string(),
            })?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(
            &Resource::builder_empty()
                .with_attribute(KeyValue::new("service.name", c.service_name.clone()))
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(Some(Tracer {
            processor,
            scope: InstrumentationScope::builder("smart-router")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            sampling_ratio: c.sampling_ratio,
        }))
    }

    /// Sends whatever is queued and waits for it (at shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.processor.force_flush() {
            tracing::warn!(error = %e, "trace export did not finish");
        }
    }

    /// Queues the spans of a finished, sampled request; `gen_ai_provider` names a target's
    /// provider (by target id) as the GenAI conventions do.
    pub(crate) fn export(
        &self,
        o: &RequestOutcome,
        trace: &Trace,
        gen_ai_provider: &dyn Fn(usize) -> &'static str,
    ) {
        if !trace.sampled {
            return;
        }
        let start = o.started_at;
        let at = |d: Duration| start + d;
        let trace_id = TraceId::from(trace.trace_id);
        let state = trace
            .tracestate
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let context = |span: u64| {
            SpanContext::new(
                trace_id,
                SpanId::from(span),
                TraceFlags::SAMPLED,
                false,
                state.clone(),
            )
        };
        let operation = if o.surface == "count_tokens" {
            "count_tokens"
        } else {
            "chat"
        };
        let group = o.group.as_deref().unwrap_or("-");
        let served = o.served();
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", group.to_string()),
            KeyValue::new("http.response.status_code", i64::from(o.http_status)),
            KeyValue::new("smart_router.request_id", o.request_id.clone()),
            KeyValue::new("smart_router.surface", o.surface),
            KeyValue::new("smart_router.client", o.client),
            KeyValue::new("smart_router.attempts", o.attempts.len() as i64),
            KeyValue::new("smart_router.fallback", o.fallback_used()),
            KeyValue::new("smart_router.stream", o.stream),
        ];
        if let Some(a) = served {
            attrs.push(KeyValue::new("gen_ai.response.model", a.model.to_string()));
            attrs.push(KeyValue::new(
                "gen_ai.provider.name",
                gen_ai_provider(a.target),
            ));
            attrs.push(KeyValue::new(
                "smart_router.provider",
                a.provider.to_string(),
            ));
        }
        if let Some(u) = o.usage {
            attrs.push(KeyValue::new(
                "gen_ai.usage.input_tokens",
                u.input_tokens as i64,
            ));
            attrs.push(KeyValue::new(
                "gen_ai.usage.output_tokens",
                u.output_tokens as i64,
            ));
        }
        if let Some(p) = &o.project {
            attrs.push(KeyValue::new("smart_router.caller.project", p.clone()));
        }
        if let Some(r) = &o.rule {
            attrs.push(KeyValue::new("smart_router.rule", r.to_string()));
        }
        if let Some(e) = o.error_kind {
            attrs.push(KeyValue::new("error.type", e));
        }
        let failed = o.http_status >= 500 || (o.http_status < 400 && o.error_kind.is_some());
        let request = Span {
            id: trace.span_id,
            parent: trace.parent_span_id,
            remote_parent: true,
            kind: SpanKind::Server,
            name: format!("{operation} {group}").into(),
            start,
            end: at(o.latency),
            attrs,
            error: failed.then(|| o.error_kind.unwrap_or("error")),
        };
        self.emit(&context, request);
        for (name, from, to, denied) in &trace.stages {
            self.emit(
                &context,
                Span {
                    id: super::new_span_id(),
                    parent: Some(trace.span_id),
                    remote_parent: false,
                    kind: SpanKind::Internal,
                    name: format!("govern {name}").into(),
                    start: at(*from),
                    end: at(*to),
                    attrs: vec![
                        KeyValue::new("smart_router.stage", name.to_string()),
                        KeyValue::new(
                            "smart_router.decision",
                            if *denied { "deny" } else { "allow" },
                        ),
                    ],
                    error: None,
                },
            );
        }
        if let Some((from, to, planned)) = trace.plan {
            self.emit(
                &context,
                Span {
                    id: super::new_span_id(),
                    parent: Some(trace.span_id),
                    remote_parent: false,
                    kind: SpanKind::Internal,
                    name: format!("route {group}").into(),
                    start: at(from),
                    end: at(to),
                    attrs: vec![KeyValue::new(
                        "smart_router.targets_planned",
                        planned as i64,
                    )],
                    error: None,
                },
            );
        }
        for (i, a) in o.attempts.iter().enumerate() {
            let mut attrs = vec![
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("gen_ai.request.model", a.model.to_string()),
                KeyValue::new("gen_ai.provider.name", gen_ai_provider(a.target)),
                KeyValue::new("smart_router.provider", a.provider.to_string()),
                KeyValue::new("smart_router.attempt.number", i as i64 + 1),
                KeyValue::new("smart_router.attempt.outcome", a.outcome),
            ];
            if let Some(s) = a.status {
                attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
            }
            if o.served_by == Some(i) {
                attrs.push(KeyValue::new("gen_ai.response.model", a.model.to_string()));
            }
            self.emit(
                &context,
                Span {
                    id: a.span_id,
                    parent: Some(trace.span_id),
                    remote_parent: false,
                    kind: SpanKind::Client,
                    name: format!("{operation} {}", a.model).into(),
                    start: at(a.offset),
                    end: at(a.offset + a.latency),
                    attrs,
                    error: (a.outcome != "ok").then_some(a.outcome),
                },
            );
        }
    }

    fn emit(&self, context: &dyn Fn(u64) -> SpanContext, s: Span) {
        if s.id == 0 {
            return;
        }
        self.processor.on_end(SpanData {
            span_context: context(s.id),
            parent_span_id: s.parent.map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: s.remote_parent && s.parent.is_some(),
            span_kind: s.kind,
            name: s.name,
            start_time: s.start,
            end_time: s.end,
            attributes: s.attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match s.error {
                Some(e) => Status::error(e),
                None => Status::Unset,
            },
            instrumentation_scope: self.scope.clone(),
        });
    }
}

/// One span, before it becomes the SDK's `SpanData`.
struct Span {
    id: u64,
    parent: Option<u64>,
    remote_parent: bool,
    kind: SpanKind,
    name: Cow<'static, str>,
    start: SystemTime,
    end: SystemTime,
    attrs: Vec<KeyValue>,
    error: Option<&'static str>,
}
