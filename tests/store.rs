//! The store suite: every test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use dialler::campaign::Campaign;
use dialler::store::{
    AttemptEnd, Lead, LedgerCounts, LedgerKind, NewAttempt, NewDisposition, NewLead,
    SCOPE_INTERNAL, Store, StoreError, campaign_scope,
};

fn campaign(name: &str) -> Campaign {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("campaigns")
        .join(format!("{name}.toml"));
    Campaign::load(&path).expect("sample campaign is valid")
}

fn lead(i: u64, tz: Option<&str>) -> NewLead {
    NewLead {
        phone: format!("+91{}", 9_000_000_000 + i),
        country: "IN",
        timezones: tz.map(str::to_string),
        fields: format!(r#"{{"n":"{i}"}}"#),
        source_line: i as i64 + 2,
    }
}

/// The stored row of `lead(i, ..)` in campaign `c`.
/// Sample campaign `name` in the store, at time 0: its id.
async fn upsert(store: &Store, name: &str) -> i64 {
    store
        .upsert_campaign(&campaign(name), 0)
        .await
        .expect("campaign")
}

async fn lead_row(store: &Store, c: i64, i: u64) -> Lead {
    store
        .lead_by_phone(c, &lead(i, None).phone)
        .await
        .expect("q")
        .expect("lead")
}

/// A new attempt on `l`, started at `at` ms.
async fn start(store: &Store, c: i64, l: &Lead, at: i64) -> i64 {
    store
        .start_attempt(&NewAttempt {
            campaign_id: c,
            lead_id: l.id,
            phone: l.phone.clone(),
            started_at: at,
        })
        .await
        .expect("start")
}

async fn campaign_upsert_keeps_one_row_per_name(store: Store) {
    let mut c = campaign("us-home-solar");
    let id = store.upsert_campaign(&c, 1_000).await.expect("insert");
    c.description = "changed".into();
    let again = store.upsert_campaign(&c, 2_000).await.expect("update");
    assert_eq!(id, again);
    assert_eq!(
        store.campaign_id("us-home-solar").await.expect("query"),
        Some(id)
    );
    assert_eq!(store.campaign_id("nope").await.expect("query"), None);
}
store_test!(campaign_upsert_keeps_one_row_per_name);

async fn lead_inserts_skip_duplicates_across_batches_and_imports(store: Store) {
    let id = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    // 2,500 rows span three multi-row statements; 100 repeat within the call.
    let mut leads: Vec<NewLead> = (0..2400).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    leads.extend((0..100).map(|i| lead(i, Some("Asia/Kolkata"))));
    assert_eq!(
        store.insert_leads(id, &leads, 5).await.expect("insert"),
        2400
    );
    // A second import of the same rows adds nothing.
    assert_eq!(store.insert_leads(id, &leads, 6).await.expect("insert"), 0);
    let unknown: Vec<NewLead> = (5000..5003).map(|i| lead(i, None)).collect();
    assert_eq!(
        store.insert_leads(id, &unknown, 7).await.expect("insert"),
        3
    );
    assert_eq!(
        store.lead_status_counts(id).await.expect("counts"),
        vec![("new".to_string(), 2400), ("tz_unknown".to_string(), 3)]
    );
    let l = store
        .lead_by_phone(id, "+919000000007")
        .await
        .expect("query")
        .expect("lead");
    assert_eq!(l.fields, r#"{"n":"7"}"#);
    assert_eq!(l.timezones.as_deref(), Some("Asia/Kolkata"));
    assert_eq!((l.attempts, l.status.as_str()), (0, "new"));
    // The same number in another campaign is a different lead.
    let other = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    assert_eq!(
        store
            .insert_leads(other, &leads[..10], 8)
            .await
            .expect("insert"),
        10
    );
}
store_test!(lead_inserts_skip_duplicates_across_batches_and_imports);

async fn attempts_count_on_the_lead_and_move_it_on(store: Store) {
    let id = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(id, &[lead(1, Some("Europe/London"))], 0)
        .await
        .expect("insert");
    let l = lead_row(&store, id, 1).await;
    let start = |at| NewAttempt {
        campaign_id: id,
        lead_id: l.id,
        phone: l.phone.clone(),
        started_at: at,
    };
    let a1 = store.start_attempt(&start(10_000)).await.expect("start");
    let dialling = store
        .lead_by_phone(id, &l.phone)
        .await
        .expect("q")
        .expect("lead");
    assert_eq!(
        (dialling.attempts, dialling.status.as_str()),
        (1, "dialling")
    );
    store
        .finish_attempt(
            a1,
            &AttemptEnd {
                answered_at: None,
                connected_at: None,
                ended_at: 35_000,
                outcome: "busy".into(),
                sip_code: Some(486),
                sip_codes: None,
                agent_id: None,
                lead_status: "retry".into(),
                next_attempt_at: Some(3_635_000),
            },
        )
        .await
        .expect("finish");
    let a2 = store.start_attempt(&start(4_000_000)).await.expect("start");
    let after = store
        .lead_by_phone(id, &l.phone)
        .await
        .expect("q")
        .expect("lead");
    assert_eq!(after.attempts, 2);
    assert_eq!(after.last_outcome.as_deref(), Some("busy"));
    assert_eq!(after.next_attempt_at, Some(3_635_000));
    let attempts = store.attempts_for_lead(l.id).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (attempts[0].id, attempts[0].attempt_no, attempts[0].sip_code),
        (a1, 1, Some(486))
    );
    assert_eq!(
        (
            attempts[1].id,
            attempts[1].attempt_no,
            attempts[1].outcome.as_deref()
        ),
        (a2, 2, None)
    );
    // Unknown ids are reported, not ignored.
    let missing = store
        .start_attempt(&NewAttempt {
            lead_id: 999_999,
            ..start(0)
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { what: "lead", .. })),
        "{missing:?}"
    );
    let missing = store
        .finish_attempt(
            999_999,
            &AttemptEnd {
                answered_at: None,
                connected_at: None,
                ended_at: 0,
                outcome: "failure".into(),
                sip_code: None,
                sip_codes: None,
                agent_id: None,
                lead_status: "retry".into(),
                next_attempt_at: None,
            },
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}
store_test!(attempts_count_on_the_lead_and_move_it_on);

/// A person opts out (the internal list) while a call to them is out: the
/// call's end does not make the lead callable again.
async fn an_opt_out_during_a_call_outlives_the_calls_end(store: Store) {
    let id = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(id, &[lead(1, Some("Europe/London"))], 0)
        .await
        .expect("insert");
    let l = lead_row(&store, id, 1).await;
    let a = store
        .start_attempt(&NewAttempt {
            campaign_id: id,
            lead_id: l.id,
            phone: l.phone.clone(),
            started_at: 10_000,
        })
        .await
        .expect("start");
    store
        .dnc_add(
            SCOPE_INTERNAL,
            std::slice::from_ref(&l.phone),
            12_000,
            "api",
        )
        .await
        .expect("opt-out");
    store
        .finish_attempt(
            a,
            &AttemptEnd {
                answered_at: None,
                connected_at: None,
                ended_at: 35_000,
                outcome: "no_answer".into(),
                sip_code: Some(487),
                sip_codes: None,
                agent_id: None,
                lead_status: "retry".into(),
                next_attempt_at: Some(3_635_000),
            },
        )
        .await
        .expect("finish");
    let after = lead_row(&store, id, 1).await;
    assert_eq!(after.status, "dnc");
    assert_eq!(
        store.attempts_for_lead(l.id).await.expect("q")[0]
            .outcome
            .as_deref(),
        Some("no_answer")
    );
}
store_test!(an_opt_out_during_a_call_outlives_the_calls_end);

async fn disposition_totals_count_contacts_conversions_and_revenue(store: Store) {
    let id = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let leads: Vec<_> = (1..=5).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store.insert_leads(id, &leads, 0).await.expect("insert");
    // One call per disposition: a call has at most one.
    let mut attempts = Vec::new();
    for i in 1..=5 {
        let l = lead_row(&store, id, i).await;
        attempts.push(start(&store, id, &l, 0).await);
    }
    let d = |code: &str, conversion, contact, amount, at: i64| NewDisposition {
        attempt_id: attempts[(at / 100 - 1) as usize],
        campaign_id: id,
        agent_id: "agent-7".into(),
        code: code.into(),
        conversion,
        contact,
        dnc: false,
        callback_at: None,
        amount_minor: amount,
        wrapup_ms: Some(12_000),
        created_at: at,
        notes: None,
        personal: false,
    };
    for x in [
        d("RENEWED", true, true, Some(1_250_000), 100),
        d("RENEWED", true, true, Some(730_050), 200),
        d("NOT_INTERESTED", false, true, None, 300),
        d("WRONG_NUMBER", false, false, None, 400),
        d("RENEWED", true, true, Some(999), 500),
    ] {
        store.record_disposition(&x).await.expect("record");
    }
    let t = store
        .disposition_totals(id, 100, 500)
        .await
        .expect("totals");
    assert_eq!(
        (t.total, t.contacts, t.conversions, t.revenue_minor),
        (4, 3, 2, 1_980_050)
    );
}
store_test!(disposition_totals_count_contacts_conversions_and_revenue);

/// A call has one disposition, whichever node records it first: a second
/// is refused by the store (not a second conversion); and an opt-out for a
/// call whose person was erased during the wrap-up is recorded (erasure
/// already keeps the number from every dial), not an error.
async fn a_call_has_one_disposition_and_an_erased_persons_opt_out_is_recorded(store: Store) {
    let id = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let leads: Vec<_> = (1..=2).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store.insert_leads(id, &leads, 0).await.expect("insert");
    let l1 = lead_row(&store, id, 1).await;
    let l2 = lead_row(&store, id, 2).await;
    let a1 = start(&store, id, &l1, 0).await;
    let a2 = start(&store, id, &l2, 0).await;
    let d = |attempt, code: &str, conversion, dnc| NewDisposition {
        attempt_id: attempt,
        campaign_id: id,
        agent_id: "agent-7".into(),
        code: code.into(),
        conversion,
        contact: true,
        dnc,
        callback_at: None,
        amount_minor: conversion.then_some(1_000),
        wrapup_ms: None,
        created_at: 100,
        notes: None,
        personal: false,
    };
    store
        .record_disposition(&d(a1, "RENEWED", true, false))
        .await
        .expect("first");
    let again = store
        .record_disposition(&d(a1, "RENEWED", true, false))
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyDisposed { attempt }) if attempt == a1),
        "{again:?}"
    );
    let t = store
        .disposition_totals(id, 0, 1_000)
        .await
        .expect("totals");
    assert_eq!((t.total, t.conversions, t.revenue_minor), (1, 1, 1_000));
    store
        .erase_number(&l2.phone, "hash-2", 50)
        .await
        .expect("erase");
    store
        .record_disposition(&d(a2, "DNC", false, true))
        .await
        .expect("an erased person's opt-out");
    let t = store
        .disposition_totals(id, 0, 1_000)
        .await
        .expect("totals");
    assert_eq!(t.total, 2);
}
store_test!(a_call_has_one_disposition_and_an_erased_persons_opt_out_is_recorded);

