use super::*;

fn config() -> RunnerConfig {
    RunnerConfig {
        ring_timeout_ms: 20_000,
        connect_limit_ms: 2_000,
        target_percent: 2.0,
        limit_percent: 3.0,
        abandon_window: std::time::Duration::from_secs(86_400),
        max_dial_level: 3.0,
        hopper_low_water: 4,
        priors: Priors::default(),
        trunk: None,
        agent_records: false,
        windows: None,
    }
}

/// A runner whose ledger has room (a thousand answers an hour before,
/// no abandon), so that the governor lets a ratio dial ahead.
fn with_room(mut r: Runner) -> Runner {
    let at = DateTime::from_timestamp_millis(0).unwrap_or_default();
    r.restore_ledger(Ledger::from_events(
        std::time::Duration::from_secs(86_400),
        std::iter::repeat_n((at, LedgerEvent::HumanAnswer), 1000),
        at,
    ));
    r
}

fn drain(r: &mut Runner) -> Vec<Command> {
    std::iter::from_fn(|| r.poll_command()).collect()
}

fn leads(ids: std::ops::Range<u64>) -> Event {
    Event::Leads(
        ids.map(|id| LeadInfo {
            id,
            foresight: None,
            owner: None,
        })
        .collect(),
    )
}

#[test]
fn a_ready_agent_gets_a_call_and_a_human_answer_is_bridged_at_once() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::Dial { call: 1, lead: 1 }),
        "{cmds:?}"
    );
    r.handle_event(
        5_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::Bridge { call: 1, agent: 0 }),
        "{cmds:?}"
    );
    assert!(cmds.contains(&Command::Record(Record::Connected {
        call: 1,
        agent: 0,
        wait_ms: 0
    })));
    assert_eq!(r.status().on_call, 1);
}

#[test]
fn an_answer_without_audio_is_abandoned_and_hung_up_even_with_an_agent_ready() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    r.handle_event(5_000, Event::CallAnsweredWithoutAudio { call: 1 });
    let cmds = drain(&mut r);
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Bridge { .. })),
        "{cmds:?}"
    );
    for want in [
        Command::Record(Record::HumanAnswer {
            call: 1,
            lead: 1,
            ring_ms: 5_000,
        }),
        Command::Record(Record::Abandoned { call: 1, lead: 1 }),
        Command::Hangup { call: 1 },
        Command::Record(Record::AttemptEnded {
            call: 1,
            lead: 1,
            outcome: Outcome::Abandoned,
        }),
    ] {
        assert!(cmds.contains(&want), "{want:?} not in {cmds:?}");
    }
    assert_eq!(r.status().on_call, 0);
    assert_eq!(r.status().window_abandons, 1);
    // The agent stays ready: the next call is dialled for it.
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Dial { .. })),
        "{cmds:?}"
    );
    // Late news of the same call changes nothing.
    r.handle_event(5_100, Event::CallAnsweredWithoutAudio { call: 1 });
    assert!(drain(&mut r).is_empty());
}

#[test]
fn an_answer_with_no_agent_hears_the_message_after_the_connect_limit() {
    let mut r = with_room(Runner::new(config(), &Strategy::Ratio { ratio: 2.0 }));
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    r.handle_event(
        3_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    drain(&mut r);
    r.handle_event(
        3_500,
        Event::CallAnswered {
            call: 2,
            human: true,
        },
    );
    let cmds = drain(&mut r);
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::Bridge { call: 2, .. }))
    );
    assert_eq!(r.poll_timeout(), Some(5_500));
    r.handle_timeout(5_500);
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::PlaySafeHarbour { call: 2 }),
        "{cmds:?}"
    );
    assert!(cmds.contains(&Command::Record(Record::Abandoned { call: 2, lead: 2 })));
    assert_eq!(r.status().window_abandons, 1);
}

#[test]
fn a_waiting_call_takes_an_agent_who_frees_within_the_limit() {
    let mut r = with_room(Runner::new(config(), &Strategy::Ratio { ratio: 2.0 }));
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    r.handle_event(
        1_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    r.handle_event(
        1_500,
        Event::CallAnswered {
            call: 2,
            human: true,
        },
    );
    r.handle_event(2_000, Event::CallEnded { call: 1 });
    r.handle_event(2_100, Event::WrapUpDone { agent: 0 });
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::Bridge { call: 2, agent: 0 }),
        "{cmds:?}"
    );
    r.handle_timeout(3_500);
    assert!(
        !drain(&mut r)
            .iter()
            .any(|c| matches!(c, Command::PlaySafeHarbour { .. }))
    );
}

