//! Start-up recovery of what a crash of the same node left: attempts in
//! flight become `interrupted` (their leads wait the retry delay
//! [`crate::policy::retry_delay`] gives an interrupted call; a person who
//! had answered and was never put through enters the ledger as an
//! abandon), open agent intervals are closed, and the abandonment ledger
//! is rebuilt from the stored rows for the runner, with the recent
//! attempts and handle times its estimators start from.

use super::*;
use crate::clock::Millis;
use crate::compliance::ledger::Ledger;
use crate::outcome::Outcome;
use crate::policy;

/// What start-up recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// Attempts closed as interrupted.
    pub interrupted: u64,
    /// Agent intervals closed.
    pub agents_closed: u64,
    /// The ledger rebuilt from stored rows.
    pub ledger: Ledger,
    /// The last ledger row id when it was rebuilt: other nodes' rows after
    /// it reach the runner through the cluster sync.
    pub ledger_last_id: i64,
    /// The recent attempts and handle times the estimators start from.
    pub history: crate::store::PacingHistory,
}

/// Recovers campaign `campaign_id` for `node` at `now` (see the module
/// docs).
pub async fn recover(
    store: &Store,
    campaign_id: i64,
    c: &Campaign,
    node: &str,
    now: Millis,
) -> Result<Recovered, StoreError> {
    let retry_at = now.plus(policy::retry_delay(c, Outcome::Interrupted));
    let interrupted = store
        .recover_node(campaign_id, node, now.ms(), retry_at.ms())
        .await?;
    let mut agents_closed = 0;
    // Only this node's agents: one whose session another live node holds
    // is working there.
    let lapse = i64::try_from(super::SESSION_LAPSE.as_millis()).unwrap_or(i64::MAX);
    for a in store.agents_with_open_state(campaign_id).await? {
        if let Some((holder, beat)) = store.session_holder(&a).await?
            && holder != node
            && beat >= now.ms().saturating_sub(lapse)
        {
            continue;
        }
        agents_closed += store.agent_state_end_all(&a, now.ms()).await?;
    }
    // Read before the rows: a row another node writes in between is then
    // counted twice (an abandon twice is the safe side), never missed.
    let ledger_last_id = store.ledger_last_id(campaign_id).await?;
    let ledger = store.ledger(campaign_id, c.abandon_window, now).await?;
    let history = store
        .pacing_history(
            campaign_id,
            now.ms(),
            crate::pacing::estimate::HISTORY as i64,
        )
        .await?;
    Ok(Recovered {
        interrupted,
        agents_closed,
        ledger,
        ledger_last_id,
        history,
    })
}
