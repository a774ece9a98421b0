//! Do-Not-Call registries in memory and on disk: a compact, sorted set of
//! E.164 numbers held as `u64` digits (+91 98765 43210 is `919876543210`).
//!
//! Owns the in-memory representation of a DND registry ([`DndSet`]), its
//! incremental updates (a small overlay of added and removed numbers, merged
//! into the compressed base by [`DndSet::compact`]) and its binary file
//! format ([`DndSet::write_to`] / [`DndSet::read_from`]). It does not
//! normalise numbers (that is `phone`'s job) and opens no files itself:
//! callers hand it a `Read` or a `Write`.
//!
//! # Design: blocked Elias–Fano base plus a sorted overlay
//!
//! The base is an Elias–Fano encoding of the sorted numbers, offset by the
//! smallest one. With `n` numbers spanning a range `U`, each number is split
//! into `l = floor(log2(U / n))` low bits, stored verbatim, and the
//! remaining high bits, stored in unary: for each high value (a *bucket*)
//! one 1 per number in it, then a 0. That costs `2 + log2(U / n)` bits per
//! number, within a fraction of a bit of the information-theoretic minimum,
//! whatever the distribution of gaps. For 100 M Indian mobiles (`U` = 4e9)
//! it is about 7.3 bits: 0.93 bytes per number with the index.
//!
//! Why Elias–Fano rather than delta-coded blocks with a sampled index:
//! - a look-up decodes about one number (a bucket holds 0 to 3 numbers at
//!   this density) after one select within a block; a delta-coded block is
//!   decoded serially, with branches, up to the wanted number, typically
//!   tens of numbers per look-up;
//! - the size is a function of `n` and `U` alone, so the build allocates
//!   the data exactly once, in a single pass over the sorted numbers;
//! - the base is one array of `u64` words, so a saved set loads as a bulk
//!   little-endian word read plus one linear pass rebuilding the index.
//!
//! Why *blocked*: textbook Elias–Fano keeps the high and low bits in two
//! arrays plus a select index, three dependent random memory accesses per
//! look-up. Here the buckets are grouped into blocks of 256 (about 200
//! numbers, 190 bytes, at the density above), each block's high bits
//! followed by its low bits, and the only index is the count of numbers
//! before each block (2 MB for 100 M numbers, which stays in cache); from it
//! a look-up computes where its block starts and how long it is, copies the
//! whole block (three or four cache lines, fetched in parallel) and searches
//! the copy. A look-up therefore costs one memory round trip: measured at
//! 100 M numbers it is as slow as one bare random load from a 100 MB array,
//! no slower. Buckets of many numbers (dense clusters, such as a whole
//! number range registered at once) are binary-searched.
//!
//! Keep one set per country: a set mixing +1 and +91 numbers spans ~1e12
//! and costs ~2 bytes per number instead of ~1. Large pages help look-ups
//! by 10–15% (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1` when transparent huge
//! pages are in `madvise` mode).
//!
//! The overlay is two sorted `Vec<u64>`s, numbers added that are not in the
//! base and numbers removed that are. A look-up binary-searches them as well
//! as the base. An insert or remove of a single number shifts the overlay
//! vector (a memmove of at most 1% of the base, see below); bulk changes go
//! through [`DndSet::apply_delta`], which merges a whole batch in one pass.
//! When the overlay holds more than 1% of the base (and at least 4096
//! numbers) the mutating methods merge it into a new base by a streaming
//! sorted merge; [`DndSet::compact`] forces that merge.
//!
//! # File format (version 1, all integers little-endian)
//!
//! A 96-byte header of twelve 64-bit words: magic `DNDSETEF`, version (u32)
//! and reserved (u32, zero), base count, base minimum, base maximum, low-bit
//! width, data word count, block size (log2, 8), added count, removed count,
//! payload checksum, header checksum. Then the payload, all `u64` words: the
//! base data, the added numbers, the removed numbers. The block counts are
//! not stored; they are rebuilt on load by a pass that also checks every
//! block is well formed. Both checksums chain a bijective mix over the
//! words, so any single corrupted word is always detected. A short,
//! corrupt or inconsistent file is reported as a [`DndSetError`]; reading
//! never panics.

use std::fmt;
use std::io::{self, Read, Write};

/// Errors from building, saving or loading a [`DndSet`].
#[derive(Debug, thiserror::Error)]
pub enum DndSetError {
    /// [`DndSet::from_sorted`] was given numbers that are not ascending.
    #[error("numbers are not in ascending order: {next} follows {prev}")]
    NotSorted {
        /// The earlier number.
        prev: u64,
        /// The number that followed it and is smaller.
        next: u64,
    },
    /// The underlying reader or writer failed (other than by ending early).
    #[error("I/O error on a DND set file: {0}")]
    Io(#[from] io::Error),
    /// The data does not start with the DND set magic bytes.
    #[error("not a DND set file (bad magic bytes)")]
    BadMagic,
    /// The file was written by an incompatible version of this format.
    #[error("unsupported DND set file version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The data ended before the part named here was complete.
    #[error("DND set file is truncated: it ends inside the {0}")]
    Truncated(&'static str),
    /// A checksum did not match: the named part of the file is corrupt.
    #[error(
        "DND set file {section} checksum mismatch (stored {stored:#018x}, computed {computed:#018x})"
    )]
    ChecksumMismatch {
        /// `"header"` or `"payload"`.
        section: &'static str,
        /// The checksum stored in the file.
        stored: u64,
        /// The checksum of the data actually read.
        computed: u64,
    },
    /// The file's checksums match but its contents are inconsistent.
    #[error("DND set file is corrupt: {0}")]
    Corrupt(&'static str),
    /// The header declares more data than can be allocated.
    #[error("DND set file declares {words} words of data, more than can be allocated")]
    TooLarge {
        /// The number of 64-bit words the header declares.
        words: u64,
    },
}

/// File magic bytes, the first eight bytes of every saved set.
const MAGIC: [u8; 8] = *b"DNDSETEF";
/// The file format version written and read by this module.
const FORMAT_VERSION: u32 = 1;
/// Header size in bytes: twelve 64-bit words.
const HEADER_WORDS: usize = 12;
/// Words per chunk when converting between words and bytes for I/O.
const IO_CHUNK_WORDS: usize = 8192;

/// Buckets (high parts) per block: 256, so that a block holds about 200
/// numbers at the density of Indian mobiles, about 190 bytes, and the block
/// counts, 4 bytes per block, take 0.02 bytes per number (2 MB for 100 M),
/// small enough to stay in cache.
const BLOCK_LOG: u32 = 8;
const BLOCK: u64 = 1 << BLOCK_LOG;
/// Blocks of up to these many words are copied to the stack before being
/// searched (see `EliasFano::copy_block`); larger ones, from dense clusters of
/// numbers or very sparse sets, are searched in place. A block of 100 M
/// Indian mobiles spans about 25 words.
const SHORT_COPY: usize = 32;
const LONG_COPY: usize = 64;
/// Numbers looked up together by [`DndSet::contains_batch`].
const BATCH: usize = 16;
/// Never compact an overlay smaller than this, however small the base.
const MIN_COMPACT_OVERLAY: usize = 4096;
/// Compact when the overlay exceeds `base_len / COMPACT_DIVISOR` (1%).
const COMPACT_DIVISOR: u64 = 100;

/// Seed and multiplier of the file checksums.
const CHECKSUM_SEED: u64 = 0x6a09_e667_f3bc_c908;
const CHECKSUM_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// A chained checksum over 64-bit words. Each step (xor the word, multiply
/// by an odd constant, xor-shift) is a bijection of the state, so changing
/// any single word always changes the result.
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(CHECKSUM_SEED)
    }

    #[inline]
    fn update(&mut self, word: u64) {
        let s = (self.0 ^ word).wrapping_mul(CHECKSUM_MUL);
        self.0 = s ^ (s >> 29);
    }

    fn update_all(&mut self, words: &[u64]) {
        for &w in words {
            self.update(w);
        }
    }
}

