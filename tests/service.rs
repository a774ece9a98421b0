//! The live service end to end on loopback: `dialler demo`'s in-process run
//! (sandbox provider, agent phones, simulated agents over the HTTP API),
//! API authentication, and lead claims racing on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dialler::auth::{self, Role};
use dialler::service::{self, ServiceConfig, client};
use dialler::store::Store;
use sqlx::Row;

fn campaigns_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("campaigns")
}

/// Calls were bridged, abandonment stayed under the limit, and every human
/// answer was bridged or heard the message.
fn assert_live_rules(live: &dialler::live::CampaignLive) {
    assert!(live.connects > 0, "bridged: {live:?}");
    assert!(
        live.window_rate_percent <= live.limit_percent,
        "abandonment {}% over the limit",
        live.window_rate_percent
    );
    assert_eq!(
        live.human_answers,
        live.connects + live.abandons,
        "every human answer is bridged or hears the message"
    );
}

/// Tuesday 1 December 2026, 14:30 UTC: inside every sample campaign's
/// calling hours (09:30 in New York, 14:30 in London).
fn tuesday() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-01T14:30:00Z")
        .unwrap()
        .to_utc()
}

/// 10 agents for 10 minutes of dialling on paused time (seconds of real
/// time): abandonment under the limit, every human answer bridged or
/// given the message, every attempt closed in the store, DND numbers
/// never dialled, conversions counted. The store starts with the day so
/// far simulated (said in the first line), so the pacer dials above one
/// call per agent within the first minute.
#[tokio::test(start_paused = true)]
async fn demo_run_records_every_attempt_and_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let result = tokio::time::timeout(
        Duration::from_secs(3600),
        dialler::demo::run(dialler::demo::DemoOptions {
            minutes: 10.0,
            agents: 10,
            campaign: "uk-broadband".into(),
            campaigns_dir: campaigns_dir(),
            scenario: campaigns_dir().join("scenarios/demo.toml"),
            db: db.clone(),
            status_every: 5.0,
            seed: 7,
            provider: dialler::demo::DemoProvider::Sandbox,
            at: Some(tuesday()),
            http: "127.0.0.1:0".parse().unwrap(),
        }),
    )
    .await
    .expect("demo finished in time")
    .expect("demo ran");
    let live = &result.live;
    assert!(live.attempts > 10, "dialled: {live:?}");
    assert_live_rules(live);
    assert!(
        result
            .history_line
            .starts_with("demo: the store starts with the team's day so far"),
        "{}",
        result.history_line
    );
    // The first lines offer the agent desktop and the dashboard, each with
    // a token that works.
    let [desk, board] = &result.desktop_lines;
    assert!(
        desk.starts_with("agent desktop: http://127.0.0.1:") && desk.contains("/agent?token=dlr_"),
        "{desk}"
    );
    assert!(
        board.starts_with("live dashboard: http://127.0.0.1:"),
        "{board}"
    );
    assert!(
        result.first_minute_dial_level > 1.0,
        "dial level {} in the first minute",
        result.first_minute_dial_level
    );
    // The checks below read the store with pools of their own.
    tokio::time::resume();

    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "every attempt has an outcome");
    // The simulated history has no leads.
    let attempts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM call_attempts WHERE lead_id IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts as u64, live.attempts, "every attempt is stored");
    let history: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM call_attempts WHERE lead_id IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(history > 500, "the simulated history is stored: {history}");
    // Numbers on the sample TPS registry never get an INVITE.
    let tps = std::fs::read_to_string(campaigns_dir().join("dnd/uk-tps-sample.txt")).unwrap();
    for line in tps
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let n = dialler::phone::parse(line, dialler::phone::Country::UnitedKingdom).unwrap();
        let hits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_attempts WHERE phone = $1")
            .bind(n.e164())
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(hits, 0, "a DND number was dialled");
    }
    let connected: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'connected' AND agent_id IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(connected as u64, live.connects);
    let conv: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dispositions WHERE conversion AND agent_id <> 'simulated'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(conv as u64, live.conversions, "conversions counted");
    let open_states: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM agent_states WHERE ended_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(open_states, 0, "agent states closed at shutdown");
    let r = sqlx::query("SELECT COUNT(*) FROM leads WHERE status = 'claimed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(r.get::<i64, _>(0), 0, "unused claims released");
    store.close().await;
}

