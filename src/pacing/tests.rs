use super::estimate::{Estimators, Priors};
use super::predictive::{Outlook, first_ms_reaching, normal_cdf};
use super::*;

const NOW_MS: u64 = 1_000_000;

/// When calls that started `secs` seconds before `NOW_MS` started.
fn ago(secs: &[f64]) -> Vec<u64> {
    secs.iter().map(|s| NOW_MS - (s * 1000.0) as u64).collect()
}

fn snapshot<'a>(
    est: &'a Estimators,
    busy: &'a [u64],
    ringing: &'a [u64],
    ready: u32,
) -> Snapshot<'a> {
    Snapshot {
        now_ms: NOW_MS,
        active_agents: ready + busy.len() as u32,
        ready,
        busy_since_ms: busy,
        wrap_since_ms: &[],
        ringing_since_ms: ringing,
        waiting: 0,
        ring_timeout_s: 25.0,
        ledger: LedgerView::new((1000, 0), (1000, 0), 0.03),
        limit_percent: 3.0,
        target_percent: 2.0,
        max_dial_level: 3.0,
        est,
        oracle: None,
    }
}

/// A decision on `s`, held to its governor as the runner does.
fn decide<P: Pacer + ?Sized>(p: &mut P, s: &Snapshot<'_>) -> Decision {
    let mut gov = Governor::new(s);
    let mut d = p.decide(s, &mut gov);
    d.launch = gov.admit(d.launch);
    d
}

#[test]
fn progressive_dials_one_call_per_ready_agent_minus_calls_out() {
    let est = Estimators::new(Priors::default());
    let mut p = pacer(&Strategy::Progressive);
    assert_eq!(decide(&mut *p, &snapshot(&est, &[], &[], 4)).launch, 4);
    assert_eq!(
        decide(&mut *p, &snapshot(&est, &[], &ago(&[1.0, 2.0]), 4)).launch,
        2
    );
    assert_eq!(
        decide(&mut *p, &snapshot(&est, &ago(&[10.0]), &ago(&[1.0; 5]), 4)).launch,
        0
    );
}

#[test]
fn ratio_dials_r_calls_per_ready_agent() {
    let est = Estimators::new(Priors::default());
    let mut p = pacer(&Strategy::Ratio { ratio: 2.5 });
    assert_eq!(decide(&mut *p, &snapshot(&est, &[], &[], 4)).launch, 10);
    assert_eq!(
        decide(&mut *p, &snapshot(&est, &[], &ago(&[0.0; 3]), 4)).launch,
        7
    );
}

#[test]
fn predictive_dials_ahead_for_agents_about_to_finish_but_not_for_fresh_calls() {
    let mut est = Estimators::new(Priors {
        weight: 1.0,
        ..Priors::default()
    });
    for _ in 0..400 {
        est.record_handle(200.0);
    }
    let mut p = Predictive::new();
    // Ten agents who started a 200 s call just now: nobody is close.
    let fresh = ago(&[1.0; 10]);
    assert_eq!(decide(&mut p, &snapshot(&est, &fresh, &[], 0)).launch, 0);
    // Ten agents 195 s in: all free within the ring time.
    let finishing = ago(&[195.0; 10]);
    let d = decide(&mut p, &snapshot(&est, &finishing, &[], 0));
    assert!(d.launch >= 10, "{d:?}");
}

#[test]
fn predictive_falls_back_to_progressive_without_ledger_budget() {
    let est = Estimators::new(Priors::default());
    let mut p = Predictive::new();
    let busy = ago(&[250.0; 10]);
    let mut s = snapshot(&est, &busy, &[], 2);
    s.ledger = LedgerView::new((100, 3), (100, 3), 0.03);
    assert_eq!(decide(&mut p, &s).launch, 2);
}