async fn ledger_windows_are_half_open_and_per_campaign(store: Store) {
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    let b = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    for at in [1_000, 2_000, 3_000, 4_000] {
        store
            .ledger_append(a, None, LedgerKind::HumanAnswer, at)
            .await
            .expect("append");
    }
    store
        .ledger_append(a, None, LedgerKind::Abandon, 2_000)
        .await
        .expect("append");
    store
        .ledger_append(a, None, LedgerKind::Abandon, 4_000)
        .await
        .expect("append");
    store
        .ledger_append(b, None, LedgerKind::Abandon, 2_500)
        .await
        .expect("append");
    assert_eq!(
        store.ledger_counts(a, 2_000, 4_000).await.expect("counts"),
        LedgerCounts {
            human_answers: 2,
            abandons: 1
        }
    );
    assert_eq!(
        store.ledger_counts(a, 0, 4_001).await.expect("counts"),
        LedgerCounts {
            human_answers: 4,
            abandons: 2
        }
    );
    assert_eq!(
        store.ledger_counts(b, 0, 10_000).await.expect("counts"),
        LedgerCounts {
            human_answers: 0,
            abandons: 1
        }
    );
    assert_eq!(
        store.ledger_counts(a, 5_000, 9_000).await.expect("counts"),
        LedgerCounts::default()
    );
}
store_test!(ledger_windows_are_half_open_and_per_campaign);

#[tokio::test]
async fn opening_twice_applies_migrations_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let s = Store::open(&url)
        .await
        .expect("first open creates the file");
    let id = s
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    s.close().await;
    let s = Store::open(&url).await.expect("second open");
    assert_eq!(s.campaign_id("uk-broadband").await.expect("q"), Some(id));
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::BadUrl(_))
    ));
}

async fn a_dnc_disposition_blocks_the_number_in_every_campaign(store: Store) {
    let a = upsert(&store, "in-insurance-renewal").await;
    let b = upsert(&store, "us-home-solar").await;
    store
        .insert_leads(
            a,
            &[lead(1, Some("Asia/Kolkata")), lead(2, Some("Asia/Kolkata"))],
            0,
        )
        .await
        .expect("insert");
    store
        .insert_leads(b, &[lead(1, Some("Asia/Kolkata"))], 0)
        .await
        .expect("insert");
    let l = lead_row(&store, a, 1).await;
    let attempt = start(&store, a, &l, 0).await;
    store
        .record_disposition(&NewDisposition {
            attempt_id: attempt,
            campaign_id: a,
            agent_id: "a1".into(),
            code: "DNC".into(),
            conversion: false,
            contact: true,
            dnc: true,
            callback_at: None,
            amount_minor: None,
            wrapup_ms: None,
            created_at: 42,
            notes: None,
            personal: false,
        })
        .await
        .expect("record");
    assert_eq!(
        store.dnc_list(SCOPE_INTERNAL).await.expect("list"),
        vec!["+919000000001".to_string()]
    );
    for c in [a, b] {
        let l = lead_row(&store, c, 1).await;
        assert_eq!(l.status, "dnc", "campaign {c}");
    }
    let other = lead_row(&store, a, 2).await;
    assert_eq!(other.status, "new");
}
store_test!(a_dnc_disposition_blocks_the_number_in_every_campaign);

