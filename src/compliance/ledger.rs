//! The abandonment ledger: human answers and abandons of one campaign over
//! its rolling compliance window.
//!
//! Pure and in memory; the store keeps the same events (`abandon_ledger`)
//! and [`Ledger::from_events`] rebuilds this after a restart, so the figures
//! are exact across restarts. Pacing reads the budget; compliance refuses
//! predictive dials once the limit is reached.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A live person answered.
    HumanAnswer,
    /// A live person answered and no agent took the call in time.
    Abandon,
}

/// The window's figures against the campaign's target and limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LedgerStatus {
    /// Human answers in the window.
    pub human_answers: u64,
    /// Abandons in the window.
    pub abandons: u64,
    /// Abandons per human answer, percent (0 with no answers).
    pub rate_percent: f64,
    /// Abandons the window can still take before the rate passes the
    /// target, at today's answer count (negative when over).
    pub budget_to_target: f64,
    /// The same against the limit.
    pub budget_to_limit: f64,
    /// The rate is at or over the limit: only dials with an agent reserved
    /// may go out until the window rolls.
    pub exhausted: bool,
}

/// Rolling counts over a window. An event at exactly `now - window` has
/// left the window; an event at `now` is in it.
#[derive(Debug, Clone)]
pub struct Ledger {
    window: Duration,
    events: VecDeque<(DateTime<Utc>, Event)>,
    human_answers: u64,
    abandons: u64,
}

impl Ledger {
    /// An empty ledger over `window`.
    pub fn new(window: std::time::Duration) -> Ledger {
        Ledger {
            window: Duration::from_std(window).unwrap_or(Duration::MAX),
            events: VecDeque::new(),
            human_answers: 0,
            abandons: 0,
        }
    }

    /// Rebuilds a ledger from stored events (any order), as of `now`.
    pub fn from_events(
        window: std::time::Duration,
        events: impl IntoIterator<Item = (DateTime<Utc>, Event)>,
        now: DateTime<Utc>,
    ) -> Ledger {
        let mut l = Ledger::new(window);
        let mut all: Vec<_> = events.into_iter().collect();
        all.sort_by_key(|(t, _)| *t);
        for (t, e) in all {
            l.record(t, e);
        }
        l.advance(now);
        l
    }

    /// The window length.
    pub fn window(&self) -> std::time::Duration {
        self.window.to_std().unwrap_or_default()
    }

    /// Records an event. Events normally come in time order; a late one is
    /// put in its place.
    pub fn record(&mut self, at: DateTime<Utc>, event: Event) {
        match event {
            Event::HumanAnswer => self.human_answers += 1,
            Event::Abandon => self.abandons += 1,
        }
        let pos = self.events.partition_point(|(t, _)| *t <= at);
        self.events.insert(pos, (at, event));
    }

