//! Progressive and fixed-ratio dialling.
use super::{Decision, Governor, Pacer, Snapshot, in_flight, room};

/// Progressive (ratio 1) and fixed-ratio dialling: R calls out per ready
/// agent, R on average: the fraction of R × ready is carried from one
/// decision to the next (error diffusion), so ratio:1.5 with one agent
/// ready keeps one and two calls out in turn, not always one.
#[derive(Debug, Clone)]
pub struct Ratio {
    ratio: f64,
    level: f64,
    /// The fraction of the last target not yet dialled.
    carry: f64,
}

impl Ratio {
    /// `ratio` calls per ready agent (1: progressive).
    pub fn new(ratio: f64) -> Ratio {
        Ratio {
            ratio,
            level: ratio,
            carry: 0.0,
        }
    }
}

impl Pacer for Ratio {
    fn decide(&mut self, s: &Snapshot<'_>, _gov: &mut Governor<'_>) -> Decision {
        let exact = self.ratio * f64::from(s.ready) + self.carry;
        let want = exact.floor();
        self.carry = if s.ready == 0 { 0.0 } else { exact - want };
        Decision {
            launch: (want as u32).saturating_sub(in_flight(s)).min(room(s)),
            ..Decision::default()
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}
