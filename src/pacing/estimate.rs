//! Online estimators a campaign's pacing learns from: the chance an attempt
//! reaches a person, how long answered calls ring, and how long agents take
//! per call (talk plus wrap-up), conditioned on the time already spent.
//!
//! Pure and cheap: every decision reads them, so look-ups are table reads.
//! Cold starts use priors that real data replaces as it arrives.

/// Handle times are tabulated per second up to this many seconds; longer
/// calls count in the last bin.
const MAX_HANDLE_S: usize = 3600;

/// Entries of [`Estimators::free_soon_table`]: whole seconds 0 to
/// `MAX_HANDLE_S`.
pub const FREE_SOON_ENTRIES: usize = MAX_HANDLE_S + 1;

/// How many recent outcomes the answer-rate estimate looks at.
const ANSWER_WINDOW: usize = 500;

/// How many recent handle times the distribution keeps.
const HANDLE_WINDOW: usize = 400;

/// How many past attempts (and handle times) fill the estimators' windows:
/// what a starting runner reads from the store.
pub const HISTORY: usize = if ANSWER_WINDOW > HANDLE_WINDOW {
    ANSWER_WINDOW
} else {
    HANDLE_WINDOW
};

/// Priors for a campaign with no history yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    /// Probability an attempt reaches a person.
    pub human_rate: f64,
    /// Mean ring time of answered calls, seconds.
    pub ring_s: f64,
    /// Mean handle time (talk and wrap-up), seconds.
    pub handle_s: f64,
    /// Weight of the prior, in observations.
    pub weight: f64,
}

impl Default for Priors {
    fn default() -> Priors {
        Priors {
            human_rate: 0.3,
            ring_s: 10.0,
            handle_s: 270.0,
            weight: 20.0,
        }
    }
}

/// The estimators of one campaign.
#[derive(Debug, Clone)]
pub struct Estimators {
    priors: Priors,
    answers: RingBuffer<bool>,
    humans_in_window: usize,
    rings: RingBuffer<f64>,
    ring_sum: f64,
    /// Ring times of attempts that reached a person, and of the others
    /// (time until they resolved: machine, busy, failure, timeout), in
    /// half-second bins, as survival tables.
    human_ring: Survival,
    other_ring: Survival,
    /// Wrap-up times (from the end of the call to the agent's ready):
    /// an agent in wrap-up is much nearer to free than the handle time
    /// since the bridge can tell.
    wrap: Survival,
    handles: RingBuffer<u32>,
    /// survival[t] = P(handle time > t seconds), rebuilt as samples arrive.
    survival: Vec<f64>,
    /// The prior's pseudo-samples above each second (fixed: computed once,
    /// as the exponentials cost more than the rest of a rebuild).
    prior_above: Vec<f64>,
    /// Scratch: handle samples per whole second.
    counts: Vec<f64>,
    handle_sum: f64,
    since_rebuild: usize,
    /// p_free_within(e, horizon) for whole seconds e, for the horizon it
    /// was built for; rebuilt when stale (see [`Estimators::refresh`]).
    /// Each entry also holds p(1 − p), the variance term a decision sums.
    free_table: Vec<[f64; 2]>,
    free_horizon: f64,
    /// p_human_given_ringing for half-second bins, for the human rate it
    /// was built with.
    ringing_table: Vec<f64>,
    ringing_rate: f64,
}

impl Estimators {
    /// Handle samples between rebuilds of the survival table once the
    /// window has 50: a rebuild (and the free-soon table after it) costs
    /// tens of microseconds, and 128 new calls move a 400-call window's
    /// distribution little.
    const REBUILD_EVERY: usize = 128;

    /// Wrap-ups are modelled up to this long, seconds (within the
    /// survival tables' two minutes).
    const WRAP_MODEL_S: f64 = 110.0;

    /// Estimators starting from `priors`.
    pub fn new(priors: Priors) -> Estimators {
        let mut e = Estimators {
            priors,
            answers: RingBuffer::new(ANSWER_WINDOW),
            humans_in_window: 0,
            rings: RingBuffer::new(ANSWER_WINDOW),
            ring_sum: 0.0,
            human_ring: Survival::new(),
            other_ring: Survival::new(),
            wrap: Survival::new(),
            handles: RingBuffer::new(HANDLE_WINDOW),
            survival: vec![0.0; MAX_HANDLE_S + 2],
            prior_above: {
                let mean = priors.handle_s.max(1.0);
                (0..MAX_HANDLE_S + 2)
                    .map(|t| priors.weight * (-(t as f64) / mean).exp())
                    .collect()
            },
            counts: vec![0.0; MAX_HANDLE_S + 2],
            handle_sum: 0.0,
            since_rebuild: 0,
            free_table: Vec::new(),
            free_horizon: f64::NAN,
            ringing_table: Vec::new(),
            ringing_rate: f64::NAN,
        };
        e.rebuild_survival();
        e
    }