    /// Drops the events that have left the window as of `now`. Call before
    /// reading figures; [`Ledger::status`] does.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let Some(cutoff) = now.checked_sub_signed(self.window) else {
            return;
        };
        while let Some(&(t, e)) = self.events.front() {
            if t > cutoff {
                break;
            }
            self.events.pop_front();
            match e {
                Event::HumanAnswer => self.human_answers -= 1,
                Event::Abandon => self.abandons -= 1,
            }
        }
    }

    /// Human answers and abandons in the window, without advancing it.
    pub fn counts(&self) -> (u64, u64) {
        (self.human_answers, self.abandons)
    }

    /// Human answers and abandons that will still be in the window at
    /// `later`, if nothing new happens: what the rate can rise to as old
    /// answers roll out. Scans only the events that leave by then.
    pub fn counts_at(&self, later: DateTime<Utc>) -> (u64, u64) {
        let Some(cutoff) = later.checked_sub_signed(self.window) else {
            return self.counts();
        };
        let (mut h, mut a) = self.counts();
        for &(t, e) in &self.events {
            if t > cutoff {
                break;
            }
            match e {
                Event::HumanAnswer => h -= 1,
                Event::Abandon => a -= 1,
            }
        }
        (h, a)
    }

    /// When the oldest event leaves the window (the figures can only
    /// improve then), if there is one.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.events
            .front()
            .and_then(|(t, _)| t.checked_add_signed(self.window))
    }

    /// The window's figures as of `now` against `target` and `limit`
    /// (percent).
    pub fn status(
        &mut self,
        now: DateTime<Utc>,
        target_percent: f64,
        limit_percent: f64,
    ) -> LedgerStatus {
        self.advance(now);
        let h = self.human_answers as f64;
        let a = self.abandons as f64;
        let rate_percent = if self.human_answers == 0 {
            0.0
        } else {
            100.0 * a / h
        };
        LedgerStatus {
            human_answers: self.human_answers,
            abandons: self.abandons,
            rate_percent,
            budget_to_target: target_percent / 100.0 * h - a,
            budget_to_limit: limit_percent / 100.0 * h - a,
            exhausted: self.abandons > 0 && rate_percent >= limit_percent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    #[test]
    fn events_leave_the_window_exactly_at_its_length() {
        let mut l = Ledger::new(DAY);
        l.record(t(0), Event::HumanAnswer);
        l.record(t(0), Event::Abandon);
        l.record(t(10), Event::HumanAnswer);
        l.advance(t(86_399));
        assert_eq!(l.counts(), (2, 1));
        l.advance(t(86_400));
        assert_eq!(l.counts(), (1, 0));
        assert_eq!(l.next_expiry(), Some(t(86_410)));
        l.advance(t(86_410));
        assert_eq!(l.counts(), (0, 0));
    }

    #[test]
    fn counts_ahead_drop_what_will_have_rolled_out() {
        let mut l = Ledger::new(DAY);
        l.record(t(0), Event::HumanAnswer);
        l.record(t(100), Event::Abandon);
        l.record(t(200), Event::HumanAnswer);
        assert_eq!(l.counts_at(t(86_400)), (1, 1));
        assert_eq!(l.counts_at(t(86_500)), (1, 0));
        assert_eq!(l.counts_at(t(50)), (2, 1));
    }

    #[test]
    fn budget_and_exhaustion_follow_the_rate() {
        let mut l = Ledger::new(DAY);
        for i in 0..100 {
            l.record(t(i), Event::HumanAnswer);
        }
        l.record(t(50), Event::Abandon);
        let s = l.status(t(200), 2.0, 3.0);
        assert_eq!((s.human_answers, s.abandons), (100, 1));
        assert!((s.rate_percent - 1.0).abs() < 1e-9);
        assert!((s.budget_to_target - 1.0).abs() < 1e-9);
        assert!((s.budget_to_limit - 2.0).abs() < 1e-9);
        assert!(!s.exhausted);
        l.record(t(60), Event::Abandon);
        l.record(t(61), Event::Abandon);
        let s = l.status(t(200), 2.0, 3.0);
        assert!(s.exhausted, "3 of 100 is at the 3% limit");
        assert!(s.budget_to_target < 0.0);
        // A day later everything has rolled out.
        let s = l.status(t(86_500), 2.0, 3.0);
        assert_eq!((s.human_answers, s.abandons, s.exhausted), (0, 0, false));
    }

    #[test]
    fn rebuilding_from_stored_events_gives_the_same_figures() {
        let events = vec![
            (t(30), Event::Abandon),
            (t(5), Event::HumanAnswer),
            (t(30), Event::HumanAnswer),
            (t(-90_000), Event::HumanAnswer),
        ];
        let mut live = Ledger::new(DAY);
        for &(at, e) in &events {
            live.record(at, e);
        }
        let mut rebuilt = Ledger::from_events(DAY, events, t(100));
        assert_eq!(
            live.status(t(100), 2.0, 3.0),
            rebuilt.status(t(100), 2.0, 3.0)
        );
        assert_eq!(rebuilt.counts(), (2, 1));
    }
}
