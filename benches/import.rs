//! Import benchmark: a generated 1,000,000-row lead file into SQLite and
//! PostgreSQL, normalisation, dedupe and the scrub summary included, side by
//! side in the same run with the raw peers: sqlite3's `.import --csv` of the
//! same file into a table with no index, and PostgreSQL's COPY (what psql's
//! `\copy` sends) into an unindexed table. Prints rows per second, the
//! ratio to the peer, and peak memory. Run with `cargo bench --bench
//! import` (release build). Set IMPORT_ROWS to change the size,
//! DIALLER_TEST_PG_URL for PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use dialler::campaign::Campaign;
use dialler::leads::{self, ImportOptions};
use dialler::store::Store;
use sqlx::Connection;

fn generate(path: &Path, rows: u64) -> std::io::Result<u64> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "name,mobile,policy_no,product,premium_inr,due_date,city")?;
    // xorshift: deterministic, no dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let cities = ["Mumbai", "Delhi", "Bengaluru", "Chennai", "Pune", "Kolkata"];
    for i in 0..rows {
        let r = next();
        let mobile = 6_000_000_000 + r % 4_000_000_000;
        let phone = match i % 5 {
            0 => format!("{mobile}"),
            1 => format!("+91 {} {:05}", mobile / 100_000, mobile % 100_000),
            2 => format!("0{mobile}"),
            3 => format!("91-{}-{:05}", mobile / 100_000, mobile % 100_000),
            _ if i % 100 == 4 => "98765-4321O".to_string(), // 1% bad
            _ => format!("{mobile}"),
        };
        writeln!(
            w,
            "Customer {i},{phone},POL{:08},\"Health, family\",{},2026-12-{:02},{}",
            r % 100_000_000,
            2500 + r % 40_000,
            1 + r % 28,
            cities[(r % 6) as usize]
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// sqlite3's own `.import --csv` of `file` into a new table (every column
/// TEXT, no index): the floor for loading these bytes into SQLite. Seconds,
/// or `None` without a sqlite3 binary.
fn sqlite3_import(dir: &Path, file: &Path) -> Option<f64> {
    let db = dir.join("raw.db");
    let t = Instant::now();
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(format!(".import --csv {} raw", file.display()))
        .output()
        .ok()?;
    let secs = t.elapsed().as_secs_f64();
    out.status.success().then_some(secs)
}

/// COPY of `file` into an unindexed table of TEXT columns on `conn`, as
/// psql's `\copy ... csv header` does. Seconds.
async fn pg_copy(conn: &mut sqlx::postgres::PgConnection, file: &Path) -> f64 {
    sqlx::query(
        "CREATE TABLE raw_leads (name text, mobile text, policy_no text, product text,
             premium_inr text, due_date text, city text)",
    )
    .execute(&mut *conn)
    .await
    .expect("raw table");
    let bytes = std::fs::read(file).expect("read");
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY raw_leads FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .expect("copy");
    for chunk in bytes.chunks(1 << 20) {
        copy.send(chunk).await.expect("send");
    }
    copy.finish().await.expect("finish");
    t.elapsed().as_secs_f64()
}

async fn run(label: &str, store: Store, file: &Path, rows: u64, peer: Option<(&str, f64)>) {
    let campaign = Campaign::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/campaigns/in-insurance-renewal.toml"
    )))
    .expect("sample campaign");
    let id = store.upsert_campaign(&campaign, 0).await.expect("campaign");
    let opts = ImportOptions::default();
    let t = Instant::now();
    let (report, _) = leads::import_file(&store, id, campaign.country(), file, &opts, 0)
        .await
        .expect("import");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{label:<9} {rows} rows in {secs:.2} s ({:.0} rows/s): imported {}, duplicates {}, rejected {}; peak RSS so far {:.0} MiB",
        rows as f64 / secs,
        report.imported,
        report.duplicates,
        report.rejected,
        peak_rss_mib()
    );
    if let Some((name, peer_secs)) = peer {
        println!(
            "{label:<9} peer {name}: {peer_secs:.2} s; dialler / peer = {:.2}x",
            secs / peer_secs
        );
    }
    // Idempotence at scale: a second pass adds nothing.
    let t = Instant::now();
    let (again, _) = leads::import_file(&store, id, campaign.country(), file, &opts, 0)
        .await
        .expect("import");
    println!(
        "{label:<9} re-import in {:.2} s: imported {}",
        t.elapsed().as_secs_f64(),
        again.imported
    );
    store.close().await;
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this without
    // it: keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let rows: u64 = std::env::var("IMPORT_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 2_000 });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("leads.csv");
    let bytes = generate(&file, rows).expect("generate");
    println!("generated {rows} rows, {:.1} MiB", bytes as f64 / 1048576.0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let peer = sqlite3_import(dir.path(), &file);
        if peer.is_none() {
            println!("sqlite3   not found: no peer figure");
        }
        run(
            "sqlite",
            Store::open(&url).await.expect("sqlite"),
            &file,
            rows,
            peer.map(|s| ("sqlite3 .import --csv", s)),
        )
        .await;

        let pg = std::env::var("DIALLER_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let base = sqlx::postgres::PgConnectOptions::from_str(&pg).expect("pg url");
        let Ok(mut admin) = sqlx::postgres::PgConnection::connect_with(&base).await else {
            println!("postgres  skipped: {pg} unreachable");
            return;
        };
        let schema = format!("dialler_bench_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .expect("schema");
        let in_schema = base.clone().options([("search_path", schema.as_str())]);
        let mut raw = sqlx::postgres::PgConnection::connect_with(&in_schema)
            .await
            .expect("pg");
        let copy = pg_copy(&mut raw, &file).await;
        raw.close().await.expect("close");
        let store = Store::open_postgres(in_schema).await.expect("pg");
        run(
            "postgres",
            store,
            &file,
            rows,
            Some(("COPY (\\copy) into an unindexed table", copy)),
        )
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .expect("drop");
    });
}
