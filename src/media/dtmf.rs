//! RFC 4733 telephone-events (DTMF) on a call's RTP, sans-IO: reading the
//! digits the far end sends ([`Detector`]) and making the packets of the
//! digits we send ([`Tones`]).
//!
//! Written here rather than taken from a crate: it is 4-byte payloads and
//! a timetable, driven by the relay's own clock like the rest of the media
//! path, and no maintained crate does RFC 4733 without its own RTP stack.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rtp::Packet;

/// The digits RFC 4733 events 0-15 stand for.
const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

/// The most digits one request may send.
pub const MAX_DIGITS: usize = 32;

/// The event code of a digit (`0`-`9`, `*`, `#`, `A`-`D`, either case).
pub fn event_of(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&c| char::from(c) == d)
        .map(|i| i as u8)
}

/// The digit of an event code (0-15).
pub fn digit_of(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).map(|&c| char::from(c))
}

/// Checks a string of digits to send: 1 to [`MAX_DIGITS`] of `0-9*#A-D`.
/// Returns it in upper case, or what is wrong.
pub fn check_digits(s: &str) -> Result<String, String> {
    let n = s.chars().count();
    if n == 0 || n > MAX_DIGITS {
        return Err(format!("1 to {MAX_DIGITS} digits"));
    }
    match s.chars().find(|&c| event_of(c).is_none()) {
        Some(c) => Err(format!("{c:?} is not a DTMF digit (0-9, *, #, A-D)")),
        None => Ok(s.to_ascii_uppercase()),
    }
}

/// One telephone-event payload (RFC 4733 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The event code (0-15 for DTMF).
    pub event: u8,
    /// The end bit.
    pub end: bool,
    /// Power level, -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, timestamp units.
    pub duration: u16,
}

impl Event {
    /// Reads a payload; `None` when shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Option<Event> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(Event {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte payload.
    pub fn bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// How many recent events a [`Detector`] remembers: a late or reordered
/// packet of any of them (an end packet overtaken by the next digit) is
/// not told again.
const REMEMBERED: usize = 16;

/// Tells the digits a stream's telephone-events carry, once each: an event
/// is one RTP timestamp of one source, however many packets (updates, the
/// three end packets) repeat it, and is told at its first packet.
#[derive(Debug, Default)]
pub struct Detector {
    seen: std::collections::VecDeque<(u32, u32)>,
}

impl Detector {
    /// A packet of the telephone-event payload type: the digit it starts,
    /// if it starts one.
    pub fn packet(&mut self, p: &Packet<'_>) -> Option<char> {
        let e = Event::parse(p.payload)?;
        let key = (p.ssrc, p.timestamp);
        if self.seen.contains(&key) {
            return None;
        }
        if self.seen.len() == REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back(key);
        digit_of(e.event)
    }
}

/// Each digit sounds this long.
pub const TONE: Duration = Duration::from_millis(100);
/// And this much silence follows it.
pub const GAP: Duration = Duration::from_millis(60);
/// Updates go out this often while a digit sounds.
const STEP: Duration = Duration::from_millis(20);
/// The level the events ask for, -dBm0.
const VOLUME: u8 = 10;
/// Updates per digit (TONE / STEP), before its three end packets.
const UPDATES: u32 = 5;

/// Where a stream we send stands, for events to join it: its source,
/// next sequence number and the RTP time now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPos {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// The sequence number the next packet takes.
    pub seq: u16,
    /// The RTP timestamp now (8 kHz).
    pub timestamp: u32,
}

/// The digits queued to send on a stream and the packets that sound them:
/// per digit an update every 20 ms for 100 ms (the first with the marker
/// bit), then the end packet three times 20 ms apart, and the next digit
/// 60 ms after the tone's end.
#[derive(Debug, Default)]
pub struct Tones {
    queue: VecDeque<u8>,
    current: Option<Sounding>,
    /// No new digit before this.
    quiet_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Sounding {
    event: u8,
    started: Instant,
    timestamp: u32,
    /// Updates sent so far (the end packets count on).
    sent: u32,
}

impl Tones {
    /// Queues `digits` (already checked, see [`check_digits`]).
    pub fn push(&mut self, digits: &str) {
        self.queue.extend(digits.chars().filter_map(event_of));
    }

    /// Nothing queued or sounding.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.current.is_none()
    }

    /// When [`Tones::poll`] next has a packet.
    pub fn next_at(&self) -> Option<Instant> {
        match self.current {
            Some(s) => Some(s.started + STEP * s.sent),
            None if self.queue.is_empty() => None,
            None => Some(self.quiet_until.unwrap_or_else(Instant::now)),
        }
    }

