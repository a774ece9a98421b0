//! Load runs (`dialler sip load`): places M calls at N calls per second
//! through one [`Ua`], launches spread evenly (the i-th at i/N), the calls
//! in flight under a channel cap, every call's events read in one loop,
//! and backs off when the provider is in trouble (no response, refused,
//! or a final response with Retry-After) instead of hammering it. The
//! command runs it on one thread ([`run_on_this_thread`]), as SIPp runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::SipError;
use super::auth::Credentials;
use super::ua::{Ua, UaConfig};
use super::uac::{CallEvent, CallId, CallParams, EndpointStats, Outcome, RingTimeout, Summary};

/// What a load run does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The Request-URI of every call.
    pub uri: String,
    /// How to reach the provider (resolved addresses, transport, TLS).
    pub ua: UaConfig,
    /// Calls per second to launch.
    pub cps: u32,
    /// Calls to place in all.
    pub calls: u64,
    /// Most calls in flight at once.
    pub max_channels: usize,
    /// Ring timeout of each call.
    pub ring_timeout: RingTimeout,
    /// Hang up answered calls after this long (`None`: callee hangs up).
    pub max_talk: Option<Duration>,
    /// Provider credentials.
    pub credentials: Option<Credentials>,
    /// Caller user part.
    pub from_user: String,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (nearest rank).
    pub fn of(samples: &mut [Duration]) -> Percentiles {
        Percentiles::ranked(samples, |d| d.as_secs_f64() * 1000.0)
    }

    /// Percentiles of `samples` in microseconds (a load run keeps its
    /// samples so: a quarter of the memory of durations).
    pub fn of_micros(samples: &mut [u32]) -> Percentiles {
        Percentiles::ranked(samples, |us| f64::from(us) / 1000.0)
    }

    fn ranked<T: Ord + Copy>(samples: &mut [T], ms: impl Fn(T) -> f64) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        Percentiles {
            n: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: ms(samples[samples.len() - 1]),
        }
    }
}

/// The result of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Calls placed.
    pub calls: u64,
    /// Calls per second asked for.
    pub target_cps: u32,
    /// Calls per second achieved (launches over the launch period).
    pub achieved_cps: f64,
    /// Seconds from the first launch to the last call's end.
    pub elapsed_s: f64,
    /// Most calls in flight at once.
    pub peak_in_flight: usize,
    /// Calls per outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Calls whose hang-up the far end never confirmed (our BYE timed
    /// out, was refused, or got an error): counted as failed calls, as the
    /// trunk may still hold them.
    pub unconfirmed_hangups: u64,
    /// INVITE to the first response (provider setup latency).
    pub setup_ms: Percentiles,
    /// INVITE to 200 OK (includes ringing).
    pub answer_ms: Percentiles,
    /// 200 OK arrival to ACK sent.
    pub ack_ms: Percentiles,
    /// Times the run paused for the provider.
    pub backoffs: u64,
    /// Seconds spent paused.
    pub backoff_s: f64,
    /// CPU seconds this process used (user + system).
    pub cpu_s: f64,
    /// Stray, malformed and retransmitted messages seen.
    pub endpoint: EndpointStats,
}

