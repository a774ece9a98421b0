//! The agents API under `/api` (axum): log in, ready, pause, log out, the
//! current call, dispositions, and the event stream. Every route takes the
//! [`Authenticated`] extractor: 401 without a valid token, 403 when an
//! agent token reaches for another agent. The service's domain errors
//! ([`AgentError`]) become HTTP statuses here and nowhere else.

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::{Json, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::Authenticated;
use crate::api::{ApiError, ErrorBody};
use crate::service::driver::{Input, Phone, Reply};
use crate::service::{AgentError, SessionView, Shared};
use crate::store::{NewDisposition, Store};

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> ApiError {
        use axum::http::StatusCode;
        let status = match &e {
            AgentError::NotLoggedIn
            | AgentError::AlreadyLoggedIn
            | AgentError::Busy
            | AgentError::NoCall
            | AgentError::NoDtmf => StatusCode::CONFLICT,
            AgentError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            AgentError::BadPhone(_) => StatusCode::BAD_REQUEST,
            AgentError::PhoneDidNotAnswer(_) => StatusCode::BAD_GATEWAY,
            AgentError::Store => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

/// Largest request body accepted, bytes.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Logins allowed per agent per minute.
pub const LOGINS_PER_MINUTE: u32 = 10;

/// The router's state.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
    logins: Arc<DefaultKeyedRateLimiter<String>>,
    /// Serialises dispositions of pending calls on this node (check, then
    /// insert); another node racing is caught by the same check.
    pending_lock: Arc<tokio::sync::Mutex<()>>,
}

impl FromRef<AppState> for Arc<Shared> {
    fn from_ref(s: &AppState) -> Arc<Shared> {
        s.shared.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.shared.store.clone()
    }
}

/// The agents' routes, each registered with its OpenAPI description (the
/// document at `/api/openapi.json` is made from these).
pub(crate) fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(campaigns))
        .routes(routes!(agents))
        .routes(routes!(login))
        .routes(routes!(phones, phone_add, phone_remove))
        .routes(routes!(callbacks))
        .routes(routes!(ready))
        .routes(routes!(pause))
        .routes(routes!(logout))
        .routes(routes!(hangup))
        .routes(routes!(send_dtmf))
        .routes(routes!(current_call))
        .routes(routes!(disposition))
        .routes(routes!(pending))
        .routes(routes!(events))
        .merge(super::audit::documented())
        .merge(super::controls::documented())
        .merge(super::leads::documented())
        .merge(super::softphone::documented())
        .merge(super::desktop::documented())
        .merge(super::wallboard::documented())
        .merge(super::webhooks::documented())
}

/// The agents' routes over the service's shared state.
pub fn routes(shared: Arc<Shared>) -> Router {
    let quota = Quota::per_minute(NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
    let state = AppState {
        shared,
        logins: Arc::new(RateLimiter::keyed(quota)),
        pending_lock: Arc::new(tokio::sync::Mutex::new(())),
    };
    let (router, _) = documented().split_for_parts();
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(super::no_store))
        .layer(axum::middleware::from_fn(super::request_id))
        .with_state(state)
}

use super::json_body;

/// A disposition code of a campaign.
#[derive(Serialize, ToSchema)]
#[schema(as = Disposition)]
struct DispositionOut {
    code: String,
    label: String,
    conversion: bool,
    contact: bool,
    /// The number goes on the do-not-call list.
    dnc: bool,
    /// The agent schedules a call back (callback_at).
    callback: bool,
}

/// A running campaign.
#[derive(Serialize, ToSchema)]
#[schema(as = CampaignSummary)]
struct CampaignOut {
    name: String,
    description: String,
    #[schema(value_type = String)]
    profile: &'static str,
    dispositions: Vec<DispositionOut>,
    /// The reasons agents pause for.
    pause_codes: Vec<crate::campaign::PauseCode>,
    /// The currency of amounts (ISO 4217), if the campaign states costs.
    currency: Option<String>,
    /// How long after its time a callback an agent kept waits for that
    /// agent before anyone may take it, seconds.
    callback_grace_s: u64,
    live: Option<crate::live::CampaignLive>,
}

