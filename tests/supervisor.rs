//! The supervisor surface's store half: agent state intervals, API tokens,
//! campaign reports and personal data erasure, each on SQLite and on
//! PostgreSQL; and the `token`, `report` and `leads erase` commands.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use common::RawDb;
use dialler::auth::{self, AuthError, Role};
use dialler::campaign::{Campaign, Costs};
use dialler::erasure;
use dialler::report::{self, StateTimes};
use dialler::store::{
    AgentState, AttemptEnd, AuditEntry, AuditFilter, ErasureCounts, LedgerKind, NewAttempt,
    NewDisposition, NewLead, SCOPE_INTERNAL, Store,
};

fn campaign(name: &str) -> Campaign {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("campaigns")
        .join(format!("{name}.toml"));
    Campaign::load(&path).expect("sample campaign is valid")
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-03-02T00:00:00Z.
const T0: i64 = 1_772_409_600_000;

// ---- agent states ----------------------------------------------------------

async fn agent_states_keep_one_open_interval_per_agent(store: Store) {
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    let b = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    let ready = store
        .agent_state_begin(a, "alice", AgentState::Ready, None, 1_000)
        .await
        .expect("begin");
    let paused = store
        .agent_state_begin(a, "alice", AgentState::Paused, Some("coffee"), 5_000)
        .await
        .expect("begin");
    // Another agent's state changes leave alice's interval alone.
    store
        .agent_state_begin(a, "bob", AgentState::Ready, None, 6_000)
        .await
        .expect("begin");
    // Moving to another campaign closes the interval in the first.
    let other = store
        .agent_state_begin(b, "alice", AgentState::Ready, None, 8_000)
        .await
        .expect("begin");
    let h = store
        .agent_state_history("alice", 0, 100_000)
        .await
        .expect("history");
    let got: Vec<_> = h
        .iter()
        .map(|i| {
            (
                i.id,
                i.campaign_id,
                i.state,
                i.reason.as_deref(),
                i.started_at,
                i.ended_at,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ready, a, AgentState::Ready, None, 1_000, Some(5_000)),
            (
                paused,
                a,
                AgentState::Paused,
                Some("coffee"),
                5_000,
                Some(8_000)
            ),
            (other, b, AgentState::Ready, None, 8_000, None),
        ]
    );
    // Logout closes it; a second logout finds nothing open.
    assert_eq!(
        store
            .agent_state_end_all("alice", 9_000)
            .await
            .expect("end"),
        1
    );
    assert_eq!(
        store
            .agent_state_end_all("alice", 9_500)
            .await
            .expect("end"),
        0
    );
    // A clock that stepped back never makes a negative interval.
    store
        .agent_state_begin(a, "alice", AgentState::Ready, None, 20_000)
        .await
        .expect("begin");
    store
        .agent_state_begin(a, "alice", AgentState::OnCall, None, 19_000)
        .await
        .expect("begin");
    let h = store
        .agent_state_history("alice", 10_000, 100_000)
        .await
        .expect("history");
    let got: Vec<_> = h
        .iter()
        .map(|i| (i.state, i.started_at, i.ended_at))
        .collect();
    assert_eq!(
        got,
        vec![
            (AgentState::Ready, 20_000, Some(20_000)),
            (AgentState::OnCall, 20_000, None)
        ]
    );
    // The range selects overlapping intervals only.
    let h = store
        .agent_state_history("alice", 5_000, 8_000)
        .await
        .expect("history");
    assert_eq!(h.iter().map(|i| i.id).collect::<Vec<_>>(), vec![paused]);
}
store_test!(agent_states_keep_one_open_interval_per_agent);

// ---- tokens ----------------------------------------------------------------

async fn tokens_authenticate_by_hash_until_revoked(store: Store, raw: RawDb) {
    let sup = auth::create_token(&store, Role::Supervisor, None, Some("night shift"), 1_000)
        .await
        .expect("create");
    assert!(sup.token.starts_with(auth::TOKEN_PREFIX));
    let agent = auth::create_token(&store, Role::Agent, Some("a7"), None, 1_000)
        .await
        .expect("create");
    assert!(matches!(
        auth::create_token(&store, Role::Agent, None, None, 1_000).await,
        Err(AuthError::AgentIdMissing)
    ));
    assert!(matches!(
        auth::create_token(&store, Role::Agent, Some("  "), None, 1_000).await,
        Err(AuthError::AgentIdEmpty)
    ));
    assert!(matches!(
        auth::create_token(&store, Role::Admin, Some("a7"), None, 1_000).await,
        Err(AuthError::AgentIdNotAllowed(Role::Admin))
    ));

    let p = auth::authenticate(&store, &sup.token)
        .await
        .expect("auth")
        .expect("known");
    assert_eq!(
        (p.token_id, p.role, p.agent_id),
        (sup.id, Role::Supervisor, None)
    );
    let p = auth::authenticate(&store, &agent.token)
        .await
        .expect("auth")
        .expect("known");
    assert_eq!(p.agent_id.as_deref(), Some("a7"));
    assert!(p.can_access_agent("a7") && !p.can_access_agent("a8") && !p.can_supervise());
    for wrong in ["", "dlr_00", &agent.token[..agent.token.len() - 1]] {
        assert_eq!(auth::authenticate(&store, wrong).await.expect("auth"), None);
    }

    // The secret is nowhere in the database; its hash is.
    assert_eq!(raw.find_text(&sup.token).await, vec![]);
    assert_eq!(
        raw.find_text(&auth::token_hash(&sup.token)).await,
        vec![("api_tokens".to_string(), "token_hash".to_string(), 1)]
    );

    assert!(auth::revoke(&store, sup.id, 2_000).await.expect("revoke"));
    assert!(!auth::revoke(&store, sup.id, 3_000).await.expect("revoke"));
    assert!(!auth::revoke(&store, 9_999, 3_000).await.expect("revoke"));
    assert_eq!(
        auth::authenticate(&store, &sup.token).await.expect("auth"),
        None
    );
    assert!(
        auth::authenticate(&store, &agent.token)
            .await
            .expect("auth")
            .is_some()
    );
    let rows = store.token_list().await.expect("list");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].label.as_deref(), rows[0].revoked_at),
        (Some("night shift"), Some(2_000))
    );
    assert_eq!((rows[1].role.as_str(), rows[1].revoked_at), ("agent", None));
}
store_raw_test!(tokens_authenticate_by_hash_until_revoked);

