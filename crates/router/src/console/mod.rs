//! The web console at `/console`: server-rendered pages over the same data the operator API
//! serves (reports, request lookups, target health, config, license and limits status), for
//! admin, report-admin and metrics-admin tokens. Sign-in exchanges a token for a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS) that names a server-side session; the
//! session keeps the token's hash, never the token, and every page checks it against the config
//! in force (a token removed by a reload signs its sessions out). Assets are embedded; pages
//! carry a strict `Content-Security-Policy` (own script and style only, no inline code).

mod html;
mod overview;
mod requests;
mod system;
mod targets;
mod usage;

use crate::auth::{Caller, Role};
use crate::reload::Live;
use crate::state::Runtime;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::sync::Arc;

/// The console's pages: where each is, what it is called, and the role it needs (admin holds
/// every role). A role sees the pages its API allows: report-admin the report-based pages,
/// metrics-admin target health, everyone the system page (each section by its own role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Overview,
    Usage,
    Requests,
    Targets,
    System,
}

impl Page {
    const ALL: [Page; 5] = [
        Page::Overview,
        Page::Usage,
        Page::Requests,
        Page::Targets,
        Page::System,
    ];

    fn path(self) -> &'static str {
        match self {
            Page::Overview => "/console/",
            Page::Usage => "/console/usage",
            Page::Requests => "/console/requests",
            Page::Targets => "/console/targets",
            Page::System => "/console/system",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Usage => "Usage",
            Page::Requests => "Requests",
            Page::Targets => "Targets",
            Page::System => "System",
        }
    }

    /// Roles that may see the page (any one suffices).
    fn roles(self) -> &'static [Role] {
        match self {
            Page::Overview | Page::Usage | Page::Requests => &[Role::ReportAdmin],
            Page::Targets => &[Role::MetricsAdmin, Role::ReportAdmin],
            Page::System => CONSOLE_ROLES,
        }
    }

    fn allows(self, who: &Caller) -> bool {
        self.roles().iter().any(|r| who.has(*r))
    }
}

/// Roles that may sign in.
const CONSOLE_ROLES: &[Role] = &[Role::MetricsAdmin, Role::ReportAdmin];

/// The console's routes (on the router's own port).
pub fn routes() -> Router<Arc<Live>> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(overview::page))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/usage", get(usage::page))
        .route("/console/usage.csv", get(usage::csv))
        .route("/console/requests", get(requests::list))
        .route("/console/requests/lookup", get(requests::lookup))
        .route("/console/requests/{id}", get(requests::detail))
        .route("/console/targets", get(targets::page))
        .route("/console/system", get(system::page))
        .route("/console/assets/{name}", get(asset))
}

/// A signed-in console user on the runtime in force.
struct Viewer {
    state: Arc<Runtime>,
    who: Arc<Caller>,
}

/// What a console handler answers: its page, or the redirect/refusal made early.
type Answer = Result<Response, Response>;

/// The signed-in user allowed to see `page`: a redirect to sign-in without a live session, a
/// 403 page without the role, a 404 when the console is off.
#[allow(clippy::result_large_err)] // the refusal is the response itself
fn viewer(live: &Live, headers: &HeaderMap, page: Page) -> Result<Viewer, Response> {
    let state = live.current();
    if !state.config.server.console {
        return Err(console_off());
    }
    let who = session_id(headers)
        .and_then(|id| live.console.get(id))
        .and_then(|hash| state.auth.by_hash(&hash))
        .filter(|who| CONSOLE_ROLES.iter().any(|r| who.has(*r)))
        .ok_or_else(|| redirect("/console/login"))?;
    if !page.allows(&who) {
        let needs: Vec<&str> = page.roles().iter().map(|r| r.as_str()).collect();
        let body = format!(
            "<h1>Not for this role</h1><p class=\"error\">{} needs the {} role.</p>",
            page.title(),
            needs.join(" or ")
        );
        return Err(html::respond(
            StatusCode::FORBIDDEN,
            html::layout(&who, None, "Forbidden", &body),
        ));
    }
    Ok(Viewer { state, who })
}

/// The console's cookie.
const COOKIE: &str = "smart_router_console";

/// The session id in the request's `Cookie` header.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether the client reached us over TLS (ended by a proxy in front of the router).
fn over_tls(headers: &HeaderMap) -> bool {
    let proto = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    proto("x-forwarded-proto").is_some_and(|p| p.trim() == "https")
        || proto("forwarded").is_some_and(|f| f.contains("proto=https"))
}

fn redirect(to: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    html::secure(r)
}

fn console_off() -> Response {
    html::respond(
        StatusCode::NOT_FOUND,
        html::bare(
            "Console off",
            "<p>The console is off (<code>server.console = false</code>).</p>",
        ),
    )
}

/// The sign-in form (with an error when a sign-in failed).
fn login_form(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", html::escape(e))
    });
    let body = format!(
        "<form class=\"login\" method=\"post\" action=\"/console/login\">\
         <h1>smart-router console</h1>{error}\
         <label for=\"token\">Router token (admin, report-admin or metrics-admin)</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
         <button type=\"submit\">Sign in</button></form>"
    );
    html::respond(status, html::bare("Sign in", &body))
}

async fn login_page(State(live): State<Arc<Live>>) -> Response {
    if !live.current().config.server.console {
        return console_off();
    }
    login_form(StatusCode::OK, None)
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /console/login`: a token with a console role starts a session; anything else gets the
/// form again (401 for an unknown token, 403 for a token without a console role).
async fn login(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let state = live.current();
    if !state.config.server.console {
        return console_off();
    }
    let Ok(Form(form)) = form else {
        return login_form(StatusCode::BAD_REQUEST, Some("The form needs a token."));
    };
    let hash = crate::config::hash_token(form.token.trim());
    let Some(who) = state.auth.by_hash(&hash) else {
        tracing::info!("console sign-in refused: unknown token");
        return login_form(StatusCode::UNAUTHORIZED, Some("Unknown token."));
    };
    if !CONSOLE_ROLES.iter().any(|r| who.has(*r)) {
        tracing::info!(caller = %who.name, "console sign-in refused: no console role");
        return login_form(
            StatusCode::FORBIDDEN,
            Some("This token has no console role (admin, report-admin or metrics-admin)."),
        );
    }
    let ttl = state.config.server.console_session_ttl;
    let id = live.console.start(hash, ttl);
    tracing::info!(caller = %who.name, "console sign-in");
    let secure = if over_tls(&headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        ttl.as_secs()
    );
    let landing = if Page::Overview.allows(&who) {
        "/console/"
    } else {
        "/console/targets"
    };
    let mut r = redirect(landing);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /console/logout`: ends the session and clears the cookie.
async fn logout(State(live): State<Arc<Live>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        live.console.end(id);
    }
    let mut r = redirect("/console/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "smart_router_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

/// `GET /console/assets/{name}`: the embedded stylesheet and script.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "favicon.svg" => (include_str!("assets/favicon.svg"), "image/svg+xml"),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => {
            return html::respond(
                StatusCode::NOT_FOUND,
                html::bare("Not found", "<p>No such asset.</p>"),
            );
        }
    };
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; smart_router_console=abc; b=2"),
        );
        assert_eq!(session_id(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("smart_router_consolex=abc"),
        );
        assert_eq!(session_id(&h), None);
    }

    #[test]
    fn tls_is_read_from_the_proxy_headers() {
        let mut h = HeaderMap::new();
        assert!(!over_tls(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_tls(&h));
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=1.2.3.4;proto=https"),
        );
        assert!(over_tls(&h));
    }
}
