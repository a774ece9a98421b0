//! Time for the live side: [`Millis`], the one millisecond time type, and
//! [`Clock`], the service's one clock.
//!
//! The sans-IO core never reads a clock: it is handed `now`. The live
//! service owns exactly one [`Clock`], built on tokio's (so a test whose
//! runtime starts paused runs hours of campaign in seconds) with a
//! wall-clock origin (so `--clock-start` and the demo's virtual clock are a
//! value in the service's configuration, not process-wide state). Store
//! rows, API bodies and the live runner's timeline are [`Millis`]; the
//! conversions to `chrono` and `std::time::Duration` live here and nowhere
//! else.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A moment as milliseconds since the Unix epoch (UTC): what the store
/// keeps in its `BIGINT` columns, what the API shows and what the live
/// runner counts in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    /// The Unix epoch.
    pub const EPOCH: Millis = Millis(0);

    /// The moment `t`.
    pub fn from_utc(t: DateTime<Utc>) -> Millis {
        Millis(t.timestamp_millis())
    }

    /// The moment as a `chrono` time (clamped into chrono's range).
    pub fn utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or(if self.0 < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }

    /// Milliseconds since the epoch.
    pub const fn ms(self) -> i64 {
        self.0
    }

    /// The moment `d` later (saturating).
    pub fn plus(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(duration_ms(d)))
    }

    /// The moment `d` earlier (saturating).
    pub fn minus(self, d: Duration) -> Millis {
        Millis(self.0.saturating_sub(duration_ms(d)))
    }

    /// How long after `earlier` this is; zero when it is not after.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// The moment on the live runner's timeline (ms since the epoch, never
    /// negative).
    pub fn runner_ms(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }

    /// A moment of the live runner's timeline.
    pub fn from_runner_ms(ms: u64) -> Millis {
        Millis(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

impl From<DateTime<Utc>> for Millis {
    fn from(t: DateTime<Utc>) -> Millis {
        Millis::from_utc(t)
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.utc().to_rfc3339())
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The service's clock: tokio's monotonic clock, read as wall-clock time
/// from an origin.
///
/// Every timer of the service is a `tokio::time` timer and every "now" of
/// the service comes from [`Clock::now`], so the two always agree: under a
/// runtime whose time is paused, both stand still while the service works
/// and jump together when it waits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Wall-clock time at `origin`.
    origin_ms: Millis,
    /// tokio's instant at which the clock read `origin_ms`.
    origin: tokio::time::Instant,
    /// The runtime's time was paused when the clock was made.
    paused: bool,
}

impl Clock {
    /// The real time of day, at tokio's pace.
    pub fn system() -> Clock {
        Clock::starting_at(Utc::now())
    }

    /// A clock that reads `start` now and runs at tokio's pace from there:
    /// the real pace normally (rehearsals, `--clock-start`, the demo's
    /// virtual clock), and the test's pace when the runtime's time is
    /// paused. Call it inside the runtime that will drive the service.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            origin_ms: Millis::from_utc(start),
            origin: tokio::time::Instant::now(),
            paused: runtime_time_is_paused(),
        }
    }

    /// Now.
    pub fn now(&self) -> Millis {
        self.at(tokio::time::Instant::now())
    }

    /// Now, as a `chrono` time.
    pub fn now_utc(&self) -> DateTime<Utc> {
        self.now().utc()
    }

    /// The wall-clock reading at tokio instant `i`.
    pub fn at(&self, i: tokio::time::Instant) -> Millis {
        let d = i.saturating_duration_since(self.origin);
        self.origin_ms.plus(d)
    }

    /// The tokio instant at which the clock reads `t` (now, for a moment
    /// already past): what a timer for `t` sleeps until.
    pub fn instant_of(&self, t: Millis) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        now + t.since(self.at(now))
    }

    /// Sleeps until the clock reads `t`.
    pub async fn sleep_until(&self, t: Millis) {
        tokio::time::sleep_until(self.instant_of(t)).await;
    }

    /// Whether the runtime's time was paused when the clock was made (a
    /// test): the store then keeps time from jumping while it waits on
    /// the database (see [`crate::store::Store::holding_paused_time`]).
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// Whether tokio's time is paused in the current runtime: it then stands
/// still while real time passes. tokio has no public query for it; reading
/// its clock twice across a few microseconds of real time tells.
pub(crate) fn runtime_time_is_paused() -> bool {
    if tokio::runtime::Handle::try_current().is_err() {
        return false;
    }
    let a = tokio::time::Instant::now();
    std::thread::sleep(Duration::from_micros(50));
    tokio::time::Instant::now() == a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_convert_both_ways_and_saturate() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T14:30:00.250Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let m = Millis::from_utc(t);
        assert_eq!(m.utc(), t);
        assert_eq!(m.plus(Duration::from_secs(2)).ms(), m.ms() + 2000);
        assert_eq!(
            m.plus(Duration::from_secs(2)).since(m),
            Duration::from_secs(2)
        );
        assert_eq!(m.since(m.plus(Duration::from_secs(2))), Duration::ZERO);
        assert_eq!(
            Millis(i64::MAX).plus(Duration::from_secs(1)),
            Millis(i64::MAX)
        );
        assert_eq!(Millis(-5).runner_ms(), 0);
        assert_eq!(Millis::from_runner_ms(m.runner_ms()), m);
        assert_eq!(
            serde_json::to_string(&m).unwrap_or_default(),
            m.ms().to_string()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_moves_only_with_tokio_time() {
        let start = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let clock = Clock::starting_at(start);
        assert!(clock.is_paused());
        assert_eq!(clock.now_utc(), start);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now_utc(), start, "real time does not move it");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            clock.now().since(Millis::from_utc(start)),
            Duration::from_secs(3600)
        );
        let later = clock.now().plus(Duration::from_millis(1500));
        clock.sleep_until(later).await;
        assert_eq!(clock.now(), later);
    }

    #[tokio::test]
    async fn a_real_clock_runs_from_its_origin() {
        let start = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let clock = Clock::starting_at(start);
        assert!(!clock.is_paused());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let d = clock.now().since(Millis::from_utc(start));
        assert!(
            d >= Duration::from_millis(20) && d < Duration::from_secs(5),
            "{d:?}"
        );
    }
}
