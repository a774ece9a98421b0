//! The live service's logic on paused time: the whole service (store,
//! sandbox provider, agent phones, HTTP API) in this process on a clock
//! that tokio moves only when everything waits, so minutes and hours of
//! campaign take seconds. Agent flow, callbacks booked, shutdown with its
//! grace period, recovery after a crash, the dashboard's figures, and
//! pacing over a long run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::live::{Sandboxes, answering, load, start, start_with, tuesday, until};
use dialler::store::LedgerKind;
use serde_json::json;
use sqlx::Row;

async fn pool(db: &std::path::Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

async fn count(pool: &sqlx::SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits, at most `limit` on the test's clock, until `n` call attempts
/// have ended: whether they did.
async fn until_ended(pool: &sqlx::SqlitePool, n: i64, limit: Duration) -> bool {
    until(limit, || async {
        count(
            pool,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NOT NULL",
        )
        .await
            >= n
    })
    .await
}

/// One agent through a whole call: log in (paused), ready, a call put
/// through, hang-up, wrap-up, a callback disposition (the lead comes back
/// at the agreed time), a pause with a reason, log-out. Every state change
/// is an interval in the store, in order.
#[tokio::test(start_paused = true)]
async fn an_agent_works_a_call_from_login_to_logout() {
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(30)).await;
    let (id, tok) = &l.agents[0];
    let phone = format!("sip:1@{}", sb.phones);
    live.provision(&l.supervisor, id, &phone).await;
    let login = json!({ "campaign": "uk-broadband", "sip_uri": phone });
    let (c, v) = live
        .req(
            "POST",
            &format!("/api/agents/{id}/login"),
            tok,
            Some(&login.to_string()),
        )
        .await;
    assert_eq!((c, v["state"].as_str()), (200, Some("paused")), "{v}");
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
        .await;
    assert_eq!(c, 200);
    // A call is put through within a minute (the provider answers all).
    let call = format!("/api/agents/{id}/call");
    assert!(
        until(Duration::from_secs(60), || async {
            live.req("GET", &call, tok, None).await.0 == 200
        })
        .await,
        "no call put through"
    );
    let (_, v) = live.req("GET", &call, tok, None).await;
    assert_eq!(v["state"], "on_call");
    let call_id = v["call"]["call_id"].as_i64().unwrap();
    // The wallboard: the agent's row, on the call; agents may not see it.
    assert_eq!(live.req("GET", "/api/wallboard", tok, None).await.0, 403);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c, wb) = live.req("GET", "/api/wallboard", &l.supervisor, None).await;
    assert_eq!(c, 200, "{wb}");
    let row = &wb["campaigns"][0]["agents"][0];
    assert_eq!(
        (row["agent"].as_str(), row["state"].as_str()),
        (Some(id.as_str()), Some("on_call")),
        "{wb}"
    );
    assert!(row["call_s"].as_f64().unwrap() >= 3.0, "{wb}");
    assert!(row["in_state_s"].as_f64().unwrap() >= 3.0, "{wb}");
    assert_eq!(wb["campaigns"][0]["run_state"], "running");
    assert!(
        wb["campaigns"][0]["hourly"][0]["attempts"]
            .as_i64()
            .unwrap()
            >= 1,
        "{wb}"
    );
    assert!(v["call"]["phone"].as_str().unwrap().starts_with("+44"));
    // Ready while on a call: refused.
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
        .await;
    assert_eq!(c, 409);
    tokio::time::sleep(Duration::from_secs(45)).await;
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/hangup"), tok, None)
        .await;
    assert_eq!(c, 200);
    assert!(
        until(Duration::from_secs(10), || async {
            live.req("GET", &call, tok, None).await.1["state"] == "wrapup"
        })
        .await
    );
    // A pause reason goes to the audit log and supervisors' screens: no
    // control characters; 100 characters, not bytes.
    for (reason, code) in [
        ("x\u{1b}[31mEVIL\r\nfake log line", 400),
        (&"\u{e9}".repeat(101), 400),
    ] {
        let body = json!({ "reason": reason }).to_string();
        let (c, v) = live
            .req("POST", &format!("/api/agents/{id}/pause"), tok, Some(&body))
            .await;
        assert_eq!(c, code, "{v}");
        assert_eq!(v["error"]["field"], "reason", "{v}");
    }
    // An amount is a conversion's, a call-back time a callback's.
    let dispo = format!("/api/calls/{call_id}/disposition");
    for (body, field) in [
        (json!({ "code": "NO_SUCH_CODE" }), "code"),
        (json!({ "code": "NOT_AVAILABLE", "amount": 500 }), "amount"),
        (
            json!({ "code": "NOT_INTERESTED", "callback_at": 1 }),
            "callback_at",
        ),
    ] {
        let (c, v) = live.req("POST", &dispo, tok, Some(&body.to_string())).await;
        assert_eq!(c, 400, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    // A disposition while paused-after is asked for: first a pause, which
    // waits for the end of wrap-up.
    let (c, v) = live
        .req(
            "POST",
            &format!("/api/agents/{id}/pause"),
            tok,
            Some(r#"{"reason":"lunch"}"#),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let back = live.clock.now().ms() + 30 * 60_000;
    let (c, v) = live
        .req(
            "POST",
            &format!("/api/calls/{call_id}/disposition"),
            tok,
            Some(&json!({ "code": "CALLBACK", "callback_at": back }).to_string()),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    let wrap_ms = v["wrapup_ms"].as_i64().unwrap();
    assert!((8_000..9_000).contains(&wrap_ms), "wrap-up {wrap_ms} ms");
    // The callback is listed: for its agent and the supervisor, not for
    // another agent.
    let (c, v) = live
        .req("GET", "/api/callbacks?campaign=uk-broadband", tok, None)
        .await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        (v[0]["agent_id"].as_str(), v[0]["due_at"].as_i64()),
        (Some(id.as_str()), Some(back))
    );
    let (_, all) = live
        .req(
            "GET",
            "/api/callbacks?campaign=uk-broadband",
            &l.supervisor,
            None,
        )
        .await;
    assert_eq!(all, v);
    let (_, none) = live
        .req(
            "GET",
            "/api/callbacks?campaign=uk-broadband&agent=agent99",
            &l.supervisor,
            None,
        )
        .await;
    assert_eq!(none, json!([]));
    // An agent naming another agent is refused, not answered with its own.
    let (c, v) = live
        .req(
            "GET",
            "/api/callbacks?campaign=uk-broadband&agent=agent99",
            tok,
            None,
        )
        .await;
    assert_eq!(c, 403, "{v}");
    let (_, wb) = live.req("GET", "/api/wallboard", &l.supervisor, None).await;
    let board = &wb["campaigns"][0];
    assert_eq!(board["callbacks"][0]["due_at"].as_i64(), Some(back), "{wb}");
    assert_eq!(board["agents"][0]["calls"], 1, "{wb}");
    assert!(board["agents"][0]["aht_s"].as_f64().unwrap() > 45.0, "{wb}");
    // The pending pause took effect.
    let (_, sessions) = live.req("GET", "/api/agents", &l.supervisor, None).await;
    assert_eq!(sessions[0]["state"], "paused", "{sessions}");
    assert_eq!(sessions[0]["reason"], "lunch");
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/logout"), tok, None)
        .await;
    assert_eq!(c, 200);
    let (_, sessions) = live.req("GET", "/api/agents", &l.supervisor, None).await;
    assert_eq!(sessions, json!([]));
    live.stop().await;
    sb.stop().await;
    tokio::time::resume();

    let p = pool(&l.db).await;
    let states: Vec<(String, Option<String>, Option<i64>)> = sqlx::query(
        "SELECT state, reason, ended_at FROM agent_states WHERE agent_id = 'agent01' ORDER BY id",
    )
    .fetch_all(&p)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let names: Vec<&str> = states.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        ["paused", "ready", "on_call", "wrapup", "paused"],
        "{states:?}"
    );
    assert_eq!(states[0].1.as_deref(), Some("logged_in"));
    assert_eq!(states[4].1.as_deref(), Some("lunch"));
    assert!(
        states.iter().all(|s| s.2.is_some()),
        "all closed: {states:?}"
    );
    // The lead waits for its callback.
    let (status, next, last): (String, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT l.status, l.next_attempt_at, l.last_outcome FROM leads l
           JOIN call_attempts a ON a.lead_id = l.id WHERE a.id = $1",
    )
    .bind(call_id)
    .fetch_one(&p)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), next, last.as_deref()),
        ("retry", Some(back), Some("callback"))
    );
}

