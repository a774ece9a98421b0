//! Plays a prompt as RTP: one 20 ms G.711 packet per tick of a tokio
//! interval anchored at the start, so the average rate is exact even when
//! a tick is late (late packets go out at once, timestamps stay regular).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;

use super::MediaError;
use super::dtmf::Detector;
use super::rtcp::LegStats;
use super::rtp::{Packet, Packetizer, SAMPLES_PER_PACKET};
use super::tones::InBand;

/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);

/// What a prompt playback sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Played {
    /// Packets sent.
    pub packets: u32,
    /// Wall time from first to last packet.
    pub elapsed: Duration,
}

/// Sends `samples` (8 kHz) to `dest` from `socket` as payload type
/// `payload_type` (0 PCMU, 8 PCMA), paced at 20 ms.
pub async fn play(
    socket: &UdpSocket,
    dest: SocketAddr,
    samples: &[i16],
    payload_type: u8,
) -> Result<Played, MediaError> {
    play_counted(socket, dest, samples, payload_type, None).await
}

/// [`play`], counting each packet sent in `stats` when given: the leg's
/// RTCP session then sends sender reports for the prompt's stream (RFC
/// 3550 6.4.1: a participant that sends is a sender).
pub async fn play_counted(
    socket: &UdpSocket,
    dest: SocketAddr,
    samples: &[i16],
    payload_type: u8,
    stats: Option<&Mutex<LegStats>>,
) -> Result<Played, MediaError> {
    play_listening(socket, dest, samples, payload_type, &[], false, stats)
        .await
        .map(|(played, _)| played)
}

/// [`play_counted`], listening to the leg as it plays when `events` (the
/// payload types that carry telephone-events on it, RFC 4733) is not
/// empty, or `tones` (keys sounded in the G.711 audio itself,
/// [`super::tones`]): the first key the far end presses stops the prompt
/// at once and is returned with what was sent. Packets that arrived before the prompt
/// began count too: a key pressed while the person waited in silence is
/// as much a request as one pressed during the message. What arrives is
/// counted in `stats` for the leg's receiver reports. After the last
/// packet it listens one more packet time, then returns `None`.
pub async fn play_listening(
    socket: &UdpSocket,
    dest: SocketAddr,
    samples: &[i16],
    payload_type: u8,
    events: &[u8],
    tones: bool,
    stats: Option<&Mutex<LegStats>>,
) -> Result<(Played, Option<char>), MediaError> {
    let ssrc: u32 = rand::random();
    let mut pk = Packetizer::new(payload_type, ssrc, rand::random(), rand::random());
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start, PTIME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut buf = Vec::with_capacity(12 + SAMPLES_PER_PACKET);
    let mut frames = samples.chunks(SAMPLES_PER_PACKET);
    let mut packets = 0;
    let mut detector = Detector::default();
    let mut in_band = InBand::default();
    let mut audio = Vec::with_capacity(SAMPLES_PER_PACKET);
    let mut inbound = [0u8; 2048];
    // Stops listening when the socket fails to read (it would fail again
    // at once); the prompt still plays to its end.
    let mut listening = !events.is_empty() || tones;
    let played = |packets| Played {
        packets,
        elapsed: start.elapsed(),
    };
    loop {
        tokio::select! {
            // The prompt's tick first: a flood of packets from the far end
            // cannot hold the message back.
            biased;
            _ = tick.tick() => {
                let Some(frame) = frames.next() else {
                    return Ok((played(packets), None));
                };
                buf.clear();
                pk.packet(frame, &mut buf)?;
                socket.send_to(&buf, dest).await?;
                packets += 1;
                if let Some(st) = stats
                    && let Ok(p) = Packet::parse(&buf)
                    && let Ok(mut s) = st.lock()
                {
                    s.sent.packet(
                        ssrc,
                        p.timestamp,
                        p.payload.len(),
                        tokio::time::Instant::now().into_std(),
                    );
                }
                if !listening && frames.len() == 0 {
                    return Ok((played(packets), None));
                }
            }
            r = socket.recv_from(&mut inbound), if listening => {
                let Ok((n, _)) = r else {
                    listening = false;
                    continue;
                };
                let Ok(p) = Packet::parse(&inbound[..n]) else {
                    continue;
                };
                let event = events.contains(&p.payload_type);
                if let Some(st) = stats {
                    count_received(st, &p, event.then_some(p.payload_type), start);
                }
                let key = if event {
                    detector.packet(&p)
                } else if tones {
                    audio.clear();
                    super::g711::decode(p.payload_type, p.payload, &mut audio)
                        .ok()
                        .and_then(|()| in_band.feed(&audio))
                } else {
                    None
                };
                if let Some(key) = key {
                    return Ok((played(packets), Some(key)));
                }
            }
        }
    }
}

