//! The service's ordered store writer: one task applies writes in the order
//! they were queued, so a campaign task can record a fact and go on at
//! once, and whoever must wait for durability (the safe-harbour player,
//! an HTTP reply) waits on the write's acknowledgement.
//!
//! The queue is bounded ([`QUEUE`]): a campaign task that finds it full
//! keeps its writes in order on its side and stops dialling until the
//! writer catches up (see [`Backlog`]), so a slow store slows the dialler
//! down instead of growing memory. A write that fails for a reason that
//! can pass (the database unreachable, a pool timeout, a serialisation
//! conflict) is retried with back-off until it succeeds, in order; one the
//! database refuses outright is retried a few times, then given up with
//! an error in the log and in `dialler_store_write_failures_total`. Nothing
//! is dropped silently.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{AgentState, AttemptEnd, LedgerKind, Store, StoreError};

/// Writes the queue holds before senders must wait.
pub const QUEUE: usize = 4096;

/// Back-off between tries of a failing write: doubling from this...
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// ...up to this.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Tries of a write the database refuses outright.
const PERMANENT_TRIES: u32 = 4;

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
        /// The node whose claim it is.
        node: String,
        /// When to try again.
        next_at: Option<i64>,
        /// Reason codes.
        reasons: String,
    },
    /// [`Store::opt_out_by_key`].
    OptOut {
        /// Attempt id.
        attempt_id: i64,
        /// When, ms.
        at: i64,
        /// This node, for the audit row.
        node: String,
    },
    /// [`Store::release_lead`]: a claimed lead that was not dialled.
    ReleaseLead {
        /// Lead id.
        lead_id: i64,
        /// The node whose claim it is.
        node: String,
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
            Write::ReleaseLead { .. } => "release_lead",
            Write::Release { .. } => "release",
            Write::OptOut { .. } => "opt_out",
        }
    }
}

/// A queued write and who waits for it.
pub type Job = (Write, Option<oneshot::Sender<bool>>);

/// Starts the writer; it ends when every sender is dropped, after the
/// queue is empty.
pub fn spawn(store: Store) -> (mpsc::Sender<Job>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    let task = tokio::spawn(async move {
        while let Some((w, ack)) = rx.recv().await {
            let ok = apply_until_done(&store, &w).await;
            if let Some(ack) = ack {
                let _ = ack.send(ok);
            }
        }
    });
    (tx, task)
}

/// Whether a failure can pass with time (so the write is retried until it
/// goes through) rather than being the database refusing the write.
fn transient(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(d)) => {
            // Serialisation failures and deadlocks (PostgreSQL), a busy or
            // locked database (SQLite).
            matches!(d.code().as_deref(), Some("40001" | "40P01" | "5" | "6"))
        }
        StoreError::Db(_) => true,
        _ => false,
    }
}

