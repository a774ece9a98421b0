//! Agent state intervals (`agent_states`): the time an agent spends ready,
//! reserved, on a call, in wrap-up or paused while logged in. The live
//! service writes them; reports read them for talk share, occupancy and
//! agent cost.

use std::fmt;

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// What an agent is doing while logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Waiting for a call.
    Ready,
    /// Held for a call that is about to be bridged.
    Reserved,
    /// Talking to a customer.
    OnCall,
    /// After a call, recording the disposition.
    Wrapup,
    /// Logged in but taking no calls (break, training, ...).
    Paused,
}

impl AgentState {
    /// Every state, in the order reports list them.
    pub const ALL: [AgentState; 5] = [
        AgentState::Ready,
        AgentState::Reserved,
        AgentState::OnCall,
        AgentState::Wrapup,
        AgentState::Paused,
    ];

    /// The stored name: `ready`, `reserved`, `on_call`, `wrapup`, `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Ready => "ready",
            AgentState::Reserved => "reserved",
            AgentState::OnCall => "on_call",
            AgentState::Wrapup => "wrapup",
            AgentState::Paused => "paused",
        }
    }

    /// Parses a stored name; `None` for anything else.
    pub fn parse(text: &str) -> Option<AgentState> {
        AgentState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored agent state interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentInterval {
    /// Row id.
    pub id: i64,
    /// Campaign the agent was logged into.
    pub campaign_id: i64,
    /// Agent.
    pub agent_id: String,
    /// State.
    pub state: AgentState,
    /// Why (a pause reason), if given.
    pub reason: Option<String>,
    /// Start, ms since epoch.
    pub started_at: i64,
    /// End, ms; `None` while open.
    pub ended_at: Option<i64>,
}

/// Closes the agent's open interval at `$2`. A clock that stepped back
/// (`$2` before the start) ends it at its start rather than making a
/// negative interval.
const CLOSE_OPEN: &str = "UPDATE agent_states
     SET ended_at = CASE WHEN started_at > $2 THEN started_at ELSE $2 END
     WHERE agent_id = $1 AND ended_at IS NULL";

/// [`CLOSE_OPEN`], returning where the interval ended.
const CLOSE_OPEN_RETURNING: &str = "UPDATE agent_states
     SET ended_at = CASE WHEN started_at > $2 THEN started_at ELSE $2 END
     WHERE agent_id = $1 AND ended_at IS NULL
     RETURNING ended_at";

impl Store {
    /// Puts an agent into `state` in a campaign at `at` (ms): closes the
    /// agent's open interval, in whatever campaign, at `at` and opens a new
    /// one, in one transaction. Returns the new interval's id.
    ///
    /// The new interval starts where the old one ended: at `at`, or at the
    /// old one's start if `at` is earlier (a clock that stepped back), so
    /// an agent's intervals never overlap.
    ///
    /// Call it on every state change, before acting on it. At most one
    /// interval per agent is open (a unique index holds this): two
    /// concurrent calls for the same agent make one of them fail rather
    /// than leave two open.
    pub async fn agent_state_begin(
        &self,
        campaign_id: i64,
        agent_id: &str,
        state: AgentState,
        reason: Option<&str>,
        at: i64,
    ) -> Result<i64, StoreError> {
        const OPEN: &str =
            "INSERT INTO agent_states (campaign_id, agent_id, state, reason, started_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id";
        let id = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let closed: Option<Option<i64>> = sqlx::query_scalar(CLOSE_OPEN_RETURNING)
                .bind(agent_id)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            let start = closed.flatten().map_or(at, |end| end.max(at));
            let id: i64 = sqlx::query_scalar(OPEN)
                .bind(campaign_id)
                .bind(agent_id)
                .bind(state.as_str())
                .bind(reason)
                .bind(start)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Closes the agent's open interval at `at` (ms): on logout, or when
    /// recovering from a crash. Returns how many intervals it closed (0 or 1).
    pub async fn agent_state_end_all(&self, agent_id: &str, at: i64) -> Result<u64, StoreError> {
        Ok(with_pool!(self, pool => sqlx::query(CLOSE_OPEN)
            .bind(agent_id)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// The agent's intervals that overlap `[from, to)` ms, oldest first: an
    /// agent's timeline for a supervisor.
    pub async fn agent_state_history(
        &self,
        agent_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<AgentInterval>, StoreError> {
        const SQL: &str = "SELECT id, campaign_id, agent_id, state, reason, started_at, ended_at
             FROM agent_states
             WHERE agent_id = $1 AND started_at < $3 AND (ended_at IS NULL OR ended_at > $2)
             ORDER BY started_at, id";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(agent_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| {
                let state: String = r.try_get(3)?;
                Ok(AgentInterval {
                    id: r.try_get(0)?,
                    campaign_id: r.try_get(1)?,
                    agent_id: r.try_get(2)?,
                    state: AgentState::parse(&state).ok_or(StoreError::Corrupt {
                        what: "agent state",
                        value: state,
                    })?,
                    reason: r.try_get(4)?,
                    started_at: r.try_get(5)?,
                    ended_at: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?);
        Ok(rows)
    }
}
