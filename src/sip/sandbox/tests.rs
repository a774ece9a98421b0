//! The sandbox against our own UAC, both sans-IO, on virtual time (the
//! quinn `Pair` pattern): each outcome, retransmissions over a lossy link,
//! and the agent hold.

use super::*;
use crate::sip::Transport;
use crate::sip::uac::{
    CallEvent, CallParams, Endpoint, EndpointConfig, Outcome, RingTimeout, Side, Summary,
};

const UAC: &str = "127.0.0.1:5070";
const UAS: &str = "127.0.0.1:5060";

struct Pair {
    ep: Endpoint,
    sb: Sandbox,
    now: Instant,
    /// Drop every n-th datagram in each direction (0: none).
    lose_every: usize,
    sent: usize,
}

impl Pair {
    fn new(cfg: SandboxConfig) -> Pair {
        Pair {
            ep: Endpoint::new(EndpointConfig {
                local: UAC.parse().unwrap(),
                transport: Transport::Udp,
                timers: Timers::default(),
                seed: 3,
            }),
            sb: Sandbox::new(cfg, UAS.parse().unwrap(), "127.0.0.1:6000".parse().unwrap()),
            now: Instant::now(),
            lose_every: 0,
            sent: 0,
        }
    }

    fn lost(&mut self) -> bool {
        self.sent += 1;
        self.lose_every > 0 && self.sent.is_multiple_of(self.lose_every)
    }

