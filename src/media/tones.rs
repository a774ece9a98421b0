//! In-band DTMF (ITU-T Q.23 tone pairs in the audio itself), sans-IO: for
//! a far end that sends its keys as sound rather than as RFC 4733 events
//! ([`super::dtmf`]). Fed decoded 8 kHz samples in any chunks; tells each
//! key once, when its tone pair has filled two 20 ms blocks (a press of
//! about 50 ms or more; keypads send 70-100 ms).
//!
//! Written here rather than taken from a crate: it is eight Goertzel
//! filters over blocks the player already decodes, and the crates found
//! either buffer audio on their own clock or come with an audio stack.
//!
//! A key is told only when the pair stands out clearly, so that speech and
//! music ("talk-off") are not taken for keys: one row tone and one column
//! tone each at least 6 dB above the other tones of its group, the two
//! within 8 dB of each other (twist), and together at least 70% of the
//! block's energy, at a level a phone's keypad gives (above -36 dBm0).

/// Samples per block: 20 ms at 8 kHz.
const BLOCK: usize = 160;
/// The row (low group) and column (high group) frequencies, Hz.
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keys by row and column.
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// The strongest tone of a group over each other one of it (6 dB).
const GROUP_MARGIN: f64 = 4.0;
/// Row and column within this power ratio of each other (8 dB).
const TWIST: f64 = 6.3;
/// The pair's share of the block's energy.
const SHARE: f64 = 0.7;
/// Mean square a block must exceed: about -36 dBm0 of a 16-bit sample
/// scale (a sine of amplitude 500).
const FLOOR: f64 = 500.0 * 500.0 / 2.0;

/// The pair of `key` (0-9, *, #, A-D) from sample `from` of the press on,
/// into `out` (each tone at about -10 dBm0, as a keypad sends); false for
/// a character that is not a key.
pub fn sound(key: char, from: usize, out: &mut [i16]) -> bool {
    let Some((r, c)) = pair(key) else {
        return false;
    };
    for (i, o) in out.iter_mut().enumerate() {
        let t = (from + i) as f64 / 8000.0;
        let v = 4000.0
            * ((std::f64::consts::TAU * ROWS[r] * t).sin()
                + (std::f64::consts::TAU * COLS[c] * t).sin());
        *o = v as i16;
    }
    true
}

/// The row and column of `key` in [`KEYS`] (either case).
fn pair(key: char) -> Option<(usize, usize)> {
    let key = key.to_ascii_uppercase();
    (0..4)
        .flat_map(|r| (0..4).map(move |c| (r, c)))
        .find(|&(r, c)| KEYS[r][c] == key)
}

/// Tells the keys sounded in a stream of samples.
#[derive(Debug, Default)]
pub struct InBand {
    block: Vec<f64>,
    /// The key the last block held, and whether it was told.
    held: Option<(char, bool)>,
}

impl InBand {
    /// Takes `samples`; the first key that completes its two blocks in
    /// them, if any (later samples of the chunk are still taken).
    pub fn feed(&mut self, samples: &[i16]) -> Option<char> {
        let mut told = None;
        for &s in samples {
            self.block.push(f64::from(s));
            if self.block.len() == BLOCK {
                let key = key_of(&self.block);
                self.block.clear();
                self.held = match (key, self.held) {
                    (Some(k), Some((h, done))) if k == h => {
                        if !done && told.is_none() {
                            told = Some(k);
                        }
                        Some((k, true))
                    }
                    (Some(k), _) => Some((k, false)),
                    (None, _) => None,
                };
            }
        }
        told
    }
}

