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
    let store = Store::open_postgres(opts).await.expect("open postgres");
    Some(PgSchema {
        store,
        schema,
        admin,
    })
}

/// A store in a PostgreSQL schema that [`PgSchema::drop_schema`] removes.
pub struct PgSchema {
    pub store: Store,
    schema: String,
    admin: PgConnection,
}

impl PgSchema {
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
pub mod sipp;