/// The driver may hand over an event after a connect deadline passed
/// without having fired its timer (a busy driver, a Ready queued first):
/// the call that waited over 2 s is abandoned, never put through late and
/// left out of the ledger.
#[test]
fn an_agent_freed_after_the_limit_does_not_get_the_overdue_call() {
    let mut r = with_room(Runner::new(config(), &Strategy::Ratio { ratio: 2.0 }));
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    r.handle_event(
        1_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    r.handle_event(
        1_500,
        Event::CallAnswered {
            call: 2,
            human: true,
        },
    );
    r.handle_event(2_000, Event::CallEnded { call: 1 });
    drain(&mut r);
    // Call 2's deadline is 3,500; no handle_timeout before the Ready.
    r.handle_event(3_550, Event::WrapUpDone { agent: 0 });
    let cmds = drain(&mut r);
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::Bridge { call: 2, .. })),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&Command::PlaySafeHarbour { call: 2 }),
        "{cmds:?}"
    );
    assert!(cmds.contains(&Command::Record(Record::Abandoned { call: 2, lead: 2 })));
    assert_eq!(r.status().window_abandons, 1);
}

/// The ring time counts from a call's ringing indication (TSR
/// 310.4(b)(4)(i): the phone must ring at least 15 s), the last one the
/// SIP layer sent (a failover or redirect rings a new phone): a slow
/// set-up does not shorten it. A call with no indication times out from
/// its dial. Pacing sees each call on the same clock.
#[test]
fn the_ring_timeout_counts_from_the_ringing_indication() {
    let mut r = with_room(Runner::new(config(), &Strategy::Ratio { ratio: 3.0 }));
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    let dialled: Vec<CallId> = drain(&mut r)
        .iter()
        .filter_map(|c| match c {
            Command::Dial { call, .. } => Some(*call),
            _ => None,
        })
        .collect();
    assert_eq!(dialled, [1, 2, 3], "three calls for one agent at ratio 3");
    // Call 1 rings after 4 s of set-up; call 3 after 1 s, then again at
    // 7 s (moved on); call 2 never says it rings.
    r.handle_event(1_000, Event::CallRinging { call: 3 });
    r.handle_event(4_000, Event::CallRinging { call: 1 });
    r.handle_event(7_000, Event::CallRinging { call: 3 });
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.ringing_since, [4_000, 0, 7_000], "pacing's clocks");
    let cancels = |r: &mut Runner, at: u64| -> Vec<CallId> {
        r.handle_timeout(at);
        drain(r)
            .iter()
            .filter_map(|c| match c {
                Command::Cancel { call } if *call <= 3 => Some(*call),
                _ => None,
            })
            .collect()
    };
    assert_eq!(cancels(&mut r, 19_999), [] as [CallId; 0]);
    assert_eq!(cancels(&mut r, 20_000), [2]);
    assert_eq!(cancels(&mut r, 23_999), [] as [CallId; 0]);
    assert_eq!(cancels(&mut r, 24_000), [1]);
    assert_eq!(cancels(&mut r, 26_999), [] as [CallId; 0]);
    assert_eq!(cancels(&mut r, 27_000), [3]);
    // News of a call that is over changes nothing.
    r.handle_event(27_500, Event::CallRinging { call: 1 });
    assert_eq!(cancels(&mut r, 60_000), [] as [CallId; 0]);
}

#[test]
fn ring_timeout_cancels_and_machines_are_hung_up() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    r.handle_timeout(20_000);
    let cmds = drain(&mut r);
    assert!(cmds.contains(&Command::Cancel { call: 1 }));
    assert!(cmds.contains(&Command::Record(Record::AttemptEnded {
        call: 1,
        lead: 1,
        outcome: Outcome::NoAnswer
    })));
    // The agent is still ready: another call goes out.
    assert!(
        cmds.contains(&Command::Dial { call: 2, lead: 2 }),
        "{cmds:?}"
    );
    r.handle_event(
        25_000,
        Event::CallAnswered {
            call: 2,
            human: false,
        },
    );
    let cmds = drain(&mut r);
    assert!(cmds.contains(&Command::Hangup { call: 2 }));
    // A late answer to the cancelled call is ignored.
    r.handle_event(
        26_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    assert!(
        !drain(&mut r)
            .iter()
            .any(|c| matches!(c, Command::Bridge { call: 1, .. }))
    );
}

