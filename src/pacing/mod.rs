//! Pacing: how many new calls to launch now.
//!
//! Owns the strategies behind one trait, [`Pacer`], and the estimators they
//! learn from ([`estimate`]). Pure: a decision reads a [`Snapshot`] the
//! campaign runner builds (agents, calls in flight, ledger figures) and
//! returns a count. No clock, no I/O; the same code runs live and in the
//! simulator.
//!
//! The strategies: `predictive` (ours), `progressive`, `ratio:R`,
//! `feedback` (the classic adaptive dial level), `threshold` and `oracle`
//! (the clairvoyant bound, simulator only).

pub mod estimate;

use crate::campaign::Strategy;
use estimate::{Estimators, FREE_SOON_ENTRIES};

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
    /// For each call dialled and not yet answered: when it was dialled, ms
    /// (see [`Snapshot::ringing_elapsed_s`]).
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

    /// For each call ringing, seconds since it was dialled.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Calls to launch now.
    pub launch: u32,
    /// Ask again no later than this, ms.
    pub wake_at_ms: Option<u64>,
}

/// A pacing strategy.
pub trait Pacer: Send {
    /// Decides how many calls to launch at `s.now_ms`. Called by the runner
    /// after every event and whenever its pacing timer fires.
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision;

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
        Strategy::Progressive => Box::new(Ratio {
            ratio: 1.0,
            level: 1.0,
        }),
        Strategy::Ratio { ratio } => Box::new(Ratio {
            ratio,
            level: ratio,
        }),
        Strategy::Feedback => Box::new(Feedback::new()),
        Strategy::Threshold { probability } => Box::new(Threshold {
            probability,
            level: 1.0,
        }),
        Strategy::Oracle => Box::new(Oracle { level: 1.0 }),
    }
}

/// Calls in flight the dial level allows, minus those already out.
fn room(s: &Snapshot<'_>) -> u32 {
    let cap = (s.max_dial_level * f64::from(s.active_agents)).floor() as u32;
    let out = s.ringing_since_ms.len() as u32 + s.waiting;
    cap.saturating_sub(out)
}

fn in_flight(s: &Snapshot<'_>) -> u32 {
    s.ringing_since_ms.len() as u32 + s.waiting
}

/// Progressive (ratio 1) and fixed-ratio dialling: R calls out per ready
/// agent.
#[derive(Debug, Clone)]
pub struct Ratio {
    ratio: f64,
    level: f64,
}

