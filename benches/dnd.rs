//! Benchmarks of `DndSet` at registry scale: 100 M random Indian mobiles
//! (+91 6000000000 ..= +91 9999999999) unless `DND_BENCH_N` says otherwise.
//!
//! Run: `CARGO_BUILD_JOBS=1 cargo bench --bench dnd` (about 8 minutes and
//! 2.5 GB of memory at 100 M; `DND_BENCH_N=1000000` for a quick run). Needs
//! `[[bench]] name = "dnd"`, `harness = false` in `Cargo.toml`.
//! Prints the size figures once, then criterion times look-ups (hits and
//! misses; independent, dependent and batched), a bare random memory load
//! for comparison, save, load and build from unsorted.
//! The numbers are generated here; nothing is read from or kept on disk
//! except a temporary file for the save and load benchmarks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, BufWriter};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dialler::dnd_set::DndSet;

/// Smallest Indian mobile number, E.164 digits.
const LO: u64 = 916_000_000_000;
/// Size of the Indian mobile range (6000000000 ..= 9999999999).
const SPAN: u64 = 4_000_000_000;
/// Queries per look-up benchmark, cycled through (a power of two).
const QUERIES: usize = 1 << 20;

/// xorshift64*: enough randomness for a benchmark, no `rand` needed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn mobile(&mut self) -> u64 {
        LO + self.next() % SPAN
    }
}

fn target_len() -> u64 {
    // `cargo test --benches` runs this once without --bench, as a smoke
    // test: a million numbers are enough for that.
    let benching = std::env::args().any(|a| a == "--bench");
    std::env::var("DND_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 100_000_000 } else { 1_000_000 })
}

/// About `n` distinct random mobiles, unsorted (draws extra to make up for
/// the expected repeats).
fn random_mobiles(n: u64, seed: u64) -> Vec<u64> {
    let draws = n + ((n as f64) * (n as f64) / (2.0 * SPAN as f64)) as u64;
    let mut rng = XorShift(seed);
    (0..draws).map(|_| rng.mobile()).collect()
}

fn dnd(c: &mut Criterion) {
    let n = target_len();
    let t = Instant::now();
    let numbers = random_mobiles(n, 0x9e37_79b9_7f4a_7c15);
    eprintln!("generated {} numbers in {:.2?}", numbers.len(), t.elapsed());

    let mut rng = XorShift(12345);
    let hits: Vec<u64> = (0..QUERIES)
        .map(|_| numbers[(rng.next() % numbers.len() as u64) as usize])
        .collect();

    let t = Instant::now();
    let set = DndSet::from_unsorted(numbers.clone());
    let build = t.elapsed();
    let misses: Vec<u64> = std::iter::repeat_with(|| rng.mobile())
        .filter(|&q| !set.contains(q))
        .take(QUERIES)
        .collect();
    let bytes = set.size_in_bytes();
    eprintln!(
        "built {} numbers from unsorted in {build:.2?}: {bytes} heap bytes, {:.3} bytes per number",
        set.len(),
        bytes as f64 / set.len() as f64
    );

    let mut g = c.benchmark_group("lookup");
    for (name, queries) in [("hit", &hits), ("miss", &misses)] {
        g.bench_function(format!("contains_{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (QUERIES - 1);
                set.contains(black_box(queries[i]))
            })
        });
        // The next query's index depends on this answer, so look-ups cannot
        // overlap: this is the latency of one look-up.
        g.bench_function(format!("contains_{name}_dependent"), |b| {
            let mut i = 0;
            b.iter(|| {
                let found = set.contains(queries[i]);
                i = (i + 1 + usize::from(found)) & (QUERIES - 1);
                found
            })
        });
    }
    // For scale: one random 8-byte load from an array of the set's size,
    // each depending on the previous one. A look-up cannot beat this.
    let mut rng = XorShift(777);
    let words: Vec<u64> = (0..(bytes / 8).max(1)).map(|_| rng.next()).collect();
    g.bench_function("baseline_random_load_dependent", |b| {
        let mut i = 0;
        b.iter(|| {
            let w = words[(hits[i] % words.len() as u64) as usize];
            i = (i + 1 + (w & 1) as usize) & (QUERIES - 1);
            w
        })
    });
    drop(words);
    const BATCH: usize = 1024;
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, queries) in [("hit", &hits), ("miss", &misses)] {
        g.bench_function(format!("contains_batch_{name}_x{BATCH}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + BATCH) & (QUERIES - 1);
                set.contains_batch(black_box(&queries[i..i + BATCH]))
            })
        });
    }
    g.finish();

    let path = std::env::temp_dir().join(format!("dnd_bench_{}.dndset", std::process::id()));
    set.write_to(BufWriter::new(
        File::create(&path).expect("create temp file"),
    ))
    .expect("save");
    let file_bytes = std::fs::metadata(&path).expect("stat temp file").len();
    eprintln!(
        "file {}: {file_bytes} bytes, {:.3} bytes per number",
        path.display(),
        file_bytes as f64 / set.len() as f64
    );

    let mut g = c.benchmark_group("io");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("save", |b| {
        b.iter(|| {
            set.write_to(File::create(&path).expect("create temp file"))
                .expect("save")
        })
    });
    g.bench_function("load", |b| {
        b.iter(|| {
            let loaded = DndSet::read_from(BufReader::new(File::open(&path).expect("open")));
            black_box(loaded.expect("load"))
        })
    });
    g.finish();
    let loaded = DndSet::read_from(File::open(&path).expect("open")).expect("load");
    assert!(loaded.len() == set.len() && hits.iter().all(|&q| loaded.contains(q)));
    std::fs::remove_file(&path).expect("remove temp file");
    drop(loaded);
    drop(set);

    let mut g = c.benchmark_group("build");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(60));
    g.bench_function("from_unsorted", |b| {
        b.iter_batched(
            || numbers.clone(),
            DndSet::from_unsorted,
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, dnd);
criterion_main!(benches);
