//! What the nodes running one campaign share through the store: their
//! heartbeats (how many share the campaign's abandonment allowance) and
//! each other's ledger rows (so every node's ledger is the campaign's, not
//! its own).

use sqlx::Row;

use super::{Backend, LedgerKind, Store, StoreError};

/// A ledger row another node wrote, as a cursor reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRow {
    /// Row id (the cursor).
    pub id: i64,
    /// When, ms.
    pub at: i64,
    /// What.
    pub kind: LedgerKind,
    /// Written by the reading node itself.
    pub own: bool,
}

impl Store {
    /// The campaign's last ledger row id (0 when none).
    pub async fn ledger_last_id(&self, campaign_id: i64) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM abandon_ledger WHERE campaign_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .fetch_one(pool)
            .await?))
    }

    /// The campaign's ledger rows after `after_id`, in id order, each
    /// marked whether `node` wrote it (by its attempt's node; a row with no
    /// attempt counts as another's).
    pub async fn ledger_rows_after(
        &self,
        campaign_id: i64,
        after_id: i64,
        node: &str,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        const SQL: &str = "SELECT l.id, l.at, l.kind,
                 CASE WHEN a.node = $3 THEN 1 ELSE 0 END
             FROM abandon_ledger l LEFT JOIN call_attempts a ON a.id = l.attempt_id
             WHERE l.campaign_id = $1 AND l.id > $2 ORDER BY l.id";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(after_id)
            .bind(node)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<(i64, i64, String, i32), sqlx::Error> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        rows.into_iter()
            .map(|(id, at, kind, own)| {
                let kind = LedgerKind::parse(&kind).ok_or(StoreError::Corrupt {
                    what: "ledger kind",
                    value: kind,
                })?;
                Ok(LedgerRow {
                    id,
                    at,
                    kind,
                    own: own == 1,
                })
            })
            .collect()
    }

    /// Records that `node` runs the campaign at `now`.
    pub async fn campaign_heartbeat(
        &self,
        campaign_id: i64,
        node: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO campaign_nodes (campaign_id, node, heartbeat_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (campaign_id, node) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(node)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// When `node` last beat for the campaign (`None`: it stopped cleanly,
    /// or never ran it). Recovery closes what a crash left at this time,
    /// so the downtime is not counted as talk or work.
    pub async fn campaign_node_heartbeat(
        &self,
        campaign_id: i64,
        node: &str,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str =
            "SELECT heartbeat_at FROM campaign_nodes WHERE campaign_id = $1 AND node = $2";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .bind(node)
            .fetch_optional(pool)
            .await?))
    }

    /// Takes `node` out of the campaign's nodes (a clean stop).
    pub async fn campaign_leave(&self, campaign_id: i64, node: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM campaign_nodes WHERE campaign_id = $1 AND node = $2";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(node)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// How many nodes beat for the campaign at or after `since`.
    pub async fn campaign_nodes_active(
        &self,
        campaign_id: i64,
        since: i64,
    ) -> Result<u32, StoreError> {
        const SQL: &str =
            "SELECT COUNT(*) FROM campaign_nodes WHERE campaign_id = $1 AND heartbeat_at >= $2";
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .bind(since)
            .fetch_one(pool)
            .await?);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The node holding `agent`'s session lease and its last heartbeat.
    pub async fn session_holder(&self, agent: &str) -> Result<Option<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT node, heartbeat_at FROM agent_sessions WHERE agent_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(agent)
            .fetch_optional(pool)
            .await?))
    }
}
