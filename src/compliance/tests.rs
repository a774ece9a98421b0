//! Verdict tests: every reason code reachable, and the rules behind them.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::dnd::{Entry, NationalRegistry};
use super::ledger::{Event, Ledger};
use super::*;
use crate::campaign::Campaign;
use crate::phone::{self, Country};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn campaign(name: &str) -> Campaign {
    let text = match name {
        "us" => include_str!("../../campaigns/us-home-solar.toml"),
        "uk" => include_str!("../../campaigns/uk-broadband.toml"),
        "in" => include_str!("../../campaigns/in-insurance-renewal.toml"),
        other => panic!("no campaign {other}"),
    };
    Campaign::parse(text, Path::new(name)).expect("valid campaign")
}

fn registries(country: Country, loaded_at: &str, blocked: &[u64]) -> Registries {
    let entries: Vec<Entry> = blocked.iter().map(|&n| Entry::Blocked(n)).collect();
    let mut r = Registries::default();
    r.national.insert(
        country,
        std::sync::Arc::new(NationalRegistry::build(country, utc(loaded_at), &entries)),
    );
    r
}

fn ctx(r: &Registries) -> Context<'_> {
    Context {
        registries: r,
        ledger: None,
        ledger_retry_at: None,
        agent_reserved: false,
    }
}

fn lead<'a>(raw: &str, country: Country, zones: &'a [Tz]) -> LeadState<'a> {
    LeadState {
        number: phone::parse(raw, country).expect("valid number"),
        zones,
        opted_out: false,
        attempts: 0,
        recent_attempts: &[],
        last_outcome: None,
        last_abandon_at: None,
        last_machine_at: None,
    }
}

const NY: &[Tz] = &[chrono_tz::America::New_York];
const LONDON: &[Tz] = &[chrono_tz::Europe::London];
const KOLKATA: &[Tz] = &[chrono_tz::Asia::Kolkata];
// Wednesday 2026-12-02, 15:00 in New York.
const US_NOON: &str = "2026-12-02T20:00:00Z";

#[test]
fn a_clean_lead_in_hours_is_allowed() {
    let c = campaign("us");
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    let v = check(
        &lead("212 555 0101", Country::UnitedStates, NY),
        &c,
        &ctx(&r),
        utc(US_NOON),
    );
    assert_eq!(
        v,
        Verdict {
            allowed: true,
            reasons: vec![],
            next_allowed_at: Some(utc(US_NOON))
        }
    );
}

#[test]
fn dnd_lists_refuse_for_good() {
    let c = campaign("us");
    let mut r = registries(
        Country::UnitedStates,
        "2026-11-20T00:00:00Z",
        &[12125550101],
    );
    r.internal.insert(12125550102);
    r.campaign
        .insert("us-home-solar".into(), [12125550103].into_iter().collect());
    let now = utc(US_NOON);
    for (raw, reason) in [
        ("212 555 0101", Reason::DndNational),
        ("212 555 0102", Reason::DndInternal),
        ("212 555 0103", Reason::DndCampaign),
    ] {
        let v = check(&lead(raw, Country::UnitedStates, NY), &c, &ctx(&r), now);
        assert_eq!(
            (v.allowed, v.reasons.as_slice(), v.next_allowed_at),
            (false, &[reason][..], None),
            "{raw}"
        );
    }
}

#[test]
fn a_us_registry_older_than_31_days_is_refused() {
    let c = campaign("us");
    let now = utc(US_NOON);
    let fresh = registries(Country::UnitedStates, "2026-11-01T21:00:00Z", &[]);
    assert!(
        check(
            &lead("212 555 0101", Country::UnitedStates, NY),
            &c,
            &ctx(&fresh),
            now
        )
        .allowed
    );
    let stale = registries(Country::UnitedStates, "2026-11-01T19:59:59Z", &[]);
    let v = check(
        &lead("212 555 0101", Country::UnitedStates, NY),
        &c,
        &ctx(&stale),
        now,
    );
    assert_eq!(v.reasons, vec![Reason::DndRegistryStale]);
    assert_eq!(v.next_allowed_at, None);
    let none = Registries::default();
    let v = check(
        &lead("212 555 0101", Country::UnitedStates, NY),
        &c,
        &ctx(&none),
        now,
    );
    assert_eq!(v.reasons, vec![Reason::DndRegistryMissing]);
}

