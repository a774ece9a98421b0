//! Bearer-token authentication for API routes.
//!
//! Add [`Authenticated`] to a handler's arguments: it reads
//! `Authorization: Bearer TOKEN` (or, for `EventSource`, which cannot set
//! headers, a `token` query parameter), looks the token up by hash in the
//! store and yields the [`Principal`]; a missing, unknown or revoked token
//! is a 401 JSON error. Role checks that need the route's parameters
//! (an agent may only touch their own session) are the handler's, with
//! the helpers here.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::ApiError;
use super::audit::AuditSlot;
use crate::auth::{Principal, authenticate};
use crate::store::Store;

/// The caller, authenticated (and, under the audit middleware, the
/// request's audit slot).
#[derive(Clone)]
pub struct Authenticated(pub Principal, Option<AuditSlot>);

impl Authenticated {
    /// Adds `text` to this request's audit entry (never lead data or
    /// secrets).
    pub fn note(&self, text: impl Into<String>) {
        if let Some(slot) = &self.1 {
            slot.note(text.into());
        }
    }

    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        super::audit::actor_of(&self.0)
    }

    /// Where the request came from, as the audit log says it.
    pub fn origin(&self) -> String {
        self.1.as_ref().map(AuditSlot::origin).unwrap_or_default()
    }

    /// An audit entry for this request at `at` (who, from where, its id,
    /// status 200), for a handler that writes it with its change.
    pub fn audit_entry(&self, at: i64) -> crate::store::AuditEntry {
        crate::store::AuditEntry {
            at,
            actor: self.actor(),
            origin: self.origin(),
            status: Some(200),
            request_id: self
                .1
                .as_ref()
                .map(AuditSlot::request_id)
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// The handler wrote this request's audit entry itself (in the
    /// transaction of the change it made).
    pub fn recorded(&self) {
        if let Some(slot) = &self.1 {
            slot.mark_recorded();
        }
    }

    /// 403 unless the caller is a supervisor or an admin.
    pub fn require_supervisor(&self) -> Result<(), ApiError> {
        if self.0.can_supervise() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs a supervisor or admin token",
            ))
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.can_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an admin token"))
        }
    }

    /// 403 unless the caller is this agent, or a supervisor or admin.
    pub fn require_agent(&self, agent_id: &str) -> Result<(), ApiError> {
        if self.0.can_access_agent(agent_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "an agent token reaches only its own agent",
            ))
        }
    }
}

/// How often an open event stream checks that its token still holds: a
/// revoked token's streams end within this (and a store query's time).
pub const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest an event stream stays open: then it ends, and the browser's
/// EventSource reconnects (with `Last-Event-ID`), so every stream is
/// re-authenticated at least this often.
pub const STREAM_MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// `inner` while the token `token_id` is not revoked: it ends within
/// [`TOKEN_RECHECK`] of a revocation, or at once if the store cannot say
/// (fail closed), and after [`STREAM_MAX_LIFETIME`] in any case.
pub fn while_token_active<S>(
    inner: S,
    store: Store,
    token_id: i64,
) -> impl futures_util::Stream<Item = S::Item>
where
    S: futures_util::Stream + Send + 'static,
    S::Item: Send + 'static,
{
    use futures_util::StreamExt;
    let next_check = tokio::time::Instant::now() + TOKEN_RECHECK;
    let end = tokio::time::Instant::now() + STREAM_MAX_LIFETIME;
    futures_util::stream::unfold(
        (Box::pin(inner), store, next_check),
        move |(mut inner, store, mut next_check)| async move {
            loop {
                tokio::select! {
                    item = inner.next() => return item.map(|i| (i, (inner, store, next_check))),
                    () = tokio::time::sleep_until(end) => return None,
                    () = tokio::time::sleep_until(next_check) => {
                        if !matches!(store.token_active(token_id).await, Ok(true)) {
                            return None;
                        }
                        next_check = tokio::time::Instant::now() + TOKEN_RECHECK;
                    }
                }
            }
        },
    )
}

/// The routes that take a token in the query string: event streams, which
/// a browser's `EventSource` opens without headers. Everywhere else a token
/// in an address would end up in logs and histories.
pub const QUERY_TOKEN_PATHS: [&str; 2] = ["/api/events", "/api/live/stream"];

/// The token a request presents, from the header or (on the event-stream
/// routes only) the query string.
fn presented(parts: &Parts) -> Result<Option<String>, ApiError> {
    let query = parts.uri.query().unwrap_or("");
    let in_query = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string);
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        // One way only (RFC 6750 2): a token in the header and another in
        // the address is a malformed request, not a header that wins.
        if in_query.is_some() {
            return Err(ApiError::invalid_request(
                "a token both in the Authorization header and in the query string",
            ));
        }
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        // The scheme's name is case-insensitive (RFC 9110 11.1).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer TOKEN"))?;
        return Ok(Some(token.trim().to_string()));
    }
    let token = in_query;
    if token.is_some() && !QUERY_TOKEN_PATHS.contains(&parts.uri.path()) {
        return Err(ApiError::unauthorized(
            "a token in the query string is taken only by the event streams; use Authorization: Bearer TOKEN",
        ));
    }
    Ok(token)
}

impl<S> FromRequestParts<S> for Authenticated
where
    Store: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(token) = presented(parts)? else {
            return Err(ApiError::unauthorized("no bearer token"));
        };
        if token.is_empty() || token.len() > 200 {
            return Err(ApiError::invalid_token("unknown or revoked token"));
        }
        let store = Store::from_ref(state);
        match authenticate(&store, &token).await {
            Ok(Some(p)) => {
                let slot = parts.extensions.get::<AuditSlot>().cloned();
                if let Some(slot) = &slot {
                    slot.set_principal(&p);
                }
                Ok(Authenticated(p, slot))
            }
            Ok(None) => Err(ApiError::invalid_token("unknown or revoked token")),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}
