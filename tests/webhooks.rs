//! Webhooks end to end against a real HTTP receiver on loopback that
//! fails, times out and recovers: events written with the rows they
//! describe, only to the subscriptions that asked, signed, retried with
//! back-off, logged, kept exactly once by the receiver's idempotency keys,
//! given up when too old, and replayed with the same id and body. On
//! SQLite and PostgreSQL; and the `webhook` commands.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dialler::campaign::Campaign;
use dialler::clock::{Clock, Millis};
use dialler::store::{
    AttemptEnd, AuditEntry, Lead, NewAttempt, NewDisposition, NewLead, Replay, Store,
};
use dialler::webhooks::{self, Deliverer, DeliverySettings};

fn campaign(name: &str) -> Campaign {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("campaigns")
        .join(format!("{name}.toml"));
    Campaign::load(&path).expect("sample campaign is valid")
}

/// What the receiver does with its n-th request (from 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// Down: 503 before reading anything.
    Down,
    /// Takes it, but answers after the sender gave up waiting.
    Slow,
    /// A 500 before taking it.
    Fail,
    /// Takes it: 200.
    Ok,
}

#[derive(Default)]
struct Receiver {
    requests: u32,
    /// Taken events by idempotency key: how many times processed.
    processed: HashMap<String, u32>,
    /// Every body received, by key.
    bodies: HashMap<String, Vec<String>>,
    bad_signatures: u32,
    events: Vec<String>,
}