/// A key pressed during the abandoned-call message (47 CFR
/// 64.1200(a)(7)(i)(B)) lists the number on the internal list as the
/// person's own request, over an import's entry, and marks its leads in
/// every campaign `dnc`; the act is audited with the number masked. For a
/// person erased since, it is audited and lists nothing (erasure already
/// keeps the number from every dial); an unknown call is refused whole.
async fn a_key_press_opt_out_lists_the_number_everywhere_and_is_audited(store: Store) {
    let a = upsert(&store, "in-insurance-renewal").await;
    let b = upsert(&store, "us-home-solar").await;
    let leads = [lead(1, Some("Asia/Kolkata")), lead(2, Some("Asia/Kolkata"))];
    store.insert_leads(a, &leads, 0).await.expect("insert");
    store.insert_leads(b, &leads[..1], 0).await.expect("insert");
    let number = "+919000000001".to_string();
    store
        .dnc_add(
            SCOPE_INTERNAL,
            std::slice::from_ref(&number),
            1,
            dialler::store::SOURCE_IMPORT,
        )
        .await
        .expect("import");
    let l1 = lead_row(&store, a, 1).await;
    let l2 = lead_row(&store, a, 2).await;
    let a1 = start(&store, a, &l1, 0).await;
    let a2 = start(&store, a, &l2, 0).await;
    assert!(
        !store
            .opt_out_by_key(a2 + 100, 40, "n1")
            .await
            .expect("unknown")
    );
    assert!(store.opt_out_by_key(a1, 42, "n1").await.expect("opt out"));
    // A second key in the same call (or the write retried) is the same
    // opt-out: no second audit row or CRM event.
    assert!(store.opt_out_by_key(a1, 43, "n1").await.expect("again"));
    assert_eq!(
        store.dnc_list(SCOPE_INTERNAL).await.expect("list"),
        vec![number.clone()]
    );
    for c in [a, b] {
        assert_eq!(lead_row(&store, c, 1).await.status, "dnc", "campaign {c}");
    }
    assert_eq!(lead_row(&store, a, 2).await.status, "dialling");
    store
        .erase_number(&l2.phone, "hash-2", 50)
        .await
        .expect("erase");
    assert!(store.opt_out_by_key(a2, 60, "n1").await.expect("erased"));
    assert_eq!(store.dnc_list(SCOPE_INTERNAL).await.expect("list").len(), 1);
    let log: Vec<_> = store
        .audit_log()
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "dnc.key_press")
        .collect();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].at, log[0].actor.as_str(), log[0].subject.as_str()),
        (42, "called party", "internal ********0001")
    );
    assert!(log[0].detail.contains(&a1.to_string()), "{log:?}");
    assert_eq!(log[1].subject, "internal (erased)");
    assert_eq!(log[0].origin, "node n1");
}
store_test!(a_key_press_opt_out_lists_the_number_everywhere_and_is_audited);

/// A callback disposition puts the lead back for the agreed time, and the
/// call's own end, written after it, does not undo that.
async fn a_callback_disposition_reschedules_the_lead_for_the_agreed_time(store: Store) {
    let a = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(a, &[lead(7, Some("America/New_York"))], 0)
        .await
        .expect("insert");
    let l = lead_row(&store, a, 7).await;
    let attempt = start(&store, a, &l, 1_000).await;
    let callback_at = 86_400_000;
    store
        .record_disposition(&NewDisposition {
            attempt_id: attempt,
            campaign_id: a,
            agent_id: "a1".into(),
            code: "CALLBACK".into(),
            conversion: false,
            contact: true,
            dnc: false,
            callback_at: Some(callback_at),
            amount_minor: None,
            wrapup_ms: Some(3_000),
            created_at: 60_000,
            notes: None,
            personal: false,
        })
        .await
        .expect("record");
    store
        .finish_attempt(
            attempt,
            &AttemptEnd {
                answered_at: Some(5_000),
                connected_at: Some(5_100),
                ended_at: 50_000,
                outcome: "connected".into(),
                sip_code: Some(200),
                sip_codes: None,
                agent_id: Some("a1".into()),
                lead_status: "done".into(),
                next_attempt_at: None,
            },
        )
        .await
        .expect("finish");
    let l = lead_row(&store, a, 7).await;
    assert_eq!(l.status, "retry");
    assert_eq!(l.next_attempt_at, Some(callback_at));
    assert_eq!(l.last_outcome.as_deref(), Some("callback"));
}
store_test!(a_callback_disposition_reschedules_the_lead_for_the_agreed_time);

/// Crash recovery for a node: its calls in flight end `interrupted`, their
/// leads wait until the retry time (a lead whose person was put through
/// to an agent is done, as after any connected call), a person who
/// answered and was never
/// put through enters the ledger as an abandon (once, however often
/// recovery runs), and another node's calls are left alone.
async fn recovery_closes_a_nodes_calls_and_counts_an_unbridged_answer_as_abandoned(store: Store) {
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let leads: Vec<_> = (20..23).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store.insert_leads(c, &leads, 0).await.expect("insert");
    // Calls are placed on leads their node holds: 20 and 21 on n1, 22 on
    // n2.
    for (node, n) in [("n1", 2), ("n2", 1)] {
        let held = store
            .claim_leads(c, node, n, 1_000, 60_000, 0)
            .await
            .expect("claim");
        assert_eq!(held.len(), n as usize);
    }
    let mut attempts = Vec::new();
    for (i, node) in [(20, "n1"), (21, "n1"), (22, "n2")] {
        let l = lead_row(&store, c, i).await;
        // Every call was answered by a person.
        let id = common::answered_call(&store, &l, node, 1_000, 2_000).await;
        attempts.push((id, l.id));
    }
    // The second was put through to an agent before the crash.
    store
        .attempt_progress(attempts[1].0, None, Some(2_100), Some("a1"))
        .await
        .expect("bridged");
    for _ in 0..2 {
        let n = store
            .recover_node(c, "n1", 10_000, 3_610_000)
            .await
            .expect("recover");
        assert!(n <= 2);
    }
    assert_eq!(
        store.ledger_counts(c, 0, 20_000).await.expect("counts"),
        LedgerCounts {
            human_answers: 3,
            abandons: 1
        }
    );
    for (i, (attempt, lead_id)) in attempts.iter().enumerate() {
        let a = store
            .attempts_for_lead(*lead_id)
            .await
            .expect("attempts")
            .into_iter()
            .find(|a| a.id == *attempt)
            .expect("attempt");
        let l = lead_row(&store, c, 20 + i as u64).await;
        if i == 0 {
            assert_eq!(a.outcome.as_deref(), Some("interrupted"), "attempt {i}");
            assert_eq!(a.ended_at, Some(10_000));
            assert_eq!(l.status, "retry");
            assert_eq!(l.next_attempt_at, Some(3_610_000));
        } else if i == 1 {
            // Put through to an agent: the person was reached, so the
            // crash does not make them a lead to call again.
            assert_eq!(a.outcome.as_deref(), Some("interrupted"), "attempt {i}");
            assert_eq!(a.ended_at, Some(10_000));
            assert_eq!(l.status, "done");
            assert_eq!(l.next_attempt_at, None);
        } else {
            assert_eq!(a.outcome, None, "another node's call is left alone");
            assert_eq!(l.status, "dialling");
        }
    }
}
store_test!(recovery_closes_a_nodes_calls_and_counts_an_unbridged_answer_as_abandoned);

