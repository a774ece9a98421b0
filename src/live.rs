//! The live board: each running campaign's figures as the service last
//! published them. The service writes it; the dashboard, the event stream,
//! `/metrics` and the demo's status line read it.
//!
//! A `tokio::sync::watch` channel: readers always see the latest board and
//! can wait for the next, and a slow reader never holds up the service.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::watch;

/// One campaign's live figures.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct CampaignLive {
    /// Campaign name.
    pub name: String,
    /// Milliseconds since the Unix epoch when these figures were taken.
    pub at_ms: i64,
    /// Agents ready for a call.
    pub agents_ready: u32,
    /// Agents talking.
    pub agents_on_call: u32,
    /// Agents in wrap-up.
    pub agents_wrap_up: u32,
    /// Agents logged in but paused (or not yet ready).
    pub agents_paused: u32,
    /// Calls ringing.
    pub calls_ringing: u32,
    /// Answered calls waiting for an agent.
    pub calls_waiting: u32,
    /// The pacer's dial level.
    pub dial_level: f64,
    /// Human answers in the compliance window.
    pub window_human_answers: u64,
    /// Abandons in the compliance window.
    pub window_abandons: u64,
    /// Abandons per human answer in the window, percent.
    pub window_rate_percent: f64,
    /// The campaign's legal limit, percent.
    pub limit_percent: f64,
    /// The campaign's target, percent (a supervisor's, if one set it).
    pub target_percent: f64,
    /// Running, paused or stopped (the supervisors' controls).
    pub run_state: crate::controls::RunState,
    /// The dial-level cap in force: calls in flight per active agent.
    pub max_dial_level: f64,
    /// Dial attempts since the service started.
    pub attempts: u64,
    /// Human answers since the service started.
    pub human_answers: u64,
    /// Calls bridged to an agent since the service started.
    pub connects: u64,
    /// Abandons since the service started.
    pub abandons: u64,
    /// Dispositions counted as contacts since the service started.
    pub contacts: u64,
    /// Dispositions counted as conversions since the service started.
    pub conversions: u64,
    /// Called parties who pressed a key to opt out during the
    /// abandoned-call message since the service started.
    pub opt_outs: u64,
    /// Ended attempts by outcome code (`connected`, `no_answer`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Dial attempts per second over the last few seconds.
    pub calls_per_second: f64,
    /// Days until the profile's holiday calendar ends (after which every
    /// call is refused), for profiles that have one.
    pub holiday_calendar_days_left: Option<i64>,
    /// Days until the campaign's national do-not-call registry is older
    /// than its profile allows (after which every call is refused); 0 when
    /// the campaign needs one and none is loaded; `None` when its calls are
    /// not screened against one.
    pub dnd_registry_days_left: Option<f64>,
}

impl CampaignLive {
    /// Contacts per attempt, or 0 before the first attempt.
    pub fn contact_rate(&self) -> f64 {
        ratio(self.contacts, self.attempts)
    }

    /// Conversions per contact, or 0 before the first contact.
    pub fn conversion_rate(&self) -> f64 {
        ratio(self.conversions, self.contacts)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The whole board: every running campaign, by name.
pub type Board = BTreeMap<String, CampaignLive>;

/// The writing end, held by the service.
#[derive(Debug, Clone)]
pub struct LiveBoard {
    tx: watch::Sender<Board>,
}

impl Default for LiveBoard {
    fn default() -> LiveBoard {
        LiveBoard::new()
    }
}

impl LiveBoard {
    /// An empty board.
    pub fn new() -> LiveBoard {
        LiveBoard {
            tx: watch::Sender::new(Board::new()),
        }
    }

    /// Replaces one campaign's figures and wakes the readers.
    pub fn publish(&self, live: CampaignLive) {
        self.tx.send_modify(|b| {
            b.insert(live.name.clone(), live);
        });
    }

    /// The board as it is now.
    pub fn snapshot(&self) -> Board {
        self.tx.borrow().clone()
    }

    /// A reader that can wait for the next change.
    pub fn subscribe(&self) -> watch::Receiver<Board> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_the_latest_figures_and_wake_on_change() {
        let board = LiveBoard::new();
        let mut rx = board.subscribe();
        board.publish(CampaignLive {
            name: "a".into(),
            attempts: 10,
            contacts: 4,
            conversions: 1,
            ..CampaignLive::default()
        });
        rx.changed().await.expect("changed");
        let b = rx.borrow_and_update().clone();
        assert_eq!(b["a"].attempts, 10);
        assert!((b["a"].contact_rate() - 0.4).abs() < 1e-12);
        assert!((b["a"].conversion_rate() - 0.25).abs() < 1e-12);
        assert_eq!(board.snapshot().len(), 1);
    }
}
