//! The threshold predictor: busy agents likely to finish in time count as free.
use super::predictive::p_human_in_flight;
use super::{Decision, Governor, Pacer, Snapshot, in_flight, room};

/// A busy agent counts as free if the chance they finish within the
/// expected answer time is at least `probability`; calls go out until the
/// expected answers cover the agents counted free.
#[derive(Debug, Clone)]
pub struct Threshold {
    probability: f64,
    level: f64,
}

impl Threshold {
    /// Busy agents count as free at `probability` of finishing in time.
    pub fn new(probability: f64) -> Threshold {
        Threshold {
            probability,
            level: 1.0,
        }
    }
}

impl Pacer for Threshold {
    fn decide(&mut self, s: &Snapshot<'_>, _gov: &mut Governor<'_>) -> Decision {
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
            ..Decision::default()
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}