/// A mask of the `bits` lowest bits (`bits` <= 64).
#[inline]
fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// `SELECT_IN_BYTE[b][r]`: position of the `r`-th set bit of byte `b`.
static SELECT_IN_BYTE: [[u8; 8]; 256] = {
    let mut table = [[8u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let (mut r, mut i) = (0, 0);
        while i < 8 {
            if b & (1 << i) != 0 {
                table[b][r] = i as u8;
                r += 1;
            }
            i += 1;
        }
        b += 1;
    }
    table
};

/// Position of the `r`-th (0-based) set bit of `w`, without branches:
/// byte-wise popcounts and their prefix sums by one multiplication locate
/// the byte, a table the bit. `w` must have more than `r` set bits; if it
/// has not the result is meaningless (but there is no panic).
#[inline]
fn select_in_word(w: u64, r: u32) -> u32 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut s = w - ((w >> 1) & 0x5555_5555_5555_5555);
    s = (s & 0x3333_3333_3333_3333) + ((s >> 2) & 0x3333_3333_3333_3333);
    s = (s + (s >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    let prefix = s.wrapping_mul(ONES); // byte i: set bits in bytes 0..=i
    // One high bit for each byte whose prefix count is <= r.
    let at_most_r = ((u64::from(r & 63) * ONES) | HIGHS).wrapping_sub(prefix) & HIGHS;
    let byte = at_most_r.count_ones().min(7);
    let before = ((prefix << 8) >> (8 * byte)) & 0xff;
    let rank = u64::from(r).wrapping_sub(before) & 7;
    byte * 8 + u32::from(SELECT_IN_BYTE[((w >> (8 * byte)) & 0xff) as usize][rank as usize])
}

/// 64 bits of `words` starting at bit `pos`; `words` must hold the word
/// after the one containing `pos` whenever `pos` is not word-aligned.
#[inline]
fn bits_at(words: &[u64], pos: u64) -> u64 {
    let w = (pos >> 6) as usize;
    let off = (pos & 63) as u32;
    let first = words[w] >> off;
    if off == 0 {
        first
    } else {
        first | (words[w + 1] << (64 - off))
    }
}

/// Sizes of an Elias–Fano encoding, all derived from `(len, min, max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    low_bits: u32,
    /// The largest high part, `(max - min) >> low_bits`.
    max_high: u64,
    /// Number of blocks of `BLOCK` buckets.
    blocks: u64,
    /// Meaningful bits in the data: `len` ones, `max_high + 1` zeros (one
    /// ending each bucket) and `len * low_bits` low bits.
    total_bits: u64,
    /// Words of data: the meaningful bits plus one zero padding word.
    data_words: u64,
}

impl Layout {
    /// The layout of `len` distinct numbers from `min` to `max`; `None` if
    /// the sizes overflow (only possible for a corrupt file header).
    fn new(len: u64, min: u64, max: u64) -> Option<Layout> {
        if len == 0 {
            return Some(Layout {
                low_bits: 0,
                max_high: 0,
                blocks: 0,
                total_bits: 0,
                data_words: 0,
            });
        }
        let span = max.checked_sub(min)?;
        let ratio = span / len;
        let low_bits = if ratio == 0 {
            0
        } else {
            63 - ratio.leading_zeros()
        };
        let max_high = span >> low_bits;
        let total_bits = len
            .checked_mul(u64::from(low_bits) + 1)?
            .checked_add(max_high)?
            .checked_add(1)?;
        Some(Layout {
            low_bits,
            max_high,
            blocks: (max_high >> BLOCK_LOG) + 1,
            total_bits,
            data_words: total_bits.div_ceil(64) + 1,
        })
    }
}

/// Cumulative counts of numbers before each block: `u32`s whenever the set
/// holds fewer than 2^32 numbers, which halves the most-used index.
#[derive(Clone)]
enum Counts {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl Default for Counts {
    fn default() -> Self {
        Counts::Narrow(Vec::new())
    }
}

impl Counts {
    fn new(counts: Vec<u64>) -> Counts {
        match counts
            .iter()
            .map(|&c| u32::try_from(c))
            .collect::<Result<Vec<u32>, _>>()
        {
            Ok(narrow) => Counts::Narrow(narrow),
            Err(_) => Counts::Wide(counts),
        }
    }

    #[inline]
    fn get(&self, k: usize) -> u64 {
        match self {
            Counts::Narrow(v) => u64::from(v[k]),
            Counts::Wide(v) => v[k],
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Counts::Narrow(v) => v.capacity() * 4,
            Counts::Wide(v) => v.capacity() * 8,
        }
    }
}

/// The static Elias–Fano base of a [`DndSet`], in blocks.
///
/// Number `x` (offset by `min`) has high part `h = x >> low_bits` and low
/// part `x & mask`. The high parts `0 ..= max_high` are grouped into blocks
/// of `BLOCK` buckets. Block `k`, holding `c` numbers, is `c + BLOCK` high
/// bits (bucket `h` is one 1 per number in it, then a 0) followed by `c *
/// low_bits` low bits, with no padding; blocks follow one another. Block
/// `k` therefore starts at bit `counts[k] * (low_bits + 1) + k * BLOCK`.
#[derive(Clone, Default)]
struct EliasFano {
    len: u64,
    min: u64,
    max: u64,
    low_bits: u32,
    max_high: u64,
    data: Vec<u64>,
    /// Numbers before block `k`, for each block, then `len`.
    counts: Counts,
}

impl EliasFano {
    /// Encodes `len` strictly ascending numbers from `min` to `max`.
    /// `values` must yield exactly those numbers; extra ones are ignored.
    fn build(len: u64, min: u64, max: u64, values: impl Iterator<Item = u64>) -> EliasFano {
        let Some(layout) = Layout::new(len, min, max) else {
            // Unreachable for in-memory data: len <= 2^64 and max >= min.
            return EliasFano::default();
        };
        let l = layout.low_bits;
        let mut data = vec![0u64; layout.data_words as usize];
        let mut counts = Vec::with_capacity(layout.blocks as usize + 1);
        // The low bits of a block go after its high bits, whose length
        // depends on how many numbers it holds: gather a block, then write it.
        let mut block: Vec<u64> = Vec::new();
        let mut k = 0u64;
        let mut off = 0u64;
        let mut before = 0u64;
        let mut flush = |k: u64, block: &mut Vec<u64>, off: &mut u64, before: &mut u64| {
            counts.push(*before);
            let c = block.len() as u64;
            let buckets = BLOCK.min(layout.max_high + 1 - (k << BLOCK_LOG));
            let lows = *off + c + buckets;
            for (j, &x) in (0u64..).zip(block.iter()) {
                let pos = *off + ((x >> l) & (BLOCK - 1)) + j;
                data[(pos >> 6) as usize] |= 1u64 << (pos & 63);
                if l > 0 {
                    let bit = lows + j * u64::from(l);
                    let (w, o) = ((bit >> 6) as usize, (bit & 63) as u32);
                    let lo = x & low_mask(l);
                    data[w] |= lo << o;
                    if o + l > 64 {
                        data[w + 1] |= lo >> (64 - o);
                    }
                }
            }
            *off = lows + c * u64::from(l);
            *before += c;
            block.clear();
        };
        for v in values.take(len as usize) {
            let x = v - min;
            while (x >> l) >> BLOCK_LOG > k {
                flush(k, &mut block, &mut off, &mut before);
                k += 1;
            }
            block.push(x);
        }
        while k < layout.blocks {
            flush(k, &mut block, &mut off, &mut before);
            k += 1;
        }
        counts.push(before);
        EliasFano {
            len,
            min,
            max,
            low_bits: l,
            max_high: layout.max_high,
            data,
            counts: Counts::new(counts),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.data.capacity() * 8 + self.counts.heap_bytes()
    }

    /// Where block `k` starts in the data, in bits, how many numbers it
    /// holds and how many buckets it covers.
    #[inline]
    fn block(&self, k: usize) -> (u64, u64, u64) {
        let before = self.counts.get(k);
        let c = self.counts.get(k + 1) - before;
        let first = (k as u64) << BLOCK_LOG;
        let buckets = BLOCK.min(self.max_high + 1 - first);
        (before * (u64::from(self.low_bits) + 1) + first, c, buckets)
    }

    /// Where to look for `n`: its block's look-up, the word where the
    /// block starts and how many words to read; `None` if `n` is out of range.
    #[inline]
    fn locate(&self, n: u64) -> Option<(Block, usize, usize)> {
        if self.len == 0 || n < self.min || n > self.max {
            return None;
        }
        let x = n - self.min;
        let l = self.low_bits;
        let h = x >> l;
        let (off, c, buckets) = self.block((h >> BLOCK_LOG) as usize);
        let bit0 = off & 63;
        let block = Block {
            bit0,
            c,
            buckets,
            bucket: h & (BLOCK - 1),
            low: x & low_mask(l),
            low_bits: l,
        };
        // One word more than the block spans, for `bits_at`.
        let words = ((bit0 + c + buckets + c * u64::from(l)).div_ceil(64) + 1) as usize;
        Some((block, (off >> 6) as usize, words))
    }

    #[inline]
    fn contains(&self, n: u64) -> bool {
        let Some((block, w0, words)) = self.locate(n) else {
            return false;
        };
        // See `copy_block`; copying into an array of the right size avoids
        // initialising a larger one first.
        let copy = |len: usize| self.data.get(w0..w0 + len).filter(|_| words <= len);
        if let Some(Ok(short)) = copy(SHORT_COPY).map(<[u64; SHORT_COPY]>::try_from) {
            block.contains(&short)
        } else if let Some(Ok(long)) = copy(LONG_COPY).map(<[u64; LONG_COPY]>::try_from) {
            block.contains(&long)
        } else {
            block.contains(&self.data[w0..])
        }
    }

    /// Copies the `words` words of data from `w0` into `buf` if they fit,
    /// returning `None`, or returns `Some(w0)` to search them in place.
    /// Copying the whole block first issues the loads of all its cache
    /// lines at once, instead of one after another as the search reaches
    /// them: one memory round trip instead of two or three. The copies are
    /// of fixed size, so they compile to a few vector moves.
    #[inline]
    fn copy_block(&self, w0: usize, words: usize, buf: &mut [u64; LONG_COPY]) -> Option<usize> {
        if words <= SHORT_COPY
            && let Some(src) = self.data.get(w0..w0 + SHORT_COPY)
        {
            buf[..SHORT_COPY].copy_from_slice(src);
            None
        } else if words <= LONG_COPY
            && let Some(src) = self.data.get(w0..w0 + LONG_COPY)
        {
            buf.copy_from_slice(src);
            None
        } else {
            Some(w0)
        }
    }

    /// `contains` for each of `numbers`, appended to `out`. The blocks of
    /// `BATCH` numbers at a time are all copied before any is searched, so
    /// that their memory round trips overlap.
    fn contains_batch(&self, numbers: &[u64], out: &mut Vec<bool>) {
        let mut bufs = [[0u64; LONG_COPY]; BATCH];
        let mut plans: [Option<(Block, Option<usize>)>; BATCH] = [None; BATCH];
        for chunk in numbers.chunks(BATCH) {
            for ((&n, plan), buf) in chunk.iter().zip(&mut plans).zip(&mut bufs) {
                *plan = self
                    .locate(n)
                    .map(|(block, w0, words)| (block, self.copy_block(w0, words, buf)));
            }
            for (plan, buf) in plans.iter().zip(&bufs).take(chunk.len()) {
                out.push(match plan {
                    None => false,
                    Some((block, None)) => block.contains(buf),
                    Some((block, Some(w0))) => block.contains(&self.data[*w0..]),
                });
            }
        }
    }

    /// Iterates over the numbers of blocks `k..` (all of them if `k` is 0),
    /// stopping after `end` numbers in all.
    fn iter_from(&self, k: usize, end: u64) -> BaseIter<'_> {
        let (off, c, buckets) = if self.len == 0 {
            (0, 0, 0)
        } else {
            self.block(k)
        };
        BaseIter {
            ef: self,
            k,
            off,
            c,
            buckets,
            j: 0,
            pos: off,
            idx: if self.len == 0 { 0 } else { self.counts.get(k) },
            end,
        }
    }

    fn iter(&self) -> BaseIter<'_> {
        self.iter_from(0, self.len)
    }

    /// The largest number not in `removed` (a sorted subset of the base).
    fn last_not_in(&self, removed: &[u64]) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let mut values = Vec::new();
        for k in (0..self.counts_len() - 1).rev() {
            values.clear();
            values.extend(self.iter_from(k, self.counts.get(k + 1)));
            if let Some(&v) = values
                .iter()
                .rev()
                .find(|v| removed.binary_search(v).is_err())
            {
                return Some(v);
            }
        }
        None
    }

    fn counts_len(&self) -> usize {
        match &self.counts {
            Counts::Narrow(v) => v.len(),
            Counts::Wide(v) => v.len(),
        }
    }

    /// Rebuilds the block counts of data read from a file, checking that
    /// every block is well formed: the block structure is all that keeps
    /// look-ups and iteration within bounds.
    fn scan_counts(data: &[u64], layout: &Layout, len: u64) -> Result<Vec<u64>, DndSetError> {
        let corrupt = DndSetError::Corrupt;
        let l = u64::from(layout.low_bits);
        let mut counts = Vec::new();
        counts
            .try_reserve_exact(layout.blocks as usize + 1)
            .map_err(|_| DndSetError::TooLarge {
                words: layout.blocks,
            })?;
        let mut off = 0u64;
        let mut before = 0u64;
        for k in 0..layout.blocks {
            counts.push(before);
            let buckets = BLOCK.min(layout.max_high + 1 - (k << BLOCK_LOG));
            // Find the zero that ends the block's last bucket.
            let mut need = buckets;
            let mut pos = off;
            loop {
                if pos >= layout.total_bits {
                    return Err(corrupt("a block's high bits run past the end of the data"));
                }
                let avail = (layout.total_bits - pos).min(64) as u32;
                let zeros = !bits_at(data, pos) & low_mask(avail);
                let z = u64::from(zeros.count_ones());
                if need <= z {
                    pos += u64::from(select_in_word(zeros, (need - 1) as u32)) + 1;
                    break;
                }
                need -= z;
                pos += u64::from(avail);
            }
            let c = pos - off - buckets;
            off = c
                .checked_mul(l)
                .and_then(|lows| pos.checked_add(lows))
                .filter(|&end| end <= layout.total_bits)
                .ok_or(corrupt("a block's low bits run past the end of the data"))?;
            before += c;
        }
        counts.push(before);
        if before != len || off != layout.total_bits {
            return Err(corrupt(
                "the blocks do not hold the declared count of numbers",
            ));
        }
        let tail = (layout.total_bits % 64) as u32;
        let last_full = (layout.total_bits / 64) as usize;
        if data[last_full] & !low_mask(tail) != 0 || data[last_full + 1..].iter().any(|&w| w != 0) {
            return Err(corrupt("bits set past the end of the data"));
        }
        Ok(counts)
    }
}

