//! Campaign controls over the API: start, pause, resume and stop a running
//! campaign, and set its dial-level cap and abandonment target, without a
//! restart. Supervisors and admins only. Each change is written to the
//! store first (with a version check, so two at once cannot lose one),
//! then handed to this node's runner at once; the campaign's other nodes
//! pick it up from the store within a second (the cluster sync), and a
//! restart reads it back. The rules (which transitions, which ranges) are
//! [`crate::controls`]'s.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::{ApiError, ErrorBody};
use crate::controls::{Action, ControlError, Controls, RunState};
use crate::service::driver::Input;
use crate::service::{CampaignHandle, Shared};
use crate::store::Store;

/// A campaign's controls, what they make of it, and the file's settings.
#[derive(Serialize, ToSchema)]
#[schema(as = CampaignControls)]
struct ControlsOut {
    campaign: String,
    /// As stored (`null` settings: the campaign file's).
    controls: Controls,
    /// Whether the campaign launches calls now (running; calling hours
    /// still apply).
    dialling: bool,
    /// The dial-level cap in force.
    max_dial_level: f64,
    /// The abandonment target in force, percent.
    target_percent: f64,
    /// The campaign's legal abandonment limit, percent (no target above).
    limit_percent: f64,
    /// The campaign file's cap.
    file_max_dial_level: f64,
    /// The campaign file's target, percent.
    file_target_percent: f64,
    /// The campaign's lead lists with their counts (`controls.lists`
    /// says which it dials).
    lead_lists: Vec<crate::store::LeadList>,
}

async fn out(shared: &Shared, h: &CampaignHandle, c: Controls) -> Result<ControlsOut, ApiError> {
    let e = c.effective(&h.campaign);
    let lead_lists = shared
        .store
        .lead_lists(h.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(ControlsOut {
        lead_lists,
        campaign: h.campaign.name.clone(),
        dialling: e.dialling,
        max_dial_level: e.max_dial_level,
        target_percent: e.target_percent,
        limit_percent: h.campaign.abandon_limit_percent,
        file_max_dial_level: h.campaign.max_dial_level,
        file_target_percent: h.campaign.abandon_target_percent,
        controls: c,
    })
}

use super::campaign_handle as handle;

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match &e {
            ControlError::Transition { .. } => ApiError::conflict(e.to_string()),
            ControlError::Setting { field, .. } => {
                ApiError::bad_request(e.to_string()).with_field(*field)
            }
        }
    }
}

/// Changes campaign `name`'s controls with `change` (given the stored
/// ones), as `auth`: written to the store with a version check (read
/// again and retried when another change came first), then applied here.
async fn change(
    shared: &Shared,
    auth: &Authenticated,
    name: &str,
    change: impl Fn(&Controls) -> Result<Controls, ApiError>,
) -> Result<Json<ControlsOut>, ApiError> {
    auth.require_supervisor()?;
    let h = handle(shared, name)?;
    for _ in 0..5 {
        let current = shared
            .store
            .campaign_controls(h.id)
            .await
            .map_err(ApiError::internal)?;
        let mut next = change(&current)?;
        next.version = current.version + 1;
        next.updated_at = shared.clock.now().ms();
        next.updated_by = auth.actor();
        if shared
            .store
            .set_campaign_controls(h.id, &next)
            .await
            .map_err(ApiError::internal)?
        {
            if let Ok(mut held) = h.controls.lock()
                && held.version < next.version
            {
                *held = next.clone();
            }
            // The runner applies it at once; if it is gone (shutting
            // down) the store has it for the next start.
            let _ = h.tx.send(Input::Controls(next.clone()));
            return Ok(Json(out(shared, h, next).await?));
        }
    }
    Err(ApiError::conflict(
        "the campaign's controls kept changing under this request; try again",
    ))
}

