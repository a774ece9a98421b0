//! Relays RTP between two call legs (customer and agent), both ways.
//!
//! Each leg has its own socket, shared (the agent's standing leg outlives
//! the call). A leg's peer address comes from its SDP, and is replaced by
//! the source of each packet that arrives on that leg (symmetric RTP: a
//! NATed phone sends from where it listens). Anything that is not RTP is
//! dropped, and so is what the agent's phone sent between calls (nobody
//! reads the standing leg then): it is not for this customer. Of the
//! customer's audio from before the bridge, only the newest packet goes
//! on: the agent hears the customer at once, without a burst of old audio.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::MediaError;
use super::rtp::Packet;

/// One side of a relayed call.
#[derive(Debug)]
pub struct Leg {
    /// Our socket for this leg.
    pub socket: Arc<UdpSocket>,
    /// Where the leg's phone listens, from SDP, if known yet.
    pub peer: Option<SocketAddr>,
}

/// What a relay carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Packets from leg A sent on to leg B.
    pub a_to_b: u64,
    /// Packets from leg B sent on to leg A.
    pub b_to_a: u64,
    /// Packets dropped (not RTP, the other side's address unknown, or a
    /// send that failed: one lost packet does not end the call's audio).
    pub dropped: u64,
    /// Packets held from before the bridge, dropped: all the agent leg's,
    /// and all but the newest of the customer's.
    pub stale: u64,
}

/// The most stale packets read off the agent's leg before relaying (a full
/// socket buffer holds far fewer).
const STALE_LIMIT: u64 = 100_000;

/// Relays between the customer's leg `a` and the agent's leg `b` until
/// `stop` completes, then returns the counts.
pub async fn relay(
    mut a: Leg,
    mut b: Leg,
    stop: impl Future<Output = ()>,
) -> Result<Relayed, MediaError> {
    let mut stats = Relayed::default();
    let mut buf_a = vec![0u8; 2048];
    let mut buf_b = vec![0u8; 2048];
    while stats.stale < STALE_LIMIT && b.socket.try_recv_from(&mut buf_b).is_ok() {
        stats.stale += 1;
    }
    // The customer has talked since the answer: of what queued, only the
    // newest packet goes on, so the agent hears the customer at once and
    // no burst of old audio fills the phone's jitter buffer.
    let mut newest = None;
    while stats.stale < 2 * STALE_LIMIT
        && let Ok((n, from)) = a.socket.try_recv_from(&mut buf_a)
    {
        a.peer = Some(from);
        if Packet::parse(&buf_a[..n]).is_ok() {
            if newest.is_some() {
                stats.stale += 1;
            }
            newest = Some(n);
        } else {
            stats.dropped += 1;
        }
    }
    if let (Some(n), Some(to)) = (newest, b.peer)
        && b.socket.send_to(&buf_a[..n], to).await.is_ok()
    {
        stats.a_to_b += 1;
    }
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(stats),
            r = a.socket.recv_from(&mut buf_a) => {
                let (n, from) = r?;
                a.peer = Some(from);
                if Packet::parse(&buf_a[..n]).is_err() {
                    stats.dropped += 1;
                } else if let Some(to) = b.peer
                    && b.socket.send_to(&buf_a[..n], to).await.is_ok()
                {
                    stats.a_to_b += 1;
                } else {
                    stats.dropped += 1;
                }
            }
            r = b.socket.recv_from(&mut buf_b) => {
                let (n, from) = r?;
                b.peer = Some(from);
                if Packet::parse(&buf_b[..n]).is_err() {
                    stats.dropped += 1;
                } else if let Some(to) = a.peer
                    && a.socket.send_to(&buf_b[..n], to).await.is_ok()
                {
                    stats.b_to_a += 1;
                } else {
                    stats.dropped += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::Packetizer;
    use std::time::Duration;

    async fn sock() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    async fn shared() -> Arc<UdpSocket> {
        Arc::new(sock().await)
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = Packetizer::new(0, 1, seq, 0);
        let mut out = Vec::new();
        p.packet(&[100; 160], &mut out).unwrap();
        out
    }

    async fn recv(s: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf))
            .await
            .expect("relayed packet")
            .unwrap();
        buf[..n].to_vec()
    }

    #[tokio::test]
    async fn audio_flows_both_ways_and_junk_is_dropped() {
        let (customer, agent) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                socket: leg_a,
                peer: None,
            },
            Leg {
                socket: leg_b,
                peer: Some(agent.local_addr().unwrap()),
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        customer.send_to(&rtp(1), a_addr).await.unwrap();
        assert_eq!(recv(&agent).await, rtp(1));
        agent.send_to(&rtp(2), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(2), "customer address latched");
        customer.send_to(b"not rtp", a_addr).await.unwrap();
        customer.send_to(&rtp(3), a_addr).await.unwrap();
        assert_eq!(recv(&agent).await, rtp(3));
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!(
            stats,
            Relayed {
                a_to_b: 2,
                b_to_a: 1,
                dropped: 1,
                stale: 0,
            }
        );
    }

    /// The customer talked between the answer and the bridge: the agent
    /// gets the newest packet at once, not the backlog.
    #[tokio::test]
    async fn only_the_customers_newest_packet_from_before_the_bridge_goes_on() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let a_addr = leg_a.local_addr().unwrap();
        for seq in 0..20 {
            customer.send_to(&rtp(seq), a_addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                socket: leg_a,
                peer: None,
            },
            Leg {
                socket: leg_b,
                peer: Some(phone.local_addr().unwrap()),
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        assert_eq!(recv(&phone).await, rtp(19), "the newest first");
        customer.send_to(&rtp(20), a_addr).await.unwrap();
        assert_eq!(recv(&phone).await, rtp(20), "then the live audio");
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!((stats.stale, stats.a_to_b), (19, 2));
    }

    /// The agent's phone talked between calls: none of it reaches the
    /// next customer; what it says once bridged does.
    #[tokio::test]
    async fn the_agent_legs_audio_from_between_calls_is_not_relayed() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let b_addr = leg_b.local_addr().unwrap();
        for seq in 0..20 {
            phone.send_to(&rtp(seq), b_addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                socket: leg_a,
                peer: Some(customer.local_addr().unwrap()),
            },
            Leg {
                socket: leg_b,
                peer: Some(phone.local_addr().unwrap()),
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        phone.send_to(&rtp(1000), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(1000), "stale audio relayed");
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!((stats.stale, stats.b_to_a), (20, 1));
    }
}
