//! Load runs (`dialler sip load`): places M calls at N calls per second
//! through one [`Ua`], holding the rate with `governor` and the calls in
//! flight under a channel cap, and backs off when the provider is in
//! trouble (no response, refused, or a final response with Retry-After)
//! instead of hammering it.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use super::SipError;
use super::auth::Credentials;
use super::ua::{Ua, UaConfig};
use super::uac::{CallEvent, CallParams, EndpointStats, Outcome, RingTimeout, Summary};

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
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
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

struct Done {
    summary: Summary,
    ack: Option<Duration>,
}

/// Runs the load and reports. Errors only when the UA cannot start.
pub async fn run(cfg: LoadConfig) -> Result<LoadReport, SipError> {
    let cpu0 = cpu_seconds();
    let cps = NonZeroU32::new(cfg.cps.max(1)).unwrap_or(NonZeroU32::MIN);
    // A burst of at most 50 ms worth of calls: timer granularity (1 ms)
    // would otherwise shave the rate at hundreds per second, and 50 ms is
    // far below anything a provider's CPS policing looks at.
    let burst = NonZeroU32::new(cps.get() / 20).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(Quota::per_second(cps).allow_burst(burst));
    let ua = Ua::start(cfg.ua.clone()).await?;
    let media_addr = std::net::SocketAddr::new(ua.local_addr().ip(), 40000);
    let channels = Arc::new(Semaphore::new(cfg.max_channels.max(1)));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut peak = 0;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
    let (mut setup, mut answer, mut ack) = (Vec::new(), Vec::new(), Vec::new());
    let mut backoff = Backoff::default();
    let mut received = 0u64;
    let mut take = |d: Done, backoff: &mut Backoff| {
        backoff.observe(Instant::now(), &d.summary);
        *outcomes.entry(d.summary.outcome).or_default() += 1;
        setup.extend(d.summary.first_response_after);
        answer.extend(d.summary.answer_after);
        ack.extend(d.ack);
    };
    let start = Instant::now();
    let mut last_launch = start;
    for _ in 0..cfg.calls {
        while let Ok(d) = done_rx.try_recv() {
            received += 1;
            take(d, &mut backoff);
        }
        while let Some(until) = backoff.paused_until(Instant::now()) {
            tracing::warn!(
                "provider trouble: pausing new calls for {:?}",
                until - Instant::now()
            );
            tokio::select! {
                () = tokio::time::sleep_until(until.into()) => {}
                d = done_rx.recv() => if let Some(d) = d { received += 1; take(d, &mut backoff); },
            }
        }
        let Ok(permit) = channels.clone().acquire_owned().await else {
            break;
        };
        limiter.until_ready().await;
        last_launch = Instant::now();
        let call = ua
            .call(CallParams {
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
            })
            .await?;
        let now_in_flight = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        peak = peak.max(now_in_flight);
        let in_flight = in_flight.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let mut call = call;
            let mut ack = None;
            while let Some(e) = call.next_event().await {
                match e {
                    CallEvent::Answered { ack_latency, .. } => ack = Some(ack_latency),
                    CallEvent::Ended(summary) => {
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                        let _ = done_tx.send(Done { summary, ack });
                        return;
                    }
                    CallEvent::Progress { .. } | CallEvent::MediaChanged { .. } => {}
                }
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(done_tx);
    while received < cfg.calls {
        match done_rx.recv().await {
            Some(d) => {
                received += 1;
                take(d, &mut backoff);
            }
            None => break,
        }
    }
    let elapsed = start.elapsed();
    let endpoint = ua.shutdown().await;
    let launch_span = last_launch.saturating_duration_since(start).as_secs_f64();
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
        setup_ms: Percentiles::of(&mut setup),
        answer_ms: Percentiles::of(&mut answer),
        ack_ms: Percentiles::of(&mut ack),
        backoffs: backoff.count,
        backoff_s: backoff.total.as_secs_f64(),
        cpu_s: cpu_seconds() - cpu0,
        endpoint,
    })
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
