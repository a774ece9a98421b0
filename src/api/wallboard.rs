//! The supervisor wallboard's data: per campaign, a row per logged-in
//! agent (state, time in it, the current call's length, pause reason, and
//! since the day began: calls, average handle time, conversions), the
//! callbacks due soonest, and attempts, answers, abandons and conversions
//! by hour. The live board (`/api/live`) has the campaign-wide figures;
//! the dashboard at `/` shows both.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::{ApiError, ErrorBody};
use crate::service::Shared;
use crate::store::{Callback, HourFigures, Store};

/// Hours of figures the wallboard shows.
pub const HOURS: i64 = 12;

/// Callbacks listed per campaign, soonest first.
pub const CALLBACKS: usize = 20;

/// One agent's row.
#[derive(Serialize, ToSchema)]
#[schema(as = WallboardAgent)]
struct AgentRow {
    agent: String,
    /// `logging_in`, `paused`, `ready`, `on_call`, `wrapup` (as the API's
    /// agent states).
    state: String,
    /// Seconds in that state.
    in_state_s: f64,
    /// The pause reason.
    reason: Option<String>,
    /// The current call's length, seconds (on a call).
    call_s: Option<f64>,
    /// Calls put through since the day began (UTC).
    calls: i64,
    /// Their average handle time (talk and wrap-up), seconds.
    aht_s: Option<f64>,
    /// Conversions since the day began.
    conversions: i64,
}

/// One campaign on the wallboard.
#[derive(Serialize, ToSchema)]
#[schema(as = WallboardCampaign)]
struct CampaignBoard {
    name: String,
    #[schema(value_type = String)]
    run_state: &'static str,
    agents: Vec<AgentRow>,
    /// Callbacks still to dial, soonest first (at most 20).
    callbacks: Vec<Callback>,
    /// The last 12 hours, by UTC hour.
    hourly: Vec<HourFigures>,
}

/// The wallboard.
#[derive(Serialize, ToSchema)]
#[schema(as = Wallboard)]
struct Board {
    now_ms: i64,
    campaigns: Vec<CampaignBoard>,
}

#[utoipa::path(get, path = "/api/wallboard", tag = "web",
    summary = "The supervisor wallboard",
    description = "Per running campaign: a row per logged-in agent (state, seconds in it, current call length, pause reason; calls, average handle time and conversions since 00:00 UTC), the callbacks due soonest, and attempts, human answers, abandons and conversions for each of the last 12 hours. Supervisor or admin.",
    responses((status = 200, description = "The wallboard.", body = Board),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn wallboard(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
) -> Result<Json<Board>, ApiError> {
    auth.require_supervisor()?;
    let now = shared.clock.now().ms();
    let day = now - now.rem_euclid(86_400_000);
    let since_hours = now - now.rem_euclid(3_600_000) - (HOURS - 1) * 3_600_000;
    let sessions: Vec<crate::service::SessionView> = shared
        .sessions
        .lock()
        .map_err(ApiError::internal)?
        .values()
        .cloned()
        .collect();
    let mut campaigns = Vec::new();
    for (name, h) in &shared.campaigns {
        let store = &shared.store;
        let figures = store
            .agent_figures(h.id, day)
            .await
            .map_err(ApiError::internal)?;
        let mut agents: Vec<AgentRow> = sessions
            .iter()
            .filter(|s| &s.campaign == name)
            .map(|s| {
                let f = figures.iter().find(|f| f.agent_id == s.agent);
                AgentRow {
                    agent: s.agent.clone(),
                    state: s.state.to_string(),
                    in_state_s: (now - s.since).max(0) as f64 / 1000.0,
                    reason: s.reason.clone(),
                    call_s: s
                        .call
                        .as_ref()
                        .filter(|c| c.ended_at.is_none())
                        .map(|c| (now - c.connected_at).max(0) as f64 / 1000.0),
                    calls: f.map_or(0, |f| f.calls),
                    aht_s: f.and_then(|f| f.aht_s),
                    conversions: f.map_or(0, |f| f.conversions),
                }
            })
            .collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        let mut callbacks = store
            .callbacks(
                h.id,
                None,
                crate::clock::duration_ms(h.campaign.callback_grace),
            )
            .await
            .map_err(ApiError::internal)?;
        callbacks.truncate(CALLBACKS);
        let run_state = h
            .controls
            .lock()
            .map(|c| c.state.as_str())
            .unwrap_or("stopped");
        campaigns.push(CampaignBoard {
            name: name.clone(),
            run_state,
            agents,
            callbacks,
            hourly: store
                .hourly_figures(h.id, since_hours)
                .await
                .map_err(ApiError::internal)?,
        });
    }
    Ok(Json(Board {
        now_ms: now,
        campaigns,
    }))
}

/// The wallboard's route, registered with its description.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    Arc<Shared>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(wallboard))
}
