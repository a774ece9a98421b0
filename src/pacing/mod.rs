//! Pacing: how many new calls to launch now.
//!
//! Owns the strategies behind one trait, [`Pacer`], and the estimators they
//! learn from ([`estimate`]). Pure: a decision reads a [`Snapshot`] the
//! campaign runner builds (agents, calls in flight, ledger figures) and
//! returns a count. No clock, no I/O; the same code runs live and in the
//! simulator.
//!
//! The strategies, one file each: `predictive` (ours, [`predictive`]),
//! `progressive` and `ratio:R` ([`ratio`]), `feedback` (the classic
//! adaptive dial level, [`feedback`]), `threshold` ([`threshold`]) and
//! `oracle` (the clairvoyant bound, simulator only, [`oracle`]). A new
//! strategy is a file here, a [`Strategy`] variant and a line in
//! [`pacer`].

pub mod estimate;
pub mod feedback;
pub mod governor;
pub mod oracle;
pub mod predictive;
pub mod ratio;
pub mod threshold;

use std::fmt;

use serde::Serialize;

use estimate::Estimators;
pub use feedback::Feedback;
pub use governor::Governor;
pub use oracle::Oracle;
pub use predictive::Predictive;
pub use ratio::Ratio;
pub use threshold::Threshold;

/// The abandonment ledger's figures a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LedgerView {
    /// Human answers in the compliance window.
    pub human_answers: u64,
    /// Abandons in the window.
    pub abandons: u64,
    /// Human answers and abandons still in the window an hour from now if
    /// nothing new happens: old answers rolling out can raise the rate.
    pub hour_ahead: (u64, u64),
    /// The abandons the tightest window the calls out can reach can take
    /// before the limit: now, an hour ahead, the next opening of the
    /// calling hours and an hour after it (see [`governor`]).
    pub budget: f64,
}

impl LedgerView {
    /// A view of the window now and an hour ahead (no calling hours
    /// known), with `limit` (a fraction) for the budget.
    pub fn new(now: (u64, u64), hour_ahead: (u64, u64), limit: f64) -> LedgerView {
        LedgerView {
            human_answers: now.0,
            abandons: now.1,
            hour_ahead,
            budget: budget_at(now, limit).min(budget_at(hour_ahead, limit)),
        }
    }
}

/// Abandons a window holding `(human answers, abandons)` can take before
/// `limit` (a fraction).
pub fn budget_at((h, a): (u64, u64), limit: f64) -> f64 {
    limit * h as f64 - a as f64
}

/// What the oracle knows about a lead that is about to be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Foresight {
    /// The attempt will reach a person.
    pub human: bool,
    /// After this long ringing, ms.
    pub ring_ms: u64,
    /// And the agent will be busy this long (talk and wrap-up), ms.
    pub handle_ms: u64,
}

/// The state a decision reads, built by the runner.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Now, ms.
    pub now_ms: u64,
    /// Agents logged in and not paused.
    pub active_agents: u32,
    /// Agents ready and not yet given a call.
    pub ready: u32,
    /// For each agent on a call or in wrap-up: when the call was bridged,
    /// ms (see [`Snapshot::busy_elapsed_s`]). Times rather than ages, so
    /// the runner hands over its own list instead of building one per
    /// decision.
    pub busy_since_ms: &'a [u64],
    /// Beside each of `busy_since_ms`: when that agent's call ended and
    /// wrap-up began, ms, or `u64::MAX` while still talking. Empty when
    /// not known (every busy agent is then judged by the handle time since
    /// the bridge).
    pub wrap_since_ms: &'a [u64],
    /// For each call dialled and not yet answered: when its ring clock
    /// started, ms: its dial, or its last 180/183 in the live service,
    /// so that `ring_timeout_s` after it is when it gives up (see
    /// [`Snapshot::ringing_elapsed_s`]). The answer-time estimates count
    /// from the dial, so a call whose set-up took a while looks younger
    /// than it is: more likely to reach a person, which dials less (the
    /// safe side).
    pub ringing_since_ms: &'a [u64],
    /// Answered human calls waiting for an agent.
    pub waiting: u32,
    /// The campaign's ring timeout, seconds.
    pub ring_timeout_s: f64,
    /// The ledger over the compliance window.
    pub ledger: LedgerView,
    /// Abandonment limit, percent of human answers.
    pub limit_percent: f64,
    /// Abandonment target, percent.
    pub target_percent: f64,
    /// Highest calls in flight per active agent.
    pub max_dial_level: f64,
    /// The estimators.
    pub est: &'a Estimators,
    /// Oracle only: when each busy agent will be free, ms (same order as
    /// `busy_since_ms`), the foresight of the calls in flight, and of the
    /// next leads in the hopper.
    pub oracle: Option<OracleView<'a>>,
}

impl Snapshot<'_> {
    /// Seconds since `since_ms`, as of `now_ms` (0 for a time ahead).
    pub fn elapsed_s(&self, since_ms: u64) -> f64 {
        // Through i64: u64 to f64 costs several instructions on x86-64,
        // i64 one, and gives the same value below 2^63.
        self.now_ms.saturating_sub(since_ms) as i64 as f64 / 1000.0
    }

    /// For each busy agent, seconds since the call was bridged.
    pub fn busy_elapsed_s(&self) -> impl Iterator<Item = f64> + '_ {
        self.busy_since_ms.iter().map(|&t| self.elapsed_s(t))
    }

    /// For each call ringing, seconds on its ring clock.
    pub fn ringing_elapsed_s(&self) -> impl Iterator<Item = f64> + '_ {
        self.ringing_since_ms.iter().map(|&t| self.elapsed_s(t))
    }
}