/// A node that stops beating may never restart to run its recovery: a
/// live node enters its unbridged answers in the ledger as abandons once
/// it has been silent for the lapse (not before), once however often it
/// looks, and not its bridged calls, nor its own, nor those of a node that
/// still beats; the silent node's attempts and leads are left for it.
async fn a_live_node_counts_the_unbridged_answers_of_a_node_gone_silent(store: Store) {
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let leads: Vec<_> = (30..34).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store.insert_leads(c, &leads, 0).await.expect("insert");
    for (node, n) in [("n1", 2), ("n2", 1), ("n3", 1)] {
        let held = store
            .claim_leads(c, node, n, 1_000, 60_000, 0)
            .await
            .expect("claim");
        assert_eq!(held.len(), n as usize);
    }
    // 30: n1, answered, never bridged. 31: n1, answered and bridged.
    // 32: n2 (the live node), answered, not yet bridged. 33: n3 (beats),
    // answered, not yet bridged.
    let mut attempts = Vec::new();
    for (i, node, bridged) in [
        (30, "n1", false),
        (31, "n1", true),
        (32, "n2", false),
        (33, "n3", false),
    ] {
        let l = lead_row(&store, c, i).await;
        let id = common::answered_call(&store, &l, node, 1_000, 2_000).await;
        if bridged {
            store
                .attempt_progress(id, None, Some(2_500), Some("a1"))
                .await
                .expect("bridged");
        }
        attempts.push(id);
    }
    for node in ["n1", "n2", "n3"] {
        store
            .campaign_heartbeat(c, node, 3_000)
            .await
            .expect("beat");
    }
    // n1 dies; n3 keeps beating.
    store
        .campaign_heartbeat(c, "n3", 20_000)
        .await
        .expect("beat");
    // 9 s after n1's last beat, with a 10 s lapse: too soon.
    let counts = |s: &Store| {
        let s = s.clone();
        async move { s.ledger_counts(c, 0, 60_000).await.expect("counts") }
    };
    assert_eq!(
        store
            .ledger_take_over_lapsed(c, "n2", 12_000 - 10_000)
            .await
            .expect("take over"),
        0
    );
    assert_eq!(counts(&store).await.abandons, 0);
    // 11 s after: n1's unbridged answer is an abandon, at its answer time,
    // once.
    for expect in [1, 0] {
        assert_eq!(
            store
                .ledger_take_over_lapsed(c, "n2", 14_000 - 10_000)
                .await
                .expect("take over"),
            expect
        );
    }
    assert_eq!(
        counts(&store).await,
        LedgerCounts {
            human_answers: 4,
            abandons: 1
        }
    );
    assert_eq!(
        store
            .ledger_counts(c, 2_000, 2_001)
            .await
            .expect("counts")
            .abandons,
        1,
        "dated at the answer"
    );
    // Only the ledger is touched: n1's call and lead wait for n1.
    let l30 = lead_row(&store, c, 30).await;
    assert_eq!(l30.status, "dialling");
    let a30 = store.attempts_for_lead(l30.id).await.expect("attempts");
    assert!(
        a30.iter()
            .any(|a| a.id == attempts[0] && a.outcome.is_none())
    );
    // n1's restart recovery does not count it again.
    store
        .recover_node(c, "n1", 3_000, 3_603_000)
        .await
        .expect("recover");
    assert_eq!(counts(&store).await.abandons, 1);
}
store_test!(a_live_node_counts_the_unbridged_answers_of_a_node_gone_silent);

/// Every live node takes over a silent node's unbridged answers, at once
/// as it may be, and the silent node's own recovery may run beside them:
/// the answer is entered in the ledger as one abandon, not one per node.
async fn nodes_taking_over_at_once_count_a_lapsed_answer_once(store: Store) {
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(c, &[lead(40, Some("Asia/Kolkata"))], 0)
        .await
        .expect("insert");
    let held = store
        .claim_leads(c, "n1", 1, 1_000, 60_000, 0)
        .await
        .expect("claim");
    assert_eq!(held.len(), 1);
    let l = lead_row(&store, c, 40).await;
    common::answered_call(&store, &l, "n1", 1_000, 2_000).await;
    store
        .campaign_heartbeat(c, "n1", 3_000)
        .await
        .expect("beat");
    let mut tasks = Vec::new();
    for i in 2..10 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.ledger_take_over_lapsed(c, &format!("n{i}"), 4_000).await
        }));
    }
    let s = store.clone();
    let own = tokio::spawn(async move { s.recover_node(c, "n1", 30_000, 60_000).await });
    let mut entered = 0;
    for t in tasks {
        entered += t.await.expect("task").expect("take over");
    }
    own.await.expect("task").expect("recover");
    assert!(entered <= 1, "{entered} nodes entered the abandon");
    assert_eq!(
        store.ledger_counts(c, 0, 60_000).await.expect("counts"),
        LedgerCounts {
            human_answers: 1,
            abandons: 1
        }
    );
}
store_test!(nodes_taking_over_at_once_count_a_lapsed_answer_once);

/// A PostgreSQL test store with the uk-broadband campaign, and raw access
/// to its database; `None` (skip) without PostgreSQL outside CI.
async fn pg_campaign() -> Option<(common::PgSchema, Store, i64, sqlx::PgPool)> {
    let pg = common::pg_store().await?;
    let store = pg.store.clone();
    let c = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    let common::RawDb::Postgres(raw) = pg.raw().await else {
        unreachable!()
    };
    Some((pg, store, c, raw))
}

/// Another node's abandon in campaign `c` whose insert has taken its id but
/// not committed: the open transaction, and the id.
async fn abandon_left_uncommitted(
    raw: &sqlx::PgPool,
    c: i64,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, i64) {
    let mut slow = raw.begin().await.expect("begin");
    let slow_id: i64 = sqlx::query_scalar(
        "INSERT INTO abandon_ledger (campaign_id, kind, at) VALUES ($1, 'abandon', 5000) RETURNING id",
    )
    .bind(c)
    .fetch_one(&mut *slow)
    .await
    .expect("insert");
    (slow, slow_id)
}

/// On PostgreSQL a ledger row's id is taken at its insert and the row is
/// seen at its commit, so rows can appear out of id order: a node reading
/// the other nodes' rows after the highest id it saw would miss one that
/// commits after a higher one. The feed the cluster sync reads through
/// takes it, once.
#[tokio::test]
async fn a_ledger_row_committed_after_a_higher_one_still_reaches_the_other_nodes() {
    let Some((pg, store, c, raw)) = pg_campaign().await else {
        return;
    };
    let mut feed = dialler::store::LedgerFeed::new(store.ledger_last_id(c).await.expect("last"));
    // Node A's abandon takes its id, and its transaction has not committed
    // yet when node B's answer (a higher id) commits.
    let (slow, slow_id) = abandon_left_uncommitted(&raw, c).await;
    store
        .ledger_append(c, None, LedgerKind::HumanAnswer, 6_000)
        .await
        .expect("append");
    let rows = store
        .ledger_rows_after(c, feed.floor(), "n3")
        .await
        .expect("rows");
    let first: Vec<_> = feed.take(rows, 10_000).iter().map(|r| r.kind).collect();
    assert_eq!(first, [LedgerKind::HumanAnswer]);
    slow.commit().await.expect("commit");
    let rows = store
        .ledger_rows_after(c, feed.floor(), "n3")
        .await
        .expect("rows");
    let late = feed.take(rows, 11_000);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!((late[0].id, late[0].kind), (slow_id, LedgerKind::Abandon));
    let rows = store
        .ledger_rows_after(c, feed.floor(), "n3")
        .await
        .expect("rows");
    assert!(feed.take(rows, 12_000).is_empty(), "each row once");
    raw.close().await;
    pg.drop_schema().await;
}

/// The same at a node's start: its ledger is rebuilt from the committed
/// rows while another node's abandon, with a lower id than the last one
/// read, has not committed. The feed the node resumes with takes that row
/// when it commits, and none of the rebuilt ones again.
#[tokio::test]
async fn a_ledger_row_uncommitted_when_a_node_rebuilds_its_ledger_still_reaches_it() {
    let Some((pg, store, c, raw)) = pg_campaign().await else {
        return;
    };
    store
        .ledger_append(c, None, LedgerKind::HumanAnswer, 4_000)
        .await
        .expect("append");
    let (slow, slow_id) = abandon_left_uncommitted(&raw, c).await;
    store
        .ledger_append(c, None, LedgerKind::HumanAnswer, 6_000)
        .await
        .expect("append");
    // The rebuild, as a starting node's recovery reads it.
    let last = store.ledger_last_id(c).await.expect("last");
    assert!(last > slow_id);
    let rebuilt = store
        .ledger_ids_between(c, last - dialler::store::LEDGER_RESUME_IDS, last)
        .await
        .expect("ids");
    assert_eq!(rebuilt.len(), 2, "the uncommitted row is not read");
    let mut feed = dialler::store::LedgerFeed::resuming(last, rebuilt, 10_000);
    let rows = store
        .ledger_rows_after(c, feed.floor(), "n3")
        .await
        .expect("rows");
    assert!(feed.take(rows, 10_500).is_empty(), "rebuilt rows not again");
    slow.commit().await.expect("commit");
    let rows = store
        .ledger_rows_after(c, feed.floor(), "n3")
        .await
        .expect("rows");
    let late = feed.take(rows, 11_000);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!((late[0].id, late[0].kind), (slow_id, LedgerKind::Abandon));
    raw.close().await;
    pg.drop_schema().await;
}

