//! Start-up recovery of what a crash of the same node left: attempts in
//! flight become `interrupted` (their leads wait the retry delay
//! [`crate::policy::retry_delay`] gives an interrupted call, or are done
//! if the person had been put through to an agent; a person who
//! had answered and was never put through enters the ledger as an
//! abandon), open agent intervals are closed (all at the node's last
//! heartbeat, so downtime is not counted), and the abandonment ledger
//! is rebuilt from the stored rows for the runner, with the recent
//! attempts and handle times its estimators start from; and the SIP legs
//! the crash left up are ended ([`end_left_legs`]).

use super::*;
use crate::clock::Millis;
use crate::compliance::ledger::Ledger;
use crate::outcome::Outcome;
use crate::policy;
use crate::sip::auth::Credentials;
use crate::store::LegKind;

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
    /// The ids of the rows the rebuild held, the last
    /// [`crate::store::LEDGER_RESUME_IDS`] below `ledger_last_id` (see
    /// [`crate::store::LedgerFeed::resuming`]).
    pub ledger_recent_ids: Vec<i64>,
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
    // Read before the rows: a row another node writes in between is in
    // the rebuild (and known to be, below), or read by the feed later,
    // never missed.
    let ledger_last_id = store.ledger_last_id(campaign_id).await?;
    // The ids the feed takes as held: those up to the last id (rows out of
    // the window among them), and every row the rebuild itself read, in
    // the same query as its events. A row that commits between the two
    // reads is then held once, not fed again (a human answer counted
    // twice would lower the abandonment rate); one still uncommitted at
    // the rebuild is not among them, so the feed takes it when it shows.
    let mut ledger_recent_ids = store
        .ledger_ids_between(
            campaign_id,
            ledger_last_id.saturating_sub(crate::store::LEDGER_RESUME_IDS),
            ledger_last_id,
        )
        .await?;
    let (ledger, rebuilt_ids) = store
        .ledger_with_ids(campaign_id, c.abandon_window, now)
        .await?;
    ledger_recent_ids.extend(rebuilt_ids);
    ledger_recent_ids.sort_unstable();
    ledger_recent_ids.dedup();
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
        ledger_recent_ids,
        history,
        controls,
    })
}

/// How long ending a leg a crash left may take: a BYE's or CANCEL's
/// timer F (64*T1) with room for a digest retry.
const LEG_END_LIMIT: Duration = Duration::from_secs(40);

/// Ends the SIP legs `shared.node` left up when it crashed (see
/// [`crate::sip::uac::LegRecord`]): BYE in the dialog of each answered
/// leg, CANCEL of each ringing one's INVITE (ACK and BYE if a 2xx comes
/// anyway), customer legs through their campaign's UA (`uas`, with the
/// trunk's credentials), agent legs through the agent phones' UA. Each
/// row goes once its leg ended or the limit passed. Runs in the
/// background: serving does not wait for it. Returns how many legs it
/// took on.
pub(super) async fn end_left_legs(
    shared: &Arc<Shared>,
    uas: &HashMap<i64, (Arc<Ua>, Option<Credentials>)>,
) -> Result<usize, StoreError> {
    let legs = shared.store.legs_of_node(&shared.node).await?;
    let mut taken = 0;
    for leg in legs {
        let call_id = leg.record.call_id.clone();
        let (ua, credentials) = match leg.kind {
            LegKind::Customer => match uas.get(&leg.campaign_id) {
                Some((ua, c)) => (ua.clone(), c.clone()),
                None => {
                    tracing::warn!(
                        campaign_id = leg.campaign_id,
                        "a SIP leg a crash left belongs to a campaign this node does not run: left for a node that does"
                    );
                    continue;
                }
            },
            LegKind::Agent => {
                let Some(addr) = leg.record.dest else {
                    let _ = shared.store.leg_closed(&call_id).await;
                    continue;
                };
                // The phone's transport, as the INVITE's Via named it.
                let transport = crate::sip::Transport::from_via(&leg.record.via)
                    .unwrap_or(crate::sip::Transport::Udp);
                // A TLS certificate is checked against the URI's host.
                let server_name = crate::sip::resolve::SipUri::parse(&leg.record.request_uri)
                    .map_or_else(|_| addr.ip().to_string(), |u| u.host);
                match shared.agent_ua(&[addr], transport, &server_name).await {
                    Ok(ua) => (ua, None),
                    Err(e) => {
                        tracing::warn!("no SIP agent for a phone leg a crash left: {e}");
                        continue;
                    }
                }
            }
        };
        taken += 1;
        let store = shared.store.clone();
        tokio::spawn(async move {
            let answered = leg.record.dialog.is_some();
            match ua.resume(leg.record, credentials).await {
                Ok(handle) => match tokio::time::timeout(LEG_END_LIMIT, handle.ended()).await {
                    Ok(Ok(s)) => tracing::info!(
                        answered,
                        codes = ?s.codes,
                        "a SIP leg a crash left is ended"
                    ),
                    _ => tracing::warn!(answered, "a SIP leg a crash left did not answer its end"),
                },
                Err(e) => tracing::warn!("ending a SIP leg a crash left: {e}"),
            }
            if let Err(e) = store.leg_closed(&call_id).await {
                tracing::warn!("forgetting a SIP leg failed: {e}");
            }
        });
    }
    Ok(taken)
}