    /// Runs until every call ended or `limit` of virtual time passed.
    fn run(&mut self, calls: usize, max_talk: Option<Duration>, limit: Duration) -> Vec<Summary> {
        for _ in 0..calls {
            self.ep.start_call(
                self.now,
                CallParams {
                    ids: None,
                    target: format!("sip:+15550001234@{UAS}"),
                    from_user: "d".into(),
                    ring_timeout: RingTimeout::new(Duration::from_secs(15)).unwrap(),
                    credentials: None,
                    media_addr: "127.0.0.1:4000".parse().unwrap(),
                    max_talk,
                    display_name: None,
                    extra_headers: Vec::new(),
                    destinations: Vec::new(),
                },
            );
        }
        let end = self.now + limit;
        let mut done = Vec::new();
        while self.now < end && done.len() < calls {
            let mut moved = false;
            while let Some(b) = self.ep.poll_transmit() {
                moved = true;
                if !self.lost() {
                    self.sb.handle_datagram(self.now, UAC.parse().unwrap(), &b);
                }
            }
            while let Some((_, b)) = self.sb.poll_transmit() {
                moved = true;
                if !self.lost() {
                    let _ = self.ep.handle_bytes(self.now, &b);
                }
            }
            while let Some((_, e)) = self.ep.poll_event() {
                if let CallEvent::Ended(s) = e {
                    done.push(s);
                }
            }
            if moved {
                continue;
            }
            let next = [self.ep.poll_timeout(), self.sb.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { break };
            self.now = next.max(self.now);
            self.ep.handle_timeout(self.now);
            self.sb.handle_timeout(self.now);
        }
        done
    }
}

fn only(w: &str) -> SandboxConfig {
    let mut weights = Weights {
        answer: 0.0,
        busy: 0.0,
        no_answer: 0.0,
        reject: 0.0,
        unavailable: 0.0,
    };
    match w {
        "answer" => weights.answer = 1.0,
        "busy" => weights.busy = 1.0,
        "no_answer" => weights.no_answer = 1.0,
        "reject" => weights.reject = 1.0,
        _ => weights.unavailable = 1.0,
    }
    SandboxConfig {
        weights,
        ring: (Duration::from_secs(1), Duration::from_secs(3)),
        talk_mean: Duration::from_secs(10),
        ..SandboxConfig::default()
    }
}

#[test]
fn each_drawn_outcome_reaches_the_uac_as_that_outcome() {
    for (w, want, code) in [
        ("answer", Outcome::Answered, 200),
        ("busy", Outcome::Busy, 486),
        ("no_answer", Outcome::NoAnswer, 487),
        ("reject", Outcome::Rejected, 603),
        ("unavailable", Outcome::Unavailable, 503),
    ] {
        let mut p = Pair::new(only(w));
        let s = p.run(1, None, Duration::from_secs(600));
        assert_eq!(s.len(), 1, "{w}");
        assert_eq!(s[0].outcome, want, "{w}");
        assert_eq!(s[0].final_code, Some(code), "{w}");
        assert_eq!(s[0].codes[0], 100, "{w}");
        assert!(s[0].codes.contains(&180), "{w}");
        if want == Outcome::Answered {
            assert_eq!(s[0].hangup, Some(Side::Remote), "the callee hangs up");
            let ring = s[0].answer_after.unwrap();
            assert!(ring >= Duration::from_secs(1) && ring <= Duration::from_secs(3));
        }
    }
}

/// A post-dial delay: 100 at once, 180 after the set-up, the ring time
/// from the 180. Our UAC lets the phone ring its whole 15 s from the 180
/// (not from the INVITE), which the sandbox measures.
#[test]
fn the_set_up_delay_goes_before_the_180_and_the_ring_is_measured_from_it() {
    let mut p = Pair::new(SandboxConfig {
        setup: Duration::from_secs(4),
        ..only("no_answer")
    });
    let s = p.run(3, None, Duration::from_secs(600));
    assert_eq!(s.len(), 3);
    for c in &s {
        assert_eq!(c.outcome, Outcome::NoAnswer, "{c:?}");
        assert_eq!(c.codes, vec![100, 180, 487], "{c:?}");
        assert_eq!(c.progress_after, Some(Duration::from_secs(4)), "{c:?}");
    }
    assert_eq!(p.sb.stats().cancelled, 3);
    assert_eq!(p.sb.stats().shortest_cancelled_ring_ms, Some(15_000));
    let mut p = Pair::new(SandboxConfig {
        setup: Duration::from_secs(4),
        ..only("answer")
    });
    let s = p.run(1, None, Duration::from_secs(600));
    let ring = s[0].answer_after.unwrap();
    assert!(
        ring >= Duration::from_secs(5) && ring <= Duration::from_secs(7),
        "{ring:?}"
    );
    assert_eq!(p.sb.stats().shortest_cancelled_ring_ms, None);
}

#[test]
fn outcome_mix_follows_the_weights() {
    let cfg = SandboxConfig {
        ring: (Duration::from_millis(100), Duration::from_millis(500)),
        talk_mean: Duration::from_secs(1),
        seed: 42,
        ..SandboxConfig::default()
    };
    let mut p = Pair::new(cfg);
    let s = p.run(2000, None, Duration::from_secs(3600));
    assert_eq!(s.len(), 2000);
    let count = |o| s.iter().filter(|x| x.outcome == o).count() as f64 / 2000.0;
    // Weights 0.6 / 0.15 / 0.15 / 0.05 / 0.05; 4 standard errors of slack.
    for (o, want) in [
        (Outcome::Answered, 0.6),
        (Outcome::Busy, 0.15),
        (Outcome::NoAnswer, 0.15),
        (Outcome::Rejected, 0.05),
        (Outcome::Unavailable, 0.05),
    ] {
        let se = (want * (1.0 - want) / 2000.0f64).sqrt();
        assert!(
            (count(o) - want).abs() < 4.0 * se,
            "{o:?}: {} vs {want}",
            count(o)
        );
    }
    let st = p.sb.stats();
    assert_eq!(st.invites, 2000);
    assert_eq!(
        st.answered + st.busy + st.cancelled + st.rejected + st.unavailable,
        2000
    );
}

#[test]
fn a_lossy_link_is_repaired_by_retransmissions() {
    let mut p = Pair::new(only("answer"));
    p.lose_every = 4;
    let s = p.run(20, None, Duration::from_secs(600));
    assert_eq!(s.len(), 20);
    assert!(s.iter().all(|x| x.outcome == Outcome::Answered), "{s:?}");
    assert!(p.ep.stats().retransmissions > 0);
}

#[test]
fn agent_mode_holds_until_the_caller_hangs_up() {
    let mut cfg = only("answer");
    cfg.talk_mean = Duration::ZERO;
    let mut p = Pair::new(cfg);
    let s = p.run(1, Some(Duration::from_secs(300)), Duration::from_secs(1000));
    assert_eq!(s[0].outcome, Outcome::Answered);
    assert_eq!(s[0].hangup, Some(Side::Local));
    assert_eq!(s[0].talk, Some(Duration::from_secs(300)));
    assert_eq!(p.sb.stats().caller_byes, 1);
    assert_eq!(p.sb.stats().our_byes, 0);
}

#[test]
fn unacknowledged_200_is_retransmitted_then_ended_with_bye() {
    let mut sb = Sandbox::new(
        only("answer"),
        UAS.parse().unwrap(),
        "127.0.0.1:6000".parse().unwrap(),
    );
    let mut ep = Endpoint::new(EndpointConfig {
        local: UAC.parse().unwrap(),
        transport: Transport::Udp,
        timers: Timers::default(),
        seed: 1,
    });
    let t0 = Instant::now();
    ep.start_call(
        t0,
        CallParams {
            ids: None,
            target: format!("sip:1@{UAS}"),
            from_user: "d".into(),
            ring_timeout: RingTimeout::default(),
            credentials: None,
            media_addr: "127.0.0.1:4000".parse().unwrap(),
            max_talk: None,
            display_name: None,
            extra_headers: Vec::new(),
            destinations: Vec::new(),
        },
    );
    let invite = ep.poll_transmit().unwrap();
    sb.handle_datagram(t0, UAC.parse().unwrap(), &invite);
    // Never deliver anything back: the caller never ACKs.
    let mut oks = 0;
    let mut byes = 0;
    let mut now = t0;
    while let Some(t) = sb.poll_timeout() {
        if t > t0 + Duration::from_secs(120) {
            break;
        }
        now = t;
        sb.handle_timeout(now);
        while let Some((_, b)) = sb.poll_transmit() {
            match message::parse(&b, false).unwrap().0 {
                Message::Response(r) if r.code == 200 => oks += 1,
                Message::Request(r) if r.method == Method::Bye => byes += 1,
                _ => {}
            }
        }
    }
    assert!(oks >= 7, "200 retransmitted on T1 doubling to T2: {oks}");
    assert!(byes >= 1, "BYE after 64*T1 without ACK");
    assert_eq!(sb.calls(), 0, "forgotten after lingering");
    let _ = now;
}

/// A press is one RFC 4733 event: the first packet carries the marker,
/// all share one timestamp and source, the last three are the end packet
/// repeated, and a detector tells the digit once. A key that is not a
/// DTMF key sends nothing.
#[test]
fn a_key_press_is_one_telephone_event() {
    use crate::media::dtmf::{Detector, Event};
    use crate::media::rtp::Packet;
    let packets = key_press('#', 77, 65_534);
    assert_eq!(packets.len(), 5);
    let mut detector = Detector::default();
    let mut told = Vec::new();
    for (i, bytes) in packets.iter().enumerate() {
        let p = Packet::parse(bytes).unwrap();
        assert_eq!(p.payload_type, sdp::PT_TELEPHONE_EVENT);
        assert_eq!((p.marker, p.ssrc), (i == 0, 77));
        assert_eq!(p.sequence, 65_534u16.wrapping_add(i as u16));
        assert_eq!(Event::parse(p.payload).unwrap().end, i >= 2);
        told.extend(detector.packet(&p));
    }
    assert_eq!(told, vec!['#']);
    assert!(key_press('x', 77, 1).is_empty());
}
