//! The service's ordered store writer: one task applies writes in the order
//! they were queued, so a campaign task can record a fact and go on at
//! once, and whoever must wait for durability (the safe-harbour player,
//! an HTTP reply) waits on the write's acknowledgement.

use tokio::sync::{mpsc, oneshot};

use crate::store::{AgentState, AttemptEnd, LedgerKind, Store};

/// One write.
#[derive(Debug)]
pub enum Write {
    /// [`Store::finish_attempt`].
    FinishAttempt(i64, AttemptEnd),
    /// [`Store::attempt_progress`]: an attempt in flight was answered or
    /// bridged.
    Progress {
        /// Attempt id.
        attempt_id: i64,
        /// Answer time, ms.
        answered_at: Option<i64>,
        /// Bridge time, ms.
        connected_at: Option<i64>,
        /// The agent it was bridged to.
        agent: Option<String>,
    },
    /// [`Store::ledger_append`].
    Ledger {
        /// Campaign id.
        campaign_id: i64,
        /// Attempt id.
        attempt_id: Option<i64>,
        /// What.
        kind: LedgerKind,
        /// When, ms.
        at: i64,
    },
    /// [`Store::agent_state_begin`].
    AgentState {
        /// Campaign id.
        campaign_id: i64,
        /// Agent.
        agent: String,
        /// New state.
        state: AgentState,
        /// Pause reason.
        reason: Option<String>,
        /// When, ms.
        at: i64,
    },
    /// [`Store::agent_state_end_all`] (logout).
    AgentEnd {
        /// Agent.
        agent: String,
        /// When, ms.
        at: i64,
    },
    /// [`Store::refuse_lead`].
    Refuse {
        /// Lead id.
        lead_id: i64,
        /// When to try again.
        next_at: Option<i64>,
        /// Reason codes.
        reasons: String,
    },
    /// [`Store::release_claims`].
    Release {
        /// Campaign id.
        campaign_id: i64,
        /// Node.
        node: String,
    },
}

impl Write {
    /// The write's name, for the store latency histogram.
    fn name(&self) -> &'static str {
        match self {
            Write::FinishAttempt(..) => "finish_attempt",
            Write::Progress { .. } => "progress",
            Write::Ledger { .. } => "ledger",
            Write::AgentState { .. } => "agent_state",
            Write::AgentEnd { .. } => "agent_end",
            Write::Refuse { .. } => "refuse",
            Write::Release { .. } => "release",
        }
    }
}

/// A queued write and who waits for it.
pub type Job = (Write, Option<oneshot::Sender<bool>>);

/// Starts the writer; it ends when every sender is dropped, after the
/// queue is empty.
pub fn spawn(store: Store) -> (mpsc::UnboundedSender<Job>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let task = tokio::spawn(async move {
        while let Some((w, ack)) = rx.recv().await {
            let op = w.name();
            let started = std::time::Instant::now();
            let r = apply(&store, w).await;
            crate::metrics::record_store(op, started.elapsed().as_secs_f64());
            if let Err(e) = &r {
                tracing::error!("store write failed: {e}");
            }
            if let Some(ack) = ack {
                let _ = ack.send(r.is_ok());
            }
        }
    });
    (tx, task)
}

async fn apply(store: &Store, w: Write) -> Result<(), crate::store::StoreError> {
    match w {
        Write::FinishAttempt(id, end) => store.finish_attempt(id, &end).await,
        Write::Progress {
            attempt_id,
            answered_at,
            connected_at,
            agent,
        } => {
            store
                .attempt_progress(attempt_id, answered_at, connected_at, agent.as_deref())
                .await
        }
        Write::Ledger {
            campaign_id,
            attempt_id,
            kind,
            at,
        } => store.ledger_append(campaign_id, attempt_id, kind, at).await,
        Write::AgentState {
            campaign_id,
            agent,
            state,
            reason,
            at,
        } => store
            .agent_state_begin(campaign_id, &agent, state, reason.as_deref(), at)
            .await
            .map(|_| ()),
        Write::AgentEnd { agent, at } => store.agent_state_end_all(&agent, at).await.map(|_| ()),
        Write::Refuse {
            lead_id,
            next_at,
            reasons,
        } => store.refuse_lead(lead_id, next_at, &reasons).await,
        Write::Release { campaign_id, node } => {
            store.release_claims(campaign_id, &node).await.map(|_| ())
        }
    }
}
