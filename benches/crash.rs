//! kill -9 at random moments (issue 16's figure): `dialler run` processes
//! on SQLite with simulated agents, the sandbox provider and agents'
//! phones, killed with SIGKILL after a random 2-14 s of work, restarted
//! under the same node name, worked on for a few seconds and stopped with
//! SIGTERM. Each run checks:
//! - no lead dialled twice (every lead's attempts, the crash's included);
//! - no leg left up: neither the provider nor the agents' phones holds a
//!   confirmed call when they stop (the restarted node BYEs the legs the
//!   crash left, from their stored dialogs);
//! - every bridged call dispositioned or listed as pending for its agent
//!   (`GET /api/agents/{id}/pending` on the restarted node);
//! - the restarted runner's ledger equal to the stored rows.
//!
//! `cargo bench --bench crash` runs 20 (`RUNS=N` to change); without
//! `--bench` (the test suite's smoke run) one short run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/nodes.rs"]
mod nodes;

use std::time::{Duration, Instant};

use nodes::*;
use rand::{RngExt, SeedableRng};

/// What one run found.
#[derive(Debug, Default)]
struct Run {
    killed_after_s: f64,
    in_flight: i64,
    attempts: i64,
    dialled_twice: i64,
    provider_up: u64,
    phones_up: u64,
    bridged: i64,
    dispositioned: i64,
    pending: i64,
    neither: i64,
    ledger_equal: bool,
}

impl Run {
    fn ok(&self) -> bool {
        self.dialled_twice == 0
            && self.provider_up == 0
            && self.phones_up == 0
            && self.neither == 0
            && self.ledger_equal
    }
}

async fn one_run(seed: u64, benching: bool) -> Run {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let Fresh {
        db,
        dnd,
        tokens,
        sup,
        supervisor,
    } = fresh(dir.path(), 6).await;
    let boxes = Sandboxes::start_seeded(seed + 1).await;
    let at = clock_start();
    let started = Instant::now();
    let first = Node::start(&db, &dnd, "n1", boxes.provider, at).await;
    let crew = agents(&first, &tokens, &sup, boxes.phones, 120, seed + 1);
    let work = if benching {
        rng.random_range(2_000..14_000)
    } else {
        4_000
    };
    tokio::time::sleep(Duration::from_millis(work)).await;
    first.kill_9().await;
    let killed_after_s = started.elapsed().as_secs_f64();
    for a in crew {
        let _ = a.await;
    }
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let in_flight = scalar(
        &pool,
        "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL",
    )
    .await;

    let at2 = at + chrono::Duration::from_std(started.elapsed()).unwrap();
    let second = Node::start(&db, &dnd, "n1", boxes.provider, at2).await;
    let stored = (
        scalar(
            &pool,
            "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'human_answer'",
        )
        .await as u64,
        scalar(
            &pool,
            "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'abandon'",
        )
        .await as u64,
    );
    let ledger_equal = window(&second, &supervisor).await == stored;
    // What the crash cut, as the restarted node lists it: calls put
    // through whose disposition was never recorded.
    let mut pending = 0;
    for (id, token) in &tokens {
        let (code, body) = dialler::service::client::request(
            second.http,
            "GET",
            &format!("/api/agents/{id}/pending"),
            Some(token),
            None,
        )
        .await
        .unwrap();
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        pending += v.as_array().map_or(0, Vec::len) as i64;
    }
    let bridged_at_restart = scalar(
        &pool,
        "SELECT COUNT(*) FROM call_attempts WHERE connected_at IS NOT NULL",
    )
    .await;
    let dispositioned_at_restart =
        scalar(&pool, "SELECT COUNT(DISTINCT attempt_id) FROM dispositions").await;
    // Work on, then stop cleanly.
    let crew = agents(&second, &tokens[..4], &sup, boxes.phones, 5, seed + 2);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stopping = tokio::spawn(second.terminate());
    for a in crew {
        let _ = a.await;
    }
    stopping.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (provider, phones) = boxes.stop_both().await;
    let run = Run {
        killed_after_s,
        in_flight,
        attempts: scalar(&pool, "SELECT COUNT(*) FROM call_attempts").await,
        dialled_twice: scalar(
            &pool,
            "SELECT COUNT(*) FROM (SELECT lead_id FROM call_attempts
                 GROUP BY lead_id HAVING COUNT(*) > 1) t",
        )
        .await,
        provider_up: provider.up_at_stop,
        phones_up: phones.up_at_stop,
        bridged: bridged_at_restart,
        dispositioned: dispositioned_at_restart,
        pending,
        neither: bridged_at_restart - dispositioned_at_restart - pending,
        ledger_equal,
    };
    pool.close().await;
    run
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let runs: u64 = if benching {
        std::env::var("RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    } else {
        1
    };
    println!(
        "run  killed_after_s  in_flight  attempts  dialled_twice  provider_up  phones_up  bridged  dispositioned  pending  neither  ledger_equal"
    );
    let mut all = Vec::new();
    for seed in 0..runs {
        let r = one_run(seed, benching).await;
        println!(
            "{seed:>3}  {:>14.1}  {:>9}  {:>8}  {:>13}  {:>11}  {:>9}  {:>7}  {:>13}  {:>7}  {:>7}  {:>12}",
            r.killed_after_s,
            r.in_flight,
            r.attempts,
            r.dialled_twice,
            r.provider_up,
            r.phones_up,
            r.bridged,
            r.dispositioned,
            r.pending,
            r.neither,
            r.ledger_equal
        );
        all.push(r);
    }
    let sum = |f: fn(&Run) -> i64| all.iter().map(f).sum::<i64>();
    let failed = all.iter().filter(|r| !r.ok()).count();
    println!(
        "{runs} runs: {} calls in flight at the kills, {} leads dialled twice, {} legs left up \
         (provider {}, phones {}), {} bridged calls at the restarts: {} dispositioned, {} pending, \
         {} neither; ledger equal to the stored rows in {} of {runs}; {failed} runs failed",
        sum(|r| r.in_flight),
        sum(|r| r.dialled_twice),
        sum(|r| (r.provider_up + r.phones_up) as i64),
        sum(|r| r.provider_up as i64),
        sum(|r| r.phones_up as i64),
        sum(|r| r.bridged),
        sum(|r| r.dispositioned),
        sum(|r| r.pending),
        sum(|r| r.neither),
        all.iter().filter(|r| r.ledger_equal).count(),
    );
    assert_eq!(failed, 0, "a run broke a rule");
}
