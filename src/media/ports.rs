//! The configured RTP port range: even ports for RTP (RTCP takes the odd
//! one above), handed out round-robin so a just-freed port rests a while;
//! and an even/odd pair from the system's ephemeral ports when no range is
//! configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::UdpSocket;

use super::MediaError;

/// A range of UDP ports for RTP.
#[derive(Debug)]
pub struct PortRange {
    first: u16,
    last: u16,
    next: AtomicU32,
}

impl PortRange {
    /// Ports `first..=last` (odd bounds are moved inward to even ports).
    pub fn new(first: u16, last: u16) -> Result<PortRange, MediaError> {
        // The first even port; 65535 has none after it.
        let Some(first) = first
            .checked_add(first & 1)
            .filter(|f| *f != 0 && *f <= last)
        else {
            return Err(MediaError::NoPort(first, last));
        };
        Ok(PortRange {
            first,
            last,
            next: AtomicU32::new(0),
        })
    }

    fn slots(&self) -> u32 {
        u32::from(self.last - self.first) / 2 + 1
    }

    /// Binds the next free even port of the range on `ip`.
    pub async fn bind(&self, ip: IpAddr) -> Result<UdpSocket, MediaError> {
        Ok(UdpSocket::from_std(self.bind_std(ip)?)?)
    }

    /// [`PortRange::bind`] without a runtime: a non-blocking std socket.
    pub fn bind_std(&self, ip: IpAddr) -> Result<std::net::UdpSocket, MediaError> {
        let slots = self.slots();
        for _ in 0..slots {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % slots;
            let port = self.first + (slot * 2) as u16;
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(s) => {
                    s.set_nonblocking(true)?;
                    return Ok(s);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MediaError::NoPort(self.first, self.last))
    }

    /// Binds the next free even port of the range with the odd port above
    /// it (RTP and its RTCP, RFC 3550 11) on `ip`.
    pub fn bind_pair_std(
        &self,
        ip: IpAddr,
    ) -> Result<(std::net::UdpSocket, std::net::UdpSocket), MediaError> {
        for _ in 0..self.slots() {
            let rtp = self.bind_std(ip)?;
            let port = rtp.local_addr()?.port();
            if port >= self.last {
                continue;
            }
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
                Ok(rtcp) => {
                    rtcp.set_nonblocking(true)?;
                    return Ok((rtp, rtcp));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MediaError::NoPort(self.first, self.last))
    }

    /// Parses `FIRST-LAST` (`--rtp-ports 20000-29999`).
    pub fn parse(text: &str) -> Result<PortRange, MediaError> {
        let bad = || MediaError::BadRange(text.to_string());
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        PortRange::new(a, b).map_err(|_| bad())
    }
}

/// An even ephemeral port for RTP with the odd one above it for RTCP, on
/// `ip` (a few tries: the system hands out ports at random).
pub fn ephemeral_pair(ip: IpAddr) -> std::io::Result<(std::net::UdpSocket, std::net::UdpSocket)> {
    for _ in 0..64 {
        let rtp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free even/odd pair of UDP ports for RTP and RTCP",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_are_even_inside_the_range_and_run_out_cleanly() {
        // Find four free even ports in a row by probing a high range.
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut base = 41000;
        'probe: loop {
            for p in (base..base + 6).step_by(2) {
                if std::net::UdpSocket::bind((ip, p)).is_err() {
                    base += 10;
                    continue 'probe;
                }
            }
            break;
        }
        let range = PortRange::new(base + 1, base + 5).unwrap();
        let a = range.bind(ip).await.unwrap();
        let b = range.bind(ip).await.unwrap();
        let ports = [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ];
        assert_eq!(ports, [base + 2, base + 4]);
        assert!(matches!(range.bind(ip).await, Err(MediaError::NoPort(..))));
        drop(a);
        assert!(PortRange::parse("20000-20999").is_ok());
        for bad in ["20000", "0-10", "30000-20000", "a-b", "1-70000"] {
            assert!(
                matches!(PortRange::parse(bad), Err(MediaError::BadRange(_))),
                "{bad}"
            );
        }
        assert_eq!(
            range.bind(ip).await.unwrap().local_addr().unwrap().port(),
            base + 2
        );
        assert!(PortRange::new(10, 9).is_err());
        // No even port from 65535: refused, not an overflow.
        assert!(PortRange::new(65_535, 65_535).is_err());
    }
}