    /// Records an attempt's result: whether a person answered, and how long
    /// after dialling it resolved (answered, failed, or gave up ringing),
    /// seconds.
    pub fn record_attempt(&mut self, human: bool, after_s: f64) {
        if let Some(old) = self.answers.push(human)
            && old
        {
            self.humans_in_window -= 1;
        }
        let ring_rebuilt = if human {
            self.humans_in_window += 1;
            if let Some(old) = self.rings.push(after_s) {
                self.ring_sum -= old;
            }
            self.ring_sum += after_s;
            self.human_ring.record(after_s)
        } else {
            self.other_ring.record(after_s)
        };
        if ring_rebuilt {
            self.ringing_table.clear();
        }
    }

    /// The probability that a call still ringing after `elapsed_s` will
    /// reach a person: Bayes over the ring-time distributions of attempts
    /// that did and did not (before enough data, answer times are taken as
    /// exponential around the prior mean and other attempts as ringing to
    /// `timeout_s`).
    pub fn p_human_given_ringing(&self, elapsed_s: f64, timeout_s: f64) -> f64 {
        if elapsed_s >= timeout_s {
            return 0.0;
        }
        let ph = self.human_rate();
        let sh = self
            .human_ring
            .at(elapsed_s)
            .unwrap_or_else(|| (-elapsed_s / self.ring_s().max(0.5)).exp());
        let so = self.other_ring.at(elapsed_s).unwrap_or(1.0);
        let h = ph * sh;
        let o = (1.0 - ph) * so;
        if h + o <= 1e-12 { 0.0 } else { h / (h + o) }
    }

    /// Records a finished wrap-up's length (from the end of the call to
    /// the agent's disposition), seconds.
    pub fn record_wrap(&mut self, wrap_s: f64) {
        self.wrap.record(wrap_s);
    }