/// Shutdown: dialling stops at once, connected calls may go on for the
/// grace period, then they are hung up; every attempt is closed, every
/// agent interval too, and unused claims go back.
#[tokio::test(start_paused = true)]
async fn shutdown_lets_calls_run_out_the_grace_then_hangs_up() {
    let l = load("uk-broadband", tuesday(), 3).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 6)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(20)).await;
    live.staff(&l, sb.phones).await;
    let sup = l.supervisor.clone();
    assert!(
        until(Duration::from_secs(120), || async {
            let (_, v) = live.req("GET", "/api/live", &sup, None).await;
            v["campaigns"]["uk-broadband"]["agents_on_call"] == 3
        })
        .await,
        "three calls put through"
    );
    let started = tokio::time::Instant::now();
    let summary = live.stop().await;
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(20)..Duration::from_secs(30)).contains(&took),
        "ran out the 20 s grace: {took:?}"
    );
    assert_eq!(summary.hung_up_at_shutdown, 3);
    sb.stop().await;
    tokio::time::resume();
    let p = pool(&l.db).await;
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'connected'"
        )
        .await,
        3,
        "cut calls were connected calls"
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM agent_states WHERE ended_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM leads WHERE status = 'claimed'").await,
        0
    );
}

/// A carrier that takes 6 s to set a call up before the phone rings (100
/// at once, 180 after 6 s), and nobody answers: the live service lets
/// every phone ring the campaign's whole 25 s from its 180, as the rules
/// on ring time ask (TSR 310.4(b)(4)(i), Ofcom: at least 15 s), not 25 s
/// from the INVITE (19 s of ringing). The provider measures the ringing.
#[tokio::test(start_paused = true)]
async fn a_slow_set_up_does_not_shorten_the_ringing() {
    let l = load("uk-broadband", tuesday(), 2).await;
    let sb = Sandboxes::start(dialler::sip::sandbox::SandboxConfig {
        setup: Duration::from_secs(6),
        weights: dialler::sip::sandbox::Weights {
            answer: 0.0,
            busy: 0.0,
            no_answer: 1.0,
            reject: 0.0,
            unavailable: 0.0,
        },
        ..Default::default()
    })
    .await;
    // A grace long enough for the calls out at the stop to ring out.
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(60)).await;
    live.staff(&l, sb.phones).await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    live.stop().await;
    let stats = sb.stop().await;
    tokio::time::resume();
    assert!(stats.cancelled >= 10, "{stats:?}");
    let shortest = stats.shortest_cancelled_ring_ms.unwrap_or(0);
    assert!(
        shortest >= 25_000,
        "a phone rang {shortest} ms of the campaign's 25 s: {stats:?}"
    );
    let p = pool(&l.db).await;
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'no_answer'"
        )
        .await as u64,
        stats.cancelled,
    );
}

