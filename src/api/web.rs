//! The supervisor's web surface: the live dashboard page, the live board
//! as JSON and as a server-sent event stream, campaign reports,
//! Prometheus metrics and the OpenAPI description.
//!
//! Owns these routes and nothing else: it reads the [`LiveBoard`] the
//! service publishes on, the [`Store`] (tokens and reports) and the loaded
//! [`Campaigns`], and never writes any of them. The service mounts
//! [`routes`] next to its own.
//!
//! The page, its CSS and JS and the OpenAPI document are files under
//! `src/api/web/` embedded at build time: no build step, no CDN.
//!
//! `/metrics` and `/api/openapi.json` need no token: Prometheus scrapers
//! usually send none, and neither says anything about leads or agents
//! beyond counts. The service listens on loopback by default; expose it
//! further only behind a proxy that guards `/metrics` if counts matter.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use super::auth::Authenticated;
use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::live::{Board, CampaignLive, LiveBoard};
use crate::report::{self, ReportError};
use crate::store::{self, Store};

/// The dashboard page, with its stylesheet and script inlined.
const DASHBOARD: &str = concat!(
    include_str!("web/dashboard.head.html"),
    "<style>\n",
    include_str!("web/dashboard.css"),
    "</style>\n",
    include_str!("web/dashboard.body.html"),
    "<script>\n",
    include_str!("web/dashboard.js"),
    "</script>\n</body>\n</html>\n",
);

/// The shortest gap between two events of the live stream: at most two a
/// second, however often the service publishes.
pub const STREAM_MIN_GAP: Duration = Duration::from_millis(500);

/// The campaigns the service runs, as loaded from the campaign folder.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Campaigns(
    /// The campaigns, in the order they were loaded.
    pub Arc<Vec<Campaign>>,
);

impl Campaigns {
    /// Wraps the loaded campaigns.
    pub fn new(campaigns: Vec<Campaign>) -> Campaigns {
        Campaigns(Arc::new(campaigns))
    }

    /// The campaign called `name`.
    pub fn find(&self, name: &str) -> Option<&Campaign> {
        self.0.iter().find(|c| c.name == name)
    }
}

/// A ready-made state for [`routes`] alone (tests, or a service with no
/// state of its own to add): the three things the routes read.
#[derive(Clone)]
pub struct WebState {
    /// Tokens and reports.
    pub store: Store,
    /// Live figures.
    pub board: LiveBoard,
    /// Loaded campaigns.
    pub campaigns: Campaigns,
    /// The service's clock (the board's time and a report's default end).
    pub clock: Clock,
}

impl FromRef<WebState> for Clock {
    fn from_ref(s: &WebState) -> Clock {
        s.clock.clone()
    }
}

impl FromRef<WebState> for Store {
    fn from_ref(s: &WebState) -> Store {
        s.store.clone()
    }
}

impl FromRef<WebState> for LiveBoard {
    fn from_ref(s: &WebState) -> LiveBoard {
        s.board.clone()
    }
}

impl FromRef<WebState> for Campaigns {
    fn from_ref(s: &WebState) -> Campaigns {
        s.campaigns.clone()
    }
}

/// The routes: `GET /` (dashboard), `GET /api/live`, `GET /api/live/stream`,
/// `GET /api/reports/{campaign}`, `GET /metrics` and
/// `GET /api/openapi.json`. Merge them into the service's router.
///
/// Event streams opened here end only when their client goes; a server
/// that shuts down gracefully should use [`routes_until`] instead.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    LiveBoard: FromRef<S>,
    Campaigns: FromRef<S>,
    Clock: FromRef<S>,
{
    build(None)
}

/// [`routes`], whose event streams end once `closing` turns `true` (or its
/// sender is dropped), so that they do not hold up a graceful shutdown:
/// send `true` before awaiting the server's shutdown.
pub fn routes_until<S>(closing: watch::Receiver<bool>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    LiveBoard: FromRef<S>,
    Campaigns: FromRef<S>,
    Clock: FromRef<S>,
{
    build(Some(closing))
}

fn build<S>(closing: Option<watch::Receiver<bool>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    LiveBoard: FromRef<S>,
    Campaigns: FromRef<S>,
    Clock: FromRef<S>,
{
    let (router, _) = documented().split_for_parts();
    router
        .layer(axum::Extension(Closing(closing)))
        .layer(axum::middleware::map_response(super::no_store))
        .layer(axum::middleware::from_fn(super::request_id))
}

/// When the service closes the event streams (see [`routes_until`]).
#[derive(Clone)]
struct Closing(Option<watch::Receiver<bool>>);

/// The supervisors' routes, each registered with its OpenAPI description
/// (the document at `/api/openapi.json` is made from these).
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    LiveBoard: FromRef<S>,
    Campaigns: FromRef<S>,
    Clock: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(dashboard))
        .routes(routes!(live))
        .routes(routes!(live_stream))
        .routes(routes!(campaign_report))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[utoipa::path(get, path = "/", tag = "web",
    summary = "Live dashboard page",
    description = "HTML, CSS and JS embedded in the binary. The page asks for a supervisor token once (or takes `?token=`).",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
    security(()))]
async fn dashboard() -> Response {
    page(
        DASHBOARD,
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        "camera=(), microphone=()",
    )
}

/// An embedded page with its content security and permissions policies,
/// never cached, and never in a Referer (pages may be opened with
/// `?token=`).
pub(crate) fn page(html: &'static str, csp: &'static str, permissions: &'static str) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (
                header::HeaderName::from_static("permissions-policy"),
                permissions,
            ),
        ],
        Html(html),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "web",
    summary = "This document",
    description = "The OpenAPI description of the whole HTTP API, made from the handlers.",
    responses((status = 200, description = "The document.", content_type = "application/json", body = Object)),
    security(()))]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json(),
    )
        .into_response()
}