#[test]
fn the_hopper_asks_for_leads_when_low_and_stops_dialling_on_request() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::AgentReady(0));
    assert!(drain(&mut r).contains(&Command::NeedLeads(16)));
    r.handle_event(0, Event::Dialling(false));
    r.handle_event(0, leads(1..20));
    assert!(
        !drain(&mut r)
            .iter()
            .any(|c| matches!(c, Command::Dial { .. }))
    );
    r.handle_event(10, Event::Dialling(true));
    assert!(
        drain(&mut r)
            .iter()
            .any(|c| matches!(c, Command::Dial { .. }))
    );
}

#[test]
fn logout_waits_for_the_call_and_wrap_up() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    r.handle_event(
        1_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    r.handle_event(2_000, Event::AgentLogout(0));
    assert_eq!(r.status().on_call, 1);
    r.handle_event(60_000, Event::CallEnded { call: 1 });
    assert_eq!(r.status().wrap_up, 1);
    r.handle_event(70_000, Event::WrapUpDone { agent: 0 });
    let s = r.status();
    assert_eq!((s.ready, s.on_call, s.wrap_up), (0, 0, 0));
}

fn dials(cmds: &[Command]) -> usize {
    cmds.iter()
        .filter(|c| matches!(c, Command::Dial { .. }))
        .count()
}

#[test]
fn the_trunk_caps_new_calls_per_second_and_resumes_when_the_second_is_up() {
    let mut cfg = config();
    cfg.trunk = Some(TrunkLimits {
        cps: 2,
        channels: 100,
    });
    let mut r = Runner::new(cfg, &Strategy::Ratio { ratio: 3.0 });
    r.handle_event(0, leads(1..100));
    for a in 0..5 {
        r.handle_event(0, Event::AgentLogin(a));
        r.handle_event(0, Event::AgentReady(a));
    }
    assert_eq!(dials(&drain(&mut r)), 2, "two calls in the first second");
    let wake = r.poll_timeout().expect("a wake-up for the next second");
    assert!(wake <= 1_000, "wakes at {wake}");
    r.handle_timeout(999);
    assert_eq!(dials(&drain(&mut r)), 0, "not before the second is up");
    r.handle_timeout(1_000);
    assert_eq!(dials(&drain(&mut r)), 2, "two more in the next second");
}

#[test]
fn the_trunk_caps_calls_in_flight_and_a_call_ending_frees_its_channel() {
    let mut cfg = config();
    cfg.trunk = Some(TrunkLimits {
        cps: 100,
        channels: 3,
    });
    let mut r = Runner::new(cfg, &Strategy::Ratio { ratio: 3.0 });
    r.handle_event(0, leads(1..100));
    for a in 0..5 {
        r.handle_event(0, Event::AgentLogin(a));
        r.handle_event(0, Event::AgentReady(a));
    }
    assert_eq!(dials(&drain(&mut r)), 3, "three channels");
    r.handle_event(
        2_000,
        Event::CallFailed {
            call: 1,
            outcome: Outcome::Busy,
        },
    );
    assert_eq!(dials(&drain(&mut r)), 1, "the freed channel is used");
}

fn utc_ms(text: &str) -> u64 {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis() as u64)
        .unwrap_or(0)
}

/// Ten agents ready and a strategy that wants three calls each.
fn pushy(ledger: Ledger, windows: Option<DialWindows>) -> Runner {
    let mut cfg = config();
    cfg.hopper_low_water = 64;
    cfg.windows = windows;
    let mut r = Runner::new(cfg, &Strategy::Ratio { ratio: 3.0 });
    r.restore_ledger(ledger);
    r
}

