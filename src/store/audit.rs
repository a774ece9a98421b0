//! The audit log: every state-changing act, from the API (each request
//! that changes state, whatever its outcome) and from the command line
//! (tokens, phones, deliberate removals): who, when, what, on what, from
//! where and how it ended. Append-only: the store only inserts, and the
//! database refuses an UPDATE or DELETE of a row (triggers in the
//! migration), so an entry cannot be rewritten through SQL either.

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// One audit log entry, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (ms since the epoch, the service clock).
    pub at: i64,
    /// Who: `token 12 (agent a1)` for an API token (never the token),
    /// a person's name or login for a command.
    pub actor: String,
    /// What kind of act, for example `agent.login` or `dnc.remove`.
    pub action: String,
    /// What it acted on: `agent a1`, `campaign uk`, a list and a masked
    /// number.
    pub subject: String,
    /// What else was said (a pause reason, a disposition code, why);
    /// never lead data or secrets.
    pub detail: String,
    /// From where: the caller's address for the API (and any
    /// `X-Forwarded-For` it sent, as given), `cli@host` for a command.
    pub origin: String,
    /// The HTTP status the act got (a refused one is logged too); none for
    /// a command.
    pub status: Option<i64>,
    /// The API request's `X-Request-Id`, to find its log lines.
    pub request_id: String,
}

impl AuditEntry {
    /// An entry for a command-line act by `actor` on this host.
    pub fn command(at: i64, actor: &str, action: &str, subject: String, detail: String) -> Self {
        AuditEntry {
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            subject,
            detail,
            origin: command_origin(),
            status: None,
            request_id: String::new(),
        }
    }
}

/// `cli@HOST` for acts done from this machine's command line.
pub fn command_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("cli@{host}")
}

/// One stored entry with its id (ids grow with each entry).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// The entry's id: page on with `after_id`.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which entries [`Store::audit_query`] returns. Text filters ignore
/// case; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after (ms).
    pub since: Option<i64>,
    /// Before (ms).
    pub until: Option<i64>,
    /// The actor contains this.
    pub actor: Option<String>,
    /// The action is this, or starts with it when it ends in `.`
    /// (`agent.` is every agent action).
    pub action: Option<String>,
    /// The subject contains this.
    pub subject: Option<String>,
    /// Only refused or failed acts (status 400 and above), or only the
    /// others.
    pub failed: Option<bool>,
    /// Entries after this id.
    pub after_id: Option<i64>,
    /// At most this many (oldest first).
    pub limit: i64,
}

/// `text` as a LIKE pattern matching itself literally (escape `\`).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// Appends to the audit log.
    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        with_pool!(self, pool => insert_audit!(pool, e).map(|_| ())?);
        Ok(())
    }

    /// The whole audit log, oldest first.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .audit_query(&AuditFilter {
                    after_id: after,
                    limit: 10_000,
                    ..AuditFilter::default()
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            after = Some(last.id);
            out.extend(page.into_iter().map(|r| r.entry));
        }
    }

    /// The entries `f` selects, oldest first (by id).
    pub async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        const SQL: &str =
            "SELECT id, at, actor, action, subject, detail, origin, status, request_id
             FROM audit_log
             WHERE ($1 IS NULL OR at >= $1)
               AND ($2 IS NULL OR at < $2)
               AND ($3 IS NULL OR lower(actor) LIKE $3 ESCAPE '\\')
               AND ($4 IS NULL OR lower(action) = $4 OR lower(action) LIKE $5 ESCAPE '\\')
               AND ($6 IS NULL OR lower(subject) LIKE $6 ESCAPE '\\')
               AND ($7 IS NULL OR ($7 = 1 AND status >= 400)
                    OR ($7 = 0 AND (status IS NULL OR status < 400)))
               AND ($8 IS NULL OR id > $8)
             ORDER BY id
             LIMIT $9";
        let contains = |s: &Option<String>| s.as_deref().map(|s| format!("%{}%", like_literal(s)));
        let action = f.action.as_deref().map(str::to_lowercase);
        // A trailing `.` asks for the family; otherwise the pattern is the
        // exact action again.
        let action_prefix = f.action.as_deref().map(|a| {
            if a.ends_with('.') {
                format!("{}%", like_literal(a))
            } else {
                like_literal(a)
            }
        });
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(f.since)
            .bind(f.until)
            .bind(contains(&f.actor))
            .bind(action.clone())
            .bind(action_prefix.clone())
            .bind(contains(&f.subject))
            .bind(f.failed.map(i64::from))
            .bind(f.after_id)
            .bind(f.limit.clamp(0, 100_000))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get(0)?,
                    entry: AuditEntry {
                        at: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        subject: r.try_get(4)?,
                        detail: r.try_get(5)?,
                        origin: r.try_get(6)?,
                        status: r.try_get(7)?,
                        request_id: r.try_get(8)?,
                    },
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(like_literal("a_b%c\\D"), "a\\_b\\%c\\\\d");
    }
}