/// CPU seconds used by this process so far (Linux; 0 elsewhere).
pub fn cpu_seconds() -> f64 {
    // /proc reports in USER_HZ, which is 100 on every Linux ABI.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
        return 0.0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// When to pause launching: timeouts and refusals double a pause from 1 s
/// to 30 s; a Retry-After is honoured up to 60 s; any normal final
/// response resets the pause.
#[derive(Debug, Default)]
pub struct Backoff {
    step: Duration,
    until: Option<Instant>,
    /// Pauses begun.
    pub count: u64,
    /// Total pause time.
    pub total: Duration,
}

impl Backoff {
    /// Takes one call's summary into account at `now`.
    pub fn observe(&mut self, now: Instant, s: &Summary) {
        let pause = if let Some(ra) = s.retry_after {
            Some(ra.min(Duration::from_secs(60)))
        } else if matches!(s.outcome, Outcome::Timeout | Outcome::Unreachable) {
            self.step = (self.step * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
            Some(self.step)
        } else {
            self.step = Duration::ZERO;
            None
        };
        if let Some(p) = pause {
            let until = now + p;
            if self.until.is_none_or(|u| u < until) {
                if self.until.is_none_or(|u| u <= now) {
                    self.count += 1;
                }
                self.total +=
                    until.saturating_duration_since(self.until.filter(|u| *u > now).unwrap_or(now));
                self.until = Some(until);
            }
        }
    }

    /// Until when launching must wait, if it must.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| *u > now)
    }
}

/// Runs the load and reports. Errors only when the UA cannot start or
/// stops under way.
pub async fn run(cfg: LoadConfig) -> Result<LoadReport, SipError> {
    let cpu0 = cpu_seconds();
    let ua = Ua::start(cfg.ua.clone()).await?;
    let media_addr = std::net::SocketAddr::new(ua.local_addr().ip(), 40000);
    let max_channels = cfg.max_channels.max(1);
    // Every call's events, tagged with its id, on one channel read here:
    // no task nor channel per call.
    let (events_tx, mut events) = mpsc::unbounded_channel::<(CallId, CallEvent)>();
    let mut tally = Tally::default();
    let start = Instant::now();
    let mut last_launch = start;
    let mut schedule = Schedule::new(cfg.cps, start);
    for _ in 0..cfg.calls {
        while let Ok(e) = events.try_recv() {
            tally.take(e);
        }
        while let Some(until) = tally.backoff.paused_until(Instant::now()) {
            tracing::warn!(
                "provider trouble: pausing new calls for {:?}",
                until - Instant::now()
            );
            tokio::select! {
                () = tokio::time::sleep_until(until.into()) => {}
                e = events.recv() => if let Some(e) = e { tally.take(e) },
                () = ua.stopped() => return Err(SipError::Stopped),
            }
            // After a pause the rate starts again; missed launches are
            // not made up in a burst.
            schedule.restart(Instant::now());
        }
        while tally.in_flight >= max_channels {
            tokio::select! {
                e = events.recv() => if let Some(e) = e { tally.take(e) },
                () = ua.stopped() => return Err(SipError::Stopped),
            }
        }
        let due = schedule.next(Instant::now());
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        last_launch = Instant::now();
        ua.place(
            CallParams {
                ids: None,
                target: cfg.uri.clone(),
                from_user: cfg.from_user.clone(),
                ring_timeout: cfg.ring_timeout,
                credentials: cfg.credentials.clone(),
                media_addr,
                max_talk: cfg.max_talk,
                display_name: None,
                extra_headers: Vec::new(),
                destinations: Vec::new(),
            },
            &events_tx,
        )?;
        tally.in_flight += 1;
        tally.peak = tally.peak.max(tally.in_flight);
    }
    drop(events_tx);
    while tally.ended < cfg.calls {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => tally.take(e),
                None => break,
            },
            () = ua.stopped() => break,
        }
    }
    let elapsed = start.elapsed();
    let endpoint = ua.shutdown().await;
    let launch_span = last_launch.saturating_duration_since(start).as_secs_f64();
    let Tally {
        peak,
        outcomes,
        unconfirmed_hangups,
        mut setup,
        mut answer,
        mut ack,
        backoff,
        ..
    } = tally;
    Ok(LoadReport {
        calls: cfg.calls,
        target_cps: cfg.cps,
        achieved_cps: if launch_span > 0.0 {
            (cfg.calls.saturating_sub(1)) as f64 / launch_span
        } else {
            0.0
        },
        elapsed_s: elapsed.as_secs_f64(),
        peak_in_flight: peak,
        outcomes,
        unconfirmed_hangups,
        setup_ms: Percentiles::of_micros(&mut setup),
        answer_ms: Percentiles::of_micros(&mut answer),
        ack_ms: Percentiles::of_micros(&mut ack),
        backoffs: backoff.count,
        backoff_s: backoff.total.as_secs_f64(),
        cpu_s: cpu_seconds() - cpu0,
        endpoint,
    })
}

/// [`run`] on a runtime of its own on the calling thread: the load is one
/// event loop, as SIPp's is, with no hand-offs between threads (a
/// multi-threaded runtime wakes the other thread for most messages,
/// which costs more than handling them). Blocks until the load is done.
pub fn run_on_this_thread(cfg: LoadConfig) -> Result<LoadReport, SipError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SipError::Io(format!("load runtime: {e}")))?;
    rt.block_on(run(cfg))
}

/// The most a launch may lag its slot before the schedule starts again
/// from now (a burst of at most this much worth of calls): far below
/// anything a provider's CPS policing looks at.
const MAX_LAG: Duration = Duration::from_millis(50);

/// When each launch is due: the i-th at i/cps after the schedule's start,
/// so the rate is exact on average and launches are spread evenly (the
/// runtime's 1 ms timer puts two in each millisecond at 2,000 per
/// second). Written here rather than taken from a rate-limiting crate:
/// the one used before waited on a timer thread of its own, which woke
/// once per call and cost more CPU than the call's SIP.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    interval: Duration,
    n: u32,
}

