//! Campaign policy around the runner, with one home per rule: what
//! happens to a lead after an attempt, what compliance reads of a lead,
//! how long the safe-harbour message lasts, and what pacing assumes before
//! it has seen a call. The simulator, the live service, crash recovery and
//! `dialler check` all call these functions; none keeps a copy.
//!
//! Pure, like the rest of the core: `now` comes in as an argument.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::compliance::ledger::LedgerStatus;
use crate::compliance::{self, Context, LeadState, Registries, Verdict};
use crate::outcome::Outcome;
use crate::pacing::estimate::Priors;
use crate::phone::PhoneNumber;

/// The retry delay when the campaign names none for the outcome, nor for
/// `failure`.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// The safe-harbour message's length when the campaign does not say: long
/// enough for the seller's name and a number to call back, as the US
/// rules require.
pub const DEFAULT_SAFE_HARBOUR: Duration = Duration::from_secs(6);

/// How far back attempt start times matter to compliance (the per-day
/// attempt limit in the called party's day).
pub const RECENT_ATTEMPTS: Duration = Duration::from_secs(2 * 86_400);

/// How long the safe-harbour message plays before the abandoned call is
/// hung up.
pub fn safe_harbour(campaign: &Campaign) -> Duration {
    campaign.safe_harbour
}

/// The wait before a lead may be tried again after `outcome`: the
/// campaign's delay for it, else its `failure` delay, else an hour. An
/// interrupted call (a crash, a shutdown) waits as a failure does.
pub fn retry_delay(campaign: &Campaign, outcome: Outcome) -> Duration {
    campaign
        .retry_delay(outcome)
        .or_else(|| campaign.retry_delay(Outcome::Failure))
        .unwrap_or(DEFAULT_RETRY_DELAY)
}

/// What becomes of a lead after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// Finished: a person was put through, or no attempts are left.
    Done,
    /// Tried again no earlier than this.
    At(Millis),
}

/// What becomes of `lead` (its history including the attempt that just
/// ended) after an attempt that ended at `ended` with `outcome`: done when
/// a person was put through or no attempts are left; otherwise after the
/// retry delay, and not before the called party's next day when today's
/// attempts are used up (so the lead is not claimed only to be refused).
pub fn after_attempt(
    campaign: &Campaign,
    lead: &LeadRecord,
    outcome: Outcome,
    ended: Millis,
) -> NextAttempt {
    if outcome == Outcome::Connected || lead.attempts >= campaign.max_attempts {
        return NextAttempt::Done;
    }
    let mut at = ended.plus(retry_delay(campaign, outcome));
    if let Some(day) =
        compliance::day_limit_until(&lead.state(), campaign.max_attempts_per_day, at.utc())
    {
        at = at.max(Millis::from_utc(day));
    }
    NextAttempt::At(at)
}

/// What the pacer assumes before it has seen a call: the campaign's own
/// expectations where its file states them, fixed guesses otherwise. The
/// simulator starts from the same priors as a live campaign (never from
/// the scenario's true figures).
pub fn priors(campaign: &Campaign) -> Priors {
    let mut p = Priors::default();
    if let Some(rate) = campaign.expected_answer_rate {
        p.human_rate = rate;
    }
    if let Some(handle) = campaign.expected_handle {
        p.handle_s = handle.as_secs_f64();
    }
    p
}

/// One past attempt at a number, as compliance needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastAttempt {
    /// When it was dialled.
    pub started_at: Millis,
    /// When it ended, if it has.
    pub ended_at: Option<Millis>,
    /// How it ended, if it has.
    pub outcome: Option<Outcome>,
}

/// A lead as compliance reads it, owned: assembled from the store for the
/// live hopper and `dialler check`, and by the simulator for its own
/// leads, always by [`LeadRecord::new`] and [`LeadRecord::with_history`].
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRecord {
    /// The number.
    pub number: PhoneNumber,
    /// Candidate time zones; empty when unknown.
    pub zones: Vec<Tz>,
    /// The person asked not to be called (a `dnc` disposition, an
    /// erasure): refused whatever the lists say.
    pub opted_out: bool,
    /// Attempts made so far.
    pub attempts: u32,
    /// Start times of its attempts within [`RECENT_ATTEMPTS`].
    pub recent_attempts: Vec<DateTime<Utc>>,
    /// The last finished attempt's outcome and end.
    pub last_outcome: Option<(Outcome, DateTime<Utc>)>,
    /// The end of the last abandoned call to the number.
    pub last_abandon_at: Option<DateTime<Utc>>,
    /// The end of the last call to the number that reached a machine.
    pub last_machine_at: Option<DateTime<Utc>>,
}

