//! The HTTP API (axum): JSON in and out, bearer tokens with roles. The
//! one HTTP surface of the service: [`router`] mounts the agents' routes
//! ([`agents`]) and the supervisors' ([`web`]: dashboard, live board,
//! reports, metrics, the OpenAPI document).
//!
//! This module holds what every route shares: the error type (always a
//! JSON body with a status, never a panic) and the [`auth::Authenticated`]
//! extractor. The routes live in submodules next to it.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod controls;
pub mod desktop;
pub mod leads;
pub mod softphone;
pub mod wallboard;
pub mod web;
pub mod webhooks;

use std::sync::{Arc, OnceLock};

use utoipa::OpenApi;

/// The document's frame: what the handlers' descriptions go into.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "dialler HTTP API",
        description = "The predictive dialler's HTTP API, served by `dialler run`. Every route but `/`, `/metrics` and `/api/openapi.json` needs `Authorization: Bearer TOKEN` (tokens from `dialler token create`); event streams also take `?token=`. Errors are JSON `{\"error\": ..., \"status\": ...}`."
    ),
    tags(
        (name = "web", description = "Dashboard, live board, reports, metrics."),
        (name = "service", description = "Agents, calls and dispositions.")
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
struct Frame;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `dialler token create`."))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI description of the whole HTTP API, made from the handlers'
/// own descriptions: a route exists only through the routers of
/// [`agents`] and [`web`], which register each handler with its
/// description, so the document cannot leave one out.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Frame::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let (_, agents) = agents::documented().split_for_parts();
    let (_, web) = web::documented::<web::WebState>().split_for_parts();
    doc.merge(agents);
    doc.merge(web);
    doc
}

/// [`openapi`] as JSON, made once.
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

/// A JSON body, or axum's rejection as the API's JSON error.
pub(crate) fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    match body {
        Ok(axum::Json(t)) => Ok(t),
        Err(e) => Err(ApiError::new(e.status(), e.body_text())),
    }
}

/// The running campaign `name`, or a 404.
pub(crate) fn campaign_handle<'a>(
    shared: &'a crate::service::Shared,
    name: &str,
) -> Result<&'a crate::service::CampaignHandle, ApiError> {
    shared
        .campaigns
        .get(name)
        .ok_or_else(|| ApiError::not_found("no such campaign runs here"))
}

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
    let audit_state = audit::AuditState {
        store: shared.store.clone(),
        clock: shared.clock.clone(),
    };
    agents::routes(shared)
        .merge(web::routes_until(closing).with_state(web_state))
        .layer(axum::middleware::from_fn_with_state(
            audit_state,
            audit::record,
        ))
}

/// Gives each request an id: `X-Request-Id` (the caller's, if it sent a
/// short one of letters, digits and dashes, else a new random one), on the
/// response and on every log line written while serving it.
pub(crate) async fn request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::HeaderValue;
    use rand::RngExt;
    use tracing::Instrument;
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string);
    let id = given.unwrap_or_else(|| format!("{:016x}", rand::rng().random::<u64>()));
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert("x-request-id", v);
    }
    if let Some(slot) = req.extensions().get::<audit::AuditSlot>() {
        slot.set_request_id(&id);
    }
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut r = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

/// Every response: not stored by browsers or proxies (API bodies carry
/// lead data and tokens' views), and not sniffed as another content type.
/// A header a route set itself (an event stream's `no-cache`) stays. An
/// error that did not come from a handler (axum's own plain-text
/// rejections, an unknown route, a wrong method) gets the JSON error shape
/// too, so every 4xx and 5xx reads the same.
pub(crate) async fn no_store(r: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut r = if (r.status().is_client_error() || r.status().is_server_error()) && !is_json {
        let status = r.status();
        let text = axum::body::to_bytes(r.into_body(), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let message = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            text
        };
        ApiError::new(status, message).into_response()
    } else {
        r
    };
    let h = r.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    r
}

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error: an HTTP status and a message, sent as
/// `{"error": {"code": "...", "message": "...", "field": "..."}, "status": N}`
/// (`field` when one field is at fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller; never secrets or lead data.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// The bearer-token error code the `WWW-Authenticate` header names
    /// (RFC 6750 3.1), if the error is about the token.
    pub bearer_error: Option<&'static str>,
}

/// What went wrong, in every error body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub struct ErrorDetail {
    /// A stable code for programs: `bad_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `conflict`, `payload_too_large`,
    /// `unprocessable`, `rate_limited`, `internal`, `unavailable`, ...
    code: String,
    /// What went wrong, for people.
    message: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The stable code of an error status.
