//! The compliance governor below every strategy: whatever a strategy
//! proposes, the runner launches only as many calls as the abandonment
//! budget can absorb.
//!
//! The budget is the tightest of the ledger's windows that the calls now
//! in flight can still reach: now, an hour from now, and the next opening
//! of the calling hours and an hour after it (overnight, the morning's
//! answers roll out of a 24-hour window while the afternoon's abandons stay
//! in it). In abandons: L·H(T) − A(T) for the human answers H(T) and
//! abandons A(T) still in the window at T, less [`Governor::IN_HAND`]
//! abandons kept in hand.
//!
//! A call may abandon only when an answered call finds no agent: with the
//! free agents F and the demand D (waiting callers, calls in flight by
//! their chance of still reaching a person, the new calls) at the horizon,
//! the abandons to come are (D − F)+. The governor admits a new call only
//! while P(D − F > budget) stays at or under [`RISK`]. The tail is exact
//! for small teams (the Poisson-binomial distributions of [`Outlook`]) and
//! a Bernstein bound beyond, which is never optimistic, unlike the normal
//! approximation whose tail is far too thin at small budgets (a Monday
//! morning's empty window). And one decision's burst is bounded by what
//! the budget can absorb: its extra calls (beyond those with a ready agent
//! each) times the answer rate must fit the budget, as if every person
//! among them found no agent. Calls that have a ready agent each need no
//! check.

use super::Snapshot;
use super::predictive::{FreeAgents, Outlook};

/// The chance the governor accepts that the calls out (those in flight
/// and the ones it admits) leave more callers without an agent than the
/// budget holds.
///
/// It is a per-decision risk, and a strategy that rides the limit takes
/// it thousands of times a day: hence small, with [`Governor::IN_HAND`]
/// abandons kept besides.
pub const RISK: f64 = 0.000_1;

/// How much higher than the estimate the governor takes every call's
/// chance of reaching a person. The estimate follows the last few hundred
/// attempts and lags a rising answer rate (a morning surge, the evening);
/// a strategy riding the limit then takes bursts the model calls nearly
/// impossible. The margin covers a quarter-hour's drift of the scenarios'
/// steepest hours.
pub const MARGIN: f64 = 0.25;

/// One decision's governor: built by the runner for the snapshot, asked by
/// the strategy (or by the runner after it) how many calls may go out.
pub struct Governor<'a> {
    s: &'a Snapshot<'a>,
    /// Abandons the tightest window can take, less those kept in hand.
    room: f64,
    /// The probability a new call reaches a person.
    p_human: f64,
    /// The outlook with the admitted calls added, built on first need.
    outlook: Option<Outlook>,
    /// The snapshot's free agents, computed on first need and shared with
    /// the strategy.
    free: Option<FreeAgents>,
    admitted: u32,
    /// The first call refused: none after it is admitted.
    closed: bool,
}

impl<'a> Governor<'a> {
    /// Abandons of the budget kept in hand, never spent on prediction: a
    /// strategy that presses on the limit all day (threshold, or a high
    /// `ratio:R`) takes many small risks, one per decision, and the margin
    /// keeps their sum under the limit. With two in hand and a 1% risk,
    /// `ratio:2.6` at 25 agents with its target at the UK limit reached
    /// 3.007% (107 abandons of 3,566 answers) in 2 of 5 seeds over 35 days;
    /// with three and 0.1% none of them passes 2.93%.
    pub const IN_HAND: f64 = 3.0;

    /// A governor for the decision on `s`.
    pub fn new(s: &'a Snapshot<'a>) -> Governor<'a> {
        Governor {
            s,
            room: s.ledger.budget - Self::IN_HAND,
            // Until the outlook is built (the first call beyond the ready
            // agents), the rate of resolved calls; the outlook's rate, with
            // the calls still ringing, after.
            p_human: s.est.human_rate().clamp(0.01, 1.0),
            outlook: None,
            free: None,
            admitted: 0,
            closed: false,
        }
    }

    /// The abandons the tightest window can take before the limit (see
    /// the module docs; before those kept in hand).
    pub fn budget(&self) -> f64 {
        self.s.ledger.budget
    }

    /// Calls that can go out with a ready agent each: no risk.
    fn reserved(&self) -> u32 {
        self.s
            .ready
            .saturating_sub(self.s.ringing_since_ms.len() as u32 + self.s.waiting)
    }

    /// The agents free within the horizon on this decision's snapshot,
    /// computed once for the strategy and the governor.
    pub(crate) fn free_agents(&mut self) -> &FreeAgents {
        let s = self.s;
        self.free.get_or_insert_with(|| FreeAgents::of(s))
    }

    /// Builds the outlook with the calls admitted so far.
    fn build(&mut self) {
        let s = self.s;
        let free = self.free.get_or_insert_with(|| FreeAgents::of(s));
        let mut o = Outlook::scaled(s, free, 1.0 + MARGIN);
        self.p_human = o.p_new;
        for _ in 0..self.admitted {
            o.add_call(self.p_human);
        }
        self.outlook = Some(o);
    }

    /// Whether one more call may go out; if so it is admitted.
    pub fn try_add(&mut self) -> bool {
        if self.closed {
            return false;
        }
        if self.admitted < self.reserved() {
            self.admitted += 1;
            let p = self.p_human;
            if let Some(o) = self.outlook.as_mut() {
                o.add_call(p);
            }
            return true;
        }
        if self.outlook.is_none() {
            self.build();
        }
        let (room, p) = (self.room, self.p_human);
        // The burst bound: even if every person among this decision's
        // extra calls found no agent, the expected abandons would fit the
        // budget. The tail check alone trusts the model's answer rate,
        // and a week's first minutes (an empty window, a hundred agents
        // ready) are where a model is most wrong.
        let extra = self.admitted.saturating_sub(self.reserved());
        if f64::from(extra + 1) * p > room {
            self.closed = true;
            return false;
        }
        let Some(o) = self.outlook.as_mut() else {
            return false;
        };
        o.add_call(p);
        if room >= 0.0 && o.p_excess_above(room.floor() as u64) <= RISK {
            self.admitted += 1;
            true
        } else {
            // The outlook now holds one call too many; nothing more is
            // admitted this decision, so it is not used again.
            self.closed = true;
            false
        }
    }

    /// How many of `proposed` calls may go out (admitting them).
    pub fn admit(&mut self, proposed: u32) -> u32 {
        while self.admitted < proposed && self.try_add() {}
        self.admitted.min(proposed)
    }
}
