//! Webhook delivery figure (issue 19): EVENTS call.ended events (10,000)
//! written at RATE a second (100) to a SQLite store's outbox, delivered by
//! the service's own deliverer with its own settings (5 s first back-off,
//! doubling) to a loopback receiver that fails FAIL_PERCENT of requests
//! (30) at random and is down (503) for DOWN_S seconds (60) from DOWN_AT_S
//! (30) into the run. The receiver keeps each event once by its
//! idempotency key. Prints how many it took (and how many came again after
//! being taken), and the delay from an event's creation to its delivery:
//! p50/p99/max for events created while the receiver was up, max for those
//! created while it was down. Run with `cargo bench --bench webhooks`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dialler::campaign::Campaign;
use dialler::clock::Clock;
use dialler::store::{AttemptEnd, AuditEntry, NewAttempt, NewLead, Store};
use dialler::webhooks::{self, Deliverer, DeliverySettings};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Receiver {
    requests: u64,
    failed: u64,
    down: u64,
    taken: HashMap<String, u32>,
}

struct Plan {
    start: Instant,
    down_at: Duration,
    down_for: Duration,
    fail: f64,
}

type Shared = Arc<(Mutex<Receiver>, Plan)>;

async fn receive(State(s): State<Shared>, headers: HeaderMap, _body: String) -> StatusCode {
    use rand::RngExt;
    let t = s.1.start.elapsed();
    let mut r = s.0.lock().unwrap();
    r.requests += 1;
    if t >= s.1.down_at && t < s.1.down_at + s.1.down_for {
        r.down += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if rand::rng().random_bool(s.1.fail) {
        r.failed += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    *r.taken.entry(key).or_insert(0) += 1;
    StatusCode::OK
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this
    // without it, as a smoke test: a few events, no outage.
    let benching = std::env::args().any(|a| a == "--bench");
    let small = |name: &str, full: u64, smoke: u64| env(name, if benching { full } else { smoke });
    let events = small("EVENTS", 10_000, 100);
    let rate = small("RATE", 100, 1_000).max(1);
    let fail = small("FAIL_PERCENT", 30, 0) as f64 / 100.0;
    let down_at = Duration::from_secs(small("DOWN_AT_S", 30, 0));
    let down_for = Duration::from_secs(small("DOWN_S", 60, 0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("w.db").display()))
            .await
            .unwrap();
        let c = Campaign::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/in-insurance-renewal.toml"),
        )
        .unwrap();
        let cid = store.upsert_campaign(&c, 0).await.unwrap();
        let leads: Vec<NewLead> = (0..events)
            .map(|i| NewLead {
                phone: format!("+91{}", 6_000_000_000 + i),
                country: "IN",
                timezones: Some("Asia/Kolkata".into()),
                fields: "{}".into(),
                source_line: 2,
            })
            .collect();
        store.insert_leads(cid, &leads, 0).await.unwrap();
        let mut attempts = Vec::with_capacity(events as usize);
        for l in &leads {
            let lead = store.lead_by_phone(cid, &l.phone).await.unwrap().unwrap();
            attempts.push(
                store
                    .start_attempt(&NewAttempt {
                        campaign_id: cid,
                        lead_id: lead.id,
                        phone: lead.phone.clone(),
                        started_at: 0,
                    })
                    .await
                    .unwrap(),
            );
        }
        let shared: Shared = Arc::new((
            Mutex::new(Receiver::default()),
            Plan {
                start: Instant::now(),
                down_at,
                down_for,
                fail,
            },
        ));
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let clock = Clock::system();
        let secret = webhooks::new_secret();
        let by = AuditEntry::command(clock.now().ms(), "bench", "", String::new(), String::new());
        store
            .webhook_add(
                cid,
                &format!("http://{addr}/hooks"),
                &["call.ended".to_string()],
                &secret,
                &by,
            )
            .await
            .unwrap();
        let deliverer = Deliverer::new(
            store.clone(),
            clock.clone(),
            DeliverySettings::for_node("bench"),
            None,
        )
        .unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(deliverer.run(stop_rx));
        // The run's clock starts now: the receiver's down window with it.
        let start = Instant::now();
        let run_start_ms = clock.now().ms();
        // The receiver's window counts from its own start, a little earlier.
        let offset_ms = i64::try_from(start.duration_since(shared.1.start).as_millis()).unwrap();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        for a in &attempts {
            tick.tick().await;
            let now = clock.now().ms();
            store
                .finish_attempt(
                    *a,
                    &AttemptEnd {
                        answered_at: None,
                        connected_at: None,
                        ended_at: now,
                        outcome: "no_answer".into(),
                        sip_code: Some(480),
                        sip_codes: None,
                        agent_id: None,
                        lead_status: "retry".into(),
                        next_attempt_at: None,
                    },
                )
                .await
                .unwrap();
        }
        let produced = start.elapsed();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if store
                .webhook_log(None, Some("pending"), 1)
                .await
                .unwrap()
                .is_empty()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(3600) {
                eprintln!("not drained within an hour");
                break;
            }
        }
        let drained = start.elapsed();
        let _ = stop_tx.send(true);
        let _ = task.await;
        let rows = store
            .webhook_log(None, None, i64::try_from(events).unwrap() + 10)
            .await
            .unwrap();
        // The receiver's down window, on the store's clock.
        let down_from = run_start_ms + i64::try_from(down_at.as_millis()).unwrap() - offset_ms;
        let down_to = down_from + i64::try_from(down_for.as_millis()).unwrap();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for r in &rows {
            let Some(d) = r.delivered_at else { continue };
            let s = (d - r.created_at) as f64 / 1000.0;
            if (down_from..down_to).contains(&r.created_at) {
                down.push(s);
            } else {
                up.push(s);
            }
        }
        up.sort_by(f64::total_cmp);
        down.sort_by(f64::total_cmp);
        let r = shared.0.lock().unwrap();
        let delivered = rows.iter().filter(|r| r.delivered_at.is_some()).count();
        let again: u32 = r.taken.values().map(|n| n - 1).sum();
        println!(
            "webhooks: {events} events at {rate}/s over {:.0} s; receiver fails {:.0}% at random, down {} s from {} s",
            produced.as_secs_f64(),
            fail * 100.0,
            down_for.as_secs(),
            down_at.as_secs()
        );
        println!(
            "  receiver: {} requests ({} failed at random, {} while down); events taken once: {} of {events}; sent again after being taken: {again}; outbox delivered {delivered}, drained {:.0} s after the start",
            r.requests,
            r.failed,
            r.down,
            r.taken.len(),
            drained.as_secs_f64()
        );
        println!(
            "  delay created->delivered, {} events created while up: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
            up.len(),
            pct(&up, 0.5),
            pct(&up, 0.99),
            up.last().copied().unwrap_or(0.0)
        );
        println!(
            "  {} events created while down: max delay {:.1} s",
            down.len(),
            down.last().copied().unwrap_or(0.0)
        );
        assert_eq!(r.taken.len() as u64, events, "every event taken");
        assert_eq!(again, 0, "none taken twice");
    });
}