/// And a row that commits between the two reads of a node's start (the
/// ids up to the last one, then the rebuild itself): the rebuild counts
/// it, and the feed, resumed with the rebuild's own ids as recovery does,
/// does not take it again (counted twice, a human answer would lower the
/// abandonment rate).
#[tokio::test]
async fn a_ledger_row_committing_during_a_nodes_rebuild_is_counted_once() {
    let Some((pg, store, c, raw)) = pg_campaign().await else {
        return;
    };
    store
        .ledger_append(c, None, LedgerKind::HumanAnswer, 4_000)
        .await
        .expect("append");
    let (slow, slow_id) = abandon_left_uncommitted(&raw, c).await;
    store
        .ledger_append(c, None, LedgerKind::HumanAnswer, 6_000)
        .await
        .expect("append");
    let last = store.ledger_last_id(c).await.expect("last");
    let mut held = store
        .ledger_ids_between(c, last - dialler::store::LEDGER_RESUME_IDS, last)
        .await
        .expect("ids");
    assert!(!held.contains(&slow_id));
    slow.commit().await.expect("commit");
    let (ledger, rebuilt) = store
        .ledger_with_ids(
            c,
            std::time::Duration::from_secs(86_400),
            dialler::clock::Millis(10_000),
        )
        .await
        .expect("rebuild");
    assert_eq!(ledger.counts(), (2, 1), "the rebuild counts the late row");
    assert!(rebuilt.contains(&slow_id));
    held.extend(rebuilt);
    held.sort_unstable();
    held.dedup();
    let mut feed = dialler::store::LedgerFeed::resuming(last, held, 10_000);
    let rows = store
        .ledger_rows_after(c, feed.floor(), "n3")
        .await
        .expect("rows");
    assert!(feed.take(rows, 10_500).is_empty(), "no row twice");
    raw.close().await;
    pg.drop_schema().await;
}

/// A node that held a lead past its claim's lease (cut off from the store,
/// then back) neither dials it once another node has taken it, nor gives
/// that node's claim back, nor refuses it; the node that holds it dials.
async fn a_lead_another_node_took_over_is_not_dialled_released_or_refused_by_the_first(
    store: Store,
) {
    const LEASE: i64 = 60_000;
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(c, &[lead(1, Some("Asia/Kolkata"))], 0)
        .await
        .expect("leads");
    let l = lead_row(&store, c, 1).await;
    let first = store
        .claim_leads(c, "n1", 1, 1_000, LEASE, 0)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    // n1 goes quiet past the lease (no heartbeat): n2 takes the lead.
    let second = store
        .claim_leads(c, "n2", 1, 1_000 + LEASE + 1, LEASE, 0)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].lead.id, l.id);
    let attempt = NewAttempt {
        campaign_id: c,
        lead_id: l.id,
        phone: l.phone.clone(),
        started_at: 1_000 + LEASE + 2,
    };
    // n1 comes back with the lead in its hopper.
    let e = store
        .start_attempt_on(&attempt, "n1", None)
        .await
        .expect_err("n1 no longer holds the lead");
    assert!(
        matches!(&e, StoreError::ClaimLost { lead, node } if *lead == l.id && node == "n1"),
        "{e}"
    );
    store.release_lead(l.id, "n1").await.expect("release");
    store
        .refuse_lead(l.id, "n1", None, "outside_hours")
        .await
        .expect("refuse");
    let now = lead_row(&store, c, 1).await;
    assert_eq!(now.status, "claimed", "n2's claim stands");
    assert_eq!(now.attempts, 0, "nothing was dialled");
    // n2 holds it and dials.
    store
        .start_attempt_on(&attempt, "n2", None)
        .await
        .expect("n2 dials");
    let now = lead_row(&store, c, 1).await;
    assert_eq!((now.status.as_str(), now.attempts), ("dialling", 1));
    // A lead that does not exist is said so.
    let e = store
        .start_attempt_on(
            &NewAttempt {
                lead_id: l.id + 1_000,
                ..attempt
            },
            "n2",
            None,
        )
        .await
        .expect_err("no such lead");
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
}
store_test!(a_lead_another_node_took_over_is_not_dialled_released_or_refused_by_the_first);

async fn dnc_lists_add_remove_and_scope(store: Store) {
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(
            a,
            &[
                lead(1, Some("Europe/London")),
                lead(2, Some("Europe/London")),
            ],
            0,
        )
        .await
        .expect("insert");
    let scope = campaign_scope("uk-broadband");
    let phones = vec!["+919000000001".to_string(), "+919000000003".to_string()];
    assert_eq!(
        store
            .dnc_add(&scope, &phones, 1, "import")
            .await
            .expect("add"),
        2
    );
    assert_eq!(
        store
            .dnc_add(&scope, &phones, 2, "import")
            .await
            .expect("add"),
        0
    );
    assert_eq!(lead_row(&store, a, 1).await.status, "dnc");
    assert!(
        store
            .dnc_list(SCOPE_INTERNAL)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .dnc_remove(&scope, &phones[..1])
            .await
            .expect("remove"),
        1
    );
    assert_eq!(
        store.dnc_list(&scope).await.expect("list"),
        vec!["+919000000003".to_string()]
    );
}
store_test!(dnc_lists_add_remove_and_scope);

async fn ledger_events_rebuild_in_order(store: Store) {
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    store
        .ledger_append(a, None, LedgerKind::Abandon, 30)
        .await
        .expect("append");
    store
        .ledger_append(a, None, LedgerKind::HumanAnswer, 10)
        .await
        .expect("append");
    store
        .ledger_append(a, None, LedgerKind::HumanAnswer, 30)
        .await
        .expect("append");
    let events = store.ledger_events(a, 0, 100).await.expect("events");
    assert_eq!(
        events,
        vec![
            (10, LedgerKind::HumanAnswer),
            (30, LedgerKind::Abandon),
            (30, LedgerKind::HumanAnswer)
        ]
    );
}
store_test!(ledger_events_rebuild_in_order);

/// Loaded history (attempts without leads, their dispositions, ledger
/// rows) reads back as what a starting runner's estimators learn from:
/// oldest first, interrupted attempts left out, handle time from bridge to
/// disposition, the limit counted from the newest.
async fn pacing_history_reads_back_loaded_history(store: Store) {
    use dialler::outcome::Outcome;
    use dialler::store::{PastAttemptRow, PastDispositionRow};
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    let row = |start: i64, outcome: Outcome, answered: Option<i64>| PastAttemptRow {
        started_at: start,
        answered_at: answered,
        connected_at: answered.filter(|_| outcome == Outcome::Connected),
        ended_at: start + 30_000,
        outcome,
        disposition: (outcome == Outcome::Connected).then(|| PastDispositionRow {
            agent_id: "simulated".into(),
            code: "SOLD".into(),
            conversion: true,
            contact: true,
            created_at: answered.unwrap_or(0) + 60_000,
            wrapup_ms: 30_000,
        }),
    };
    store
        .insert_history(
            a,
            &[
                row(0, Outcome::NoAnswer, None),
                row(1_000, Outcome::Connected, Some(9_000)),
                row(2_000, Outcome::Interrupted, None),
                row(3_000, Outcome::Abandoned, Some(4_500)),
                row(400_000, Outcome::Busy, None),
            ],
            &[
                (9_000, LedgerKind::HumanAnswer),
                (4_500, LedgerKind::HumanAnswer),
                (6_500, LedgerKind::Abandon),
            ],
        )
        .await
        .expect("history");
    let h = store.pacing_history(a, 100_000, 10).await.expect("read");
    assert_eq!(
        h.attempts,
        vec![(false, 30.0), (true, 8.0), (true, 1.5)],
        "before 100 s, oldest first, the interrupted one left out"
    );
    assert_eq!(h.handles, vec![60.0]);
    let h = store.pacing_history(a, 1_000_000, 2).await.expect("read");
    assert_eq!(
        h.attempts,
        vec![(true, 1.5), (false, 30.0)],
        "the newest two"
    );
    assert_eq!(
        store.ledger_events(a, 0, 100_000).await.expect("events"),
        vec![
            (4_500, LedgerKind::HumanAnswer),
            (6_500, LedgerKind::Abandon),
            (9_000, LedgerKind::HumanAnswer)
        ]
    );
}
store_test!(pacing_history_reads_back_loaded_history);

