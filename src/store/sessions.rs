//! Agent session leases: one session per agent across every node sharing
//! the store. A node takes an agent's lease at login, refreshes its leases
//! with a heartbeat, and gives them back at logout and at start-up (its
//! own only); a lease whose heartbeat is older than the lapse is free.

use super::{Backend, Store, StoreError};

impl Store {
    /// Takes `agent`'s session lease for `node` at `now`, unless another
    /// node holds a lease refreshed after `now - lapse_ms`. Returns `None`
    /// when taken, or the holding node.
    pub async fn session_acquire(
        &self,
        agent: &str,
        node: &str,
        campaign: &str,
        now: i64,
        lapse_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        const TAKE: &str =
            "INSERT INTO agent_sessions (agent_id, node, campaign, since, heartbeat_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (agent_id) DO UPDATE SET node = excluded.node,
                 campaign = excluded.campaign, since = excluded.since,
                 heartbeat_at = excluded.heartbeat_at
             WHERE agent_sessions.heartbeat_at < $5 OR agent_sessions.node = excluded.node";
        const HOLDER: &str = "SELECT node FROM agent_sessions WHERE agent_id = $1";
        let stale = now.saturating_sub(lapse_ms);
        let taken = with_pool!(self, pool => sqlx::query(TAKE)
            .bind(agent)
            .bind(node)
            .bind(campaign)
            .bind(now)
            .bind(stale)
            .execute(pool)
            .await?
            .rows_affected());
        if taken > 0 {
            return Ok(None);
        }
        let holder: Option<String> = with_pool!(self, pool => sqlx::query_scalar(HOLDER)
            .bind(agent)
            .fetch_optional(pool)
            .await?);
        Ok(Some(holder.unwrap_or_default()))
    }

    /// Gives back `agent`'s lease if `node` holds it.
    pub async fn session_release(&self, agent: &str, node: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM agent_sessions WHERE agent_id = $1 AND node = $2";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(agent)
            .bind(node)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Gives back every lease `node` holds (its start-up: sessions do not
    /// survive a restart); other nodes' leases stay. Returns how many.
    pub async fn session_release_node(&self, node: &str) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM agent_sessions WHERE node = $1";
        Ok(with_pool!(self, pool => sqlx::query(SQL)
            .bind(node)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Refreshes every lease `node` holds; returns the agents whose leases
    /// it holds (one missing that the node still serves was taken by
    /// another node after this one's heartbeats lapsed).
    pub async fn session_heartbeat(&self, node: &str, now: i64) -> Result<Vec<String>, StoreError> {
        const SQL: &str =
            "UPDATE agent_sessions SET heartbeat_at = $2 WHERE node = $1 RETURNING agent_id";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(node)
            .bind(now)
            .fetch_all(pool)
            .await?))
    }
}
