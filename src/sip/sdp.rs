//! The SDP offer the UA sends and the little it reads from an answer
//! (RFC 4566, RFC 3264): audio address, port and the chosen codec.

use std::net::{IpAddr, SocketAddr};

/// RTP payload type of G.711 µ-law.
pub const PT_PCMU: u8 = 0;
/// RTP payload type of G.711 A-law.
pub const PT_PCMA: u8 = 8;
/// Dynamic payload type we offer for RFC 4733 telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;

/// The direction attribute of a media stream (RFC 3264 section 5.1, 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Both ways (the default when no attribute is given).
    #[default]
    SendRecv,
    /// The sender only sends: the peer put us on hold.
    SendOnly,
    /// The sender only receives.
    RecvOnly,
    /// No media either way.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer must take to an offer of `self`
    /// (RFC 3264 6.1: sendonly is answered recvonly, and so on).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// True when this side may send RTP.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// An SDP offer or answer for one audio stream: PCMU, PCMA and
/// telephone-event (or the subset `payloads` lists, first preferred).
pub fn audio(session_id: u64, addr: SocketAddr, payloads: &[u8]) -> String {
    session(session_id, session_id, addr, payloads, Direction::SendRecv)
}

/// [`audio`] with the origin's version (RFC 3264 8: it grows by one with
/// each changed description) and the stream's direction. `payloads` are
/// PCMU (0), PCMA (8) and telephone-event under any other number.
pub fn session(
    session_id: u64,
    version: u64,
    addr: SocketAddr,
    payloads: &[u8],
    direction: Direction,
) -> String {
    let ip = addr.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts = String::new();
    let mut maps = String::new();
    for pt in payloads {
        pts.push_str(&format!(" {pt}"));
        match *pt {
            PT_PCMU => maps.push_str("a=rtpmap:0 PCMU/8000\r\n"),
            PT_PCMA => maps.push_str("a=rtpmap:8 PCMA/8000\r\n"),
            // Any other number is telephone-event: ours (101) in an offer,
            // the peer's own number for it in an answer (RFC 3264 6.1).
            pt => maps.push_str(&format!(
                "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
            )),
        }
    }
    format!(
        "v=0\r\no=dialler {session_id} {version} IN {family} {ip}\r\ns=dialler\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP{pts}\r\n{maps}a=ptime:20\r\na={dir}\r\n",
        port = addr.port(),
        dir = direction.attribute()
    )
}

/// The answer to `offer` (an SDP body [`parse`] took): [`session`]'s audio
/// stream in the place of the offer's first audio stream, and every other
/// stream of the offer refused with port 0 in its place, so the answer
/// has as many m= lines as the offer, in its order (RFC 3264 6).
pub fn answer(
    offer: &[u8],
    session_id: u64,
    version: u64,
    addr: SocketAddr,
    payloads: &[u8],
    direction: Direction,
) -> String {
    let ours = session(session_id, version, addr, payloads, direction);
    let Some(audio_at) = ours.find("m=audio") else {
        return ours;
    };
    let (head, audio) = ours.split_at(audio_at);
    let mut out = head.to_string();
    let mut audio_done = false;
    for line in String::from_utf8_lossy(offer).lines() {
        let Some(m) = line.trim_end().strip_prefix("m=") else {
            continue;
        };
        let mut f = m.split_whitespace();
        let (Some(kind), Some(_port), Some(proto)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if kind == "audio" && !audio_done && plain_rtp(proto) {
            out.push_str(audio);
            audio_done = true;
        } else {
            // A refused stream keeps one of the offer's formats (RFC 3264
            // 6: at least one, ignored).
            let fmt = f.next().unwrap_or("0");
            out.push_str(&format!("m={kind} 0 {proto} {fmt}\r\n"));
        }
    }
    if !audio_done {
        out.push_str(audio);
    }
    out
}

/// A transport the UA speaks: plain RTP (AVPF is RTP/AVP with earlier
/// feedback, which a plain RTP stream satisfies). A secure profile
/// (RTP/SAVP, UDP/TLS/RTP/SAVPF) is refused with port 0 (RFC 3264 6),
/// never answered as plain RTP.
fn plain_rtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// What the UA needs from the peer's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Where to send RTP.
    pub addr: SocketAddr,
    /// Audio payload types in the peer's order of preference.
    pub payloads: Vec<u8>,
    /// The stream's direction as the peer wrote it; an old-style hold
    /// (connection address 0.0.0.0, RFC 3264 8.4) reads as `SendOnly`.
    pub direction: Direction,
    /// The payload type the peer maps to `telephone-event/8000` (RFC 4733
    /// DTMF), if it lists one.
    pub telephone_event: Option<u8>,
    /// The RTCP port `a=rtcp:` names (RFC 3605); `None`: the RTP port
    /// plus one.
    pub rtcp_port: Option<u16>,
}

