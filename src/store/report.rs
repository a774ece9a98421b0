//! The integer aggregates campaign reports are built from. Every figure is
//! a count, milliseconds or minor currency units summed in SQL both
//! databases evaluate alike, so a report is the same on SQLite and
//! PostgreSQL; `crate::report` derives rates and money from them.

use sqlx::Row;

use super::{AgentState, Backend, Store, StoreError};

/// Connected calls of one agent (or of no recorded agent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentCalls {
    /// Agent who took the calls; `None` when the attempt names none.
    pub agent_id: Option<String>,
    /// Calls bridged to the agent that have ended.
    pub calls: i64,
    /// Talk time, `ended_at - connected_at` summed, ms.
    pub talk_ms: i64,
    /// Wrap-up recorded with those calls' dispositions, ms.
    pub wrapup_ms: i64,
}

/// Dispositions one agent recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentDispositions {
    /// Agent.
    pub agent_id: String,
    /// Dispositions recorded.
    pub dispositions: i64,
    /// Of which contacts.
    pub contacts: i64,
    /// Of which conversions.
    pub conversions: i64,
    /// Revenue, minor units.
    pub revenue_minor: i64,
}

/// Time one agent spent in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStateTime {
    /// Agent.
    pub agent_id: String,
    /// State.
    pub state: AgentState,
    /// Time in the range, ms.
    pub ms: i64,
}

/// Counts in one bucket of time (an hour, or a compliance window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketCounts {
    /// Start of the bucket, ms since epoch.
    pub start_ms: i64,
    /// Attempts started (hours only; 0 for windows).
    pub attempts: i64,
    /// Human answers in the ledger.
    pub human_answers: i64,
    /// Abandons in the ledger.
    pub abandons: i64,
    /// Conversion dispositions (hours only; 0 for windows).
    pub conversions: i64,
}

/// Everything a campaign report needs from the store, for `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportData {
    /// Attempts started in the range.
    pub attempts: i64,
    /// Billed trunk minutes of those attempts: answered to ended, rounded up
    /// per started minute, per call.
    pub billed_minutes: i64,
    /// Human answers in the ledger.
    pub human_answers: i64,
    /// Abandons in the ledger.
    pub abandons: i64,
    /// Connected calls of attempts started in the range, per agent.
    pub calls: Vec<AgentCalls>,
    /// Dispositions recorded in the range, per agent.
    pub dispositions: Vec<AgentDispositions>,
    /// Agent state time, intervals clipped to the range (open ones end at
    /// `to`).
    pub states: Vec<AgentStateTime>,
    /// Per UTC hour with any activity, oldest first.
    pub hours: Vec<BucketCounts>,
    /// Per compliance window with any ledger row, windows of the given
    /// length aligned to `from`, oldest first.
    pub windows: Vec<BucketCounts>,
}

