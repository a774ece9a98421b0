//! `dialler run` as real processes: killed with SIGKILL in the middle of
//! calls and restarted on SQLite, and two processes sharing one campaign on
//! PostgreSQL. The provider and the agents' phones are the built-in sandbox
//! on loopback; simulated agents use the HTTP API of the process they log
//! in to.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::nodes::*;

/// SIGKILL in the middle of connected and ringing calls, then a restart
/// under the same node name: the calls in flight are closed as
/// `interrupted`, their leads wait the retry delay and are not dialled
/// again, no lead is lost or dialled twice, every INVITE the provider got
/// has its attempt row (written before it was sent), and the ledger the
/// restarted process works from is exactly the stored one, with a human
/// answer never bridged counted as abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_then_restart_loses_nothing_and_redials_nothing_early() {
    let dir = tempfile::tempdir().unwrap();
    let Fresh {
        db,
        dnd,
        tokens,
        sup,
        supervisor,
    } = fresh(dir.path(), 6).await;
    let leads_before = {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let n = scalar(&pool, "SELECT COUNT(*) FROM leads").await;
        pool.close().await;
        n
    };
    let boxes = Sandboxes::start().await;
    let at = clock_start();
    let started = std::time::Instant::now();

    let first = Node::start(&db, &dnd, "n1", boxes.provider, at).await;
    let crew = agents(&first, &tokens, &sup, boxes.phones, 120, 1);
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    // Until calls are in flight, one of them connected to an agent.
    let mut ready = false;
    for _ in 0..300 {
        let open = scalar(
            &pool,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL",
        )
        .await;
        let connected = scalar(
            &pool,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL AND connected_at IS NOT NULL",
        )
        .await;
        let done = scalar(
            &pool,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NOT NULL",
        )
        .await;
        if open >= 3 && connected >= 1 && done >= 3 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "no calls in flight to crash on");
    first.kill_9().await;
    let killed_after = started.elapsed();
    // The legs it left, stored before their INVITEs: customers' and
    // agents' phones', the answered ones with their dialogs.
    let left: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT call_id, kind, record NOT LIKE '%\"dialog\":null%' FROM sip_legs")
            .fetch_all(&pool)
            .await
            .unwrap();
    for kind in ["customer", "agent"] {
        assert!(
            left.iter().any(|(_, k, answered)| k == kind && *answered),
            "no answered {kind} leg stored: {left:?}"
        );
    }
    for a in crew {
        let _ = a.await;
    }
    let in_flight: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, lead_id FROM call_attempts WHERE outcome IS NULL ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(in_flight.len() >= 3);
    let attempts_at_crash = scalar(&pool, "SELECT COUNT(*) FROM call_attempts").await;

    // Restart: same node, the clock where it would be.
    let at2 = at + chrono::Duration::from_std(started.elapsed()).unwrap();
    let second = Node::start(&db, &dnd, "n1", boxes.provider, at2).await;
    for (id, lead) in &in_flight {
        let (outcome, ended, connected): (Option<String>, Option<i64>, Option<i64>) =
            sqlx::query_as(
                "SELECT outcome, ended_at, connected_at FROM call_attempts WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(outcome.as_deref(), Some("interrupted"), "attempt {id}");
        let ended = ended.expect("ended_at set");
        let (status, next): (String, Option<i64>) =
            sqlx::query_as("SELECT status, next_attempt_at FROM leads WHERE id = $1")
                .bind(lead)
                .fetch_one(&pool)
                .await
                .unwrap();
        if connected.is_some() {
            // Put through to an agent before the crash: reached, done.
            assert_eq!((status.as_str(), next), ("done", None), "lead {lead}");
            continue;
        }
        assert_eq!(status, "retry", "lead {lead}");
        assert!(
            next.expect("next attempt time") >= ended + 3_600_000,
            "lead {lead} may be dialled before the 1 h failure delay"
        );
    }
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM agent_states WHERE ended_at IS NULL"
        )
        .await,
        0,
        "agent intervals of the dead process closed"
    );
    // The ledger: one human answer per answered attempt; one abandon per
    // abandoned attempt and per answered attempt the crash left unbridged.
    let answered = scalar(
        &pool,
        "SELECT COUNT(*) FROM call_attempts WHERE answered_at IS NOT NULL",
    )
    .await;
    let abandoned = scalar(
        &pool,
        "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'abandoned'
            OR (outcome = 'interrupted' AND answered_at IS NOT NULL AND connected_at IS NULL)",
    )
    .await;
    let l_answers = scalar(
        &pool,
        "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'human_answer'",
    )
    .await;
    let l_abandons = scalar(
        &pool,
        "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'abandon'",
    )
    .await;
    assert_eq!(
        (l_answers, l_abandons),
        (answered, abandoned),
        "stored ledger"
    );
    assert_eq!(
        window(&second, &supervisor).await,
        (answered as u64, abandoned as u64),
        "the restarted runner's ledger is the stored one"
    );

    // Dial on for a while after the restart, then stop cleanly.
    let crew = agents(&second, &tokens[..4], &sup, boxes.phones, 8, 2);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stopping = tokio::spawn(second.terminate());
    for a in crew {
        let _ = a.await;
    }
    stopping.await.unwrap();
    // BYEs of the clean stop still in flight settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stats, phones) = boxes.stop_both().await;
    // The legs the crash left up (customers talking, agents' phones) were
    // ended by the restarted node from their stored dialogs: nothing the
    // dialler confirmed is still up on either side.
    assert_eq!(stats.up_at_stop, 0, "customer legs left up: {stats:?}");
    assert_eq!(phones.up_at_stop, 0, "agent phone legs left up: {phones:?}");
    // Every leg forgotten once ended; what may remain is a leg the crash
    // left ringing whose CANCEL found it answered meanwhile (its 200 went
    // to the dead process, so the CANCEL waits 64*T1 for nothing while the
    // provider, never ACKed, ends the call itself).
    let remaining: Vec<(String,)> = sqlx::query_as("SELECT call_id FROM sip_legs")
        .fetch_all(&pool)
        .await
        .unwrap();
    for (id,) in &remaining {
        assert!(
            left.iter().any(|(l, _, answered)| l == id && !answered),
            "leg {id} still stored"
        );
    }
    let attempts = scalar(&pool, "SELECT COUNT(*) FROM call_attempts").await;
    assert!(attempts > attempts_at_crash, "the restarted node dialled");
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL"
        )
        .await,
        0
    );
    // Written before acted on: no INVITE without its row. A row may lack
    // its INVITE only for a call the crash cut off.
    let invites = stats.invites as i64;
    assert!(
        invites <= attempts,
        "{invites} INVITEs, {attempts} attempts"
    );
    assert!(attempts - invites <= in_flight.len() as i64);
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM leads").await,
        leads_before,
        "no lead lost"
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM call_attempts GROUP BY lead_id) t"
        )
        .await,
        1,
        "no lead dialled twice"
    );
    eprintln!(
        "killed after {:.1} s with {} calls in flight; {attempts_at_crash} attempts then, {attempts} in all",
        killed_after.as_secs_f64(),
        in_flight.len()
    );
    pool.close().await;
}