impl Pacer for Ratio {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        let want = (self.ratio * f64::from(s.ready)).floor() as u32;
        Decision {
            launch: want.saturating_sub(in_flight(s)).min(room(s)),
            wake_at_ms: None,
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

fn p_human_in_flight(est: &Estimators, elapsed_s: f64, timeout_s: f64) -> f64 {
    est.p_human_ringing_soon(elapsed_s, timeout_s)
}

/// Above this many uncertain terms, Poisson-binomial tails use the normal
/// approximation (with continuity correction); below, the exact
/// distribution. The exact one matters for small teams, where the variance
/// is the point; for large ones the normal is within a fraction of a
/// percent and keeps a 1,000-agent decision in microseconds.
const EXACT_TERMS: usize = 64;

/// The distribution of free agents at the horizon, and of the demand for
/// them, from which each new call's chance of finding no agent follows.
struct Outlook {
    /// Exact: P(F <= x) for x = 0..; empty when approximated.
    free_cdf: Vec<f64>,
    /// Exact: P(D = d) for the demand so far.
    demand_pmf: Vec<f64>,
    /// Expected agents free within the horizon (ready ones included).
    free_mean: f64,
    mean: f64,
    var: f64,
    exact: bool,
}

impl Outlook {
    fn new(s: &Snapshot<'_>) -> Outlook {
        let ready = s.ready as usize;
        let waiting = s.waiting as usize;
        // Straight from the estimators' tables when built (the same
        // figures as `p_free_soon` and `p_human_ringing_soon`, without a
        // branch per item): this is the hot loop of a decision.
        let free_table = s.est.free_soon_table();
        let ringing_table = s.est.ringing_soon_table();
        // The table's entry for whole seconds elapsed: integer division
        // gives the same index as truncating the seconds as a float.
        let now = s.now_ms;
        let last = FREE_SOON_ENTRIES - 1;
        let free_entry = |t: &[[f64; 2]; FREE_SOON_ENTRIES], since: u64| {
            t[((now.saturating_sub(since) / 1000) as usize).min(last)]
        };
        let p_busy = |since: &u64| match free_table {
            Some(t) => free_entry(t, *since)[0],
            None => s.est.p_free_soon(s.elapsed_s(*since)),
        };
        let timeout = s.ring_timeout_s;
        // Likewise for ringing calls, in half seconds, with the timeout as
        // the first age in ms whose seconds reach it.
        let timeout_ms = first_ms_reaching(timeout);
        let p_ring = |since: &u64| match ringing_table {
            Some(t) => {
                let age = now.saturating_sub(*since);
                if age >= timeout_ms {
                    0.0
                } else {
                    t[((age / 500) as usize).min(t.len() - 1)]
                }
            }
            None => p_human_in_flight(s.est, s.elapsed_s(*since), timeout),
        };
        // The same sums either way; with the free-soon table built, a loop
        // without the fallback's branch.
        let (free_mean, free_var) = match free_table {
            Some(t) => bernoulli_sums(s.busy_since_ms, |since| free_entry(t, *since)),
            None => bernoulli_sums(s.busy_since_ms, |since| with_var(p_busy(since))),
        };
        let (demand_mean, demand_var) =
            bernoulli_sums(s.ringing_since_ms, |since| with_var(p_ring(since)));
        let free_mean = ready as f64 + free_mean;
        let mean = waiting as f64 - free_mean + demand_mean;
        let var = free_var + demand_var;
        let exact = s.busy_since_ms.len() + s.ringing_since_ms.len() <= EXACT_TERMS;
        if !exact {
            return Outlook {
                free_cdf: Vec::new(),
                demand_pmf: Vec::new(),
                free_mean,
                mean,
                var,
                exact,
            };
        }
        let mut free = vec![0.0; ready + 1];
        free[ready] = 1.0;
        for p in s.busy_since_ms.iter().map(p_busy) {
            bernoulli_add(&mut free, p);
        }
        let mut acc = 0.0;
        for x in free.iter_mut() {
            acc += *x;
            *x = acc;
        }
        let mut demand = vec![0.0; waiting + 1];
        demand[waiting] = 1.0;
        for p in s.ringing_since_ms.iter().map(p_ring) {
            bernoulli_add(&mut demand, p);
        }
        Outlook {
            free_cdf: free,
            demand_pmf: demand,
            free_mean,
            mean,
            var,
            exact,
        }
    }

    /// P(demand >= free): the chance one more answered call finds every
    /// predicted free agent taken.
    fn p_no_agent(&self) -> f64 {
        if self.exact {
            let last = self.free_cdf.len().saturating_sub(1);
            self.demand_pmf
                .iter()
                .enumerate()
                .map(|(d, pd)| pd * self.free_cdf[d.min(last)])
                .sum()
        } else {
            // P(D - F >= 0) = P(D - F > -0.5).
            let sd = self.var.sqrt().max(1e-9);
            1.0 - normal_cdf((-0.5 - self.mean) / sd)
        }
    }

    /// Adds one more call that reaches a person with probability `p`.
    /// Expected callers left without an agent, E[(D - F)+]: the abandons
    /// already coming from the calls in flight.
    fn expected_excess(&self) -> f64 {
        if self.exact {
            // E[(d - F)+] = sum over k < d of P(F <= k).
            let last = self.free_cdf.len().saturating_sub(1);
            let mut below = 0.0;
            let mut total = 0.0;
            for (d, pd) in self.demand_pmf.iter().enumerate() {
                total += pd * below;
                below += self.free_cdf[d.min(last)];
            }
            total
        } else {
            let sd = self.var.sqrt().max(1e-9);
            let z = self.mean / sd;
            let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
            (sd * pdf + self.mean * normal_cdf(z)).max(0.0)
        }
    }

    fn add_call(&mut self, p: f64) {
        self.mean += p;
        self.var += p * (1.0 - p);
        if self.exact {
            bernoulli_add(&mut self.demand_pmf, p);
        }
    }
}

/// The least age `n` in ms with `n / 1000` seconds (as
/// [`Snapshot::elapsed_s`] computes it) at or past `secs`, so that ages
/// compare as integers with the same outcome; `u64::MAX` if none.
fn first_ms_reaching(secs: f64) -> u64 {
    let reaches = |n: u64| n as i64 as f64 / 1000.0 >= secs;
    if secs.is_nan() || secs * 1000.0 > 4e15 {
        return u64::MAX;
    }
    if secs <= 0.0 {
        return 0;
    }
    // Within a step or two of the answer; walk onto it.
    let mut n = (secs * 1000.0).ceil() as u64;
    while n > 0 && reaches(n - 1) {
        n -= 1;
    }
    while !reaches(n) {
        n += 1;
    }
    n
}

/// A probability and its Bernoulli variance, for [`bernoulli_sums`].
fn with_var(q: f64) -> [f64; 2] {
    [q, q * (1.0 - q)]
}

/// The mean and variance of a sum of independent Bernoulli variables, one
/// per item with probability `p(item)`. Four running sums, so the adds do
/// not wait on each other: this is the hot loop of a decision.
/// `p(item)` gives the probability and its variance term p(1 − p) (see
/// [`with_var`]), so a table can hold both.
fn bernoulli_sums<T>(items: &[T], p: impl Fn(&T) -> [f64; 2]) -> (f64, f64) {
    let mut mean = [0.0; 4];
    let mut var = [0.0; 4];
    let chunks = items.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            let [q, v] = p(&c[i]);
            mean[i] += q;
            var[i] += v;
        }
    }
    for (i, x) in rest.iter().enumerate() {
        let [q, v] = p(x);
        mean[i] += q;
        var[i] += v;
    }
    (
        (mean[0] + mean[1]) + (mean[2] + mean[3]),
        (var[0] + var[1]) + (var[2] + var[3]),
    )
}