impl LeadRecord {
    /// A lead with no history.
    pub fn new(number: PhoneNumber, zones: Vec<Tz>) -> LeadRecord {
        LeadRecord {
            number,
            zones,
            opted_out: false,
            attempts: 0,
            recent_attempts: Vec::new(),
            last_outcome: None,
            last_abandon_at: None,
            last_machine_at: None,
        }
    }

    /// The lead with its past attempts (in any order) as of `now`: the
    /// recent start times, the last outcome and the last abandon. An
    /// unfinished attempt (one in flight, or cut by a crash before
    /// recovery) counts as recent but has no outcome yet.
    pub fn with_history(
        mut self,
        attempts: impl IntoIterator<Item = PastAttempt>,
        now: Millis,
    ) -> LeadRecord {
        self.fill_history(attempts, now);
        self
    }

    /// [`LeadRecord::with_history`] in place, reusing the record's
    /// buffers (the simulator checks every dial).
    pub fn fill_history(&mut self, attempts: impl IntoIterator<Item = PastAttempt>, now: Millis) {
        let since = now.minus(RECENT_ATTEMPTS);
        let mut last: Option<(Millis, Outcome)> = None;
        let mut abandon: Option<Millis> = None;
        let mut machine: Option<Millis> = None;
        self.recent_attempts.clear();
        for a in attempts {
            if a.started_at >= since {
                self.recent_attempts.push(a.started_at.utc());
            }
            if let (Some(end), Some(outcome)) = (a.ended_at, a.outcome) {
                if last.is_none_or(|(t, _)| end >= t) {
                    last = Some((end, outcome));
                }
                match outcome {
                    Outcome::Abandoned => abandon = abandon.max(Some(end)),
                    Outcome::Machine => machine = machine.max(Some(end)),
                    _ => {}
                }
            }
        }
        self.recent_attempts.sort_unstable();
        self.last_outcome = last.map(|(t, o)| (o, t.utc()));
        self.last_abandon_at = abandon.map(Millis::utc);
        self.last_machine_at = machine.map(Millis::utc);
    }

    /// The borrowed view [`compliance::check`] takes.
    pub fn state(&self) -> LeadState<'_> {
        LeadState {
            number: self.number,
            zones: &self.zones,
            opted_out: self.opted_out,
            attempts: self.attempts,
            recent_attempts: &self.recent_attempts,
            last_outcome: self.last_outcome,
            last_abandon_at: self.last_abandon_at,
            last_machine_at: self.last_machine_at,
        }
    }
}

/// What the campaign runner knows that a dial's verdict depends on: the
/// abandonment ledger now and whether an agent is free for this call
/// (see [`crate::dialer::Runner::dial_view`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DialView {
    /// The ledger's figures now.
    pub ledger: LedgerStatus,
    /// When the ledger's figures next improve.
    pub ledger_retry_at: Option<DateTime<Utc>>,
    /// A ready agent is free for every call ringing, this one included.
    pub agent_reserved: bool,
}

