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
    }
}

fn drain(r: &mut Runner) -> Vec<Command> {
    std::iter::from_fn(|| r.poll_command()).collect()
}

fn leads(ids: std::ops::Range<u64>) -> Event {
    Event::Leads(
        ids.map(|id| LeadInfo {
            id,
            foresight: None,
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
fn an_answer_with_no_agent_hears_the_message_after_the_connect_limit() {
    let mut r = Runner::new(config(), &Strategy::Ratio { ratio: 2.0 });
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
    let mut r = Runner::new(config(), &Strategy::Ratio { ratio: 2.0 });
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