#[utoipa::path(get, path = "/api/campaigns", tag = "service",
    summary = "Running campaigns",
    description = "Every running campaign with its dispositions and live figures. Any token.",
    responses((status = 200, description = "The campaigns.", body = Vec<CampaignOut>), (status = 401, description = "No valid token.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn campaigns(
    _auth: Authenticated,
    State(s): State<AppState>,
) -> Result<Json<Vec<CampaignOut>>, ApiError> {
    let board = s.shared.board.snapshot();
    Ok(Json(
        s.shared
            .campaigns
            .values()
            .map(|h| CampaignOut {
                name: h.campaign.name.clone(),
                description: h.campaign.description.clone(),
                profile: h.campaign.profile.as_str(),
                dispositions: h
                    .campaign
                    .dispositions
                    .iter()
                    .map(|d| DispositionOut {
                        code: d.code.clone(),
                        label: d.label.clone(),
                        conversion: d.conversion,
                        contact: d.contact,
                        dnc: d.dnc,
                        callback: d.callback,
                    })
                    .collect(),
                pause_codes: h.campaign.desktop.pause_codes.clone(),
                currency: h.campaign.costs.as_ref().map(|c| c.currency.clone()),
                callback_grace_s: h.campaign.callback_grace.as_secs(),
                live: board.get(&h.campaign.name).cloned(),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/agents", tag = "service",
    summary = "Agents",
    description = "Logged-in agents: state, since when, pause reason, current call. Supervisor or admin.",
    responses((status = 200, description = "The sessions.", body = Vec<SessionView>), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn agents(
    auth: Authenticated,
    State(s): State<AppState>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    auth.require_supervisor()?;
    let mut v: Vec<SessionView> = s
        .shared
        .sessions
        .lock()
        .map_err(ApiError::internal)?
        .values()
        .cloned()
        .collect();
    v.sort_by(|a, b| a.agent.cmp(&b.agent));
    Ok(Json(v))
}

/// An agent's state after a request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AgentResult)]
struct Ok200 {
    ok: bool,
    agent: String,
    #[schema(value_type = String)]
    state: &'static str,
}

fn valid_agent_id(id: &str) -> Result<(), ApiError> {
    if crate::auth::valid_agent_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(crate::auth::AGENT_ID_RULE))
    }
}

async fn ask(
    s: &AppState,
    campaign: &str,
    make: impl FnOnce(Reply) -> Input,
    wait: Duration,
) -> Result<(), ApiError> {
    let h = s
        .shared
        .campaigns
        .get(campaign)
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let (tx, rx) = oneshot::channel();
    h.tx.send(make(tx))
        .map_err(|_| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "stopping"))?;
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(_)) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the campaign is stopping",
        )),
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "timed out",
        )),
    }
}

fn session_of(s: &AppState, agent: &str) -> Result<SessionView, ApiError> {
    s.shared
        .sessions
        .lock()
        .map_err(ApiError::internal)?
        .get(agent)
        .cloned()
        .ok_or_else(|| ApiError::conflict("not logged in"))
}

fn state_of(s: &AppState, agent: &str) -> &'static str {
    s.shared
        .sessions
        .lock()
        .ok()
        .and_then(|m| m.get(agent).map(|v| v.state))
        .unwrap_or("logged_out")
}

/// Log in to a campaign at a phone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LoginRequest)]
struct LoginIn {
    campaign: String,
    /// One of the agent's provisioned phones; may be left out when the
    /// agent has exactly one.
    sip_uri: Option<String>,
    /// Work on the browser softphone answered by
    /// `POST /api/agents/{id}/softphone` instead of a SIP phone.
    #[serde(default)]
    softphone: bool,
}

/// Which callbacks to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct CallbacksQuery {
    /// The campaign.
    campaign: String,
    /// Only this agent's (a supervisor's filter; an agent sees only their own).
    agent: Option<String>,
}

#[utoipa::path(get, path = "/api/callbacks", tag = "service",
    summary = "Callbacks",
    description = "The campaign's callbacks still to dial, soonest first, with who booked each and, for one the agent kept, until when only that agent takes it. An agent token lists the agent's own; a supervisor or admin token all, or one agent's with ?agent=.",
    params(CallbacksQuery),
    responses((status = 200, description = "The callbacks.", body = Vec<crate::store::Callback>),
        (status = 400, description = "A bad query.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such campaign.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn callbacks(
    auth: Authenticated,
    State(s): State<AppState>,
    query: Result<Query<CallbacksQuery>, QueryRejection>,
) -> Result<Json<Vec<crate::store::Callback>>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::bad_request("use ?campaign=NAME[&agent=ID]").with_field("campaign")
    })?;
    let h = s
        .shared
        .campaigns
        .get(&q.campaign)
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let agent = if auth.0.can_supervise() {
        q.agent
    } else {
        // An agent sees its own callbacks; naming another agent is a 403,
        // as on every route (not a silent answer about someone else).
        if let Some(other) = &q.agent {
            auth.require_agent(other)?;
        }
        Some(
            auth.0
                .agent_id
                .clone()
                .ok_or_else(|| ApiError::forbidden("an agent token without an agent"))?,
        )
    };
    Ok(Json(
        s.shared
            .store
            .callbacks(
                h.id,
                agent.as_deref(),
                crate::clock::duration_ms(h.campaign.callback_grace),
            )
            .await
            .map_err(ApiError::internal)?,
    ))
}

/// A phone to bind to an agent, or to unbind.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PhoneRequest)]
struct PhoneIn {
    sip_uri: String,
}

/// A SIP URI the dialler can call (the same parse a login uses: an IP
/// address, or a host name looked up at login), or 400.
fn phone_uri(raw: &str) -> Result<String, ApiError> {
    let uri = raw.trim();
    crate::sip::resolve::SipUri::parse(uri)
        .map_err(|e| ApiError::bad_request(format!("sip_uri: {e}")).with_field("sip_uri"))?;
    Ok(uri.to_string())
}