/// One block's look-up: is the number with high part in bucket `bucket`
/// of the block and low part `low` present?
#[derive(Clone, Copy)]
struct Block {
    /// Bit where the block starts in the words searched.
    bit0: u64,
    c: u64,
    buckets: u64,
    bucket: u64,
    low: u64,
    low_bits: u32,
}

impl Block {
    /// `words` starts with the word holding the block's first bit and
    /// extends at least one word past its last bit.
    #[inline(always)]
    fn contains(&self, words: &[u64]) -> bool {
        let l = self.low_bits;
        let pos = self.bucket_start(words);
        // The bucket's numbers: one 1 each, from `pos` to the next 0.
        let mut end = pos;
        loop {
            let off = end & 63;
            let ones = u64::from((!(words[(end >> 6) as usize] >> off)).trailing_zeros());
            if ones < 64 - off {
                end += ones;
                break;
            }
            end += 64 - off;
        }
        // Index within the block of the bucket's first number, and the
        // bucket's low parts, which are ascending.
        let mut first = pos - self.bit0 - self.bucket;
        let mut count = end - pos;
        let lows = self.bit0 + self.c + self.buckets;
        let low_at = |j: u64| {
            if l == 0 {
                0
            } else {
                bits_at(words, lows + j * u64::from(l)) & low_mask(l)
            }
        };
        // Binary search down to a few numbers (a bucket usually holds 0 to
        // 3; only dense clusters of numbers make it long), then scan.
        while count > 4 {
            let half = count / 2;
            if low_at(first + half) <= self.low {
                first += half;
                count -= half;
            } else {
                count = half;
            }
        }
        (first..first + count).any(|j| low_at(j) == self.low)
    }