/// The recall rules are per person: an abandoned call (or one that reached
/// a machine) in one campaign stops another campaign dialling the number
/// on its next claim, and an abandon counts
/// from the ledger whatever the attempt's final status (a crash-recovered
/// call is `interrupted`, not `abandoned`).
async fn a_claim_sees_abandons_of_the_number_in_other_campaigns(store: Store) {
    let mut other = campaign("in-insurance-renewal");
    other.name = "in-second".into();
    let a = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("a");
    let b = store.upsert_campaign(&other, 0).await.expect("b");
    for c in [a, b] {
        store
            .insert_leads(
                c,
                &[lead(1, Some("Asia/Kolkata")), lead(2, Some("Asia/Kolkata"))],
                0,
            )
            .await
            .expect("leads");
    }
    let l = lead_row(&store, a, 1).await;
    let attempt = store
        .start_attempt(&NewAttempt {
            campaign_id: a,
            lead_id: l.id,
            phone: l.phone.clone(),
            started_at: 1_000,
        })
        .await
        .expect("attempt");
    store
        .ledger_append(a, Some(attempt), LedgerKind::HumanAnswer, 5_000)
        .await
        .expect("ledger");
    store
        .ledger_append(a, Some(attempt), LedgerKind::Abandon, 7_000)
        .await
        .expect("ledger");
    // The other number reached a machine in campaign a (the UK's 24
    // hours after a machine are per number too).
    let m = lead_row(&store, a, 2).await;
    let machine = store
        .start_attempt(&NewAttempt {
            campaign_id: a,
            lead_id: m.id,
            phone: m.phone.clone(),
            started_at: 2_000,
        })
        .await
        .expect("attempt");
    store
        .finish_attempt(
            machine,
            &AttemptEnd {
                answered_at: Some(8_000),
                connected_at: None,
                ended_at: 9_000,
                outcome: "machine".into(),
                sip_code: Some(200),
                sip_codes: None,
                agent_id: None,
                lead_status: "retry".into(),
                next_attempt_at: Some(90_000_000),
            },
        )
        .await
        .expect("finish");
    let claimed = store
        .claim_leads(b, "n1", 10, 60_000, 30_000, 0)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let now = dialler::clock::Millis(60_000);
    for c in &claimed {
        let r = c.record(now).expect("record");
        let want = (c.lead.phone == l.phone).then(|| dialler::clock::Millis(7_000).utc());
        assert_eq!(r.last_abandon_at, want, "{}", c.lead.phone);
        let want = (c.lead.phone == m.phone).then(|| dialler::clock::Millis(9_000).utc());
        assert_eq!(r.last_machine_at, want, "{}", c.lead.phone);
    }
}
store_test!(a_claim_sees_abandons_of_the_number_in_other_campaigns);

/// A callback agreed with the customer is claimed before new leads once
/// due (new leads have no next-attempt time and used to sort first).
/// A call to lead `l` put through and dispositioned `CALLBACK` for `at`.
async fn book_callback(store: &Store, campaign_id: i64, l: &Lead, at: i64) {
    book_callback_kept(store, campaign_id, l, at, false).await
}

/// Books a callback for `agent-1`, kept for that agent when `personal`.
async fn book_callback_kept(store: &Store, campaign_id: i64, l: &Lead, at: i64, personal: bool) {
    let attempt = store
        .start_attempt(&NewAttempt {
            campaign_id,
            lead_id: l.id,
            phone: l.phone.clone(),
            started_at: 1_000,
        })
        .await
        .expect("attempt");
    store
        .finish_attempt(
            attempt,
            &AttemptEnd {
                answered_at: Some(5_000),
                connected_at: Some(5_500),
                ended_at: 65_000,
                outcome: "connected".into(),
                sip_code: Some(200),
                sip_codes: None,
                agent_id: Some("agent-1".into()),
                lead_status: "done".into(),
                next_attempt_at: None,
            },
        )
        .await
        .expect("finish");
    store
        .record_disposition(&NewDisposition {
            attempt_id: attempt,
            campaign_id,
            agent_id: "agent-1".into(),
            code: "CALLBACK".into(),
            conversion: false,
            contact: true,
            dnc: false,
            callback_at: Some(at),
            amount_minor: None,
            wrapup_ms: Some(5_000),
            created_at: 70_000,
            notes: None,
            personal,
        })
        .await
        .expect("disposition");
}

async fn due_callbacks_are_claimed_before_new_leads(store: Store) {
    let id = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let leads: Vec<NewLead> = (1..=5).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store.insert_leads(id, &leads, 0).await.expect("leads");
    let l = lead_row(&store, id, 5).await;
    book_callback(&store, id, &l, 3_600_000).await;
    // Before the agreed time: not claimed at all.
    let early = store
        .claim_leads(id, "n1", 1, 600_000, 30_000, 0)
        .await
        .expect("claim");
    assert_ne!(early[0].lead.id, l.id);
    store
        .release_lead(early[0].lead.id, "n1")
        .await
        .expect("release");
    // Once due: first, before the new leads.
    let due = store
        .claim_leads(id, "n1", 2, 3_600_000, 30_000, 0)
        .await
        .expect("claim");
    assert_eq!(
        due[0].lead.id,
        l.id,
        "{:?}",
        due.iter().map(|c| c.lead.id).collect::<Vec<_>>()
    );
}
store_test!(due_callbacks_are_claimed_before_new_leads);