/// One campaign on the wire: the published figures and the rates derived
/// from them.
#[derive(Debug, Serialize)]
struct LiveView<'a> {
    #[serde(flatten)]
    live: &'a CampaignLive,
    /// Contacts per attempt.
    contact_rate: f64,
    /// Conversions per contact.
    conversion_rate: f64,
}

#[derive(Debug, Serialize)]
struct BoardView<'a> {
    /// When this view was made, ms since the epoch.
    now_ms: i64,
    campaigns: BTreeMap<&'a str, LiveView<'a>>,
}

fn board_view<'a>(board: &'a Board, clock: &Clock) -> BoardView<'a> {
    BoardView {
        now_ms: clock.now().ms(),
        campaigns: board
            .iter()
            .map(|(name, live)| {
                (
                    name.as_str(),
                    LiveView {
                        live,
                        contact_rate: live.contact_rate(),
                        conversion_rate: live.conversion_rate(),
                    },
                )
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/live", tag = "web",
    summary = "Live board",
    description = "Every running campaign's live figures, with contact and conversion rates. Supervisor or admin.",
    responses((status = 200, description = "The board.", body = Object),
        (status = 401, description = "No valid token.", body = super::ErrorBody),
        (status = 403, description = "Not a supervisor or admin token.", body = super::ErrorBody)),
    security(("bearerAuth" = [])))]
async fn live(
    auth: Authenticated,
    State(board): State<LiveBoard>,
    State(clock): State<Clock>,
) -> Result<Response, ApiError> {
    auth.require_supervisor()?;
    let snapshot = board.snapshot();
    Ok(Json(board_view(&snapshot, &clock)).into_response())
}

#[utoipa::path(get, path = "/api/live/stream", tag = "web",
    summary = "Live board stream (SSE)",
    description = "Server-sent `board` events: the board at once, then on change, at most two a second, with keep-alives. Supervisor or admin; takes `?token=` (EventSource).",
    responses((status = 200, description = "The stream.", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid token.", body = super::ErrorBody),
        (status = 403, description = "Not a supervisor or admin token.", body = super::ErrorBody)),
    security(("bearerAuth" = [])))]
async fn live_stream(
    auth: Authenticated,
    State(board): State<LiveBoard>,
    State(clock): State<Clock>,
    State(store): State<Store>,
    closing: Option<axum::Extension<Closing>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    auth.require_supervisor()?;
    let closing = closing.and_then(|c| c.0.0);
    let events = board_events(board.subscribe(), clock, closing);
    let events = super::auth::while_token_active(events, store, auth.0.token_id);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Resolves once `closing` is `true` or its sender is gone; never without
/// one.
async fn closed(closing: &mut Option<watch::Receiver<bool>>) {
    match closing {
        Some(c) => {
            let _ = c.wait_for(|v| *v).await;
        }
        None => std::future::pending().await,
    }
}

/// The board now, then on every change, at most one event per
/// [`STREAM_MIN_GAP`]; changes in between fold into the next event. Ends
/// when `closing` says so or the service drops the board.
fn board_events(
    rx: watch::Receiver<Board>,
    clock: Clock,
    closing: Option<watch::Receiver<bool>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(
        (rx, closing, None::<tokio::time::Instant>, clock),
        |(mut rx, mut closing, last, clock)| async move {
            if closing.as_ref().is_some_and(|c| *c.borrow()) {
                return None;
            }
            if let Some(last) = last {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    () = closed(&mut closing) => return None,
                }
                tokio::select! {
                    () = tokio::time::sleep_until(last + STREAM_MIN_GAP) => {}
                    () = closed(&mut closing) => return None,
                }
            }
            let event = {
                let board = rx.borrow_and_update();
                match Event::default()
                    .event("board")
                    .json_data(board_view(&board, &clock))
                {
                    Ok(e) => e,
                    // Serialising plain numbers and strings cannot fail;
                    // if it ever did, say so on the stream rather than end it.
                    Err(_) => Event::default()
                        .event("error")
                        .data("could not encode the board"),
                }
            };
            Some((
                Ok(event),
                (rx, closing, Some(tokio::time::Instant::now()), clock),
            ))
        },
    )
}

