//! Campaign controls in the store: one row per campaign a supervisor has
//! changed, written with a version check so that two nodes (or two
//! supervisors) changing it at once cannot lose either change silently.

use sqlx::Row;

use super::{Backend, Store, StoreError};
use crate::controls::{Controls, RunState};

/// One of a campaign's lead lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LeadList {
    /// Its name.
    pub name: String,
    /// Leads in it.
    pub leads: i64,
    /// Leads in it still to dial (new, or waiting for a retry).
    pub to_dial: i64,
}

impl Store {
    /// Campaign `campaign_id`'s controls; the defaults (running, the
    /// file's settings, version 0) when nobody changed them. A state the
    /// store does not know is read as stopped (fail closed).
    pub async fn campaign_controls(&self, campaign_id: i64) -> Result<Controls, StoreError> {
        const SQL: &str =
            "SELECT state, max_dial_level, target_percent, version, updated_at, updated_by
             FROM campaign_controls WHERE campaign_id = $1";
        let row = with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .fetch_optional(pool)
            .await?
            .map(|r| -> Result<Controls, sqlx::Error> {
                let state: String = r.try_get(0)?;
                Ok(Controls {
                    state: RunState::parse(&state).unwrap_or(RunState::Stopped),
                    max_dial_level: r.try_get(1)?,
                    target_percent: r.try_get(2)?,
                    lists: None,
                    version: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                    updated_by: r.try_get(5)?,
                })
            })
            .transpose()?);
        let mut c = row.unwrap_or_default();
        const LISTS: &str = "SELECT list FROM campaign_lists WHERE campaign_id = $1 ORDER BY list";
        let lists: Vec<String> = with_pool!(self, pool => sqlx::query_scalar(LISTS)
            .bind(campaign_id)
            .fetch_all(pool)
            .await?);
        c.lists = (!lists.is_empty()).then_some(lists);
        Ok(c)
    }

    /// The campaign's lead lists with their lead counts: every lead, and
    /// those still to dial (new or retry), by list name.
    pub async fn lead_lists(&self, campaign_id: i64) -> Result<Vec<LeadList>, StoreError> {
        const SQL: &str = "SELECT list, COUNT(*),
                 SUM(CASE WHEN status IN ('new', 'retry') THEN 1 ELSE 0 END)
             FROM leads WHERE campaign_id = $1 GROUP BY list ORDER BY list";
        let rows: Vec<(String, i64, Option<i64>)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(campaign_id)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(name, leads, to_dial)| LeadList {
                name,
                leads,
                to_dial: to_dial.unwrap_or(0),
            })
            .collect())
    }

    /// Writes `new` as campaign `campaign_id`'s controls if they are still
    /// at `new.version - 1`; false when another change came first (read
    /// them again).
    pub async fn set_campaign_controls(
        &self,
        campaign_id: i64,
        new: &Controls,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO campaign_controls
                 (campaign_id, state, max_dial_level, target_percent, version, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (campaign_id) DO UPDATE SET
                 state = excluded.state, max_dial_level = excluded.max_dial_level,
                 target_percent = excluded.target_percent, version = excluded.version,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by
             WHERE campaign_controls.version = excluded.version - 1";
        const CLEAR: &str = "DELETE FROM campaign_lists WHERE campaign_id = $1";
        const LIST: &str = "INSERT INTO campaign_lists (campaign_id, list) VALUES ($1, $2)
             ON CONFLICT (campaign_id, list) DO NOTHING";
        if new.version < 1 {
            return Ok(false);
        }
        // The controls and the lists in one transaction: a claim sees the
        // lists of one version.
        let written = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(SQL)
                .bind(campaign_id)
                .bind(new.state.as_str())
                .bind(new.max_dial_level)
                .bind(new.target_percent)
                .bind(new.version)
                .bind(new.updated_at)
                .bind(&new.updated_by)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // Rows are never deleted: with no row the version read was 0,
            // and the insert (version 1) is the first change.
            if n > 0 {
                sqlx::query(CLEAR).bind(campaign_id).execute(&mut *tx).await?;
                for l in new.lists.iter().flatten() {
                    sqlx::query(LIST).bind(campaign_id).bind(l).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            n > 0
        });
        Ok(written)
    }
}
