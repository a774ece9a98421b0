//! Pacing speed: one predictive decision for 100 and 1,000 agents (issue
//! target: 2 µs and 20 µs), and the simulator's dial attempts per second
//! on one core for the predictive strategy (target: 1,000,000).
//!
//! `cargo bench --bench pacing`. Under `cargo test` (no `--bench`) each
//! benchmark runs once, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dialler::campaign::{Campaign, Strategy};
use dialler::pacing::estimate::{Estimators, Priors};
use dialler::pacing::{Governor, LedgerView, Pacer, Predictive, Snapshot};
use dialler::sim::{Scenario, SimConfig, run};

/// A team mid-shift: most agents busy at spread-out points of their
/// calls, a few ready, calls ringing at every stage, a healthy ledger.
fn decision(c: &mut Criterion) {
    let mut est = Estimators::new(Priors::default());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..500 {
        est.record_handle(60.0 + (next() % 400) as f64);
        est.record_attempt(next() % 10 < 3, 2.0 + (next() % 15) as f64);
    }
    est.refresh();
    let mut group = c.benchmark_group("predictive_decision");
    for agents in [100u32, 1000] {
        let now_ms = 40_000_000;
        let busy: Vec<u64> = (0..agents * 9 / 10)
            .map(|_| now_ms - (next() % 600) * 1000)
            .collect();
        let ringing: Vec<u64> = (0..agents / 4)
            .map(|_| now_ms - (next() % 25) * 1000)
            .collect();
        let ready = agents - busy.len() as u32;
        let snapshot = Snapshot {
            now_ms,
            active_agents: agents,
            ready,
            busy_since_ms: &busy,
            wrap_since_ms: &[],
            ringing_since_ms: &ringing,
            waiting: 0,
            ring_timeout_s: 25.0,
            ledger: LedgerView::new(
                (100 * u64::from(agents), 2 * u64::from(agents)),
                (90 * u64::from(agents), 2 * u64::from(agents)),
                0.03,
            ),
            limit_percent: 3.0,
            target_percent: 2.5,
            max_dial_level: 3.0,
            est: &est,
            oracle: None,
        };
        let mut pacer = Predictive::new();
        group.bench_with_input(BenchmarkId::from_parameter(agents), &snapshot, |b, s| {
            // A decision as the runner makes it: the strategy held to its
            // governor.
            b.iter(|| {
                let s = std::hint::black_box(s);
                let mut gov = Governor::new(s);
                let d = pacer.decide(s, &mut gov);
                gov.admit(d.launch)
            })
        });
    }
    group.finish();
}

/// The simulator on one core: 100 agents on the default scenario.
fn simulator(c: &mut Criterion) {
    let campaign = Campaign::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/campaigns/uk-broadband.toml"
    )))
    .expect("campaign");
    // `cargo test --benches` runs this once without --bench, as a smoke
    // test (in a debug build): a small team for a day.
    let benching = std::env::args().any(|a| a == "--bench");
    let (agents, days) = if benching { (100, 5) } else { (10, 1) };
    let config = SimConfig {
        campaign,
        scenario: Scenario {
            agents,
            days,
            ..Scenario::default()
        },
        strategy: Strategy::Predictive,
        seed: 1,
    };
    let attempts = run(&config).attempts;
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(attempts));
    group.bench_function(format!("predictive_{agents}_agents_{days}_days"), |b| {
        b.iter(|| run(std::hint::black_box(&config)))
    });
    group.finish();
}

criterion_group!(benches, decision, simulator);
criterion_main!(benches);
