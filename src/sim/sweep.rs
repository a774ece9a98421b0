//! Sweeps: the same simulation over a range of one parameter, to draw the
//! frontier of talk share against abandonment for every strategy.

use std::str::FromStr;

use serde::Serialize;

use super::{SeedSummary, SimConfig, SimReport};
use crate::pacing::Strategy;

/// The parameter a sweep moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepParam {
    /// The campaign's abandonment target, percent. The legal limit is
    /// raised to the target where the target passes it, so the frontier
    /// goes on past today's limit.
    Target,
    /// The R of `ratio` in the strategy list: each point runs `ratio:R`.
    Ratio,
    /// The team size.
    Agents,
}

/// A parsed `--sweep PARAM=FROM..TO[:STEPS]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// What moves.
    pub param: SweepParam,
    /// The values, in order.
    pub values: Vec<f64>,
}

/// A sweep specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--sweep {spec}: {message} (expected PARAM=FROM..TO[:STEPS], PARAM one of target, ratio, agents)"
)]
pub struct SweepError {
    spec: String,
    message: String,
}

impl FromStr for Sweep {
    type Err = SweepError;

    fn from_str(spec: &str) -> Result<Sweep, SweepError> {
        let fail = |message: &str| SweepError {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let (name, range) = spec.split_once('=').ok_or_else(|| fail("no '='"))?;
        let param = match name.trim() {
            "target" => SweepParam::Target,
            "ratio" => SweepParam::Ratio,
            "agents" => SweepParam::Agents,
            _ => return Err(fail("unknown parameter")),
        };
        let (range, steps) = match range.split_once(':') {
            Some((r, n)) => (
                r,
                n.trim()
                    .parse::<usize>()
                    .map_err(|_| fail("STEPS is not a whole number"))?,
            ),
            None => (range, 10),
        };
        let (from, to) = range
            .split_once("..")
            .ok_or_else(|| fail("no '..' between FROM and TO"))?;
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| fail("FROM and TO must be numbers"))
        };
        let (from, to) = (num(from)?, num(to)?);
        if !(2..=200).contains(&steps) {
            return Err(fail("STEPS must be 2 to 200"));
        }
        if from >= to {
            return Err(fail("FROM must be below TO"));
        }
        let ok = match param {
            SweepParam::Target => from > 0.0 && to <= 50.0,
            SweepParam::Ratio => from >= 1.0 && to <= 10.0,
            SweepParam::Agents => from >= 1.0 && to <= 10_000.0,
        };
        if !ok {
            return Err(fail(
                "out of range (target 0..50 percent, ratio 1..10, agents 1..10000)",
            ));
        }
        let values = (0..steps)
            .map(|i| {
                let v = from + (to - from) * i as f64 / (steps - 1) as f64;
                match param {
                    SweepParam::Agents => v.round(),
                    // Two decimals keep strategy names and tables readable.
                    _ => (v * 100.0).round() / 100.0,
                }
            })
            .collect::<Vec<_>>();
        let mut values = values;
        values.dedup();
        Ok(Sweep { param, values })
    }
}

/// One run of a sweep: a parameter value and the configuration at it.
#[derive(Debug, Clone)]
pub struct Point {
    /// The parameter's value.
    pub value: f64,
    /// The run.
    pub config: SimConfig,
}

impl Sweep {
    /// Every run of the sweep: each value, each strategy, each seed; a
    /// strategy the parameter does not reach (ratio under a target sweep,
    /// say) runs at the first value only. `strategies` may name `ratio`
    /// bare when the sweep moves the ratio.
    pub fn points(
        &self,
        base: &SimConfig,
        strategies: &[String],
        seeds: std::ops::Range<u64>,
    ) -> Result<Vec<Point>, String> {
        let mut out = Vec::new();
        for (i, &value) in self.values.iter().enumerate() {
            for name in strategies {
                let name = name.trim();
                let strategy = match self.param {
                    SweepParam::Ratio if name == "ratio" => Strategy::Ratio { ratio: value },
                    _ => Strategy::parse(name).map_err(|e| format!("--strategy {name}: {e}"))?,
                };
                // A strategy the parameter does not reach runs at the first
                // point only.
                let reached = match self.param {
                    SweepParam::Agents => true,
                    SweepParam::Ratio => name == "ratio",
                    // Predictive steers to the target; feedback halves its
                    // level past the limit, which a target sweep can raise.
                    SweepParam::Target => {
                        matches!(strategy, Strategy::Predictive | Strategy::Feedback)
                    }
                };
                if i > 0 && !reached {
                    continue;
                }
                for seed in seeds.clone() {
                    let mut config = SimConfig {
                        strategy: strategy.clone(),
                        seed,
                        ..base.clone()
                    };
                    match self.param {
                        SweepParam::Target => {
                            let c = &mut config.campaign;
                            c.abandon_target_percent = value;
                            c.abandon_limit_percent = c.abandon_limit_percent.max(value);
                        }
                        SweepParam::Agents => config.scenario.agents = value as u32,
                        SweepParam::Ratio => {}
                    }
                    out.push(Point { value, config });
                }
            }
        }
        Ok(out)
    }
}

/// One row of a sweep's result: a parameter value, a strategy, its seeds
/// summed up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// The parameter's value.
    pub value: f64,
    /// Seeds summed up.
    #[serde(flatten)]
    pub summary: SeedSummary,
}