fn ledger_of(events: &[(&str, LedgerEvent, usize)], now: &str) -> Ledger {
    let all = events.iter().flat_map(|&(t, e, n)| {
        let at = DateTime::parse_from_rfc3339(t)
            .map(|t| t.to_utc())
            .unwrap_or_default();
        std::iter::repeat_n((at, e), n)
    });
    let now = DateTime::parse_from_rfc3339(now)
        .map(|t| t.to_utc())
        .unwrap_or_default();
    Ledger::from_events(std::time::Duration::from_secs(86_400), all, now)
}

/// Monday morning: Saturday closed early and Sunday was closed, so the
/// 24-hour window is empty. Whatever the strategy wants, a call goes out
/// only with a ready agent for it; extra calls come as answers give the
/// window room, and never more than the budget could absorb if every
/// person among them found no agent.
#[test]
fn the_governor_holds_a_week_start_to_the_ready_agents() {
    let now = utc_ms("2026-12-07T09:00:00Z");
    let mut r = pushy(ledger_of(&[], "2026-12-07T09:00:00Z"), None);
    r.handle_event(now, leads(1..400));
    for a in 0..10 {
        r.handle_event(now, Event::AgentReady(a));
    }
    assert_eq!(dials(&drain(&mut r)), 10, "one call per ready agent");
    // An hour later: 200 answers, no abandon (budget 6, IN_HAND kept).
    let later = now + 3_600_000;
    let mut r = pushy(
        ledger_of(
            &[("2026-12-07T09:30:00Z", LedgerEvent::HumanAnswer, 200)],
            "2026-12-07T10:00:00Z",
        ),
        None,
    );
    // The agents first, the leads after: one decision for all ten.
    for a in 0..10 {
        r.handle_event(later, Event::AgentReady(a));
    }
    drain(&mut r);
    r.handle_event(later, leads(1..400));
    let n = dials(&drain(&mut r));
    let room = 0.03 * 200.0 - Governor::IN_HAND;
    assert!(n > 10, "room for some extra calls: {n}");
    assert!(
        (n - 10) as f64 * 0.3 <= room + 1e-9,
        "{n} calls: the decision's burst fits the budget"
    );
}

/// Nodes sharing a campaign share its allowance: the same ledger gives a
/// runner that is one of four nodes at most a quarter of the extra calls,
/// and another node's abandons, once recorded, take room away.
#[test]
fn nodes_share_the_allowance_and_see_each_others_abandons() {
    let now = utc_ms("2026-12-07T10:00:00Z");
    let extra = |nodes: u32, remote_abandons: usize| {
        let mut r = pushy(
            ledger_of(
                &[("2026-12-07T09:30:00Z", LedgerEvent::HumanAnswer, 400)],
                "2026-12-07T10:00:00Z",
            ),
            None,
        );
        r.set_nodes(nodes);
        for _ in 0..remote_abandons {
            r.record_remote(now - 60_000, LedgerEvent::Abandon);
        }
        for a in 0..10 {
            r.handle_event(now, Event::AgentReady(a));
        }
        drain(&mut r);
        r.handle_event(now, leads(1..400));
        dials(&drain(&mut r)).saturating_sub(10)
    };
    let alone = extra(1, 0);
    let one_of_four = extra(4, 0);
    assert!(alone > 4, "room for extra calls alone: {alone}");
    assert!(
        one_of_four < alone && one_of_four * 4 <= alone + 4,
        "a quarter share: {one_of_four} of {alone}"
    );
    // Twelve abandons elsewhere use the window's whole allowance (3% of 400).
    assert_eq!(extra(1, 12), 0);
}