/// The live service against SIPp as the provider, 10 simulated agents for
/// a minute, on a US campaign at 09:30 in New York: Eastern numbers are
/// open, Pacific and Hawaiian ones are not. On SIPp's side: no number on
/// the DND registry and no number outside its calling hours ever got an
/// INVITE, and every INVITE is an attempt in the store. Abandonment under
/// the limit, every human answer bridged or given the message, answering
/// machines (reported by SIPp in X-AMD) hung up and kept out of the
/// ledger, every SIP status stored, conversions counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_against_sipp_never_invites_dnd_or_out_of_hours_numbers() {
    if !common::sipp::sipp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let camps = dir.path().join("campaigns");
    for sub in ["leads", "dnd", "scenarios"] {
        std::fs::create_dir_all(camps.join(sub)).unwrap();
    }
    std::fs::copy(
        campaigns_dir().join("us-home-solar.toml"),
        camps.join("us-home-solar.toml"),
    )
    .unwrap();
    // The demo scenario with answering machines, which SIPp reports in
    // the X-AMD header the campaign names.
    let scenario = std::fs::read_to_string(campaigns_dir().join("scenarios/demo.toml")).unwrap();
    let scenario = scenario
        .replace("machine = 0.0", "machine = 0.2")
        .replace("no_answer = 0.56", "no_answer = 0.36");
    assert!(scenario.contains("machine = 0.2") && scenario.contains("no_answer = 0.36"));
    std::fs::write(camps.join("scenarios/demo.toml"), scenario).unwrap();
    let e164 = |area: &str, n: u32| format!("+1{area}555{n:04}");
    let mut csv = String::from("first_name,last_name,phone,state\n");
    let (mut open, mut dnd, mut closed) = (Vec::new(), Vec::new(), Vec::new());
    for (area, state) in [("212", "NY"), ("305", "FL"), ("404", "GA"), ("617", "MA")] {
        for n in 100..200 {
            let number = e164(area, n);
            if n % 20 == 0 {
                dnd.push(number.clone());
            } else {
                open.push(number.clone());
            }
            csv.push_str(&format!("Ann,Lee,{number},{state}\n"));
        }
    }
    for (area, state) in [("213", "CA"), ("619", "CA"), ("808", "HI")] {
        for n in 100..130 {
            let number = e164(area, n);
            closed.push(number.clone());
            csv.push_str(&format!("Bob,Kim,{number},{state}\n"));
        }
    }
    std::fs::write(camps.join("leads/us-home-solar.csv"), csv).unwrap();
    std::fs::write(
        camps.join("dnd/us-dnc-sample.txt"),
        format!("# test registry\n{}\n", dnd.join("\n")),
    )
    .unwrap();
    let db = dir.path().join("demo.db");
    // Tuesday 1 December 2026, 09:30 in New York, 06:30 in Los Angeles,
    // 04:30 in Honolulu; the campaign calls 09:00-20:00 local.
    let at = tuesday();
    let result = tokio::time::timeout(
        Duration::from_secs(180),
        dialler::demo::run(dialler::demo::DemoOptions {
            minutes: 1.0,
            agents: 15,
            campaign: "us-home-solar".into(),
            campaigns_dir: camps.clone(),
            scenario: camps.join("scenarios/demo.toml"),
            db: db.clone(),
            status_every: 10.0,
            seed: 11,
            provider: dialler::demo::DemoProvider::Sipp,
            at: Some(at),
            http: "127.0.0.1:0".parse().unwrap(),
        }),
    )
    .await
    .expect("demo finished in time")
    .expect("demo ran");
    let live = &result.live;
    assert_live_rules(live);

    // SIPp's side.
    let log = std::fs::read_to_string(result.provider_log.as_ref().expect("sipp log")).unwrap();
    let invites = dialler::sip::sipp::invites(&log);
    assert!(invites.len() > 20, "SIPp saw {} INVITEs", invites.len());
    for inv in &invites {
        assert!(!dnd.contains(&inv.user), "DND number {} invited", inv.user);
        assert!(
            !closed.contains(&inv.user),
            "{} invited outside its calling hours",
            inv.user
        );
        assert!(open.contains(&inv.user), "{} is not a lead", inv.user);
    }

    // The store's side: every INVITE is an attempt, closed, and the
    // conversions are the conversion dispositions.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    // The demo's own attempts: the simulated history before it has no
    // lead and no number.
    let mut stored: Vec<String> =
        sqlx::query_scalar("SELECT phone FROM call_attempts WHERE lead_id IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut invited: Vec<String> = invites.iter().map(|i| i.user.clone()).collect();
    stored.sort();
    invited.sort();
    assert_eq!(
        stored, invited,
        "every INVITE SIPp got is an attempt in the store"
    );
    assert_eq!(stored.len() as u64, live.attempts);
    let open_attempts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM call_attempts WHERE outcome IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(open_attempts, 0, "every attempt has an outcome");
    // Every status SIPp sent is on the attempt: 100 and 180, then the
    // final one.
    let codes: Vec<(Option<i64>, Option<String>)> =
        sqlx::query_as("SELECT sip_code, sip_codes FROM call_attempts WHERE lead_id IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (last, all) in &codes {
        let last = last.expect("a final status");
        assert_eq!(all.as_deref(), Some(format!("100,180,{last}").as_str()));
    }
    // Machines: hung up, never put through, not in the ledger.
    let machines: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM call_attempts WHERE outcome = 'machine' AND lead_id IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(machines > 0, "SIPp drew answering machines");
    let misrouted: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM call_attempts a WHERE a.outcome = 'machine'
           AND (a.connected_at IS NOT NULL OR a.agent_id IS NOT NULL
                OR EXISTS (SELECT 1 FROM abandon_ledger l WHERE l.attempt_id = a.id))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(misrouted, 0, "a machine reached an agent or the ledger");
    let conv: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dispositions WHERE conversion AND agent_id <> 'simulated'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(conv as u64, live.conversions, "conversions counted");
    let (n, _, p99, _) = result.bridge_latency_ms;
    assert_eq!(n as u64, live.connects);
    eprintln!("answer-to-bridge over {n} bridges: p99 {p99:.2} ms");
    pool.close().await;
}

/// The service on `store` with uk-broadband on Tuesday's clock, whose
/// provider answers nothing (no call is placed without a ready agent
/// anyway); send on the sender to stop it.
async fn quiet_service(store: &Store) -> (service::Running, tokio::sync::oneshot::Sender<()>) {
    quiet_service_with(store, |_| {}).await
}

/// [`quiet_service`] with `configure` applied to its configuration.
async fn quiet_service_with(
    store: &Store,
    configure: impl FnOnce(&mut ServiceConfig),
) -> (service::Running, tokio::sync::oneshot::Sender<()>) {
    let camp = dialler::campaign::find(&campaigns_dir(), "uk-broadband").unwrap();
    let mut cfg = ServiceConfig::new(store.clone(), vec![camp], Default::default());
    configure(&mut cfg);
    cfg.clock = dialler::clock::Clock::starting_at(tuesday());
    cfg.provider = Some("127.0.0.1:9".parse().unwrap());
    cfg.sip_bind = "127.0.0.1:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = service::start(cfg, listener, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    (running, tx)
}