/// Sums up a sweep's reports per (value, strategy), in run order.
pub fn rows(points: &[Point], reports: &[SimReport]) -> Vec<SweepRow> {
    let mut out: Vec<SweepRow> = Vec::new();
    let mut i = 0;
    while i < points.len().min(reports.len()) {
        let value = points[i].value;
        let name = &reports[i].strategy;
        let mut j = i;
        while j < points.len().min(reports.len())
            && points[j].value == value
            && &reports[j].strategy == name
        {
            j += 1;
        }
        for summary in super::summarise(&reports[i..j]) {
            out.push(SweepRow { value, summary });
        }
        i = j;
    }
    out
}

/// The best fixed ratio in hindsight: the `ratio:R` row with the highest
/// mean talk share whose worst compliance window stayed within the limit.
pub fn best_ratio(rows: &[SweepRow]) -> Option<&SweepRow> {
    rows.iter()
        .filter(|r| r.summary.strategy.starts_with("ratio:"))
        .filter(|r| r.summary.worst_window_max_percent <= r.summary.limit_percent)
        .max_by(|a, b| {
            a.summary
                .talk_share_mean
                .total_cmp(&b.summary.talk_share_mean)
        })
}

/// A fixed-width table of sweep rows.
pub fn table(param: SweepParam, rows: &[SweepRow]) -> String {
    let name = match param {
        SweepParam::Target => "target%",
        SweepParam::Ratio => "ratio",
        SweepParam::Agents => "agents",
    };
    let mut out = format!(
        "{:>8} {:<14} {:>5} {:>10} {:>10} {:>10} {:>9}\n",
        name, "strategy", "runs", "worst%max", "rate%mean", "talk mean", "talk min"
    );
    for r in rows {
        let s = &r.summary;
        out.push_str(&format!(
            "{:>8} {:<14} {:>5} {:>10.2} {:>10.2} {:>10.3} {:>9.3}\n",
            r.value,
            s.strategy,
            s.runs,
            s.worst_window_max_percent,
            s.abandon_rate_mean_percent,
            s.talk_share_mean,
            s.talk_share_min
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_specs_parse_into_evenly_spaced_values() {
        let s: Sweep = "target=0.5..5:10".parse().expect("parses");
        assert_eq!(s.param, SweepParam::Target);
        assert_eq!(s.values.len(), 10);
        assert_eq!(s.values[0], 0.5);
        assert_eq!(s.values[9], 5.0);
        let s: Sweep = "ratio=1..3:5".parse().expect("parses");
        assert_eq!(s.values, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        let s: Sweep = "agents=10..12:5".parse().expect("parses");
        assert_eq!(s.values, vec![10.0, 11.0, 12.0], "rounded and deduplicated");
    }

    fn report(strategy: &str, talk: f64, worst: f64) -> SimReport {
        SimReport {
            strategy: strategy.into(),
            agents: 10,
            days: 1,
            seed: 1,
            attempts: 100,
            human_answers: 30,
            connects: 30,
            abandons: 0,
            abandon_rate_percent: worst / 2.0,
            worst_window_percent: worst,
            limit_percent: 3.0,
            talk_share: talk,
            occupancy: talk,
            idle_s_per_agent_hour: 0.0,
            conversions: 0,
            connects_per_agent_hour: 10.0,
            refused: 0,
            first_hour_talk_share: talk,
            warm_first_hour_talk_share: talk,
        }
    }

    #[test]
    fn a_ratio_sweep_runs_other_strategies_once_and_picks_the_best_legal_ratio() {
        let base = SimConfig {
            campaign: crate::campaign::Campaign::parse(
                include_str!("../../campaigns/uk-broadband.toml"),
                std::path::Path::new("uk"),
            )
            .expect("campaign"),
            scenario: super::super::Scenario::default(),
            strategy: Strategy::Predictive,
            seed: 1,
        };
        let sweep: Sweep = "ratio=1.5..2.5:3".parse().expect("sweep");
        let names = vec!["ratio".to_string(), "progressive".to_string()];
        let points = sweep.points(&base, &names, 1..3).expect("points");
        let strategies: Vec<String> = points
            .iter()
            .map(|p| p.config.strategy.to_string())
            .collect();
        assert_eq!(
            strategies,
            [
                "ratio:1.5",
                "ratio:1.5",
                "progressive",
                "progressive",
                "ratio:2",
                "ratio:2",
                "ratio:2.5",
                "ratio:2.5"
            ]
        );
        let reports: Vec<SimReport> = strategies
            .iter()
            .zip([0.80, 0.82, 0.77, 0.77, 0.85, 0.85, 0.90, 0.90])
            .zip([1.0, 1.0, 0.0, 0.0, 2.9, 2.5, 3.5, 4.0])
            .map(|((s, t), w)| report(s, t, w))
            .collect();
        let rows = rows(&points, &reports);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].summary.runs, 2);
        assert!((rows[0].summary.talk_share_mean - 0.81).abs() < 1e-12);
        // ratio:2.5 talks most but broke the limit; ratio:2 is the best.
        let best = best_ratio(&rows).expect("a legal ratio");
        assert_eq!(best.summary.strategy, "ratio:2");
        assert_eq!(best.value, 2.0);
    }

    #[test]
    fn bad_sweep_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("speed=1..2", "unknown parameter"),
            ("target", "no '='"),
            ("target=1-2", "no '..'"),
            ("target=2..1", "FROM must be below TO"),
            ("target=a..2", "must be numbers"),
            ("target=1..2:1", "STEPS must be 2 to 200"),
            ("ratio=0.5..2", "out of range"),
        ] {
            let e = spec.parse::<Sweep>().expect_err(spec).to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }
}