/// Convolves a PMF with a Bernoulli(p), in place (grows by one).
fn bernoulli_add(pmf: &mut Vec<f64>, p: f64) {
    pmf.push(0.0);
    for i in (1..pmf.len()).rev() {
        pmf[i] = pmf[i] * (1.0 - p) + pmf[i - 1] * p;
    }
    pmf[0] *= 1.0 - p;
}

/// Standard normal CDF (Abramowitz and Stegun 7.1.26 erf, error < 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    let erf = if z >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

/// Ours. Predicts the agents free when a new call would be answered (a
/// Poisson-binomial over busy agents, from the handle-time distribution
/// conditioned on the time each has spent) against the demand (waiting
/// calls, calls in flight, new calls), and launches the k-th extra call
/// only while the chance that its answer finds no agent stays under an
/// allowance. A stochastic-approximation controller moves the allowance
/// so the abandonment rate settles on the campaign's target; when the
/// ledger has no budget left before the legal limit, it falls back to
/// progressive until the window rolls.
#[derive(Debug, Clone)]
pub struct Predictive {
    /// Allowance multiplier on the target, learnt.
    gain: f64,
    /// The target as a fraction, from the last snapshot.
    target: f64,
    level: f64,
}

impl Predictive {
    /// A predictive pacer with a neutral controller.
    pub fn new() -> Predictive {
        Predictive {
            gain: 1.0,
            target: 0.0,
            level: 1.0,
        }
    }

    /// Abandons of room in the ledger below which the allowance shrinks.
    const ROOM_ABANDONS: f64 = 10.0;

    /// Controller step per human answer, on log(gain).
    const STEP: f64 = 0.05;
}

impl Default for Predictive {
    fn default() -> Predictive {
        Predictive::new()
    }
}