fn error_code(status: StatusCode) -> String {
    match status.as_u16() {
        400 => "bad_request".into(),
        401 => "unauthorized".into(),
        403 => "forbidden".into(),
        404 => "not_found".into(),
        405 => "method_not_allowed".into(),
        409 => "conflict".into(),
        413 => "payload_too_large".into(),
        415 => "unsupported_media_type".into(),
        422 => "unprocessable".into(),
        429 => "rate_limited".into(),
        500 => "internal".into(),
        502 => "bad_gateway".into(),
        503 => "unavailable".into(),
        504 => "timeout".into(),
        n => format!("http_{n}"),
    }
}

/// The body of every error.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
    /// The HTTP status.
    status: u16,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            bearer_error: None,
        }
    }

    /// The same error, naming the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is malformed or a field is invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 401 for a token that was presented and is not valid (unknown,
    /// revoked, malformed): `error="invalid_token"` (RFC 6750 3.1).
    pub fn invalid_token(message: impl Into<String>) -> ApiError {
        ApiError {
            bearer_error: Some("invalid_token"),
            ..ApiError::unauthorized(message)
        }
    }

    /// 400 for a request that presents its token more than one way:
    /// `error="invalid_request"` (RFC 6750 2 and 3.1).
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError {
            bearer_error: Some("invalid_request"),
            ..ApiError::bad_request(message)
        }
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
            error: ErrorDetail {
                code: error_code(self.status),
                message: self.message,
                field: self.field,
            },
            status: self.status.as_u16(),
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED || self.bearer_error.is_some() {
            // A 401 names the scheme that would do (RFC 9110 15.5.2, RFC
            // 6750 3), and the token's fault when one was presented; a
            // request with no token gets no error code (RFC 6750 3.1).
            let value = match self.bearer_error {
                Some("invalid_token") => "Bearer realm=\"dialler\", error=\"invalid_token\"",
                Some("invalid_request") => "Bearer realm=\"dialler\", error=\"invalid_request\"",
                _ => "Bearer realm=\"dialler\"",
            };
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(value),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // Every limit here is per minute: a minute is always enough.
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("60"),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_says_when_to_come_back() {
        let r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
        assert_eq!(
            r.headers()
                .get(axum::http::header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"60"[..])
        );
        let r = ApiError::bad_request("no").into_response();
        assert!(r.headers().get(axum::http::header::RETRY_AFTER).is_none());
    }

    #[test]
    fn a_401_names_the_bearer_scheme() {
        let r = ApiError::unauthorized("no token").into_response();
        assert_eq!(
            r.headers()
                .get(axum::http::header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer realm=\"dialler\""[..])
        );
        let r = ApiError::forbidden("no").into_response();
        assert!(
            r.headers()
                .get(axum::http::header::WWW_AUTHENTICATE)
                .is_none()
        );
        let r = ApiError::invalid_token("revoked").into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()
                .get(axum::http::header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer realm=\"dialler\", error=\"invalid_token\""[..])
        );
        let r = ApiError::invalid_request("two ways").into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.headers()
                .get(axum::http::header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer realm=\"dialler\", error=\"invalid_request\""[..])
        );
    }

    /// Every route is registered through `routes!` with its description:
    /// a plain `.route(...)` anywhere in the API would serve a path the
    /// document does not show.
    #[test]
    fn no_route_escapes_the_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(
                    !text.contains(concat!(".route", "(\"")),
                    "{} registers a route outside the documented routers",
                    path.display()
                );
            }
        }
        assert!(files >= 8);
    }

    #[test]
    fn the_document_has_every_handler_and_resolves_its_refs() {
        let doc: serde_json::Value =
            serde_json::from_str(openapi_json()).unwrap_or(serde_json::Value::Null);
        let paths = doc["paths"].as_object().map(|p| p.len()).unwrap_or(0);
        let registered = [
            "agents.rs",
            "web.rs",
            "audit.rs",
            "controls.rs",
            "desktop.rs",
            "leads.rs",
            "softphone.rs",
            "wallboard.rs",
            "webhooks.rs",
        ]
        .iter()
        .map(|f| {
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src/api")
                    .join(f),
            )
            .unwrap_or_default()
            .matches(".routes(routes!(")
            .count()
        })
        .sum::<usize>();
        assert!(registered > 0);
        // One path per registered handler (each has its own path here).
        assert_eq!(paths, registered, "{}", openapi_json());
        for part in openapi_json().split("\"$ref\": \"#/").skip(1) {
            let target = part.split('"').next().unwrap_or("");
            let mut node = &doc;
            for seg in target.split('/') {
                node = &node[seg];
            }
            assert!(!node.is_null(), "dangling $ref #/{target}");
        }
    }
}