/// Applies `w`, retrying as the module docs say; true once it is stored.
async fn apply_until_done(store: &Store, w: &Write) -> bool {
    let op = w.name();
    let mut wait = RETRY_FIRST;
    let mut refusals = 0;
    loop {
        let started = std::time::Instant::now();
        let r = apply(store, w).await;
        crate::metrics::record_store(op, started.elapsed().as_secs_f64());
        let e = match r {
            Ok(()) => return true,
            Err(e) => e,
        };
        crate::metrics::record_store_failure(op);
        if !transient(&e) {
            refusals += 1;
            if refusals >= PERMANENT_TRIES {
                tracing::error!(
                    write = op,
                    "store write given up after {refusals} tries: {e}"
                );
                return false;
            }
        }
        tracing::warn!(write = op, "store write failed, retrying in {wait:?}: {e}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

async fn apply(store: &Store, w: &Write) -> Result<(), StoreError> {
    match w {
        Write::FinishAttempt(id, end) => store.finish_attempt(*id, end).await,
        Write::Progress {
            attempt_id,
            answered_at,
            connected_at,
            agent,
        } => {
            store
                .attempt_progress(*attempt_id, *answered_at, *connected_at, agent.as_deref())
                .await
        }
        Write::Ledger {
            campaign_id,
            attempt_id,
            kind,
            at,
        } => {
            store
                .ledger_append(*campaign_id, *attempt_id, *kind, *at)
                .await
        }
        Write::AgentState {
            campaign_id,
            agent,
            state,
            reason,
            at,
        } => store
            .agent_state_begin(*campaign_id, agent, *state, reason.as_deref(), *at)
            .await
            .map(|_| ()),
        Write::AgentEnd { agent, at } => store.agent_state_end_all(agent, *at).await.map(|_| ()),
        Write::Refuse {
            lead_id,
            node,
            next_at,
            reasons,
        } => {
            let ours = store.refuse_lead(*lead_id, node, *next_at, reasons).await?;
            if !ours {
                tracing::warn!(
                    lead = lead_id,
                    "refusal not recorded: the lead's claim is no longer this node's (another node took it)"
                );
            }
            Ok(())
        }
        Write::OptOut {
            attempt_id,
            at,
            node,
        } => {
            if !store.opt_out_by_key(*attempt_id, *at, node).await? {
                tracing::error!(
                    call_id = attempt_id,
                    "a key-press opt-out names no stored call attempt"
                );
            }
            Ok(())
        }
        Write::ReleaseLead { lead_id, node } => {
            if !store.release_lead(*lead_id, node).await? {
                tracing::info!(
                    lead = lead_id,
                    "lead not given back: its claim is no longer this node's"
                );
            }
            Ok(())
        }
        Write::Release { campaign_id, node } => {
            store.release_claims(*campaign_id, node).await.map(|_| ())
        }
    }
}

/// A campaign task's side of the writer: writes wait here, in order, when
/// the writer's queue is full. [`Backlog::is_high`] tells the task to hold
/// dialling until [`Backlog::is_low`].
#[derive(Debug)]
pub struct Backlog {
    tx: mpsc::Sender<Job>,
    waiting: VecDeque<Job>,
}

/// Writes waiting on the task's side above which it stops dialling...
const HIGH: usize = 256;
/// ...and below which it starts again.
const LOW: usize = 32;

impl Backlog {
    /// A backlog in front of the writer's queue `tx`.
    pub fn new(tx: mpsc::Sender<Job>) -> Backlog {
        Backlog {
            tx,
            waiting: VecDeque::new(),
        }
    }

    /// Queues `job` behind any waiting writes.
    pub fn push(&mut self, job: Job) {
        if self.waiting.is_empty() {
            match self.tx.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => self.waiting.push_back(job),
                Err(mpsc::error::TrySendError::Closed((w, _))) => {
                    tracing::error!(write = w.name(), "the store writer has stopped; write lost");
                }
            }
        } else {
            self.waiting.push_back(job);
        }
    }

    /// Writes waiting on this side.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no write waits on this side.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Dialling should stop: the store is this far behind.
    pub fn is_high(&self) -> bool {
        self.waiting.len() >= HIGH
    }

    /// Dialling may start again.
    pub fn is_low(&self) -> bool {
        self.waiting.len() <= LOW
    }

    /// Waits for room in the writer's queue and moves waiting writes into
    /// it; pending forever when nothing waits (for a `select!`).
    pub async fn flush(&mut self) {
        if self.waiting.is_empty() {
            return std::future::pending().await;
        }
        let Ok(permit) = self.tx.reserve().await else {
            return std::future::pending().await;
        };
        if let Some(job) = self.waiting.pop_front() {
            permit.send(job);
        }
        while let Some(job) = self.waiting.pop_front() {
            match self.tx.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => {
                    self.waiting.push_front(job);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }

    /// Moves every waiting write into the queue, waiting as long as it
    /// takes (shutdown).
    pub async fn drain(&mut self) {
        while let Some(job) = self.waiting.pop_front() {
            if self.tx.send(job).await.is_err() {
                break;
            }
        }
    }
}