type Shared = Arc<(Mutex<Receiver>, String, fn(u32) -> Answer)>;

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let (n, answer) = {
        let mut r = s.0.lock().unwrap();
        r.requests += 1;
        (r.requests - 1, (s.2)(r.requests - 1))
    };
    let _ = n;
    if answer == Answer::Down || answer == Answer::Fail {
        return if answer == Answer::Down {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let sig = headers
        .get("x-dialler-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    {
        let mut r = s.0.lock().unwrap();
        let now_s = chrono::Utc::now().timestamp();
        if !webhooks::verify(&s.1, sig, &body, now_s) {
            r.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
        r.bodies.entry(key.clone()).or_default().push(body.clone());
        // Exactly once: a key seen before is acknowledged, not processed.
        let seen = r.processed.get(&key).copied().unwrap_or(0);
        if seen == 0 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            r.events.push(v["event"].as_str().unwrap().to_string());
        }
        r.processed.insert(key, seen + 1);
    }
    if answer == Answer::Slow {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    StatusCode::OK
}

async fn receiver(secret: &str, plan: fn(u32) -> Answer) -> (SocketAddr, Shared) {
    let shared: Shared = Arc::new((Mutex::new(Receiver::default()), secret.to_string(), plan));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, shared)
}

fn by(at: i64) -> AuditEntry {
    AuditEntry::command(at, "tester", "", String::new(), String::new())
}

async fn one_call(store: &Store, c: i64, i: u64, ended_at: i64, conversion: bool) {
    let lead = NewLead {
        phone: format!("+91{}", 9_000_000_000 + i),
        country: "IN",
        timezones: Some("Asia/Kolkata".into()),
        fields: format!(r#"{{"crm_id":"C-{i}"}}"#),
        source_line: 2,
    };
    store
        .insert_leads(c, std::slice::from_ref(&lead), 0)
        .await
        .unwrap();
    let l: Lead = store.lead_by_phone(c, &lead.phone).await.unwrap().unwrap();
    let attempt = store
        .start_attempt(&NewAttempt {
            campaign_id: c,
            lead_id: l.id,
            phone: l.phone.clone(),
            started_at: ended_at - 60_000,
        })
        .await
        .unwrap();
    store
        .attempt_progress(attempt, Some(ended_at - 55_000), None, None)
        .await
        .unwrap();
    // Said twice (answer, then bridge with the answer again): one event.
    store
        .attempt_progress(
            attempt,
            Some(ended_at - 55_000),
            Some(ended_at - 54_000),
            Some("a1"),
        )
        .await
        .unwrap();
    store
        .finish_attempt(
            attempt,
            &AttemptEnd {
                answered_at: Some(ended_at - 55_000),
                connected_at: Some(ended_at - 54_000),
                ended_at,
                outcome: "connected".into(),
                sip_code: Some(200),
                sip_codes: None,
                agent_id: Some("a1".into()),
                lead_status: "done".into(),
                next_attempt_at: None,
            },
        )
        .await
        .unwrap();
    store
        .record_disposition(&NewDisposition {
            attempt_id: attempt,
            campaign_id: c,
            agent_id: "a1".into(),
            code: if conversion { "SALE" } else { "DNC" }.into(),
            conversion,
            contact: true,
            dnc: !conversion,
            callback_at: None,
            amount_minor: conversion.then_some(12_050),
            wrapup_ms: Some(5_000),
            created_at: ended_at + 5_000,
            notes: None,
            personal: false,
        })
        .await
        .unwrap();
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        node: "n1".into(),
        base_backoff: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        batch: 8,
        poll: Duration::from_millis(20),
    }
}

/// A receiver that is down for its first 6 requests, then fails every
/// third and is slow once.
fn flaky(n: u32) -> Answer {
    match n {
        0..=5 => Answer::Down,
        7 => Answer::Slow,
        n if n % 3 == 0 => Answer::Fail,
        _ => Answer::Ok,
    }
}

async fn events_reach_a_flaky_receiver_exactly_once(store: Store) {
    let now = chrono::Utc::now().timestamp_millis();
    let uk = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .unwrap();
    let other = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .unwrap();
    let secret = webhooks::new_secret();
    let (addr, rx) = receiver(&secret, flaky).await;
    let url = format!("http://{addr}/hooks");
    let all = webhooks::parse_events("all").unwrap();
    let sub = store
        .webhook_add(uk, &url, &all, &secret, &by(now))
        .await
        .unwrap();
    // Only conversions, to the same receiver (same secret for the test).
    let conversions = vec!["conversion".to_string()];
    let sub2 = store
        .webhook_add(uk, &url, &conversions, &secret, &by(now))
        .await
        .unwrap();
    // Another campaign's calls are not this subscription's.
    one_call(&store, other, 99, now - 10_000, true).await;
    // Two calls: one sale, one opt-out. Expected events: per call
    // answered, ended, disposition.recorded, and conversion (sale) or
    // lead.opted_out (opt-out) for `sub`; the sale's conversion for `sub2`.
    one_call(&store, uk, 1, now - 10_000, true).await;
    one_call(&store, uk, 2, now - 9_000, false).await;
    let log = store.webhook_log(None, None, 100).await.unwrap();
    assert_eq!(log.len(), 9, "{log:?}");
    assert_eq!(log.iter().filter(|e| e.subscription_id == sub2).count(), 1);

    let deliverer = Deliverer::new(store.clone(), Clock::system(), settings(), None).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(deliverer.run(stop_rx));
    let mut delivered = false;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pending = store.webhook_log(None, Some("pending"), 100).await.unwrap();
        if pending.is_empty() {
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "{:?}",
        store.webhook_log(None, None, 100).await.unwrap()
    );
    {
        let r = rx.0.lock().unwrap();
        assert_eq!(r.bad_signatures, 0);
        assert_eq!(r.processed.len(), 9, "every event taken");
        assert!(r.processed.values().all(|&n| n >= 1));
        let mut kinds = r.events.clone();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "call.answered",
                "call.answered",
                "call.ended",
                "call.ended",
                "conversion",
                "conversion",
                "disposition.recorded",
                "disposition.recorded",
                "lead.opted_out"
            ]
        );
        assert!(r.requests > 9, "the failures were retried");
        // Every try of one event carried the same body.
        assert!(r.bodies.values().all(|b| b.iter().all(|x| x == &b[0])));
        let a_body: serde_json::Value = serde_json::from_str(
            r.bodies
                .values()
                .find(|b| b[0].contains("call.ended"))
                .map(|b| b[0].as_str())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(a_body["data"]["outcome"], "connected", "{a_body}");
        assert!(
            a_body["data"]["lead"]["fields"]["crm_id"].is_string(),
            "{a_body}"
        );
    }
    // The log: each try recorded.
    let rows = store
        .webhook_log(Some(sub), Some("delivered"), 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    let tries: usize = {
        let mut n = 0;
        for r in &rows {
            n += store.webhook_tries(r.id).await.unwrap().len();
        }
        n
    };
    assert!(tries > rows.len(), "{tries} tries");
    // Replay: sent again with the same key and body; the receiver keeps
    // it once.
    let first = rows.last().unwrap().id;
    let before = rx.0.lock().unwrap().requests;
    assert_eq!(
        store
            .webhook_replay(
                &Replay::Event(first),
                &by(Millis::from_utc(chrono::Utc::now()).ms())
            )
            .await
            .unwrap(),
        1
    );
    let mut again = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if store
            .webhook_log(None, Some("pending"), 10)
            .await
            .unwrap()
            .is_empty()
            && rx.0.lock().unwrap().requests > before
        {
            again = true;
            break;
        }
    }
    assert!(again, "the replay was sent");
    {
        let r = rx.0.lock().unwrap();
        let key = webhooks::idempotency_key(first);
        assert!(r.bodies[&key].len() >= 2);
        assert_eq!(r.events.len(), 9, "kept once");
    }
    let audit = store.audit_log().await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "webhook.replay"),
        "{audit:?}"
    );
    assert!(
        audit.iter().all(|e| !e.detail.contains(&secret)),
        "no secret in the audit log"
    );
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}
store_test!(events_reach_a_flaky_receiver_exactly_once);