/// `/metrics`' days left on uk-broadband's national registry, and the
/// whole text.
async fn registry_days_left(running: &service::Running) -> (f64, String) {
    let (code, text) = client::request(running.http, "GET", "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let left = text
        .lines()
        .find_map(|l| l.strip_prefix("dialler_dnd_registry_days_left{campaign=\"uk-broadband\"} "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    (left, text)
}

/// A second process under a running node's name is refused at its start
/// (it would take the first's calls for a crash's leftovers and end them,
/// and the two would spend one node's share of the allowance each); a
/// recent beat under the name that does not move (the node's own, before
/// a crash) does not stop a restart.
#[tokio::test(start_paused = true)]
async fn a_second_process_under_a_running_nodes_name_is_refused() {
    let (store, _dir) = common::sqlite_store().await;
    let (first, stop_first) = quiet_service(&store).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let camp = dialler::campaign::find(&campaigns_dir(), "uk-broadband").unwrap();
    let mut cfg = ServiceConfig::new(store.clone(), vec![camp], Default::default());
    cfg.clock = dialler::clock::Clock::starting_at(tuesday());
    cfg.provider = Some("127.0.0.1:9".parse().unwrap());
    cfg.sip_bind = "127.0.0.1:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = service::start(cfg, listener, std::future::pending()).await;
    match second {
        Err(service::ServiceError::NodeInUse { node, .. }) => assert_eq!(node, "local"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a second process under the name \"local\" started"),
    }
    // The first runs on: its API answers.
    let (code, _) = client::request(first.http, "GET", "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let _ = stop_first.send(());
    first.wait().await.unwrap();
    // A beat left by a crash moments ago: the restart goes ahead.
    let c = store.campaign_id("uk-broadband").await.unwrap().unwrap();
    store
        .campaign_heartbeat(c, "local", tuesday().timestamp_millis())
        .await
        .unwrap();
    let (again, stop) = quiet_service(&store).await;
    let _ = stop.send(());
    again.wait().await.unwrap();
}

/// A node that died mid-call and never comes back: the running node's
/// cluster sync enters the person it left unbridged in the ledger as an
/// abandon once the dead node has been silent for the lapse (10 s), not
/// before.
#[tokio::test(start_paused = true)]
async fn a_running_node_counts_a_dead_nodes_unbridged_answer_as_abandoned() {
    let (store, _dir) = common::sqlite_store().await;
    let now = tuesday().timestamp_millis();
    let camp = dialler::campaign::find(&campaigns_dir(), "uk-broadband").unwrap();
    let c = store.upsert_campaign(&camp, now).await.unwrap();
    let lead = dialler::store::NewLead {
        phone: "+447700900123".into(),
        country: "GB",
        timezones: Some("Europe/London".into()),
        fields: "{}".into(),
        source_line: 2,
    };
    store.insert_leads(c, &[lead], now).await.unwrap();
    let held = store
        .claim_leads(c, "ghost", 1, now, 300_000, 0)
        .await
        .unwrap();
    common::answered_call(&store, &held[0].lead, "ghost", now - 4_000, now - 1_000).await;
    // Its last beat, then nothing.
    store.campaign_heartbeat(c, "ghost", now).await.unwrap();
    let (running, tx) = quiet_service(&store).await;
    let abandons = || async {
        store
            .ledger_counts(c, now - 60_000, now + 60_000)
            .await
            .unwrap()
            .abandons
    };
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        abandons().await,
        0,
        "within the lapse the node may be alive"
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(abandons().await, 1, "silent past the lapse: an abandon");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(abandons().await, 1, "once");
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// Do-not-call data changed while the service runs is screened against
/// within a poll (10 s), not after a restart: a national registry saved in
/// the DND folder (as `dialler dnd import` saves it) and a number added to
/// the internal list in the store. A registry file that cannot be read
/// keeps the one loaded (fail closed).
#[tokio::test(start_paused = true)]
async fn do_not_call_data_changed_while_running_is_screened_against() {
    use dialler::compliance::dnd::{self, Entry, Listing, NationalRegistry};
    let (store, dir) = common::sqlite_store().await;
    let dnd_dir = dir.path().join("dnd");
    std::fs::create_dir_all(&dnd_dir).unwrap();
    let country = dialler::campaign::find(&campaigns_dir(), "uk-broadband")
        .unwrap()
        .country();
    let (running, tx) = quiet_service_with(&store, |cfg| cfg.dnd_dir = Some(dnd_dir.clone())).await;
    let shared = running.shared.clone();
    let listed = 447_700_900_123u64;
    let national = |shared: &service::Shared| {
        shared
            .registries()
            .national
            .get(&country)
            .map(|r| r.lookup(listed, None))
    };
    assert_eq!(national(&shared), None);
    NationalRegistry::build(country, tuesday(), &[Entry::Blocked(listed)])
        .save(&dnd::registry_path(&dnd_dir, country))
        .unwrap();
    store
        .dnc_add(
            dialler::store::SCOPE_INTERNAL,
            &["+447700900456".to_string()],
            tuesday().timestamp_millis(),
            "import",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(national(&shared), Some(Listing::Blocked));
    assert!(shared.registries().internal.contains(447_700_900_456));
    // /metrics says how long the registry may still be dialled against
    // (UK: 28 days from its load, 11 s ago).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (left, text) = registry_days_left(&running).await;
    assert!((27.9..28.0).contains(&left), "{left}");
    assert!(text.contains("dialler_dnd_reloads_total{result=\"loaded\"}"));
    // A damaged file: the registry loaded stays.
    std::fs::write(dnd::registry_path(&dnd_dir, country), b"not a registry").unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(national(&shared), Some(Listing::Blocked));
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// Each node keeps its own copy of a national registry, but imports are
/// recorded in the store they share: a node whose copy is not the one
/// last imported (the import ran on another host) stops screening against
/// it within a poll, so the country's numbers are refused as having no
/// registry, and takes it back once the same data is imported there.
#[tokio::test(start_paused = true)]
async fn a_node_whose_national_registry_is_not_the_last_imported_one_refuses_the_country() {
    use dialler::compliance::dnd::{Format, Listing};
    use dialler::registry::{self, DndImport, Target};
    let (store, dir) = common::sqlite_store().await;
    let here = dir.path().join("dnd-here");
    let elsewhere = dir.path().join("dnd-elsewhere");
    let country = dialler::campaign::find(&campaigns_dir(), "uk-broadband")
        .unwrap()
        .country();
    let first = dir.path().join("tps-1.txt");
    std::fs::write(&first, "07700 900123\n").unwrap();
    let second = dir.path().join("tps-2.txt");
    std::fs::write(&second, "07700 900123\n07700 900456\n").unwrap();
    let import = |file: std::path::PathBuf, into: std::path::PathBuf| {
        let store = store.clone();
        async move {
            let req = DndImport {
                target: Target::National(country),
                file: &file,
                format: Format::Plain,
                country,
                delta: false,
                loaded_at: tuesday(),
                now: tuesday(),
                actor: "test".into(),
                force: false,
                max_drop_percent: 5.0,
            };
            registry::import(&store, &into, &req).await.unwrap()
        }
    };
    let one = import(first.clone(), here.clone()).await;
    let (running, tx) = quiet_service_with(&store, |cfg| cfg.dnd_dir = Some(here.clone())).await;
    let shared = running.shared.clone();
    let lookup = |shared: &service::Shared, n: u64| {
        shared
            .registries()
            .national
            .get(&country)
            .map(|r| r.lookup(n, None))
    };
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(lookup(&shared, 447_700_900_123), Some(Listing::Blocked));
    // Another host takes a newer copy: this node's is out of step.
    let two = import(second.clone(), elsewhere.clone()).await;
    assert_ne!(one.record.digest, two.record.digest);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(lookup(&shared, 447_700_900_123), None);
    let campaign = dialler::campaign::find(&campaigns_dir(), "uk-broadband").unwrap();
    // /metrics says so: no days left to dial against it.
    assert_eq!(registry_days_left(&running).await.0, 0.0);
    // `dialler check` on this node says why (it loads as a node does).
    let check = registry::check_number(&store, &here, &campaign, "07700 900789", tuesday())
        .await
        .unwrap();
    assert!(!check.allowed);
    assert!(
        check
            .reasons
            .contains(&dialler::compliance::Reason::DndRegistryMissing),
        "{:?}",
        check.reasons
    );
    // The same data imported here: in step again, with the new number.
    let again = import(second, here.clone()).await;
    assert_eq!(again.record.digest, two.record.digest);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(lookup(&shared, 447_700_900_456), Some(Listing::Blocked));
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// Every request that may change state is in the audit log, refused ones
/// too, with the token (never the secret), the caller's address, the
/// status and the request's id; reads are not; `GET /api/audit` is for
/// supervisors and filters.
#[tokio::test(start_paused = true)]
async fn every_state_change_through_the_api_is_audited() {
    let (store, _dir) = common::sqlite_store().await;
    let now = tuesday().timestamp_millis();
    let a1 = auth::create_token(&store, Role::Agent, Some("a1"), None, now)
        .await
        .unwrap();
    let sup = auth::create_token(&store, Role::Supervisor, None, None, now)
        .await
        .unwrap();
    let (running, tx) = quiet_service(&store).await;
    let http = running.http;
    let req = |m: &'static str, p: String, t: &str, b: Option<&'static str>| {
        let t = t.to_string();
        async move { client::request(http, m, &p, Some(&t), b).await.unwrap() }
    };
    let (c, text) = req(
        "POST",
        "/api/agents/a1/login".into(),
        &a1.token,
        Some(r#"{"campaign":"uk-broadband","sip_uri":"sip:+447700900123@127.0.0.1:9"}"#),
    )
    .await;
    assert_eq!(c, 403, "{text}");
    let (c, text) = req(
        "POST",
        "/api/agents/a1/phones".into(),
        &sup.token,
        Some(r#"{"sip_uri":"sip:2001@127.0.0.1:9"}"#),
    )
    .await;
    assert_eq!(c, 200, "{text}");
    assert_eq!(
        req(
            "POST",
            "/api/agents/a1/pause".into(),
            &a1.token,
            Some(r#"{"reason":"lunch"}"#)
        )
        .await
        .0,
        409
    );
    assert_eq!(
        req("GET", "/api/agents/a1/phones".into(), &a1.token, None)
            .await
            .0,
        200
    );
    // Agents may not read the log.
    assert_eq!(
        req("GET", "/api/audit".into(), &a1.token, None).await.0,
        403
    );
    let page = |q: &str| {
        let q = q.to_string();
        let sup = sup.token.clone();
        async move {
            let (c, text) = req("GET", format!("/api/audit{q}"), &sup, None).await;
            assert_eq!(c, 200, "{q}: {text}");
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        }
    };
    let all = page("").await;
    let entries = all["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["agent.login", "phone.add", "agent.pause"],
        "reads are not recorded, each change once: {all}"
    );
    let login = &entries[0];
    assert_eq!(login["status"], 403);
    assert_eq!(login["actor"], format!("token {} (agent a1)", a1.id));
    assert_eq!(login["subject"], "agent a1");
    assert_eq!(login["at"], now, "stamped by the service clock");
    assert!(
        login["origin"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{login}"
    );
    assert!(!login["request_id"].as_str().unwrap().is_empty(), "{login}");
    let detail = login["detail"].as_str().unwrap();
    assert!(
        detail.contains("campaign uk-broadband") && detail.contains("not provisioned"),
        "{detail}"
    );
    let add = &entries[1];
    assert_eq!(
        (
            add["status"].as_i64(),
            add["actor"].as_str(),
            add["detail"].as_str()
        ),
        (
            Some(200),
            Some(format!("token {} (supervisor)", sup.id).as_str()),
            Some("sip:2001@127.0.0.1:9")
        )
    );
    assert!(
        add["origin"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{add}"
    );
    assert!(!add["request_id"].as_str().unwrap().is_empty(), "{add}");
    assert!(
        entries[2]["detail"]
            .as_str()
            .unwrap()
            .contains("reason lunch")
    );
    // No token secret anywhere in the log.
    assert!(!all.to_string().contains(&a1.token) && !all.to_string().contains(&sup.token));
    // Filters and paging.
    let failed = page("?failed=true&action=agent.").await;
    assert_eq!(failed["entries"].as_array().unwrap().len(), 2, "{failed}");
    let one = page("?limit=1").await;
    let next = one["next_after_id"].as_i64().expect("a next page");
    let rest = page(&format!("?after_id={next}&subject=agent%20a1")).await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 2, "{rest}");
    assert!(rest["next_after_id"].is_null());
    let (c, text) = req("GET", "/api/audit?since=yesterday".into(), &sup.token, None).await;
    assert_eq!(c, 400, "{text}");
    assert!(text.contains("since"), "{text}");
    let (c, _) = req("GET", "/api/audit?limit=0".into(), &sup.token, None).await;
    assert_eq!(c, 400);
    let (c, text) = req(
        "GET",
        "/api/audit?since=2000&until=1000".into(),
        &sup.token,
        None,
    )
    .await;
    assert_eq!(c, 400, "{text}");
    assert!(text.contains("\"field\":\"until\""), "{text}");
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// Leads over the API: CSV and JSON posts read, checked and refused as the
/// CLI import does them, idempotent by key; a lead looked up and changed
/// (a callback refused for an opted-out lead); every lead's outcome
/// exported in pages, as JSON and CSV.
#[tokio::test(start_paused = true)]
async fn leads_come_in_and_go_out_over_the_api() {
    let (store, _dir) = common::sqlite_store().await;
    let now = tuesday().timestamp_millis();
    let sup = auth::create_token(&store, Role::Supervisor, None, None, now)
        .await
        .unwrap()
        .token;
    let agent = auth::create_token(&store, Role::Agent, Some("a1"), None, now)
        .await
        .unwrap()
        .token;
    let (running, tx) = quiet_service(&store).await;
    let base = format!("http://{}/api/campaigns/uk-broadband", running.http);
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(dialler::sip::tls::client_config(None).unwrap())
        .build()
        .unwrap();
    let post = |body: &'static str, kind: &'static str, key: Option<&'static str>, token: &str| {
        let mut r = http
            .post(format!("{base}/leads?list=crm"))
            .bearer_auth(token)
            .header("content-type", kind)
            .body(body);
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        r.send()
    };
    let csv = "name,phone\nAnn,07700 900123\nBob,12345\nCat,+44 7700 900124\n";
    let r = post(csv, "text/csv", None, &sup).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["report"]["rows"].as_u64(),
            v["report"]["imported"].as_u64(),
            v["report"]["rejected"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(
        (
            v["rejects"][0]["line"].as_u64(),
            v["rejects"][0]["field"].as_str()
        ),
        (Some(3), Some("phone")),
        "{v}"
    );
    let json = r#"[{"phone":"+447700900125","name":"Dee","crm_id":17},{"phone":"not a number"}]"#;
    let r = post(json, "application/json", Some("batch-1"), &sup)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first: serde_json::Value = r.json().await.unwrap();
    assert_eq!(first["report"]["imported"], 1, "{first}");
    assert_eq!(first["rejects"][0]["index"], 1, "{first}");
    // A field with a line break does not shift the indexes after it.
    let r = post(
        r#"[{"phone":"bad one","note":"line\nbreak"},{"phone":"bad two"}]"#,
        "application/json",
        None,
        &sup,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let indexes: Vec<_> = v["rejects"]
        .as_array()
        .map(|a| a.iter().map(|r| r["index"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(indexes, [Some(0), Some(1)], "{v}");
    // The same request again: the first answer, nothing added.
    let r = post(json, "application/json", Some("batch-1"), &sup)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let again: serde_json::Value = r.json().await.unwrap();
    assert_eq!(again, first);
    let r = post(
        r#"[{"phone":"+447700900126"}]"#,
        "application/json",
        Some("batch-1"),
        &sup,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        post(json, "application/json", None, &agent)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(json, "text/plain", None, &sup).await.unwrap().status(),
        415
    );
    let r = post(r#"{"leads": "x"}"#, "application/json", None, &sup)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Export, paged.
    let get = |q: String| {
        http.get(format!("{base}/leads{q}"))
            .bearer_auth(&sup)
            .send()
    };
    let p1: serde_json::Value = get("?limit=2".into()).await.unwrap().json().await.unwrap();
    assert_eq!(p1["leads"].as_array().unwrap().len(), 2, "{p1}");
    let next = p1["next_after_id"].as_i64().unwrap();
    let p2: serde_json::Value = get(format!("?limit=2&after_id={next}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p2["leads"].as_array().unwrap().len(), 1, "{p2}");
    assert!(p2["next_after_id"].is_null());
    let dee = &p2["leads"][0];
    assert_eq!(
        (dee["list"].as_str(), dee["status"].as_str()),
        (Some("crm"), Some("new"))
    );
    assert_eq!(dee["fields"]["crm_id"], "17", "{dee}");
    let r = get("?format=csv".into()).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("id,phone,country"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    // One lead: looked up, changed.
    let id = dee["id"].as_i64().unwrap();
    let lead = format!("{base}/leads/{id}");
    let v: serde_json::Value = http
        .get(&lead)
        .bearer_auth(&sup)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["phone"], "+447700900125");
    let back = now + 3_600_000;
    let r = http
        .patch(&lead)
        .bearer_auth(&sup)
        .json(&serde_json::json!({"priority": 5, "fields": {"crm_id": "17", "note": "vip"}, "callback_at": back}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["priority"].as_i64(),
            v["next_attempt_at"].as_i64(),
            v["last_outcome"].as_str(),
            v["fields"]["note"].as_str()
        ),
        (Some(5), Some(back), Some("callback"), Some("vip")),
        "{v}"
    );
    for bad in [
        serde_json::json!({"priority": 5000}),
        serde_json::json!({"callback_at": now - 86_400_000}),
        serde_json::json!({"fields": {"a": [1]}}),
        serde_json::json!({}),
    ] {
        let r = http
            .patch(&lead)
            .bearer_auth(&sup)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // The number is not a field to change (an unknown field, as in every
    // route's body: 422).
    let r = http
        .patch(&lead)
        .bearer_auth(&sup)
        .json(&serde_json::json!({"phone": "+447700900999"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // One lead's change is held to the API's 16 KiB, not to a lead file's
    // 16 MiB.
    let r = http
        .patch(&lead)
        .bearer_auth(&sup)
        .json(&serde_json::json!({"fields": {"note": "x".repeat(64 * 1024)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // An opted-out person is not called back.
    store
        .dnc_add(
            dialler::store::SCOPE_INTERNAL,
            &["+447700900125".to_string()],
            now,
            "opt_out",
        )
        .await
        .unwrap();
    let r = http
        .patch(&lead)
        .bearer_auth(&sup)
        .json(&serde_json::json!({"callback_at": back}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        http.get(format!("{base}/leads/999999"))
            .bearer_auth(&sup)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The charset of the media type is honoured (RFC 9110 8.3.2): a
    // Latin-1 CSV is read as Latin-1; an unknown charset, or JSON in
    // anything but UTF-8, is a 415.
    let latin1: Vec<u8> = b"name,phone\nJos\xe9,07700 900127\n".to_vec();
    let r = http
        .post(format!("{base}/leads?list=crm"))
        .bearer_auth(&sup)
        .header("content-type", "text/csv; charset=ISO-8859-1")
        .body(latin1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["report"]["imported"], 1, "{v}");
    for kind in [
        "text/csv; charset=klingon",
        "application/json; charset=iso-8859-1",
    ] {
        let r = http
            .post(format!("{base}/leads?list=crm"))
            .bearer_auth(&sup)
            .header("content-type", kind)
            .body(latin1.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{kind}");
    }
    // The error names this route's way to say the phone column.
    let r = post("name,city\nAnn,Leeds\n", "text/csv", None, &sup)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("phone_column query parameter") && !text.contains("--phone-column"),
        "{text}"
    );
    let audit = store.audit_log().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "lead.import" && e.detail.contains("list crm")),
        "{audit:?}"
    );
    assert!(audit.iter().any(|e| e.action == "lead.update"), "{audit:?}");
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// Webhook subscriptions over the API: an admin adds one (the secret in
/// the answer, once), supervisors list them (never the secret), an admin
/// removes one; adding and removing are audited once, with the caller's
/// address.
#[tokio::test(start_paused = true)]
async fn webhooks_are_managed_over_the_api() {
    let (store, _dir) = common::sqlite_store().await;
    let now = tuesday().timestamp_millis();
    let admin = auth::create_token(&store, Role::Admin, None, None, now)
        .await
        .unwrap()
        .token;
    let sup = auth::create_token(&store, Role::Supervisor, None, None, now)
        .await
        .unwrap()
        .token;
    let (running, tx) = quiet_service(&store).await;
    let http = running.http;
    let path = "/api/campaigns/uk-broadband/webhooks";
    let req = |m: &'static str, p: String, t: &str, b: Option<&'static str>| {
        let t = t.to_string();
        async move { client::request(http, m, &p, Some(&t), b).await.unwrap() }
    };
    let add = r#"{"url":"https://crm.example.com/hooks","events":["call.ended","conversion"]}"#;
    assert_eq!(req("POST", path.into(), &sup, Some(add)).await.0, 403);
    let (c, text) = req("POST", path.into(), &admin, Some(add)).await;
    assert_eq!(c, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(v["events"], serde_json::json!(["call.ended", "conversion"]));
    for bad in [
        r#"{"url":"ftp://crm.example.com/"}"#,
        r#"{"url":"https://crm.example.com/","events":["call.exploded"]}"#,
        r#"{"url":"https://crm.example.com/","events":[]}"#,
        r#"{"url":"https://crm.example.com/","events":["call.ended,conversion"]}"#,
        r#"{"url":"http://user:pass@crm.example.com/"}"#,
    ] {
        assert_eq!(
            req("POST", path.into(), &admin, Some(bad)).await.0,
            400,
            "{bad}"
        );
    }
    let (c, list) = req("GET", path.into(), &sup, None).await;
    assert_eq!(c, 200);
    assert!(
        list.contains("crm.example.com") && !list.contains(&secret),
        "{list}"
    );
    let id = v["id"].as_i64().unwrap();
    assert_eq!(
        req("DELETE", format!("{path}/{id}"), &sup, None).await.0,
        403
    );
    let (c, text) = req("DELETE", format!("{path}/{id}"), &admin, None).await;
    assert_eq!(c, 200, "{text}");
    assert_eq!(
        req("DELETE", format!("{path}/{id}"), &admin, None).await.0,
        404
    );
    assert_eq!(
        req("GET", "/api/campaigns/nope/webhooks".into(), &sup, None)
            .await
            .0,
        404
    );
    let audit = store.audit_log().await.unwrap();
    // The refused adds are filed under the same action, with their status.
    let adds: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "webhook.add" && e.status == Some(200))
        .collect();
    assert_eq!(adds.len(), 1, "{audit:?}");
    let refused = audit
        .iter()
        .filter(|e| e.action == "webhook.add" && e.status.is_some_and(|s| s >= 400))
        .count();
    assert_eq!(refused, 6, "{audit:?}");
    assert!(adds[0].origin.starts_with("127.0.0.1:"), "{audit:?}");
    assert!(audit.iter().any(|e| e.action == "webhook.remove"));
    assert!(audit.iter().all(|e| !e.detail.contains(&secret)));
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// 401 without a valid token, 403 across agents and for agents on
/// supervisor routes, clear 4xx for bad bodies, 429 on login floods.
#[tokio::test(start_paused = true)]
async fn api_auth_by_role() {
    let (store, _dir) = common::sqlite_store().await;
    let now = tuesday().timestamp_millis();
    let a1 = auth::create_token(&store, Role::Agent, Some("a1"), None, now)
        .await
        .unwrap()
        .token;
    let sup = auth::create_token(&store, Role::Supervisor, None, None, now)
        .await
        .unwrap()
        .token;
    let (running, tx) = quiet_service(&store).await;
    let http = running.http;
    let req = |m: &'static str, p: &'static str, t: Option<String>, b: Option<String>| async move {
        client::request(http, m, p, t.as_deref(), b.as_deref())
            .await
            .unwrap()
    };
    assert_eq!(req("GET", "/api/campaigns", None, None).await.0, 401);
    assert_eq!(
        req("GET", "/api/campaigns", Some("nope".into()), None)
            .await
            .0,
        401
    );
    let (c, body) = req("GET", "/api/campaigns", Some(a1.clone()), None).await;
    assert_eq!(c, 200, "{body}");
    assert!(body.contains("uk-broadband"));
    // The scheme's name in any case (RFC 9110 11.1); a 401 names the
    // scheme that would do (RFC 9110 15.5.2).
    let web = reqwest::Client::builder()
        .tls_backend_preconfigured(dialler::sip::tls::client_config(None).unwrap())
        .build()
        .unwrap();
    for (value, code) in [
        (format!("BEARER {a1}"), 200),
        (format!("bEaReR {a1}"), 200),
        (format!("Basic {a1}"), 401),
    ] {
        let r = web
            .get(format!("http://{http}/api/campaigns"))
            .header("authorization", value.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{}", &value[..6]);
        if code == 401 {
            assert_eq!(
                r.headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer realm=\"dialler\"")
            );
        }
    }
    // A token presented and refused is named as the fault (RFC 6750 3.1);
    // a token sent two ways at once is a malformed request (RFC 6750 2),
    // even where the header's is valid.
    let r = web
        .get(format!("http://{http}/api/campaigns"))
        .bearer_auth("dlr_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"dialler\", error=\"invalid_token\"")
    );
    for path in ["/api/campaigns", "/api/events"] {
        let r = web
            .get(format!("http://{http}{path}?token={a1}"))
            .bearer_auth(&a1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path}");
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"dialler\", error=\"invalid_request\""),
            "{path}"
        );
    }
    assert_eq!(
        req("GET", "/api/agents", Some(a1.clone()), None).await.0,
        403
    );
    assert_eq!(
        req("GET", "/api/agents", Some(sup.clone()), None).await.0,
        200
    );
    assert_eq!(
        req("POST", "/api/agents/a2/ready", Some(a1.clone()), None)
            .await
            .0,
        403
    );
    assert_eq!(
        req("GET", "/api/agents/a2/call", Some(a1.clone()), None)
            .await
            .0,
        403
    );
    assert_eq!(
        req("POST", "/api/agents/a1/ready", Some(a1.clone()), None)
            .await
            .0,
        409,
        "not logged in"
    );
    let (c, body) = req(
        "POST",
        "/api/agents/a1/login",
        Some(a1.clone()),
        Some("{not json".into()),
    )
    .await;
    assert_eq!(c, 400, "{body}");
    let big = format!(
        "{{\"campaign\":\"{}\",\"sip_uri\":\"x\"}}",
        "x".repeat(20_000)
    );
    assert_eq!(
        req("POST", "/api/agents/a1/login", Some(a1.clone()), Some(big))
            .await
            .0,
        413
    );
    let (c, _) = req(
        "POST",
        "/api/agents/a1/login",
        Some(a1.clone()),
        Some(r#"{"campaign":"nope","sip_uri":"sip:1@127.0.0.1:9"}"#.into()),
    )
    .await;
    assert_eq!(c, 404);
    let mut limited = false;
    for _ in 0..12 {
        let (c, _) = req(
            "POST",
            "/api/agents/a1/login",
            Some(a1.clone()),
            Some(r#"{"campaign":"uk-broadband","sip_uri":"not a uri"}"#.into()),
        )
        .await;
        if c == 429 {
            limited = true;
            break;
        }
        assert_eq!(c, 400);
    }
    assert!(limited, "logins are rate limited");
    // Phones are provisioned, not claimed: an agent token cannot bind one,
    // and a login at a phone nobody bound (even a customer's number at the
    // trunk) is refused before anything is dialled.
    let a3 = auth::create_token(&store, Role::Agent, Some("a3"), None, now)
        .await
        .unwrap()
        .token;
    let phone = r#"{"sip_uri":"sip:2003@127.0.0.1:9"}"#;
    assert_eq!(
        req(
            "POST",
            "/api/agents/a3/phones",
            Some(a3.clone()),
            Some(phone.into())
        )
        .await
        .0,
        403
    );
    for uri in ["sip:+447700900123@127.0.0.1:9", "sip:2003@127.0.0.1:9"] {
        let body = format!(r#"{{"campaign":"uk-broadband","sip_uri":"{uri}"}}"#);
        let (c, text) = req("POST", "/api/agents/a3/login", Some(a3.clone()), Some(body)).await;
        assert_eq!(c, 403, "{uri}: {text}");
        assert!(text.contains("not provisioned"), "{text}");
    }
    let (c, text) = req(
        "POST",
        "/api/agents/a3/login",
        Some(a3.clone()),
        Some(r#"{"campaign":"uk-broadband"}"#.into()),
    )
    .await;
    assert_eq!(c, 403, "no phone bound: {text}");
    // A URI that could end the INVITE's Request-Line or a header early
    // and add headers of its own (RFC 3261 25.1) is refused, with the field.
    for uri in [
        "sip:2003@127.0.0.1:9;x=1\r\nX-Evil: injected",
        "sip:20 03@127.0.0.1:9",
        "sip:2003@127.0.0.1:9;x=\\\"",
    ] {
        let body = serde_json::json!({ "sip_uri": uri }).to_string();
        let (c, text) = req(
            "POST",
            "/api/agents/a3/phones",
            Some(sup.clone()),
            Some(body),
        )
        .await;
        assert_eq!(c, 400, "{uri:?}: {text}");
        assert!(text.contains("RFC 3261"), "{text}");
        assert!(text.contains("\"field\":\"sip_uri\""), "{text}");
    }
    let (c, text) = req(
        "POST",
        "/api/agents/a3/phones",
        Some(sup.clone()),
        Some(phone.into()),
    )
    .await;
    assert_eq!(c, 200, "{text}");
    assert!(text.contains("sip:2003@127.0.0.1:9"), "{text}");
    let (c, text) = req("GET", "/api/agents/a3/phones", Some(a3.clone()), None).await;
    assert_eq!(c, 200, "{text}");
    assert_eq!(
        req("GET", "/api/agents/a3/phones", Some(a1.clone()), None)
            .await
            .0,
        403
    );
    let audit = store.audit_log().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "phone.add" && e.subject == "agent a3"),
        "{audit:?}"
    );
    let (c, _) = req(
        "DELETE",
        "/api/agents/a3/phones",
        Some(sup.clone()),
        Some(phone.into()),
    )
    .await;
    assert_eq!(c, 200);
    let (c, _) = req(
        "DELETE",
        "/api/agents/a3/phones",
        Some(sup.clone()),
        Some(phone.into()),
    )
    .await;
    assert_eq!(c, 404);
    // One error shape everywhere, axum's own rejections too.
    let (c, text) = req(
        "POST",
        "/api/calls/abc/disposition",
        Some(a1.clone()),
        Some("{}".into()),
    )
    .await;
    assert_eq!(c, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON error");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    let (c, text) = req("PUT", "/api/agents/a1/login", Some(a1.clone()), None).await;
    assert_eq!(c, 405, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON error");
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    assert_eq!(
        req(
            "POST",
            "/api/calls/1/disposition",
            Some(a1.clone()),
            Some(r#"{"code":"X"}"#.into())
        )
        .await
        .0,
        404
    );
    let _ = tx.send(());
    running.wait().await.unwrap();
    store.close().await;
}

/// Two pools (as two nodes would) claim from one campaign at once on
/// PostgreSQL: `FOR UPDATE SKIP LOCKED` gives them disjoint leads.
#[tokio::test]
async fn two_nodes_never_claim_the_same_lead_on_postgres() {
    let Some(pg) = common::pg_store().await else {
        return;
    };
    let camp = dialler::campaign::find(&campaigns_dir(), "uk-broadband").unwrap();
    let id = pg.store.upsert_campaign(&camp, 0).await.unwrap();
    dialler::leads::import_file(
        &pg.store,
        id,
        camp.country(),
        &campaigns_dir().join("leads/uk-broadband.csv"),
        &dialler::leads::ImportOptions {
            phone_column: None,
            rejects: None,
            progress: false,
            screening: None,
            delimiter: None,
            encoding: None,
            list: None,
        },
        0,
    )
    .await
    .unwrap();
    // A second store on the same schema: its own pool and connections.
    let schema: String = {
        let raw = pg.raw().await;
        match raw {
            common::RawDb::Postgres(p) => sqlx::query_scalar("SELECT current_schema()")
                .fetch_one(&p)
                .await
                .unwrap(),
            common::RawDb::Sqlite(_) => unreachable!(),
        }
    };
    let opts = sqlx::postgres::PgConnectOptions::from_str(&common::pg_url())
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let other = Store::open_postgres(opts).await.unwrap();
    let now = 1_000_000;
    let mut a_all = Vec::new();
    let mut b_all = Vec::new();
    for _ in 0..8 {
        let (a, b) = tokio::join!(
            pg.store.claim_leads(id, "node-a", 50, now, 300_000, 0),
            other.claim_leads(id, "node-b", 50, now, 300_000, 0)
        );
        a_all.extend(a.unwrap().into_iter().map(|l| l.lead.id));
        b_all.extend(b.unwrap().into_iter().map(|l| l.lead.id));
    }
    assert!(!a_all.is_empty() && !b_all.is_empty());
    let a: std::collections::HashSet<_> = a_all.iter().collect();
    assert_eq!(a.len(), a_all.len());
    assert!(b_all.iter().all(|l| !a.contains(l)), "a lead claimed twice");
    // Released claims come back; a stale claim passes to another node.
    assert!(pg.store.release_claims(id, "node-a").await.unwrap() > 0);
    let later = other
        .claim_leads(id, "node-c", 5000, now + 400_000, 300_000, 0)
        .await
        .unwrap();
    let later: std::collections::HashSet<i64> = later.iter().map(|l| l.lead.id).collect();
    assert!(
        a_all.iter().all(|l| later.contains(l)),
        "released leads are claimable"
    );
    assert!(
        b_all.iter().all(|l| later.contains(l)),
        "stale claims pass on"
    );
    other.close().await;
    pg.drop_schema().await;
}