/// The shipped UK campaign: weekdays 09:00-20:00, Saturday 10:00-16:00,
/// Sunday closed, 3% in any 24 hours (London is on UTC in December).
fn uk_broadband() -> crate::campaign::Campaign {
    crate::campaign::Campaign::parse(
        include_str!("../../campaigns/uk-broadband.toml"),
        std::path::Path::new("uk"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

/// Friday evening in London: the window holds Friday's calls, the
/// morning's clean and the afternoon's at the limit. Now the window
/// (24 h to now) has room, but at Saturday's opening the morning's
/// answers will have rolled out and the afternoon's abandons will not:
/// the governor looks ahead and dials no further than the ready agents.
#[test]
fn the_governor_sees_the_overnight_roll_out() {
    let campaign = uk_broadband();
    let now_text = "2026-12-04T19:30:00Z";
    let events = [
        ("2026-12-04T09:30:00Z", LedgerEvent::HumanAnswer, 300),
        ("2026-12-04T15:00:00Z", LedgerEvent::HumanAnswer, 700),
        ("2026-12-04T15:00:00Z", LedgerEvent::Abandon, 21),
    ];
    let now = utc_ms(now_text);
    let run = |windows: Option<DialWindows>| {
        let mut r = pushy(ledger_of(&events, now_text), windows);
        r.handle_event(now, leads(1..400));
        for a in 0..10 {
            r.handle_event(now, Event::AgentReady(a));
        }
        dials(&drain(&mut r))
    };
    // Blind to the calling hours, the window now (21 of 1000) has room.
    assert!(run(None) > 10);
    // With them, Saturday 10:00's window (21 of 700) has none.
    assert_eq!(run(Some(DialWindows::of_campaign(&campaign))), 10);
}

/// Saturday afternoon in London: the campaign closes at 16:00 and stays
/// closed on Sunday, so a window starting now ends before Monday's opening
/// and holds only the calls from now to the close. Twenty minutes before
/// it, the rest of the day's answers cannot carry an abandon: whatever the
/// strategy wants and however much room the last 24 hours have, a call
/// goes out only with a ready agent for it. In the morning, with the day's
/// answers still to come, the extra calls go out; at Friday's opening too.
#[test]
fn the_governor_keeps_the_last_calls_before_a_closed_day_clean() {
    let campaign = uk_broadband();
    let run = |now_text: &str, events: &[(&str, LedgerEvent, usize)], hours: bool| {
        let now = utc_ms(now_text);
        let windows = hours.then(|| DialWindows::of_campaign(&campaign));
        let mut r = pushy(ledger_of(events, now_text), windows);
        r.handle_event(now, leads(1..400));
        for a in 0..10 {
            r.handle_event(now, Event::AgentReady(a));
        }
        dials(&drain(&mut r))
    };
    let friday = ("2026-12-04T16:00:00Z", LedgerEvent::HumanAnswer, 1000);
    let late = [
        friday,
        ("2026-12-05T15:00:00Z", LedgerEvent::HumanAnswer, 150),
    ];
    assert!(run("2026-12-05T15:40:00Z", &late, false) > 10);
    assert_eq!(run("2026-12-05T15:40:00Z", &late, true), 10);
    let morning = [
        friday,
        ("2026-12-05T10:30:00Z", LedgerEvent::HumanAnswer, 300),
    ];
    assert!(run("2026-12-05T11:00:00Z", &morning, true) > 10);
    // Friday's opening: a window starting now ends before Saturday's, but
    // the whole day is ahead; with no answer yet today, yesterday's over
    // 24 hours stand for the pace.
    let thursday = [("2026-12-03T12:00:00Z", LedgerEvent::HumanAnswer, 1000)];
    assert!(run("2026-12-04T09:05:00Z", &thursday, true) > 10);
}

/// A ready agent who pauses while the calls out count on every ready agent
/// stays until they no longer do (a call failing frees them) or takes one
/// of them and pauses after it; one who pauses with calls to spare pauses
/// at once; "ready" again calls a held pause off.
#[test]
fn a_pause_waits_while_the_calls_out_count_on_the_agent() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, leads(1..20));
    r.handle_event(0, Event::AgentReady(0));
    r.handle_event(0, Event::AgentReady(1));
    assert_eq!(dials(&drain(&mut r)), 2, "one call per ready agent");
    r.handle_event(1_000, Event::AgentPause(0));
    drain(&mut r);
    let v = r.agent(0);
    assert_eq!(v.status, AgentStatus::Ready, "held: two calls, two agents");
    assert!(v.pause_pending);
    // A call fails: one call out, one other ready agent: the pause goes.
    r.handle_event(
        2_000,
        Event::CallFailed {
            call: 1,
            outcome: Outcome::Busy,
        },
    );
    let cmds = drain(&mut r);
    assert_eq!(r.agent(0).status, AgentStatus::Paused, "{cmds:?}");
    assert_eq!(dials(&cmds), 0, "no new call for the pausing agent");
    // Agent 1 pauses while its own call rings: held; it takes the call
    // and pauses after the wrap-up.
    r.handle_event(3_000, Event::AgentPause(1));
    assert!(r.agent(1).pause_pending);
    r.handle_event(
        4_000,
        Event::CallAnswered {
            call: 2,
            human: true,
        },
    );
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::Bridge { call: 2, agent: 1 }),
        "{cmds:?}"
    );
    r.handle_event(60_000, Event::CallEnded { call: 2 });
    r.handle_event(70_000, Event::WrapUpDone { agent: 1 });
    drain(&mut r);
    assert_eq!(r.agent(1).status, AgentStatus::Paused);
    // Ready again, one call rings for it; a pause is held, then called off.
    r.handle_event(80_000, Event::AgentReady(1));
    assert_eq!(dials(&drain(&mut r)), 1);
    r.handle_event(81_000, Event::AgentPause(1));
    assert!(r.agent(1).pause_pending);
    r.handle_event(82_000, Event::AgentReady(1));
    let v = r.agent(1);
    assert_eq!((v.status, v.pause_pending), (AgentStatus::Ready, false));
}