#[utoipa::path(get, path = "/metrics", tag = "web",
    summary = "Prometheus metrics",
    description = "OpenMetrics text: live figures per campaign, SIP and store latencies. No token.",
    responses((status = 200, description = "The metrics.", content_type = "application/openmetrics-text", body = String)),
    security(()))]
async fn metrics(State(board): State<LiveBoard>) -> Result<Response, ApiError> {
    let text = crate::metrics::render(&board.snapshot()).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// `?from=&to=` of a report: RFC 3339 times.
#[derive(Debug, Deserialize)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    // An unescaped `+05:30` in a query string arrives as ` 05:30`.
    DateTime::parse_from_rfc3339(text)
        .or_else(|e| match text.rsplit_once(' ') {
            Some((t, offset)) => DateTime::parse_from_rfc3339(&format!("{t}+{offset}")),
            None => Err(e),
        })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name} is not an RFC 3339 time such as 2026-12-01T10:00:00Z"
            ))
        })
}

#[utoipa::path(get, path = "/api/reports/{campaign}", tag = "web",
    summary = "Campaign report",
    description = "The report of `dialler report --json` over `[from, to)` (RFC 3339; default all time up to now). Supervisor or admin.",
    params(("campaign" = String, Path, description = "Campaign name."),
        ("from" = Option<String>, Query, description = "Start, RFC 3339."),
        ("to" = Option<String>, Query, description = "End (excluded), RFC 3339.")),
    responses((status = 200, description = "The report.", body = Object),
        (status = 400, description = "Bad times.", body = super::ErrorBody),
        (status = 401, description = "No valid token.", body = super::ErrorBody),
        (status = 403, description = "Not a supervisor or admin token.", body = super::ErrorBody),
        (status = 404, description = "No such campaign.", body = super::ErrorBody)),
    security(("bearerAuth" = [])))]
async fn campaign_report(
    auth: Authenticated,
    State(store): State<Store>,
    State(campaigns): State<Campaigns>,
    State(clock): State<Clock>,
    Path(name): Path<String>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require_supervisor()?;
    let Query(q) = query.map_err(|_| ApiError::bad_request("use ?from=TIME&to=TIME"))?;
    // Defaults as on the command line: from the beginning, up to now.
    let from = match q.from.as_deref() {
        Some(t) => store::millis(parse_time("from", t)?),
        None => 0,
    };
    let to = match q.to.as_deref() {
        Some(t) => store::millis(parse_time("to", t)?),
        None => clock.now().ms(),
    };
    let Some(campaign) = campaigns.find(&name) else {
        return Err(ApiError::not_found("no such campaign"));
    };
    let Some(id) = store
        .campaign_id(&campaign.name)
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(ApiError::not_found(
            "the campaign has nothing in the store yet: import leads first",
        ));
    };
    match report::report(&store, campaign, id, from, to, clock.now().ms()).await {
        Ok(r) => Ok(Json(r).into_response()),
        Err(ReportError::BadRange { .. }) => {
            Err(ApiError::bad_request("the range ends before it starts"))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_one_document_with_its_script() {
        assert!(DASHBOARD.starts_with("<!doctype html>"));
        assert!(DASHBOARD.contains("<script>"));
        assert!(DASHBOARD.trim_end().ends_with("</html>"));
    }

    #[test]
    fn times_are_rfc3339_with_a_lost_plus_forgiven() {
        let t = |s| parse_time("from", s).ok().map(|t| t.to_rfc3339());
        assert_eq!(
            t("2026-01-02T05:30:00+05:30").as_deref(),
            Some("2026-01-02T00:00:00+00:00")
        );
        assert_eq!(
            t("2026-01-02T05:30:00 05:30").as_deref(),
            Some("2026-01-02T00:00:00+00:00")
        );
        assert_eq!(t("2026-01-02"), None);
        assert_eq!(t("yesterday"), None);
        let e = parse_time("to", "x").expect_err("bad");
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.starts_with("to "));
    }

    #[test]
    fn the_openapi_document_is_json() {
        let v: serde_json::Value =
            serde_json::from_str(super::super::openapi_json()).expect("json");
        assert_eq!(v["openapi"].as_str().map(|s| &s[..2]), Some("3."));
    }
}