/// Two `dialler run` processes (nodes a and b) share the campaign on
/// PostgreSQL, each with its own agents: both dial, and no lead is ever
/// dialled by both or twice (claims use FOR UPDATE SKIP LOCKED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_campaign_on_postgres_without_dialling_a_lead_twice() {
    let Some(pg) = common::pg_store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (dnd, tokens, sup) = prepare(&pg.store, dir.path(), 8).await;
    let url = pg.url();
    let boxes = Sandboxes::start().await;
    let at = clock_start();
    let a = Node::start(&url, &dnd, "a", boxes.provider, at).await;
    let b = Node::start(&url, &dnd, "b", boxes.provider, at).await;
    let mut crew = agents(&a, &tokens[..4], &sup, boxes.phones, 20, 3);
    crew.extend(agents(&b, &tokens[4..], &sup, boxes.phones, 20, 4));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (ta, tb) = (tokio::spawn(a.terminate()), tokio::spawn(b.terminate()));
    for t in crew {
        let _ = t.await;
    }
    ta.await.unwrap();
    tb.await.unwrap();
    let stats = boxes.stop().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let by_node: Vec<(String, i64)> =
        sqlx::query_as("SELECT node, COUNT(*) FROM call_attempts GROUP BY node ORDER BY node")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(by_node.len(), 2, "both processes dialled: {by_node:?}");
    assert!(by_node.iter().all(|(_, n)| *n >= 3), "{by_node:?}");
    let twice = pg_scalar(
        &pool,
        "SELECT COUNT(*) FROM (SELECT lead_id FROM call_attempts GROUP BY lead_id HAVING COUNT(*) > 1) t",
    )
    .await;
    assert_eq!(twice, 0, "a lead was dialled twice");
    let attempts = pg_scalar(&pool, "SELECT COUNT(*) FROM call_attempts").await;
    assert_eq!(
        stats.invites as i64, attempts,
        "one INVITE per stored attempt"
    );
    assert_eq!(
        pg_scalar(
            &pool,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        pg_scalar(&pool, "SELECT COUNT(*) FROM leads WHERE status = 'claimed'").await,
        0,
        "claims released at shutdown"
    );
    eprintln!("attempts by node: {by_node:?}");
    pool.close().await;
    pg.drop_schema().await;
}