impl Media {
    /// Where the peer takes RTCP: `a=rtcp:`'s port, else the RTP port
    /// plus one (RFC 3550 11), at the media address.
    pub fn rtcp_addr(&self) -> SocketAddr {
        let port = self
            .rtcp_port
            .unwrap_or_else(|| self.addr.port().saturating_add(1));
        SocketAddr::new(self.addr.ip(), port)
    }
}

impl Media {
    /// The first G.711 payload type both sides know, if any.
    pub fn codec(&self) -> Option<u8> {
        self.payloads
            .iter()
            .copied()
            .find(|pt| *pt == PT_PCMU || *pt == PT_PCMA)
    }

    /// True when the stream can carry our audio: a codec we send (PCMU or
    /// PCMA, RFC 3264 7) to a stream the peer did not refuse (port 0,
    /// RFC 3264 6). A leg whose answer does not is silent both ways.
    pub fn carries_audio(&self) -> bool {
        self.codec().is_some() && self.addr.port() != 0
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
    let mut session_dir: Option<Direction> = None;
    let mut media_dir: Option<Direction> = None;
    let mut telephone_event: Option<u8> = None;
    let mut rtcp_port: Option<u16> = None;
    // Attributes and connection lines before the first m= line are the
    // session's; after it they belong to their stream (RFC 4566 5), and a
    // video stream's are not the audio's.
    let mut seen_media = false;
    for line in text.lines() {
        let line = line.trim_end();
        let dir = match line {
            "a=sendrecv" => Some(Direction::SendRecv),
            "a=sendonly" => Some(Direction::SendOnly),
            "a=recvonly" => Some(Direction::RecvOnly),
            "a=inactive" => Some(Direction::Inactive),
            _ => None,
        };
        if let Some(d) = dir {
            if in_audio {
                media_dir = Some(d);
            } else if !seen_media {
                session_dir = Some(d);
            }
            continue;
        }
        if in_audio && let Some(r) = line.strip_prefix("a=rtcp:") {
            rtcp_port = r.split_whitespace().next().and_then(|p| p.parse().ok());
            continue;
        }
        if in_audio
            && let Some(map) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = map.split_once(' ')
            && enc.trim().eq_ignore_ascii_case("telephone-event/8000")
        {
            telephone_event = pt.trim().parse().ok();
            continue;
        }
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse().ok());
            if in_audio {
                media_ip = ip;
            } else if !seen_media {
                session_ip = ip;
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            in_audio = false;
            seen_media = true;
            let mut f = m.split_whitespace();
            if f.next() == Some("audio") && audio.is_none() {
                let port: u16 = f.next()?.split('/').next()?.parse().ok()?;
                // The first audio stream on plain RTP is ours to take.
                if !plain_rtp(f.next()?) {
                    continue;
                }
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
    let mut direction = media_dir.or(session_dir).unwrap_or_default();
    if ip.is_unspecified() && direction == Direction::SendRecv {
        direction = Direction::SendOnly;
    }
    // Only a number the m= line lists is in use.
    let telephone_event = telephone_event.filter(|pt| payloads.contains(pt));
    Some(Media {
        addr: SocketAddr::new(ip, port),
        payloads,
        direction,
        telephone_event,
        rtcp_port,
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
        assert_eq!(m.telephone_event, Some(101));
        // A peer that maps another number to the events, or none.
        let other = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\n";
        assert_eq!(parse(other.as_bytes()).unwrap().telephone_event, Some(96));
        let none = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 8\r\n";
        assert_eq!(parse(none.as_bytes()).unwrap().telephone_event, None);
        // RTCP: the port above, unless a=rtcp names one (RFC 3605).
        assert_eq!(
            parse(none.as_bytes()).unwrap().rtcp_addr(),
            "10.0.0.1:5005".parse().unwrap()
        );
        let named =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 8\r\na=rtcp:6000 IN IP4 10.0.0.1\r\n";
        assert_eq!(
            parse(named.as_bytes()).unwrap().rtcp_addr(),
            "10.0.0.1:6000".parse().unwrap()
        );
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

    #[test]
    fn direction_is_read_at_media_or_session_level_and_answered_per_rfc_3264() {
        let hold = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\na=sendonly\r\n";
        assert_eq!(
            parse(hold.as_bytes()).unwrap().direction,
            Direction::SendOnly
        );
        let session = "v=0\r\nc=IN IP4 10.0.0.1\r\na=inactive\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(
            parse(session.as_bytes()).unwrap().direction,
            Direction::Inactive
        );
        let old_hold = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(
            parse(old_hold.as_bytes()).unwrap().direction,
            Direction::SendOnly
        );
        let plain = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(
            parse(plain.as_bytes()).unwrap().direction,
            Direction::SendRecv
        );
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.answer(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        let answer = session_text(Direction::RecvOnly);
        assert!(answer.contains("a=recvonly") && answer.contains("o=dialler 7 8 "));
    }

    fn session_text(d: Direction) -> String {
        session(7, 8, "127.0.0.1:4000".parse().unwrap(), &[PT_PCMA], d)
    }

    /// RFC 4566 5: after an m= line, attributes and c= lines are that
    /// stream's; a video stream's `a=inactive` or address is not the
    /// audio's.
    #[test]
    fn a_video_streams_lines_are_not_taken_for_the_sessions() {
        let body = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 0 RTP/AVP 31\r\nc=IN IP4 10.9.9.9\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n";
        let m = parse(body.as_bytes()).unwrap();
        assert_eq!(m.direction, Direction::SendRecv);
        assert_eq!(m.addr, "10.0.0.1:4000".parse().unwrap());
    }

    #[test]
    fn an_answer_names_telephone_event_with_the_offers_number() {
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let answer = session(1, 2, addr, &[PT_PCMU, 96], Direction::SendRecv);
        assert!(
            answer.contains("m=audio 40000 RTP/AVP 0 96\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16"),
            "{answer}"
        );
        assert!(!answer.contains(":101"), "{answer}");
        assert_eq!(parse(answer.as_bytes()).unwrap().telephone_event, Some(96));
    }

    /// RFC 3264 6: as many m= lines as the offer, in its order, the ones
    /// not taken with port 0.
    #[test]
    fn an_answer_has_the_offers_streams_in_order_with_the_others_refused() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5006 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\nm=audio 5004 RTP/AVP 0 8\r\nm=text 5008 RTP/AVP 98\r\n";
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let a = answer(
            offer.as_bytes(),
            1,
            2,
            addr,
            &[PT_PCMA],
            Direction::SendRecv,
        );
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m,
            [
                "m=video 0 RTP/AVP 96",
                "m=audio 40000 RTP/AVP 8",
                "m=text 0 RTP/AVP 98"
            ],
            "{a}"
        );
        let back = parse(a.as_bytes()).unwrap();
        assert_eq!(back.addr, addr);
        assert_eq!(back.direction, Direction::SendRecv);
        // Audio alone: the same as session().
        let plain = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(
            answer(
                plain.as_bytes(),
                1,
                2,
                addr,
                &[PT_PCMU],
                Direction::RecvOnly
            ),
            session(1, 2, addr, &[PT_PCMU], Direction::RecvOnly)
        );
    }

    /// SRTP is not spoken: a secure audio stream is not taken for plain
    /// RTP, and is refused with its own transport; a plain one after it is
    /// the one answered.
    #[test]
    fn a_secure_audio_stream_is_refused_not_answered_as_plain_rtp() {
        let srtp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n";
        assert_eq!(parse(srtp.as_bytes()), None);
        let both = format!("{srtp}m=audio 5006 RTP/AVP 0\r\n");
        assert_eq!(parse(both.as_bytes()).unwrap().addr.port(), 5006);
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let a = answer(both.as_bytes(), 1, 2, addr, &[PT_PCMU], Direction::SendRecv);
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m,
            ["m=audio 0 RTP/SAVP 0", "m=audio 40000 RTP/AVP 0"],
            "{a}"
        );
    }
}
