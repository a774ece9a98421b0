//! The audit trail of the HTTP API: every request that may change state
//! (any method but GET, HEAD and OPTIONS, on a route that exists) is
//! recorded in the store's append-only audit log with who sent it (the
//! token's id and role, never the token), when (the service clock), what
//! (an action named for the route, the path's subject, what the handler
//! noted, the error it answered), from where (the peer address, and any
//! `X-Forwarded-For` as sent) and how it ended (the HTTP status). Refused
//! requests are recorded too: a run of 403s is what an auditor looks for.
//!
//! [`record`] is one middleware over the whole API, so a new route is
//! audited without a line of its own; [`AuditSlot`] is how the
//! authenticated caller and a handler's note reach it. `GET /api/audit`
//! reads the log back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRef, MatchedPath, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::{Json, extract::rejection::QueryRejection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::{ApiError, ErrorBody};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::store::{AuditEntry, AuditFilter, AuditRecord, Store};

/// What the audit middleware learns while a request is served: put in the
/// request's extensions by [`record`], filled by the [`Authenticated`]
/// extractor (the caller) and by handlers (a note).
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Slot>>);

#[derive(Default)]
struct Slot {
    principal: Option<Principal>,
    notes: Vec<String>,
    origin: String,
    request_id: String,
    /// The handler wrote the entry itself, in the transaction of the
    /// change (phone provisioning): the middleware adds none.
    recorded: bool,
}

impl AuditSlot {
    fn with<R>(&self, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        self.0.lock().ok().map(|mut s| f(&mut s))
    }

    /// The caller, once authenticated.
    pub(crate) fn set_principal(&self, p: &Principal) {
        self.with(|s| s.principal = Some(p.clone()));
    }

    /// Adds to the entry's detail (never lead data or secrets).
    pub(crate) fn note(&self, text: String) {
        self.with(|s| s.notes.push(text));
    }

    /// Where the request came from, as the entry will say.
    pub(crate) fn origin(&self) -> String {
        self.with(|s| s.origin.clone()).unwrap_or_default()
    }

    /// The request's id (set by the request-id middleware).
    pub(crate) fn set_request_id(&self, id: &str) {
        self.with(|s| s.request_id = id.to_string());
    }

    /// The request's id.
    pub(crate) fn request_id(&self) -> String {
        self.with(|s| s.request_id.clone()).unwrap_or_default()
    }

    /// The handler recorded the act in the store itself.
    pub(crate) fn mark_recorded(&self) {
        self.with(|s| s.recorded = true);
    }
}

/// How an API caller is named in the audit log: `token 12 (agent a1)`,
/// `token 3 (supervisor)`.
pub fn actor_of(p: &Principal) -> String {
    match &p.agent_id {
        Some(agent) => format!("token {} ({} {agent})", p.token_id, p.role),
        None => format!("token {} ({})", p.token_id, p.role),
    }
}

/// What [`record`] needs: where to write and the service's clock.
#[derive(Clone)]
pub struct AuditState {
    /// The store holding the log.
    pub store: Store,
    /// The service clock (entries are stamped with it).
    pub clock: Clock,
}

/// The action a route's request (at `path`) is recorded as: a stable name
/// for the known routes, `METHOD /path/{template}` for any other.
pub fn action_name(method: &Method, template: &str, path: &str) -> String {
    if (method, template) == (&Method::POST, "/api/campaigns/{name}/{action}") {
        let action = path.rsplit('/').next().unwrap_or("");
        if crate::controls::Action::parse(action).is_some() {
            return format!("campaign.{action}");
        }
    }
    let name = match (method.as_str(), template) {
        ("PATCH", "/api/campaigns/{name}/controls") => "campaign.settings",
        ("POST", "/api/campaigns/{name}/leads") => "lead.import",
        ("PATCH", "/api/campaigns/{name}/leads/{id}") => "lead.update",
        ("POST", "/api/agents/{id}/login") => "agent.login",
        ("POST", "/api/agents/{id}/softphone") => "agent.softphone",
        ("POST", "/api/agents/{id}/ready") => "agent.ready",
        ("POST", "/api/agents/{id}/pause") => "agent.pause",
        ("POST", "/api/agents/{id}/logout") => "agent.logout",
        ("POST", "/api/agents/{id}/hangup") => "call.hangup",
        ("POST", "/api/calls/{id}/disposition") => "call.disposition",
        ("POST", "/api/agents/{id}/phones") => "phone.add",
        ("DELETE", "/api/agents/{id}/phones") => "phone.remove",
        ("POST", "/api/agents/{id}/dtmf") => "call.dtmf",
        // The names the store gives these when it records them itself
        // (a success): a refused request is found under the same name.
        ("POST", "/api/campaigns/{name}/webhooks") => "webhook.add",
        ("DELETE", "/api/campaigns/{name}/webhooks/{id}") => "webhook.remove",
        _ => return format!("{method} {template}"),
    };
    name.to_string()
}

