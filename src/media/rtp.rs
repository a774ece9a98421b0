//! RTP packets (RFC 3550): reading any version-2 packet without copying
//! its payload, writing ours, and the packetizer that numbers them.

use super::MediaError;

/// Samples per 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;

/// An RTP packet borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit (start of a talk spurt).
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in sample units.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload (after CSRCs and extension, before padding).
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses a packet; refuses anything that is not RTP version 2 or whose
    /// lengths do not fit.
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, MediaError> {
        if buf.len() < 12 {
            return Err(MediaError::BadPacket("shorter than the RTP header"));
        }
        if buf[0] >> 6 != 2 {
            return Err(MediaError::BadPacket("not RTP version 2"));
        }
        let csrcs = usize::from(buf[0] & 0x0F);
        let mut start = 12 + 4 * csrcs;
        if buf[0] & 0x10 != 0 {
            let ext = buf
                .get(start + 2..start + 4)
                .ok_or(MediaError::BadPacket("truncated extension"))?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let mut end = buf.len();
        if buf[0] & 0x20 != 0 {
            // The count includes itself (RFC 3550 5.1): never 0.
            let pad = usize::from(buf[end - 1]);
            end = end
                .checked_sub(pad)
                .filter(|_| pad > 0)
                .ok_or(MediaError::BadPacket("bad padding"))?;
        }
        if start > end {
            return Err(MediaError::BadPacket("header longer than packet"));
        }
        Ok(Packet {
            payload_type: buf[1] & 0x7F,
            marker: buf[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[start..end],
        })
    }

    /// Writes the packet (no CSRC, no extension) into `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(self.payload_type | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// Turns 8 kHz samples into numbered 20 ms G.711 packets: sequence +1 and
/// timestamp +160 per packet, marker on the first.
#[derive(Debug, Clone)]
pub struct Packetizer {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
    scratch: Vec<u8>,
}

impl Packetizer {
    /// A packetizer starting at random-looking `sequence` and `timestamp`
    /// (RFC 3550 wants them unpredictable; the caller draws them).
    pub fn new(payload_type: u8, ssrc: u32, sequence: u16, timestamp: u32) -> Packetizer {
        Packetizer {
            payload_type,
            ssrc,
            sequence,
            timestamp,
            first: true,
            scratch: Vec::with_capacity(SAMPLES_PER_PACKET),
        }
    }

    /// The next packet for up to 160 samples (a short last frame is padded
    /// with silence so the timestamp step stays 160).
    pub fn packet(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
        self.scratch.clear();
        super::g711::encode(self.payload_type, samples, &mut self.scratch)?;
        let silence = super::g711::encode_silence(self.payload_type)?;
        self.scratch.resize(SAMPLES_PER_PACKET, silence);
        Packet {
            payload_type: self.payload_type,
            marker: self.first,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload: &self.scratch,
        }
        .write(out);
        self.first = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_PACKET as u32);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_numbered_and_stamped_every_160_samples() {
        let mut p = Packetizer::new(0, 0xABCD, u16::MAX, 1000);
        let samples = [0i16; 400];
        let mut seen = Vec::new();
        for chunk in samples.chunks(SAMPLES_PER_PACKET) {
            let mut out = Vec::new();
            p.packet(chunk, &mut out).unwrap();
            let pk = Packet::parse(&out).unwrap();
            assert_eq!(pk.payload.len(), 160);
            assert_eq!(pk.ssrc, 0xABCD);
            seen.push((pk.sequence, pk.timestamp, pk.marker));
        }
        assert_eq!(
            seen,
            vec![(u16::MAX, 1000, true), (0, 1160, false), (1, 1320, false)]
        );
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0x80 | 0x20 | 0x10 | 1, 8, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1];
        b.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // extension, one word
        b.extend_from_slice(&[42, 43]); // payload
        b.extend_from_slice(&[0, 2]); // two bytes of padding
        let p = Packet::parse(&b).unwrap();
        assert_eq!((p.payload_type, p.sequence, p.timestamp), (8, 7, 9));
        assert_eq!(p.payload, &[42, 43]);
    }

    #[test]
    fn short_or_inconsistent_packets_are_refused() {
        assert!(Packet::parse(&[0x80; 11]).is_err());
        assert!(Packet::parse(&[0x40; 12]).is_err());
        assert!(Packet::parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Packet::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]).is_err());
        // A padding count of 0 (it counts itself, so at least 1).
        let zero_pad = [0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x11, 0];
        assert!(Packet::parse(&zero_pad).is_err());
    }
}