/// The power of `block` at `freq` (Goertzel), scaled so that a sine of
/// amplitude A at that frequency gives about A^2 / 2 (its mean square).
fn power(block: &[f64], freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in block {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = block.len() as f64;
    2.0 * p / (n * n)
}

/// The key a block holds, if its tone pair stands out as the module
/// says.
fn key_of(block: &[f64]) -> Option<char> {
    let energy = block.iter().map(|x| x * x).sum::<f64>() / block.len() as f64;
    if energy < FLOOR {
        return None;
    }
    let strongest = |freqs: &[f64; 4]| {
        let p: Vec<f64> = freqs.iter().map(|&f| power(block, f)).collect();
        let (i, &top) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        let clear = p
            .iter()
            .enumerate()
            .all(|(j, &q)| j == i || top >= GROUP_MARGIN * q);
        clear.then_some((i, top))
    };
    let (r, row) = strongest(&ROWS)?;
    let (c, col) = strongest(&COLS)?;
    let twist_ok = row <= TWIST * col && col <= TWIST * row;
    (twist_ok && row + col >= SHARE * energy).then_some(KEYS[r][c])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of the pair for `key` at amplitude `amp` each (and 1% off
    /// frequency, within what Q.24 lets a keypad drift).
    fn key_tone(key: char, ms: usize, amp: f64) -> Vec<i16> {
        let (r, c) = pair(key).unwrap();
        let (f1, f2) = (ROWS[r] * 1.01, COLS[c] * 0.99);
        (0..ms * 8)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let v = amp
                    * ((std::f64::consts::TAU * f1 * t).sin()
                        + (std::f64::consts::TAU * f2 * t).sin());
                v as i16
            })
            .collect()
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    /// What [`sound`] makes is heard as its key.
    #[test]
    fn a_sounded_key_is_heard() {
        let mut samples = vec![0i16; 800];
        assert!(sound('#', 0, &mut samples));
        assert_eq!(InBand::default().feed(&samples), Some('#'));
        assert!(!sound('x', 0, &mut samples));
    }

    /// Each key is told once however long it is held, in any chunking,
    /// and a key pressed again after a gap is told again.
    #[test]
    fn every_key_is_told_once_per_press() {
        for key in "0123456789*#ABCD".chars() {
            let mut d = InBand::default();
            let mut told = Vec::new();
            let audio = [
                key_tone(key, 100, 4000.0),
                silence(60),
                key_tone(key, 70, 4000.0),
            ]
            .concat();
            for chunk in audio.chunks(37) {
                told.extend(d.feed(chunk));
            }
            assert_eq!(told, vec![key, key], "{key}");
        }
    }

    /// A press too short (one block), too quiet, or with too much twist
    /// is not a key; nor are single tones (our own chime echoed), a chord
    /// of three, or noise.
    #[test]
    fn speech_like_sound_is_not_a_key() {
        let feed = |audio: &[i16]| {
            let mut d = InBand::default();
            d.feed(audio)
        };
        assert_eq!(feed(&key_tone('5', 20, 4000.0)), None, "20 ms");
        assert_eq!(feed(&key_tone('5', 100, 200.0)), None, "too quiet");
        let twisted: Vec<i16> = (0..800)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (6000.0 * (std::f64::consts::TAU * 770.0 * t).sin()
                    + 600.0 * (std::f64::consts::TAU * 1336.0 * t).sin()) as i16
            })
            .collect();
        assert_eq!(feed(&twisted), None, "20 dB twist");
        let prompt = crate::media::wav::generated_prompt(1.0);
        assert_eq!(feed(&prompt), None, "the chime and tone");
        let chord: Vec<i16> = (0..800)
            .map(|i| {
                let t = i as f64 / 8000.0;
                [697.0, 1209.0, 1000.0]
                    .iter()
                    .map(|f| 3000.0 * (std::f64::consts::TAU * f * t).sin())
                    .sum::<f64>() as i16
            })
            .collect();
        assert_eq!(feed(&chord), None, "a third tone as strong");
        let mut x: u32 = 12345;
        let noise: Vec<i16> = (0..8000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) as i16) / 4
            })
            .collect();
        assert_eq!(feed(&noise), None, "noise");
    }

    /// The recorded messages shipped with the sample campaigns (speech)
    /// hold no key: their echo cannot opt anyone out.
    #[test]
    fn the_shipped_messages_hold_no_key() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/prompts");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wav") {
                let samples = crate::media::wav::read(&std::fs::read(&path).unwrap()).unwrap();
                let mut d = InBand::default();
                assert_eq!(d.feed(&samples), None, "{}", path.display());
                read += 1;
            }
        }
        assert!(read >= 2, "{read} messages in {}", dir.display());
    }
}
