use std::path::Path;

use super::*;

fn campaign() -> Campaign {
    Campaign::parse(
        include_str!("../../campaigns/uk-broadband.toml"),
        Path::new("uk"),
    )
    .expect("campaign")
}

fn config(strategy: &str, agents: u32, days: u32, seed: u64) -> SimConfig {
    let scenario = Scenario {
        agents,
        days,
        ..Scenario::default()
    };
    SimConfig {
        campaign: campaign(),
        scenario,
        strategy: Strategy::parse(strategy).expect("strategy"),
        seed,
    }
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let a = run(&config("predictive", 10, 1, 7));
    let b = run(&config("predictive", 10, 1, 7));
    assert_eq!(a, b);
    let c = run(&config("predictive", 10, 1, 8));
    assert_ne!(a.attempts, c.attempts);
}

#[test]
fn progressive_never_abandons_when_everyone_answers_at_once() {
    let mut cfg = config("progressive", 10, 1, 3);
    cfg.scenario.outcomes = scenario::Outcomes {
        human: 1.0,
        machine: 0.0,
        busy: 0.0,
        no_answer: 0.0,
        failure: 0.0,
    };
    cfg.scenario.ring = scenario::Dist {
        mean: 0.001,
        sd: 0.0,
    };
    let r = run(&cfg);
    assert!(r.connects > 500, "{r:?}");
    assert_eq!(r.abandons, 0, "{r:?}");
}

#[test]
fn worst_window_counts_full_windows_only() {
    // Two abandons early, then many clean answers.
    let mut ev = vec![(0, false), (1, true), (2, false), (3, true)];
    ev.extend((10..110).map(|t| (t, false)));
    // Window of 50: the first full window is (0, 50]: both abandons, the
    // answer at 2 and the 41 at 10..=50; the answer at 0 has left it.
    let w = worst_window(&ev, 50);
    let first_full = 100.0 * 2.0 / 42.0;
    assert!((w - first_full).abs() < 1e-9, "{w} vs {first_full}");
    // Shorter run than the window: judged whole.
    assert!((worst_window(&ev, 1000) - 200.0 / 102.0).abs() < 1e-9);
    assert_eq!(worst_window(&[], 10), 0.0);
}
