//! Lead API figure (issue 19): ROWS leads (100,000) posted to a running
//! `dialler run` service (SQLite) as CSV in batches of BATCH (1,000), each
//! with an idempotency key, against the same rows read by the CLI's import
//! (`dialler leads import`'s code) into a second store in the same run;
//! then checks that both stores hold the same rows (number, country, time
//! zones, fields, status). Run with `cargo bench --bench leads_api`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use dialler::campaign::Campaign;
use dialler::leads::{self, ImportOptions};
use dialler::service::{self, ServiceConfig};
use dialler::store::Store;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `rows` lead lines (no header), Indian mobiles in several spellings,
/// 1% bad.
fn rows(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mobile = 6_000_000_000 + x % 4_000_000_000;
            let phone = match i % 4 {
                0 => format!("{mobile}"),
                1 => format!("+91 {} {:05}", mobile / 100_000, mobile % 100_000),
                2 => format!("0{mobile}"),
                _ if i % 100 == 3 => "98765-4321O".to_string(),
                _ => format!("{mobile}"),
            };
            format!(
                "Customer {i},{phone},POL{:08},\"Health, family\"",
                x % 100_000_000
            )
        })
        .collect()
}

const HEADER: &str = "name,mobile,policy_no,product";

async fn table(
    store: &Store,
    campaign: &str,
) -> Vec<(String, String, Option<String>, String, String)> {
    let id = store.campaign_id(campaign).await.unwrap().unwrap();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.leads_export(id, after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        out.extend(page.into_iter().map(|l| {
            (
                l.phone,
                l.country,
                l.timezones,
                l.fields.to_string(),
                l.status,
            )
        }));
    }
    out.sort();
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this
    // without it, as a smoke test of a few rows.
    let benching = std::env::args().any(|a| a == "--bench");
    let n = env("ROWS", if benching { 100_000 } else { 2_000 });
    let batch = env("BATCH", if benching { 1_000 } else { 500 }).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let campaign = Campaign::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/in-insurance-renewal.toml"),
        )
        .unwrap();
        let lines = rows(n);

        // The API: a running service, batches posted one after another.
        let api_store = Store::open(&format!("sqlite://{}", dir.path().join("api.db").display()))
            .await
            .unwrap();
        let token = dialler::auth::create_token(
            &api_store,
            dialler::auth::Role::Supervisor,
            None,
            None,
            0,
        )
        .await
        .unwrap()
        .token;
        let mut cfg = ServiceConfig::new(api_store.clone(), vec![campaign.clone()], Default::default());
        cfg.provider = Some("127.0.0.1:9".parse().unwrap());
        cfg.sip_bind = "127.0.0.1:0".parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = service::start(cfg, listener, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(dialler::sip::tls::client_config(None).unwrap())
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let url = format!("http://{}/api/campaigns/{}/leads", running.http, campaign.name);
        let start = Instant::now();
        let mut imported = 0u64;
        let mut rejected = 0u64;
        for (i, chunk) in lines.chunks(batch).enumerate() {
            let mut body = String::with_capacity(chunk.len() * 64);
            let _ = writeln!(body, "{HEADER}");
            for l in chunk {
                let _ = writeln!(body, "{l}");
            }
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "text/csv")
                .header("idempotency-key", format!("bench-{i}"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: serde_json::Value = r.json().await.unwrap();
            imported += v["report"]["imported"].as_u64().unwrap();
            rejected += v["report"]["rejected"].as_u64().unwrap();
        }
        let api_s = start.elapsed().as_secs_f64();
        let _ = stop.send(());
        running.wait().await.unwrap();

        // The CLI's import of the same rows, one file.
        let file = dir.path().join("leads.csv");
        let mut text = String::with_capacity(n * 64);
        let _ = writeln!(text, "{HEADER}");
        for l in &lines {
            let _ = writeln!(text, "{l}");
        }
        std::fs::write(&file, text).unwrap();
        let cli_store = Store::open(&format!("sqlite://{}", dir.path().join("cli.db").display()))
            .await
            .unwrap();
        let start = Instant::now();
        let id = cli_store.upsert_campaign(&campaign, 0).await.unwrap();
        let (report, _) = leads::import_file(
            &cli_store,
            id,
            campaign.country(),
            &file,
            &ImportOptions::default(),
            0,
        )
        .await
        .unwrap();
        let cli_s = start.elapsed().as_secs_f64();

        let a = table(&api_store, &campaign.name).await;
        let b = table(&cli_store, &campaign.name).await;
        println!(
            "leads API: {n} rows in {} posts of {batch}: {api_s:.2} s ({:.0} rows/s), {imported} added, {rejected} refused",
            n.div_ceil(batch),
            n as f64 / api_s
        );
        println!(
            "CLI import of the same rows (one file): {cli_s:.2} s ({:.0} rows/s), {} added, {} refused",
            n as f64 / cli_s,
            report.imported,
            report.rejected
        );
        println!(
            "same rows in both stores (number, country, zones, fields, status): {} ({} and {} leads)",
            if a == b { "yes" } else { "NO" },
            a.len(),
            b.len()
        );
        assert!(a == b, "the API and the CLI import stored different rows");
    });
}