impl Pacer for Predictive {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        if s.active_agents == 0 {
            return Decision::default();
        }
        // The ledger's budget before the legal limit, in abandons: spend
        // none of it on prediction unless at least one abandon fits.
        let limit = s.limit_percent / 100.0;
        let (h_ahead, a_ahead) = s.ledger.hour_ahead;
        let budget = (limit * s.ledger.human_answers as f64 - s.ledger.abandons as f64)
            .min(limit * h_ahead as f64 - a_ahead as f64);
        let progressive = Ratio {
            ratio: 1.0,
            level: 1.0,
        }
        .decide(s);
        if budget < 1.0 {
            self.level = 1.0;
            return progressive;
        }
        self.target = s.target_percent / 100.0;
        let ph = s.est.human_rate().clamp(0.01, 1.0);
        // A young window (after a closed day) or one near its limit has
        // little room: abandons come in bursts when the whole team is
        // busy, so the allowance shrinks in proportion below
        // ROOM_ABANDONS of room.
        let room_scale = ((budget - 1.0) / Self::ROOM_ABANDONS).clamp(0.0, 1.0);
        let allowance = (self.target * self.gain * room_scale).min(0.5);
        let mut outlook = Outlook::new(s);
        let cap = room(s);
        let mut launch = 0;
        // Expected abandons of the calls already out and of this decision's
        // calls. Abandons come roughly as a Poisson count: the budget must
        // hold that mean plus two standard deviations, with one abandon
        // kept in hand, whatever the controller says.
        let mut expected = outlook.expected_excess();
        loop {
            let p = outlook.p_no_agent();
            let next = expected + ph * p;
            if launch >= cap || p > allowance || next + 2.0 * next.sqrt() > budget - 1.0 {
                break;
            }
            expected = next;
            outlook.add_call(ph);
            launch += 1;
        }
        // Never fewer than progressive: a ready agent with nothing coming
        // gets a call.
        let launch = launch.max(progressive.launch);
        self.level = f64::from(in_flight(s) + launch) / outlook.free_mean.max(1.0);
        Decision {
            launch,
            // Busy agents come closer to free as time passes.
            wake_at_ms: Some(s.now_ms + 1000),
        }
    }

    fn observe(&mut self, _now_ms: u64, abandoned: bool) {
        // Robbins-Monro on log(gain): each connect nudges it up by the
        // target share, each abandon down by the rest, so it settles where
        // abandons are the target share of human answers.
        let delta = if abandoned {
            -(1.0 - self.target)
        } else {
            self.target
        };

        self.gain = (self.gain.ln() + Self::STEP * delta)
            .exp()
            .clamp(0.05, 20.0);
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

/// The classic open-source adaptive dial level: every 15 s the level is
/// multiplied by (1 + adjustment), the adjustment being the mean of (ready
/// agents − waiting calls) over the samples since (one a second) per
/// active agent, itself within ±0.5; the level stays in [1, 3], and while
/// the day's abandonment is over the limit each adjustment halves it
/// instead. Calls out: level × ready agents.
#[derive(Debug, Clone)]
pub struct Feedback {
    level: f64,
    sum: f64,
    samples: u32,
    next_sample_ms: u64,
    next_adjust_ms: u64,
    day: u64,
    day_answers: u64,
    day_abandons: u64,
}

impl Feedback {
    /// A feedback pacer starting at level 1.
    pub fn new() -> Feedback {
        Feedback {
            level: 1.0,
            sum: 0.0,
            samples: 0,
            next_sample_ms: 0,
            next_adjust_ms: 15_000,
            day: 0,
            day_answers: 0,
            day_abandons: 0,
        }
    }
}

impl Default for Feedback {
    fn default() -> Feedback {
        Feedback::new()
    }
}

const DAY_MS: u64 = 86_400_000;

impl Pacer for Feedback {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        let day = s.now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.day_answers = 0;
            self.day_abandons = 0;
        }
        if s.now_ms >= self.next_sample_ms {
            self.sum += f64::from(s.ready) - f64::from(s.waiting);
            self.samples += 1;
            self.next_sample_ms = s.now_ms + 1000;
        }
        if s.now_ms >= self.next_adjust_ms {
            let rate = if self.day_answers == 0 {
                0.0
            } else {
                100.0 * self.day_abandons as f64 / self.day_answers as f64
            };
            if rate > s.limit_percent {
                // Over the day's limit: halve at every adjustment until
                // the day's rate is back under it.
                self.level = (self.level / 2.0).max(1.0);
            } else if self.samples > 0 && s.active_agents > 0 {
                let mean = self.sum / f64::from(self.samples);
                let adjustment = (mean / f64::from(s.active_agents)).clamp(-0.5, 0.5);
                self.level = (self.level * (1.0 + adjustment)).clamp(1.0, 3.0);
            }
            self.sum = 0.0;
            self.samples = 0;
            self.next_adjust_ms = s.now_ms + 15_000;
        }
        let want = (self.level * f64::from(s.ready)).floor() as u32;
        Decision {
            launch: want.saturating_sub(in_flight(s)).min(room(s)),
            wake_at_ms: Some(self.next_sample_ms.min(self.next_adjust_ms)),
        }
    }

    fn observe(&mut self, _now_ms: u64, abandoned: bool) {
        self.day_answers += 1;
        if abandoned {
            self.day_abandons += 1;
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

/// A busy agent counts as free if the chance they finish within the
/// expected answer time is at least `probability`; calls go out until the
/// expected answers cover the agents counted free.
#[derive(Debug, Clone)]
pub struct Threshold {
    probability: f64,
    level: f64,
}

impl Pacer for Threshold {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        let free = s.ready
            + s.busy_elapsed_s()
                .filter(|&e| s.est.p_free_soon(e) >= self.probability)
                .count() as u32;
        let ph = s.est.human_rate().clamp(0.01, 1.0);
        let coming: f64 = f64::from(s.waiting)
            + s.ringing_elapsed_s()
                .map(|e| p_human_in_flight(s.est, e, s.ring_timeout_s))
                .sum::<f64>();
        let needed = (f64::from(free) - coming).max(0.0);
        let launch = ((needed / ph).floor() as u32).min(room(s));
        if s.active_agents > 0 {
            self.level = f64::from(in_flight(s) + launch) / f64::from(s.active_agents);
        }
        Decision {
            launch,
            wake_at_ms: Some(s.now_ms + 1000),
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

/// The clairvoyant bound: knowing every outcome and handle time, it dials
/// a call that will reach a person exactly when an agent will be free to
/// take it, and every other call at once. No strategy can keep agents
/// busier without abandons. Needs [`Snapshot::oracle`].
#[derive(Debug, Clone)]
pub struct Oracle {
    level: f64,
}

impl Pacer for Oracle {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        let Some(o) = s.oracle else {
            return Decision::default();
        };
        // When each agent is next free, after the calls already promised.
        let mut free: Vec<u64> = std::iter::repeat_n(s.now_ms, s.ready as usize)
            .chain(o.busy_free_at_ms.iter().copied())
            .collect();
        if free.is_empty() {
            return Decision::default();
        }
        let take = |free: &mut Vec<u64>, at: u64, handle: u64| {
            // The earliest free agent takes the call.
            if let Some((i, _)) = free.iter().enumerate().min_by_key(|(_, t)| **t) {
                free[i] = free[i].max(at) + handle;
            }
        };
        for &h in o.waiting_handle_ms {
            take(&mut free, s.now_ms, h);
        }
        let mut coming: Vec<(u64, u64)> = o.human_in_flight.to_vec();
        coming.sort_unstable();
        for &(at, h) in &coming {
            take(&mut free, at, h);
        }
        let mut launch = 0;
        let mut wake = None;
        for lead in o.next_leads {
            if !lead.human {
                launch += 1;
                continue;
            }
            let earliest = free.iter().copied().min().unwrap_or(u64::MAX);
            let answer_at = s.now_ms + lead.ring_ms;
            if answer_at >= earliest {
                take(&mut free, answer_at, lead.handle_ms);
                launch += 1;
            } else {
                wake = Some(earliest - lead.ring_ms);
                break;
            }
        }
        if s.active_agents > 0 {
            self.level = f64::from(in_flight(s) + launch) / f64::from(s.active_agents);
        }
        Decision {
            launch,
            wake_at_ms: wake,
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
mod tests;
