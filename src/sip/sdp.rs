//! The SDP offer the UA sends and the little it reads from an answer
//! (RFC 4566, RFC 3264): audio address, port and the chosen codec.

use std::net::{IpAddr, SocketAddr};

/// RTP payload type of G.711 µ-law.
pub const PT_PCMU: u8 = 0;
/// RTP payload type of G.711 A-law.
pub const PT_PCMA: u8 = 8;
/// Dynamic payload type we offer for RFC 4733 telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;

/// An SDP offer or answer for one audio stream: PCMU, PCMA and
/// telephone-event (or the subset `payloads` lists, first preferred).
pub fn audio(session_id: u64, addr: SocketAddr, payloads: &[u8]) -> String {
    let ip = addr.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts = String::new();
    let mut maps = String::new();
    for pt in payloads {
        pts.push_str(&format!(" {pt}"));
        match *pt {
            PT_PCMU => maps.push_str("a=rtpmap:0 PCMU/8000\r\n"),
            PT_PCMA => maps.push_str("a=rtpmap:8 PCMA/8000\r\n"),
            PT_TELEPHONE_EVENT => {
                maps.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
            }
            _ => {}
        }
    }
    format!(
        "v=0\r\no=dialler {session_id} {session_id} IN {family} {ip}\r\ns=dialler\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP{pts}\r\n{maps}a=ptime:20\r\na=sendrecv\r\n",
        port = addr.port()
    )
}

/// What the UA needs from the peer's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Where to send RTP.
    pub addr: SocketAddr,
    /// Audio payload types in the peer's order of preference.
    pub payloads: Vec<u8>,
}

impl Media {
    /// The first G.711 payload type both sides know, if any.
    pub fn codec(&self) -> Option<u8> {
        self.payloads
            .iter()
            .copied()
            .find(|pt| *pt == PT_PCMU || *pt == PT_PCMA)
    }
}

/// Reads the audio connection address, port and payload types. `None` when
/// the body has no usable audio stream (no SDP, port 0, bad address).
pub fn parse(body: &[u8]) -> Option<Media> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut in_audio = false;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse().ok());
            if audio.is_some() && in_audio {
                media_ip = ip;
            } else if audio.is_none() {
                session_ip = ip;
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            in_audio = false;
            let mut f = m.split_whitespace();
            if f.next() == Some("audio") && audio.is_none() {
                let port: u16 = f.next()?.split('/').next()?.parse().ok()?;
                let _proto = f.next()?;
                let pts = f.filter_map(|p| p.parse().ok()).collect();
                audio = Some((port, pts));
                in_audio = true;
            }
        }
    }
    let (port, payloads) = audio?;
    if port == 0 {
        return None;
    }
    let ip = media_ip.or(session_ip)?;
    Some(Media {
        addr: SocketAddr::new(ip, port),
        payloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_offer_parses_back_to_its_address_and_codecs() {
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let offer = audio(7, addr, &[PT_PCMU, PT_PCMA, PT_TELEPHONE_EVENT]);
        let m = parse(offer.as_bytes()).unwrap();
        assert_eq!(m.addr, addr);
        assert_eq!(m.payloads, vec![0, 8, 101]);
        assert_eq!(m.codec(), Some(0));
        assert!(offer.contains("a=rtpmap:101 telephone-event/8000"));
    }

    #[test]
    fn media_level_connection_overrides_session_level_and_port_zero_is_no_media() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 8 0\r\nc=IN IP4 10.0.0.2\r\n";
        let m = parse(sdp.as_bytes()).unwrap();
        assert_eq!(m.addr, "10.0.0.2:5004".parse().unwrap());
        assert_eq!(m.codec(), Some(8));
        assert!(parse(b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n").is_none());
        assert!(parse(b"not sdp").is_none());
    }
}