/// A supervisor's dial-level cap holds from the next decision; a target
/// above the campaign's limit is taken only up to it.
#[test]
fn a_supervisors_dial_level_cap_applies_at_once() {
    let dials = |r: &mut Runner| {
        drain(r)
            .iter()
            .filter(|c| matches!(c, Command::Dial { .. }))
            .count()
    };
    let mut r = with_room(Runner::new(config(), &Strategy::Ratio { ratio: 3.0 }));
    r.handle_event(0, leads(1..40));
    r.handle_event(0, Event::AgentReady(0));
    r.handle_event(0, Event::AgentReady(1));
    assert_eq!(dials(&mut r), 6, "3 calls for each of 2 agents");

    let mut r = with_room(Runner::new(config(), &Strategy::Ratio { ratio: 3.0 }));
    r.handle_event(
        0,
        Event::Settings {
            max_dial_level: 1.5,
            target_percent: 9.0,
        },
    );
    r.handle_event(0, leads(1..40));
    r.handle_event(0, Event::AgentReady(0));
    r.handle_event(0, Event::AgentReady(1));
    assert_eq!(dials(&mut r), 3, "1.5 calls for each of 2 agents");
    assert_eq!(r.config.target_percent, 3.0, "cut to the limit");
}

fn kept(id: LeadId, agent: AgentId, until_ms: u64) -> LeadInfo {
    LeadInfo {
        id,
        foresight: None,
        owner: Some(LeadOwner { agent, until_ms }),
    }
}

fn dialled(cmds: &[Command]) -> Vec<(CallId, LeadId)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Dial { call, lead } => Some((*call, *lead)),
            _ => None,
        })
        .collect()
}

/// A callback an agent kept waits for that agent: not dialled while
/// only others are ready, dialled the moment its agent is, and put
/// through to its agent even though another has been ready longer.
#[test]
fn a_kept_callback_waits_for_its_agent_and_goes_to_them() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::AgentLogin(1));
    r.handle_event(
        0,
        Event::Leads(vec![
            kept(1, 1, 900_000),
            LeadInfo {
                id: 2,
                foresight: None,
                owner: None,
            },
        ]),
    );
    r.handle_event(0, Event::AgentReady(0));
    let cmds = drain(&mut r);
    assert_eq!(dialled(&cmds), vec![(1, 2)], "agent 0's call: {cmds:?}");
    r.handle_event(1_000, Event::AgentReady(1));
    let cmds = drain(&mut r);
    assert_eq!(
        dialled(&cmds),
        vec![(2, 1)],
        "the kept lead, and nothing else for agent 1: {cmds:?}"
    );
    // Agent 0's call fails: agent 0 is ready, and longest ready.
    r.handle_event(
        2_000,
        Event::CallFailed {
            call: 1,
            outcome: Outcome::Busy,
        },
    );
    drain(&mut r);
    r.handle_event(
        3_000,
        Event::CallAnswered {
            call: 2,
            human: true,
        },
    );
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::Bridge { call: 2, agent: 1 }),
        "{cmds:?}"
    );
    assert_eq!(r.agent(1).status, AgentStatus::OnCall(2));
    assert_eq!(r.agent(0).status, AgentStatus::Ready);
    assert_eq!(r.status().window_abandons, 0);
}

