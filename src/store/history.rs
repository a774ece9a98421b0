//! A campaign's recent history, both ways: what a starting runner's
//! estimators learn from (the recent attempts' outcomes and ring times, the
//! recent handle times), and loading a history written elsewhere (the
//! demo's store starts with a shift simulated by the same engine).

use sqlx::{AssertSqlSafe, Row};

use super::{Backend, LedgerKind, Store, StoreError};
use crate::outcome::Outcome;

/// A finished attempt to load (see [`Store::insert_history`]): no lead,
/// no number.
#[derive(Debug, Clone, PartialEq)]
pub struct PastAttemptRow {
    /// Dialled, ms.
    pub started_at: i64,
    /// A person answered, ms.
    pub answered_at: Option<i64>,
    /// Bridged to an agent, ms.
    pub connected_at: Option<i64>,
    /// Ended, ms.
    pub ended_at: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// The agent's disposition of a connected call.
    pub disposition: Option<PastDispositionRow>,
}

/// A disposition to load with its attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct PastDispositionRow {
    /// The agent.
    pub agent_id: String,
    /// One of the campaign's disposition codes.
    pub code: String,
    /// Whether the code counts as a conversion.
    pub conversion: bool,
    /// Whether the code counts as a contact.
    pub contact: bool,
    /// Recorded (the end of wrap-up), ms.
    pub created_at: i64,
    /// Wrap-up, ms.
    pub wrapup_ms: i64,
}

/// What a runner's estimators start from (see [`Store::pacing_history`]),
/// oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PacingHistory {
    /// Per finished attempt: whether a person answered, and how long after
    /// dialling it resolved (answered, failed or gave up ringing), seconds.
    pub attempts: Vec<(bool, f64)>,
    /// Handle times (bridge to disposition), seconds.
    pub handles: Vec<f64>,
}

/// Ledger rows per INSERT statement (three values each).
const LEDGER_BATCH: usize = 300;

fn ledger_insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO abandon_ledger (campaign_id, kind, at) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        let b = i * 3;
        sql.push_str(&format!("(${}, ${}, ${})", b + 1, b + 2, b + 3));
    }
    sql
}

impl Store {
    /// Loads finished attempts (with their dispositions) and ledger events
    /// into campaign `campaign_id`, in one transaction. The attempts have
    /// no lead and no number: they are history for the pacer and the
    /// ledger, not calls anyone can be dialled again from.
    pub async fn insert_history(
        &self,
        campaign_id: i64,
        attempts: &[PastAttemptRow],
        ledger: &[(i64, LedgerKind)],
    ) -> Result<(), StoreError> {
        const ATTEMPT: &str = "INSERT INTO call_attempts (campaign_id, lead_id, attempt_no, phone,
                started_at, answered_at, connected_at, ended_at, outcome)
             VALUES ($1, NULL, 1, NULL, $2, $3, $4, $5, $6) RETURNING id";
        const DISPOSITION: &str = "INSERT INTO dispositions (attempt_id, campaign_id, agent_id,
                code, conversion, contact, dnc, wrapup_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8)";
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for a in attempts {
                let id: i64 = sqlx::query_scalar(ATTEMPT)
                    .bind(campaign_id)
                    .bind(a.started_at)
                    .bind(a.answered_at)
                    .bind(a.connected_at)
                    .bind(a.ended_at)
                    .bind(a.outcome.code())
                    .fetch_one(&mut *tx)
                    .await?;
                if let Some(d) = &a.disposition {
                    sqlx::query(DISPOSITION)
                        .bind(id)
                        .bind(campaign_id)
                        .bind(d.agent_id.as_str())
                        .bind(d.code.as_str())
                        .bind(d.conversion)
                        .bind(d.contact)
                        .bind(d.wrapup_ms)
                        .bind(d.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for chunk in ledger.chunks(LEDGER_BATCH) {
                let mut q = sqlx::query(AssertSqlSafe(ledger_insert_sql(chunk.len())));
                for (at, kind) in chunk {
                    q = q.bind(campaign_id).bind(kind.as_str()).bind(*at);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The campaign's last `limit` finished attempts before `before_ms`
    /// and the handle times of its last `limit` dispositions, oldest first:
    /// what a runner's estimators learn from when the service starts, so
    /// that a restart (or a new day) paces on the floor's own figures
    /// rather than the campaign's priors. Interrupted attempts say nothing
    /// about the customers and are left out.
    pub async fn pacing_history(
        &self,
        campaign_id: i64,
        before_ms: i64,
        limit: i64,
    ) -> Result<PacingHistory, StoreError> {
        const ATTEMPTS: &str = "SELECT started_at, answered_at, ended_at, outcome
             FROM call_attempts
             WHERE campaign_id = $1 AND ended_at IS NOT NULL AND ended_at <= $2
               AND outcome IS NOT NULL AND outcome <> 'interrupted'
             ORDER BY ended_at DESC, id DESC LIMIT $3";
        const HANDLES: &str = "SELECT d.created_at - a.connected_at
             FROM dispositions d JOIN call_attempts a ON a.id = d.attempt_id
             WHERE d.campaign_id = $1 AND d.created_at <= $2 AND a.connected_at IS NOT NULL
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3";
        let (rows, handles) = with_pool!(self, pool => {
            let rows = sqlx::query(ATTEMPTS)
                .bind(campaign_id)
                .bind(before_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>(0)?,
                        r.try_get::<Option<i64>, _>(1)?,
                        r.try_get::<i64, _>(2)?,
                        r.try_get::<String, _>(3)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let handles: Vec<i64> = sqlx::query_scalar(HANDLES)
                .bind(campaign_id)
                .bind(before_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            (rows, handles)
        });
        let mut h = PacingHistory::default();
        for (started, answered, ended, outcome) in rows.into_iter().rev() {
            let Some(outcome) = Outcome::from_code(&outcome) else {
                continue;
            };
            let human = matches!(outcome, Outcome::Connected | Outcome::Abandoned);
            let resolved = answered.unwrap_or(ended);
            h.attempts
                .push((human, (resolved - started).max(0) as f64 / 1000.0));
        }
        h.handles = handles
            .into_iter()
            .rev()
            .filter(|&ms| ms >= 0)
            .map(|ms| ms as f64 / 1000.0)
            .collect();
        Ok(h)
    }
}