/// A callback an agent kept for themself is claimed, until the grace
/// after its time, only by the node holding that agent's session on the
/// campaign (marked with the agent and the grace's end); then by anyone,
/// unmarked. A node's heartbeat keeps its claims from lapsing.
async fn a_kept_callback_is_claimed_by_its_agents_node_until_the_grace(store: Store) {
    const DUE: i64 = 3_600_000;
    const GRACE: i64 = 900_000;
    const LEASE: i64 = 300_000;
    let id = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let leads: Vec<NewLead> = (1..=3).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store.insert_leads(id, &leads, 0).await.expect("leads");
    let l = lead_row(&store, id, 3).await;
    book_callback_kept(&store, id, &l, DUE, true).await;
    let ids = |c: &[dialler::store::ClaimedLead]| c.iter().map(|c| c.lead.id).collect::<Vec<_>>();
    // Due, but its agent is on no node: nobody claims it.
    let n2 = store
        .claim_leads(id, "n2", 5, DUE, LEASE, GRACE)
        .await
        .expect("claim");
    assert!(!ids(&n2).contains(&l.id), "{:?}", ids(&n2));
    for c in &n2 {
        store.release_lead(c.lead.id, "n2").await.expect("release");
    }
    // Its agent signs in on n1 (another campaign's session would not do).
    assert_eq!(
        store
            .session_acquire("agent-1", "n1", "another-campaign", DUE, 60_000)
            .await
            .expect("session"),
        None
    );
    let n1 = store
        .claim_leads(id, "n1", 5, DUE + 1, LEASE, GRACE)
        .await
        .expect("claim");
    assert!(!ids(&n1).contains(&l.id), "{:?}", ids(&n1));
    for c in &n1 {
        store.release_lead(c.lead.id, "n1").await.expect("release");
    }
    assert_eq!(
        store
            .session_acquire("agent-1", "n1", "in-insurance-renewal", DUE + 2, 60_000)
            .await
            .expect("session"),
        None
    );
    assert!(
        store
            .claim_leads(id, "n2", 5, DUE + 3, LEASE, GRACE)
            .await
            .expect("claim")
            .iter()
            .all(|c| c.lead.id != l.id),
        "not by another node"
    );
    let n1 = store
        .claim_leads(id, "n1", 5, DUE + 4, LEASE, GRACE)
        .await
        .expect("claim");
    assert_eq!(n1.first().map(|c| c.lead.id), Some(l.id), "{:?}", ids(&n1));
    assert_eq!(n1[0].kept_for, Some(("agent-1".to_string(), DUE + GRACE)));
    // Listed with whom it is kept for, and until when.
    let cbs = store.callbacks(id, None, GRACE).await.expect("callbacks");
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    assert_eq!(cbs[0].kept_for.as_deref(), Some("agent-1"));
    assert_eq!(cbs[0].kept_until, Some(DUE + GRACE));
    // n1 holds it past the claim lease, its heartbeat beating: n2 may
    // not take it even once the grace is over.
    store
        .claims_heartbeat("n1", &[id], DUE + GRACE)
        .await
        .expect("heartbeat");
    let n2 = store
        .claim_leads(id, "n2", 5, DUE + GRACE + LEASE / 2, LEASE, GRACE)
        .await
        .expect("claim");
    assert!(!ids(&n2).contains(&l.id), "{:?}", ids(&n2));
    // n1 gives it back; after the grace it is anyone's, unmarked.
    store.release_lead(l.id, "n1").await.expect("release");
    let n2 = store
        .claim_leads(id, "n2", 5, DUE + GRACE + LEASE, LEASE, GRACE)
        .await
        .expect("claim");
    let mine = n2
        .iter()
        .find(|c| c.lead.id == l.id)
        .expect("claimed by anyone");
    assert_eq!(mine.kept_for, None);
    // Once the lease lapses without a heartbeat, another node takes it.
    let n3 = store
        .claim_leads(id, "n3", 5, DUE + GRACE + 3 * LEASE, LEASE, GRACE)
        .await
        .expect("claim");
    assert!(ids(&n3).contains(&l.id), "{:?}", ids(&n3));
}
store_test!(a_kept_callback_is_claimed_by_its_agents_node_until_the_grace);

/// A node's heartbeat keeps its claims only in the campaigns it runs: a
/// restart that no longer runs a campaign leaves that campaign's claims to
/// lapse (and be taken by another node), not kept for as long as it runs.
async fn a_nodes_heartbeat_keeps_only_the_claims_of_the_campaigns_it_runs(store: Store) {
    const LEASE: i64 = 300_000;
    let x = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let mut other = campaign("in-insurance-renewal");
    other.name = "in-other".into();
    let y = store.upsert_campaign(&other, 0).await.expect("campaign");
    for (c, i) in [(x, 1), (y, 2)] {
        store
            .insert_leads(c, &[lead(i, Some("Asia/Kolkata"))], 0)
            .await
            .expect("insert");
        let held = store
            .claim_leads(c, "n1", 1, 1_000, LEASE, 0)
            .await
            .expect("claim");
        assert_eq!(held.len(), 1);
    }
    // n1 now runs x only, and beats past the lease.
    assert_eq!(
        store
            .claims_heartbeat("n1", &[x], 1_000 + LEASE)
            .await
            .expect("heartbeat"),
        1
    );
    let at = 1_000 + LEASE + LEASE / 2;
    let in_x = store
        .claim_leads(x, "n2", 1, at, LEASE, 0)
        .await
        .expect("claim");
    assert!(in_x.is_empty(), "kept by n1's heartbeat");
    let in_y = store
        .claim_leads(y, "n2", 1, at, LEASE, 0)
        .await
        .expect("claim");
    assert_eq!(in_y.len(), 1, "lapsed: n1 no longer runs it");
}
store_test!(a_nodes_heartbeat_keeps_only_the_claims_of_the_campaigns_it_runs);

/// A call's late end (its node cut off past the lease, or recovered with
/// `node recover --force` while still on the call) does not move a lead
/// another node has claimed and is dialling since: that node's call
/// decides it, and no third node is handed the person meanwhile.
async fn a_late_end_does_not_move_a_lead_another_node_is_dialling(store: Store) {
    const LEASE: i64 = 300_000;
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(c, &[lead(1, Some("Asia/Kolkata"))], 0)
        .await
        .expect("insert");
    let attempt_on = |node: &'static str, at: i64| {
        let store = store.clone();
        async move {
            let held = store
                .claim_leads(c, node, 1, at, LEASE, 0)
                .await
                .expect("claim");
            assert_eq!(held.len(), 1, "{node} claims the lead");
            let l = &held[0].lead;
            store
                .start_attempt_on(
                    &NewAttempt {
                        campaign_id: c,
                        lead_id: l.id,
                        phone: l.phone.clone(),
                        started_at: at,
                    },
                    node,
                    None,
                )
                .await
                .expect("start")
        }
    };
    let first = attempt_on("n1", 1_000).await;
    // n1 is taken for dead: its calls closed, the lead given back.
    store
        .recover_node(c, "n1", 2_000, 2_000)
        .await
        .expect("recover");
    let second = attempt_on("n2", 3_000).await;
    // n1's end of its call lands late.
    store
        .finish_attempt(
            first,
            &AttemptEnd {
                answered_at: None,
                connected_at: None,
                ended_at: 4_000,
                outcome: "no_answer".into(),
                sip_code: Some(487),
                sip_codes: None,
                agent_id: None,
                lead_status: "retry".into(),
                next_attempt_at: Some(4_000),
            },
        )
        .await
        .expect("finish");
    let l = lead_row(&store, c, 1).await;
    assert_eq!(l.status, "dialling", "n2's call is still out");
    assert!(
        store
            .claim_leads(c, "n3", 1, 5_000, LEASE, 0)
            .await
            .expect("claim")
            .is_empty(),
        "not handed to a third node"
    );
    // n2's own end moves it.
    store
        .finish_attempt(
            second,
            &AttemptEnd {
                answered_at: None,
                connected_at: None,
                ended_at: 6_000,
                outcome: "busy".into(),
                sip_code: Some(486),
                sip_codes: None,
                agent_id: None,
                lead_status: "retry".into(),
                next_attempt_at: Some(9_000),
            },
        )
        .await
        .expect("finish");
    let l = lead_row(&store, c, 1).await;
    assert_eq!(
        (l.status.as_str(), l.next_attempt_at),
        ("retry", Some(9_000))
    );
}
store_test!(a_late_end_does_not_move_a_lead_another_node_is_dialling);

/// An `Idempotency-Key` whose first request never finished (its process
/// died before storing the answer) is not refused for ever: within the
/// lease a repeat is told it still runs, after it the same request runs
/// again; another request under the key is still told so.
async fn an_idempotency_key_left_unfinished_is_taken_over_after_its_lease(store: Store) {
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let lease = dialler::store::IDEMPOTENCY_LEASE_MS;
    assert_eq!(
        store
            .idempotency_begin(c, "k1", "h1", 1_000)
            .await
            .expect("begin"),
        None
    );
    assert_eq!(
        store
            .idempotency_begin(c, "k1", "h1", 2_000)
            .await
            .expect("begin"),
        Some(("h1".to_string(), None)),
        "still running"
    );
    assert_eq!(
        store
            .idempotency_begin(c, "k1", "h2", 2_000 + lease)
            .await
            .expect("begin"),
        Some(("h1".to_string(), None)),
        "another request under the key"
    );
    assert_eq!(
        store
            .idempotency_begin(c, "k1", "h1", 2_000 + lease)
            .await
            .expect("begin"),
        None,
        "taken over"
    );
    assert_eq!(
        store
            .idempotency_begin(c, "k1", "h1", 3_000 + lease)
            .await
            .expect("begin"),
        Some(("h1".to_string(), None)),
        "the new run holds it"
    );
    store
        .idempotency_finish(c, "k1", Some("{}"))
        .await
        .expect("finish");
    assert_eq!(
        store
            .idempotency_begin(c, "k1", "h1", 10 * lease)
            .await
            .expect("begin"),
        Some(("h1".to_string(), Some("{}".to_string()))),
        "a finished answer is kept"
    );
}
store_test!(an_idempotency_key_left_unfinished_is_taken_over_after_its_lease);