/// The phone a login may use: one provisioned for the agent. Nothing a
/// token holder sends makes the dialler call anything else.
async fn provisioned_phone(
    s: &AppState,
    agent: &str,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let phones = s
        .shared
        .store
        .agent_phones(Some(agent))
        .await
        .map_err(ApiError::internal)?;
    match asked {
        Some(raw) => {
            let uri = phone_uri(raw)?;
            if phones.iter().any(|p| p.sip_uri == uri) {
                Ok(uri)
            } else {
                Err(ApiError::forbidden(format!(
                    "this phone is not provisioned for agent {agent}: a supervisor binds phones with POST /api/agents/{agent}/phones or dialler phone add"
                )))
            }
        }
        None => match phones.as_slice() {
            [one] => Ok(one.sip_uri.clone()),
            [] => Err(ApiError::forbidden(format!(
                "no phone is provisioned for agent {agent}: a supervisor binds one with POST /api/agents/{agent}/phones or dialler phone add"
            ))),
            _ => Err(
                ApiError::bad_request("sip_uri: the agent has several phones; name one")
                    .with_field("sip_uri"),
            ),
        },
    }
}

#[utoipa::path(get, path = "/api/agents/{id}/phones", tag = "service",
    summary = "An agent's phones",
    description = "The SIP URIs the agent may log in at. The agent's own token, or a supervisor or admin token.",
    params(("id" = String, Path, description = "Agent id.")),
    responses((status = 200, description = "The provisioned phones.", body = Vec<crate::store::AgentPhone>),
        (status = 400, description = "A bad agent id.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn phones(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::store::AgentPhone>>, ApiError> {
    valid_agent_id(&id)?;
    auth.require_agent(&id)?;
    Ok(Json(
        s.shared
            .store
            .agent_phones(Some(&id))
            .await
            .map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(post, path = "/api/agents/{id}/phones", tag = "service",
    summary = "Provision a phone",
    description = "Binds a SIP URI to the agent: logins may use only bound phones. Supervisor or admin; recorded in the audit log.",
    params(("id" = String, Path, description = "Agent id.")), request_body = PhoneIn,
    responses((status = 200, description = "The agent's phones afterwards.", body = Vec<crate::store::AgentPhone>),
        (status = 400, description = "A bad body, agent id or URI.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn phone_add(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PhoneIn>, JsonRejection>,
) -> Result<Json<Vec<crate::store::AgentPhone>>, ApiError> {
    phone_change(&auth, &s, &id, body, true).await
}

#[utoipa::path(delete, path = "/api/agents/{id}/phones", tag = "service",
    summary = "Unprovision a phone",
    description = "Unbinds a SIP URI from the agent (a session already up at it stays until logout). Supervisor or admin; recorded in the audit log.",
    params(("id" = String, Path, description = "Agent id.")), request_body = PhoneIn,
    responses((status = 200, description = "The agent's phones afterwards.", body = Vec<crate::store::AgentPhone>),
        (status = 400, description = "A bad body or agent id.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "The phone was not bound to the agent.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn phone_remove(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PhoneIn>, JsonRejection>,
) -> Result<Json<Vec<crate::store::AgentPhone>>, ApiError> {
    phone_change(&auth, &s, &id, body, false).await
}

/// Binds (`add`) or unbinds a phone for agent `id`, as a supervisor;
/// answers with the agent's phones afterwards.
async fn phone_change(
    auth: &Authenticated,
    s: &AppState,
    id: &str,
    body: Result<Json<PhoneIn>, JsonRejection>,
    add: bool,
) -> Result<Json<Vec<crate::store::AgentPhone>>, ApiError> {
    valid_agent_id(id)?;
    auth.require_supervisor()?;
    let raw = json_body(body)?.sip_uri;
    let store = &s.shared.store;
    // The change and its audit entry in one transaction.
    let by = auth.audit_entry(s.shared.clock.now().ms());
    let changed = if add {
        let uri = phone_uri(&raw)?;
        let added = store
            .phone_add(id, &uri, by)
            .await
            .map_err(ApiError::internal)?;
        if !added {
            auth.note("already bound");
        }
        added
    } else {
        let removed = store
            .phone_remove(id, raw.trim(), by)
            .await
            .map_err(ApiError::internal)?;
        if !removed {
            return Err(ApiError::not_found("that phone is not bound to the agent"));
        }
        removed
    };
    if changed {
        auth.recorded();
    }
    Ok(Json(
        store
            .agent_phones(Some(id))
            .await
            .map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(post, path = "/api/agents/{id}/login", tag = "service",
    summary = "Log an agent in",
    description = "The agent's own token, or a supervisor or admin token. The phone must be one provisioned for the agent (see /api/agents/{id}/phones; it may be left out when there is one), or `softphone: true` for the browser leg answered by POST /api/agents/{id}/softphone. The dialler calls the phone (or waits for the browser to connect) and keeps the leg up for the session; the agent starts paused. At most 10 logins per agent per minute.",
    params(("id" = String, Path, description = "Agent id.")), request_body = LoginIn,
    responses((status = 200, description = "The agent's state after the request.", body = Ok200),
        (status = 400, description = "A bad body or phone URI.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this, or the phone is not provisioned for the agent.", body = ErrorBody),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "Already logged in.", body = ErrorBody),
        (status = 429, description = "Too many logins for this agent.", body = ErrorBody),
        (status = 502, description = "The phone did not answer.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn login(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<LoginIn>, JsonRejection>,
) -> Result<Json<Ok200>, ApiError> {
    valid_agent_id(&id)?;
    auth.require_agent(&id)?;
    if s.logins.check_key(&id).is_err() {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many logins for this agent; wait a minute",
        ));
    }
    let body = json_body(body)?;
    auth.note(format!("campaign {}", clip_note(&body.campaign)));
    super::controls::check_login(&s.shared, &body.campaign)?;
    let phone = if body.softphone {
        if body.sip_uri.is_some() {
            return Err(
                ApiError::bad_request("sip_uri: a SIP phone or the softphone, not both")
                    .with_field("sip_uri"),
            );
        }
        if s.shared
            .sessions
            .lock()
            .map_err(ApiError::internal)?
            .contains_key(&id)
        {
            return Err(ApiError::conflict("already logged in"));
        }
        let phone = s.shared.take_softphone(&id).ok_or_else(|| {
            ApiError::conflict(format!(
                "no softphone for agent {id}: POST /api/agents/{id}/softphone with the browser's offer first"
            ))
        })?;
        auth.note("phone browser softphone");
        Phone::Browser(Box::new(phone))
    } else {
        let sip_uri = provisioned_phone(&s, &id, body.sip_uri.as_deref()).await?;
        auth.note(format!("phone {sip_uri}"));
        Phone::Sip(sip_uri)
    };
    {
        let mut sessions = s.shared.sessions.lock().map_err(ApiError::internal)?;
        if sessions.contains_key(&id) {
            return Err(ApiError::conflict("already logged in"));
        }
        sessions.insert(
            id.clone(),
            crate::service::agents::logging_in(&id, &body.campaign, s.shared.clock.now()),
        );
    }
    // One session per agent across the cluster: the store's lease.
    let lease = s
        .shared
        .store
        .session_acquire(
            &id,
            &s.shared.node,
            &body.campaign,
            s.shared.clock.now().ms(),
            i64::try_from(crate::service::SESSION_LAPSE.as_millis()).unwrap_or(i64::MAX),
        )
        .await;
    let held_by = match lease {
        Ok(None) => None,
        Ok(Some(node)) => Some(Ok(node)),
        Err(e) => Some(Err(e)),
    };
    if let Some(held) = held_by {
        if let Ok(mut m) = s.shared.sessions.lock() {
            m.remove(&id);
        }
        return Err(match held {
            Ok(node) => ApiError::conflict(format!("agent {id} is logged in on node {node}")),
            Err(e) => ApiError::internal(e),
        });
    }
    let r = ask(
        &s,
        &body.campaign,
        |reply| Input::Login {
            agent: id.clone(),
            phone,
            reply,
        },
        Duration::from_secs(40),
    )
    .await;
    match r {
        Ok(()) => {
            s.shared.with_session(&id, |v| {
                v.state = "paused";
                v.reason = Some("logged_in".into());
                v.since = s.shared.clock.now().ms();
            });
            Ok(Json(Ok200 {
                ok: true,
                agent: id,
                state: "paused",
            }))
        }
        Err(e) => {
            if let Ok(mut m) = s.shared.sessions.lock()
                && m.get(&id).is_some_and(|v| v.state == "logging_in")
            {
                m.remove(&id);
            }
            if let Err(e) = s.shared.store.session_release(&id, &s.shared.node).await {
                tracing::warn!(error = %e, "giving back an agent's session lease failed");
            }
            Err(e)
        }
    }
}

/// Asks the campaign that holds agent `id`'s session to act on it, and
/// answers with the agent's state afterwards.
async fn agent_action(
    s: &AppState,
    id: String,
    make: impl FnOnce(String, Reply) -> Input,
) -> Result<Json<Ok200>, ApiError> {
    let session = session_of(s, &id)?;
    let agent = id.clone();
    ask(
        s,
        &session.campaign,
        |reply| make(agent, reply),
        Duration::from_secs(10),
    )
    .await?;
    Ok(Json(Ok200 {
        ok: true,
        state: state_of(s, &id),
        agent: id,
    }))
}

#[utoipa::path(post, path = "/api/agents/{id}/ready", tag = "service",
    summary = "Agent ready",
    description = "Ready for calls (409 on a call or in wrap-up: record the disposition).",
    params(("id" = String, Path, description = "Agent id.")),
    responses((status = 200, description = "The agent's state after the request.", body = Ok200), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 409, description = "Not logged in, or the state does not allow it.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn ready(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Ok200>, ApiError> {
    auth.require_agent(&id)?;
    agent_action(&s, id, |agent, reply| Input::Ready { agent, reply }).await
}

/// Pause with a reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PauseRequest)]
struct PauseIn {
    reason: String,
}

#[utoipa::path(post, path = "/api/agents/{id}/pause", tag = "service",
    summary = "Pause an agent",
    description = "Now, or after the call and its wrap-up.",
    params(("id" = String, Path, description = "Agent id.")), request_body = PauseIn,
    responses((status = 200, description = "The agent's state after the request.", body = Ok200),
        (status = 400, description = "A bad body.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 409, description = "Not logged in.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn pause(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PauseIn>, JsonRejection>,
) -> Result<Json<Ok200>, ApiError> {
    auth.require_agent(&id)?;
    let body = json_body(body)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 100 {
        return Err(ApiError::bad_request("reason: 1-100 characters").with_field("reason"));
    }
    // It goes into the audit log and onto supervisors' screens: no line
    // breaks or terminal escapes.
    if reason.chars().any(char::is_control) {
        return Err(
            ApiError::bad_request("reason: no control characters (line breaks, escapes)")
                .with_field("reason"),
        );
    }
    let reason = reason.to_string();
    auth.note(format!("reason {reason}"));
    agent_action(&s, id, |agent, reply| Input::Pause {
        agent,
        reason,
        reply,
    })
    .await
}

#[utoipa::path(post, path = "/api/agents/{id}/logout", tag = "service",
    summary = "Log an agent out",
    description = "Now, or after the call and its wrap-up.",
    params(("id" = String, Path, description = "Agent id.")),
    responses((status = 200, description = "The agent's state after the request.", body = Ok200), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 409, description = "Not logged in, or the state does not allow it.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn logout(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Ok200>, ApiError> {
    auth.require_agent(&id)?;
    agent_action(&s, id, |agent, reply| Input::Logout { agent, reply }).await
}

#[utoipa::path(post, path = "/api/agents/{id}/hangup", tag = "service",
    summary = "Hang up the agent's call",
    description = "Ends the connected call; 409 without one.",
    params(("id" = String, Path, description = "Agent id.")),
    responses((status = 200, description = "The agent's state after the request.", body = Ok200), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 409, description = "Not logged in, or the state does not allow it.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn hangup(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Ok200>, ApiError> {
    auth.require_agent(&id)?;
    agent_action(&s, id, |agent, reply| Input::Hangup { agent, reply }).await
}

/// Digits to send to the customer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DtmfRequest)]
struct DtmfIn {
    /// 1 to 32 of `0-9`, `*`, `#`, `A-D`.
    digits: String,
}

#[utoipa::path(post, path = "/api/agents/{id}/dtmf", tag = "service",
    summary = "Send DTMF to the customer",
    description = "Sends the digits on the connected call as RFC 4733 telephone-events (100 ms each, 60 ms apart), in the agent's audio stream to the customer: to drive the customer's IVR or a payment line. 409 without a connected call or when the customer's side took no telephone-events in its answer. The digits are not logged or audited (a card number may be keyed). The customer's own keys reach the agent as `dtmf` events and in the call's `dtmf`.",
    params(("id" = String, Path, description = "Agent id.")), request_body = DtmfIn,
    responses((status = 200, description = "Queued to be sent.", body = Ok200),
        (status = 400, description = "Not DTMF digits.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 409, description = "No connected call, or the customer's side takes no DTMF.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn send_dtmf(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<DtmfIn>, JsonRejection>,
) -> Result<Json<Ok200>, ApiError> {
    auth.require_agent(&id)?;
    let body = json_body(body)?;
    let digits = crate::media::dtmf::check_digits(&body.digits)
        .map_err(|e| ApiError::bad_request(format!("digits: {e}")).with_field("digits"))?;
    agent_action(&s, id, move |agent, reply| Input::SendDtmf {
        agent,
        digits,
        reply,
    })
    .await
}

/// The agent's current call.
#[derive(Serialize, ToSchema)]
#[schema(as = Call)]
struct CallOut {
    agent: String,
    #[schema(value_type = String)]
    state: &'static str,
    call: crate::service::CallView,
    /// The lead's attempts, newest first (this call's included), up to 20.
    history: Vec<crate::store::AttemptHistory>,
}

#[utoipa::path(get, path = "/api/agents/{id}/call", tag = "service",
    summary = "The agent's current call",
    description = "The call put through to the agent (on the line or in wrap-up): the lead's fields, the campaign's script filled in, and the lead's attempts so far.",
    params(("id" = String, Path, description = "Agent id.")),
    responses((status = 200, description = "The call.", body = CallOut), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No current call.", body = ErrorBody),
        (status = 409, description = "Not logged in.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn current_call(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CallOut>, ApiError> {
    auth.require_agent(&id)?;
    let session = session_of(&s, &id)?;
    let Some(call) = session.call else {
        return Err(ApiError::not_found("no current call"));
    };
    let history = s
        .shared
        .store
        .lead_history(call.lead_id, 20)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(CallOut {
        agent: id,
        state: session.state,
        call,
        history,
    }))
}

/// A disposition for a call in wrap-up.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DispositionRequest)]
struct DispositionIn {
    code: String,
    /// Revenue in the campaign's currency (major units, e.g. 120.50).
    amount: Option<f64>,
    /// Call back at, ms since the Unix epoch.
    callback_at: Option<i64>,
    /// The agent's notes on the call (up to 2,000 characters).
    notes: Option<String>,
    /// A callback the agent keeps for themself (true): dialled only for
    /// that agent until the campaign's `callback_grace` after its time,
    /// then for anyone. False or absent: for anyone from the start. Only
    /// with a callback code.
    personal: Option<bool>,
}

/// A recorded disposition.
#[derive(Serialize, ToSchema)]
#[schema(as = DispositionResult)]
struct DispositionDone {
    ok: bool,
    disposition_id: i64,
    wrapup_ms: i64,
    #[schema(value_type = String)]
    state: &'static str,
}

#[utoipa::path(post, path = "/api/calls/{id}/disposition", tag = "service",
    summary = "Record a disposition",
    description = "Ends the call's wrap-up (measured from the call's end). The call's agent, or a supervisor or admin.",
    params(("id" = i64, Path, description = "Call id (the attempt's id).")), request_body = DispositionIn,
    responses((status = 200, description = "Recorded.", body = DispositionDone),
        (status = 400, description = "A bad body or code.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No call awaiting a disposition.", body = ErrorBody),
        (status = 409, description = "The call is still connected, or a disposition is being recorded.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn disposition(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(call_id): Path<i64>,
    body: Result<Json<DispositionIn>, JsonRejection>,
) -> Result<Json<DispositionDone>, ApiError> {
    let body = json_body(body)?;
    auth.note(format!("code {}", clip_note(&body.code)));
    // Find the session holding this call, and claim its wrap-up.
    let live = {
        let mut sessions = s.shared.sessions.lock().map_err(ApiError::internal)?;
        match sessions
            .values_mut()
            .find(|v| v.call.as_ref().is_some_and(|c| c.call_id == call_id))
        {
            None => None,
            Some(v) => {
                auth.require_agent(&v.agent)?;
                if v.state != "wrapup" {
                    return Err(ApiError::conflict(
                        "the call is still connected; hang up first",
                    ));
                }
                if v.disposing {
                    return Err(ApiError::conflict(
                        "a disposition is already being recorded",
                    ));
                }
                v.disposing = true;
                let ended = v.call.as_ref().and_then(|c| c.ended_at).unwrap_or(v.since);
                Some((v.agent.clone(), v.campaign.clone(), ended))
            }
        }
    };
    let Some((agent, campaign, ended_at)) = live else {
        // No session holds it: a call whose wrap-up a crash or a shutdown
        // cut, recorded from the store.
        return pending_disposition_record(&auth, &s, call_id, body).await;
    };
    let unclaim = |s: &AppState| {
        s.shared.with_session(&agent, |v| v.disposing = false);
    };
    let Some(h) = s.shared.campaigns.get(&campaign) else {
        unclaim(&s);
        return Err(ApiError::not_found("no such campaign"));
    };
    let Some(d) = h.campaign.dispositions.iter().find(|d| d.code == body.code) else {
        unclaim(&s);
        return Err(ApiError::bad_request(format!(
            "code: unknown disposition code for campaign {campaign}"
        ))
        .with_field("code"));
    };
    note_disposition(&auth, &agent, d);
    let now = s.shared.clock.now().ms();
    let wrapup_ms = now.saturating_sub(ended_at);
    let values = disposition_values(&h.campaign, d, &body, now)
        .and_then(|v| Ok((v, disposition_notes(&body)?)));
    let ((amount_minor, callback_at, personal), notes) = match values {
        Ok(v) => v,
        Err(e) => {
            unclaim(&s);
            return Err(e);
        }
    };
    note_personal(&auth, personal);
    let rec = NewDisposition {
        attempt_id: call_id,
        campaign_id: h.id,
        agent_id: agent.clone(),
        code: d.code.clone(),
        conversion: d.conversion,
        contact: d.contact,
        dnc: d.dnc,
        callback_at,
        amount_minor,
        wrapup_ms: Some(wrapup_ms),
        created_at: now,
        notes,
        personal,
    };
    // Durable before the agent is made ready.
    let id = match s.shared.store.record_disposition(&rec).await {
        Ok(id) => id,
        Err(crate::store::StoreError::AlreadyDisposed { .. }) => {
            // Recorded meanwhile through another node (its pending route):
            // one disposition per call, so this one is refused, and the
            // agent's wrap-up for the call is over all the same.
            let _ = h.tx.send(Input::WrapUpDone {
                agent: agent.clone(),
                contact: false,
                conversion: false,
            });
            return Err(ApiError::conflict(
                "the call already has a disposition (recorded elsewhere); this one is not recorded",
            ));
        }
        Err(e) => {
            unclaim(&s);
            return Err(ApiError::internal(e));
        }
    };
    let _ = h.tx.send(Input::WrapUpDone {
        agent: agent.clone(),
        contact: d.contact,
        conversion: d.conversion,
    });
    Ok(Json(DispositionDone {
        ok: true,
        disposition_id: id,
        wrapup_ms,
        state: "done",
    }))
}

/// What the audit log says of a disposition beyond its code: whose call,
/// and that it is an opt-out, a conversion or a callback.
fn note_disposition(auth: &Authenticated, agent: &str, d: &crate::campaign::Disposition) {
    auth.note(format!("agent {agent}"));
    if d.dnc {
        auth.note("opt-out: the number goes on the do-not-call list");
    }
    if d.conversion {
        auth.note("conversion");
    }
    if d.callback {
        auth.note("callback");
    }
}

/// The audit note of a callback the agent keeps for themself.
fn note_personal(auth: &Authenticated, personal: bool) {
    if personal {
        auth.note("kept for the agent until the campaign's grace after its time");
    }
}

/// The longest notes on a call, characters.
const NOTES_LIMIT: usize = 2_000;

/// The notes of a disposition request, trimmed; empty ones are none.
fn disposition_notes(body: &DispositionIn) -> Result<Option<String>, ApiError> {
    match body.notes.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > NOTES_LIMIT => Err(ApiError::bad_request(format!(
            "notes: at most {NOTES_LIMIT} characters"
        ))
        .with_field("notes")),
        Some(n) if n.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => Err(
            ApiError::bad_request("notes: control characters other than new lines and tabs")
                .with_field("notes"),
        ),
        Some(n) => Ok(Some(n.to_string())),
    }
}

/// A caller-given name, cut to a length fit for the audit log.
fn clip_note(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The amount (minor units), callback time and whether the agent keeps
/// the callback a disposition request carries, checked: a bad amount or
/// callback time, or a kept callback without a callback code, is a 400.
fn disposition_values(
    campaign: &crate::campaign::Campaign,
    d: &crate::campaign::Disposition,
    body: &DispositionIn,
    now: i64,
) -> Result<(Option<i64>, Option<i64>, bool), ApiError> {
    let callback = d.callback;
    // An amount is a conversion's; a callback time a callback's: either
    // given with another code would be dropped or counted as revenue with
    // no conversion.
    if body.amount.is_some() && !d.conversion {
        return Err(ApiError::bad_request(format!(
            "amount: {} is not a conversion code; an amount goes with a conversion",
            d.code
        ))
        .with_field("amount"));
    }
    if body.callback_at.is_some() && !callback {
        return Err(ApiError::bad_request(format!(
            "callback_at: {} is not a callback code; a call-back time goes with a callback",
            d.code
        ))
        .with_field("callback_at"));
    }
    let amount_minor = match body.amount {
        None => None,
        Some(a) if a.is_finite() && (0.0..1e12).contains(&a) => {
            let digits = campaign
                .costs
                .as_ref()
                .map_or(2, |c| crate::report::currency_digits(&c.currency));
            Some((a * 10f64.powi(digits as i32)).round() as i64)
        }
        Some(_) => {
            return Err(
                ApiError::bad_request("amount must be a number from 0").with_field("amount")
            );
        }
    };
    // A callback: at the time the customer asked for (from a minute ago
    // to 90 days ahead), or after the campaign's callback delay.
    let callback_at = if callback {
        match body.callback_at {
            Some(at) if (now - 60_000..=now + 90 * 86_400_000).contains(&at) => Some(at),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "callback_at must be a time (ms since the epoch) from now to 90 days ahead",
                )
                .with_field("callback_at"));
            }
            None => {
                let delay = campaign.callback_delay.unwrap_or_default();
                Some(now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)))
            }
        }
    } else {
        None
    };
    let personal = body.personal.unwrap_or(false);
    if personal && !callback {
        return Err(ApiError::bad_request(
            "personal: only a callback code's call back can be kept for the agent",
        )
        .with_field("personal"));
    }
    Ok((amount_minor, callback_at, personal))
}

/// Records the disposition of a call no live session holds: one put
/// through to an agent that ended (a crash, a shutdown) before its
/// disposition was recorded. The wrap-up time is unknown (none is stored)
/// and the agent's state does not change.
async fn pending_disposition_record(
    auth: &Authenticated,
    s: &AppState,
    call_id: i64,
    body: DispositionIn,
) -> Result<Json<DispositionDone>, ApiError> {
    let not_found = || ApiError::not_found("no call awaiting a disposition");
    let p = s
        .shared
        .store
        .pending_disposition(call_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    // Say nothing of other agents' calls to an agent token.
    if auth.require_agent(&p.agent_id).is_err() {
        return Err(not_found());
    }
    let Some((_, h)) = s
        .shared
        .campaigns
        .iter()
        .find(|(_, h)| h.id == p.campaign_id)
    else {
        return Err(ApiError::not_found(
            "the call's campaign does not run on this node",
        ));
    };
    let Some(d) = h.campaign.dispositions.iter().find(|d| d.code == body.code) else {
        return Err(ApiError::bad_request(format!(
            "code: unknown disposition code for campaign {}",
            h.campaign.name
        ))
        .with_field("code"));
    };
    note_disposition(auth, &p.agent_id, d);
    let now = s.shared.clock.now().ms();
    let (amount_minor, callback_at, personal) = disposition_values(&h.campaign, d, &body, now)?;
    note_personal(auth, personal);
    let notes = disposition_notes(&body)?;
    let rec = NewDisposition {
        attempt_id: call_id,
        campaign_id: h.id,
        agent_id: p.agent_id.clone(),
        code: d.code.clone(),
        conversion: d.conversion,
        contact: d.contact,
        dnc: d.dnc,
        callback_at,
        amount_minor,
        wrapup_ms: None,
        created_at: now,
        notes,
        personal,
    };
    // Two requests at once: the second finds the first's row.
    let _guard = s.pending_lock.lock().await;
    if s.shared
        .store
        .pending_disposition(call_id)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(not_found());
    }
    let id = s
        .shared
        .store
        .record_disposition(&rec)
        .await
        .map_err(|e| match e {
            // Another node recorded it between the check and the insert.
            crate::store::StoreError::AlreadyDisposed { .. } => {
                ApiError::conflict("the call already has a disposition")
            }
            e => ApiError::internal(e),
        })?;
    Ok(Json(DispositionDone {
        ok: true,
        disposition_id: id,
        wrapup_ms: 0,
        state: "done",
    }))
}

#[utoipa::path(get, path = "/api/agents/{id}/pending", tag = "service",
    summary = "Calls awaiting a disposition",
    description = "Calls put through to the agent that ended without a disposition (a crash or a shutdown cut their wrap-up), oldest first; `POST /api/calls/{id}/disposition` records one. The agent, or a supervisor or admin.",
    params(("id" = String, Path, description = "Agent id.")),
    responses((status = 200, description = "The calls.", body = Vec<crate::store::PendingDisposition>),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn pending(
    auth: Authenticated,
    State(s): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Vec<crate::store::PendingDisposition>>, ApiError> {
    auth.require_agent(&agent)?;
    let mut rows = s
        .shared
        .store
        .pending_dispositions(&agent)
        .await
        .map_err(ApiError::internal)?;
    // A call in wrap-up on this node is the live route's, not pending.
    let live: Vec<i64> = s
        .shared
        .sessions
        .lock()
        .map_err(ApiError::internal)?
        .values()
        .filter_map(|v| v.call.as_ref().map(|c| c.call_id))
        .collect();
    rows.retain(|r| !live.contains(&r.call_id));
    Ok(Json(rows))
}

#[utoipa::path(get, path = "/api/events", tag = "service",
    summary = "Event stream (SSE)",
    description = "Server-sent events: `call`, `call_ended`, `state`; agents see their own. Each event has an `id`, rising across restarts of the service: a stream reopened with `Last-Event-ID` gets the events it missed first (the last 2,048 are kept; `lagged` says how many were lost beyond, or `unknown` across a restart). A stream ends after 30 minutes (EventSource reconnects) or within seconds of its token's revocation. Takes `?token=` too (EventSource cannot set headers).",
    responses((status = 200, description = "The stream.", content_type = "text/event-stream", body = String), (status = 401, description = "No valid token.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn events(
    auth: Authenticated,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    use futures_util::StreamExt;
    // A reconnecting EventSource says where it stopped: the kept events
    // after it come first, then the live ones (none twice).
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let crate::service::Resumed {
        rx,
        replay,
        seen,
        lost,
    } = s.shared.events_since(last_id);
    let principal = auth.0;
    let principal_id = principal.token_id;
    let visible = {
        let principal = principal.clone();
        move |e: &crate::service::ServiceEvent| {
            principal.can_supervise()
                || e.agent
                    .as_deref()
                    .is_some_and(|a| principal.can_access_agent(a))
        }
    };
    let to_sse = |e: &crate::service::ServiceEvent| {
        SseEvent::default()
            .id(e.id.to_string())
            .event(e.kind)
            .json_data(e)
            .unwrap_or_else(|_| SseEvent::default().comment("unencodable"))
    };
    let first = SseEvent::default()
        .retry(std::time::Duration::from_secs(2))
        .comment("connected");
    let mut replayed: Vec<Result<SseEvent, Infallible>> = Vec::new();
    // Gone longer than the kept events reach: say how many were lost, as
    // a live stream that falls behind does (`unknown` across a restart of
    // the service, or for an id it never gave).
    if let Some(lost) = lost {
        replayed.push(Ok(SseEvent::default()
            .event("lagged")
            .data(lost.map_or_else(|| "unknown".to_string(), |n| n.to_string()))));
    }
    replayed.extend(replay.iter().filter(|e| visible(e)).map(|e| Ok(to_sse(e))));
    let live = futures_util::stream::unfold(rx, move |mut rx| {
        let visible = visible.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if e.id <= seen || !visible(&e) {
                            continue;
                        }
                        return Some((Ok(to_sse(&e)), rx));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let ev = SseEvent::default().event("lagged").data(n.to_string());
                        return Some((Ok(ev), rx));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let stream = futures_util::stream::once(async move { Ok(first) })
        .chain(futures_util::stream::iter(replayed))
        .chain(live);
    let stream = super::auth::while_token_active(stream, s.shared.store.clone(), principal_id);
    Sse::new(stream).keep_alive(KeepAlive::default())
}
