//! The agent desktop: the page at `/agent` (HTML, CSS, JS and its strings
//! embedded from `src/api/web/`, no build step) and `GET /api/me`, which
//! tells a page who its token is and, for an agent, the session to resume.
//! Everything else the page does goes through the agents' API and the
//! event stream, as any other client would.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::{ApiError, ErrorBody};
use crate::service::{SessionView, Shared};
use crate::store::Store;

/// The desktop page, with its stylesheet, strings and script inlined.
const DESKTOP: &str = concat!(
    include_str!("web/agent.head.html"),
    "<style>\n",
    include_str!("web/agent.css"),
    "</style>\n",
    include_str!("web/agent.body.html"),
    "<script>\n",
    include_str!("web/agent.strings.js"),
    include_str!("web/agent.js"),
    "</script>\n</body>\n</html>\n",
);

/// Who a token is.
#[derive(Serialize, ToSchema)]
#[schema(as = Me)]
struct MeOut {
    /// `agent`, `supervisor` or `admin`.
    #[schema(value_type = String)]
    role: &'static str,
    /// The agent, for an agent token.
    agent: Option<String>,
    /// The agent's session on this node, if logged in.
    session: Option<SessionView>,
    /// The service's time, ms since the epoch (the page's timers and
    /// callback times follow the service's clock, not the browser's).
    now: i64,
}

#[utoipa::path(get, path = "/agent", tag = "web",
    summary = "Agent desktop page",
    description = "HTML, CSS and JS embedded in the binary: sign in with the agent's token, the state bar, the screen pop with the script, disposition and callbacks, and the browser softphone.",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
    security(()))]
async fn desktop_page() -> Response {
    super::web::page(
        DESKTOP,
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
         frame-ancestors 'none'",
        // The softphone needs the microphone, on this page only.
        "microphone=(self), camera=()",
    )
}

#[utoipa::path(get, path = "/api/me", tag = "service",
    summary = "Who this token is",
    description = "The token's role and agent, and the agent's session on this node if logged in (a page reloaded mid-session picks it up from here). Any token.",
    responses((status = 200, description = "The token's principal.", body = MeOut),
        (status = 401, description = "No valid token.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn me(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
) -> Result<Json<MeOut>, ApiError> {
    let p = &auth.0;
    let session = match &p.agent_id {
        Some(a) => shared
            .sessions
            .lock()
            .map_err(ApiError::internal)?
            .get(a)
            .cloned(),
        None => None,
    };
    Ok(Json(MeOut {
        role: p.role.as_str(),
        agent: p.agent_id.clone(),
        session,
        now: shared.clock.now().ms(),
    }))
}

/// The desktop's routes, registered with their descriptions.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    Arc<Shared>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(desktop_page))
        .routes(routes!(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string the script looks up is defined in the English table
    /// (and the Hindi table, where present, has no key English lacks).
    #[test]
    fn the_page_uses_only_strings_it_defines() {
        let js = include_str!("web/agent.js");
        let strings = include_str!("web/agent.strings.js");
        let body = include_str!("web/agent.body.html");
        let en = strings
            .split("en: {")
            .nth(1)
            .and_then(|s| s.split("\n  },").next())
            .unwrap_or("");
        let defined = |key: &str| en.contains(&format!("\n    {key}:"));
        let mut used = Vec::new();
        for (at, _) in js.match_indices("t('") {
            // t( itself, not createElement( or alert(.
            if js[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            {
                continue;
            }
            let part = &js[at + 3..];
            let mut it = part.splitn(2, '\'');
            let key = it.next().unwrap_or("");
            // A key built at run time ('state_' + s) is checked below.
            if it.next().is_some_and(|rest| rest.starts_with([')', ','])) {
                used.push(key);
            }
        }
        for s in [
            "paused",
            "ready",
            "on_call",
            "wrapup",
            "logging_in",
            "logged_out",
        ] {
            assert!(defined(&format!("state_{s}")), "state_{s}");
        }
        for part in body.split("data-t=\"").skip(1) {
            used.push(part.split('"').next().unwrap_or(""));
        }
        assert!(used.len() > 20, "{used:?}");
        for key in used {
            assert!(defined(key), "string {key:?} is not in the English table");
        }
    }

    /// Each other language's table has exactly English's keys.
    #[test]
    fn every_language_has_every_string() {
        let strings = include_str!("web/agent.strings.js");
        let keys = |table: &str| -> Vec<String> {
            let body = strings
                .split(&format!("\n  {table}: {{"))
                .nth(1)
                .and_then(|s| s.split("\n  },").next())
                .unwrap_or("");
            let mut k: Vec<String> = body
                .lines()
                .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
                .collect();
            k.sort();
            k
        };
        let en = keys("en");
        assert!(en.len() > 50, "{en:?}");
        assert_eq!(keys("hi"), en, "the Hindi table's keys");
    }

    #[test]
    fn the_page_is_complete() {
        assert!(DESKTOP.starts_with("<!doctype html>"));
        assert!(DESKTOP.trim_end().ends_with("</html>"));
        assert!(DESKTOP.contains("lang=\"en\""));
    }
}