impl Store {
    /// Reads the aggregates of campaign `campaign_id` over `[from, to)` ms,
    /// with abandonment counted per window of `window_ms` from `from`.
    ///
    /// What falls in the range: attempts by `started_at`, ledger rows by
    /// `at`, dispositions by `created_at`, connected calls by their
    /// attempt's `started_at`; agent state intervals are clipped to it.
    pub async fn report_data(
        &self,
        campaign_id: i64,
        from: i64,
        to: i64,
        window_ms: i64,
        now: i64,
    ) -> Result<ReportData, StoreError> {
        // An interval still open counts up to now, not to a `to` in the
        // future.
        let open_end = to.min(now).max(from);
        const ATTEMPTS: &str = "SELECT COUNT(*),
                CAST(COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND ended_at > answered_at
                    THEN (ended_at - answered_at + 59999) / 60000 ELSE 0 END), 0) AS BIGINT)
             FROM call_attempts WHERE campaign_id = $1 AND started_at >= $2 AND started_at < $3";
        const LEDGER: &str = "SELECT
                CAST(COALESCE(SUM(CASE WHEN kind = 'human_answer' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN kind = 'abandon' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM abandon_ledger WHERE campaign_id = $1 AND at >= $2 AND at < $3";
        // Wrap-up is summed per attempt first so a call with two
        // dispositions does not count its talk twice.
        const CALLS: &str = "SELECT a.agent_id, COUNT(*),
                CAST(COALESCE(SUM(a.ended_at - a.connected_at), 0) AS BIGINT),
                CAST(COALESCE(SUM(d.w), 0) AS BIGINT)
             FROM call_attempts a
             LEFT JOIN (SELECT attempt_id, CAST(SUM(COALESCE(wrapup_ms, 0)) AS BIGINT) AS w
                        FROM dispositions WHERE campaign_id = $1 GROUP BY attempt_id) d
                 ON d.attempt_id = a.id
             WHERE a.campaign_id = $1 AND a.started_at >= $2 AND a.started_at < $3
                 AND a.connected_at IS NOT NULL AND a.ended_at IS NOT NULL
             GROUP BY a.agent_id ORDER BY a.agent_id";
        const DISPOSITIONS: &str = "SELECT agent_id, COUNT(*),
                CAST(COALESCE(SUM(CASE WHEN contact THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN conversion THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT)
             FROM dispositions WHERE campaign_id = $1 AND created_at >= $2 AND created_at < $3
             GROUP BY agent_id ORDER BY agent_id";
        const STATES: &str = "SELECT agent_id, state, CAST(COALESCE(SUM(
                  (CASE WHEN COALESCE(ended_at, $4) < $3 THEN COALESCE(ended_at, $4) ELSE $3 END)
                - (CASE WHEN started_at > $2 THEN started_at ELSE $2 END)), 0) AS BIGINT)
             FROM agent_states
             WHERE campaign_id = $1 AND started_at < $3
                 AND ((ended_at IS NULL AND started_at < $4) OR ended_at > $2)
             GROUP BY agent_id, state ORDER BY agent_id, state";
        const HOUR_ATTEMPTS: &str = "SELECT (started_at / 3600000) * 3600000, COUNT(*)
             FROM call_attempts WHERE campaign_id = $1 AND started_at >= $2 AND started_at < $3
             GROUP BY 1 ORDER BY 1";
        const HOUR_LEDGER: &str = "SELECT (at / 3600000) * 3600000,
                CAST(COALESCE(SUM(CASE WHEN kind = 'human_answer' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN kind = 'abandon' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM abandon_ledger WHERE campaign_id = $1 AND at >= $2 AND at < $3
             GROUP BY 1 ORDER BY 1";
        const HOUR_CONVERSIONS: &str = "SELECT (created_at / 3600000) * 3600000, COUNT(*)
             FROM dispositions WHERE campaign_id = $1 AND created_at >= $2 AND created_at < $3
                 AND conversion
             GROUP BY 1 ORDER BY 1";
        const WINDOWS: &str = "SELECT (at - $2) / $4,
                CAST(COALESCE(SUM(CASE WHEN kind = 'human_answer' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN kind = 'abandon' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM abandon_ledger WHERE campaign_id = $1 AND at >= $2 AND at < $3
             GROUP BY 1 ORDER BY 1";
        let window_ms = window_ms.max(1);
        let mut data = ReportData::default();
        let hour_attempts: Vec<(i64, i64)>;
        let hour_ledger: Vec<(i64, i64, i64)>;
        let hour_conversions: Vec<(i64, i64)>;
        let windows: Vec<(i64, i64, i64)>;
        with_pool!(self, pool => {
            // One read transaction: on SQLite one snapshot for every query.
            let mut tx = pool.begin().await?;
            let (attempts, billed): (i64, i64) = sqlx::query_as(ATTEMPTS)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_one(&mut *tx).await?;
            data.attempts = attempts;
            data.billed_minutes = billed;
            let (human, abandons): (i64, i64) = sqlx::query_as(LEDGER)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_one(&mut *tx).await?;
            data.human_answers = human;
            data.abandons = abandons;
            let calls: Vec<(Option<String>, i64, i64, i64)> = sqlx::query_as(CALLS)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_all(&mut *tx).await?;
            data.calls = calls
                .into_iter()
                .map(|(agent_id, calls, talk_ms, wrapup_ms)| AgentCalls { agent_id, calls, talk_ms, wrapup_ms })
                .collect();
            let dispositions: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(DISPOSITIONS)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_all(&mut *tx).await?;
            data.dispositions = dispositions
                .into_iter()
                .map(|(agent_id, dispositions, contacts, conversions, revenue_minor)| AgentDispositions {
                    agent_id, dispositions, contacts, conversions, revenue_minor,
                })
                .collect();
            for r in sqlx::query(STATES).bind(campaign_id).bind(from).bind(to).bind(open_end).fetch_all(&mut *tx).await? {
                let state: String = r.try_get(1)?;
                data.states.push(AgentStateTime {
                    agent_id: r.try_get(0)?,
                    state: AgentState::parse(&state)
                        .ok_or(StoreError::Corrupt { what: "agent state", value: state })?,
                    ms: r.try_get(2)?,
                });
            }
            hour_attempts = sqlx::query_as(HOUR_ATTEMPTS)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_all(&mut *tx).await?;
            hour_ledger = sqlx::query_as(HOUR_LEDGER)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_all(&mut *tx).await?;
            hour_conversions = sqlx::query_as(HOUR_CONVERSIONS)
                .bind(campaign_id).bind(from).bind(to)
                .fetch_all(&mut *tx).await?;
            windows = sqlx::query_as(WINDOWS)
                .bind(campaign_id).bind(from).bind(to).bind(window_ms)
                .fetch_all(&mut *tx).await?;
            tx.commit().await?;
        });
        let mut hours = std::collections::BTreeMap::<i64, BucketCounts>::new();
        for (h, n) in hour_attempts {
            hours_entry(&mut hours, h).attempts = n;
        }
        for (h, human, abandons) in hour_ledger {
            let b = hours_entry(&mut hours, h);
            b.human_answers = human;
            b.abandons = abandons;
        }
        for (h, n) in hour_conversions {
            hours_entry(&mut hours, h).conversions = n;
        }
        data.hours = hours.into_values().collect();
        data.windows = windows
            .into_iter()
            .map(|(i, human_answers, abandons)| BucketCounts {
                start_ms: from.saturating_add(i.saturating_mul(window_ms)),
                human_answers,
                abandons,
                ..BucketCounts::default()
            })
            .collect();
        Ok(data)
    }
}

fn hours_entry(
    hours: &mut std::collections::BTreeMap<i64, BucketCounts>,
    start_ms: i64,
) -> &mut BucketCounts {
    hours.entry(start_ms).or_insert(BucketCounts {
        start_ms,
        ..BucketCounts::default()
    })
}
