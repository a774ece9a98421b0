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
fn worst_window_counts_every_rolling_window() {
    // Observed up to the last event: only the windows ending at one.
    let seen = |ev: &[(u64, bool)]| ev.last().map_or(0, |e| e.0);
    // Two abandons early, then many clean answers.
    let mut ev = vec![(0, false), (1, true), (2, false), (3, true)];
    ev.extend((10..110).map(|t| (t, false)));
    // The window ending at 1 holds one answer and one abandon: 100%, the
    // campaign having been silent before. A regulator may pick it.
    assert!((worst_window(&ev, 50, seen(&ev)) - 100.0).abs() < 1e-9);
    // Once answers have come, the early abandons weigh less.
    let late: Vec<(u64, bool)> = ev.iter().filter(|e| e.0 >= 2).copied().collect();
    assert!(
        (worst_window(&late, 50, seen(&late)) - 100.0).abs() < 1e-9,
        "(2, 3]: 1 of 1"
    );
    let clean = vec![(0, false), (1, false), (2, false), (3, true), (60, false)];
    // (.., 3]: 1 of 3; (10, 60]: 0 of 1.
    assert!((worst_window(&clean, 50, 3) - 100.0 / 3.0).abs() < 1e-9);
    // Seen further, the windows starting after an answer count too:
    // [2, 52) holds one answer and the abandon.
    assert!((worst_window(&clean, 50, 60) - 100.0).abs() < 1e-9);
    // Seen to 51, the last such window is [1, 51): two answers, the abandon.
    assert!((worst_window(&clean, 50, 51) - 50.0).abs() < 1e-9);
    // Events at one instant are judged together.
    let same = vec![(0, false), (5, true), (5, false), (5, false)];
    assert!((worst_window(&same, 50, 5) - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(worst_window(&[], 10, 100), 0.0);
}

/// A day of answers with one abandon near its close, then silence (a
/// closed Sunday): every window ending at an event holds the whole day,
/// but the window starting just before the abandon holds only the last
/// few calls. It counts once it has been seen whole.
#[test]
fn worst_window_counts_the_last_calls_before_a_closed_day() {
    let mut ev: Vec<(u64, bool)> = (0..100).map(|t| (t, false)).collect();
    ev.insert(98, (97, true));
    // Observed to the last call: (47, 97] holds 50 answers and 1 abandon.
    assert!((worst_window(&ev, 50, 99) - 2.0).abs() < 1e-9);
    // Seen whole: [97, 147) holds the answers at 97, 98, 99 and the abandon.
    assert!((worst_window(&ev, 50, 200) - 100.0 / 3.0).abs() < 1e-9);
    // Seen to 146: the latest whole window starting after an event is
    // [96, 146): four answers and the abandon.
    assert!((worst_window(&ev, 50, 146) - 25.0).abs() < 1e-9);
}

#[test]
fn a_replay_draws_only_what_the_records_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("records.csv");
    std::fs::write(
        &path,
        "outcome,ring_s,talk_s,wrap_s,patience_s,converted\n\
         human,5,120,10,4,1\n\
         machine,8,0,0,,0\n",
    )
    .expect("write");
    let mut cfg = config("progressive", 5, 1, 2);
    cfg.scenario.records = std::sync::Arc::new(scenario::load_records(&path).expect("records"));
    let r = run(&cfg);
    assert!(r.attempts > 100, "{r:?}");
    // Half the records are people, every person converts.
    let share = r.human_answers as f64 / r.attempts as f64;
    assert!((share - 0.5).abs() < 0.1, "{share} {r:?}");
    assert_eq!(r.conversions, r.connects);
    assert_eq!(run(&cfg), r, "same seed, same replay");
}

#[test]
fn a_bad_call_record_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("records.csv");
    std::fs::write(
        &path,
        "outcome,ring_s,talk_s,wrap_s\nhuman,5,120,10\nhuman,5,-3,10\n",
    )
    .expect("write");
    let e = scenario::load_records(&path)
        .expect_err("bad row")
        .to_string();
    assert!(e.contains(":3:"), "{e}");
    std::fs::write(&path, "outcome,ring_s,talk_s,wrap_s\nalien,5,120,10\n").expect("write");
    let e = scenario::load_records(&path)
        .expect_err("bad outcome")
        .to_string();
    assert!(e.contains(":2:") && e.contains("alien"), "{e}");
}