/// A node that dies in the middle of calls (its runtime dropped: no
/// shutdown code runs) and a restart under the same name: the calls it
/// left become `interrupted`, its agents' intervals are closed, and the
/// restarted runner's ledger is the one the store holds.
#[tokio::test(start_paused = true)]
async fn a_restart_recovers_what_a_crash_left() {
    let l = load("uk-broadband", tuesday(), 2).await;
    let db = l.db.clone();
    let agents = l.agents.clone();
    let sup = l.supervisor.clone();
    let campaign = l.campaign.clone();
    let dnd = l.dir.path().join("dnd");
    // The first node, in a runtime of its own that is dropped mid-call.
    let crashed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = dialler::store::Store::open(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            let sb = Sandboxes::start(answering(Duration::from_secs(3600), 7)).await;
            let live = start_with(
                &store,
                &campaign,
                &dnd,
                sb.provider,
                tuesday(),
                "n1",
                Duration::from_secs(30),
            )
            .await;
            for (id, tok) in &agents {
                let phone = format!("sip:{id}@{}", sb.phones);
                live.provision(&sup, id, &phone).await;
                let login = json!({ "campaign": "uk-broadband", "sip_uri": phone });
                live.req(
                    "POST",
                    &format!("/api/agents/{id}/login"),
                    tok,
                    Some(&login.to_string()),
                )
                .await;
                live.req("POST", &format!("/api/agents/{id}/ready"), tok, None)
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(120)).await;
            // Dropped here with the runtime: a crash.
            std::mem::forget(live);
        });
    });
    crashed.join().unwrap();
    tokio::time::resume();
    let p = pool(&l.db).await;
    let open = count(
        &p,
        "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL",
    )
    .await;
    assert!(open >= 2, "calls in flight at the crash: {open}");
    let open_states = count(
        &p,
        "SELECT COUNT(*) FROM agent_states WHERE ended_at IS NULL",
    )
    .await;
    assert!(open_states >= 2);
    tokio::time::pause();

    let later = tuesday() + chrono::Duration::minutes(5);
    let sb = Sandboxes::start(answering(Duration::from_secs(60), 8)).await;
    let live = start(&l, sb.provider, later, "n1", Duration::from_secs(5)).await;
    // The calls put through before the crash had their wrap-up cut: each
    // agent finds them pending and can still record their disposition,
    // once.
    let mut recorded = 0;
    for (id, tok) in &l.agents {
        let (code, pending) = live
            .req("GET", &format!("/api/agents/{id}/pending"), tok, None)
            .await;
        assert_eq!(code, 200, "{pending}");
        for call in pending.as_array().unwrap() {
            assert_eq!(call["outcome"], "interrupted", "{call}");
            let call_id = call["call_id"].as_i64().unwrap();
            let body = json!({ "code": "NOT_INTERESTED" }).to_string();
            let path = format!("/api/calls/{call_id}/disposition");
            let (code, done) = live.req("POST", &path, tok, Some(&body)).await;
            assert_eq!(code, 200, "{done}");
            let (again, _) = live.req("POST", &path, tok, Some(&body)).await;
            assert_eq!(again, 404, "a second disposition for the same call");
            recorded += 1;
        }
        let (_, after) = live
            .req("GET", &format!("/api/agents/{id}/pending"), tok, None)
            .await;
        assert_eq!(after, json!([]));
    }
    // Another agent's token sees none of them.
    if let [(a, _), (_, other_tok)] = &l.agents[..] {
        let (code, _) = live
            .req("GET", &format!("/api/agents/{a}/pending"), other_tok, None)
            .await;
        assert_eq!(code, 403);
    }
    live.stop().await;
    sb.stop().await;
    tokio::time::resume();
    assert!(recorded >= 1, "a bridged call was cut by the crash");
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM dispositions").await,
        recorded
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'interrupted'"
        )
        .await,
        open
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM agent_states WHERE ended_at IS NULL"
        )
        .await,
        0
    );
    // What the crash interrupted ended at the node's last heartbeat
    // (beats every second), not at the restart five minutes later: the
    // downtime is neither talk nor work.
    let crash = tuesday().timestamp_millis() + 120_000;
    for sql in [
        "SELECT MAX(ended_at) FROM call_attempts WHERE outcome = 'interrupted'",
        "SELECT MAX(ended_at) FROM agent_states",
    ] {
        let last: i64 = count(&p, sql).await;
        assert!(
            (crash - 2_000..=crash).contains(&last),
            "{sql}: {last} vs the crash at {crash} (restart at {})",
            later.timestamp_millis()
        );
    }
    // Their leads wait the interrupted retry delay (the campaign's failure
    // delay, an hour) from the restart; a lead whose person had been put
    // through to an agent is done, as after any connected call.
    let waits: Vec<(bool, String, Option<i64>)> = sqlx::query_as(
        "SELECT a.connected_at IS NOT NULL, l.status, l.next_attempt_at
           FROM leads l JOIN call_attempts a ON a.lead_id = l.id
          WHERE a.outcome = 'interrupted'",
    )
    .fetch_all(&p)
    .await
    .unwrap();
    let hour = later.timestamp_millis() + 3_600_000;
    assert!(
        waits.iter().all(|(connected, status, at)| if *connected {
            status == "done" && at.is_none()
        } else {
            status == "retry" && *at == Some(hour)
        }),
        "{waits:?} vs {hour}"
    );
    assert!(
        waits.iter().any(|(connected, _, _)| *connected),
        "a call put through was cut by the crash: {waits:?}"
    );
    // Answered calls that never reached an agent are abandons in the
    // ledger, counted once.
    let dup = count(
        &p,
        "SELECT COUNT(*) FROM (SELECT attempt_id FROM abandon_ledger WHERE kind = 'abandon'
           GROUP BY attempt_id HAVING COUNT(*) > 1) d",
    )
    .await;
    assert_eq!(dup, 0);
}

/// Ten agents for an hour against a provider with a realistic mix, the
/// agents simulated over the API as the demo does: the live board's
/// figures equal the store's, abandonment stays within the limit, every
/// person who answered was put through or heard the message, and the
/// pacer dialled ahead of the agents (a dial level above 1).
#[tokio::test(start_paused = true)]
async fn an_hour_of_live_pacing_keeps_the_rules_and_the_board_matches_the_store() {
    let l = load("uk-broadband", tuesday(), 10).await;
    let sb = Sandboxes::start(dialler::sip::sandbox::SandboxConfig {
        weights: dialler::sip::sandbox::Weights {
            answer: 0.35,
            busy: 0.1,
            no_answer: 0.45,
            reject: 0.0,
            unavailable: 0.1,
        },
        ring: (Duration::from_secs(3), Duration::from_secs(12)),
        talk_mean: Duration::from_secs(600),
        seed: 9,
        ..Default::default()
    })
    .await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    let lognormal = |mean: f64, sd: f64| {
        let s2 = (1.0f64 + sd * sd / (mean * mean)).ln();
        rand_distr::LogNormal::new(mean.ln() - s2 / 2.0, s2.sqrt()).unwrap()
    };
    let mut tasks = Vec::new();
    for (i, (id, tok)) in l.agents.iter().enumerate() {
        let a = dialler::demo::SimAgent {
            http: live.http,
            id: id.clone(),
            token: tok.clone(),
            campaign: "uk-broadband".into(),
            phone: format!("sip:{id}@{}", sb.phones),
            provision_with: Some(l.supervisor.clone()),
            talk: lognormal(60.0, 30.0),
            wrap: lognormal(10.0, 4.0),
            conversion: 0.1,
            conv_codes: vec!["UPGRADED".into()],
            other_codes: vec!["NOT_INTERESTED".into()],
            seed: 100 + i as u64,
            deadline,
            breaks: None,
        };
        tasks.push(tokio::spawn(a.run()));
    }
    let sup = l.supervisor.clone();
    let mut max_level: f64 = 0.0;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (_, v) = live.req("GET", "/api/live", &sup, None).await;
        let c = &v["campaigns"]["uk-broadband"];
        max_level = max_level.max(c["dial_level"].as_f64().unwrap_or(0.0));
        assert!(
            c["window_rate_percent"].as_f64().unwrap_or(0.0) <= 3.0,
            "over the limit: {c}"
        );
    }
    let board = live.running.shared.board.clone();
    live.stop().await;
    for t in tasks {
        t.await.unwrap();
    }
    sb.stop().await;
    let b = board.snapshot()["uk-broadband"].clone();
    tokio::time::resume();
    assert!(b.connects > 100, "{b:?}");
    assert_eq!(b.human_answers, b.connects + b.abandons, "{b:?}");
    assert!(b.window_rate_percent <= b.limit_percent, "{b:?}");
    assert!(max_level > 1.0, "predictive dialled ahead: {max_level}");
    let p = pool(&l.db).await;
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM call_attempts").await as u64,
        b.attempts
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'connected'"
        )
        .await as u64,
        b.connects
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'abandon'"
        )
        .await as u64,
        b.abandons
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'human_answer'"
        )
        .await as u64,
        b.human_answers
    );
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM dispositions WHERE conversion").await as u64,
        b.conversions
    );
}