fn always_down(_: u32) -> Answer {
    Answer::Down
}

/// An event undelivered for 72 hours is given up (still in the log, and
/// replayable: a replay's tries get 72 hours of their own); a removed
/// subscription gets nothing more.
async fn old_events_are_given_up_and_removed_subscriptions_get_nothing(store: Store) {
    let now = chrono::Utc::now().timestamp_millis();
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .unwrap();
    let secret = webhooks::new_secret();
    let (addr, rx) = receiver(&secret, always_down).await;
    let url = format!("http://{addr}/hooks");
    let ended = vec!["call.ended".to_string()];
    let sub = store
        .webhook_add(c, &url, &ended, &secret, &by(now))
        .await
        .unwrap();
    // A call that ended 73 hours ago.
    one_call(&store, c, 1, now - 73 * 3_600_000, true).await;
    let deliverer = Deliverer::new(store.clone(), Clock::system(), settings(), None).unwrap();
    assert_eq!(deliverer.round().await.unwrap(), 1);
    let failed = store
        .webhook_log(Some(sub), Some("failed"), 10)
        .await
        .unwrap();
    assert_eq!(
        failed.len(),
        1,
        "{:?}",
        store.webhook_log(None, None, 10).await.unwrap()
    );
    assert_eq!(failed[0].last_status, Some(503));
    assert_eq!(rx.0.lock().unwrap().requests, 1);
    // Replayed, it gets a new run of tries: a failure now is retried on
    // the back-off, not given up at once for the event's age.
    store
        .webhook_replay(&Replay::Event(failed[0].id), &by(now))
        .await
        .unwrap();
    assert_eq!(deliverer.round().await.unwrap(), 1);
    assert_eq!(rx.0.lock().unwrap().requests, 2);
    assert!(
        store
            .webhook_log(Some(sub), Some("failed"), 10)
            .await
            .unwrap()
            .is_empty(),
        "a replayed event given up at its first failure"
    );
    // Removed: its events are not sent, even replayed.
    assert!(store.webhook_remove(sub, &by(now)).await.unwrap());
    assert!(!store.webhook_remove(sub, &by(now)).await.unwrap());
    store
        .webhook_replay(
            &Replay::Since {
                subscription_id: sub,
                since: 0,
            },
            &by(now),
        )
        .await
        .unwrap();
    one_call(&store, c, 2, now, true).await;
    assert_eq!(deliverer.round().await.unwrap(), 0);
    assert_eq!(
        rx.0.lock().unwrap().requests,
        2,
        "nothing after the removal"
    );
    let subs = store.webhooks().await.unwrap();
    assert!(subs[0].removed_at.is_some());
}

