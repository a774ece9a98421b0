//! The abandonment ledger: human answers and abandons of one campaign over
//! its rolling compliance window.
//!
//! Pure and in memory; the store keeps the same events (`abandon_ledger`)
//! and [`Ledger::from_events`] rebuilds this after a restart, so the figures
//! are exact across restarts. Pacing reads the budget; compliance refuses
//! predictive dials once the limit is reached.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

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

/// A campaign's rolling window of human answers and abandons. An event at
/// exactly `now - window` has left the window; an event at `now` is in it.
///
/// Events are kept in time order with running totals, so the counts now
/// and the counts at any later time (what will be left once older events
/// roll out) are a binary search, not a walk: pacing asks for both on
/// every decision.
#[derive(Debug, Clone)]
pub struct Ledger {
    window_ms: i64,
    /// (time in ms, human answers so far, abandons so far), running totals
    /// from the first event ever recorded, each including its own event.
    events: VecDeque<(i64, u64, u64)>,
    /// Running totals of the events already rolled out.
    gone: (u64, u64),
    /// Events rolled out so far, to turn `ahead`'s position into an index.
    popped: u64,
    /// The last cutoff [`Ledger::counts_ahead_ms`] used and the position
    /// (counting rolled-out events) of the first event after it: pacing
    /// asks for ever later times, so the next answer walks on from there
    /// instead of searching the whole window.
    ahead: Option<(i64, u64)>,
    /// Bumped when a late event changes the running totals of later ones,
    /// so a [`LeastBudget`] built before knows to start again.
    revision: u64,
}

/// What [`Ledger::least_budget_ms`] keeps between calls: a sliding maximum
/// over the positions the stretch covers, so that a caller asking for
/// ever later stretches (pacing, at every decision) pays for each event
/// once rather than walking an hour of them each time.
#[derive(Debug, Clone, Default)]
pub struct LeastBudget {
    valid: bool,
    revision: u64,
    limit: f64,
    lo_cut: i64,
    hi_cut: i64,
    /// Events rolled out by `lo_cut`, counting from the first ever.
    lo: u64,
    /// The next position to add.
    next: u64,
    /// (position, limit × answers − abandons rolled out by then), values
    /// decreasing from the front.
    deque: VecDeque<(u64, f64)>,
}

impl Ledger {
    /// An empty ledger for a window of `window`.
    pub fn new(window: std::time::Duration) -> Ledger {
        Ledger {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            events: VecDeque::new(),
            gone: (0, 0),
            popped: 0,
            ahead: None,
            revision: 0,
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

    /// The window's length.
    pub fn window(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.window_ms.max(0) as u64)
    }

    fn totals(&self) -> (u64, u64) {
        self.events.back().map_or(self.gone, |&(_, h, a)| (h, a))
    }

    /// Records an event at `at`. Events normally arrive in time order; a
    /// late one is slotted into place.
    pub fn record(&mut self, at: DateTime<Utc>, event: Event) {
        let t = at.timestamp_millis();
        let (dh, da) = match event {
            Event::HumanAnswer => (1, 0),
            Event::Abandon => (0, 1),
        };
        // Events come in time order, so the end is almost always the place.
        let pos = if self.events.back().is_none_or(|e| e.0 <= t) {
            self.events.len()
        } else {
            self.events.partition_point(|e| e.0 <= t)
        };
        if pos < self.events.len() {
            // A late event: the cursor's position may have moved, and the
            // running totals after it change.
            self.ahead = None;
            self.revision += 1;
        }
        let (h, a) = if pos == 0 {
            self.gone
        } else {
            let e = self.events[pos - 1];
            (e.1, e.2)
        };
        self.events.insert(pos, (t, h + dh, a + da));
        for e in self.events.range_mut(pos + 1..) {
            e.1 += dh;
            e.2 += da;
        }
    }

    /// Drops events that have left the window as of `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        self.advance_ms(now.timestamp_millis());
    }