    /// The chance an agent in wrap-up is free by the time a call dialled
    /// now is answered (the horizon of [`Estimators::p_free_soon`]), from
    /// the wrap-up times seen ([`WrapFreeSoon::p`]): the checks and the
    /// horizon that do not depend on the agent, once for all of them.
    /// `None` before enough wrap-ups were seen.
    pub fn wrap_free_soon(&self) -> Option<WrapFreeSoon<'_>> {
        self.wrap.ready().then(|| WrapFreeSoon {
            wrap: &self.wrap,
            horizon_s: self.free_horizon_s(),
        })
    }

    /// The horizon of [`Estimators::p_free_soon`]: the mean ring time of
    /// answered calls, seconds.
    fn free_horizon_s(&self) -> f64 {
        self.ring_s()
    }

    /// Records a finished call's handle time (talk plus wrap-up), seconds.
    pub fn record_handle(&mut self, handle_s: f64) {
        let s = handle_s.clamp(0.0, MAX_HANDLE_S as f64) as u32;
        if let Some(old) = self.handles.push(s) {
            self.handle_sum -= f64::from(old);
        }
        self.handle_sum += f64::from(s);
        self.since_rebuild += 1;
        // Rebuilding is O(table); amortise it over many samples once the
        // window has data.
        if self.handles.len() < 50 || self.since_rebuild >= Self::REBUILD_EVERY {
            self.rebuild_survival();
        }
    }

    /// Probability an attempt reaches a person, blended with the prior.
    pub fn human_rate(&self) -> f64 {
        let n = self.answers.len() as f64;
        (self.humans_in_window as f64 + self.priors.human_rate * self.priors.weight)
            / (n + self.priors.weight)
    }

    /// [`Estimators::human_rate`] with `ringing` calls still ringing
    /// counted in, `expected_humans` of them expected to reach a person:
    /// unbiased while fast failures have resolved and slow answers not yet
    /// (a cold start, a burst of dialling).
    pub fn human_rate_with_ringing(&self, expected_humans: f64, ringing: usize) -> f64 {
        let n = self.answers.len() as f64 + ringing as f64;
        (self.humans_in_window as f64
            + expected_humans
            + self.priors.human_rate * self.priors.weight)
            / (n + self.priors.weight)
    }

    /// Mean ring time of answered calls, seconds.
    pub fn ring_s(&self) -> f64 {
        let n = self.rings.len() as f64;
        (self.ring_sum + self.priors.ring_s * self.priors.weight) / (n + self.priors.weight)
    }

    /// Mean handle time, seconds.
    pub fn handle_s(&self) -> f64 {
        let n = self.handles.len() as f64;
        (self.handle_sum + self.priors.handle_s * self.priors.weight) / (n + self.priors.weight)
    }

    /// Probability that an agent who has spent `elapsed_s` on a call is free
    /// within `horizon_s` more: (H(e+τ) − H(e)) / (1 − H(e)).
    pub fn p_free_within(&self, elapsed_s: f64, horizon_s: f64) -> f64 {
        let s_e = self.survival_at(elapsed_s);
        if s_e <= 1e-12 {
            // Longer than anything seen: assume the tail is memoryless with
            // the mean handle time.
            return 1.0 - (-horizon_s / self.handle_s().max(1.0)).exp();
        }
        let s_end = self.survival_at(elapsed_s + horizon_s);
        ((s_e - s_end) / s_e).clamp(0.0, 1.0)
    }

    /// Makes [`Estimators::p_free_soon`] current: rebuilds its table when
    /// the handle-time distribution or the horizon (the mean ring time of
    /// answered calls) has moved. Call before a round of decisions.
    pub fn refresh(&mut self) {
        let horizon = self.ring_s();
        if self.free_table.is_empty() || (horizon - self.free_horizon).abs() > 0.25 {
            self.free_horizon = horizon;
            self.rebuild_free_table(horizon);
        }
        let rate = self.human_rate();
        if self.ringing_table.is_empty() || (rate - self.ringing_rate).abs() > 0.01 {
            self.ringing_rate = rate;
            self.rebuild_ringing_table();
        }
    }

    /// `free_table[e] = p_free_within(e, horizon)` for every whole second,
    /// the same arithmetic as that function with the per-call work (the
    /// memoryless tail, the bounds) hoisted out: rebuilds come every few
    /// hundred calls and were a tenth of a simulation.
    fn rebuild_free_table(&mut self, horizon: f64) {
        let tail = 1.0 - (-horizon / self.handle_s().max(1.0)).exp();
        let mut table = std::mem::take(&mut self.free_table);
        table.clear();
        let survival = &self.survival[..=MAX_HANDLE_S];
        let last = survival[MAX_HANDLE_S];
        table.extend(survival.iter().enumerate().map(|(e, &s)| {
            let s_e = if e == 0 { 1.0 } else { s };
            if s_e <= 1e-12 {
                return [tail, tail * (1.0 - tail)];
            }
            // survival_at(e + horizon), inlined (a time's whole part fits
            // an i64, and the cast is one instruction).
            // e <= MAX_HANDLE_S: through u32, one instruction to convert.
            let t = f64::from(e as u32) + horizon;
            let i = t as i64 as usize;
            let s_end = if t <= 0.0 {
                1.0
            } else if i >= MAX_HANDLE_S {
                last
            } else {
                let f = t - i as f64;
                survival[i] * (1.0 - f) + self.survival[i + 1] * f
            };
            let p = ((s_e - s_end) / s_e).clamp(0.0, 1.0);
            [p, p * (1.0 - p)]
        }));
        self.free_table = table;
    }

    /// `ringing_table[b] = p_human_given_ringing(b / 2, ∞)` for every half
    /// second, the rate and the branch on the ring tables hoisted out.
    fn rebuild_ringing_table(&mut self) {
        let ph = self.human_rate();
        let ring_s = self.ring_s().max(0.5);
        let human = self.human_ring.ready();
        let other = self.other_ring.ready();
        // Survival::at for a whole half second b: 1 at 0, else entry b - 1.
        let at_bin = |table: &[f64], b: usize| if b == 0 { 1.0 } else { table[b - 1] };
        let mut table = std::mem::take(&mut self.ringing_table);
        table.clear();
        table.extend((0..=RING_BINS).map(|b| {
            let sh = if human {
                at_bin(&self.human_ring.table, b)
            } else {
                (-(b as f64 / 2.0) / ring_s).exp()
            };
            let so = if other {
                at_bin(&self.other_ring.table, b)
            } else {
                1.0
            };
            let h = ph * sh;
            let o = (1.0 - ph) * so;
            if h + o <= 1e-12 { 0.0 } else { h / (h + o) }
        }));
        self.ringing_table = table;
    }

    /// The table behind [`Estimators::p_free_soon`], when built: entry `e`
    /// for agents `e` whole seconds into their call (the last for anything
    /// longer) holds p and p(1 − p). Lets a decision look up a whole team
    /// without a branch or a bounds check per agent.
    pub fn free_soon_table(&self) -> Option<&[[f64; 2]; FREE_SOON_ENTRIES]> {
        self.free_table.as_slice().try_into().ok()
    }

    /// The table behind [`Estimators::p_human_ringing_soon`], when built:
    /// entry `b` for calls `b` half seconds into ringing, the last for
    /// anything longer (the ring timeout is checked by the caller).
    pub fn ringing_soon_table(&self) -> Option<&[f64]> {
        (!self.ringing_table.is_empty()).then_some(&self.ringing_table[..])
    }

    /// `p_human_given_ringing` from a table (half seconds); computes it
    /// when the table is not built.
    pub fn p_human_ringing_soon(&self, elapsed_s: f64, timeout_s: f64) -> f64 {
        if elapsed_s >= timeout_s {
            return 0.0;
        }
        let bin = ((elapsed_s.max(0.0) * 2.0) as usize).min(RING_BINS);
        match self.ringing_table.get(bin) {
            Some(p) => *p,
            None => self.p_human_given_ringing(elapsed_s, timeout_s),
        }
    }

    /// `p_free_within(elapsed_s, ring_s())` from a table (whole seconds):
    /// the chance a busy agent is free by the time a call dialled now is
    /// answered. Falls back to computing it when the table is not built.
    pub fn p_free_soon(&self, elapsed_s: f64) -> f64 {
        let i = (elapsed_s.max(0.0) as usize).min(MAX_HANDLE_S);
        match self.free_table.get(i) {
            Some(p) => p[0],
            None => self.p_free_within(elapsed_s, self.ring_s()),
        }
    }

    fn survival_at(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 1.0;
        }
        let i = t as usize;
        if i >= MAX_HANDLE_S {
            return self.survival[MAX_HANDLE_S];
        }
        // Linear between whole seconds, so the answer moves smoothly.
        let f = t - i as f64;
        self.survival[i] * (1.0 - f) + self.survival[i + 1] * f
    }

    fn rebuild_survival(&mut self) {
        self.since_rebuild = 0;
        self.free_table.clear();
        let n = self.handles.len();
        // The prior as a pseudo-sample spread exponentially around its mean,
        // weighted like `weight` observations, so that few samples do not
        // make a jagged distribution.
        let w = self.priors.weight;
        let total = n as f64 + w;
        self.counts.fill(0.0);
        for &h in self.handles.iter() {
            self.counts[h as usize] += 1.0;
        }
        let mut above = total;
        for ((s, count), prior_above) in self
            .survival
            .iter_mut()
            .zip(&self.counts)
            .zip(&self.prior_above)
        {
            above -= count;
            let data_above = above - w;
            *s = ((data_above.max(0.0) + prior_above) / total).clamp(0.0, 1.0);
        }
    }
}

