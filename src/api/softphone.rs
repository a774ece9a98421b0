//! The browser softphone's signalling: the agent desktop posts its WebRTC
//! offer and gets the answer; the login that follows (`softphone: true`)
//! takes the leg, as a login with a SIP phone calls it. The media side is
//! [`crate::media::webrtc`]'s.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::{ApiError, ErrorBody};
use crate::media::webrtc::SoftphoneError;
use crate::service::Shared;

/// Longest SDP offer accepted, bytes (a browser's audio-only offer is a
/// few kilobytes).
const OFFER_LIMIT: usize = 12 * 1024;

/// A browser's session description.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SessionDescription)]
struct Sdp {
    /// The SDP text (an offer in the request, the answer in the reply).
    sdp: String,
}

#[utoipa::path(post, path = "/api/agents/{id}/softphone", tag = "service",
    summary = "Answer the browser softphone's offer",
    description = "The agent's own token (or a supervisor's). The body is the browser's WebRTC offer (audio; PCMU or PCMA; ICE candidates gathered); the answer is an ICE-lite, DTLS-SRTP answer with one host candidate. Then log in with `softphone: true` within 20 s: the login waits for the browser to connect and bridges calls to it. A new offer replaces one not yet taken.",
    params(("id" = String, Path, description = "Agent id.")), request_body = Sdp,
    responses((status = 200, description = "The SDP answer.", body = Sdp),
        (status = 400, description = "Not an SDP offer we can answer (what is wrong is said).", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 503, description = "No media port free.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn softphone_offer(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Result<Json<Sdp>, JsonRejection>,
) -> Result<Json<Sdp>, ApiError> {
    if !crate::auth::valid_agent_id(&id) {
        return Err(ApiError::bad_request(crate::auth::AGENT_ID_RULE));
    }
    auth.require_agent(&id)?;
    let offer = super::json_body(body)?.sdp;
    if offer.len() > OFFER_LIMIT {
        return Err(
            ApiError::bad_request(format!("sdp: longer than {OFFER_LIMIT} bytes"))
                .with_field("sdp"),
        );
    }
    match shared.softphone_offer(&id, &offer) {
        Ok(answer) => Ok(Json(Sdp { sdp: answer })),
        Err(e @ (SoftphoneError::Offer(_) | SoftphoneError::NoG711)) => {
            Err(ApiError::bad_request(e.to_string()).with_field("sdp"))
        }
        Err(SoftphoneError::Io(e)) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("no media socket: {e}"),
        )),
        Err(e @ SoftphoneError::Address(_)) => Err(ApiError::internal(e)),
    }
}

/// The softphone route, registered with its description.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    crate::store::Store: FromRef<S>,
    Arc<Shared>: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(softphone_offer))
}
