//! The supervisor wallboard's figures from the store: per agent, the calls
//! put through to them since a time, their average handle time (talk and
//! wrap-up) and conversions; per hour, attempts, human answers, abandons
//! and conversions.

use super::{Backend, Store, StoreError};

/// One agent's figures since a time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AgentFigures {
    /// The agent.
    pub agent_id: String,
    /// Calls put through to them.
    pub calls: i64,
    /// Average handle time (talk and wrap-up) of the ended ones, seconds.
    pub aht_s: Option<f64>,
    /// Conversions recorded on them.
    pub conversions: i64,
}

/// One hour's figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HourFigures {
    /// The hour's start, ms since the epoch (UTC hours).
    pub hour: i64,
    /// Dial attempts started.
    pub attempts: i64,
    /// Answered by a person.
    pub answers: i64,
    /// Abandoned.
    pub abandons: i64,
    /// Conversions.
    pub conversions: i64,
}

impl Store {
    /// Campaign `campaign_id`'s agents' figures for calls put through at
    /// or after `since` (ms), by agent.
    pub async fn agent_figures(
        &self,
        campaign_id: i64,
        since: i64,
    ) -> Result<Vec<AgentFigures>, StoreError> {
        const SQL: &str = "SELECT a.agent_id, COUNT(*),
                 CAST(AVG(a.ended_at - a.connected_at + COALESCE(d.wrapup_ms, 0)) AS DOUBLE PRECISION),
                 SUM(CASE WHEN d.conversion THEN 1 ELSE 0 END)
             FROM call_attempts a LEFT JOIN dispositions d ON d.attempt_id = a.id
             WHERE a.campaign_id = $1 AND a.connected_at >= $2 AND a.agent_id IS NOT NULL
             GROUP BY a.agent_id ORDER BY a.agent_id";
        let rows: Vec<(String, i64, Option<f64>, Option<i64>)> = with_pool!(self, pool => sqlx::query_as(SQL)
                .bind(campaign_id)
                .bind(since)
                .fetch_all(pool)
                .await?);
        Ok(rows
            .into_iter()
            .map(|(agent_id, calls, aht_ms, conversions)| AgentFigures {
                agent_id,
                calls,
                aht_s: aht_ms.map(|ms| ms / 1000.0),
                conversions: conversions.unwrap_or(0),
            })
            .collect())
    }

    /// Campaign `campaign_id`'s figures by UTC hour for attempts started
    /// at or after `since` (ms), oldest first; hours without an attempt
    /// are left out.
    pub async fn hourly_figures(
        &self,
        campaign_id: i64,
        since: i64,
    ) -> Result<Vec<HourFigures>, StoreError> {
        const SQL: &str = "SELECT a.started_at / 3600000, COUNT(*),
                 SUM(CASE WHEN a.answered_at IS NOT NULL AND COALESCE(a.outcome, '') <> 'machine'
                     THEN 1 ELSE 0 END),
                 SUM(CASE WHEN a.outcome = 'abandoned' THEN 1 ELSE 0 END),
                 SUM(CASE WHEN d.conversion THEN 1 ELSE 0 END)
             FROM call_attempts a LEFT JOIN dispositions d ON d.attempt_id = a.id
             WHERE a.campaign_id = $1 AND a.started_at >= $2
             GROUP BY a.started_at / 3600000 ORDER BY 1";
        type Row = (i64, i64, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(SQL)
                .bind(campaign_id)
                .bind(since)
                .fetch_all(pool)
                .await?);
        Ok(rows
            .into_iter()
            .map(
                |(h, attempts, answers, abandons, conversions)| HourFigures {
                    hour: h * 3_600_000,
                    attempts,
                    answers: answers.unwrap_or(0),
                    abandons: abandons.unwrap_or(0),
                    conversions: conversions.unwrap_or(0),
                },
            )
            .collect())
    }
}