/// What a request acted on, from its path: `agent a1` for
/// `/api/agents/a1/...`, `call 42`, `campaign uk`; the path otherwise.
pub fn subject_of(template: &str, path: &str) -> String {
    let mut kind = "";
    for (t, p) in template.split('/').zip(path.split('/')) {
        if t.starts_with('{') {
            let kind = kind.strip_suffix('s').unwrap_or(kind);
            return format!("{kind} {}", clip(p, 64));
        }
        kind = t;
    }
    clip(path, 200)
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Records each state-changing request in the audit log once it has been
/// served (before the response goes out, so a caller that sees the answer
/// finds the entry).
pub async fn record(
    State(st): State<AuditState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let Some(template) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(req).await;
    };
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| clip(v.trim(), 100));
    let origin = match (peer, forwarded) {
        (Some(p), Some(f)) => format!("{p} (x-forwarded-for: {f})"),
        (Some(p), None) => p,
        (None, Some(f)) => format!("unknown (x-forwarded-for: {f})"),
        (None, None) => "unknown".into(),
    };
    let slot = AuditSlot::default();
    slot.with(|s| s.origin = origin.clone());
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    let status = response.status();
    // An error's message says what was refused; error bodies are small
    // JSON (read at most 64 KiB, then sent on unchanged).
    let (response, error) = if status.is_client_error() || status.is_server_error() {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
        (
            Response::from_parts(parts, axum::body::Body::from(bytes)),
            message,
        )
    } else {
        (response, None)
    };
    let (principal, mut notes, recorded) = slot
        .with(|s| (s.principal.take(), std::mem::take(&mut s.notes), s.recorded))
        .unwrap_or_default();
    if recorded && status.is_success() {
        return response;
    }
    if let Some(e) = error {
        notes.push(format!("error: {}", clip(&e, 300)));
    }
    let entry = AuditEntry {
        at: st.clock.now().ms(),
        actor: principal
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), actor_of),
        action: action_name(&method, &template, &path),
        subject: subject_of(&template, &path),
        detail: notes.join("; "),
        origin,
        status: Some(i64::from(status.as_u16())),
        request_id: response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    if let Err(e) = st.store.audit(&entry).await {
        // The act is done and cannot be undone here: say so loudly.
        tracing::error!(error = %e, action = %entry.action, "writing the audit log failed");
        return ApiError::internal(format!("the audit log could not be written: {e}"))
            .into_response();
    }
    response
}

/// Filters for `GET /api/audit`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// At or after this time: ms since the epoch, or RFC 3339.
    since: Option<String>,
    /// Before this time: ms since the epoch, or RFC 3339.
    until: Option<String>,
    /// The actor contains this (any case), e.g. `token 12`, `agent a1`.
    actor: Option<String>,
    /// This action, or every action of a family with a trailing `.`
    /// (`agent.`).
    action: Option<String>,
    /// The subject contains this, e.g. `agent a1`, `campaign uk`.
    subject: Option<String>,
    /// `true`: only refused or failed acts (status 400 and above);
    /// `false`: only the others.
    failed: Option<bool>,
    /// Entries after this id (page on with the last id you got).
    after_id: Option<i64>,
    /// At most this many, 1-1000 (default 100).
    limit: Option<i64>,
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditPage)]
struct AuditPage {
    /// Oldest first.
    entries: Vec<AuditRecord>,
    /// Pass as `after_id` for the next page; absent on the last.
    next_after_id: Option<i64>,
}

