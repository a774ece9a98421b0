//! The classic open-source adaptive dial level.
use super::{Decision, Governor, Pacer, Snapshot, in_flight, room};

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
    fn decide(&mut self, s: &Snapshot<'_>, _gov: &mut Governor<'_>) -> Decision {
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
            ..Decision::default()
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