#[utoipa::path(get, path = "/api/campaigns/{name}/controls", tag = "service",
    summary = "A campaign's controls",
    description = "Run state, dial-level cap and abandonment target: as set, in force, and the campaign file's. Any token.",
    params(("name" = String, Path, description = "Campaign name.")),
    responses((status = 200, description = "The controls.", body = ControlsOut),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn controls_get(
    _auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<ControlsOut>, ApiError> {
    let h = handle(&shared, &name)?;
    let c = shared
        .store
        .campaign_controls(h.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(out(&shared, h, c).await?))
}

/// New settings: a number sets one, `null` goes back to the campaign
/// file's, a key left out stays as it is.
#[derive(ToSchema)]
#[schema(as = CampaignSettings)]
#[allow(dead_code)]
struct SettingsIn {
    /// Calls in flight per active agent, at most: 1-10.
    max_dial_level: Option<f64>,
    /// Abandonment target, percent: above 0, at most the campaign's limit.
    target_percent: Option<f64>,
    /// The lead lists to dial (names the campaign has leads in); `null`:
    /// every list. Agreed callbacks are dialled whatever their list.
    lists: Option<Vec<String>>,
}

/// One setting from a PATCH body: absent (`None`), `null` (`Some(None)`:
/// back to the file's) or a number.
fn setting(
    body: &serde_json::Map<String, serde_json::Value>,
    key: &'static str,
) -> Result<Option<Option<f64>>, ApiError> {
    match body.get(key) {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(v) => v.as_f64().map(|n| Some(Some(n))).ok_or_else(|| {
            ApiError::bad_request(format!("{key}: a number, or null for the campaign file's"))
                .with_field(key)
        }),
    }
}

#[utoipa::path(patch, path = "/api/campaigns/{name}/controls", tag = "service",
    summary = "Set a campaign's cap, target and lead lists",
    description = "Sets the dial-level cap, the abandonment target and the lead lists dialled of a running campaign, at once and on every node, surviving a restart; `null` goes back to the campaign file's (for lists: every list). The target may not pass the campaign's legal limit; a list must be one the campaign has leads in. Switching lists gives the hopper's leads back, so the next calls come from the lists chosen. Supervisor or admin; audited.",
    params(("name" = String, Path, description = "Campaign name.")), request_body = SettingsIn,
    responses((status = 200, description = "The controls afterwards.", body = ControlsOut),
        (status = 400, description = "A bad body or value.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here.", body = ErrorBody),
        (status = 409, description = "Changed under the request too often.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn controls_patch(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ControlsOut>, ApiError> {
    auth.require_supervisor()?;
    let serde_json::Value::Object(body) = super::json_body(body)? else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some(k) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "max_dial_level" | "target_percent" | "lists"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown field {k}: max_dial_level, target_percent and lists may be set"
        ))
        .with_field(k.clone()));
    }
    let cap = setting(&body, "max_dial_level")?;
    let target = setting(&body, "target_percent")?;
    let lists: Option<Option<Vec<String>>> = match body.get("lists") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(v) => Some(Some(
            serde_json::from_value::<Vec<String>>(v.clone()).map_err(|_| {
                ApiError::bad_request("lists: an array of list names, or null for every list")
                    .with_field("lists")
            })?,
        )),
    };
    // The same list twice is a mistake in the request, not two lists.
    if let Some(Some(l)) = &lists
        && l.iter().enumerate().any(|(i, a)| l[..i].contains(a))
    {
        return Err(ApiError::bad_request("lists: a list is named twice").with_field("lists"));
    }
    if cap.is_none() && target.is_none() && lists.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give max_dial_level, target_percent or lists",
        ));
    }
    let h = handle(&shared, &name)?;
    Controls::check_settings(&h.campaign, cap.flatten(), target.flatten())?;
    if let Some(Some(l)) = &lists {
        let known: Vec<String> = shared
            .store
            .lead_lists(h.id)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|l| l.name)
            .collect();
        crate::controls::check_lists(l, &known)?;
        auth.note(format!("lists {}", l.join(",")));
    } else if lists.is_some() {
        auth.note("lists every list");
    }
    let show = |v: Option<f64>| v.map_or_else(|| "the file's".to_string(), |v| v.to_string());
    if let Some(c) = cap {
        auth.note(format!("max_dial_level {}", show(c)));
    }
    if let Some(t) = target {
        auth.note(format!("target_percent {}", show(t)));
    }
    change(&shared, &auth, &name, |cur| {
        Ok(Controls {
            max_dial_level: cap.unwrap_or(cur.max_dial_level),
            target_percent: target.unwrap_or(cur.target_percent),
            lists: lists.clone().unwrap_or_else(|| cur.lists.clone()),
            ..cur.clone()
        })
    })
    .await
}

#[utoipa::path(post, path = "/api/campaigns/{name}/{action}", tag = "service",
    summary = "Start, pause, resume or stop a campaign",
    description = "`pause`: no new calls (calls in flight, agents and claimed leads stay); `resume`: dial again. `stop`: no new calls, its claimed leads go back to the store, and agents may not log in to it; `start`: dial again. At once, on every node, surviving a restart. Asking for the state the campaign is in changes nothing; a transition that does not apply (resume a stopped campaign) is a 409. Supervisor or admin; audited.",
    params(("name" = String, Path, description = "Campaign name."),
        ("action" = String, Path, description = "start, pause, resume or stop.")),
    responses((status = 200, description = "The controls afterwards.", body = ControlsOut),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here, or no such action.", body = ErrorBody),
        (status = 409, description = "The action does not apply in the campaign's state.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn controls_action(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<ControlsOut>, ApiError> {
    auth.require_supervisor()?;
    let Some(action) = Action::parse(&action) else {
        return Err(ApiError::not_found(
            "no such action: start, pause, resume or stop",
        ));
    };
    change(&shared, &auth, &name, |cur| {
        let state = cur.after(action)?;
        auth.note(format!("{} → {}", cur.state.as_str(), state.as_str()));
        Ok(Controls {
            state,
            ..cur.clone()
        })
    })
    .await
}

/// Whether agents may log in to campaign `name` on this node: not to a
/// stopped one.
pub(crate) fn check_login(shared: &Shared, name: &str) -> Result<(), ApiError> {
    let h = handle(shared, name)?;
    let stopped = h
        .controls
        .lock()
        .map(|c| c.state == RunState::Stopped)
        .unwrap_or(true);
    if stopped {
        return Err(ApiError::conflict(format!(
            "campaign {name} is stopped: a supervisor starts it with POST /api/campaigns/{name}/start"
        )));
    }
    Ok(())
}

/// The controls' routes, registered with their descriptions.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    Arc<Shared>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(controls_get, controls_patch))
        .routes(routes!(controls_action))
}
