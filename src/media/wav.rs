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

/// Reads a RIFF WAV of 16-bit PCM, mono, 8000 Hz (hound parses the
/// container; anything else is refused with what was found).
pub fn read(bytes: &[u8]) -> Result<Vec<i16>, MediaError> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| MediaError::BadWav(format!("not a WAV file we can read: {e}")))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int
        || spec.bits_per_sample != 16
        || spec.channels != 1
        || spec.sample_rate != RATE
    {
        return Err(MediaError::BadWav(format!(
            "need 16-bit PCM, mono, 8000 Hz; this is {}-bit {}, {} channel(s), {} Hz",
            spec.bits_per_sample,
            match spec.sample_format {
                hound::SampleFormat::Int => "PCM",
                hound::SampleFormat::Float => "float",
            },
            spec.channels,
            spec.sample_rate
        )));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| MediaError::BadWav(format!("bad sample data: {e}")))
}

/// [`read`] from a file.
pub fn read_file(path: &std::path::Path) -> Result<Vec<i16>, MediaError> {
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
    }
}