/// A time filter: ms since the epoch, or an RFC 3339 time.
fn time_param(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name}: give ms since the epoch or an RFC 3339 time, not {}",
                clip(raw, 40)
            ))
            .with_field(name)
        })
}

impl AuditQuery {
    fn filter(self) -> Result<AuditFilter, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_request("limit: 1-1000").with_field("limit"));
        }
        let text = |name: &str, v: Option<String>| -> Result<Option<String>, ApiError> {
            match v {
                Some(v) if v.len() > 200 => Err(ApiError::bad_request(format!(
                    "{name}: at most 200 characters"
                ))
                .with_field(name)),
                v => Ok(v.filter(|v| !v.is_empty())),
            }
        };
        let since = time_param("since", self.since.as_deref())?;
        let until = time_param("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(
                ApiError::bad_request("until: must not be before since").with_field("until")
            );
        }
        Ok(AuditFilter {
            since,
            until,
            actor: text("actor", self.actor)?,
            action: text("action", self.action)?,
            subject: text("subject", self.subject)?,
            failed: self.failed,
            after_id: self.after_id,
            limit,
        })
    }
}

#[utoipa::path(get, path = "/api/audit", tag = "service",
    summary = "The audit log",
    description = "Every state-changing act (API requests that change state, refused ones included, and command-line acts such as token and phone provisioning and deliberate do-not-call removals): who, when, what, on what, from where and with what status. Append-only. Supervisor or admin.",
    params(AuditQuery),
    responses((status = 200, description = "A page of entries, oldest first.", body = AuditPage),
        (status = 400, description = "A bad filter.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn audit_log(
    auth: Authenticated,
    State(store): State<Store>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    auth.require_supervisor()?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = q.filter()?;
    let entries = store
        .audit_query(&filter)
        .await
        .map_err(ApiError::internal)?;
    let next_after_id = if entries.len() as i64 == filter.limit {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_after_id,
    }))
}

/// The audit route, registered with its description.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(audit_log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_come_from_the_path() {
        assert_eq!(
            subject_of("/api/agents/{id}/login", "/api/agents/a1/login"),
            "agent a1"
        );
        assert_eq!(
            subject_of("/api/calls/{id}/disposition", "/api/calls/42/disposition"),
            "call 42"
        );
        assert_eq!(subject_of("/api/x", "/api/x"), "/api/x");
    }

    #[test]
    fn known_routes_have_stable_action_names() {
        assert_eq!(
            action_name(
                &Method::POST,
                "/api/agents/{id}/login",
                "/api/agents/a/login"
            ),
            "agent.login"
        );
        assert_eq!(
            action_name(
                &Method::DELETE,
                "/api/agents/{id}/phones",
                "/api/agents/a/phones"
            ),
            "phone.remove"
        );
        // Every state-changing route of the API has a name of its own (a
        // refused request is filed under the name of the act it asked for).
        for (m, t, name) in [
            (Method::POST, "/api/agents/{id}/dtmf", "call.dtmf"),
            (
                Method::POST,
                "/api/campaigns/{name}/webhooks",
                "webhook.add",
            ),
            (
                Method::DELETE,
                "/api/campaigns/{name}/webhooks/{id}",
                "webhook.remove",
            ),
        ] {
            assert_eq!(action_name(&m, t, t), name);
        }
        assert_eq!(
            action_name(&Method::PUT, "/api/things/{id}", "/api/things/1"),
            "PUT /api/things/{id}"
        );
        let t = "/api/campaigns/{name}/{action}";
        assert_eq!(
            action_name(&Method::POST, t, "/api/campaigns/uk/pause"),
            "campaign.pause"
        );
        assert_eq!(
            action_name(&Method::POST, t, "/api/campaigns/uk/explode"),
            "POST /api/campaigns/{name}/{action}"
        );
    }

    #[test]
    fn time_filters_take_ms_or_rfc3339() {
        assert_eq!(time_param("since", Some("1000")), Ok(Some(1000)));
        assert_eq!(
            time_param("since", Some("1970-01-01T00:00:01Z")),
            Ok(Some(1000))
        );
        assert!(time_param("since", Some("yesterday")).is_err());
    }
}