/// Once the grace runs out the callback is anyone's: the runner wakes
/// for it and the first ready agent's call dials it first.
#[test]
fn a_kept_callback_is_anyones_after_the_grace() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::Leads(vec![kept(7, 1, 10_000)]));
    r.handle_event(0, Event::AgentReady(0));
    let cmds = drain(&mut r);
    assert!(dialled(&cmds).is_empty(), "{cmds:?}");
    assert_eq!(r.poll_timeout(), Some(10_000));
    r.handle_timeout(10_000);
    let cmds = drain(&mut r);
    assert_eq!(dialled(&cmds), vec![(1, 7)], "{cmds:?}");
    r.handle_event(
        12_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    let cmds = drain(&mut r);
    assert!(
        cmds.contains(&Command::Bridge { call: 1, agent: 0 }),
        "{cmds:?}"
    );
    // A lead whose grace already ran out when it came is anyone's too.
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::AgentReady(0));
    r.handle_event(20_000, Event::Leads(vec![kept(8, 1, 20_000)]));
    let cmds = drain(&mut r);
    assert_eq!(dialled(&cmds), vec![(1, 8)], "{cmds:?}");
}

/// The agent a kept callback rings for stays for it: a pause or logout
/// asked for meanwhile waits until the call resolves; unanswered, the
/// agent is back at the head of the queue (or leaves as asked).
#[test]
fn the_agent_of_a_ringing_kept_callback_stays_until_it_resolves() {
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::Leads(vec![kept(1, 0, 900_000)]));
    r.handle_event(0, Event::AgentReady(0));
    assert_eq!(dialled(&drain(&mut r)), vec![(1, 1)]);
    r.handle_event(1_000, Event::AgentPause(0));
    let v = r.agent(0);
    assert_eq!(v.status, AgentStatus::Ready);
    assert!(v.pause_pending, "{v:?}");
    // Answered: the agent takes it, and pauses after the wrap-up.
    r.handle_event(
        2_000,
        Event::CallAnswered {
            call: 1,
            human: true,
        },
    );
    assert!(drain(&mut r).contains(&Command::Bridge { call: 1, agent: 0 }));
    r.handle_event(60_000, Event::CallEnded { call: 1 });
    r.handle_event(70_000, Event::WrapUpDone { agent: 0 });
    assert_eq!(r.agent(0).status, AgentStatus::Paused);

    // Unanswered with a logout pending: the agent leaves.
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::Leads(vec![kept(1, 0, 900_000)]));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    r.handle_event(1_000, Event::AgentLogout(0));
    assert!(r.agent(0).logout_pending);
    r.handle_event(
        2_000,
        Event::CallFailed {
            call: 1,
            outcome: Outcome::NoAnswer,
        },
    );
    assert_eq!(r.agent(0).status, AgentStatus::LoggedOut);
    assert_eq!(r.status().ready, 0);

    // Unanswered (a machine): ready again, and dialled for at once.
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, leads(10..20));
    r.handle_event(0, Event::Leads(vec![kept(1, 0, 900_000)]));
    r.handle_event(0, Event::AgentReady(0));
    assert_eq!(dialled(&drain(&mut r)), vec![(1, 1)], "the kept lead first");
    r.handle_event(
        3_000,
        Event::CallAnswered {
            call: 1,
            human: false,
        },
    );
    let cmds = drain(&mut r);
    assert_eq!(dialled(&cmds), vec![(2, 10)], "{cmds:?}");
    // And its ring timeout frees the agent too.
    let mut r = Runner::new(config(), &Strategy::Progressive);
    r.handle_event(0, Event::Leads(vec![kept(1, 0, 900_000)]));
    r.handle_event(0, Event::AgentReady(0));
    drain(&mut r);
    assert_eq!(r.poll_timeout(), Some(20_000));
    r.handle_timeout(20_000);
    let cmds = drain(&mut r);
    assert!(cmds.contains(&Command::Cancel { call: 1 }), "{cmds:?}");
    assert_eq!(r.agent(0).status, AgentStatus::Ready);
    assert_eq!(r.status().ringing, 0);
}
