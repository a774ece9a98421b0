//! The safe-harbour prompt as 8 kHz, 16-bit mono samples: generated here
//! (a chime and a steady tone, so a fresh checkout needs no audio file), or
//! read from a WAV recording of the real message, and written back as WAV.

use std::f64::consts::TAU;

use super::MediaError;

/// The only sample rate the G.711 path plays.
pub const RATE: u32 = 8000;

/// A generated prompt: a two-note chime (660 Hz then 440 Hz, 300 ms each),
/// then a 440 Hz tone, `seconds` long in all, at about -12 dBFS, with 5 ms
/// fades so no click is heard.
pub fn generated_prompt(seconds: f64) -> Vec<i16> {
    let n = (seconds.max(0.0) * f64::from(RATE)) as usize;
    let fade = (0.005 * f64::from(RATE)) as usize;
    let chime = (0.3 * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let freq = if i < chime { 660.0 } else { 440.0 };
            let edge = if i < chime {
                i.min(chime - i)
            } else {
                (i - chime).min(n - i)
            };
            let gain = (edge as f64 / fade as f64).min(1.0);
            (8000.0 * gain * (TAU * freq * t).sin()) as i16
        })
        .collect()
}

/// Reads a RIFF WAV of 16-bit PCM, mono, 8000 Hz.
pub fn read(bytes: &[u8]) -> Result<Vec<i16>, MediaError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(MediaError::BadWav("not a RIFF WAVE file"));
    }
    let mut pos = 12;
    let mut format_ok = false;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = bytes
            .get(pos + 8..pos + 8 + len)
            .ok_or(MediaError::BadWav("chunk runs past the end"))?;
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(MediaError::BadWav("short fmt chunk"));
                }
                let format = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                if format != 1 || channels != 1 || rate != RATE || bits != 16 {
                    return Err(MediaError::BadWav("need 16-bit PCM, mono, 8000 Hz"));
                }
                format_ok = true;
            }
            b"data" => {
                if !format_ok {
                    return Err(MediaError::BadWav("data before fmt"));
                }
                return Ok(body
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect());
            }
            _ => {}
        }
        pos += 8 + len + (len & 1);
    }
    Err(MediaError::BadWav("no data chunk"))
}

/// Writes samples as a 16-bit PCM, mono, 8000 Hz WAV.
pub fn write(samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_prompt_has_the_length_and_the_tones_asked_for() {
        let p = generated_prompt(2.0);
        assert_eq!(p.len(), 16_000);
        assert_eq!(p[0], 0, "fades in");
        let peak = p.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((7000..=8000).contains(&peak), "{peak}");
        // Count zero crossings in the steady 440 Hz second: about 880.
        let tail = &p[8000..16000];
        let crossings = tail.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((870..=890).contains(&crossings), "{crossings}");
    }

    #[test]
    fn wav_round_trips_and_other_formats_are_refused() {
        let p = generated_prompt(0.5);
        assert_eq!(read(&write(&p)).unwrap(), p);
        let mut stereo = write(&p);
        stereo[22] = 2;
        assert!(read(&stereo).is_err());
        assert!(read(b"RIFF....WAVE").is_err());
        assert!(read(&write(&p)[..40]).is_err());
    }
}
