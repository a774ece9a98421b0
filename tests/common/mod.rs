//! Shared helpers for behaviour tests: stores on both databases.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use dialler::store::Store;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Where the test PostgreSQL runs; override with DIALLER_TEST_PG_URL.
pub fn pg_url() -> String {
    std::env::var("DIALLER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Under CI a missing component fails the test; elsewhere it is skipped
/// with a message.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A fresh SQLite store in a temporary directory (kept alive by the guard).
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::open(&url).await.expect("open sqlite");
    (store, dir)
}

/// A PostgreSQL store in a schema of its own, so parallel tests and runs
/// never collide. `None` (skip) when PostgreSQL is unreachable outside CI.
pub async fn pg_store() -> Option<PgSchema> {
    static N: AtomicU32 = AtomicU32::new(0);
    let url = pg_url();
    let base = PgConnectOptions::from_str(&url).expect("DIALLER_TEST_PG_URL");
    let mut admin = match PgConnection::connect_with(&base).await {
        Ok(c) => c,
        Err(e) => {
            if in_ci() {
                panic!("PostgreSQL at {url} is required under CI=true: {e}");
            }
            eprintln!("skipping PostgreSQL half of the test: {url} unreachable ({e})");
            return None;
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "dialler_test_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create schema");
    let opts = base.options([("search_path", schema.as_str())]);
    let store = Store::open_postgres(opts.clone())
        .await
        .expect("open postgres");
    Some(PgSchema {
        store,
        schema,
        admin,
        opts,
    })
}

/// A store in a PostgreSQL schema that [`PgSchema::drop_schema`] removes.
pub struct PgSchema {
    pub store: Store,
    schema: String,
    admin: PgConnection,
    opts: PgConnectOptions,
}

impl PgSchema {
    /// A URL for another process: the test database with this schema as
    /// its search path.
    pub fn url(&self) -> String {
        let base = pg_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.schema)
    }

    /// A second, raw connection to the store's schema.
    pub async fn raw(&self) -> RawDb {
        RawDb::Postgres(
            sqlx::PgPool::connect_with(self.opts.clone())
                .await
                .expect("raw postgres"),
        )
    }

    /// Closes the store and drops its schema.
    pub async fn drop_schema(mut self) {
        self.store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&mut self.admin)
        .await
        .expect("drop schema");
    }
}

/// Runs an async test body against SQLite and against PostgreSQL: each
/// `store_test!(name)` makes `name::sqlite` and `name::postgres` tests that
/// call `async fn name(store: Store)`.
#[macro_export]
macro_rules! store_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = $crate::common::sqlite_store().await;
                super::$name(store.clone()).await;
                store.close().await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(pg) = $crate::common::pg_store().await {
                    super::$name(pg.store.clone()).await;
                    pg.drop_schema().await;
                }
            }
        }
    };
}
/// Raw access to a test store's database, past the `Store` API: for tests
/// that must look at every table, such as "nothing of the person is left".
pub enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    /// Runs one statement past the store: rows affected, or the database's
    /// refusal.
    pub async fn execute(&self, sql: &str) -> Result<u64, String> {
        let q = || sqlx::AssertSqlSafe(sql.to_string());
        match self {
            RawDb::Sqlite(p) => sqlx::query(q()).execute(p).await.map(|r| r.rows_affected()),
            RawDb::Postgres(p) => sqlx::query(q()).execute(p).await.map(|r| r.rows_affected()),
        }
        .map_err(|e| e.to_string())
    }

    /// A second connection to the SQLite store [`sqlite_store`] made in `dir`.
    pub async fn sqlite(dir: &std::path::Path) -> RawDb {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("test.db"));
        RawDb::Sqlite(
            sqlx::SqlitePool::connect_with(opts)
                .await
                .expect("raw sqlite"),
        )
    }

    /// Every `(table, column, rows)` whose value, read as text, contains
    /// `needle`, over every table and column of the schema.
    pub async fn find_text(&self, needle: &str) -> Vec<(String, String, i64)> {
        let mut hits = Vec::new();
        let like = format!("%{needle}%");
        match self {
            RawDb::Sqlite(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(pool)
                .await
                .expect("tables");
                for t in tables {
                    let cols: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                            .bind(&t)
                            .fetch_all(pool)
                            .await
                            .expect("columns");
                    for c in cols {
                        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            r#"SELECT COUNT(*) FROM "{t}" WHERE CAST("{c}" AS TEXT) LIKE $1"#
                        )))
                        .bind(&like)
                        .fetch_one(pool)
                        .await
                        .expect("count");
                        if n > 0 {
                            hits.push((t.clone(), c, n));
                        }
                    }
                }
            }
            RawDb::Postgres(pool) => {
                let cols: Vec<(String, String)> = sqlx::query_as(
                    "SELECT c.table_name::text, c.column_name::text
                     FROM information_schema.columns c
                     JOIN information_schema.tables t
                         ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                     WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                     ORDER BY 1, 2",
                )
                .fetch_all(pool)
                .await
                .expect("columns");
                for (t, c) in cols {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        r#"SELECT COUNT(*) FROM "{t}" WHERE CAST("{c}" AS TEXT) LIKE $1"#
                    )))
                    .bind(&like)
                    .fetch_one(pool)
                    .await
                    .expect("count");
                    if n > 0 {
                        hits.push((t, c, n));
                    }
                }
            }
        }
        hits.sort();
        hits
    }
}

/// Like [`store_test!`], with a [`RawDb`] on the same database as a second
/// argument: `async fn name(store: Store, raw: RawDb)`.
#[macro_export]
macro_rules! store_raw_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, dir) = $crate::common::sqlite_store().await;
                let raw = $crate::common::RawDb::sqlite(dir.path()).await;
                super::$name(store.clone(), raw).await;
                store.close().await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(pg) = $crate::common::pg_store().await {
                    let raw = pg.raw().await;
                    super::$name(pg.store.clone(), raw).await;
                    pg.drop_schema().await;
                }
            }
        }
    };
}

pub mod cdp;
pub mod dns;
pub mod kamailio;
pub mod live;
pub mod nodes;
pub mod sipp;
pub mod webrtc_peer;

/// A call `node` placed at `started_at` on `lead` (which `node` holds) that
/// a person answered at `answered_at`: the attempt, its answer and the
/// ledger's human answer, as the service writes them. Returns the attempt.
pub async fn answered_call(
    store: &Store,
    lead: &dialler::store::Lead,
    node: &str,
    started_at: i64,
    answered_at: i64,
) -> i64 {
    let id = store
        .start_attempt_on(
            &dialler::store::NewAttempt {
                campaign_id: lead.campaign_id,
                lead_id: lead.id,
                phone: lead.phone.clone(),
                started_at,
            },
            node,
            None,
        )
        .await
        .expect("start");
    store
        .attempt_progress(id, Some(answered_at), None, None)
        .await
        .expect("answered");
    store
        .ledger_append(
            lead.campaign_id,
            Some(id),
            dialler::store::LedgerKind::HumanAnswer,
            answered_at,
        )
        .await
        .expect("ledger");
    id
}