// ---- audit log -------------------------------------------------------------

fn audit_entry(
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    status: Option<i64>,
) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        detail: "d".into(),
        origin: "127.0.0.1:5000".into(),
        status,
        request_id: "r1".into(),
    }
}

/// The log filters by time, actor, action family, subject and outcome,
/// pages by id, and no statement can change or remove an entry.
async fn the_audit_log_filters_pages_and_is_append_only(store: Store, raw: RawDb) {
    let rows = [
        audit_entry(
            T0,
            "token 1 (agent a1)",
            "agent.login",
            "agent a1",
            Some(403),
        ),
        audit_entry(
            T0 + MIN,
            "token 2 (supervisor)",
            "phone.add",
            "agent a1",
            Some(200),
        ),
        audit_entry(
            T0 + 2 * MIN,
            "token 1 (agent a1)",
            "agent.pause",
            "agent a1",
            Some(200),
        ),
        audit_entry(T0 + 3 * MIN, "alice", "token.create", "token 7", None),
        audit_entry(
            T0 + 4 * MIN,
            "token 3 (agent a10_x)",
            "agent.login",
            "agent a10_x",
            Some(200),
        ),
    ];
    for r in &rows {
        store.audit(r).await.expect("audit");
    }
    let q = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit_query(&AuditFilter { limit: 100, ..f })
                .await
                .expect("query")
                .into_iter()
                .map(|r| r.entry)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(q(AuditFilter::default()).await, rows.to_vec());
    let family = q(AuditFilter {
        action: Some("agent.".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(family.len(), 3);
    // Exact action; a LIKE wildcard in a filter is taken literally.
    assert_eq!(
        q(AuditFilter {
            action: Some("AGENT.LOGIN".into()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        q(AuditFilter {
            subject: Some("a10_".into()),
            ..Default::default()
        })
        .await,
        vec![rows[4].clone()]
    );
    assert!(
        q(AuditFilter {
            subject: Some("a1%".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        q(AuditFilter {
            actor: Some("Agent A1".into()),
            since: Some(T0 + MIN),
            until: Some(T0 + 3 * MIN),
            ..Default::default()
        })
        .await,
        vec![rows[2].clone()]
    );
    assert_eq!(
        q(AuditFilter {
            failed: Some(true),
            ..Default::default()
        })
        .await,
        vec![rows[0].clone()]
    );
    assert_eq!(
        q(AuditFilter {
            failed: Some(false),
            ..Default::default()
        })
        .await
        .len(),
        4,
        "a command's entry (no status) is not a failure"
    );
    // Pages by id.
    let first = store
        .audit_query(&AuditFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(first.len(), 2);
    let rest = store
        .audit_query(&AuditFilter {
            limit: 100,
            after_id: Some(first[1].id),
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].entry, rows[2]);
    // Append-only, past the store too.
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'agent.login'",
    ] {
        let r = raw.execute(sql).await;
        assert!(
            r.as_ref().is_err_and(|e| e.contains("append-only")),
            "{sql}: {r:?}"
        );
    }
    if let RawDb::Postgres(_) = raw {
        let r = raw.execute("TRUNCATE audit_log").await;
        assert!(r.is_err_and(|e| e.contains("append-only")));
    }
    assert_eq!(store.audit_log().await.expect("log"), rows.to_vec());
}
store_raw_test!(the_audit_log_filters_pages_and_is_append_only);

// ---- reports ---------------------------------------------------------------

fn lead(phone: &str, fields: &str) -> NewLead {
    NewLead {
        phone: phone.into(),
        country: "GB",
        timezones: Some("Europe/London".into()),
        fields: fields.into(),
        source_line: 2,
    }
}

/// One call: started at `start`; `answer`, `connect` offsets and `end`
/// offset in ms from the start.
struct Call<'a> {
    campaign_id: i64,
    phone: &'a str,
    start: i64,
    answer: Option<i64>,
    connect: Option<i64>,
    end: i64,
    outcome: &'a str,
    agent: Option<&'a str>,
}

async fn call(store: &Store, c: Call<'_>) -> i64 {
    let l = store
        .lead_by_phone(c.campaign_id, c.phone)
        .await
        .expect("q")
        .expect("lead");
    let id = store
        .start_attempt(&NewAttempt {
            campaign_id: c.campaign_id,
            lead_id: l.id,
            phone: l.phone.clone(),
            started_at: c.start,
        })
        .await
        .expect("start");
    store
        .finish_attempt(
            id,
            &AttemptEnd {
                answered_at: c.answer.map(|a| c.start + a),
                connected_at: c.connect.map(|a| c.start + a),
                ended_at: c.start + c.end,
                outcome: c.outcome.into(),
                sip_code: None,
                sip_codes: None,
                agent_id: c.agent.map(str::to_string),
                lead_status: "done".into(),
                next_attempt_at: None,
            },
        )
        .await
        .expect("finish");
    if c.answer.is_some() && c.outcome != "machine" {
        let at = c.start + c.answer.unwrap_or(0);
        store
            .ledger_append(c.campaign_id, Some(id), LedgerKind::HumanAnswer, at)
            .await
            .expect("ledger");
        if c.outcome == "abandoned" {
            store
                .ledger_append(
                    c.campaign_id,
                    Some(id),
                    LedgerKind::Abandon,
                    c.start + c.end,
                )
                .await
                .expect("ledger");
        }
    }
    id
}

#[allow(clippy::too_many_arguments)]
async fn dispose(
    store: &Store,
    campaign_id: i64,
    attempt_id: i64,
    agent: &str,
    code: &str,
    conversion: bool,
    amount_minor: Option<i64>,
    wrapup_ms: i64,
    at: i64,
) {
    store
        .record_disposition(&NewDisposition {
            attempt_id,
            campaign_id,
            agent_id: agent.into(),
            code: code.into(),
            conversion,
            contact: true,
            dnc: false,
            callback_at: None,
            amount_minor,
            wrapup_ms: Some(wrapup_ms),
            created_at: at,
            notes: None,
            personal: false,
        })
        .await
        .expect("disposition");
}

fn report_campaign() -> Campaign {
    let mut c = campaign("uk-broadband");
    c.costs = Some(Costs {
        currency: "GBP".into(),
        trunk_per_minute: 0.5,
        agent_per_hour: 10.0,
    });
    c
}

/// Two days of a small UK campaign with every figure known by hand (see
/// the comments); the same records in another campaign and outside the
/// range must not count.
async fn fill_report_store(store: &Store) -> (i64, Campaign) {
    let c = report_campaign();
    let id = store.upsert_campaign(&c, 0).await.expect("campaign");
    let other = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    let phones = [
        "+447700900001",
        "+447700900002",
        "+447700900003",
        "+447700900004",
        "+447700900005",
    ];
    let leads: Vec<NewLead> = phones.iter().map(|p| lead(p, "{}")).collect();
    store.insert_leads(id, &leads, 0).await.expect("leads");
    store.insert_leads(other, &leads, 0).await.expect("leads");
    let s = 1_000; // seconds, in ms
    let day1 = T0 + 9 * HOUR;
    let day2 = T0 + DAY + 9 * HOUR;
    // Before the range: not counted.
    call(
        store,
        Call {
            campaign_id: id,
            phone: phones[0],
            start: T0 - HOUR,
            answer: Some(5 * s),
            connect: None,
            end: 10 * s,
            outcome: "abandoned",
            agent: None,
        },
    )
    .await;
    // A1 09:00, alice talks 300 s; billed 301 s -> 6 min.
    let a1 = call(
        store,
        Call {
            campaign_id: id,
            phone: phones[0],
            start: day1,
            answer: Some(10 * s),
            connect: Some(11 * s),
            end: 311 * s,
            outcome: "human_answer",
            agent: Some("alice"),
        },
    )
    .await;
    dispose(
        store,
        id,
        a1,
        "alice",
        "UPGRADED",
        true,
        Some(12_500),
        30 * s,
        day1 + 341 * s,
    )
    .await;
    // A2 09:10 busy; billed 0.
    call(
        store,
        Call {
            campaign_id: id,
            phone: phones[1],
            start: day1 + 10 * MIN,
            answer: None,
            connect: None,
            end: 5 * s,
            outcome: "busy",
            agent: None,
        },
    )
    .await;
    // A3 10:00, bob talks 120 s; billed 121 s -> 3 min.
    let a3 = call(
        store,
        Call {
            campaign_id: id,
            phone: phones[2],
            start: day1 + HOUR,
            answer: Some(5 * s),
            connect: Some(6 * s),
            end: 126 * s,
            outcome: "human_answer",
            agent: Some("bob"),
        },
    )
    .await;
    dispose(
        store,
        id,
        a3,
        "bob",
        "NOT_INTERESTED",
        false,
        None,
        20 * s,
        day1 + HOUR + 146 * s,
    )
    .await;
    // A4 10:30 abandoned; billed 6 s -> 1 min.
    call(
        store,
        Call {
            campaign_id: id,
            phone: phones[3],
            start: day1 + HOUR + 30 * MIN,
            answer: Some(4 * s),
            connect: None,
            end: 10 * s,
            outcome: "abandoned",
            agent: None,
        },
    )
    .await;
    // A5 day 2 09:00, alice talks 60 s; billed 61 s -> 2 min.
    let a5 = call(
        store,
        Call {
            campaign_id: id,
            phone: phones[4],
            start: day2,
            answer: Some(5 * s),
            connect: Some(6 * s),
            end: 66 * s,
            outcome: "human_answer",
            agent: Some("alice"),
        },
    )
    .await;
    dispose(
        store,
        id,
        a5,
        "alice",
        "UPGRADED",
        true,
        Some(7_500),
        10 * s,
        day2 + 76 * s,
    )
    .await;
    // A6 day 2 11:00 abandoned; billed 5 s -> 1 min.
    call(
        store,
        Call {
            campaign_id: id,
            phone: phones[1],
            start: day2 + 2 * HOUR,
            answer: Some(3 * s),
            connect: None,
            end: 8 * s,
            outcome: "abandoned",
            agent: None,
        },
    )
    .await;
    // The other campaign: an answered, converted call by alice.
    let o = call(
        store,
        Call {
            campaign_id: other,
            phone: phones[0],
            start: day1,
            answer: Some(5 * s),
            connect: Some(6 * s),
            end: 100 * s,
            outcome: "human_answer",
            agent: Some("alice"),
        },
    )
    .await;
    dispose(
        store,
        other,
        o,
        "alice",
        "SALE",
        true,
        Some(99_900),
        s,
        day1 + 200 * s,
    )
    .await;

    // Agent time. alice: ready 08:00-09:00, on call 09:00-09:05, wrap-up
    // 09:05-09:10, paused 09:10-09:40, ready 09:40-10:00, then logs out.
    let at = |h: i64, m: i64| T0 + h * HOUR + m * MIN;
    for (state, t) in [
        (AgentState::Ready, at(8, 0)),
        (AgentState::OnCall, at(9, 0)),
        (AgentState::Wrapup, at(9, 5)),
        (AgentState::Paused, at(9, 10)),
        (AgentState::Ready, at(9, 40)),
    ] {
        let reason = (state == AgentState::Paused).then_some("lunch");
        store
            .agent_state_begin(id, "alice", state, reason, t)
            .await
            .expect("state");
    }
    store
        .agent_state_end_all("alice", at(10, 0))
        .await
        .expect("end");
    // bob: on call from 10 min before the range to 20 min into it; ready
    // from 30 min before its end, still open (clipped at the end).
    store
        .agent_state_begin(id, "bob", AgentState::OnCall, None, T0 - 10 * MIN)
        .await
        .expect("state");
    store
        .agent_state_end_all("bob", T0 + 20 * MIN)
        .await
        .expect("end");
    store
        .agent_state_begin(id, "bob", AgentState::Ready, None, T0 + 2 * DAY - 30 * MIN)
        .await
        .expect("state");
    // carol works the other campaign only.
    store
        .agent_state_begin(other, "carol", AgentState::OnCall, None, at(9, 0))
        .await
        .expect("state");
    store
        .agent_state_end_all("carol", at(12, 0))
        .await
        .expect("end");
    (id, c)
}

async fn report_gives_the_figures_worked_out_by_hand(store: Store) {
    let (id, c) = fill_report_store(&store).await;
    let r = report::report(&store, &c, id, T0, T0 + 2 * DAY, T0 + 2 * DAY)
        .await
        .expect("report");
    // Asked 10 minutes before the range ends, bob's open interval counts up
    // to now, not to the end of the range.
    let early = report::report(&store, &c, id, T0, T0 + 2 * DAY, T0 + 2 * DAY - 10 * MIN)
        .await
        .expect("report");
    assert_eq!(r.time.ready_ms - early.time.ready_ms, 10 * MIN);
    assert_eq!(r.currency.as_deref(), Some("GBP"));
    assert_eq!(r.attempts, 6);
    assert_eq!(r.human_answers, 5);
    assert_eq!(r.abandons, 2);
    assert_eq!(r.abandon_rate, Some(0.4));
    assert_eq!(r.abandon_limit, 0.03);
    assert_eq!(r.window_ms, DAY);
    let windows: Vec<_> = r
        .windows
        .iter()
        .map(|w| (w.start.timestamp_millis(), w.human_answers, w.abandons))
        .collect();
    assert_eq!(windows, vec![(T0, 3, 1), (T0 + DAY, 2, 1)]);
    let worst = r.worst_window.as_ref().expect("worst");
    assert_eq!(
        (worst.start.timestamp_millis(), worst.abandon_rate),
        (T0 + DAY, Some(0.5))
    );
    assert_eq!(r.contacts, 3);
    assert_eq!(r.contact_rate, Some(0.5));
    assert_eq!(r.calls, 3);
    assert_eq!((r.talk_ms, r.wrapup_ms), (480_000, 60_000));
    assert_eq!(r.aht_ms, Some(180_000.0));
    assert_eq!(r.mean_talk_ms, Some(160_000.0));
    assert_eq!(r.mean_wrapup_ms, Some(20_000.0));
    assert_eq!(
        r.time,
        StateTimes {
            ready_ms: 110 * MIN,
            reserved_ms: 0,
            on_call_ms: 25 * MIN,
            wrapup_ms: 5 * MIN,
            paused_ms: 30 * MIN,
        }
    );
    assert_eq!(r.talk_share, Some(25.0 / 140.0));
    assert_eq!(r.occupancy, Some(30.0 / 140.0));
    assert_eq!(r.conversions, 2);
    assert_eq!(r.conversion_rate_per_contact, Some(2.0 / 3.0));
    assert_eq!(r.conversion_rate_per_attempt, Some(2.0 / 6.0));
    assert_eq!(r.revenue_minor, 20_000);
    assert_eq!(r.revenue, 200.0);
    let close = |a: Option<f64>, b: f64| {
        let a = a.expect("figure");
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    };
    close(r.revenue_per_call, 200.0 / 3.0);
    // 170 logged-in minutes.
    close(r.revenue_per_agent_hour, 200.0 / (170.0 / 60.0));
    assert_eq!(r.billed_minutes, 13);
    let cost = 0.5 * 13.0 + 10.0 * 170.0 / 60.0;
    close(r.cost, cost);
    close(r.cost_per_call, cost / 3.0);
    close(r.cost_per_conversion, cost / 2.0);

    let agents: Vec<_> = r
        .agents
        .iter()
        .map(|a| {
            (
                a.agent_id.as_str(),
                a.calls,
                a.talk_ms,
                a.wrapup_ms,
                a.conversions,
                a.revenue_minor,
                a.talk_share,
            )
        })
        .collect();
    assert_eq!(
        agents,
        vec![
            ("alice", 2, 360_000, 40_000, 2, 20_000, Some(5.0 / 90.0)),
            ("bob", 1, 120_000, 20_000, 0, 0, Some(20.0 / 50.0)),
        ]
    );
    let hours: Vec<_> = r
        .hours
        .iter()
        .map(|h| {
            (
                h.hour.timestamp_millis(),
                h.attempts,
                h.human_answers,
                h.abandons,
                h.conversions,
            )
        })
        .collect();
    assert_eq!(
        hours,
        vec![
            (T0 + 9 * HOUR, 2, 1, 0, 1),
            (T0 + 10 * HOUR, 2, 2, 1, 0),
            (T0 + DAY + 9 * HOUR, 1, 1, 0, 1),
            (T0 + DAY + 11 * HOUR, 1, 1, 1, 0),
        ]
    );

    // Day 2 alone: windows restart at the range's start.
    let r2 = report::report(&store, &c, id, T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY)
        .await
        .expect("report");
    assert_eq!((r2.attempts, r2.human_answers, r2.abandons), (2, 2, 1));
    assert_eq!(r2.windows.len(), 1);
    // No costs in the campaign: no cost figures, revenue still summed.
    let mut bare = c.clone();
    bare.costs = None;
    let r3 = report::report(&store, &bare, id, T0, T0 + 2 * DAY, T0 + 2 * DAY)
        .await
        .expect("report");
    assert_eq!((r3.cost, r3.currency, r3.revenue), (None, None, 200.0));
    // A range without calls gives zeros and no rates; bob's interval, still
    // open, counts up to the range's end.
    let r4 = report::report(&store, &c, id, T0 + 5 * DAY, T0 + 6 * DAY, T0 + 6 * DAY)
        .await
        .expect("report");
    assert_eq!((r4.attempts, r4.abandon_rate, r4.aht_ms), (0, None, None));
    assert!(r4.hours.is_empty() && r4.worst_window.is_none());
    let agents: Vec<_> = r4
        .agents
        .iter()
        .map(|a| (a.agent_id.as_str(), a.calls, a.time.ready_ms, a.talk_share))
        .collect();
    assert_eq!(agents, vec![("bob", 0, DAY, Some(0.0))]);
    assert!(matches!(
        report::report(&store, &c, id, 10, 5, 10).await,
        Err(report::ReportError::BadRange { .. })
    ));
}
store_test!(report_gives_the_figures_worked_out_by_hand);

// ---- erasure ---------------------------------------------------------------

const PERSON: &str = "+447700900123";
const NEIGHBOUR: &str = "+447700900999";

async fn erasure_leaves_only_a_suppression_hash(store: Store, raw: RawDb) {
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    let b = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    let person = lead(
        PERSON,
        r#"{"name":"Asha Quirkwright","email":"asha.q@example.org"}"#,
    );
    let neighbour = lead(NEIGHBOUR, r#"{"name":"Other Person"}"#);
    store
        .insert_leads(a, &[person.clone(), neighbour], 0)
        .await
        .expect("leads");
    store.insert_leads(b, &[person], 0).await.expect("leads");
    // A CRM subscribed to campaign a's events: their payloads carry the
    // lead's number and fields, some delivered, some not yet.
    let events = dialler::webhooks::parse_events("all").expect("events");
    store
        .webhook_add(
            a,
            "http://127.0.0.1:9/hooks",
            &events,
            "s3cret",
            &AuditEntry::command(0, "tester", "", String::new(), String::new()),
        )
        .await
        .expect("subscription");
    let s = 1_000;
    let c1 = call(
        &store,
        Call {
            campaign_id: a,
            phone: PERSON,
            start: T0,
            answer: Some(5 * s),
            connect: Some(6 * s),
            end: 60 * s,
            outcome: "human_answer",
            agent: Some("alice"),
        },
    )
    .await;
    // The agent's notes name the person and another number of theirs.
    store
        .record_disposition(&NewDisposition {
            attempt_id: c1,
            campaign_id: a,
            agent_id: "alice".into(),
            code: "UPGRADED".into(),
            conversion: true,
            contact: true,
            dnc: false,
            callback_at: None,
            amount_minor: Some(4_200),
            wrapup_ms: Some(5 * s),
            created_at: T0 + 70 * s,
            notes: Some("Asha prefers evenings, alt 07700 900124".into()),
            personal: false,
        })
        .await
        .expect("disposition");
    call(
        &store,
        Call {
            campaign_id: a,
            phone: PERSON,
            start: T0 - DAY,
            answer: None,
            connect: None,
            end: 20 * s,
            outcome: "no_answer",
            agent: None,
        },
    )
    .await;
    call(
        &store,
        Call {
            campaign_id: b,
            phone: PERSON,
            start: T0 + HOUR,
            answer: Some(2 * s),
            connect: None,
            end: 4 * s,
            outcome: "abandoned",
            agent: None,
        },
    )
    .await;
    call(
        &store,
        Call {
            campaign_id: a,
            phone: NEIGHBOUR,
            start: T0 + 2 * HOUR,
            answer: None,
            connect: None,
            end: 3 * s,
            outcome: "busy",
            agent: None,
        },
    )
    .await;

    // The checker sees the person before: in the leads, the attempts, the
    // webhook outbox and the agent's notes.
    let digits = &PERSON[1..];
    assert!(raw.find_text(digits).await.len() >= 2);
    let tables =
        |hits: Vec<(String, String, i64)>| hits.into_iter().map(|(t, _, _)| t).collect::<Vec<_>>();
    assert!(tables(raw.find_text("Quirkwright").await).contains(&"webhook_outbox".to_string()));
    assert!(tables(raw.find_text("prefers evenings").await).contains(&"dispositions".to_string()));

    let totals = |store: Store| async move {
        let mut out = Vec::new();
        for id in [a, b] {
            let d = store
                .report_data(id, i64::MIN / 2, i64::MAX / 2, DAY, i64::MAX / 2)
                .await
                .expect("data");
            let t = store
                .disposition_totals(id, 0, i64::MAX)
                .await
                .expect("totals");
            out.push((
                d.attempts,
                d.human_answers,
                d.abandons,
                d.calls,
                d.billed_minutes,
                t,
            ));
        }
        out
    };
    let before = totals(store.clone()).await;
    let person_in_a = store
        .lead_by_phone(a, PERSON)
        .await
        .expect("q")
        .expect("lead")
        .id;

    let counts = erasure::erase(&store, PERSON, T0 + DAY)
        .await
        .expect("erase");
    // The CRM subscribed to campaign a is told which lead to erase (its id
    // only, GDPR Art. 19); campaign b has no subscriber.
    assert_eq!(
        raw.find_text("lead.erased").await,
        vec![("webhook_outbox".to_string(), "event".to_string(), 1)]
    );
    let notice = format!(r#""lead":{{"fields":null,"id":{person_in_a},"phone":null}}"#);
    assert_eq!(raw.find_text(&notice).await.len(), 1, "{notice}");
    assert_eq!(
        counts,
        ErasureCounts {
            leads: 2,
            attempts: 3,
            dispositions: 1
        }
    );

    // Nothing of the person: not even the number. A suppression entry
    // (the number's keyed hash) refuses it in every campaign.
    assert_eq!(raw.find_text(digits).await, vec![]);
    for value in ["Quirkwright", "asha.q@example.org", "Asha", "900124"] {
        assert_eq!(raw.find_text(value).await, vec![], "{value}");
    }
    assert_eq!(
        store.dnc_list(SCOPE_INTERNAL).await.expect("dnc"),
        Vec::<String>::new()
    );
    let key = store.suppression_key().await.expect("key");
    let (suppressed, _) = dialler::compliance::Suppressions::new(
        key,
        store.suppressions().await.expect("suppressions"),
    );
    let person = dialler::phone::PhoneNumber::from_e164(PERSON).expect("e164");
    let neighbour = dialler::phone::PhoneNumber::from_e164(NEIGHBOUR).expect("e164");
    assert!(suppressed.contains(person.digits));
    assert!(!suppressed.contains(neighbour.digits));
    assert_eq!(store.lead_by_phone(a, PERSON).await.expect("q"), None);
    assert_eq!(store.lead_by_phone(b, PERSON).await.expect("q"), None);
    // The neighbour is untouched.
    let n = store
        .lead_by_phone(a, NEIGHBOUR)
        .await
        .expect("q")
        .expect("lead");
    assert_eq!(store.attempts_for_lead(n.id).await.expect("q").len(), 1);
    // Their lead and their webhook event keep their data.
    let mut kept = tables(raw.find_text("Other Person").await);
    kept.sort();
    assert_eq!(
        kept,
        vec!["leads".to_string(), "webhook_outbox".to_string()]
    );
    // Aggregates are unchanged.
    assert_eq!(totals(store.clone()).await, before);
    // The request is logged with counts only.
    assert_eq!(
        store.erasures(0, i64::MAX).await.expect("log"),
        vec![(T0 + DAY, counts)]
    );
    // Erasing again finds nothing and keeps one suppression entry.
    let again = erasure::erase(&store, PERSON, T0 + 2 * DAY)
        .await
        .expect("erase");
    assert_eq!(again, ErasureCounts::default());
    assert_eq!(raw.find_text(digits).await, vec![]);
    assert_eq!(store.suppressions().await.expect("suppressions").len(), 1);
}
store_raw_test!(erasure_leaves_only_a_suppression_hash);

// ---- command line ----------------------------------------------------------

/// Runs the binary on the SQLite store in `dir`.
fn dialler(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dialler"))
        .args(args)
        .env(
            "DIALLER_DATABASE_URL",
            format!("sqlite://{}", dir.join("d.db").display()),
        )
        .env(
            "DIALLER_CAMPAIGNS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns"),
        )
        .env("DIALLER_LOG", "info")
        .output()
        .expect("run dialler")
}

fn ok_stdout(dir: &Path, args: &[&str]) -> String {
    let out = dialler(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test]
async fn token_report_and_erase_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let store = Store::open(&format!("sqlite://{}", d.join("d.db").display()))
        .await
        .expect("open");
    fill_report_store(&store).await;
    store.close().await;

    // Tokens: printed once, never listed, never logged.
    let out = dialler(
        d,
        &["token", "create", "--role", "supervisor", "--label", "ops"],
    );
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert!(token.starts_with("dlr_"), "{token}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));
    let created: serde_json::Value = serde_json::from_str(&ok_stdout(
        d,
        &[
            "token", "create", "--role", "agent", "--agent", "a1", "--json",
        ],
    ))
    .expect("json");
    assert_eq!(
        (created["role"].as_str(), created["agent_id"].as_str()),
        (Some("agent"), Some("a1"))
    );
    assert!(
        !dialler(d, &["token", "create", "--role", "agent"])
            .status
            .success()
    );
    assert!(
        !dialler(d, &["token", "create", "--role", "root"])
            .status
            .success()
    );
    let list = ok_stdout(d, &["token", "list", "--json"]);
    assert!(!list.contains(&token) && list.contains("\"ops\""), "{list}");
    let id = created["id"].as_i64().expect("id").to_string();
    ok_stdout(d, &["token", "revoke", &id, "--by", "carol"]);
    assert!(!dialler(d, &["token", "revoke", &id]).status.success());
    // Provisioning is in the audit log, with who and from where.
    let audit: serde_json::Value =
        serde_json::from_str(&ok_stdout(d, &["audit", "--action", "token.", "--json"]))
            .expect("json");
    let entries = audit["entries"].as_array().expect("entries");
    let acts: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
            )
        })
        .collect();
    let revoked = format!("token {id}");
    assert_eq!(acts.len(), 3, "two creations and one revocation: {audit}");
    assert_eq!(acts[2], ("token.revoke", revoked.as_str()), "{audit}");
    assert_eq!(entries[2]["actor"], "carol");
    assert!(entries[1]["detail"].as_str().unwrap().contains("agent a1"));
    assert!(entries[0]["origin"].as_str().unwrap().starts_with("cli@"));
    assert!(!audit.to_string().contains(&token), "no secret in the log");
    let text = ok_stdout(d, &["audit", "--actor", "carol"]);
    assert!(
        text.contains("token.revoke") && !text.contains("token.create"),
        "{text}"
    );
    assert!(
        !dialler(d, &["audit", "--since", "yesterday"])
            .status
            .success()
    );

    // Report: the hand-worked figures, in three forms.
    let range = [
        "--from",
        "2026-03-02T00:00:00Z",
        "--to",
        "2026-03-04T00:00:00Z",
    ];
    let mut args = vec!["report", "--campaign", "uk-broadband"];
    args.extend(range);
    args.push("--json");
    let r: serde_json::Value = serde_json::from_str(&ok_stdout(d, &args)).expect("json");
    assert_eq!(
        (
            r["attempts"].as_i64(),
            r["abandons"].as_i64(),
            r["calls"].as_i64(),
            r["billed_minutes"].as_i64()
        ),
        (Some(6), Some(2), Some(3), Some(13))
    );
    assert_eq!(r["worst_window"]["abandon_rate"].as_f64(), Some(0.5));
    assert_eq!(r["agents"].as_array().map(Vec::len), Some(2));
    args.pop();
    let text = ok_stdout(d, &args);
    assert!(
        text.contains("attempts") && text.contains("alice"),
        "{text}"
    );
    args.push("--csv");
    let csv = ok_stdout(d, &args);
    assert!(csv.starts_with("metric,value\n"), "{csv}");
    assert!(csv.contains("\nagent_id,calls,") && csv.contains("\nhour_utc,attempts,"));
    assert!(csv.contains("\nattempts,6\n"), "{csv}");
    assert!(
        !dialler(d, &["report", "--campaign", "nope"])
            .status
            .success()
    );

    // Erasure: national format needs a country; the log has no number.
    assert!(
        !dialler(d, &["leads", "erase", "07700 900003"])
            .status
            .success()
    );
    let out = dialler(
        d,
        &[
            "leads",
            "erase",
            "07700 900003",
            "--country",
            "GB",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            counts["leads"].as_i64(),
            counts["attempts"].as_i64(),
            counts["dispositions"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("personal data erased") && !log.contains("900003"),
        "{log}"
    );
    let text = ok_stdout(d, &["leads", "erase", "+44 7700 900003"]);
    assert!(text.starts_with("erased: 0 leads"), "{text}");
}

/// `dialler node recover`: refused while the node beat in the last 10
/// minutes (it may still be on its calls), then, once it has been silent,
/// does what its restart would: the call it left ends as interrupted at
/// its last beat, the person it left unbridged is an abandon, the lead
/// waits for its retry, its agent session is given back; audited.
/// `--force` overrides the wait.
#[tokio::test]
async fn node_recover_closes_what_a_gone_node_left_once_it_is_silent() {
    use dialler::store::NewLead;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let store = Store::open(&format!("sqlite://{}", d.join("d.db").display()))
        .await
        .expect("open");
    let now = chrono::Utc::now().timestamp_millis();
    let camp = dialler::campaign::find(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns")),
        "uk-broadband",
    )
    .expect("campaign");
    let c = store.upsert_campaign(&camp, now).await.expect("campaign");
    let lead = NewLead {
        phone: "+447700900123".into(),
        country: "GB",
        timezones: Some("Europe/London".into()),
        fields: "{}".into(),
        source_line: 2,
    };
    store.insert_leads(c, &[lead], now).await.expect("lead");
    let held = store
        .claim_leads(c, "ghost", 1, now - 120_000, 300_000, 0)
        .await
        .expect("claim");
    let l = &held[0].lead;
    let attempt = common::answered_call(&store, l, "ghost", now - 120_000, now - 110_000).await;
    let beat = now - 60_000;
    store
        .campaign_heartbeat(c, "ghost", beat)
        .await
        .expect("beat");
    store.close().await;

    let out = dialler(d, &["node", "recover", "nobody"]);
    assert!(!out.status.success(), "a node never on record");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node nobody on record"));
    let out = dialler(d, &["node", "recover", "ghost"]);
    assert!(!out.status.success(), "a node that beat a minute ago");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--force") && err.contains("ghost"), "{err}");

    let report: serde_json::Value = serde_json::from_str(&ok_stdout(
        d,
        &[
            "node", "recover", "ghost", "--force", "--by", "ops", "--json",
        ],
    ))
    .expect("json");
    assert_eq!(report["forced"], true);
    assert_eq!(report["campaigns"][0]["campaign"], "uk-broadband");
    assert_eq!(report["campaigns"][0]["interrupted"], 1);

    let store = Store::open(&format!("sqlite://{}", d.join("d.db").display()))
        .await
        .expect("open");
    let a = store
        .attempts_for_lead(l.id)
        .await
        .expect("attempts")
        .into_iter()
        .find(|a| a.id == attempt)
        .expect("attempt");
    assert_eq!(a.outcome.as_deref(), Some("interrupted"));
    assert_eq!(a.ended_at, Some(beat), "at its last beat");
    let lead = store
        .lead_by_phone(c, "+447700900123")
        .await
        .expect("q")
        .expect("lead");
    assert_eq!(lead.status, "retry");
    assert_eq!(
        store
            .ledger_counts(c, now - 200_000, now + 1)
            .await
            .expect("counts")
            .abandons,
        1
    );
    let audit = store
        .audit_query(&dialler::store::AuditFilter {
            since: None,
            until: None,
            actor: None,
            action: Some("node.recover".into()),
            subject: None,
            failed: None,
            after_id: None,
            limit: 10,
        })
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, "ops");
    assert!(audit[0].entry.detail.contains("forced"), "{audit:?}");
    store.close().await;

    // Silent for longer than 10 minutes: no --force needed; nothing left.
    let store = Store::open(&format!("sqlite://{}", d.join("d.db").display()))
        .await
        .expect("open");
    store
        .campaign_heartbeat(c, "ghost", now - 700_000)
        .await
        .expect("beat");
    store.close().await;
    let report: serde_json::Value =
        serde_json::from_str(&ok_stdout(d, &["node", "recover", "ghost", "--json"])).expect("json");
    assert_eq!(report["forced"], false);
    assert_eq!(report["campaigns"].as_array().map(Vec::len), Some(0));
}