    /// [`Ledger::advance`] with the time in ms since the Unix epoch.
    pub fn advance_ms(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.window_ms);
        while let Some(&(t, h, a)) = self.events.front() {
            if t > cutoff {
                break;
            }
            self.events.pop_front();
            self.gone = (h, a);
            self.popped += 1;
        }
    }

    /// Human answers and abandons in the window.
    pub fn counts(&self) -> (u64, u64) {
        let (h, a) = self.totals();
        (h - self.gone.0, a - self.gone.1)
    }

    /// Human answers and abandons that will still be in the window at
    /// `later`, counting only events recorded so far: how much room the
    /// window will have once older events roll out.
    pub fn counts_at(&self, later: DateTime<Utc>) -> (u64, u64) {
        self.counts_at_ms(later.timestamp_millis())
    }

    /// [`Ledger::counts_at`] with the time in ms since the Unix epoch.
    pub fn counts_at_ms(&self, later_ms: i64) -> (u64, u64) {
        let cutoff = later_ms.saturating_sub(self.window_ms);
        let n = self.events.partition_point(|e| e.0 <= cutoff);
        self.counts_after(n)
    }

    /// [`Ledger::counts_at_ms`] for a caller whose `later_ms` rarely goes
    /// back (pacing asks for an hour ahead of now at every decision): the
    /// same answer, found by walking on from the last call's position
    /// rather than a binary search over the whole window (whose cache
    /// misses showed in simulator profiles).
    pub fn counts_ahead_ms(&mut self, later_ms: i64) -> (u64, u64) {
        let cutoff = later_ms.saturating_sub(self.window_ms);
        let mut n = match self.ahead {
            Some((last, pos)) if last <= cutoff => pos.saturating_sub(self.popped) as usize,
            _ => self.events.partition_point(|e| e.0 <= cutoff),
        };
        while self.events.get(n).is_some_and(|e| e.0 <= cutoff) {
            n += 1;
        }
        self.ahead = Some((cutoff, self.popped + n as u64));
        self.counts_after(n)
    }

    /// The least budget, `limit × answers − abandons` (limit as a
    /// fraction), that the window will have at any time from `from_ms` to
    /// `to_ms`, counting only events recorded so far. The window's budget
    /// can dip between two instants as old answers roll out before the
    /// abandons among them: a strategy riding the limit would pass it
    /// there. `cache` carries the work from one call to the next; calls
    /// whose stretches move forward (or stay) cost a few steps each.
    pub fn least_budget_ms(
        &self,
        cache: &mut LeastBudget,
        from_ms: i64,
        to_ms: i64,
        limit: f64,
    ) -> f64 {
        let lo_cut = from_ms.saturating_sub(self.window_ms);
        let hi_cut = to_ms.max(from_ms).saturating_sub(self.window_ms);
        // The events rolled out by `cut`, counting from the first ever,
        // walking on from `start` (known to be rolled out by then).
        let gone_by = |cut: i64, start: u64| -> u64 {
            let mut n = start.max(self.popped);
            while self
                .events
                .get((n - self.popped) as usize)
                .is_some_and(|e| e.0 <= cut)
            {
                n += 1;
            }
            n
        };
        let value = |g: u64| -> f64 {
            let (h, a) = if g <= self.popped {
                self.gone
            } else {
                let e = self.events[(g - self.popped - 1) as usize];
                (e.1, e.2)
            };
            limit * h as f64 - a as f64
        };
        let fresh = !cache.valid
            || cache.revision != self.revision
            || cache.limit.to_bits() != limit.to_bits()
            || lo_cut < cache.lo_cut
            || hi_cut < cache.hi_cut;
        if fresh {
            let lo = gone_by(lo_cut, self.popped);
            *cache = LeastBudget {
                valid: true,
                revision: self.revision,
                limit,
                lo_cut,
                hi_cut,
                lo,
                next: lo,
                deque: VecDeque::new(),
            };
        } else {
            cache.lo = gone_by(lo_cut, cache.lo);
            cache.lo_cut = lo_cut;
            cache.hi_cut = hi_cut;
        }
        cache.next = cache.next.max(cache.lo);
        let hi = gone_by(hi_cut, cache.next.saturating_sub(1).max(cache.lo));
        for g in cache.next..=hi {
            let v = value(g);
            while cache.deque.back().is_some_and(|&(_, b)| b <= v) {
                cache.deque.pop_back();
            }
            cache.deque.push_back((g, v));
        }
        cache.next = cache.next.max(hi + 1);
        while cache.deque.front().is_some_and(|&(g, _)| g < cache.lo) {
            cache.deque.pop_front();
        }
        let (h, a) = self.totals();
        let most = cache
            .deque
            .front()
            .map_or_else(|| value(cache.lo), |&(_, v)| v);
        limit * h as f64 - a as f64 - most
    }

    /// Human answers and abandons recorded after `since_ms` (and still in
    /// the window).
    pub fn counts_since_ms(&self, since_ms: i64) -> (u64, u64) {
        let n = self.events.partition_point(|e| e.0 <= since_ms);
        self.counts_after(n)
    }

    /// Human answers and abandons after the first `n` events still held.
    fn counts_after(&self, n: usize) -> (u64, u64) {
        let (h0, a0) = match n.checked_sub(1).and_then(|i| self.events.get(i)) {
            Some(e) => (e.1, e.2),
            None => self.gone,
        };
        let (h, a) = self.totals();
        (h - h0, a - a0)
    }

    /// When the oldest event leaves the window, freeing budget.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.events
            .front()
            .and_then(|&(t, _, _)| DateTime::from_timestamp_millis(t.checked_add(self.window_ms)?))
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
        let (human_answers, abandons) = self.counts();
        let h = human_answers as f64;
        let a = abandons as f64;
        // An abandon whose answer has left the window (or one entered by
        // recovery) with no answer in it: the window is as bad as it can
        // be, and fails closed.
        let rate_percent = match (human_answers, abandons) {
            (0, 0) => 0.0,
            (0, _) => 100.0,
            _ => 100.0 * a / h,
        };
        LedgerStatus {
            human_answers,
            abandons,
            rate_percent,
            budget_to_target: target_percent / 100.0 * h - a,
            budget_to_limit: limit_percent / 100.0 * h - a,
            exhausted: abandons > 0 && rate_percent >= limit_percent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

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
    fn late_events_slot_into_place_and_keep_counts_ahead_exact() {
        let mut l = Ledger::new(DAY);
        l.record(t(0), Event::HumanAnswer);
        l.record(t(300), Event::HumanAnswer);
        l.record(t(100), Event::Abandon);
        l.record(t(-10), Event::HumanAnswer);
        assert_eq!(l.counts(), (3, 1));
        assert_eq!(l.counts_at(t(86_400)), (1, 1));
        assert_eq!(l.counts_at(t(86_500)), (1, 0));
        l.advance(t(86_395));
        assert_eq!(l.counts(), (2, 1));
        assert_eq!(l.counts_at(t(86_700)), (0, 0));
    }

    #[test]
    fn counts_ahead_walk_on_and_agree_with_the_search() {
        // Events every 7 s with an abandon every fifth; asked at ever later
        // times, then back, then after a late event and a roll-out.
        let mut l = Ledger::new(DAY);
        for i in 0..2000 {
            let e = if i % 5 == 0 {
                Event::Abandon
            } else {
                Event::HumanAnswer
            };
            l.record(t(i * 7), e);
        }
        let ms = |secs: i64| t(secs).timestamp_millis();
        for later in (86_000..100_000).step_by(333).chain([90_000, 86_400]) {
            assert_eq!(l.counts_ahead_ms(ms(later)), l.counts_at(t(later)));
        }
        l.record(t(5_000), Event::Abandon);
        l.advance(t(90_000));
        for later in (90_000..110_000).step_by(777) {
            assert_eq!(l.counts_ahead_ms(ms(later)), l.counts_at(t(later)));
        }
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
        // One abandon and no answer in the window exhausts it.
        l.record(t(86_600), Event::Abandon);
        let s = l.status(t(86_700), 2.0, 3.0);
        assert_eq!((s.human_answers, s.abandons), (0, 1));
        assert!(s.exhausted, "an abandon with no answer is over any limit");
        assert!((s.rate_percent - 100.0).abs() < 1e-9);
    }

    /// The least budget over a stretch equals the minimum of the budget
    /// at every millisecond of it, found by brute force, as the stretch
    /// moves forward call after call (the cache) and after a late event.
    #[test]
    fn the_least_budget_ahead_is_the_minimum_over_the_stretch() {
        let mut l = Ledger::new(std::time::Duration::from_millis(1_000));
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..400i64 {
            let e = if next() % 5 == 0 {
                Event::Abandon
            } else {
                Event::HumanAnswer
            };
            l.record(t_ms(i * 5 + (next() % 5) as i64), e);
        }
        let limit = 0.25;
        let brute = |l: &Ledger, from: i64, to: i64| -> f64 {
            (from..=to)
                .map(|t| {
                    let (h, a) = l.counts_at_ms(t);
                    limit * h as f64 - a as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        let mut cache = LeastBudget::default();
        for now in (2_000..2_900).step_by(37) {
            l.advance_ms(now);
            let got = l.least_budget_ms(&mut cache, now, now + 300, limit);
            let want = brute(&l, now, now + 300);
            assert!((got - want).abs() < 1e-9, "at {now}: {got} vs {want}");
        }
        // A late event changes the totals after it: the cache starts again.
        l.record(t_ms(2_500), Event::Abandon);
        let got = l.least_budget_ms(&mut cache, 2_900, 3_200, limit);
        assert!((got - brute(&l, 2_900, 3_200)).abs() < 1e-9);
        // A stretch that goes back (the next opening, then now) too.
        let got = l.least_budget_ms(&mut cache, 2_950, 3_000, limit);
        assert!((got - brute(&l, 2_950, 3_000)).abs() < 1e-9);
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
