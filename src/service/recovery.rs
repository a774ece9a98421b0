//! Start-up recovery of what a crash of the same node left: attempts in
//! flight become `interrupted` (their leads wait the retry delay
//! [`crate::policy::retry_delay`] gives an interrupted call; a person who
//! had answered and was never put through enters the ledger as an
//! abandon), open agent intervals are closed (all at the node's last
//! heartbeat, so downtime is not counted), and the abandonment ledger
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
    /// When what the crash interrupted was taken to end: the node's last
    /// heartbeat for the campaign, or now when there is none.
    pub stopped_at: i64,
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
    /// What supervisors set on the campaign (run state, cap, target): a
    /// restart keeps it.
    pub controls: crate::controls::Controls,
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
    // What the crash interrupted ended when the node last beat (about a
    // second before it died), not now: downtime is neither talk nor work.
    let stopped_at = store
        .campaign_node_heartbeat(campaign_id, node)
        .await?
        .filter(|beat| *beat <= now.ms())
        .unwrap_or(now.ms());
    let interrupted = store
        .recover_node(campaign_id, node, stopped_at, retry_at.ms())
        .await?;
    let mut agents_closed = 0;
    // Only this node's agents: one whose session another live node holds
    // is working there.
    let lapse = i64::try_from(super::SESSION_LAPSE.as_millis()).unwrap_or(i64::MAX);
    for a in store.agents_with_open_state(campaign_id).await? {
        let at = match store.session_holder(&a).await? {
            // Working on another live node: not ours to close.
            Some((holder, beat)) if holder != node && beat >= now.ms().saturating_sub(lapse) => {
                continue;
            }
            // Left by another node that died: its last session beat.
            Some((holder, beat)) if holder != node => beat.min(now.ms()),
            _ => stopped_at,
        };
        agents_closed += store.agent_state_end_all(&a, at).await?;
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
    let controls = store.campaign_controls(campaign_id).await?;
    Ok(Recovered {
        stopped_at,
        interrupted,
        agents_closed,
        ledger,
        ledger_last_id,
        history,
        controls,
    })
}