impl Schedule {
    fn new(cps: u32, start: Instant) -> Schedule {
        Schedule {
            start,
            interval: Duration::from_secs(1) / cps.max(1),
            n: 0,
        }
    }

    /// The next launch's time, as seen at `now` (then counted as made).
    fn next(&mut self, now: Instant) -> Instant {
        let mut due = self.start + self.interval * self.n;
        if now.saturating_duration_since(due) > MAX_LAG {
            self.restart(now);
            due = now;
        }
        self.n = self.n.saturating_add(1);
        if self.n == u32::MAX {
            self.restart(due);
        }
        due
    }

    /// Starts the schedule again from `at`.
    fn restart(&mut self, at: Instant) {
        self.start = at;
        self.n = 0;
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// What the run has counted so far.
#[derive(Default)]
struct Tally {
    in_flight: usize,
    peak: usize,
    ended: u64,
    outcomes: BTreeMap<Outcome, u64>,
    unconfirmed_hangups: u64,
    /// Latencies in microseconds.
    setup: Vec<u32>,
    answer: Vec<u32>,
    ack: Vec<u32>,
    backoff: Backoff,
}

impl Tally {
    fn take(&mut self, (_, e): (CallId, CallEvent)) {
        match e {
            CallEvent::Answered { ack_latency, .. } => self.ack.push(micros(ack_latency)),
            CallEvent::Ended(s) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.ended += 1;
                self.backoff.observe(Instant::now(), &s);
                *self.outcomes.entry(s.outcome).or_default() += 1;
                self.unconfirmed_hangups += u64::from(s.hangup_unconfirmed);
                self.setup.extend(s.first_response_after.map(micros));
                self.answer.extend(s.answer_after.map(micros));
            }
            CallEvent::Progress { .. } | CallEvent::MediaChanged { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(outcome: Outcome, retry_after: Option<u64>) -> Summary {
        Summary {
            outcome,
            codes: vec![],
            final_code: None,
            first_response_after: None,
            progress_after: None,
            answer_after: None,
            talk: None,
            hangup: None,
            crossed_cancel: false,
            retry_after: retry_after.map(Duration::from_secs),
            extra_answers: 0,
            hangup_unconfirmed: false,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(
            (p.n, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(&mut []).n, 0);
    }

    #[test]
    fn timeouts_double_the_pause_and_an_answer_resets_it() {
        let t = Instant::now();
        let mut b = Backoff::default();
        b.observe(t, &summary(Outcome::Timeout, None));
        assert_eq!(b.paused_until(t), Some(t + Duration::from_secs(1)));
        b.observe(t, &summary(Outcome::Unreachable, None));
        assert_eq!(b.paused_until(t), Some(t + Duration::from_secs(2)));
        assert_eq!(b.count, 1, "one pause, extended");
        b.observe(t, &summary(Outcome::Busy, None));
        b.observe(t + Duration::from_secs(3), &summary(Outcome::Timeout, None));
        assert_eq!(
            b.paused_until(t + Duration::from_secs(3)),
            Some(t + Duration::from_secs(4))
        );
        assert_eq!(b.count, 2);
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_minute_and_plain_503_is_an_outcome() {
        let t = Instant::now();
        let mut b = Backoff::default();
        b.observe(t, &summary(Outcome::Unavailable, None));
        assert_eq!(b.paused_until(t), None);
        b.observe(t, &summary(Outcome::Unavailable, Some(600)));
        assert_eq!(b.paused_until(t), Some(t + Duration::from_secs(60)));
    }

    #[test]
    fn launches_are_spread_evenly_and_a_late_one_does_not_start_a_burst() {
        let t = Instant::now();
        let mut s = Schedule::new(2000, t);
        let due: Vec<Instant> = (0..4).map(|_| s.next(t)).collect();
        let gaps: Vec<Duration> = due.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, vec![Duration::from_micros(500); 3]);
        // 10 ms late: the missed slots go at once (20 launches' worth).
        let late = t + Duration::from_millis(12);
        assert!(s.next(late) < late);
        // A second late: the schedule starts again from now, no burst.
        let later = t + Duration::from_secs(1);
        assert_eq!(s.next(later), later);
        assert_eq!(s.next(later), later + Duration::from_micros(500));
        // After a pause, too.
        s.restart(later + Duration::from_secs(5));
        assert_eq!(s.next(later), later + Duration::from_secs(5));
    }

    #[test]
    fn cpu_seconds_grow_with_work() {
        let before = cpu_seconds();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() - before >= 0.1);
    }
}
