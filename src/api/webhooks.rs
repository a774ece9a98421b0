//! Webhook subscriptions over the API, as `dialler webhook` manages them:
//! list a campaign's, add one (the signing secret is in the answer, once),
//! remove one. Adding and removing take an admin token and are written to
//! the audit log with the change; listing takes a supervisor's. Delivery
//! is [`crate::webhooks`]'s.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::campaign_handle as handle;
use super::{ApiError, ErrorBody};
use crate::service::Shared;
use crate::store::{Store, WebhookSubscription};

/// A new subscription.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookRequest)]
struct WebhookIn {
    /// Where to POST: an http:// or https:// URL.
    url: String,
    /// The events: call.answered, call.ended, disposition.recorded,
    /// conversion, lead.opted_out; all of them when left out.
    events: Option<Vec<String>>,
}

/// A subscription just added, with its signing secret (shown this once).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookCreated)]
struct WebhookOut {
    id: i64,
    campaign: String,
    url: String,
    events: Vec<String>,
    /// HMAC-SHA256 key of `X-Dialler-Signature`; not shown again.
    secret: String,
}

#[utoipa::path(get, path = "/api/campaigns/{name}/webhooks", tag = "service",
    summary = "A campaign's webhooks",
    description = "The campaign's subscriptions, removed ones included (never their secrets). Supervisor or admin.",
    params(("name" = String, Path, description = "Campaign name.")),
    responses((status = 200, description = "The subscriptions.", body = Vec<WebhookSubscription>),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn webhooks_list(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<Vec<WebhookSubscription>>, ApiError> {
    auth.require_supervisor()?;
    let h = handle(&shared, &name)?;
    let all = shared.store.webhooks().await.map_err(ApiError::internal)?;
    Ok(Json(
        all.into_iter()
            .filter(|w| w.campaign == h.campaign.name)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/campaigns/{name}/webhooks", tag = "service",
    summary = "Add a webhook",
    description = "Subscribes a URL to the campaign's events; the answer carries the signing secret, shown this once. Admin; audited.",
    params(("name" = String, Path, description = "Campaign name.")), request_body = WebhookIn,
    responses((status = 200, description = "The subscription and its secret.", body = WebhookOut),
        (status = 400, description = "A bad URL or event.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn webhooks_add(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Result<Json<WebhookIn>, JsonRejection>,
) -> Result<Json<WebhookOut>, ApiError> {
    auth.require_admin()?;
    let h = handle(&shared, &name)?;
    let body = super::json_body(body)?;
    let url = crate::webhooks::check_url(&body.url)
        .map_err(|e| ApiError::bad_request(e.to_string()).with_field("url"))?;
    // Left out: every event. An empty list asks for none, which is no
    // subscription; a name with a comma would be read as two.
    if let Some(names) = &body.events
        && (names.is_empty() || names.iter().any(|n| n.contains(',') || n.trim().is_empty()))
    {
        return Err(ApiError::bad_request(
            "events: name at least one event (each without commas), or leave events out for all",
        )
        .with_field("events"));
    }
    let events = crate::webhooks::parse_events(&body.events.unwrap_or_default().join(","))
        .map_err(|e| ApiError::bad_request(e.to_string()).with_field("events"))?;
    let secret = crate::webhooks::new_secret();
    let by = auth.audit_entry(shared.clock.now().ms());
    let id = shared
        .store
        .webhook_add(h.id, &url, &events, &secret, &by)
        .await
        .map_err(ApiError::internal)?;
    auth.recorded();
    Ok(Json(WebhookOut {
        id,
        campaign: h.campaign.name.clone(),
        url,
        events,
        secret,
    }))
}

#[utoipa::path(delete, path = "/api/campaigns/{name}/webhooks/{id}", tag = "service",
    summary = "Remove a webhook",
    description = "Nothing more is sent to it (its undelivered events included). Admin; audited.",
    params(("name" = String, Path, description = "Campaign name."), ("id" = i64, Path, description = "Subscription id.")),
    responses((status = 200, description = "Removed: the campaign's subscriptions afterwards.", body = Vec<WebhookSubscription>),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign, or no live subscription of it with this id.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn webhooks_remove(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<Vec<WebhookSubscription>>, ApiError> {
    auth.require_admin()?;
    let h = handle(&shared, &name)?;
    let all = shared.store.webhooks().await.map_err(ApiError::internal)?;
    let not_found = || ApiError::not_found("no live webhook of the campaign with this id");
    if !all
        .iter()
        .any(|w| w.id == id && w.campaign == h.campaign.name && w.removed_at.is_none())
    {
        return Err(not_found());
    }
    let by = auth.audit_entry(shared.clock.now().ms());
    if !shared
        .store
        .webhook_remove(id, &by)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(not_found());
    }
    auth.recorded();
    let all = shared.store.webhooks().await.map_err(ApiError::internal)?;
    Ok(Json(
        all.into_iter()
            .filter(|w| w.campaign == h.campaign.name)
            .collect(),
    ))
}

/// The webhook routes, registered with their descriptions.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    Arc<Shared>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(webhooks_list, webhooks_add))
        .routes(routes!(webhooks_remove))
}