store_test!(old_events_are_given_up_and_removed_subscriptions_get_nothing);

#[test]
fn the_webhook_commands_show_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dialler"))
            .args(args)
            .env(
                "DIALLER_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("d.db").display()),
            )
            .env(
                "DIALLER_CAMPAIGNS",
                concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns"),
            )
            .output()
            .unwrap()
    };
    let out = run(&[
        "webhook",
        "add",
        "--campaign",
        "uk-broadband",
        "--url",
        "https://crm.example.com/hooks",
        "--events",
        "call.ended,conversion",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let list = run(&["webhook", "list", "--json"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("crm.example.com") && !text.contains(&secret),
        "{text}"
    );
    let bad = run(&[
        "webhook",
        "add",
        "--campaign",
        "uk-broadband",
        "--url",
        "https://x.example/",
        "--events",
        "call.exploded",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("call.exploded"));
    let bad = run(&[
        "webhook",
        "add",
        "--campaign",
        "uk-broadband",
        "--url",
        "ftp://x/",
    ]);
    assert!(!bad.status.success());
    let log = run(&["webhook", "log", "--state", "lost"]);
    assert!(!log.status.success());
    let audit = run(&["audit", "--action", "webhook.", "--json"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("webhook.add") && !text.contains(&secret),
        "{text}"
    );
    let id = v["id"].as_i64().unwrap().to_string();
    assert!(run(&["webhook", "remove", &id]).status.success());
    assert!(!run(&["webhook", "remove", &id]).status.success());
}

fn always_up(_: u32) -> Answer {
    Answer::Ok
}

/// Events backed off while the receiver was away go again as soon as it
/// takes one, not after their back-off (which may have grown to an hour).
async fn a_receiver_back_gets_the_backlog_at_once(store: Store) {
    let now = chrono::Utc::now().timestamp_millis();
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .unwrap();
    let secret = webhooks::new_secret();
    let (addr, rx) = receiver(&secret, always_up).await;
    let url = format!("http://{addr}/hooks");
    let ended = vec!["call.ended".to_string()];
    store
        .webhook_add(c, &url, &ended, &secret, &by(now))
        .await
        .unwrap();
    for i in 1..=3 {
        one_call(&store, c, i, now - 1_000, false).await;
    }
    // Three events that failed often while the receiver was away: an hour
    // to their next try.
    for item in store.webhook_claim("n0", now, 30_000, 10).await.unwrap() {
        store
            .webhook_tried(
                item.id,
                now,
                Some(503),
                Some("HTTP 503"),
                1,
                &webhooks::TryOutcome::Retry(now + 3_600_000),
                None,
            )
            .await
            .unwrap();
    }
    let slow = DeliverySettings {
        base_backoff: Duration::from_secs(60),
        ..settings()
    };
    let deliverer = Deliverer::new(store.clone(), Clock::system(), slow, None).unwrap();
    assert_eq!(deliverer.round().await.unwrap(), 0, "nothing due");
    // A fresh event is taken: the three come forward to one back-off.
    one_call(&store, c, 4, now, false).await;
    assert_eq!(deliverer.round().await.unwrap(), 1);
    let pending = store.webhook_log(None, Some("pending"), 10).await.unwrap();
    assert_eq!(pending.len(), 3);
    let t = chrono::Utc::now().timestamp_millis();
    assert!(
        pending.iter().all(|p| p.next_attempt_at <= t + 60_000),
        "{pending:?}"
    );
    assert_eq!(rx.0.lock().unwrap().processed.len(), 1);
}
store_test!(a_receiver_back_gets_the_backlog_at_once);