    /// Where the bucket starts in `words`: just after the block's zero
    /// number `bucket - 1`.
    #[inline(always)]
    fn bucket_start(&self, words: &[u64]) -> u64 {
        if self.bucket == 0 {
            return self.bit0;
        }
        let mut r = self.bucket - 1;
        let first_mask = u64::MAX << self.bit0;
        let mut wi = 0;
        let mut zeros = !words[0] & first_mask;
        loop {
            let z = u64::from(zeros.count_ones());
            if r < z {
                return (wi as u64) * 64 + u64::from(select_in_word(zeros, r as u32)) + 1;
            }
            r -= z;
            wi += 1;
            zeros = !words[wi];
        }
    }
}

/// Ascending iterator over the base alone (or a range of its blocks).
struct BaseIter<'a> {
    ef: &'a EliasFano,
    /// Current block, its start bit, count and buckets.
    k: usize,
    off: u64,
    c: u64,
    buckets: u64,
    /// Numbers of the block already yielded.
    j: u64,
    /// Next bit of the block's high bits to look at.
    pos: u64,
    /// Numbers before the next one, in the whole base; stop at `end`.
    idx: u64,
    end: u64,
}

impl Iterator for BaseIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if self.idx >= self.end {
            return None;
        }
        let ef = self.ef;
        while self.j == self.c {
            self.k += 1;
            (self.off, self.c, self.buckets) = ef.block(self.k);
            self.j = 0;
            self.pos = self.off;
        }
        // The block still holds a number, so a one follows within it.
        loop {
            let word = bits_at(&ef.data, self.pos);
            if word != 0 {
                self.pos += u64::from(word.trailing_zeros());
                break;
            }
            self.pos += 64;
        }
        let high = ((self.k as u64) << BLOCK_LOG) + (self.pos - self.off - self.j);
        let l = ef.low_bits;
        let low = if l == 0 {
            0
        } else {
            let lows = self.off + self.c + self.buckets;
            bits_at(&ef.data, lows + self.j * u64::from(l)) & low_mask(l)
        };
        self.pos += 1;
        self.j += 1;
        self.idx += 1;
        Some(ef.min + ((high << l) | low))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let rest = (self.end - self.idx) as usize;
        (rest, Some(rest))
    }
}

/// A Do-Not-Call registry: a compact sorted set of E.164 numbers as `u64`.
///
/// A look-up costs one memory round trip (a few hundred nanoseconds at
/// 100 M numbers; [`contains_batch`](Self::contains_batch) overlaps them),
/// and the set takes under one byte per number at Indian-mobile density
/// (see the module docs). Updates go to a small overlay that is merged
/// into the compressed base automatically once it exceeds 1% of the base.
#[derive(Clone, Default)]
pub struct DndSet {
    base: EliasFano,
    /// Numbers in the set but not in the base; sorted, no duplicates.
    added: Vec<u64>,
    /// Numbers in the base but not in the set; sorted, no duplicates.
    removed: Vec<u64>,
}

impl fmt::Debug for DndSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DndSet")
            .field("len", &self.len())
            .field("base_len", &self.base.len)
            .field("added", &self.added.len())
            .field("removed", &self.removed.len())
            .field("size_in_bytes", &self.size_in_bytes())
            .finish()
    }
}

impl DndSet {
    /// An empty set.
    pub fn new() -> DndSet {
        DndSet::default()
    }

    /// Builds a set from numbers in ascending order; repeated numbers are
    /// kept once. The numbers are first collected into a `Vec` (8 bytes
    /// each, freed before returning).
    ///
    /// # Errors
    /// [`DndSetError::NotSorted`] if a number is smaller than its predecessor.
    pub fn from_sorted(numbers: impl IntoIterator<Item = u64>) -> Result<DndSet, DndSetError> {
        let iter = numbers.into_iter();
        let mut sorted: Vec<u64> = Vec::with_capacity(iter.size_hint().0);
        for n in iter {
            match sorted.last() {
                Some(&prev) if n < prev => return Err(DndSetError::NotSorted { prev, next: n }),
                Some(&prev) if n == prev => {}
                _ => sorted.push(n),
            }
        }
        Ok(DndSet::from_strictly_ascending(&sorted))
    }

    /// Builds a set from numbers in any order, with any repeats: sorts and
    /// deduplicates `numbers` in place, encodes them, then frees the vector.
    pub fn from_unsorted(mut numbers: Vec<u64>) -> DndSet {
        numbers.sort_unstable();
        numbers.dedup();
        DndSet::from_strictly_ascending(&numbers)
    }

