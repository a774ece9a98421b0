//! G.711 µ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8),
//! the ITU-T reference algorithms on 16-bit linear samples.

use super::MediaError;

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit sample to µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = 31 - ((s >> 7) as u32).leading_zeros() as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one µ-law byte to a 16-bit sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let s = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if u & 0x80 != 0 { -s } else { s }) as i16
}

const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Encodes one 16-bit sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let mask = if s >= 0 {
        0xD5
    } else {
        s = -s - 1;
        0x55
    };
    let Some(seg) = SEG_END.iter().position(|end| s <= *end) else {
        return (0x7F ^ mask) as u8;
    };
    let seg = seg as i32;
    let mantissa = if seg < 2 {
        (s >> 1) & 0x0F
    } else {
        (s >> seg) & 0x0F
    };
    (((seg << 4) | mantissa) ^ mask) as u8
}

/// Decodes one A-law byte to a 16-bit sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = i32::from((a & 0x70) >> 4);
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Encodes samples with the codec of RTP payload type `pt` (0 or 8).
pub fn encode(pt: u8, samples: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
    let f = match pt {
        0 => ulaw_encode,
        8 => alaw_encode,
        _ => return Err(MediaError::Codec(pt)),
    };
    out.extend(samples.iter().map(|s| f(*s)));
    Ok(())
}

/// The code for a silent sample in payload type `pt` (0 or 8).
pub fn encode_silence(pt: u8) -> Result<u8, MediaError> {
    match pt {
        0 => Ok(ulaw_encode(0)),
        8 => Ok(alaw_encode(0)),
        _ => Err(MediaError::Codec(pt)),
    }
}

/// Decodes a payload of RTP payload type `pt` (0 or 8).
pub fn decode(pt: u8, payload: &[u8], out: &mut Vec<i16>) -> Result<(), MediaError> {
    let f = match pt {
        0 => ulaw_decode,
        8 => alaw_decode,
        _ => return Err(MediaError::Codec(pt)),
    };
    out.extend(payload.iter().map(|b| f(*b)));
    Ok(())
}

/// Re-encodes a payload from one law to the other in place (the same
/// number of bytes: one per sample); the same law is left alone.
pub fn transcode(from: u8, to: u8, payload: &mut [u8]) -> Result<(), MediaError> {
    let f: fn(u8) -> u8 = match (from, to) {
        (0, 0) | (8, 8) => return Ok(()),
        (0, 8) => |b| alaw_encode(ulaw_decode(b)),
        (8, 0) => |b| ulaw_encode(alaw_decode(b)),
        (0 | 8, _) => return Err(MediaError::Codec(to)),
        _ => return Err(MediaError::Codec(from)),
    };
    for b in payload {
        *b = f(*b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcoding_keeps_the_sound() {
        let samples: Vec<i16> = (0..160)
            .map(|i| ((i as f64 / 10.0).sin() * 8000.0) as i16)
            .collect();
        let mut pcmu = Vec::new();
        encode(0, &samples, &mut pcmu).unwrap();
        let mut alaw = pcmu.clone();
        transcode(0, 8, &mut alaw).unwrap();
        let mut back = Vec::new();
        decode(8, &alaw, &mut back).unwrap();
        for (a, b) in samples.iter().zip(&back) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 512, "{a} {b}");
        }
        let mut same = pcmu.clone();
        transcode(0, 0, &mut same).unwrap();
        assert_eq!(same, pcmu);
        assert!(transcode(0, 9, &mut same).is_err());
    }

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn every_code_decodes_and_encodes_back_to_itself() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#x}");
            // 0x7F is µ-law's negative zero: it decodes to 0, which is 0xFF.
            if c != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c, "µ-law {c:#x}");
            }
        }
    }

    #[test]
    fn quantisation_error_stays_within_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let x = i32::from(s);
            let u = i32::from(ulaw_decode(ulaw_encode(s)));
            let a = i32::from(alaw_decode(alaw_encode(s)));
            // Steps grow with the magnitude: about 1/16 of it, at least 16.
            let bound = (x.abs() / 16).max(16) + 8;
            assert!(
                (u - x.clamp(-CLIP, CLIP)).abs() <= bound,
                "µ-law {s} -> {u}"
            );
            assert!((a - x).abs() <= bound, "A-law {s} -> {a}");
        }
    }

    #[test]
    fn decoding_is_monotonic() {
        let mut ulaw: Vec<i16> = (0..=255u8).map(ulaw_decode).collect();
        let mut alaw: Vec<i16> = (0..=255u8).map(alaw_decode).collect();
        ulaw.sort_unstable();
        alaw.sort_unstable();
        ulaw.dedup();
        alaw.dedup();
        assert_eq!(ulaw.len(), 255, "µ-law has 255 distinct levels");
        assert_eq!(alaw.len(), 256);
        assert!(encode(9, &[0], &mut Vec::new()).is_err());
    }
}