/// Leads go into the list they were imported into; a campaign dials only
/// the lists a supervisor chose (every list when none was), except an
/// agreed callback, which is dialled whatever its list; the choice is
/// written with the controls' version check.
async fn claims_come_from_the_chosen_lead_lists(store: Store) {
    use dialler::controls::Controls;
    let id = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    let morning: Vec<NewLead> = (1..=4).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    let evening: Vec<NewLead> = (5..=8).map(|i| lead(i, Some("Asia/Kolkata"))).collect();
    store
        .insert_leads_into(id, "morning", &morning, 0)
        .await
        .expect("morning");
    store
        .insert_leads_into(id, "evening", &evening, 0)
        .await
        .expect("evening");
    let lists = store.lead_lists(id).await.expect("lists");
    assert_eq!(
        lists
            .iter()
            .map(|l| (l.name.as_str(), l.leads, l.to_dial))
            .collect::<Vec<_>>(),
        [("evening", 4, 4), ("morning", 4, 4)]
    );
    // Lead 1 (morning) has an agreed callback, due at 3,600,000.
    let l = lead_row(&store, id, 1).await;
    book_callback(&store, id, &l, 3_600_000).await;
    let evening_only = Controls {
        lists: Some(vec!["evening".into()]),
        version: 1,
        ..Controls::default()
    };
    assert!(
        store
            .set_campaign_controls(id, &evening_only)
            .await
            .expect("set")
    );
    // A second writer of version 1 loses.
    assert!(
        !store
            .set_campaign_controls(id, &evening_only)
            .await
            .expect("set")
    );
    assert_eq!(
        store.campaign_controls(id).await.expect("read").lists,
        Some(vec!["evening".to_string()])
    );
    let claimed = store
        .claim_leads(id, "n1", 20, 3_600_000, 30_000, 0)
        .await
        .expect("claim");
    let phones: Vec<&str> = claimed.iter().map(|c| c.lead.phone.as_str()).collect();
    assert_eq!(
        phones,
        [
            "+919000000001",
            "+919000000005",
            "+919000000006",
            "+919000000007",
            "+919000000008"
        ],
        "the callback first, then the evening list only"
    );
    for c in &claimed {
        store.release_lead(c.lead.id, "n1").await.expect("release");
    }
    // Every list again.
    let all = Controls {
        lists: None,
        version: 2,
        ..Controls::default()
    };
    assert!(store.set_campaign_controls(id, &all).await.expect("set"));
    assert_eq!(store.campaign_controls(id).await.expect("read").lists, None);
    let claimed = store
        .claim_leads(id, "n1", 20, 3_600_000, 30_000, 0)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 8);
}
store_test!(claims_come_from_the_chosen_lead_lists);

/// SIP legs are stored per node with the attempt (one transaction),
/// updated with their dialog, listed for their node only, forgotten when
/// ended, and erased with the number they call.
async fn sip_legs_are_kept_per_node_until_they_end(store: Store) {
    use dialler::sip::uac::{DialogState, LegRecord};
    use dialler::store::{LegKind, StoredLeg};
    let c = store
        .upsert_campaign(&campaign("in-insurance-renewal"), 0)
        .await
        .expect("campaign");
    store
        .insert_leads(c, &[lead(1, Some("Asia/Kolkata"))], 0)
        .await
        .expect("leads");
    let l = lead_row(&store, c, 1).await;
    // A call is placed on a lead the node holds.
    let held = store
        .claim_leads(c, "n1", 1, 1_000, 60_000, 0)
        .await
        .expect("claim");
    assert_eq!(held.len(), 1);
    let rec = |id: &str| LegRecord {
        call_id: id.into(),
        request_uri: format!("sip:{}@trunk.example", l.phone),
        via: "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport".into(),
        from: "<sip:1600@10.0.0.1>;tag=a".into(),
        to: format!("<sip:{}@trunk.example>", l.phone),
        invite_cseq: 1,
        dest: Some("10.0.0.2:5060".parse().unwrap()),
        dialog: None,
    };
    let attempt = store
        .start_attempt_on(
            &NewAttempt {
                campaign_id: c,
                lead_id: l.id,
                phone: l.phone.clone(),
                started_at: 1_000,
            },
            "n1",
            Some(&rec("c1@dialler")),
        )
        .await
        .expect("attempt and leg");
    store
        .leg_open(
            "n2",
            &StoredLeg {
                campaign_id: c,
                kind: LegKind::Agent,
                attempt_id: None,
                agent_id: Some("agent-1".into()),
                record: rec("a1@dialler"),
            },
            1_000,
        )
        .await
        .expect("agent leg");
    let mine = store.legs_of_node("n1").await.expect("legs");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].kind, LegKind::Customer);
    assert_eq!(mine[0].attempt_id, Some(attempt));
    assert_eq!(mine[0].record, rec("c1@dialler"));
    let mut answered = rec("c1@dialler");
    answered.dialog = Some(DialogState {
        remote_tag: "peer".into(),
        remote_target: "sip:peer@10.0.0.3".into(),
        route: vec!["<sip:p1;lr>".into()],
        cseq: 1,
    });
    store.leg_update(&answered).await.expect("dialog");
    assert_eq!(
        store.legs_of_node("n1").await.expect("legs")[0].record,
        answered
    );
    assert_eq!(store.legs_of_node("n2").await.expect("legs").len(), 1);
    // Erasing the number removes the leg that carries it.
    store
        .erase_number(&l.phone, "hash", 2_000)
        .await
        .expect("erase");
    assert!(store.legs_of_node("n1").await.expect("legs").is_empty());
    store.leg_closed("a1@dialler").await.expect("closed");
    assert!(store.legs_of_node("n2").await.expect("legs").is_empty());
}
store_test!(sip_legs_are_kept_per_node_until_they_end);

/// An erasure recorded by an older version left the number on the internal
/// list in plain text: when the store opens, it becomes the number's keyed
/// hash (the suppression an erasure leaves now) and the number goes; the
/// other entries stay.
async fn erased_numbers_kept_in_plain_text_become_their_keyed_hash(store: Store) {
    store
        .dnc_add(
            SCOPE_INTERNAL,
            &["+447700900123".to_string(), "+447700900124".to_string()],
            7,
            "erasure",
        )
        .await
        .expect("old erasure rows");
    store
        .dnc_add(SCOPE_INTERNAL, &["+447700900999".to_string()], 8, "import")
        .await
        .expect("an import row");
    assert_eq!(store.hash_plaintext_erasures().await.expect("turn"), 2);
    assert_eq!(
        store.dnc_list(SCOPE_INTERNAL).await.expect("list"),
        vec!["+447700900999".to_string()]
    );
    let key = store.suppression_key().await.expect("key");
    let hashes = store.suppressions().await.expect("suppressions");
    for digits in [447_700_900_123u64, 447_700_900_124] {
        let h = dialler::compliance::suppression::hash_hex(&key, digits);
        assert!(hashes.contains(&h), "{digits}");
    }
    // Nothing left to turn the next time.
    assert_eq!(store.hash_plaintext_erasures().await.expect("again"), 0);
}
store_test!(erased_numbers_kept_in_plain_text_become_their_keyed_hash);