    fn from_strictly_ascending(sorted: &[u64]) -> DndSet {
        let base = match (sorted.first(), sorted.last()) {
            (Some(&min), Some(&max)) => {
                EliasFano::build(sorted.len() as u64, min, max, sorted.iter().copied())
            }
            _ => EliasFano::default(),
        };
        DndSet {
            base,
            added: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Whether `n` is in the set.
    #[inline]
    pub fn contains(&self, n: u64) -> bool {
        if !self.added.is_empty() && self.added.binary_search(&n).is_ok() {
            return true;
        }
        self.base.contains(n)
            && (self.removed.is_empty() || self.removed.binary_search(&n).is_err())
    }

    /// Whether each of `numbers` is in the set, in order: the same answers
    /// as [`contains`](Self::contains), faster per number for long lists
    /// (such as a campaign's leads, about twice as fast at 100 M numbers),
    /// because the memory accesses of 16 look-ups at a time overlap.
    pub fn contains_batch(&self, numbers: &[u64]) -> Vec<bool> {
        let mut out = Vec::with_capacity(numbers.len());
        self.base.contains_batch(numbers, &mut out);
        if !self.added.is_empty() || !self.removed.is_empty() {
            for (found, &n) in out.iter_mut().zip(numbers) {
                *found = self.added.binary_search(&n).is_ok()
                    || (*found && self.removed.binary_search(&n).is_err());
            }
        }
        out
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> usize {
        self.base.len as usize + self.added.len() - self.removed.len()
    }

    /// Whether the set holds no numbers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numbers in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        let mut base = self.base.iter();
        let mut removed = self.removed.as_slice();
        let base_next = next_kept(&mut base, &mut removed);
        Iter {
            base,
            removed,
            base_next,
            added: &self.added,
            remaining: self.len(),
        }
    }

    /// Heap bytes used by the set: the compressed base, its block index and
    /// the overlay.
    pub fn size_in_bytes(&self) -> usize {
        self.base.heap_bytes() + (self.added.capacity() + self.removed.capacity()) * 8
    }

    /// How many numbers the overlay holds (added plus removed), i.e. the
    /// updates not yet merged into the compressed base.
    pub fn overlay_len(&self) -> usize {
        self.added.len() + self.removed.len()
    }

    /// Adds `n`; returns whether it was absent. Costs a binary search plus a
    /// shift of the overlay; may trigger [`compact`](Self::compact).
    pub fn insert(&mut self, n: u64) -> bool {
        let changed = if self.base.contains(n) {
            match self.removed.binary_search(&n) {
                Ok(i) => {
                    self.removed.remove(i);
                    true
                }
                Err(_) => false,
            }
        } else {
            match self.added.binary_search(&n) {
                Ok(_) => false,
                Err(i) => {
                    self.added.insert(i, n);
                    true
                }
            }
        };
        if changed {
            self.compact_if_needed();
        }
        changed
    }

    /// Removes `n`; returns whether it was present. Costs a binary search
    /// plus a shift of the overlay; may trigger [`compact`](Self::compact).
    pub fn remove(&mut self, n: u64) -> bool {
        let changed = if self.base.contains(n) {
            match self.removed.binary_search(&n) {
                Ok(_) => false,
                Err(i) => {
                    self.removed.insert(i, n);
                    true
                }
            }
        } else {
            match self.added.binary_search(&n) {
                Ok(i) => {
                    self.added.remove(i);
                    true
                }
                Err(_) => false,
            }
        };
        if changed {
            self.compact_if_needed();
        }
        changed
    }

    /// Applies a batch of registrations (`adds`) and de-registrations
    /// (`removes`), in any order and with repeats, in one merge pass over
    /// the overlay. A number in both lists ends up in the set: when in doubt,
    /// do not call. May trigger [`compact`](Self::compact).
    pub fn apply_delta(
        &mut self,
        adds: impl IntoIterator<Item = u64>,
        removes: impl IntoIterator<Item = u64>,
    ) {
        let mut adds: Vec<u64> = adds.into_iter().collect();
        adds.sort_unstable();
        adds.dedup();
        let mut removes: Vec<u64> = removes.into_iter().collect();
        removes.sort_unstable();
        removes.dedup();
        let removes = difference(&removes, &adds);

        let (adds_in_base, adds_new): (Vec<u64>, Vec<u64>) =
            adds.iter().partition(|&&n| self.base.contains(n));
        let (removes_in_base, removes_other): (Vec<u64>, Vec<u64>) =
            removes.iter().partition(|&&n| self.base.contains(n));

        self.added = difference(&union(&self.added, &adds_new), &removes_other);
        self.removed = union(&difference(&self.removed, &adds_in_base), &removes_in_base);
        self.compact_if_needed();
    }

    /// Merges the overlay into the base if it holds more than 1% of the
    /// base (and at least 4096 numbers); returns whether it did.
    pub fn compact_if_needed(&mut self) -> bool {
        let threshold = ((self.base.len / COMPACT_DIVISOR) as usize).max(MIN_COMPACT_OVERLAY);
        if self.overlay_len() > threshold {
            self.compact();
            true
        } else {
            false
        }
    }

    /// Merges the overlay into a new compressed base by a streaming sorted
    /// merge (no intermediate `Vec` of all numbers), leaving the overlay
    /// empty. Does nothing if the overlay is already empty.
    pub fn compact(&mut self) {
        if self.overlay_len() == 0 {
            return;
        }
        let len = self.len() as u64;
        let min = self.iter().next();
        let max = match (
            self.added.last().copied(),
            self.base.last_not_in(&self.removed),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let base = match (min, max) {
            (Some(min), Some(max)) => EliasFano::build(len, min, max, self.iter()),
            _ => EliasFano::default(),
        };
        *self = DndSet {
            base,
            added: Vec::new(),
            removed: Vec::new(),
        };
    }

    /// Saves the set (base and overlay) in the format described in the
    /// module docs. Writes in 64 KiB chunks, so `w` need not be buffered.
    ///
    /// # Errors
    /// [`DndSetError::Io`] if writing fails.
    pub fn write_to(&self, mut w: impl Write) -> Result<(), DndSetError> {
        let sections: [&[u64]; 3] = [&self.base.data, &self.added, &self.removed];
        let mut payload = Checksum::new();
        for s in sections {
            payload.update_all(s);
        }
        let mut header = [0u64; HEADER_WORDS];
        header[0] = u64::from_le_bytes(MAGIC);
        header[1] = u64::from(FORMAT_VERSION);
        header[2] = self.base.len;
        header[3] = self.base.min;
        header[4] = self.base.max;
        header[5] = u64::from(self.base.low_bits);
        header[6] = self.base.data.len() as u64;
        header[7] = u64::from(BLOCK_LOG);
        header[8] = self.added.len() as u64;
        header[9] = self.removed.len() as u64;
        header[10] = payload.0;
        let mut head = Checksum::new();
        head.update_all(&header[..HEADER_WORDS - 1]);
        header[HEADER_WORDS - 1] = head.0;

        let mut buf = Vec::with_capacity(IO_CHUNK_WORDS * 8);
        for s in std::iter::once(&header[..]).chain(sections) {
            for chunk in s.chunks(IO_CHUNK_WORDS) {
                buf.clear();
                for &word in chunk {
                    buf.extend_from_slice(&word.to_le_bytes());
                }
                w.write_all(&buf)?;
            }
        }
        w.flush()?;
        Ok(())
    }

    /// Loads a set saved by [`write_to`](Self::write_to). Reads in 64 KiB
    /// chunks, so `r` need not be buffered; reads nothing past the set.
    ///
    /// # Errors
    /// [`DndSetError::Truncated`] if the data ends early,
    /// [`DndSetError::BadMagic`], [`DndSetError::UnsupportedVersion`],
    /// [`DndSetError::ChecksumMismatch`] or [`DndSetError::Corrupt`] if it
    /// is not a valid set, [`DndSetError::TooLarge`] if the header declares
    /// more data than can be allocated, [`DndSetError::Io`] if reading fails.
    pub fn read_from(mut r: impl Read) -> Result<DndSet, DndSetError> {
        let mut header = [0u64; HEADER_WORDS];
        let mut head_bytes = [0u8; HEADER_WORDS * 8];
        // The magic first, so that a short file of something else is
        // reported as not a DND set rather than as a truncated one.
        let (magic, rest) = head_bytes.split_at_mut(MAGIC.len());
        read_exact_or(&mut r, magic, "header")?;
        if *magic != MAGIC {
            return Err(DndSetError::BadMagic);
        }
        read_exact_or(&mut r, rest, "header")?;
        for (word, bytes) in header.iter_mut().zip(head_bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            *word = u64::from_le_bytes(b);
        }
        if header[0] != u64::from_le_bytes(MAGIC) {
            return Err(DndSetError::BadMagic);
        }
        let version = (header[1] & 0xffff_ffff) as u32;
        if version != FORMAT_VERSION {
            return Err(DndSetError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut head = Checksum::new();
        head.update_all(&header[..HEADER_WORDS - 1]);
        if head.0 != header[HEADER_WORDS - 1] {
            return Err(DndSetError::ChecksumMismatch {
                section: "header",
                stored: header[HEADER_WORDS - 1],
                computed: head.0,
            });
        }
        if header[1] >> 32 != 0 {
            return Err(DndSetError::Corrupt("reserved header field is not zero"));
        }
        let [
            _,
            _,
            len,
            min,
            max,
            low_bits,
            data_words,
            block_log,
            added_len,
            removed_len,
            stored_payload,
            _,
        ] = header;
        if block_log != u64::from(BLOCK_LOG) {
            return Err(DndSetError::Corrupt("unsupported block size"));
        }
        if len == 0 && (min != 0 || max != 0) {
            return Err(DndSetError::Corrupt("empty base with a non-zero range"));
        }
        let layout =
            Layout::new(len, min, max).ok_or(DndSetError::Corrupt("base range overflows"))?;
        if u64::from(layout.low_bits) != low_bits || layout.data_words != data_words {
            return Err(DndSetError::Corrupt(
                "data size does not match the base count and range",
            ));
        }
        if removed_len > len {
            return Err(DndSetError::Corrupt(
                "more removed numbers than base numbers",
            ));
        }
        let total = [added_len, removed_len]
            .into_iter()
            .try_fold(data_words, u64::checked_add)
            .filter(|&t| t.checked_mul(8).is_some_and(|b| usize::try_from(b).is_ok()))
            .ok_or(DndSetError::TooLarge { words: u64::MAX })?;

        let mut payload = Checksum::new();
        let data = read_words(&mut r, data_words, total, &mut payload)?;
        let added = read_words(&mut r, added_len, total, &mut payload)?;
        let removed = read_words(&mut r, removed_len, total, &mut payload)?;
        if payload.0 != stored_payload {
            return Err(DndSetError::ChecksumMismatch {
                section: "payload",
                stored: stored_payload,
                computed: payload.0,
            });
        }

        let counts = if len == 0 {
            Vec::new()
        } else {
            EliasFano::scan_counts(&data, &layout, len)?
        };
        let base = EliasFano {
            len,
            min,
            max,
            low_bits: layout.low_bits,
            max_high: layout.max_high,
            data,
            counts: Counts::new(counts),
        };
        if len > 0 && (base.iter().next() != Some(min) || base.last_not_in(&[]) != Some(max)) {
            return Err(DndSetError::Corrupt(
                "base minimum or maximum does not match its contents",
            ));
        }
        if !strictly_ascending(&added) || !strictly_ascending(&removed) {
            return Err(DndSetError::Corrupt("overlay is not strictly ascending"));
        }
        if added.iter().any(|&n| base.contains(n)) || !removed.iter().all(|&n| base.contains(n)) {
            return Err(DndSetError::Corrupt(
                "overlay is inconsistent with the base",
            ));
        }
        Ok(DndSet {
            base,
            added,
            removed,
        })
    }
}

/// `read_exact`, reporting an early end of data as [`DndSetError::Truncated`].
fn read_exact_or(r: &mut impl Read, buf: &mut [u8], part: &'static str) -> Result<(), DndSetError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => DndSetError::Truncated(part),
        _ => DndSetError::Io(e),
    })
}

/// Reads `count` little-endian words, feeding them to `checksum`.
fn read_words(
    r: &mut impl Read,
    count: u64,
    total: u64,
    checksum: &mut Checksum,
) -> Result<Vec<u64>, DndSetError> {
    let n = usize::try_from(count).map_err(|_| DndSetError::TooLarge { words: total })?;
    let mut words = Vec::new();
    words
        .try_reserve_exact(n)
        .map_err(|_| DndSetError::TooLarge { words: total })?;
    let mut buf = vec![0u8; IO_CHUNK_WORDS.min(n) * 8];
    let mut left = n;
    while left > 0 {
        let take = left.min(IO_CHUNK_WORDS);
        let bytes = &mut buf[..take * 8];
        read_exact_or(r, bytes, "payload")?;
        for chunk in bytes.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let w = u64::from_le_bytes(b);
            checksum.update(w);
            words.push(w);
        }
        left -= take;
    }
    Ok(words)
}

fn strictly_ascending(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Sorted union of two strictly ascending slices.
fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] < b[j] {
            out.push(a[i]);
            i += 1;
        } else if b[j] < a[i] {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Elements of strictly ascending `a` not in strictly ascending `b`.
fn difference(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if b.get(j) != Some(&x) {
            out.push(x);
        }
    }
    out
}

/// The next base number not in `removed`, advancing `removed` past it.
#[inline]
fn next_kept(base: &mut BaseIter<'_>, removed: &mut &[u64]) -> Option<u64> {
    loop {
        let v = base.next()?;
        while let Some((&first, rest)) = removed.split_first() {
            if first >= v {
                break;
            }
            *removed = rest;
        }
        match removed.split_first() {
            Some((&first, rest)) if first == v => *removed = rest,
            _ => return Some(v),
        }
    }
}

/// Ascending iterator over a [`DndSet`], from [`DndSet::iter`]: merges the
/// base, minus removed numbers, with the added numbers.
pub struct Iter<'a> {
    base: BaseIter<'a>,
    removed: &'a [u64],
    base_next: Option<u64>,
    added: &'a [u64],
    remaining: usize,
}

impl Iterator for Iter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        let take_added = match (self.base_next, self.added.first()) {
            (None, None) => return None,
            (Some(b), Some(&a)) => a < b,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        self.remaining = self.remaining.saturating_sub(1);
        if take_added {
            let (&a, rest) = self.added.split_first()?;
            self.added = rest;
            Some(a)
        } else {
            let b = self.base_next;
            self.base_next = next_kept(&mut self.base, &mut self.removed);
            b
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a DndSet {
    type Item = u64;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<u64> for DndSet {
    /// Collects numbers in any order, with repeats (see [`DndSet::from_unsorted`]).
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> DndSet {
        DndSet::from_unsorted(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The largest 15-digit number, the largest valid E.164 number.
    const MAX_E164: u64 = 999_999_999_999_999;

    /// Tiny xorshift64* PRNG, so the tests need no `rand`.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// Random numbers in `[lo, lo + span)`.
    fn random_numbers(seed: u64, count: usize, lo: u64, span: u64) -> Vec<u64> {
        let mut rng = XorShift(seed);
        (0..count).map(|_| lo + rng.below(span)).collect()
    }

    /// Checks every observable property of `set` against `model`.
    fn assert_matches(set: &DndSet, model: &BTreeSet<u64>, probes: &[u64]) {
        assert_eq!(set.len(), model.len());
        assert_eq!(set.is_empty(), model.is_empty());
        assert_eq!(set.iter().len(), model.len());
        assert!(
            set.iter().eq(model.iter().copied()),
            "iteration differs from the model"
        );
        for &n in model {
            assert!(set.contains(n), "{n} should be present");
        }
        for &p in probes {
            assert_eq!(set.contains(p), model.contains(&p), "contains({p})");
        }
    }

    fn saved(set: &DndSet) -> Vec<u8> {
        let mut bytes = Vec::new();
        set.write_to(&mut bytes)
            .expect("writing to a Vec cannot fail");
        bytes
    }

    fn loaded(bytes: &[u8]) -> Result<DndSet, DndSetError> {
        DndSet::read_from(bytes)
    }

    #[test]
    fn empty_set_contains_nothing_and_iterates_nothing() {
        for set in [
            DndSet::new(),
            DndSet::from_unsorted(vec![]),
            DndSet::from_sorted([]).unwrap(),
        ] {
            assert_eq!(set.len(), 0);
            assert!(set.is_empty());
            assert_eq!(set.iter().next(), None);
            for n in [0, 1, 919_876_543_210, MAX_E164, u64::MAX] {
                assert!(!set.contains(n));
            }
            assert_eq!(set.size_in_bytes(), 0);
        }
    }

    #[test]
    fn single_number_set_contains_only_that_number() {
        let n = 919_876_543_210;
        let set = DndSet::from_sorted([n]).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains(n));
        assert!(!set.contains(n - 1));
        assert!(!set.contains(n + 1));
        assert!(!set.contains(0));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![n]);
    }

    #[test]
    fn duplicates_are_stored_once() {
        let set = DndSet::from_unsorted(vec![5, 3, 5, 3, 3, 9, 5]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![3, 5, 9]);
        let set = DndSet::from_sorted([3, 3, 5, 5, 5, 9]).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![3, 5, 9]);
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn from_sorted_rejects_descending_input() {
        let err = DndSet::from_sorted([1, 5, 4]).unwrap_err();
        assert!(
            matches!(err, DndSetError::NotSorted { prev: 5, next: 4 }),
            "{err}"
        );
    }

    #[test]
    fn boundary_values_zero_and_largest_e164_and_u64_max_are_found() {
        let numbers = vec![0, 1, 2, MAX_E164 - 1, MAX_E164];
        let set = DndSet::from_unsorted(numbers.clone());
        assert_eq!(set.iter().collect::<Vec<_>>(), numbers);
        assert!(!set.contains(3));
        assert!(!set.contains(MAX_E164 + 1));
        assert!(!set.contains(u64::MAX));

        let extremes = DndSet::from_unsorted(vec![u64::MAX, 0, u64::MAX - 1]);
        assert_eq!(
            extremes.iter().collect::<Vec<_>>(),
            vec![0, u64::MAX - 1, u64::MAX]
        );
        assert!(extremes.contains(u64::MAX) && !extremes.contains(u64::MAX - 2));
    }

    #[test]
    fn consecutive_numbers_use_zero_low_bits_and_are_all_found() {
        let set = DndSet::from_sorted(1000..3000).unwrap();
        assert_eq!(set.base.low_bits, 0);
        let model: BTreeSet<u64> = (1000..3000).collect();
        assert_matches(&set, &model, &[0, 999, 3000, 3001, u64::MAX]);
    }

    #[test]
    fn random_sets_match_a_btreeset_across_densities() {
        // (count, span): dense, Indian-mobile-like, sparse, very sparse.
        let cases = [
            (5_000, 6_000),
            (20_000, 800_000),
            (3_000, 4_000_000_000),
            (500, MAX_E164),
        ];
        for (seed, &(count, span)) in (1u64..).zip(cases.iter()) {
            let numbers = random_numbers(seed, count, 916_000_000_000, span);
            let model: BTreeSet<u64> = numbers.iter().copied().collect();
            let set = DndSet::from_unsorted(numbers);
            let probes = random_numbers(seed + 100, 5_000, 916_000_000_000, span);
            assert_matches(&set, &model, &probes);
            let from_sorted = DndSet::from_sorted(model.iter().copied()).unwrap();
            assert!(from_sorted.iter().eq(set.iter()));
        }
    }

    #[test]
    fn select_in_word_matches_a_bit_by_bit_count() {
        let mut rng = XorShift(99);
        for _ in 0..20_000 {
            let w = rng.next() & rng.next() | (rng.next() >> (rng.below(64) as u32));
            let mut rest = w;
            let mut r = 0;
            while rest != 0 {
                assert_eq!(
                    select_in_word(w, r),
                    rest.trailing_zeros(),
                    "word {w:#x}, rank {r}"
                );
                rest &= rest - 1;
                r += 1;
            }
        }
        assert_eq!(select_in_word(u64::MAX, 63), 63);
        assert_eq!(select_in_word(1 << 63, 0), 63);
    }

    #[test]
    fn dense_clusters_in_a_sparse_set_are_found() {
        // Blocks far larger than the copy buffer take the in-place path.
        let mut numbers: Vec<u64> = (0..20_000).map(|i| 919_000_000_000 + i).collect();
        numbers.extend(random_numbers(17, 2_000, 100_000_000_000, 900_000_000_000));
        numbers.extend((0..5_000).map(|i| 440_000_000_000 + 3 * i));
        let model: BTreeSet<u64> = numbers.iter().copied().collect();
        let set = DndSet::from_unsorted(numbers);
        let mut probes: Vec<u64> = (0..25_000).map(|i| 918_999_999_000 + i).collect();
        probes.extend((0..16_000).map(|i| 439_999_999_000 + i));
        probes.extend(random_numbers(18, 5_000, 100_000_000_000, 900_000_000_000));
        assert_matches(&set, &model, &probes);
        let back = loaded(&saved(&set)).unwrap();
        assert_matches(&back, &model, &probes);
    }

    #[test]
    fn block_counts_are_narrow_below_four_billion_numbers() {
        assert!(matches!(
            Counts::new(vec![0, 5, u64::from(u32::MAX)]),
            Counts::Narrow(_)
        ));
        let wide = Counts::new(vec![0, 1 << 33]);
        assert!(matches!(wide, Counts::Wide(_)));
        assert_eq!(wide.get(1), 1 << 33);
    }

    #[test]
    fn realistic_density_costs_under_one_and_a_half_bytes_per_number() {
        // One number per 40 on average, as 100 M Indian mobiles in 4e9.
        let set = DndSet::from_unsorted(random_numbers(7, 100_000, 916_000_000_000, 4_000_000));
        let per_number = set.size_in_bytes() as f64 / set.len() as f64;
        assert!(per_number < 1.5, "{per_number} bytes per number");
    }

    #[test]
    fn insert_and_remove_update_the_overlay_and_report_changes() {
        let mut set = DndSet::from_sorted([10, 20, 30]).unwrap();
        assert!(set.insert(15));
        assert!(!set.insert(15), "second insert is a no-op");
        assert!(!set.insert(20), "already in the base");
        assert!(set.remove(20));
        assert!(!set.remove(20), "second remove is a no-op");
        assert!(!set.remove(99), "never present");
        assert!(set.insert(20), "re-inserting a removed base number");
        assert!(set.remove(15), "removing an added number");
        assert!(set.remove(30));
        assert_eq!(set.overlay_len(), 1);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![10, 20]);
        assert!(!set.contains(30) && !set.contains(15) && set.contains(20));
    }

    #[test]
    fn random_overlay_updates_match_a_btreeset_before_and_after_compact() {
        let mut rng = XorShift(42);
        let numbers = random_numbers(3, 20_000, 0, 200_000);
        let mut model: BTreeSet<u64> = numbers.iter().copied().collect();
        let mut set = DndSet::from_unsorted(numbers);
        for _ in 0..3_000 {
            let n = rng.below(200_000);
            if rng.below(2) == 0 {
                assert_eq!(set.insert(n), model.insert(n));
            } else {
                assert_eq!(set.remove(n), model.remove(&n));
            }
        }
        assert!(set.overlay_len() > 0, "below the compaction threshold");
        let probes = random_numbers(9, 5_000, 0, 210_000);
        assert_matches(&set, &model, &probes);
        set.compact();
        assert_eq!(set.overlay_len(), 0);
        assert_matches(&set, &model, &probes);
    }

    #[test]
    fn apply_delta_matches_a_btreeset_and_adds_win_over_removes() {
        let numbers = random_numbers(5, 10_000, 1_000, 100_000);
        let mut model: BTreeSet<u64> = numbers.iter().copied().collect();
        let mut set = DndSet::from_unsorted(numbers);
        for round in 0..5u64 {
            let adds = random_numbers(10 + round, 500, 1_000, 100_000);
            let removes = random_numbers(20 + round, 500, 1_000, 100_000);
            for r in &removes {
                model.remove(r);
            }
            model.extend(adds.iter().copied());
            set.apply_delta(adds, removes);
        }
        let probes = random_numbers(30, 5_000, 0, 110_000);
        assert_matches(&set, &model, &probes);

        let mut set = DndSet::from_sorted([1, 2]).unwrap();
        set.apply_delta([2, 3], [2, 3, 1]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn contains_batch_gives_the_same_answers_as_contains() {
        let numbers = random_numbers(21, 30_000, 916_000_000_000, 1_000_000);
        let mut set = DndSet::from_unsorted(numbers.clone());
        let mut probes = random_numbers(22, 5_003, 915_999_999_000, 1_002_000);
        probes.extend_from_slice(&numbers[..1_000]);
        probes.extend([0, u64::MAX, 916_000_000_000]);
        let expected: Vec<bool> = probes.iter().map(|&n| set.contains(n)).collect();
        assert_eq!(set.contains_batch(&probes), expected);
        set.remove(numbers[0]);
        set.insert(1);
        let expected: Vec<bool> = probes.iter().map(|&n| set.contains(n)).collect();
        assert!(expected.contains(&true) && expected.contains(&false));
        assert_eq!(set.contains_batch(&probes), expected);
        assert!(DndSet::new().contains_batch(&probes).iter().all(|&f| !f));
        assert!(set.contains_batch(&[]).is_empty());
    }

    #[test]
    fn overlay_past_one_percent_is_compacted_automatically() {
        let mut set = DndSet::from_sorted((0..1_000_000).map(|n| n * 2)).unwrap();
        let threshold = 10_000;
        set.apply_delta((0..threshold as u64).map(|n| n * 2 + 1), []);
        assert_eq!(
            set.overlay_len(),
            threshold,
            "at the threshold: kept as overlay"
        );
        assert!(set.insert(3_000_001));
        assert_eq!(
            set.overlay_len(),
            0,
            "past the threshold: merged into the base"
        );
        assert_eq!(set.len(), 1_000_000 + threshold + 1);
        assert!(set.contains(3_000_001) && set.contains(19_999) && !set.contains(20_001));
    }

    #[test]
    fn compact_to_empty_and_from_empty_work() {
        let mut set = DndSet::from_sorted([7, 8]).unwrap();
        set.remove(7);
        set.remove(8);
        set.compact();
        assert!(set.is_empty() && set.overlay_len() == 0);
        assert!(set.insert(MAX_E164) && set.insert(0));
        set.compact();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, MAX_E164]);
    }

    #[test]
    fn save_and_load_round_trip_preserves_base_and_overlay() {
        let numbers = random_numbers(11, 30_000, 916_000_000_000, 4_000_000_000);
        let mut model: BTreeSet<u64> = numbers.iter().copied().collect();
        let mut set = DndSet::from_unsorted(numbers);
        let first = *model.iter().next().unwrap();
        set.remove(first);
        model.remove(&first);
        set.insert(916_000_000_001);
        model.insert(916_000_000_001);

        let bytes = saved(&set);
        let back = loaded(&bytes).unwrap();
        assert_eq!(back.overlay_len(), set.overlay_len());
        assert_matches(
            &back,
            &model,
            &random_numbers(12, 2_000, 916_000_000_000, 4_000_000_000),
        );
        assert_eq!(
            saved(&back),
            bytes,
            "saving a loaded set reproduces the file"
        );

        for small in [
            DndSet::new(),
            DndSet::from_sorted([0]).unwrap(),
            DndSet::from_sorted([MAX_E164]).unwrap(),
        ] {
            let back = loaded(&saved(&small)).unwrap();
            assert!(back.iter().eq(small.iter()));
        }
    }

    #[test]
    fn load_reads_no_bytes_past_the_set() {
        let set = DndSet::from_sorted([1, 2, 3]).unwrap();
        let mut bytes = saved(&set);
        let len = bytes.len();
        bytes.extend_from_slice(b"trailing");
        let mut reader = &bytes[..];
        DndSet::read_from(&mut reader).unwrap();
        assert_eq!(reader, b"trailing");
        assert_eq!(len % 8, 0);
    }

    #[test]
    fn truncated_files_are_rejected_at_every_length() {
        let set = DndSet::from_unsorted(random_numbers(13, 2_000, 916_000_000_000, 4_000_000_000));
        let bytes = saved(&set);
        for cut in 0..bytes.len() {
            match loaded(&bytes[..cut]) {
                Err(DndSetError::Truncated(_)) => {}
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn corrupted_files_are_rejected_for_every_flipped_byte() {
        let mut set =
            DndSet::from_unsorted(random_numbers(14, 500, 916_000_000_000, 4_000_000_000));
        set.insert(1);
        let bytes = saved(&set);
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                assert!(
                    loaded(&bad).is_err(),
                    "flip {flip:#x} at byte {i} was accepted"
                );
            }
        }
        for other in [&b"phone,dnd\n919876543210,1\n"[..], &[0u8; 200][..]] {
            assert!(matches!(loaded(other), Err(DndSetError::BadMagic)));
        }
    }

    /// Re-signs a header after editing it, to reach the structural checks.
    fn resign(bytes: &mut [u8], edit: impl FnOnce(&mut [u64; HEADER_WORDS])) {
        let mut header = [0u64; HEADER_WORDS];
        for (w, b) in header.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().unwrap());
        }
        edit(&mut header);
        let mut c = Checksum::new();
        c.update_all(&header[..HEADER_WORDS - 1]);
        header[HEADER_WORDS - 1] = c.0;
        for (w, b) in header.iter().zip(bytes.chunks_exact_mut(8)) {
            b.copy_from_slice(&w.to_le_bytes());
        }
    }

    #[test]
    fn validly_signed_but_inconsistent_headers_are_rejected_without_panicking() {
        let set = DndSet::from_unsorted(random_numbers(15, 1_000, 916_000_000_000, 4_000_000_000));
        let bytes = saved(&set);
        type Edit = fn(&mut [u64; HEADER_WORDS]);
        let edits: [(&str, Edit); 8] = [
            ("version", |h| h[1] = 2),
            ("count", |h| h[2] += 1),
            ("min above max", |h| h[3] = h[4] + 1),
            ("low bits", |h| h[5] += 1),
            ("huge count", |h| h[2] = u64::MAX),
            ("huge overlay", |h| h[8] = u64::MAX / 4),
            ("removed beyond base", |h| h[9] = h[2] + 1),
            ("payload checksum", |h| h[10] ^= 1),
        ];
        for (what, edit) in edits {
            let mut bad = bytes.clone();
            resign(&mut bad, edit);
            assert!(loaded(&bad).is_err(), "{what} edit was accepted");
        }
    }
}