    /// The payload due at `now`, if any, with its marker bit and the
    /// timestamp it carries (a new digit takes `pos`'s, the RTP time
    /// now). Call until `None`.
    pub fn poll(&mut self, now: Instant, pos: StreamPos) -> Option<(Event, bool, u32)> {
        if self.current.is_none() {
            if self.quiet_until.is_some_and(|q| now < q) {
                return None;
            }
            let event = self.queue.pop_front()?;
            self.current = Some(Sounding {
                event,
                started: now,
                timestamp: pos.timestamp,
                sent: 0,
            });
        }
        let s = self.current.as_mut()?;
        let k = s.sent;
        // Updates every STEP, and the end packet sent three times at the
        // same interval from the tone's end (RFC 4733 2.5.1.4).
        if now < s.started + STEP * k {
            return None;
        }
        let per_step = (STEP.as_millis() * 8) as u32;
        let e = Event {
            event: s.event,
            end: k >= UPDATES,
            volume: VOLUME,
            duration: (per_step * (k + 1).min(UPDATES)) as u16,
        };
        let ts = s.timestamp;
        s.sent += 1;
        if s.sent >= UPDATES + 3 {
            // The silence counts from the tone's end, not from its last
            // end packet's repeat.
            self.quiet_until = Some(s.started + TONE + GAP);
            self.current = None;
        }
        Some((e, k == 0, ts))
    }
}

/// Writes an event packet into `out`.
pub fn write_packet(out: &mut Vec<u8>, pt: u8, marker: bool, pos: StreamPos, ts: u32, e: Event) {
    let payload = e.bytes();
    Packet {
        payload_type: pt,
        marker,
        sequence: pos.seq,
        timestamp: ts,
        ssrc: pos.ssrc,
        payload: &payload,
    }
    .write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_events_map_both_ways_and_bad_digits_are_named() {
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(event_of(c), Some(i as u8));
            assert_eq!(digit_of(i as u8), Some(c));
        }
        assert_eq!(event_of('a'), Some(12));
        assert_eq!(digit_of(16), None);
        assert_eq!(check_digits("12#ab").as_deref(), Ok("12#AB"));
        assert!(check_digits("").is_err());
        assert!(check_digits(&"1".repeat(33)).is_err());
        let e = check_digits("12x").unwrap_err();
        assert!(e.contains("'x'"), "{e}");
    }

    #[test]
    fn an_event_payload_round_trips() {
        let e = Event {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(e.bytes(), [11, 0x8a, 0x03, 0x20]);
        assert_eq!(Event::parse(&e.bytes()), Some(e));
        assert_eq!(Event::parse(&[1, 2, 3]), None);
    }

    /// The packets of "1#": per digit updates every 20 ms for 100 ms
    /// (marker on the first, durations growing by 160), the end packet
    /// at 800 three times 20 ms apart, the next digit 60 ms after the
    /// tone; one timestamp per digit.
    #[test]
    fn digits_sound_as_rfc_4733_updates_then_three_end_packets() {
        let mut t = Tones::default();
        t.push("1#");
        let t0 = Instant::now();
        let mut pos = StreamPos {
            ssrc: 7,
            seq: 100,
            timestamp: 8_000,
        };
        let mut got = Vec::new();
        let mut now = t0;
        while !t.is_idle() {
            let at = t.next_at().unwrap().max(now);
            now = at;
            pos.timestamp = 8_000 + (now - t0).as_millis() as u32 * 8;
            while let Some((e, marker, ts)) = t.poll(now, pos) {
                got.push(((now - t0).as_millis(), e, marker, ts));
            }
        }
        let first: Vec<_> = got.iter().filter(|g| g.1.event == 1).collect();
        assert_eq!(first.len(), 8, "{got:?}");
        assert!(first[0].2 && first.iter().skip(1).all(|g| !g.2));
        let durations: Vec<u16> = first.iter().map(|g| g.1.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
        let ends: Vec<bool> = first.iter().map(|g| g.1.end).collect();
        assert_eq!(ends, [false, false, false, false, false, true, true, true]);
        assert!(first.iter().all(|g| g.3 == 8_000));
        // Sent 20 ms apart, the end packet's repeats too.
        let times: Vec<u128> = first.iter().map(|g| g.0).collect();
        assert_eq!(times, [0, 20, 40, 60, 80, 100, 120, 140]);
        let second: Vec<_> = got.iter().filter(|g| g.1.event == 11).collect();
        assert_eq!(second.len(), 8);
        // The second digit starts after the first's end and the gap.
        assert!(second[0].0 >= 100 + 60, "{}", second[0].0);
        assert!(second.iter().all(|g| g.3 == second[0].3 && g.3 > 8_000));
    }

    #[test]
    fn the_detector_tells_each_event_once() {
        let mut d = Detector::default();
        let pkt = |ts: u32, e: u8, end: bool| {
            let payload = Event {
                event: e,
                end,
                volume: 10,
                duration: 160,
            }
            .bytes();
            let mut out = Vec::new();
            Packet {
                payload_type: 101,
                marker: false,
                sequence: 1,
                timestamp: ts,
                ssrc: 9,
                payload: &payload,
            }
            .write(&mut out);
            out
        };
        let mut heard = String::new();
        for (ts, e, end) in [
            (100, 5, false),
            (100, 5, false),
            (100, 5, true),
            (100, 5, true),
            (900, 11, false),
            (900, 11, true),
            // The first digit's end packet, overtaken by the second.
            (100, 5, true),
            (1700, 5, true),
        ] {
            let bytes = pkt(ts, e, end);
            let p = Packet::parse(&bytes).unwrap();
            heard.extend(d.packet(&p));
        }
        assert_eq!(heard, "5#5");
    }
}