#[test]
fn poisson_binomial_tail_matches_the_normal_for_many_terms() {
    // The same outlook computed exactly and approximately agree closely.
    let est = Estimators::new(Priors::default());
    let busy: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i) * 3.0).collect();
    let busy = ago(&busy);
    let s = snapshot(&est, &busy, &[], 0);
    let exact = Outlook::new(&s);
    assert!(exact.exact);
    let mut approx = Outlook::new(&s);
    approx.exact = false;
    let (e, a) = (exact.p_no_agent(), approx.p_no_agent());
    assert!((e - a).abs() < 0.05, "exact {e} vs normal {a}");
}

#[test]
fn normal_cdf_is_accurate() {
    assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    assert!((normal_cdf(1.96) - 0.975_002).abs() < 1e-5);
    assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
}

#[test]
fn expected_excess_counts_callers_left_without_an_agent() {
    // One agent for sure; two calls each a person with probability 1/2:
    // only when both answer is one left over, so E = 1/4.
    let mut o = Outlook {
        free_cdf: vec![0.0, 1.0],
        demand_pmf: vec![1.0],
        free_mean: 1.0,
        mean: -1.0,
        var: 0.0,
        exact: true,
        p_new: 0.3,
    };
    o.add_call(0.5);
    o.add_call(0.5);
    assert!((o.expected_excess() - 0.25).abs() < 1e-12);
    // The normal form agrees for many terms.
    let est = Estimators::new(Priors::default());
    let busy: Vec<f64> = (0..40).map(|i| 200.0 + f64::from(i) * 5.0).collect();
    let ringing: Vec<f64> = (0..20).map(|i| f64::from(i) * 0.5).collect();
    let (busy, ringing) = (ago(&busy), ago(&ringing));
    let mut s = snapshot(&est, &busy, &ringing, 0);
    s.waiting = 2;
    let exact = Outlook::new(&s);
    let mut approx = Outlook::new(&s);
    approx.exact = false;
    let (e, a) = (exact.expected_excess(), approx.expected_excess());
    assert!(
        e > 0.0 && (e - a).abs() < 0.1 * e.max(0.1),
        "exact {e} vs normal {a}"
    );
}

#[test]
fn feedback_raises_the_level_while_agents_sit_ready_and_halves_it_past_the_limit() {
    let est = Estimators::new(Priors::default());
    let busy = ago(&[30.0; 5]);
    let mut f = Feedback::new();
    // Half the team ready for a minute: the level climbs every 15 s.
    for t in 0..60u64 {
        let mut s = snapshot(&est, &busy, &[], 5);
        s.now_ms = t * 1000;
        decide(&mut f, &s);
    }
    let raised = f.dial_level();
    assert!(raised > 1.5, "level {raised}");
    // 5 abandons in 100 answers today against a 3% limit: halved at the
    // next adjustment, and again at the one after.
    for i in 0..100 {
        f.observe(61_000, i < 5);
    }
    let mut s = snapshot(&est, &busy, &[], 5);
    s.now_ms = 75_000;
    decide(&mut f, &s);
    assert!((f.dial_level() - (raised / 2.0).max(1.0)).abs() < 1e-9);
    s.now_ms = 90_000;
    decide(&mut f, &s);
    assert!((f.dial_level() - (raised / 4.0).max(1.0)).abs() < 1e-9);
}

#[test]
fn threshold_counts_a_busy_agent_free_only_when_almost_surely_done() {
    let mut est = Estimators::new(Priors::default());
    // Every call so far took 100 s: an agent 95 s in is almost surely free
    // within the ring time (the prior's tail keeps it under 97%), one 10 s
    // in surely not.
    for _ in 0..400 {
        est.record_handle(100.0);
    }
    est.refresh();
    let mut t = Threshold::new(0.9);
    let ph = est.human_rate();
    let d = decide(&mut t, &snapshot(&est, &ago(&[95.0, 96.0]), &[], 0));
    assert_eq!(d.launch, (2.0 / ph).floor() as u32);
    let d = decide(&mut t, &snapshot(&est, &ago(&[10.0, 12.0]), &[], 0));
    assert_eq!(d.launch, 0);
}

