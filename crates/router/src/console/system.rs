//! System: the build, the usage store and writer, the limits backend (everyone signed in);
//! license and live instances, quota and budget use (report-admin); the config in force and
//! its last reload (admin) — the same documents `/admin/license`, `/admin/limits` and
//! `/admin/config` serve, each shown to the roles those endpoints allow.

use super::html;
use super::{Answer, Page, viewer};
use crate::auth::Role;
use crate::reload::Live;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `GET /console/system`.
pub(super) async fn page(State(live): State<Arc<Live>>, headers: HeaderMap) -> Answer {
    let v = viewer(&live, &headers, Page::System)?;
    let state = &v.state;
    let mut body = String::from("<h1>System</h1>");
    let section = |body: &mut String, id: &str, title: &str, doc: &serde_json::Value| {
        let _ = write!(
            body,
            "<section class=\"doc\" id=\"{id}\"><h2>{title}</h2>{}</section>",
            html::json(doc)
        );
    };
    let b = &state.build;
    section(
        &mut body,
        "build",
        "Router",
        &json!({
            "name": state.config.server.name,
            "version": b.version,
            "commit": b.commit,
            "build_date": b.build_date,
            "draining": state.draining(),
            "console_sessions": live.console.len(),
        }),
    );
    if v.who.has(Role::Admin) {
        section(&mut body, "config", "Config", &live.report());
    }
    let store = match (&state.store, state.recorder.writer()) {
        (None, _) => json!({"store": "none (usage is not recorded)"}),
        (Some(s), w) => {
            let mut doc = json!({"kind": s.kind(), "shared": s.shared()});
            if let Some(w) = w {
                let st = &w.stats;
                doc["writer"] = json!({
                    "store_up": st.store_up.load(Ordering::Relaxed),
                    "queue_depth": w.queue_depth(),
                    "written": st.written.load(Ordering::Relaxed),
                    "dropped": st.dropped.load(Ordering::Relaxed),
                    "spool_bytes": st.spool_bytes.load(Ordering::Relaxed),
                    "spool_full": st.spool_full.load(Ordering::Relaxed),
                    "spool_rejected": st.spool_rejected.load(Ordering::Relaxed),
                });
            }
            doc
        }
    };
    section(&mut body, "store", "Usage store", &store);
    match &state.limits {
        None => section(
            &mut body,
            "limits",
            "Quotas and budgets",
            &json!({"backend": "none (no quotas or budgets configured)"}),
        ),
        Some(l) if v.who.has(Role::ReportAdmin) => {
            let mut doc = l.report(state.auth.callers()).await;
            doc["backend_up"] = json!(l.backend_up());
            section(&mut body, "limits", "Quotas and budgets", &doc);
        }
        Some(l) => section(
            &mut body,
            "limits",
            "Quotas and budgets",
            &json!({"backend_up": l.backend_up()}),
        ),
    }
    if v.who.has(Role::ReportAdmin) {
        let instances = state.license.live_instances().await;
        section(
            &mut body,
            "license",
            "License",
            &state.license.report(instances),
        );
    }
    Ok(html::respond(
        StatusCode::OK,
        html::layout(&v.who, Some(Page::System), "System", &body),
    ))
}