/// One session per agent across nodes sharing a store: a login on a second
/// node is refused with 409 naming the node that holds the session; after
/// the logout there, the second node takes it. A node's restart gives back
/// its own leases, not the other node's.
#[tokio::test(start_paused = true)]
async fn an_agent_has_one_session_across_nodes() {
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let n1 = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let n2 = start(&l, sb.provider, tuesday(), "n2", Duration::from_secs(5)).await;
    let (id, tok) = &l.agents[0];
    let phone = format!("sip:1@{}", sb.phones);
    n1.provision(&l.supervisor, id, &phone).await;
    let login = json!({ "campaign": "uk-broadband", "sip_uri": phone }).to_string();
    let path = format!("/api/agents/{id}/login");
    let (c, v) = n1.req("POST", &path, tok, Some(&login)).await;
    assert_eq!(c, 200, "{v}");
    let (c, v) = n2.req("POST", &path, tok, Some(&login)).await;
    assert_eq!(c, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("on node n1"),
        "{v}"
    );
    // Well after the lapse, n1's heartbeat keeps its lease.
    tokio::time::sleep(dialler::service::SESSION_LAPSE * 2).await;
    let (c, _) = n2.req("POST", &path, tok, Some(&login)).await;
    assert_eq!(c, 409, "the heartbeat keeps the lease");
    let (c, v) = n1
        .req("POST", &format!("/api/agents/{id}/logout"), tok, None)
        .await;
    assert_eq!(c, 200, "{v}");
    let mut taken = false;
    for _ in 0..50 {
        let (c, _) = n2.req("POST", &path, tok, Some(&login)).await;
        if c == 200 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(taken, "after the logout on n1, n2 takes the session");
    // n1 stops and starts again: n2's lease stays.
    n1.stop().await;
    let n1 = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let (c, v) = n1.req("POST", &path, tok, Some(&login)).await;
    assert_eq!(c, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("on node n2"),
        "{v}"
    );
    n1.stop().await;
    n2.stop().await;
}

/// A node whose agent's session lease another node took (this node cut
/// off from the store past the lapse, the agent logging in there) notices
/// at its next heartbeat and logs the agent out here: an agent works on one
/// node, and this one would go on putting calls through to them.
#[tokio::test(start_paused = true)]
async fn a_node_that_lost_an_agents_lease_logs_the_agent_out() {
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let n1 = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let (id, tok) = &l.agents[0];
    let phone = format!("sip:1@{}", sb.phones);
    n1.provision(&l.supervisor, id, &phone).await;
    let (c, v) = n1.login(id, tok, &phone).await;
    assert_eq!(c, 200, "{v}");
    let pause = format!("/api/agents/{id}/pause");
    let body = json!({ "reason": "lunch" }).to_string();
    let (c, v) = n1.req("POST", &pause, tok, Some(&body)).await;
    assert_eq!(c, 200, "{v}");
    // n2 takes the lease, as after n1's heartbeats lapsed.
    let now = n1.clock.now().ms();
    l.store.session_release(id, "n1").await.unwrap();
    assert_eq!(
        l.store
            .session_acquire(id, "n2", "uk-broadband", now, 60_000)
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(dialler::service::SESSION_HEARTBEAT + Duration::from_secs(1)).await;
    let (c, v) = n1.req("POST", &pause, tok, Some(&body)).await;
    assert_eq!(c, 409, "logged out on n1: {v}");
    assert_eq!(
        l.store.session_holder(id).await.unwrap().map(|(n, _)| n),
        Some("n2".to_string()),
        "n2's lease stays"
    );
    n1.stop().await;
    sb.stop().await;
}

/// Every node's ledger is the campaign's: another node's human answers and
/// abandons (here written straight to the store, as a node would) reach a
/// running node's compliance window within a couple of seconds.
#[tokio::test(start_paused = true)]
async fn a_node_counts_the_other_nodes_ledger_rows() {
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let n2 = start(&l, sb.provider, tuesday(), "n2", Duration::from_secs(5)).await;
    let at = tuesday().timestamp_millis() + 1_000;
    for _ in 0..3 {
        l.store
            .ledger_append(l.campaign_id, None, LedgerKind::HumanAnswer, at)
            .await
            .unwrap();
    }
    l.store
        .ledger_append(l.campaign_id, None, LedgerKind::Abandon, at)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c, v) = n2.req("GET", "/api/live", &l.supervisor, None).await;
    assert_eq!(c, 200, "{v}");
    let live = &v["campaigns"]["uk-broadband"];
    assert_eq!(
        (
            live["window_human_answers"].as_u64(),
            live["window_abandons"].as_u64()
        ),
        (Some(3), Some(1)),
        "{live}"
    );
    n2.stop().await;
}

/// Campaign controls from the API, applied by the runner at once and kept
/// across a restart: paused, ready agents get no calls; resumed under a
/// dial-level cap of 1, never more calls out than agents; stopped, the
/// claimed leads go back and logins are refused; after a restart the
/// campaign is still stopped with its cap, until a supervisor starts it.
/// Every change is in the audit log.
#[tokio::test(start_paused = true)]
async fn campaign_controls_apply_at_once_and_survive_a_restart() {
    let l = load("uk-broadband", tuesday(), 3).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(40), 11)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let sup = l.supervisor.clone();
    let p = pool(&l.db).await;
    let attempts = || count(&p, "SELECT COUNT(*) FROM call_attempts");
    let ctl = |action: &str| format!("/api/campaigns/uk-broadband/{action}");
    // Agents may not steer a campaign; nobody may resume a running one
    // into anything or name an unknown action.
    let (id0, tok0) = &l.agents[0];
    assert_eq!(live.req("POST", &ctl("pause"), tok0, None).await.0, 403);
    assert_eq!(live.req("POST", &ctl("explode"), &sup, None).await.0, 404);
    assert_eq!(
        live.req("POST", "/api/campaigns/nope/pause", &sup, None)
            .await
            .0,
        404
    );
    let (c, v) = live.req("POST", &ctl("pause"), &sup, None).await;
    assert_eq!(
        (c, v["controls"]["state"].as_str()),
        (200, Some("paused")),
        "{v}"
    );
    assert_eq!(v["dialling"], false);
    for (id, tok) in &l.agents[..2] {
        let phone = format!("sip:{id}@{}", sb.phones);
        live.provision(&sup, id, &phone).await;
        let (c, v) = live.login(id, tok, &phone).await;
        assert_eq!(c, 200, "{v}");
        let (c, _) = live
            .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
            .await;
        assert_eq!(c, 200);
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(attempts().await, 0, "a paused campaign dials nobody");
    let (_, camps) = live.req("GET", "/api/campaigns", &sup, None).await;
    assert_eq!(camps[0]["live"]["run_state"], "paused", "{camps}");
    // Settings: checked, and a target never passes the legal limit.
    let settings = ctl("controls");
    for bad in [
        r#"{"target_percent": 99}"#,
        r#"{"max_dial_level": 0.5}"#,
        r#"{"max_dial_level": "high"}"#,
        r#"{"speed": 2}"#,
        r#"{}"#,
        r#"{"lists": ["no-such-list"]}"#,
        r#"{"lists": []}"#,
        r#"{"lists": "default"}"#,
        r#"{"lists": ["default", "default"]}"#,
    ] {
        let (c, v) = live.req("PATCH", &settings, &sup, Some(bad)).await;
        assert_eq!(c, 400, "{bad}: {v}");
    }
    let (c, v) = live
        .req(
            "PATCH",
            &settings,
            &sup,
            Some(r#"{"max_dial_level": 1.0, "target_percent": 1.5}"#),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(
        (v["max_dial_level"].as_f64(), v["target_percent"].as_f64()),
        (Some(1.0), Some(1.5))
    );
    let (c, v) = live
        .req("PATCH", &settings, &sup, Some(r#"{"lists": ["default"]}"#))
        .await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["controls"]["lists"], json!(["default"]), "{v}");
    assert_eq!(v["lead_lists"][0]["name"], "default", "{v}");
    assert_eq!(
        v["max_dial_level"].as_f64(),
        Some(1.0),
        "the cap stays: {v}"
    );
    let (c, v) = live.req("POST", &ctl("resume"), &sup, None).await;
    assert_eq!(
        (c, v["controls"]["state"].as_str()),
        (200, Some("running")),
        "{v}"
    );
    // Dialling at once, never more calls out than the two agents.
    let mut most_out = 0;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, camps) = live.req("GET", "/api/campaigns", &sup, None).await;
        let b = &camps[0]["live"];
        let out = b["calls_ringing"].as_u64().unwrap_or(0)
            + b["calls_waiting"].as_u64().unwrap_or(0)
            + b["agents_on_call"].as_u64().unwrap_or(0);
        most_out = most_out.max(out);
        assert_eq!(b["max_dial_level"].as_f64(), Some(1.0), "{b}");
        assert_eq!(b["target_percent"].as_f64(), Some(1.5), "{b}");
    }
    assert!(attempts().await > 0, "resumed, it dials");
    assert!(
        most_out <= 2,
        "a cap of 1 with 2 agents: {most_out} calls out"
    );
    // Stop: no new calls, the hopper's claims go back, no new logins.
    let (c, v) = live.req("POST", &ctl("stop"), &sup, None).await;
    assert_eq!(
        (c, v["controls"]["state"].as_str()),
        (200, Some("stopped")),
        "{v}"
    );
    assert_eq!(live.req("POST", &ctl("resume"), &sup, None).await.0, 409);
    let (id2, tok2) = &l.agents[2];
    let phone2 = format!("sip:{id2}@{}", sb.phones);
    live.provision(&sup, id2, &phone2).await;
    let (c, v) = live.login(id2, tok2, &phone2).await;
    assert_eq!(c, 409, "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped_at = attempts().await;
    assert!(
        until(Duration::from_secs(10), || async {
            count(&p, "SELECT COUNT(*) FROM leads WHERE status = 'claimed'").await == 0
        })
        .await,
        "a stopped campaign holds no claims"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        attempts().await,
        stopped_at,
        "a stopped campaign dials nobody"
    );
    let _ = (id0, tok0);
    live.stop().await;

    // After a restart: still stopped, still capped, until started.
    let live = start(
        &l,
        sb.provider,
        tuesday() + chrono::Duration::minutes(5),
        "n1",
        Duration::from_secs(5),
    )
    .await;
    let (c, v) = live.req("GET", &settings, tok0, None).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(
        (
            v["controls"]["state"].as_str(),
            v["max_dial_level"].as_f64()
        ),
        (Some("stopped"), Some(1.0)),
        "{v}"
    );
    let before = attempts().await;
    let (c, v) = live.login(id2, tok2, &phone2).await;
    assert_eq!(c, 409, "{v}");
    let (c, v) = live.req("POST", &ctl("start"), &sup, None).await;
    assert_eq!(
        (c, v["controls"]["state"].as_str()),
        (200, Some("running")),
        "{v}"
    );
    let (c, v) = live.login(id2, tok2, &phone2).await;
    assert_eq!(c, 200, "{v}");
    live.req("POST", &format!("/api/agents/{id2}/ready"), tok2, None)
        .await;
    assert!(
        until(Duration::from_secs(60), || async {
            attempts().await > before
        })
        .await,
        "started again, it dials"
    );
    let (c, audit) = live
        .req("GET", "/api/audit?action=campaign.", &sup, None)
        .await;
    assert_eq!(c, 200);
    let acts: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == 200)
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        acts,
        [
            "campaign.pause",
            "campaign.settings",
            "campaign.settings",
            "campaign.resume",
            "campaign.stop",
            "campaign.start"
        ],
        "{audit}"
    );
    // Left paused, restarted: agents may log in, and nobody is dialled.
    let (c, _) = live.req("POST", &ctl("pause"), &sup, None).await;
    assert_eq!(c, 200);
    live.stop().await;
    let live = start(
        &l,
        sb.provider,
        tuesday() + chrono::Duration::minutes(15),
        "n1",
        Duration::from_secs(5),
    )
    .await;
    let (c, v) = live.login(id2, tok2, &phone2).await;
    assert_eq!(c, 200, "{v}");
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id2}/ready"), tok2, None)
        .await;
    assert_eq!(c, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = attempts().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(attempts().await, held, "paused across a restart");
    live.stop().await;
    sb.stop().await;
}