/// What the simulator lets the oracle see.
#[derive(Debug, Clone, Copy)]
pub struct OracleView<'a> {
    /// When each busy agent will be free, ms.
    pub busy_free_at_ms: &'a [u64],
    /// Calls in flight that will reach a person: (answer time ms, handle ms).
    pub human_in_flight: &'a [(u64, u64)],
    /// Answered calls waiting: their handle times, ms.
    pub waiting_handle_ms: &'a [u64],
    /// The next leads of the hopper, in dialling order.
    pub next_leads: &'a [Foresight],
}

/// A decision: how many calls to launch now, and when to ask again at the
/// latest (the runner asks after every event anyway).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Calls to launch now (the first leads of the hopper).
    pub launch: u32,
    /// Ask again no later than this, ms.
    pub wake_at_ms: Option<u64>,
    /// The oracle only: which leads to dial, by their place in
    /// [`OracleView::next_leads`], instead of the first `launch`.
    pub picks: Vec<usize>,
}

/// A pacing strategy.
pub trait Pacer: Send {
    /// Decides how many calls to launch at `s.now_ms`. Called by the runner
    /// after every event and whenever its pacing timer fires. `gov` is the
    /// compliance governor the runner holds every decision to (a strategy
    /// may ask it as it goes, as predictive does; the runner admits no
    /// more than it allows either way).
    fn decide(&mut self, s: &Snapshot<'_>, gov: &mut Governor<'_>) -> Decision;

    /// Tells the pacer a human answer was connected (`abandoned` false) or
    /// abandoned, at `now_ms`.
    fn observe(&mut self, _now_ms: u64, _abandoned: bool) {}

    /// The current dial level, for status lines and plots: the multiplier
    /// on ready agents for `ratio` and `feedback`; for the others, calls in
    /// flight per agent expected free within the ring time.
    fn dial_level(&self) -> f64;
}

/// Builds the pacer for a strategy.
pub fn pacer(strategy: &Strategy) -> Box<dyn Pacer> {
    match *strategy {
        Strategy::Predictive => Box::new(Predictive::new()),
        Strategy::Progressive => Box::new(Ratio::new(1.0)),
        Strategy::Ratio { ratio } => Box::new(Ratio::new(ratio)),
        Strategy::Feedback => Box::new(Feedback::new()),
        Strategy::Threshold { probability } => Box::new(Threshold::new(probability)),
        Strategy::Oracle => Box::new(Oracle::new()),
    }
}

/// Calls in flight the dial level allows, minus those already out.
pub(crate) fn room(s: &Snapshot<'_>) -> u32 {
    let cap = (s.max_dial_level * f64::from(s.active_agents)).floor() as u32;
    let out = s.ringing_since_ms.len() as u32 + s.waiting;
    cap.saturating_sub(out)
}

/// Calls ringing or waiting for an agent.
pub(crate) fn in_flight(s: &Snapshot<'_>) -> u32 {
    s.ringing_since_ms.len() as u32 + s.waiting
}

/// The pacing strategy and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "strategy", rename_all = "lowercase")]
pub enum Strategy {
    /// Ours: Poisson-binomial prediction within the abandonment budget.
    Predictive,
    /// One call per ready agent.
    Progressive,
    /// A fixed number of calls per ready agent.
    Ratio {
        /// Calls per ready agent.
        ratio: f64,
    },
    /// The classic adaptive dial level.
    Feedback,
    /// Busy agents count as free when likely to finish in time.
    Threshold {
        /// Probability at which a busy agent counts as free.
        probability: f64,
    },
    /// Knows every outcome in advance (simulator only).
    Oracle,
}

impl Strategy {
    /// Parses a strategy as written on the command line or in a file:
    /// `predictive`, `progressive`, `ratio:1.5`, `feedback`, `threshold`,
    /// `threshold:0.95`, `oracle`.
    pub fn parse(text: &str) -> Result<Strategy, String> {
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        let number = |default: Option<f64>| -> Result<f64, String> {
            match (arg, default) {
                (Some(a), _) => a
                    .trim()
                    .parse()
                    .map_err(|_| format!("{a:?} is not a number")),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(format!("{name} needs a value, as in {name}:1.5")),
            }
        };
        let no_arg = |s: Strategy| match arg {
            Some(_) => Err(format!("{name} takes no parameter")),
            None => Ok(s),
        };
        match name.trim() {
            "predictive" => no_arg(Strategy::Predictive),
            "progressive" => no_arg(Strategy::Progressive),
            "feedback" => no_arg(Strategy::Feedback),
            "oracle" => no_arg(Strategy::Oracle),
            "ratio" => {
                let ratio = number(None)?;
                if !(1.0..=10.0).contains(&ratio) {
                    return Err(format!("ratio {ratio} must be between 1 and 10"));
                }
                Ok(Strategy::Ratio { ratio })
            }
            "threshold" => {
                let probability = number(Some(0.97))?;
                if !(0.5..1.0).contains(&probability) {
                    return Err(format!("threshold {probability} must be in [0.5, 1)"));
                }
                Ok(Strategy::Threshold { probability })
            }
            other => Err(format!(
                "unknown strategy {other:?}; expected predictive, progressive, ratio:R, feedback, threshold or oracle"
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Predictive => f.write_str("predictive"),
            Strategy::Progressive => f.write_str("progressive"),
            Strategy::Ratio { ratio } => write!(f, "ratio:{ratio}"),
            Strategy::Feedback => f.write_str("feedback"),
            Strategy::Threshold { probability } => write!(f, "threshold:{probability}"),
            Strategy::Oracle => f.write_str("oracle"),
        }
    }
}

#[cfg(test)]
mod tests;
