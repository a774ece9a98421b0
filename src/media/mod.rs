//! RTP media for the dialler: G.711 codecs, RTP packets, the safe-harbour
//! prompt (generated, or read from an 8 kHz WAV), a paced prompt player,
//! a relay between a customer leg and an agent leg (with RFC 4733 DTMF
//! both ways), and the RTP port range.
//!
//! Owns audio only; it never speaks SIP (the `sip` module hands it the
//! addresses from SDP) and never decides when to play or relay.

pub mod dtmf;
pub mod g711;
pub mod player;
pub mod ports;
pub mod relay;
pub mod rtcp;
pub mod rtp;
pub mod tones;
pub mod wav;
pub mod webrtc;

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not an RTP packet we accept.
    #[error("bad RTP packet: {0}")]
    BadPacket(&'static str),
    /// A WAV file we cannot play.
    #[error("bad WAV: {0}")]
    BadWav(String),
    /// No free port left in the configured range.
    #[error("no free RTP port in {0}..={1}")]
    NoPort(u16, u16),
    /// A port range that is not `FIRST-LAST` with 0 < FIRST <= LAST.
    #[error("{0:?} is not a port range FIRST-LAST (even ports, FIRST above 0)")]
    BadRange(String),
    /// A payload type we do not encode.
    #[error("unsupported payload type {0}")]
    Codec(u8),
    /// A socket or file error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