/// Counts a packet that arrived on a leg in its RTCP `stats`: a
/// telephone-event (payload type `events`) counts for loss, as it takes a
/// sequence number of the stream, but not for jitter (its timestamp is the
/// event's start, not the audio's clock). `base` is the instant arrival
/// times count from.
pub(super) fn count_received(
    stats: &Mutex<LegStats>,
    p: &Packet<'_>,
    events: Option<u8>,
    base: tokio::time::Instant,
) {
    let arrival = (base.elapsed().as_micros() / 125) as u32;
    if let Ok(mut s) = stats.lock() {
        if Some(p.payload_type) == events {
            s.received.counted(p.ssrc, p.sequence);
        } else {
            s.received.packet(p.ssrc, p.sequence, p.timestamp, arrival);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::generated_prompt;

    #[tokio::test]
    async fn a_one_second_prompt_goes_out_as_50_paced_numbered_packets() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = rx.local_addr().unwrap();
        let prompt = generated_prompt(1.0);
        let player = tokio::spawn(async move { play(&tx, dest, &prompt, 8).await });
        let mut buf = [0u8; 1500];
        let mut got = Vec::new();
        let first = tokio::time::Instant::now();
        for _ in 0..50 {
            let n = tokio::time::timeout(Duration::from_secs(2), rx.recv(&mut buf))
                .await
                .expect("packet")
                .unwrap();
            let p = Packet::parse(&buf[..n]).unwrap();
            assert_eq!(p.payload_type, 8);
            assert_eq!(p.payload.len(), 160);
            got.push((p.sequence, p.timestamp, first.elapsed()));
        }
        let played = player.await.unwrap().unwrap();
        assert_eq!(played.packets, 50);
        for w in got.windows(2) {
            assert_eq!(w[1].0, w[0].0.wrapping_add(1));
            assert_eq!(w[1].1, w[0].1.wrapping_add(160));
        }
        let span = got[49].2 - got[0].2;
        assert!(
            span >= Duration::from_millis(960) && span < Duration::from_millis(1150),
            "49 intervals of 20 ms took {span:?}"
        );
    }

    /// The safe-harbour prompt is counted for the leg's RTCP: its sender
    /// reports say how much it sent, of which source, up to which
    /// timestamp.
    #[tokio::test]
    async fn a_counted_prompt_is_in_the_legs_sender_counts() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = rx.local_addr().unwrap();
        let stats = Mutex::new(LegStats::default());
        let prompt = generated_prompt(0.2);
        let played = play_counted(&tx, dest, &prompt, 0, Some(&stats))
            .await
            .unwrap();
        assert_eq!(played.packets, 10);
        let mut buf = [0u8; 1500];
        let mut last = None;
        for _ in 0..10 {
            let n = rx.recv(&mut buf).await.unwrap();
            let p = Packet::parse(&buf[..n]).unwrap();
            last = Some((p.ssrc, p.timestamp));
        }
        let s = stats.lock().unwrap().sent;
        assert_eq!((s.packets, s.octets), (10, 1600));
        assert_eq!(s.ssrc, last.map(|l| l.0));
        assert_eq!(s.last.map(|l| l.0), last.map(|l| l.1));
    }

    /// Packet `seq` of the far end's stream (source 0x1234): an RFC 4733
    /// event for `digit` in payload type `pt` (its first packet, marker
    /// set), or 20 ms of PCMU silence.
    fn far_packet(pt: u8, digit: Option<char>, seq: u16) -> Vec<u8> {
        let payload = match digit {
            Some(d) => crate::media::dtmf::Event {
                event: crate::media::dtmf::event_of(d).unwrap(),
                end: false,
                volume: 10,
                duration: 160,
            }
            .bytes()
            .to_vec(),
            None => vec![0xff; SAMPLES_PER_PACKET],
        };
        let mut out = Vec::new();
        Packet {
            payload_type: pt,
            marker: digit.is_some(),
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 0x1234,
            payload: &payload,
        }
        .write(&mut out);
        out
    }

    /// A key the far end presses while the prompt plays stops it at once
    /// and is returned; audio and events of another payload type do not
    /// (a phone numbering its events otherwise); what arrived is in the
    /// leg's receive counts.
    #[tokio::test]
    async fn a_key_pressed_during_the_prompt_stops_it() {
        let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let us = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (dest, ours) = (far.local_addr().unwrap(), us.local_addr().unwrap());
        let stats = Mutex::new(LegStats::default());
        let prompt = generated_prompt(5.0);
        let far_end = async {
            let mut buf = [0u8; 1500];
            let mut seq = 0;
            for i in 0..10u32 {
                far.recv(&mut buf).await.unwrap();
                // Its own audio, and an event in payload type 96.
                far.send_to(&far_packet(0, None, seq), ours).await.unwrap();
                seq += 1;
                if i == 5 {
                    far.send_to(&far_packet(96, Some('3'), seq), ours)
                        .await
                        .unwrap();
                    seq += 1;
                }
            }
            far.send_to(&far_packet(101, Some('9'), seq), ours)
                .await
                .unwrap();
        };
        let (r, ()) = tokio::join!(
            play_listening(&us, dest, &prompt, 0, &[101], false, Some(&stats)),
            far_end
        );
        let (played, key) = r.unwrap();
        assert_eq!(key, Some('9'));
        assert!(
            played.packets < 20,
            "{} of 250 packets sent after the key",
            played.packets
        );
        assert_eq!(stats.lock().unwrap().received.packets, 12);
    }

    /// A key sounded in the far end's PCMU audio (no telephone-events) is
    /// heard when tones are listened for, after its two 20 ms blocks.
    #[tokio::test]
    async fn a_key_sounded_in_the_audio_stops_the_prompt() {
        let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let us = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (dest, ours) = (far.local_addr().unwrap(), us.local_addr().unwrap());
        let prompt = generated_prompt(5.0);
        // 100 ms of silence, then the pair for 7: already waiting when the
        // prompt starts, as a key pressed during the wait for an agent.
        for seq in 0..12u16 {
            let samples: Vec<i16> = (0..SAMPLES_PER_PACKET)
                .map(|i| {
                    if seq < 5 {
                        return 0;
                    }
                    let t = (usize::from(seq) * SAMPLES_PER_PACKET + i) as f64 / 8000.0;
                    (4000.0
                        * ((std::f64::consts::TAU * 852.0 * t).sin()
                            + (std::f64::consts::TAU * 1209.0 * t).sin()))
                        as i16
                })
                .collect();
            let mut payload = Vec::new();
            crate::media::g711::encode(0, &samples, &mut payload).unwrap();
            let mut out = Vec::new();
            Packet {
                payload_type: 0,
                marker: false,
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: 0x1234,
                payload: &payload,
            }
            .write(&mut out);
            far.send_to(&out, ours).await.unwrap();
        }
        let (played, key) = play_listening(&us, dest, &prompt, 0, &[101], true, None)
            .await
            .unwrap();
        assert_eq!(key, Some('7'));
        assert!(played.packets < 5, "{}", played.packets);
    }

    /// Without telephone-events in the answer nothing is read: the prompt
    /// plays to its end, and the key stays in the socket.
    #[tokio::test]
    async fn without_telephone_events_the_prompt_plays_to_its_end() {
        let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let us = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (dest, ours) = (far.local_addr().unwrap(), us.local_addr().unwrap());
        far.send_to(&far_packet(101, Some('9'), 2), ours)
            .await
            .unwrap();
        let prompt = generated_prompt(0.2);
        let (played, key) = play_listening(&us, dest, &prompt, 8, &[], false, None)
            .await
            .unwrap();
        assert_eq!((played.packets, key), (10, None));
    }
}