/// May the runner's dial of `lead` go out at `now`? The one verdict the
/// live hopper and the simulator take just before each INVITE.
pub fn screen(
    lead: &LeadRecord,
    campaign: &Campaign,
    registries: &Registries,
    dial: &DialView,
    now: DateTime<Utc>,
) -> Verdict {
    let ctx = Context {
        registries,
        ledger: Some(dial.ledger),
        ledger_retry_at: dial.ledger_retry_at,
        // At the limit the pacer dials progressively: one call per ready
        // agent, which is a reserved agent.
        agent_reserved: dial.ledger.exhausted && dial.agent_reserved,
    };
    compliance::check(&lead.state(), campaign, &ctx, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
        crate::campaign::find(&dir, "uk-broadband").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn retry_delays_fall_back_to_failure_then_an_hour() {
        let mut c = campaign();
        assert_eq!(
            retry_delay(&c, Outcome::NoAnswer),
            Duration::from_secs(5 * 3600)
        );
        assert_eq!(
            retry_delay(&c, Outcome::Interrupted),
            retry_delay(&c, Outcome::Failure)
        );
        c.retry_delay.clear();
        assert_eq!(retry_delay(&c, Outcome::Busy), DEFAULT_RETRY_DELAY);
    }

    fn london(attempts: &[(i64, i64, Outcome)], now: Millis) -> LeadRecord {
        let number = PhoneNumber {
            digits: 447_700_900_123,
            country: crate::phone::Country::UnitedKingdom,
        };
        let mut r = LeadRecord::new(number, vec![chrono_tz::Europe::London]).with_history(
            attempts.iter().map(|&(s, e, o)| PastAttempt {
                started_at: Millis(s),
                ended_at: Some(Millis(e)),
                outcome: Some(o),
            }),
            now,
        );
        r.attempts = attempts.len() as u32;
        r
    }

    #[test]
    fn a_lead_is_done_when_connected_or_out_of_attempts() {
        let mut c = campaign();
        c.max_attempts_per_day = 4;
        // Tuesday 1 December 2026, 10:00 in London.
        let t = Millis(1_796_119_200_000);
        let once = london(&[(t.ms() - 60_000, t.ms(), Outcome::Busy)], t);
        assert_eq!(
            after_attempt(&c, &once, Outcome::Connected, t),
            NextAttempt::Done
        );
        let mut spent = once.clone();
        spent.attempts = c.max_attempts;
        assert_eq!(
            after_attempt(&c, &spent, Outcome::Busy, t),
            NextAttempt::Done
        );
        assert_eq!(
            after_attempt(&c, &once, Outcome::Busy, t),
            NextAttempt::At(t.plus(Duration::from_secs(3600)))
        );
    }

    #[test]
    fn a_retry_waits_for_the_next_local_day_when_today_is_used_up() {
        let c = campaign();
        assert_eq!(c.max_attempts_per_day, 1);
        // Busy at 10:00 on Tuesday 1 December 2026 in London: the busy
        // delay (1 h) would retry the same day; the lead waits for
        // Wednesday 00:00 instead.
        let t = Millis(1_796_119_200_000);
        let lead = london(&[(t.ms() - 60_000, t.ms(), Outcome::Busy)], t);
        let midnight = chrono::DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
            .map(|d| Millis::from_utc(d.to_utc()))
            .unwrap_or_default();
        assert_eq!(
            after_attempt(&c, &lead, Outcome::Busy, t),
            NextAttempt::At(midnight)
        );
    }

    #[test]
    fn history_gives_recent_starts_the_last_outcome_the_last_abandon_and_machine() {
        let number = PhoneNumber {
            digits: 447_700_900_123,
            country: crate::phone::Country::UnitedKingdom,
        };
        let day = 86_400_000;
        let now = Millis(10 * day);
        let a = |start: i64, end: Option<i64>, o: Option<Outcome>| PastAttempt {
            started_at: Millis(start),
            ended_at: end.map(Millis),
            outcome: o,
        };
        let lead = LeadRecord::new(number, vec![chrono_tz::Europe::London]).with_history(
            [
                a(now.ms() - 1000, None, None),
                a(5 * day, Some(5 * day + 60_000), Some(Outcome::Abandoned)),
                a(8 * day, Some(8 * day + 20_000), Some(Outcome::Machine)),
                a(9 * day, Some(9 * day + 30_000), Some(Outcome::Busy)),
            ],
            now,
        );
        assert_eq!(lead.recent_attempts.len(), 3);
        assert_eq!(
            lead.last_outcome,
            Some((Outcome::Busy, Millis(9 * day + 30_000).utc()))
        );
        assert_eq!(lead.last_abandon_at, Some(Millis(5 * day + 60_000).utc()));
        // The machine is not the last outcome but is still known.
        assert_eq!(lead.last_machine_at, Some(Millis(8 * day + 20_000).utc()));
    }
}