#[test]
fn india_category_opt_in_is_allowed_and_full_block_is_not() {
    let c = campaign("in"); // category 1, insurer
    let parsed = dnd::parse(
        "9876543210,0\n9876543211,1#4\n9876543212,2\n9876543213,1,1-5,10:00-12:00\n".as_bytes(),
        dnd::Format::Ncpr,
        Country::India,
        false,
    )
    .expect("parse");
    assert!(parsed.bad.is_empty());
    let entries = parsed.entries;
    let mut r = Registries::default();
    r.national.insert(
        Country::India,
        std::sync::Arc::new(NationalRegistry::build(
            Country::India,
            utc("2026-12-02T00:00:00Z"),
            &entries,
        )),
    );
    // Wednesday 2026-12-02 13:00 IST.
    let now = utc("2026-12-02T07:30:00Z");
    // A preference takes effect within 24 hours: a copy two days old is
    // stale for every number, listed or not.
    let mut old = Registries::default();
    old.national.insert(
        Country::India,
        std::sync::Arc::new(NationalRegistry::build(
            Country::India,
            utc("2026-11-30T07:00:00Z"),
            &entries,
        )),
    );
    let v = check(
        &lead("9876543219", Country::India, KOLKATA),
        &c,
        &ctx(&old),
        now,
    );
    assert_eq!(v.reasons, vec![Reason::DndRegistryStale]);
    let verdict = |raw| check(&lead(raw, Country::India, KOLKATA), &c, &ctx(&r), now);
    assert_eq!(verdict("9876543210").reasons, vec![Reason::DndNational]);
    assert!(verdict("9876543211").allowed);
    assert_eq!(verdict("9876543212").reasons, vec![Reason::DndNational]);
    // Opted in, but only weekdays 10:00-12:00: at 13:00 wait for tomorrow 10:00.
    let v = verdict("9876543213");
    assert_eq!(v.reasons, vec![Reason::OutsideHours]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-03T04:30:00Z")));
}

#[test]
fn unknown_time_zone_is_never_dialled() {
    let c = campaign("us");
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    let v = check(
        &lead("212 555 0101", Country::UnitedStates, &[]),
        &c,
        &ctx(&r),
        utc(US_NOON),
    );
    assert_eq!(
        (v.reasons.as_slice(), v.next_allowed_at),
        (&[Reason::TimezoneUnknown][..], None)
    );
}

#[test]
fn outside_hours_says_when_the_window_opens() {
    let c = campaign("us"); // weekdays 09:00-20:00, Saturday 10-18, Sunday closed
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    // Friday 2026-12-04 20:30 New York: next is Saturday 10:00 EST = 15:00 UTC.
    let v = check(
        &lead("212 555 0101", Country::UnitedStates, NY),
        &c,
        &ctx(&r),
        utc("2026-12-05T01:30:00Z"),
    );
    assert_eq!(v.reasons, vec![Reason::OutsideHours]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-05T15:00:00Z")));
}

#[test]
fn attempts_limits_and_retry_delay() {
    let c = campaign("us"); // 5 attempts, 1 a day, busy 30m
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    let now = utc(US_NOON);
    let mut l = lead("212 555 0101", Country::UnitedStates, NY);
    l.attempts = 5;
    assert_eq!(
        check(&l, &c, &ctx(&r), now).reasons,
        vec![Reason::MaxAttempts]
    );

    let earlier = [utc("2026-12-02T14:10:00Z")]; // 09:10 New York, same day
    let mut l = lead("212 555 0101", Country::UnitedStates, NY);
    l.attempts = 1;
    l.recent_attempts = &earlier;
    l.last_outcome = Some((crate::outcome::Outcome::Busy, utc("2026-12-02T19:45:00Z")));
    let v = check(&l, &c, &ctx(&r), now);
    assert_eq!(
        v.reasons,
        vec![Reason::MaxAttemptsToday, Reason::RetryDelay]
    );
    // Tomorrow 09:00 in New York.
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-03T14:00:00Z")));

    // Yesterday's attempt does not count today; the delay alone remains.
    let yesterday = [utc("2026-12-01T20:00:00Z")];
    l.recent_attempts = &yesterday;
    let v = check(&l, &c, &ctx(&r), now);
    assert_eq!(v.reasons, vec![Reason::RetryDelay]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-02T20:15:00Z")));

    // A delay too long to add to a date (a campaign built in code; files
    // refuse one over a year) holds the number back, not lets it through.
    let mut long = c.clone();
    long.retry_delay
        .insert(crate::outcome::Outcome::Busy, std::time::Duration::MAX);
    let v = check(&l, &long, &ctx(&r), now);
    assert!(!v.allowed);
    assert_eq!(v.reasons, vec![Reason::RetryDelay]);
}

#[test]
fn uk_does_not_recall_an_abandoned_number_within_72_hours() {
    let mut c = campaign("uk");
    c.retry_delay.remove(&crate::outcome::Outcome::Abandoned); // the statutory rule stands on its own
    let r = registries(Country::UnitedKingdom, "2026-11-20T00:00:00Z", &[]);
    // Wednesday 2026-12-02 12:00 London; abandoned Monday 11:00.
    let now = utc("2026-12-02T12:00:00Z");
    let mut l = lead("07700 900123", Country::UnitedKingdom, LONDON);
    l.last_abandon_at = Some(utc("2026-11-30T11:00:00Z"));
    let v = check(&l, &c, &ctx(&r), now);
    assert_eq!(v.reasons, vec![Reason::RecallAfterAbandon]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-03T11:00:00Z")));
    // With an agent guaranteed, Ofcom allows the call.
    let reserved = Context {
        agent_reserved: true,
        ..ctx(&r)
    };
    assert!(check(&l, &c, &reserved, now).allowed);
    // 72 hours later it is allowed again.
    assert!(check(&l, &c, &ctx(&r), utc("2026-12-03T11:00:00Z")).allowed);
}

/// Ofcom (persistent misuse, answering machine detection): a number AMD
/// took for a machine is not called again within 24 hours unless a live
/// operator is guaranteed, whatever the campaign's own delay says.
#[test]
fn uk_does_not_recall_a_machine_within_24_hours_without_an_agent() {
    let mut c = campaign("uk");
    c.retry_delay.remove(&Outcome::Machine); // the rule stands on its own
    let r = registries(Country::UnitedKingdom, "2026-11-20T00:00:00Z", &[]);
    let now = utc("2026-12-02T12:00:00Z");
    let mut l = lead("07700 900123", Country::UnitedKingdom, LONDON);
    l.last_outcome = Some((Outcome::Machine, utc("2026-12-02T10:00:00Z")));
    l.last_machine_at = Some(utc("2026-12-02T10:00:00Z"));
    let v = check(&l, &c, &ctx(&r), now);
    assert_eq!(v.reasons, vec![Reason::RecallAfterMachine]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-03T10:00:00Z")));
    let reserved = Context {
        agent_reserved: true,
        ..ctx(&r)
    };
    assert!(check(&l, &c, &reserved, now).allowed);
    assert!(check(&l, &c, &ctx(&r), utc("2026-12-03T10:00:00Z")).allowed);
    // A call made with an agent reserved after the machine (here no
    // answer at 11:00) does not restart the clock nor end the period: the
    // next call inside the 24 hours still needs an agent.
    l.last_outcome = Some((Outcome::NoAnswer, utc("2026-12-02T11:00:00Z")));
    c.retry_delay.remove(&Outcome::NoAnswer);
    let v = check(&l, &c, &ctx(&r), now);
    assert_eq!(v.reasons, vec![Reason::RecallAfterMachine]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-03T10:00:00Z")));
    // No machine in the history, or another country: no such rule.
    l.last_machine_at = None;
    assert!(check(&l, &c, &ctx(&r), now).allowed);
    let mut us = campaign("us");
    us.retry_delay.remove(&Outcome::Machine);
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    let mut l = lead("212 555 0123", Country::UnitedStates, NY);
    l.last_outcome = Some((Outcome::Machine, utc("2026-12-02T14:00:00Z")));
    l.last_machine_at = Some(utc("2026-12-02T14:00:00Z"));
    assert!(check(&l, &us, &ctx(&r), utc("2026-12-02T16:00:00Z")).allowed);
}

/// State laws stricter than the federal 08:00-21:00 follow the number's
/// area code: Florida (FTSA) ends at 20:00, Texas opens Sunday at noon.
#[test]
fn us_state_hours_narrow_the_federal_ones_by_area_code() {
    let mut c = campaign("us");
    c.hours = crate::profile::Profile::Us.rules().hours();
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    // Wednesday 2026-12-02 20:30 in New York and Miami (EST).
    let evening = utc("2026-12-03T01:30:00Z");
    assert!(
        check(
            &lead("212 555 0123", Country::UnitedStates, NY),
            &c,
            &ctx(&r),
            evening
        )
        .allowed
    );
    let miami = lead("305 555 0123", Country::UnitedStates, NY);
    let v = check(&miami, &c, &ctx(&r), evening);
    assert_eq!(v.reasons, vec![Reason::OutsideHours]);
    assert_eq!(
        v.next_allowed_at,
        Some(utc("2026-12-03T13:00:00Z")),
        "08:00 next morning"
    );
    assert!(
        check(&miami, &c, &ctx(&r), utc("2026-12-03T00:30:00Z")).allowed,
        "19:30"
    );
    // Sunday 2026-12-06 10:00 in Dallas (CST): federal hours, not Texas's.
    let chicago: &[Tz] = &[chrono_tz::America::Chicago];
    let dallas = lead("214 555 0123", Country::UnitedStates, chicago);
    let sunday = utc("2026-12-06T16:00:00Z");
    let v = check(&dallas, &c, &ctx(&r), sunday);
    assert_eq!(v.reasons, vec![Reason::OutsideHours]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-06T18:00:00Z")), "noon");
}

/// Pennsylvania (73 P.S. 2245(a)(10)) bars its legal holidays; a
/// Philadelphia number on Thanksgiving is refused as a holiday and opens
/// the next morning, while a New York number the same hour is called.
/// Utah's Pioneer Day bars a Salt Lake City number and no one else.
#[test]
fn us_state_holidays_follow_the_number() {
    let mut c = campaign("us");
    c.hours = crate::profile::Profile::Us.rules().hours();
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    // Thursday 2026-11-26 (Thanksgiving) 11:00 EST.
    let thanksgiving = utc("2026-11-26T16:00:00Z");
    let philadelphia = lead("215 555 0123", Country::UnitedStates, NY);
    let v = check(&philadelphia, &c, &ctx(&r), thanksgiving);
    assert_eq!(v.reasons, vec![Reason::Holiday]);
    assert_eq!(
        v.next_allowed_at,
        Some(utc("2026-11-27T13:00:00Z")),
        "08:00 the next morning"
    );
    assert!(
        check(
            &lead("212 555 0123", Country::UnitedStates, NY),
            &c,
            &ctx(&r),
            thanksgiving
        )
        .allowed
    );
    // Pennsylvania's own: Flag Day, Sunday 2026-06-14 (Sunday calls are
    // otherwise allowed from 13:30), and its observed Monday.
    let flag_day = utc("2026-06-14T19:00:00Z");
    assert_eq!(
        check(&philadelphia, &c, &ctx(&r), flag_day).reasons,
        vec![Reason::Holiday]
    );
    assert_eq!(
        check(&philadelphia, &c, &ctx(&r), utc("2026-06-15T15:00:00Z")).reasons,
        vec![Reason::Holiday]
    );
    assert!(check(&philadelphia, &c, &ctx(&r), utc("2026-06-16T15:00:00Z")).allowed);
    // Mississippi: Confederate Memorial Day, Monday 2026-04-27, 10:00 CDT.
    let jackson = lead(
        "601 555 0123",
        Country::UnitedStates,
        &[chrono_tz::America::Chicago],
    );
    assert_eq!(
        check(&jackson, &c, &ctx(&r), utc("2026-04-27T15:00:00Z")).reasons,
        vec![Reason::Holiday]
    );
    assert!(check(&jackson, &c, &ctx(&r), utc("2026-04-28T15:00:00Z")).allowed);
    // Pennsylvania on a Saturday: mornings only (13:00 EST refused).
    assert_eq!(
        check(&philadelphia, &c, &ctx(&r), utc("2026-12-05T18:00:00Z")).reasons,
        vec![Reason::OutsideHours]
    );
    assert!(check(&philadelphia, &c, &ctx(&r), utc("2026-12-05T15:00:00Z")).allowed);
    // Friday 2026-07-24, Pioneer Day, 11:00 in Salt Lake City (MDT).
    let denver: &[Tz] = &[chrono_tz::America::Denver];
    let pioneer = utc("2026-07-24T17:00:00Z");
    let utah = lead("801 555 0123", Country::UnitedStates, denver);
    assert_eq!(
        check(&utah, &c, &ctx(&r), pioneer).reasons,
        vec![Reason::Holiday]
    );
    assert!(
        check(
            &lead("720 555 0123", Country::UnitedStates, denver),
            &c,
            &ctx(&r),
            pioneer
        )
        .allowed
    );
    // Mardi Gras 2027 (Tuesday 9 February) in New Orleans and Mobile.
    let chicago: &[Tz] = &[chrono_tz::America::Chicago];
    let mardi_gras = utc("2027-02-09T17:00:00Z");
    let r = registries(Country::UnitedStates, "2027-02-01T00:00:00Z", &[]);
    for n in ["504 555 0123", "251 555 0123"] {
        assert_eq!(
            check(
                &lead(n, Country::UnitedStates, chicago),
                &c,
                &ctx(&r),
                mardi_gras
            )
            .reasons,
            vec![Reason::Holiday],
            "{n}"
        );
    }
    assert!(
        check(
            &lead("312 555 0123", Country::UnitedStates, chicago),
            &c,
            &ctx(&r),
            mardi_gras
        )
        .allowed
    );
}

/// Florida (FTSA 501.059(8)): at most 3 calls to the person in any 24
/// hours, local days or not; New York has no such limit of ours.
#[test]
fn a_florida_number_takes_at_most_three_calls_in_24_hours() {
    let mut c = campaign("us");
    c.hours = crate::profile::Profile::Us.rules().hours();
    c.max_attempts = 10;
    c.max_attempts_per_day = 10;
    c.retry_delay.clear();
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    // Wednesday 2026-12-02 12:00 EST; calls the evening before (18:00,
    // 19:00 EST) and this morning (09:00 EST).
    let now = utc("2026-12-02T17:00:00Z");
    let calls = [
        utc("2026-12-01T23:00:00Z"),
        utc("2026-12-02T00:00:00Z"),
        utc("2026-12-02T14:00:00Z"),
    ];
    let mut miami = lead("305 555 0123", Country::UnitedStates, NY);
    miami.attempts = 3;
    miami.recent_attempts = &calls;
    let v = check(&miami, &c, &ctx(&r), now);
    assert_eq!(v.reasons, vec![Reason::MaxAttemptsToday]);
    assert_eq!(
        v.next_allowed_at,
        Some(utc("2026-12-02T23:00:00Z")),
        "24 h after the first"
    );
    assert!(check(&miami, &c, &ctx(&r), utc("2026-12-02T23:00:00Z")).allowed);
    miami.recent_attempts = &calls[1..];
    assert!(check(&miami, &c, &ctx(&r), now).allowed, "two in 24 h");
    let mut ny = lead("212 555 0123", Country::UnitedStates, NY);
    ny.attempts = 3;
    ny.recent_attempts = &calls;
    assert!(check(&ny, &c, &ctx(&r), now).allowed);
}

#[test]
fn an_exhausted_abandonment_budget_allows_only_reserved_dials() {
    let c = campaign("uk");
    let r = registries(Country::UnitedKingdom, "2026-11-20T00:00:00Z", &[]);
    let now = utc("2026-12-02T12:00:00Z");
    let mut ledger = Ledger::new(c.abandon_window);
    for i in 0..33 {
        ledger.record(now - Duration::minutes(90 - i), Event::HumanAnswer);
    }
    ledger.record(now - Duration::minutes(60), Event::Abandon);
    let status = ledger.status(now, c.abandon_target_percent, c.abandon_limit_percent);
    assert!(status.exhausted);
    let context = Context {
        ledger: Some(status),
        ledger_retry_at: ledger.next_expiry(),
        ..ctx(&r)
    };
    let l = lead("07700 900123", Country::UnitedKingdom, LONDON);
    let v = check(&l, &c, &context, now);
    assert_eq!(v.reasons, vec![Reason::AbandonBudgetExhausted]);
    assert_eq!(v.next_allowed_at, ledger.next_expiry());
    assert!(
        check(
            &l,
            &c,
            &Context {
                agent_reserved: true,
                ..context
            },
            now
        )
        .allowed
    );
}

#[test]
fn holidays_and_missing_calendars_refuse() {
    let text = include_str!("../../campaigns/uk-broadband.toml")
        .replace("profile = \"uk\"", "profile = \"au\"")
        .replace("020 7946 0123", "02 9876 5432")
        .replace("abandoned = \"72h\"", "abandoned = \"24h\"");
    let c = Campaign::parse(&text, Path::new("au")).expect("valid");
    let r = registries(Country::Australia, "2026-12-20T00:00:00Z", &[]);
    let syd: &[Tz] = &[chrono_tz::Australia::Sydney];
    // Boxing Day substitute, Monday 2026-12-28, 11:00 AEDT.
    let v = check(
        &lead("02 9876 5000", Country::Australia, syd),
        &c,
        &ctx(&r),
        utc("2026-12-28T00:00:00Z"),
    );
    assert_eq!(v.reasons, vec![Reason::Holiday]);
    assert_eq!(v.next_allowed_at, Some(utc("2026-12-28T22:00:00Z")));
    let r = registries(Country::Australia, "2037-06-01T00:00:00Z", &[]);
    let v = check(
        &lead("02 9876 5000", Country::Australia, syd),
        &c,
        &ctx(&r),
        utc("2037-06-02T01:00:00Z"),
    );
    assert_eq!(v.reasons, vec![Reason::HolidayCalendarMissing]);
    assert_eq!(v.next_allowed_at, None);
}

#[test]
fn a_number_of_another_country_is_invalid() {
    let c = campaign("us");
    let r = registries(Country::UnitedStates, "2026-11-20T00:00:00Z", &[]);
    let v = check(
        &lead(
            "416 555 0101",
            Country::Canada,
            &[chrono_tz::America::Toronto],
        ),
        &c,
        &ctx(&r),
        utc(US_NOON),
    );
    assert_eq!(v.reasons, vec![Reason::InvalidNumber]);
}

#[test]
fn every_reason_code_is_distinct_and_snake_case() {
    let codes: std::collections::HashSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reason::ALL.len());
    for r in Reason::ALL {
        assert_eq!(serde_json::to_value(r).expect("json"), r.code());
    }
}
