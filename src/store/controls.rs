//! Campaign controls in the store: one row per campaign a supervisor has
//! changed, written with a version check so that two nodes (or two
//! supervisors) changing it at once cannot lose either change silently.

use sqlx::Row;

use super::{Backend, Store, StoreError};
use crate::controls::{Controls, RunState};

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
                    version: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                    updated_by: r.try_get(5)?,
                })
            })
            .transpose()?);
        Ok(row.unwrap_or_default())
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
        if new.version < 1 {
            return Ok(false);
        }
        let n = with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(new.state.as_str())
            .bind(new.max_dial_level)
            .bind(new.target_percent)
            .bind(new.version)
            .bind(new.updated_at)
            .bind(&new.updated_by)
            .execute(pool)
            .await?
            .rows_affected());
        // Rows are never deleted: with no row the version read was 0, and
        // the insert (version 1) is the first change.
        Ok(n > 0)
    }
}