#[test]
fn oracle_dials_a_person_only_when_an_agent_will_be_free_at_the_answer() {
    let est = Estimators::new(Priors::default());
    let mut o = Oracle::new();
    let leads = [
        // A machine: free to dial.
        Foresight {
            human: false,
            ring_ms: 5_000,
            handle_ms: 0,
        },
        // A person answering in 10 s: the agent is free at 8 s.
        Foresight {
            human: true,
            ring_ms: 10_000,
            handle_ms: 100_000,
        },
        // Another person: no agent until 108 s, so wait.
        Foresight {
            human: true,
            ring_ms: 10_000,
            handle_ms: 100_000,
        },
    ];
    let busy_free = [1_008_000];
    let busy = ago(&[50.0]);
    let mut s = snapshot(&est, &busy, &[], 0);
    s.oracle = Some(OracleView {
        busy_free_at_ms: &busy_free,
        human_in_flight: &[],
        waiting_handle_ms: &[],
        next_leads: &leads,
    });
    let d = decide(&mut o, &s);
    assert_eq!(d.launch, 2);
    // Wake when the third lead's answer would meet the agent freed by the
    // second: 8 s + 10 s ring + 100 s handle, less its 10 s ring.
    // The second person is answered at 10 s and holds the agent 100 s; the
    // third must then be dialled 10 s (its ring) before 110 s.
    assert_eq!(d.wake_at_ms, Some(1_000_000 + 10_000 + 100_000 - 10_000));
}

#[test]
fn ring_timeout_in_ms_matches_the_seconds_comparison() {
    let secs = |n: u64| n as i64 as f64 / 1000.0;
    for t in [0.001, 0.3, 1.0, 12.345, 25.0, 30.0001, 119.9999, 1e6 / 3.0] {
        let n = first_ms_reaching(t);
        assert!(secs(n) >= t && secs(n - 1) < t, "{t}: {n}");
    }
    assert_eq!(first_ms_reaching(0.0), 0);
    assert_eq!(first_ms_reaching(-1.0), 0);
    assert_eq!(first_ms_reaching(f64::INFINITY), u64::MAX);
    assert_eq!(first_ms_reaching(f64::NAN), u64::MAX);
}

/// An agent in wrap-up is judged by the wrap-up so far once wrap-up times
/// have been seen: 15 s into a wrap-up that always lasts 16-20 s, the agent
/// is almost surely free within the horizon, though 200 s since the bridge
/// says little on the handle-time model; an agent still talking is judged
/// as before.
#[test]
fn an_agent_in_wrap_up_is_judged_by_the_wrap_up_so_far() {
    let mut est = Estimators::new(Priors::default());
    for i in 0..200 {
        est.record_wrap(16.0 + f64::from(i % 5));
        est.record_handle(260.0 + f64::from(i % 40) * 10.0);
    }
    est.refresh();
    let busy = ago(&[200.0]);
    let talking = [u64::MAX];
    let wrapping = ago(&[15.0]);
    let mut s = snapshot(&est, &busy, &[], 0);
    let base = Outlook::new(&s).free_mean;
    s.wrap_since_ms = &talking;
    assert!(
        (Outlook::new(&s).free_mean - base).abs() < 1e-12,
        "talking: unchanged"
    );
    s.wrap_since_ms = &wrapping;
    let wrap = Outlook::new(&s).free_mean;
    assert!(base < 0.3, "handle model: {base}");
    assert!(wrap > 0.95, "wrap-up model: {wrap}");
    // Without enough wrap-up times, the handle model answers.
    let mut cold = Estimators::new(Priors::default());
    for i in 0..200 {
        cold.record_handle(260.0 + f64::from(i % 40) * 10.0);
    }
    cold.refresh();
    let mut s = snapshot(&cold, &busy, &[], 0);
    let before = Outlook::new(&s).free_mean;
    s.wrap_since_ms = &wrapping;
    assert!((Outlook::new(&s).free_mean - before).abs() < 1e-12);
}
