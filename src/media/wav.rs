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

/// The largest recording read (a 60 s message at 16 bits is under 1 MiB).
const MAX_FILE: u64 = 16 << 20;

/// WAVE format tags (RFC 2361).
const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_MULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Reads a RIFF WAV recording, mono, 8000 Hz: 16-bit PCM, or 8-bit G.711
/// A-law or µ-law (the telephony formats, WAVE_FORMAT_ALAW/MULAW), also
/// inside WAVE_FORMAT_EXTENSIBLE; anything else is refused with what was
/// found.
///
/// The RIFF chunks are walked here, not by hound: hound refuses the G.711
/// format tags a recorded prompt often comes in and does not skip the pad
/// byte after an odd-sized chunk (a `LIST` chunk before the data), which
/// RIFF requires.
pub fn read(bytes: &[u8]) -> Result<Vec<i16>, MediaError> {
    let bad = |why: &str| MediaError::BadWav(format!("not a WAV file we can read: {why}"));
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF WAVE header"));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut data: Option<&[u8]> = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let body_at = at + 8;
        // A size past the end (a streamed recording's 0xFFFFFFFF) runs to
        // the end of the file.
        let body_end = body_at.saturating_add(size as usize).min(bytes.len());
        let body = &bytes[body_at..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(bad("fmt chunk too short"));
                }
                let mut tag = u16_at(body, 0);
                if tag == FORMAT_EXTENSIBLE {
                    // cbSize (2), valid bits (2), channel mask (4), then
                    // the sub-format GUID, whose first two bytes are the tag.
                    if body.len() < 26 {
                        return Err(bad("WAVE_FORMAT_EXTENSIBLE without its sub-format"));
                    }
                    tag = u16_at(body, 24);
                }
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                fmt = Some((tag, u16_at(body, 2), rate, u16_at(body, 14)));
            }
            b"data" => {
                data = Some(body);
                break;
            }
            _ => {}
        }
        // Chunks are word-aligned: an odd size is followed by a pad byte.
        at = body_end.saturating_add((size & 1) as usize);
    }
    let (tag, channels, rate, bits) = fmt.ok_or_else(|| bad("no fmt chunk before the data"))?;
    let data = data.ok_or_else(|| bad("no data chunk"))?;
    let name = match tag {
        FORMAT_PCM => "PCM",
        FORMAT_ALAW => "A-law",
        FORMAT_MULAW => "µ-law",
        3 => "float",
        _ => "an unknown encoding",
    };
    let fits = channels == 1
        && rate == RATE
        && matches!(
            (tag, bits),
            (FORMAT_PCM, 16) | (FORMAT_ALAW | FORMAT_MULAW, 8)
        );
    if !fits {
        return Err(MediaError::BadWav(format!(
            "need mono 8000 Hz, 16-bit PCM or 8-bit A-law/µ-law; this is {bits}-bit {name}, {channels} channel(s), {rate} Hz"
        )));
    }
    Ok(match tag {
        FORMAT_ALAW => data.iter().map(|b| super::g711::alaw_decode(*b)).collect(),
        FORMAT_MULAW => data.iter().map(|b| super::g711::ulaw_decode(*b)).collect(),
        // A trailing odd byte is not a sample.
        _ => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    })
}

/// [`read`] from a file (at most 16 MiB).
pub fn read_file(path: &std::path::Path) -> Result<Vec<i16>, MediaError> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE {
        return Err(MediaError::BadWav(format!(
            "{len} bytes; a recorded message is at most {MAX_FILE} bytes"
        )));
    }
    let bytes = std::fs::read(path)?;
    read(&bytes)
}

/// How long `samples` play at [`RATE`].
pub fn duration(samples: &[i16]) -> std::time::Duration {
    std::time::Duration::from_secs_f64(samples.len() as f64 / f64::from(RATE))
}

/// Writes samples as a 16-bit PCM, mono, 8000 Hz WAV.
pub fn write(samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    // Writing to memory cannot fail for want of space; a failure would be
    // a hound bug, and yields what was written.
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        for s in samples {
            if w.write_sample(*s).is_err() {
                break;
            }
        }
        let _ = w.finalize();
    }
    out.into_inner()
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
        let mut eleven = write(&p);
        eleven[24..28].copy_from_slice(&11_025u32.to_le_bytes());
        let e = read(&eleven).unwrap_err().to_string();
        assert!(e.contains("11025 Hz"), "{e}");
    }

    /// A RIFF file by hand: `fmt ` with `tag`, `bits`, then `extra` chunks,
    /// then `data`.
    fn riff(tag: u16, bits: u16, extra: &[(&[u8; 4], &[u8])], data: &[u8]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        let mut chunk = |id: &[u8; 4], b: &[u8]| {
            body.extend_from_slice(id);
            body.extend_from_slice(&(b.len() as u32).to_le_bytes());
            body.extend_from_slice(b);
            if b.len() % 2 == 1 {
                body.push(0);
            }
        };
        let block = bits / 8;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes());
        fmt.extend_from_slice(&RATE.to_le_bytes());
        fmt.extend_from_slice(&(RATE * u32::from(block)).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        chunk(b"fmt ", &fmt);
        for (id, b) in extra {
            chunk(id, b);
        }
        chunk(b"data", data);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The telephony formats (G.711 A-law and µ-law, 8-bit) are read, and
    /// an odd-sized chunk before the data is skipped with its pad byte.
    #[test]
    fn g711_recordings_and_odd_sized_chunks_are_read() {
        let p = generated_prompt(0.1);
        let ulaw: Vec<u8> = p
            .iter()
            .map(|s| super::super::g711::ulaw_encode(*s))
            .collect();
        let alaw: Vec<u8> = p
            .iter()
            .map(|s| super::super::g711::alaw_encode(*s))
            .collect();
        let back = read(&riff(FORMAT_MULAW, 8, &[], &ulaw)).unwrap();
        assert_eq!(back.len(), p.len());
        assert!(back.iter().zip(&p).all(|(a, b)| (a - b).abs() < 300));
        let back = read(&riff(FORMAT_ALAW, 8, &[(b"LIST", b"INFO\0")], &alaw)).unwrap();
        assert_eq!(back.len(), p.len());
        let pcm: Vec<u8> = p.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(
            read(&riff(FORMAT_PCM, 16, &[(b"LIST", b"INFO\0")], &pcm)).unwrap(),
            p
        );
        // 8-bit PCM and float are refused, named.
        let e = read(&riff(FORMAT_PCM, 8, &[], &ulaw))
            .unwrap_err()
            .to_string();
        assert!(e.contains("8-bit PCM"), "{e}");
        let e = read(&riff(3, 32, &[], &[0; 8])).unwrap_err().to_string();
        assert!(e.contains("float"), "{e}");
    }
}