/// Where a callback an agent kept for themself goes: `Return` the agent
/// comes back from a pause after its time; `Leave` the agent logs out.
#[derive(Clone, Copy, PartialEq)]
enum Owner {
    Return,
    Leave,
}

/// A callback kept for the agent who booked it: while that agent is away
/// another ready agent is not given it; the agent, back within the grace,
/// is; gone for good, it is anyone's once the grace is over.
async fn a_kept_callback(owner: Owner) {
    // 10:30 in India, a weekday: the campaign allows two calls a day.
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z")
        .unwrap()
        .to_utc();
    let l = load("in-insurance-renewal", at, 2).await;
    // One lead to dial, so that the other agent has nothing else to take
    // (the pool connects on real time).
    tokio::time::resume();
    let p = pool(&l.db).await;
    sqlx::query("UPDATE leads SET status = 'done' WHERE phone <> '+919171704608'")
        .execute(&p)
        .await
        .unwrap();
    p.close().await;
    tokio::time::pause();
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 8)).await;
    let live = start(&l, sb.provider, at, "n1", Duration::from_secs(30)).await;
    let sign_in = async |i: usize| {
        let (id, tok) = &l.agents[i];
        let phone = format!("sip:{id}@{}", sb.phones);
        live.provision(&l.supervisor, id, &phone).await;
        let login = json!({ "campaign": "in-insurance-renewal", "sip_uri": phone });
        let (c, v) = live
            .req(
                "POST",
                &format!("/api/agents/{id}/login"),
                tok,
                Some(&login.to_string()),
            )
            .await;
        assert_eq!(c, 200, "{v}");
        let (c, v) = live
            .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
            .await;
        assert_eq!(c, 200, "{v}");
    };
    let has_call = async |i: usize| {
        let (id, tok) = &l.agents[i];
        let (c, v) = live
            .req("GET", &format!("/api/agents/{id}/call"), tok, None)
            .await;
        (c == 200 && v["state"] == "on_call").then(|| v["call"].clone())
    };
    let (a, ta) = &l.agents[0];
    sign_in(0).await;
    assert!(
        until(Duration::from_secs(60), || async {
            has_call(0).await.is_some()
        })
        .await,
        "no call for agent01"
    );
    let first = has_call(0).await.unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (c, _) = live
        .req("POST", &format!("/api/agents/{a}/hangup"), ta, None)
        .await;
    assert_eq!(c, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Away after the wrap-up: a pause, or a logout.
    let (c, v) = match owner {
        Owner::Return => {
            live.req(
                "POST",
                &format!("/api/agents/{a}/pause"),
                ta,
                Some(r#"{"reason":"lunch"}"#),
            )
            .await
        }
        Owner::Leave => {
            live.req("POST", &format!("/api/agents/{a}/logout"), ta, None)
                .await
        }
    };
    assert_eq!(c, 200, "{v}");
    let back = live.clock.now().ms() + 5 * 60_000;
    let call_id = first["call_id"].as_i64().unwrap();
    // Kept for the agent: only with a callback code.
    let (c, v) = live
        .req(
            "POST",
            &format!("/api/calls/{call_id}/disposition"),
            ta,
            Some(&json!({ "code": "RENEWED", "personal": true }).to_string()),
        )
        .await;
    assert_eq!(
        (c, v["error"]["field"].as_str()),
        (400, Some("personal")),
        "{v}"
    );
    let (c, v) = live
        .req(
            "POST",
            &format!("/api/calls/{call_id}/disposition"),
            ta,
            Some(&json!({ "code": "CALLBACK", "callback_at": back, "personal": true }).to_string()),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    let grace = 15 * 60_000;
    let (_, cbs) = live
        .req(
            "GET",
            "/api/callbacks?campaign=in-insurance-renewal",
            &l.supervisor,
            None,
        )
        .await;
    assert_eq!(cbs[0]["kept_for"].as_str(), Some(a.as_str()), "{cbs}");
    assert_eq!(cbs[0]["kept_until"].as_i64(), Some(back + grace), "{cbs}");
    // The other agent is ready through the callback's time: not given it.
    sign_in(1).await;
    let wait = Duration::from_millis((back - live.clock.now().ms()) as u64 + 120_000);
    tokio::time::sleep(wait).await;
    assert!(
        has_call(1).await.is_none(),
        "agent02 was given agent01's callback"
    );
    match owner {
        Owner::Return => {
            // Its agent comes back: the callback goes to them.
            let (c, _) = live
                .req("POST", &format!("/api/agents/{a}/ready"), ta, None)
                .await;
            assert_eq!(c, 200);
            assert!(
                until(Duration::from_secs(60), || async {
                    has_call(0).await.is_some()
                })
                .await,
                "the callback did not reach agent01"
            );
            let again = has_call(0).await.unwrap();
            assert_eq!(again["lead_id"], first["lead_id"], "{again}");
            assert!(has_call(1).await.is_none());
        }
        Owner::Leave => {
            // Gone: anyone's once the grace is over, not before.
            tokio::time::sleep(Duration::from_millis((grace - 180_000) as u64)).await;
            assert!(
                has_call(1).await.is_none(),
                "given away before the grace ended"
            );
            assert!(
                until(Duration::from_secs(120), || async {
                    has_call(1).await.is_some()
                })
                .await,
                "the callback never reached agent02"
            );
            let again = has_call(1).await.unwrap();
            assert_eq!(again["lead_id"], first["lead_id"], "{again}");
        }
    }
    live.stop().await;
    sb.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_kept_callback_waits_for_its_agent() {
    a_kept_callback(Owner::Return).await;
}

#[tokio::test(start_paused = true)]
async fn a_kept_callback_is_anyones_after_the_grace() {
    a_kept_callback(Owner::Leave).await;
}

/// DTMF on a live call (RFC 4733): the agent's digits go to the customer
/// as telephone-events (the sandbox, which answered with
/// telephone-event, echoes its RTP back, so they return as the
/// customer's keys), and the customer's keys reach the agent's call view
/// and event stream, once each; bad digits and a call-less agent are
/// refused.
#[tokio::test(start_paused = true)]
async fn dtmf_goes_both_ways_on_a_live_call() {
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(30)).await;
    let (id, tok) = &l.agents[0];
    let phone = format!("sip:1@{}", sb.phones);
    live.provision(&l.supervisor, id, &phone).await;
    let (c, _) = live.login(id, tok, &phone).await;
    assert_eq!(c, 200);
    let dtmf = format!("/api/agents/{id}/dtmf");
    let (c, v) = live
        .req("POST", &dtmf, tok, Some(r#"{"digits":"1"}"#))
        .await;
    assert_eq!(c, 409, "no call yet: {v}");
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
        .await;
    assert_eq!(c, 200);
    let call = format!("/api/agents/{id}/call");
    assert!(
        until(Duration::from_secs(60), || async {
            live.req("GET", &call, tok, None).await.1["state"] == "on_call"
        })
        .await,
        "no call put through"
    );
    for bad in [
        r#"{"digits":"12x"}"#,
        r#"{"digits":""}"#,
        r#"{"tones":"1"}"#,
    ] {
        let (c, v) = live.req("POST", &dtmf, tok, Some(bad)).await;
        assert!(c == 400 || c == 422, "{bad}: {c} {v}");
    }
    let (c, v) = live
        .req("POST", &dtmf, tok, Some(r#"{"digits":"12#"}"#))
        .await;
    assert_eq!(c, 200, "{v}");
    assert!(
        until(Duration::from_secs(5), || async {
            live.req("GET", &call, tok, None).await.1["call"]["dtmf"] == "12#"
        })
        .await,
        "{}",
        live.req("GET", &call, tok, None).await.1
    );
    live.stop().await;
    sb.stop().await;
}

/// An agent phone provisioned with `;transport=tcp` is called over TCP
/// (SIPp as the phone, listening on TCP only): the login succeeds, and the
/// leg is hung up at logout.
#[tokio::test]
async fn an_agent_phone_over_tcp_is_called_over_tcp() {
    use common::sipp::{Sipp, UasOpts};
    let mut opts = UasOpts::new("agent.xml");
    opts.tcp = true;
    let Some(sipp) = Sipp::uas(opts).await else {
        return;
    };
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let (id, tok) = &l.agents[0];
    let phone = sipp.uri("agent1", true);
    live.provision(&l.supervisor, id, &phone).await;
    let (c, v) = live.login(id, tok, &phone).await;
    assert_eq!(c, 200, "login with a TCP phone: {v} ({})", sipp.errors());
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/logout"), tok, None)
        .await;
    assert_eq!(c, 200);
    live.stop().await;
    sb.stop().await;
    sipp.stop().await;
}

/// An agent phone that answers only in G.729 (SIPp) would leave the agent
/// deaf and mute on every call: its leg is hung up and the login refused
/// with the reason; the agent is not logged in and no call is placed.
#[tokio::test]
async fn an_agent_phone_that_answers_with_no_usable_codec_is_not_logged_in() {
    use common::sipp::{Sipp, UasOpts};
    let Some(sipp) = Sipp::uas(UasOpts::new("answer_g729_only.xml")).await else {
        return;
    };
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let (id, tok) = &l.agents[0];
    let phone = sipp.uri("agent1", false);
    live.provision(&l.supervisor, id, &phone).await;
    let (c, v) = live.login(id, tok, &phone).await;
    assert_eq!(c, 502, "{v}");
    let text = v.to_string();
    assert!(text.contains("PCMU"), "the reason: {v}");
    let (c, _) = live
        .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
        .await;
    assert_ne!(c, 200, "ready without a phone");
    // The phone's leg was ended (hung up, its stored record closed), and
    // no customer was called for an agent who is not there.
    let db = pool(&l.db).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sip_legs").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM call_attempts").await, 0);
    live.stop().await;
    sb.stop().await;
    sipp.stop().await;
}

/// RTCP on both legs of a bridged call (RFC 3550): the provider's side
/// and the agent's SIP phone each get the dialler's compound reports
/// (an RR, or an SR once audio flows) every 5 s or so, from the answer on
/// (the phone's from the login).
#[tokio::test(start_paused = true)]
async fn both_legs_of_a_bridged_call_get_rtcp_reports() {
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    let (id, tok) = &l.agents[0];
    let phone = format!("sip:1@{}", sb.phones);
    live.provision(&l.supervisor, id, &phone).await;
    let (c, v) = live.login(id, tok, &phone).await;
    assert_eq!(c, 200, "{v}");
    assert!(
        live.ready_until_call(id, tok, Duration::from_secs(60))
            .await,
        "no call put through"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    live.stop().await;
    let (provider, phones) = sb.stop_both().await;
    assert!(provider.rtcp_reports >= 3, "customer leg: {provider:?}");
    assert!(phones.rtcp_reports >= 3, "agent leg: {phones:?}");
}

/// A carrier that answers with only G.729 (SIPp): the call cannot carry
/// audio, so the person who picked up would hear silence. With an agent
/// ready, the call is still not put through: it is hung up at once and
/// counted as a person's answer abandoned (the safe side of the rules on
/// silent calls), its lead kept from the 72-hour recall like any other.
#[tokio::test]
async fn an_answer_with_no_usable_codec_is_hung_up_as_abandoned_not_bridged() {
    use common::sipp::{Sipp, UasOpts};
    let Some(sipp) = Sipp::uas(UasOpts::new("answer_g729_only.xml")).await else {
        return;
    };
    let l = load("uk-broadband", tuesday(), 1).await;
    let sb = Sandboxes::start(answering(Duration::from_secs(3600), 5)).await;
    let live = start(&l, sipp.addr, tuesday(), "n1", Duration::from_secs(5)).await;
    live.staff(&l, sb.phones).await;
    let (id, tok) = &l.agents[0];
    let db = pool(&l.db).await;
    assert!(
        until_ended(&db, 2, Duration::from_secs(20)).await,
        "no answered call ended ({})",
        sipp.errors()
    );
    let call = format!("/api/agents/{id}/call");
    assert_ne!(live.req("GET", &call, tok, None).await.0, 200, "bridged");
    live.stop().await;
    sb.stop().await;
    let rows = sqlx::query(
        "SELECT a.outcome, a.connected_at, a.agent_id, a.answered_at,
                (SELECT COUNT(*) FROM abandon_ledger x WHERE x.attempt_id = a.id AND x.kind = 'human_answer'),
                (SELECT COUNT(*) FROM abandon_ledger x WHERE x.attempt_id = a.id AND x.kind = 'abandon')
         FROM call_attempts a WHERE a.outcome IS NOT NULL",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(rows.len() >= 2);
    for r in &rows {
        let outcome: String = r.get(0);
        assert_eq!(outcome, "abandoned");
        assert!(r.get::<Option<i64>, _>(1).is_none(), "connected");
        assert!(r.get::<Option<String>, _>(2).is_none(), "given an agent");
        assert!(r.get::<Option<i64>, _>(3).is_some(), "not answered");
        assert_eq!((r.get::<i64, _>(4), r.get::<i64, _>(5)), (1, 1));
    }
    sipp.stop().await;
}

/// 47 CFR 64.1200(a)(7)(i)(B): the message an abandoned call hears offers
/// an automated opt-out, and a key pressed during it puts the number on
/// the do-not-call list and ends the call. Here the only agent logs out
/// while the call rings, so the answer is abandoned; the person presses 9
/// half a second into the message (an RFC 4733 event). The number is on
/// the internal list as their own request, its lead is `dnc`, the call
/// ended well before the message would have, the act is audited without
/// the number and sent to the CRM's webhook, and the abandon still counts.
#[tokio::test(start_paused = true)]
async fn a_key_pressed_during_the_abandoned_call_message_opts_the_number_out() {
    opt_out_by_key(false, false).await;
}

/// The same from a line whose answer has no telephone-event: the key comes
/// as its two tones in the audio, in place of what the far end echoes.
#[tokio::test(start_paused = true)]
async fn a_key_sounded_in_the_audio_during_the_message_opts_the_number_out() {
    opt_out_by_key(true, false).await;
}

/// The same from a gateway that negotiated telephone-events but passes
/// the key through as tones in the audio: heard all the same.
#[tokio::test(start_paused = true)]
async fn a_key_sounded_in_the_audio_is_heard_though_events_were_negotiated() {
    opt_out_by_key(true, true).await;
}

/// The abandoned call of one agent who logs out while it rings; the person
/// presses 9 (as tones in the audio with `keys_as_tones`, the answer still
/// offering telephone-events with `despite_events`).
async fn opt_out_by_key(keys_as_tones: bool, despite_events: bool) {
    let l = load("uk-broadband", tuesday(), 1).await;
    let now = tuesday().timestamp_millis();
    let by = dialler::store::AuditEntry::command(now, "tester", "", String::new(), String::new());
    l.store
        .webhook_add(
            l.campaign_id,
            "http://127.0.0.1:9/hooks",
            &["lead.opted_out".to_string()],
            "whsec_test",
            &by,
        )
        .await
        .unwrap();
    let sb = Sandboxes::start(dialler::sip::sandbox::SandboxConfig {
        ring: (Duration::from_secs(4), Duration::from_secs(4)),
        press_key: Some('9'),
        keys_as_tones,
        tones_despite_events: despite_events,
        ..answering(Duration::from_secs(3600), 5)
    })
    .await;
    let live = start(&l, sb.provider, tuesday(), "n1", Duration::from_secs(5)).await;
    live.staff(&l, sb.phones).await;
    let (id, tok) = &l.agents[0];
    let db = pool(&l.db).await;
    assert!(
        until(Duration::from_secs(30), || async {
            count(&db, "SELECT COUNT(*) FROM call_attempts").await >= 1
        })
        .await,
        "nothing dialled"
    );
    let (c, v) = live
        .req("POST", &format!("/api/agents/{id}/logout"), tok, None)
        .await;
    assert_eq!(c, 200, "{v}");
    assert!(
        until_ended(&db, 1, Duration::from_secs(30)).await,
        "the call did not end"
    );
    // The writes are ordered: the opt-out is in before the attempt's end.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let board = live.running.shared.board.clone();
    let (_, metrics) = dialler::service::client::request(live.http, "GET", "/metrics", None, None)
        .await
        .unwrap();
    live.stop().await;
    let stats = sb.stop().await;
    tokio::time::resume();
    assert_eq!(stats.keys_pressed, 1, "{stats:?}");
    let b = board.snapshot()["uk-broadband"].clone();
    assert_eq!((b.abandons, b.opt_outs), (1, 1), "{b:?}");
    assert!(
        metrics.contains("dialler_opt_outs_total{campaign=\"uk-broadband\"} 1\n"),
        "{metrics}"
    );
    let (attempt, phone, outcome, answered, ended): (i64, String, String, i64, i64) =
        sqlx::query_as(
            "SELECT id, phone, outcome, answered_at, ended_at FROM call_attempts
              WHERE answered_at IS NOT NULL",
        )
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(outcome, "abandoned");
    let message = l.campaign.safe_harbour.as_millis() as i64;
    assert!(
        ended - answered < 2_000 + message / 2,
        "the call went on {} ms after the answer (message {message} ms)",
        ended - answered
    );
    let listed: Vec<(String, String)> =
        sqlx::query_as("SELECT scope, source FROM dnc_numbers WHERE phone = ?")
            .bind(&phone)
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        listed,
        vec![("internal".to_string(), "key_press".to_string())]
    );
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM leads WHERE phone = ?")
        .bind(&phone)
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| s == "dnc"),
        "{statuses:?}"
    );
    let (actor, subject, detail): (String, String, String) = sqlx::query_as(
        "SELECT actor, subject, detail FROM audit_log WHERE action = 'dnc.key_press'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(actor, "called party");
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    assert!(
        subject.ends_with(&digits[digits.len() - 4..]) && !subject.contains(&digits),
        "{subject}"
    );
    assert!(detail.contains(&attempt.to_string()), "{detail}");
    let payload: String =
        sqlx::query_scalar("SELECT payload FROM webhook_outbox WHERE event = 'lead.opted_out'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(payload.contains("key_press"), "{payload}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM abandon_ledger WHERE kind = 'abandon'"
        )
        .await,
        1
    );
}
