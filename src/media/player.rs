//! Plays a prompt as RTP: one 20 ms G.711 packet per tick of a tokio
//! interval anchored at the start, so the average rate is exact even when
//! a tick is late (late packets go out at once, timestamps stay regular).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;

use super::MediaError;
use super::rtcp::LegStats;
use super::rtp::{Packet, Packetizer, SAMPLES_PER_PACKET};

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
    let ssrc: u32 = rand::random();
    let mut pk = Packetizer::new(payload_type, ssrc, rand::random(), rand::random());
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start, PTIME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut buf = Vec::with_capacity(12 + SAMPLES_PER_PACKET);
    let mut packets = 0;
    for frame in samples.chunks(SAMPLES_PER_PACKET) {
        tick.tick().await;
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
    }
    Ok(Played {
        packets,
        elapsed: start.elapsed(),
    })
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
}
