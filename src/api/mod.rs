//! The HTTP API (axum): JSON in and out, bearer tokens with roles. The
//! one HTTP surface of the service: [`router`] mounts the agents' routes
//! ([`agents`]) and the supervisors' ([`web`]: dashboard, live board,
//! reports, metrics, the OpenAPI document).
//!
//! This module holds what every route shares: the error type (always a
//! JSON body with a status, never a panic) and the [`auth::Authenticated`]
//! extractor. The routes live in submodules next to it.

pub mod agents;
pub mod auth;
pub mod web;

use std::sync::Arc;

/// The whole HTTP API over a running service's shared state. Send `true`
/// on `closing` before a graceful shutdown: it ends the event streams.
pub fn router(
    shared: Arc<crate::service::Shared>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> axum::Router {
    let web_state = web::WebState {
        store: shared.store.clone(),
        board: shared.board.clone(),
        campaigns: web::Campaigns::new(
            shared
                .campaigns
                .values()
                .map(|h| h.campaign.as_ref().clone())
                .collect(),
        ),
        clock: shared.clock.clone(),
    };
    agents::routes(shared).merge(web::routes_until(closing).with_state(web_state))
}

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error: an HTTP status and a message, sent as
/// `{"error": "...", "status": N}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller; never secrets or lead data.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or a field is invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: a valid token whose role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: no such agent, call or campaign.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500: the fault is ours; the detail goes to the log, not the caller.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error serving a request");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            status: self.status.as_u16(),
        };
        (self.status, Json(body)).into_response()
    }
}
