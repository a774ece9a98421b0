//! `compliance::check` for one lead with registries loaded: the hopper calls
//! it before every dial. Target: under 1 µs. Run with
//! `cargo bench --bench compliance`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};
use dialler::campaign::Campaign;
use dialler::compliance::dnd::{Entry, NationalRegistry};
use dialler::compliance::ledger::{Event, Ledger};
use dialler::compliance::{Context, LeadState, Registries, check};
use dialler::phone::{self, Country};

fn bench(c: &mut Criterion) {
    let campaign = Campaign::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/campaigns/in-insurance-renewal.toml"
    )))
    .expect("campaign");
    let now = DateTime::parse_from_rfc3339("2026-12-02T07:30:00Z")
        .expect("time")
        .with_timezone(&Utc);
    // A national registry of 10 million numbers, a tenth of them with
    // category opt-ins, and an internal list of 100,000.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // `cargo test --benches` runs this once without --bench: keep it small.
    let size = if std::env::args().any(|a| a == "--bench") {
        10_000_000
    } else {
        100_000
    };
    let entries: Vec<Entry> = (0..size)
        .map(|i| {
            let n = 916_000_000_000 + next() % 4_000_000_000;
            if i % 10 == 0 {
                Entry::Partial {
                    number: n,
                    categories: 0b1001,
                    band: None,
                }
            } else {
                Entry::Blocked(n)
            }
        })
        .collect();
    let mut registries = Registries::default();
    registries.national.insert(
        Country::India,
        std::sync::Arc::new(NationalRegistry::build(Country::India, now, &entries)),
    );
    registries.internal = (0..100_000)
        .map(|_| 916_000_000_000 + next() % 4_000_000_000)
        .collect();
    let mut ledger = Ledger::new(campaign.abandon_window);
    for i in 0..1000 {
        ledger.record(now - chrono::Duration::seconds(i), Event::HumanAnswer);
    }
    let status = ledger.status(
        now,
        campaign.abandon_target_percent,
        campaign.abandon_limit_percent,
    );
    let ctx = Context {
        registries: &registries,
        ledger: Some(status),
        ledger_retry_at: ledger.next_expiry(),
        agent_reserved: false,
    };
    let zones: &[Tz] = &[chrono_tz::Asia::Kolkata];
    let numbers: Vec<_> = (0..4096)
        .map(|_| {
            phone::parse(
                &format!("{}", 6_000_000_000 + next() % 4_000_000_000),
                Country::India,
            )
            .expect("number")
        })
        .collect();
    let attempts = [now - chrono::Duration::days(2)];
    let mut i = 0;
    c.bench_function("compliance::check, one lead, 10M-number registry", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let lead = LeadState {
                number: numbers[i],
                zones,
                attempts: 1,
                recent_attempts: &attempts,
                opted_out: false,
                last_outcome: Some((dialler::outcome::Outcome::NoAnswer, attempts[0])),
                last_abandon_at: None,
                last_machine_at: None,
            };
            std::hint::black_box(check(&lead, &campaign, &ctx, now))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
