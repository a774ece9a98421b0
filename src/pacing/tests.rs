use super::estimate::{Estimators, Priors};
use super::*;

fn snapshot<'a>(
    est: &'a Estimators,
    busy: &'a [f64],
    ringing: &'a [f64],
    ready: u32,
) -> Snapshot<'a> {
    Snapshot {
        now_ms: 1_000_000,
        active_agents: ready + busy.len() as u32,
        ready,
        busy_elapsed_s: busy,
        ringing_elapsed_s: ringing,
        waiting: 0,
        ring_timeout_s: 25.0,
        ledger: LedgerView {
            human_answers: 1000,
            abandons: 0,
            hour_ahead: (1000, 0),
        },
        limit_percent: 3.0,
        target_percent: 2.0,
        max_dial_level: 3.0,
        est,
        oracle: None,
    }
}

#[test]
fn progressive_dials_one_call_per_ready_agent_minus_calls_out() {
    let est = Estimators::new(Priors::default());
    let mut p = pacer(&Strategy::Progressive);
    assert_eq!(p.decide(&snapshot(&est, &[], &[], 4)).launch, 4);
    assert_eq!(p.decide(&snapshot(&est, &[], &[1.0, 2.0], 4)).launch, 2);
    assert_eq!(p.decide(&snapshot(&est, &[10.0], &[1.0; 5], 4)).launch, 0);
}

#[test]
fn ratio_dials_r_calls_per_ready_agent() {
    let est = Estimators::new(Priors::default());
    let mut p = pacer(&Strategy::Ratio { ratio: 2.5 });
    assert_eq!(p.decide(&snapshot(&est, &[], &[], 4)).launch, 10);
    assert_eq!(p.decide(&snapshot(&est, &[], &[0.0; 3], 4)).launch, 7);
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
    let fresh = [1.0; 10];
    assert_eq!(p.decide(&snapshot(&est, &fresh, &[], 0)).launch, 0);
    // Ten agents 195 s in: all free within the ring time.
    let finishing = [195.0; 10];
    let d = p.decide(&snapshot(&est, &finishing, &[], 0));
    assert!(d.launch >= 10, "{d:?}");
}

#[test]
fn predictive_falls_back_to_progressive_without_ledger_budget() {
    let est = Estimators::new(Priors::default());
    let mut p = Predictive::new();
    let busy = [250.0; 10];
    let mut s = snapshot(&est, &busy, &[], 2);
    s.ledger = LedgerView {
        human_answers: 100,
        abandons: 3,
        hour_ahead: (100, 3),
    };
    assert_eq!(p.decide(&s).launch, 2);
}

#[test]
fn poisson_binomial_tail_matches_the_normal_for_many_terms() {
    // The same outlook computed exactly and approximately agree closely.
    let est = Estimators::new(Priors::default());
    let busy: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i) * 3.0).collect();
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