/// Ring times are tabulated per half second up to this many bins (120 s).
const RING_BINS: usize = 240;

/// An empirical survival function over ring times, from the most recent
/// samples; `None` until it has enough of them.
#[derive(Debug, Clone)]
struct Survival {
    samples: RingBuffer<u16>,
    table: Vec<f64>,
    since_rebuild: usize,
}

impl Survival {
    const MIN_SAMPLES: usize = 30;

    fn new() -> Survival {
        Survival {
            samples: RingBuffer::new(ANSWER_WINDOW),
            table: vec![1.0; RING_BINS + 1],
            since_rebuild: 0,
        }
    }

    /// Adds a sample; returns whether the table was rebuilt.
    fn record(&mut self, s: f64) -> bool {
        let bin = (s * 2.0).clamp(0.0, RING_BINS as f64) as u16;
        self.samples.push(bin);
        self.since_rebuild += 1;
        let rebuild = self.samples.len() <= Self::MIN_SAMPLES * 2 || self.since_rebuild >= 64;
        if rebuild {
            self.since_rebuild = 0;
            let mut counts = vec![0usize; RING_BINS + 1];
            for &b in self.samples.iter() {
                counts[b as usize] += 1;
            }
            let n = self.samples.len() as f64;
            let mut above = self.samples.len();
            for (t, v) in self.table.iter_mut().enumerate() {
                above -= counts[t];
                *v = above as f64 / n;
            }
        }
        rebuild
    }

    /// Enough samples for [`Survival::at`] to answer.
    fn ready(&self) -> bool {
        self.samples.len() >= Self::MIN_SAMPLES
    }

