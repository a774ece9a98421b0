//! Ours: predictive dialling within the abandonment budget.
use super::estimate::{Estimators, FREE_SOON_ENTRIES};
use super::{Decision, Governor, Pacer, Ratio, Snapshot, in_flight, room};

pub(crate) fn p_human_in_flight(est: &Estimators, elapsed_s: f64, timeout_s: f64) -> f64 {
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
#[derive(Debug, Clone)]
pub(crate) struct Outlook {
    /// Exact: P(F <= x) for x = 0..; empty when approximated.
    pub(crate) free_cdf: Vec<f64>,
    /// Exact: P(D = d) for the demand so far.
    pub(crate) demand_pmf: Vec<f64>,
    /// Expected agents free within the horizon (ready ones included).
    pub(crate) free_mean: f64,
    pub(crate) mean: f64,
    pub(crate) var: f64,
    pub(crate) exact: bool,
    /// The chance a call dialled now reaches a person, the calls still
    /// ringing counted by their chance.
    pub(crate) p_new: f64,
}

/// The agents free within the horizon: the ready ones and, by their
/// chances, those on calls and in wrap-up. It does not depend on the scale
/// a view puts on answer chances, so one decision computes it once: the
/// strategy and its governor share it (see [`Governor::free_agents`]); at
/// 100 agents it is most of a decision's work.
#[derive(Debug, Clone)]
pub(crate) struct FreeAgents {
    /// Expected agents free (ready ones included).
    mean: f64,
    /// Its variance.
    var: f64,
    /// Few enough terms (busy agents and calls ringing) for the exact
    /// distributions.
    exact: bool,
    /// Exact: P(F <= x) for x = 0..; empty otherwise.
    cdf: Vec<f64>,
}

impl FreeAgents {
    pub(crate) fn of(s: &Snapshot<'_>) -> FreeAgents {
        let ready = s.ready as usize;
        // Straight from the estimators' table when built (the same
        // figures as `p_free_soon`, without a branch per item): this is
        // the hot loop of a decision.
        let free_table = s.est.free_soon_table();
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
        // The same sums either way; with the free-soon table built, a loop
        // without the fallback's branch.
        let (mut mean, mut var) = match free_table {
            Some(t) => bernoulli_sums(s.busy_since_ms, |since| free_entry(t, *since)),
            None => bernoulli_sums(s.busy_since_ms, |since| with_var(p_busy(since))),
        };
        // An agent in wrap-up is judged by the wrap-up so far, which says
        // far more about the next seconds than the handle time since the
        // bridge (the call has ended; only the wrap-up is left).
        let wrap_model = s.est.wrap_free_soon();
        let p_wrap = |i: usize| -> Option<f64> {
            let w = *s.wrap_since_ms.get(i)?;
            if w == u64::MAX {
                return None;
            }
            wrap_model?.p(s.elapsed_s(w))
        };
        for (i, since) in s.busy_since_ms.iter().enumerate() {
            if s.wrap_since_ms.is_empty() {
                break;
            }
            if let Some(pw) = p_wrap(i) {
                let ph = p_busy(since);
                mean += pw - ph;
                var += pw * (1.0 - pw) - ph * (1.0 - ph);
            }
        }
        let var = var.max(0.0);
        let mean = ready as f64 + mean;
        let exact = s.busy_since_ms.len() + s.ringing_since_ms.len() <= EXACT_TERMS;
        if !exact {
            return FreeAgents {
                mean,
                var,
                exact,
                cdf: Vec::new(),
            };
        }
        let mut cdf = vec![0.0; ready + 1];
        cdf[ready] = 1.0;
        for (i, since) in s.busy_since_ms.iter().enumerate() {
            bernoulli_add(&mut cdf, p_wrap(i).unwrap_or_else(|| p_busy(since)));
        }
        let mut acc = 0.0;
        for x in cdf.iter_mut() {
            acc += *x;
            *x = acc;
        }
        FreeAgents {
            mean,
            var,
            exact,
            cdf,
        }
    }
}

impl Outlook {
    #[cfg(test)]
    pub(crate) fn new(s: &Snapshot<'_>) -> Outlook {
        Outlook::scaled(s, &FreeAgents::of(s), 1.0)
    }

    /// The outlook with every chance of reaching a person (of the calls
    /// ringing and of new ones) taken `scale` times higher, at most 1: the
    /// governor's pessimistic view (see [`super::governor::MARGIN`]).
    /// `free` is [`FreeAgents::of`] `s`.
    pub(crate) fn scaled(s: &Snapshot<'_>, free: &FreeAgents, scale: f64) -> Outlook {
        let waiting = s.waiting as usize;
        let ringing_table = s.est.ringing_soon_table();
        let now = s.now_ms;
        let timeout = s.ring_timeout_s;
        // Ringing calls from the estimators' table when built, in half
        // seconds, with the timeout as the first age in ms whose seconds
        // reach it.
        let timeout_ms = first_ms_reaching(timeout);
        let p_ring = |since: &u64| {
            let p = match ringing_table {
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
            (p * scale).min(1.0)
        };
        let (demand_mean, demand_var) =
            bernoulli_sums(s.ringing_since_ms, |since| with_var(p_ring(since)));
        let free_mean = free.mean;
        let mean = waiting as f64 - free_mean + demand_mean;
        let var = free.var + demand_var;
        // The calls still ringing count towards the answer rate by their
        // chance of reaching a person: fast failures resolve first, and a
        // rate over resolved calls only reads low while the people among
        // the calls out are still ringing.
        let p_new = (s
            .est
            .human_rate_with_ringing(demand_mean / scale, s.ringing_since_ms.len())
            * scale)
            .clamp(0.01, 1.0);
        let exact = free.exact;
        if !exact {
            return Outlook {
                free_cdf: Vec::new(),
                demand_pmf: Vec::new(),
                free_mean,
                mean,
                var,
                exact,
                p_new,
            };
        }
        let mut demand = vec![0.0; waiting + 1];
        demand[waiting] = 1.0;
        for p in s.ringing_since_ms.iter().map(p_ring) {
            bernoulli_add(&mut demand, p);
        }
        Outlook {
            free_cdf: free.cdf.clone(),
            demand_pmf: demand,
            free_mean,
            mean,
            var,
            exact,
            p_new,
        }
    }

    /// P(demand >= free): the chance one more answered call finds every
    /// predicted free agent taken.
    pub(crate) fn p_no_agent(&self) -> f64 {
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
    #[cfg(test)]
    pub(crate) fn expected_excess(&self) -> f64 {
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

    /// P(D − F > m): the chance that more than `m` callers are left with
    /// no agent. Exact with the distributions; beyond [`EXACT_TERMS`], a
    /// Bernstein bound on the sum of the (independent, bounded) terms,
    /// which never understates the tail.
    pub(crate) fn p_excess_above(&self, m: u64) -> f64 {
        let m = m as usize;
        if self.exact {
            // P(D - F >= m + 1) = sum over d > m of P(D = d) P(F <= d - m - 1).
            let last = self.free_cdf.len().saturating_sub(1);
            self.demand_pmf
                .iter()
                .enumerate()
                .skip(m + 1)
                .map(|(d, pd)| pd * self.free_cdf[(d - m - 1).min(last)])
                .sum::<f64>()
                .min(1.0)
        } else {
            let t = (m + 1) as f64 - self.mean;
            if t <= 0.0 {
                return 1.0;
            }
            (-(t * t) / (2.0 * (self.var + t / 3.0))).exp().min(1.0)
        }
    }

    pub(crate) fn add_call(&mut self, p: f64) {
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
pub(crate) fn first_ms_reaching(secs: f64) -> u64 {
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
pub(crate) fn normal_cdf(x: f64) -> f64 {
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

    /// The highest share of the limit the controller aims at.
    const AIM: f64 = 0.8;

    /// Controller step per human answer, on log(gain).
    const STEP: f64 = 0.05;
}

impl Default for Predictive {
    fn default() -> Predictive {
        Predictive::new()
    }
}

impl Pacer for Predictive {
    fn decide(&mut self, s: &Snapshot<'_>, gov: &mut Governor<'_>) -> Decision {
        if s.active_agents == 0 {
            return Decision::default();
        }
        // The ledger's budget before the legal limit, in abandons (the
        // tightest window the calls out can reach): spend none of it on
        // prediction unless at least one abandon fits.
        let budget = gov.budget();
        let progressive = Ratio::new(1.0).decide(s, gov);
        if budget < 1.0 {
            self.level = 1.0;
            return progressive;
        }
        // Aim no closer to the limit than AIM of it: a window's abandons
        // are random, and the closer its rate runs to the limit the more
        // calls the governor turns away, which costs more talk than the
        // last fraction of a point of target would give.
        self.target = s.target_percent.min(s.limit_percent * Self::AIM) / 100.0;
        // A young window (after a closed day) or one near its limit has
        // little room: abandons come in bursts when the whole team is
        // busy, so the allowance shrinks in proportion below
        // ROOM_ABANDONS of room.
        let room_scale = ((budget - 1.0) / Self::ROOM_ABANDONS).clamp(0.0, 1.0);
        let allowance = (self.target * self.gain * room_scale).min(0.5);
        let mut outlook = Outlook::scaled(s, gov.free_agents(), 1.0);
        let ph = outlook.p_new;
        let cap = room(s);
        let mut launch = 0;
        // Each extra call while its answer is unlikely to find nobody, and
        // while the governor holds the chance that the calls out leave more
        // callers without an agent than the budget takes within its risk.
        loop {
            let p = outlook.p_no_agent();
            if launch >= cap || p > allowance || !gov.try_add() {
                break;
            }
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
            ..Decision::default()
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