    /// P(ring time > s), or `None` before enough samples.
    fn at(&self, s: f64) -> Option<f64> {
        if !self.ready() {
            return None;
        }
        Some(self.at_ready(s))
    }

    /// P(ring time > s), once [`Survival::ready`].
    fn at_ready(&self, s: f64) -> f64 {
        let bin = ((s * 2.0) as usize).min(RING_BINS);
        // Before the first bin nothing has resolved.
        if s < 0.5 {
            return 1.0;
        }
        self.table[bin - 1]
    }
}

/// The chance an agent in wrap-up is free within the horizon, from the
/// wrap-up so far (see [`Estimators::wrap_free_soon`]).
#[derive(Debug, Clone, Copy)]
pub struct WrapFreeSoon<'a> {
    wrap: &'a Survival,
    horizon_s: f64,
}

impl WrapFreeSoon<'_> {
    /// For an agent `elapsed_s` into wrap-up: `None` for a wrap-up longer
    /// than nearly all (the handle-time model answers then).
    pub fn p(&self, elapsed_s: f64) -> Option<f64> {
        if elapsed_s >= Estimators::WRAP_MODEL_S {
            return None;
        }
        let s_e = self.wrap.at_ready(elapsed_s);
        if s_e < 0.02 {
            return None;
        }
        let s_end = self.wrap.at_ready(elapsed_s + self.horizon_s);
        Some(((s_e - s_end) / s_e).clamp(0.0, 1.0))
    }
}

/// A fixed-size window of the most recent values.
#[derive(Debug, Clone)]
struct RingBuffer<T> {
    items: Vec<T>,
    next: usize,
    cap: usize,
}

impl<T: Copy> RingBuffer<T> {
    fn new(cap: usize) -> RingBuffer<T> {
        RingBuffer {
            items: Vec::with_capacity(cap),
            next: 0,
            cap,
        }
    }

    /// Adds a value; returns the one it pushed out, if full.
    fn push(&mut self, v: T) -> Option<T> {
        if self.items.len() < self.cap {
            self.items.push(v);
            None
        } else {
            let old = std::mem::replace(&mut self.items[self.next], v);
            self.next = (self.next + 1) % self.cap;
            Some(old)
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_start_uses_the_priors() {
        let e = Estimators::new(Priors::default());
        assert!((e.human_rate() - 0.3).abs() < 1e-9);
        assert!((e.ring_s() - 10.0).abs() < 1e-9);
        // Exponential prior: P(free within the mean) = 1 - 1/e.
        assert!((e.p_free_within(0.0, 270.0) - (1.0 - (-1.0f64).exp())).abs() < 0.01);
    }

    #[test]
    fn data_replaces_the_prior() {
        let mut e = Estimators::new(Priors::default());
        for i in 0..ANSWER_WINDOW {
            e.record_attempt(i % 2 == 0, if i % 2 == 0 { 6.0 } else { 25.0 });
        }
        assert!((e.human_rate() - (250.0 + 6.0) / 520.0).abs() < 1e-9);
        assert!(e.ring_s() < 6.5);
    }

    #[test]
    fn a_call_ringing_long_is_less_likely_a_person() {
        let mut e = Estimators::new(Priors::default());
        // People answer after 8-12 s; the rest ring out at 25 s.
        for i in 0..ANSWER_WINDOW {
            if i % 3 == 0 {
                e.record_attempt(true, 8.0 + f64::from(i as u32 % 5));
            } else {
                e.record_attempt(false, 25.0);
            }
        }
        let early = e.p_human_given_ringing(1.0, 25.0);
        assert!((early - e.human_rate()).abs() < 0.02, "{early}");
        assert!(e.p_human_given_ringing(10.0, 25.0) > 0.1);
        assert!(e.p_human_given_ringing(13.0, 25.0) < 0.01);
        assert_eq!(e.p_human_given_ringing(25.0, 25.0), 0.0);
    }

    #[test]
    fn handle_time_is_conditioned_on_time_spent() {
        let mut e = Estimators::new(Priors {
            weight: 1.0,
            ..Priors::default()
        });
        // Every call takes exactly 200 s.
        for _ in 0..HANDLE_WINDOW {
            e.record_handle(200.0);
        }
        assert!(e.p_free_within(0.0, 100.0) < 0.01);
        assert!(
            e.p_free_within(150.0, 60.0) > 0.99,
            "{}",
            e.p_free_within(150.0, 60.0)
        );
        assert!(e.p_free_within(150.0, 20.0) < 0.01);
        // Past everything seen: the memoryless tail.
        assert!(e.p_free_within(500.0, 10.0) > 0.0);
    }
}
