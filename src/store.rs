//! The store: campaigns, leads, call attempts, dispositions, the
//! abandonment ledger, do-not-call lists, agent state intervals, API token
//! hashes and the erasure log, over SQLite (the embedded default) or
//! PostgreSQL.
//!
//! Owns all database I/O. One code path serves both databases: every query
//! is written once in the SQL both accept (`$N` placeholders, `RETURNING`,
//! `ON CONFLICT`), times are milliseconds since the Unix epoch in `BIGINT`
//! columns, and the [`with_pool!`] macro runs it on whichever pool is open.
//! Schema: `migrations/sqlite` and `migrations/postgres`, kept in step and
//! applied on open. The sans-IO core never sees this module.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use crate::campaign::Campaign;

/// The default store: `dialler.db` in the working directory.
pub const DEFAULT_URL: &str = "sqlite://dialler.db";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no database we support.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    BadUrl(String),
    /// A database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migrating the schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Serialising a value for storage failed.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was being stored.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// A stored value the code does not understand.
    #[error("unexpected {what} {value:?} in the store")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// The stored value.
        value: String,
    },
    /// A lead this node no longer holds: its claim lapsed and another node
    /// took it, or it was dialled, refused or released meanwhile. It is
    /// not dialled (a second node would call the same person).
    #[error("lead {lead} is no longer claimed by node {node}: not dialled")]
    ClaimLost {
        /// The lead.
        lead: i64,
        /// This node.
        node: String,
    },
    /// The call already has its disposition (one per call, recorded on
    /// whichever node came first).
    #[error("call {attempt} already has a disposition")]
    AlreadyDisposed {
        /// The call attempt.
        attempt: i64,
    },
    /// A row the store does not know.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of row.
        what: &'static str,
        /// Its id.
        id: i64,
    },
}

enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open pool, whichever database it is.
/// The body is compiled once per database, so it must use SQL both accept.
/// Begins a transaction that writes. On SQLite it takes the write lock
/// at the start (`BEGIN IMMEDIATE`): a deferred transaction that reads and
/// then writes fails with SQLITE_BUSY_SNAPSHOT (517) when another
/// connection committed in between, which no busy timeout can wait out,
/// while one that waits for the lock at its start simply waits. On
/// PostgreSQL a plain BEGIN: row locks and MVCC need nothing more.
pub(crate) trait BeginWrite {
    /// The database.
    type Db: sqlx::Database;
    /// A transaction ready to write.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;

    /// A transaction ready to write that takes turns with every other
    /// begun with the same `key`: on PostgreSQL, two READ COMMITTED
    /// transactions that each insert a row "if none exists yet" can both
    /// insert, so a transaction-scoped advisory lock on `key` orders them
    /// (the second's statements then see the first's row); SQLite's single
    /// writer, which `BEGIN IMMEDIATE` takes at the start, already does.
    fn begin_write_in_turn(
        &self,
        key: i64,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }

    fn begin_write_in_turn(
        &self,
        _key: i64,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin_write()
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin()
    }

    async fn begin_write_in_turn(
        &self,
        key: i64,
    ) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::store::BeginWrite as _;
        let _held = $store.hold_time();
        match &*$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    }};
}

/// Appends `$entry` (an [`AuditEntry`]) to the audit log on `$conn` (a
/// pool or a transaction of either backend).
macro_rules! insert_audit {
    ($conn:expr, $entry:expr) => {{
        let e: &crate::store::AuditEntry = $entry;
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, subject, detail, origin, status, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.subject)
        .bind(&e.detail)
        .bind(&e.origin)
        .bind(e.status)
        .bind(&e.request_id)
        .execute($conn)
        .await
    }};
}

/// The context of call (attempt) `$attempt` for its webhook events, on
/// `$conn` (in the transaction writing the row the events describe):
/// `Ok(None)` when its campaign has no live subscription.
macro_rules! webhook_context {
    ($conn:expr, $attempt:expr) => {{
        sqlx::query_as::<
            _,
            (
                i64,
                String,
                Option<i64>,
                Option<String>,
                i64,
                Option<String>,
            ),
        >(crate::store::webhooks::CONTEXT)
        .bind($attempt)
        .fetch_optional($conn)
        .await
        .map(|r| {
            r.map(
                |(campaign_id, campaign, lead_id, phone, attempt_no, fields)| {
                    crate::webhooks::CallContext {
                        campaign_id,
                        campaign,
                        call_id: $attempt,
                        lead_id,
                        phone,
                        attempt_no,
                        fields,
                    }
                },
            )
        })
    }};
}

/// Writes webhook event `$event` about `$ctx` (a
/// [`crate::webhooks::CallContext`]) with extra data `$extra` (a JSON
/// object) to the outbox on `$conn`, one row per live subscription to it.
macro_rules! outbox_emit {
    ($conn:expr, $ctx:expr, $event:expr, $extra:expr, $at:expr) => {{
        let ctx: &crate::webhooks::CallContext = $ctx;
        let event: &str = $event;
        sqlx::query(crate::store::webhooks::OUTBOX_INSERT)
            .bind(ctx.campaign_id)
            .bind(event)
            .bind(crate::webhooks::payload(ctx, $extra))
            .bind($at)
            .bind(crate::webhooks::event_pattern(event))
            .execute($conn)
            .await
    }};
}

/// Puts the number of call attempt `$attempt` on the internal do-not-call
/// list as the person's own request (source `$source`, at `$at`) and marks
/// its leads in every campaign `dnc`, in transaction `$tx`. `Ok(None)`: no
/// such attempt; `Ok(Some(None))`: the person was erased, no number is
/// kept to list (erasure's suppression digest already keeps it from every
/// dial); `Ok(Some(Some(phone)))`: listed.
macro_rules! list_attempt_number {
    ($tx:expr, $attempt:expr, $at:expr, $source:expr) => {{
        async {
            let phone: Option<Option<String>> =
                sqlx::query_scalar("SELECT phone FROM call_attempts WHERE id = $1")
                    .bind($attempt)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if let Some(Some(phone)) = &phone {
                sqlx::query(crate::store::DNC_INSERT_REQUEST)
                    .bind(crate::store::SCOPE_INTERNAL)
                    .bind(phone.as_str())
                    .bind($at)
                    .bind($source)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query(crate::store::DNC_MARK_LEADS)
                    .bind(phone.as_str())
                    .execute(&mut *$tx)
                    .await?;
            }
            Ok::<_, sqlx::Error>(phone)
        }
        .await
    }};
}

// Parts of the store in files of their own (src/store/): they extend
// `Store` and use `with_pool!`, so they are declared after it.
mod agents;
mod audit;
mod claims;
mod cluster;
mod compliance;
mod controls;
mod erase;
mod history;
mod lead_api;
mod legs;
mod phones;
mod report;
mod sessions;
mod tokens;
mod wallboard;
mod webhooks;

pub use agents::{AgentInterval, AgentState};
pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use claims::{Callback, ClaimedLead, PendingDisposition, RECALL_LOOKBACK_MS};
pub use cluster::{LEDGER_COMMIT_LAG_MS, LEDGER_RESUME_IDS, LedgerFeed, LedgerRow};
pub use compliance::{DndImportRecord, DndVersion, SOURCE_IMPORT, SOURCE_KEY_PRESS};
pub use controls::LeadList;
pub use erase::ErasureCounts;
pub use history::{PacingHistory, PastAttemptRow, PastDispositionRow};
pub use lead_api::{AttemptHistory, IDEMPOTENCY_LEASE_MS, LeadChange, LeadChangeRefused, LeadView};
pub use legs::{LegKind, StoredLeg};
pub use phones::AgentPhone;
pub use report::{AgentCalls, AgentDispositions, AgentStateTime, BucketCounts, ReportData};
pub use tokens::TokenRow;
pub use wallboard::{AgentFigures, HourFigures};
pub use webhooks::{OutboxItem, OutboxRow, Replay, WebhookSubscription};

/// A handle on the store. Cheap to clone.
///
/// Opened in a tokio runtime whose time is paused (a test on virtual
/// time), it keeps that time still while each query is out: the database
/// works outside the runtime, where tokio cannot see it, and would
/// otherwise let every pending timer fire while it answers.
#[derive(Clone)]
pub struct Store {
    backend: std::sync::Arc<Backend>,
    /// Keep a paused tokio clock from jumping while a query is out (see
    /// [`Store::holding_paused_time`]).
    hold: bool,
}

/// Keeps a paused tokio clock still while it lives: a blocking task that
/// waits for the guard's drop. tokio does not auto-advance paused time
/// while a `spawn_blocking` task runs, and the database answers from
/// outside the runtime (SQLite's worker threads, PostgreSQL's process),
/// where tokio cannot see that work is under way.
struct TimeHold {
    _release: std::sync::mpsc::Sender<()>,
}

impl TimeHold {
    fn new() -> TimeHold {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        drop(tokio::task::spawn_blocking(move || {
            let _ = rx.recv();
        }));
        TimeHold { _release: tx }
    }
}

/// Milliseconds since the Unix epoch, as stored.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A lead ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLead {
    /// E.164 number.
    pub phone: String,
    /// ISO country.
    pub country: &'static str,
    /// IANA zones, comma-separated; `None` when unknown.
    pub timezones: Option<String>,
    /// Other columns as a JSON object.
    pub fields: String,
    /// Line in the source file.
    pub source_line: i64,
}

/// The lead list of leads imported without one.
pub const DEFAULT_LIST: &str = "default";

/// Whether `name` may name a lead list: 1-64 letters, digits, `-`, `_`
/// or `.`.
pub fn valid_list_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Status of a lead whose time zone is known and which may be dialled.
pub const STATUS_NEW: &str = "new";
/// Status of a lead whose time zone is unknown: never dialled until fixed.
pub const STATUS_TZ_UNKNOWN: &str = "tz_unknown";

/// A stored lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// Row id.
    pub id: i64,
    /// Campaign id.
    pub campaign_id: i64,
    /// E.164 number.
    pub phone: String,
    /// ISO country.
    pub country: String,
    /// IANA zones, comma-separated; `None` when unknown.
    pub timezones: Option<String>,
    /// Other columns as a JSON object.
    pub fields: String,
    /// Lifecycle status.
    pub status: String,
    /// Higher dials first.
    pub priority: i64,
    /// Attempts made so far.
    pub attempts: i64,
    /// Earliest next attempt, ms since epoch.
    pub next_attempt_at: Option<i64>,
    /// Outcome of the last attempt.
    pub last_outcome: Option<String>,
    /// The agent who kept the lead's callback for themself (see
    /// [`NewDisposition::personal`]).
    pub callback_agent: Option<String>,
}

impl Lead {
    /// The lead as compliance reads it at `now`, with its past attempts:
    /// its number, its zones (none when unknown or unreadable, which
    /// compliance refuses), whether the person opted out, and what
    /// [`LeadRecord::with_history`] makes of the attempts. An invalid
    /// stored number is an error: the caller refuses the lead.
    pub fn record(
        &self,
        history: impl IntoIterator<Item = crate::policy::PastAttempt>,
        now: crate::clock::Millis,
    ) -> Result<crate::policy::LeadRecord, crate::phone::PhoneError> {
        let number = crate::phone::PhoneNumber::from_e164(&self.phone)?;
        let zones = self
            .timezones
            .as_deref()
            .and_then(crate::timezone::split)
            .unwrap_or_default();
        let mut r = crate::policy::LeadRecord::new(number, zones).with_history(history, now);
        r.opted_out = self.status == crate::outcome::LeadStatus::Dnc.code();
        r.attempts = u32::try_from(self.attempts).unwrap_or(u32::MAX);
        Ok(r)
    }
}

/// The start of a call attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttempt {
    /// Campaign id.
    pub campaign_id: i64,
    /// Lead id.
    pub lead_id: i64,
    /// E.164 number dialled.
    pub phone: String,
    /// When the INVITE went out, ms.
    pub started_at: i64,
}

/// How a call attempt ended, and what happens to its lead.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// When a human or machine answered, ms.
    pub answered_at: Option<i64>,
    /// When an agent was bridged, ms.
    pub connected_at: Option<i64>,
    /// When the call ended, ms.
    pub ended_at: i64,
    /// Outcome code: human_answer, machine, busy, no_answer, rejected,
    /// failure, abandoned, interrupted.
    pub outcome: String,
    /// Final SIP response code, if any.
    pub sip_code: Option<i64>,
    /// Every status the INVITE got, in order, comma-separated.
    pub sip_codes: Option<String>,
    /// Agent who took the call.
    pub agent_id: Option<String>,
    /// The lead's status after this attempt.
    pub lead_status: String,
    /// The lead's earliest next attempt, ms.
    pub next_attempt_at: Option<i64>,
}

/// A stored call attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Row id.
    pub id: i64,
    /// Lead id.
    pub lead_id: i64,
    /// 1 for the first attempt at the lead.
    pub attempt_no: i64,
    /// Start, ms.
    pub started_at: i64,
    /// End, ms; `None` while in flight.
    pub ended_at: Option<i64>,
    /// Outcome; `None` while in flight.
    pub outcome: Option<String>,
    /// Final SIP code.
    pub sip_code: Option<i64>,
}

/// A disposition recorded by an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDisposition {
    /// The call attempt.
    pub attempt_id: i64,
    /// Campaign id.
    pub campaign_id: i64,
    /// Agent.
    pub agent_id: String,
    /// Disposition code from the campaign file.
    pub code: String,
    /// Flags copied from the campaign's disposition.
    pub conversion: bool,
    /// Contact flag.
    pub contact: bool,
    /// Do-not-call flag.
    pub dnc: bool,
    /// Call-back time, ms.
    pub callback_at: Option<i64>,
    /// Revenue in minor units.
    pub amount_minor: Option<i64>,
    /// Measured wrap-up, ms.
    pub wrapup_ms: Option<i64>,
    /// When it was recorded, ms.
    pub created_at: i64,
    /// The agent's notes.
    pub notes: Option<String>,
    /// A callback the agent keeps for themself: dialled for that agent
    /// only, until the campaign's `[retry] callback_grace` after its time
    /// (then for anyone). False: anyone's from the start.
    pub personal: bool,
}

/// What the abandonment ledger records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// A live person answered.
    HumanAnswer,
    /// A live person answered and no agent took the call in time.
    Abandon,
}

impl LedgerKind {
    fn as_str(self) -> &'static str {
        match self {
            LedgerKind::HumanAnswer => "human_answer",
            LedgerKind::Abandon => "abandon",
        }
    }

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<LedgerKind> {
        match text {
            "human_answer" => Some(LedgerKind::HumanAnswer),
            "abandon" => Some(LedgerKind::Abandon),
            _ => None,
        }
    }
}

/// Counts from the ledger over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerCounts {
    /// Human answers.
    pub human_answers: i64,
    /// Abandons.
    pub abandons: i64,
}

/// Conversion figures of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DispositionTotals {
    /// Dispositions recorded.
    pub total: i64,
    /// Of which contacts.
    pub contacts: i64,
    /// Of which conversions.
    pub conversions: i64,
    /// Revenue, minor units.
    pub revenue_minor: i64,
}

impl Store {
    /// Opens the store at `url` (`sqlite://PATH`, `sqlite:PATH`, a bare
    /// path, or `postgres://...`), creating a SQLite file if missing, and
    /// applies migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            return Store::open_postgres(opts).await;
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(StoreError::BadUrl(url.to_string()));
        }
        let opts = if path == ":memory:" {
            SqliteConnectOptions::from_str("sqlite::memory:")?
        } else {
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
        };
        Store::open_sqlite(opts).await
    }

    /// Opens SQLite with the given options and migrates it.
    pub async fn open_sqlite(opts: SqliteConnectOptions) -> Result<Store, StoreError> {
        let hold = crate::clock::runtime_time_is_paused();
        let _held = hold.then(TimeHold::new);
        let in_memory = opts.get_filename().as_os_str() == ":memory:";
        let opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // SQLite's default page cache is 2 MiB: a million-lead table's
            // unique index outgrows it and every insert then reads pages
            // back through the kernel. 64 MiB per connection keeps the hot
            // part of the indexes in memory.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            // An in-memory database lives in one connection.
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let store = Store {
            backend: std::sync::Arc::new(Backend::Sqlite(pool)),
            hold,
        };
        store.hash_plaintext_erasures().await?;
        Ok(store)
    }

    /// Opens PostgreSQL with the given options and migrates it. Migrations
    /// and tables go to the connection's `search_path`, so a test can give
    /// each run its own schema.
    pub async fn open_postgres(opts: PgConnectOptions) -> Result<Store, StoreError> {
        let hold = crate::clock::runtime_time_is_paused();
        let _held = hold.then(TimeHold::new);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let store = Store {
            backend: std::sync::Arc::new(Backend::Postgres(pool)),
            hold,
        };
        store.hash_plaintext_erasures().await?;
        Ok(store)
    }

    /// This store, keeping a paused tokio clock still while a query is
    /// out, so that waiting on the database never lets timers fire early.
    /// A store opened in a runtime whose time is paused (a test) does so
    /// already; [`crate::service::start`] takes this when its clock is
    /// paused, wherever the store was opened.
    pub fn holding_paused_time(&self) -> Store {
        Store {
            backend: self.backend.clone(),
            hold: true,
        }
    }

    fn hold_time(&self) -> Option<TimeHold> {
        self.hold.then(TimeHold::new)
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection, waiting for writes to finish.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    /// Inserts or updates a campaign by name; returns its id.
    pub async fn upsert_campaign(&self, c: &Campaign, now: i64) -> Result<i64, StoreError> {
        let config = serde_json::to_string(c).map_err(|e| StoreError::Encode {
            what: "campaign",
            message: e.to_string(),
        })?;
        const SQL: &str = "INSERT INTO campaigns (name, profile, config, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET profile = excluded.profile,
                 config = excluded.config, updated_at = excluded.updated_at
             RETURNING id";
        let id: i64 = with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(&c.name)
            .bind(c.profile.as_str())
            .bind(&config)
            .bind(now)
            .fetch_one(pool)
            .await?);
        Ok(id)
    }

    /// The id of the campaign called `name`, if stored.
    pub async fn campaign_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM campaigns WHERE name = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(name)
            .fetch_optional(pool)
            .await?))
    }

    /// Inserts leads, skipping numbers the campaign already has (and
    /// repeats within `leads`). Returns how many rows were inserted.
    ///
    /// The one place the two databases take different SQL, for speed: a
    /// statement per row would spend a million-row import on round trips.
    /// SQLite gets multi-row inserts of [`LEAD_BATCH`] rows; PostgreSQL gets
    /// the columns as arrays in one `INSERT ... SELECT FROM UNNEST`, which
    /// it parses and plans once whatever the row count.
    pub async fn insert_leads(
        &self,
        campaign_id: i64,
        leads: &[NewLead],
        now: i64,
    ) -> Result<u64, StoreError> {
        self.insert_leads_into(campaign_id, DEFAULT_LIST, leads, now)
            .await
    }

    /// [`Store::insert_leads`] into the campaign's lead list `list`.
    pub async fn insert_leads_into(
        &self,
        campaign_id: i64,
        list: &str,
        leads: &[NewLead],
        now: i64,
    ) -> Result<u64, StoreError> {
        if leads.is_empty() {
            return Ok(0);
        }
        let status = |l: &NewLead| {
            if l.timezones.is_some() {
                STATUS_NEW
            } else {
                STATUS_TZ_UNKNOWN
            }
        };
        let mut inserted = 0;
        let _held = self.hold_time();
        match &*self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                for chunk in leads.chunks(LEAD_BATCH) {
                    let mut q = sqlx::query(AssertSqlSafe(sqlite_lead_insert_sql(chunk.len())));
                    for lead in chunk {
                        q = q
                            .bind(campaign_id)
                            .bind(lead.phone.as_str())
                            .bind(lead.country)
                            .bind(lead.timezones.as_deref())
                            .bind(lead.fields.as_str())
                            .bind(status(lead))
                            .bind(lead.source_line)
                            .bind(now)
                            .bind(list);
                    }
                    inserted += q.execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
            }
            Backend::Postgres(pool) => {
                const SQL: &str = "INSERT INTO leads (campaign_id, phone, country, timezones, fields,
                        status, source_line, imported_at, list)
                     SELECT $1, p, c, t, f, s, l, $2, $9
                     FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
                         AS u(p, c, t, f, s, l)
                     ON CONFLICT (campaign_id, phone) DO NOTHING";
                let phones: Vec<&str> = leads.iter().map(|l| l.phone.as_str()).collect();
                let countries: Vec<&str> = leads.iter().map(|l| l.country).collect();
                let zones: Vec<Option<&str>> =
                    leads.iter().map(|l| l.timezones.as_deref()).collect();
                let fields: Vec<&str> = leads.iter().map(|l| l.fields.as_str()).collect();
                let statuses: Vec<&str> = leads.iter().map(status).collect();
                let lines: Vec<i64> = leads.iter().map(|l| l.source_line).collect();
                inserted = sqlx::query(SQL)
                    .bind(campaign_id)
                    .bind(now)
                    .bind(phones)
                    .bind(countries)
                    .bind(zones)
                    .bind(fields)
                    .bind(statuses)
                    .bind(lines)
                    .bind(list)
                    .execute(pool)
                    .await?
                    .rows_affected();
            }
        }
        Ok(inserted)
    }

    /// Lead counts by status for a campaign, sorted by status.
    pub async fn lead_status_counts(
        &self,
        campaign_id: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT status, COUNT(*) FROM leads WHERE campaign_id = $1 GROUP BY status ORDER BY status";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The lead with this number in the campaign.
    pub async fn lead_by_phone(
        &self,
        campaign_id: i64,
        phone: &str,
    ) -> Result<Option<Lead>, StoreError> {
        const SQL: &str = "SELECT id, campaign_id, phone, country, timezones, fields, status,
                priority, attempts, next_attempt_at, last_outcome, callback_agent
             FROM leads WHERE campaign_id = $1 AND phone = $2";
        let lead = with_pool!(self, pool => match sqlx::query(SQL)
            .bind(campaign_id)
            .bind(phone)
            .fetch_optional(pool)
            .await?
        {
            Some(r) => Some(Lead {
                id: r.try_get(0)?,
                campaign_id: r.try_get(1)?,
                phone: r.try_get(2)?,
                country: r.try_get(3)?,
                timezones: r.try_get(4)?,
                fields: r.try_get(5)?,
                status: r.try_get(6)?,
                priority: r.try_get(7)?,
                attempts: r.try_get(8)?,
                next_attempt_at: r.try_get(9)?,
                last_outcome: r.try_get(10)?,
                callback_agent: r.try_get(11)?,
            }),
            None => None,
        });
        Ok(lead)
    }

    /// Records the start of a call attempt and counts it on the lead, in one
    /// transaction, before the INVITE goes out. Returns the attempt id.
    pub async fn start_attempt(&self, a: &NewAttempt) -> Result<i64, StoreError> {
        const BUMP: &str = "UPDATE leads SET attempts = attempts + 1, status = 'dialling'
             WHERE id = $1 AND campaign_id = $2 RETURNING attempts";
        const INSERT: &str =
            "INSERT INTO call_attempts (campaign_id, lead_id, attempt_no, phone, started_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id";
        let id = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let attempt_no: Option<i64> = sqlx::query_scalar(BUMP)
                .bind(a.lead_id)
                .bind(a.campaign_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(attempt_no) = attempt_no else {
                return Err(StoreError::NotFound { what: "lead", id: a.lead_id });
            };
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(a.campaign_id)
                .bind(a.lead_id)
                .bind(attempt_no)
                .bind(a.phone.as_str())
                .bind(a.started_at)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Records an attempt's progress while it is in flight: the answer
    /// time, or the bridge time and agent. `None` keeps what is stored.
    /// Written as it happens, so crash recovery knows a person answered or
    /// was put through.
    pub async fn attempt_progress(
        &self,
        attempt_id: i64,
        answered_at: Option<i64>,
        connected_at: Option<i64>,
        agent_id: Option<&str>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE call_attempts SET answered_at = COALESCE($2, answered_at),
                connected_at = COALESCE($3, connected_at), agent_id = COALESCE($4, agent_id)
             WHERE id = $1";
        const FIRST_ANSWER: &str = "SELECT answered_at IS NULL FROM call_attempts WHERE id = $1";
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // The answer is news once: `call.answered` goes out then.
            let first = match answered_at {
                Some(_) => sqlx::query_scalar::<_, bool>(FIRST_ANSWER)
                    .bind(attempt_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(false),
                None => false,
            };
            sqlx::query(SQL)
                .bind(attempt_id)
                .bind(answered_at)
                .bind(connected_at)
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
            if let Some(at) = answered_at.filter(|_| first)
                && let Some(ctx) = webhook_context!(&mut *tx, attempt_id)?
            {
                outbox_emit!(
                    &mut *tx,
                    &ctx,
                    "call.answered",
                    serde_json::json!({ "answered_at": crate::webhooks::time(at) }),
                    at
                )?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records how an attempt ended and moves its lead on, in one
    /// transaction.
    pub async fn finish_attempt(
        &self,
        attempt_id: i64,
        end: &AttemptEnd,
    ) -> Result<(), StoreError> {
        const ATTEMPT: &str = "UPDATE call_attempts SET answered_at = $2, connected_at = $3,
                ended_at = $4, outcome = $5, sip_code = $6, agent_id = $7, sip_codes = $8
             WHERE id = $1 RETURNING lead_id, node";
        // A callback the agent already booked (the disposition can land
        // before this write) is kept, and so is an opt-out that came while
        // the call was out (a do-not-call entry, a DNC disposition in
        // another campaign): the call's end never makes the lead callable
        // again. Nor does a late end move a lead that is no longer this
        // call's: one another node has claimed since (after `node recover
        // --force`, or a node cut off past the lease), or that has a newer
        // attempt; that node's call decides it.
        const LEAD: &str = "UPDATE leads SET status = $2, next_attempt_at = $3, last_outcome = $4
             WHERE id = $1 AND status <> 'dnc'
                 AND NOT (status = 'retry' AND last_outcome = 'callback')
                 AND (claim_owner IS NULL OR $5 IS NULL OR claim_owner = $5)
                 AND NOT EXISTS (SELECT 1 FROM call_attempts n WHERE n.lead_id = $1 AND n.id > $6)";
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(ATTEMPT)
                .bind(attempt_id)
                .bind(end.answered_at)
                .bind(end.connected_at)
                .bind(end.ended_at)
                .bind(end.outcome.as_str())
                .bind(end.sip_code)
                .bind(end.agent_id.as_deref())
                .bind(end.sip_codes.as_deref())
                .fetch_optional(&mut *tx)
                .await?;
            let Some((lead_id, node)) = row else {
                return Err(StoreError::NotFound { what: "call attempt", id: attempt_id });
            };
            if let Some(lead_id) = lead_id {
                sqlx::query(LEAD)
                    .bind(lead_id)
                    .bind(end.lead_status.as_str())
                    .bind(end.next_attempt_at)
                    .bind(end.outcome.as_str())
                    .bind(node.as_deref())
                    .bind(attempt_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(ctx) = webhook_context!(&mut *tx, attempt_id)? {
                let t = |ms: Option<i64>| ms.map(crate::webhooks::time);
                outbox_emit!(
                    &mut *tx,
                    &ctx,
                    "call.ended",
                    serde_json::json!({
                        "outcome": end.outcome,
                        "sip_code": end.sip_code,
                        "answered_at": t(end.answered_at),
                        "connected_at": t(end.connected_at),
                        "ended_at": crate::webhooks::time(end.ended_at),
                        "agent_id": end.agent_id,
                        "lead_status": end.lead_status,
                    }),
                    end.ended_at
                )?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The attempts at a lead, oldest first.
    pub async fn attempts_for_lead(&self, lead_id: i64) -> Result<Vec<Attempt>, StoreError> {
        const SQL: &str = "SELECT id, lead_id, attempt_no, started_at, ended_at, outcome, sip_code
             FROM call_attempts WHERE lead_id = $1 ORDER BY id";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(lead_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(Attempt {
                    id: r.try_get(0)?,
                    lead_id: r.try_get(1)?,
                    attempt_no: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    ended_at: r.try_get(4)?,
                    outcome: r.try_get(5)?,
                    sip_code: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Records a disposition; returns its id. A disposition flagged `dnc`
    /// puts the number on the internal do-not-call list and marks its leads
    /// in every campaign `dnc`, in the same transaction, so no campaign of
    /// the account dials it again.
    pub async fn record_disposition(&self, d: &NewDisposition) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO dispositions (attempt_id, campaign_id, agent_id, code,
                conversion, contact, dnc, callback_at, amount_minor, wrapup_ms, created_at, notes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";
        // A callback puts the lead back in the queue for the time agreed
        // (compliance still checks it before the dial).
        const CALLBACK: &str = "UPDATE leads SET status = 'retry', next_attempt_at = $2,
                last_outcome = 'callback', callback_agent = $3
             WHERE id = (SELECT lead_id FROM call_attempts WHERE id = $1) AND status <> 'dnc'";
        let id: i64 = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(SQL)
                .bind(d.attempt_id)
                .bind(d.campaign_id)
                .bind(d.agent_id.as_str())
                .bind(d.code.as_str())
                .bind(d.conversion)
                .bind(d.contact)
                .bind(d.dnc)
                .bind(d.callback_at)
                .bind(d.amount_minor)
                .bind(d.wrapup_ms)
                .bind(d.created_at)
                .bind(d.notes.as_deref())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(db) if db.is_unique_violation() => {
                        StoreError::AlreadyDisposed { attempt: d.attempt_id }
                    }
                    _ => StoreError::Db(e),
                })?;
            if let Some(at) = d.callback_at.filter(|_| !d.dnc) {
                sqlx::query(CALLBACK)
                    .bind(d.attempt_id)
                    .bind(at)
                    .bind(d.personal.then_some(d.agent_id.as_str()))
                    .execute(&mut *tx)
                    .await?;
            }
            // No number (the person was erased while the agent wrapped
            // up): the opt-out is recorded as a disposition.
            if d.dnc && list_attempt_number!(tx, d.attempt_id, d.created_at, "disposition")?.is_none() {
                return Err(StoreError::NotFound { what: "call attempt", id: d.attempt_id });
            }
            if let Some(ctx) = webhook_context!(&mut *tx, d.attempt_id)? {
                let data = serde_json::json!({
                    "disposition_id": id,
                    "code": d.code,
                    "agent_id": d.agent_id,
                    "contact": d.contact,
                    "conversion": d.conversion,
                    "opted_out": d.dnc,
                    "callback_at": d.callback_at.map(crate::webhooks::time),
                    "callback_personal": d.callback_at.is_some() && d.personal,
                    "amount_minor": d.amount_minor,
                    "recorded_at": crate::webhooks::time(d.created_at),
                });
                outbox_emit!(&mut *tx, &ctx, "disposition.recorded", data.clone(), d.created_at)?;
                if d.conversion {
                    outbox_emit!(&mut *tx, &ctx, "conversion", data.clone(), d.created_at)?;
                }
                if d.dnc {
                    outbox_emit!(&mut *tx, &ctx, "lead.opted_out", data, d.created_at)?;
                }
            }
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// The called party of call attempt `attempt_id` pressed a key during
    /// the abandoned-call message, the automated opt-out 47 CFR
    /// 64.1200(a)(7)(i)(B) requires: in one transaction the number goes on
    /// the internal do-not-call list as the person's own request (source
    /// `key_press`), its leads in every campaign become `dnc`, the act is
    /// audited (actor `called party`, action `dnc.key_press`, from `node`)
    /// and `lead.opted_out` goes to the webhook outbox. A person erased
    /// since has no number kept (erasure keeps it from every dial); the act
    /// is still audited. Done once per attempt: a second call (a second
    /// key, a retried write) changes nothing. False when there is no such
    /// attempt.
    pub async fn opt_out_by_key(
        &self,
        attempt_id: i64,
        at: i64,
        node: &str,
    ) -> Result<bool, StoreError> {
        const MARK: &str =
            "UPDATE call_attempts SET opted_out_at = $2 WHERE id = $1 AND opted_out_at IS NULL";
        const KNOWN: &str = "SELECT 1 FROM call_attempts WHERE id = $1";
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Once per attempt: a second key, or this write retried after
            // its commit did succeed, finds it done.
            let first = sqlx::query(MARK).bind(attempt_id).bind(at).execute(&mut *tx).await?.rows_affected() > 0;
            if !first {
                let known: Option<i32> = sqlx::query_scalar(KNOWN).bind(attempt_id).fetch_optional(&mut *tx).await?;
                return Ok(known.is_some());
            }
            let Some(phone) = list_attempt_number!(tx, attempt_id, at, compliance::SOURCE_KEY_PRESS)? else {
                return Ok(false);
            };
            let number = phone.as_deref().map_or_else(|| "(erased)".to_string(), crate::phone::mask);
            let audit = AuditEntry {
                at,
                actor: "called party".to_string(),
                action: "dnc.key_press".to_string(),
                subject: format!("{SCOPE_INTERNAL} {number}"),
                detail: format!("call {attempt_id}: a key pressed during the abandoned-call message"),
                origin: format!("node {node}"),
                status: None,
                request_id: String::new(),
            };
            insert_audit!(&mut *tx, &audit)?;
            if let Some(ctx) = webhook_context!(&mut *tx, attempt_id)? {
                let data = serde_json::json!({
                    "opted_out": true,
                    "source": compliance::SOURCE_KEY_PRESS,
                    "recorded_at": crate::webhooks::time(at),
                });
                outbox_emit!(&mut *tx, &ctx, "lead.opted_out", data, at)?;
            }
            tx.commit().await?;
            true
        }))
    }

    /// Adds numbers (E.164) to a do-not-call list (`internal`, or
    /// [`campaign_scope`]) and marks matching leads `dnc` (every campaign's
    /// for the internal list, the campaign's for its own). Returns how many
    /// numbers were new to the list.
    pub async fn dnc_add(
        &self,
        scope: &str,
        phones: &[String],
        at: i64,
        source: &str,
    ) -> Result<u64, StoreError> {
        const MARK_CAMPAIGN: &str = "UPDATE leads SET status = 'dnc' WHERE phone = $1
             AND campaign_id = (SELECT id FROM campaigns WHERE name = $2)";
        let campaign = scope.strip_prefix("campaign:");
        let mut added = 0;
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let sql = if source == compliance::SOURCE_IMPORT { DNC_INSERT } else { DNC_INSERT_REQUEST };
            for phone in phones {
                added += sqlx::query(sql)
                    .bind(scope)
                    .bind(phone.as_str())
                    .bind(at)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                match campaign {
                    None => sqlx::query(DNC_MARK_LEADS).bind(phone.as_str()).execute(&mut *tx).await?,
                    Some(name) => sqlx::query(MARK_CAMPAIGN).bind(phone.as_str()).bind(name).execute(&mut *tx).await?,
                };
            }
            tx.commit().await?;
        });
        Ok(added)
    }

    /// Removes numbers from a do-not-call list (a registry delta): only
    /// entries an import made; a person's own request stays (see
    /// [`Store::dnc_protected`] and [`Store::dnc_remove_deliberately`]).
    /// Leads stay marked: whether to dial them again is a decision for a
    /// person.
    pub async fn dnc_remove(&self, scope: &str, phones: &[String]) -> Result<u64, StoreError> {
        const SQL: &str =
            "DELETE FROM dnc_numbers WHERE scope = $1 AND phone = $2 AND source = 'import'";
        let mut removed = 0;
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for phone in phones {
                removed += sqlx::query(SQL).bind(scope).bind(phone.as_str()).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
        });
        Ok(removed)
    }

    /// Every number of a do-not-call list, E.164.
    pub async fn dnc_list(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT phone FROM dnc_numbers WHERE scope = $1 ORDER BY phone";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL).bind(scope).fetch_all(pool).await?))
    }

    /// Disposition totals of a campaign over `[from, to)` ms.
    pub async fn disposition_totals(
        &self,
        campaign_id: i64,
        from: i64,
        to: i64,
    ) -> Result<DispositionTotals, StoreError> {
        const SQL: &str = "SELECT COUNT(*),
                COALESCE(SUM(CASE WHEN contact THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN conversion THEN 1 ELSE 0 END), 0),
                CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT)
             FROM dispositions WHERE campaign_id = $1 AND created_at >= $2 AND created_at < $3";
        let t = with_pool!(self, pool => {
            let r = sqlx::query(SQL).bind(campaign_id).bind(from).bind(to).fetch_one(pool).await?;
            DispositionTotals {
                total: r.try_get(0)?,
                contacts: r.try_get(1)?,
                conversions: r.try_get(2)?,
                revenue_minor: r.try_get(3)?,
            }
        });
        Ok(t)
    }

    /// Appends a human answer or an abandon to the campaign's ledger.
    pub async fn ledger_append(
        &self,
        campaign_id: i64,
        attempt_id: Option<i64>,
        kind: LedgerKind,
        at: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO abandon_ledger (campaign_id, attempt_id, kind, at) VALUES ($1, $2, $3, $4)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(attempt_id)
            .bind(kind.as_str())
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// The ledger's events in `[from, to)` ms, oldest first, to rebuild an
    /// in-memory ledger after a restart.
    pub async fn ledger_events(
        &self,
        campaign_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, LedgerKind)>, StoreError> {
        Ok(self
            .ledger_rows_between(campaign_id, from, to)
            .await?
            .into_iter()
            .map(|(_, at, kind)| (at, kind))
            .collect())
    }

    /// [`Store::ledger_events`] with each row's id: (id, at, kind).
    async fn ledger_rows_between(
        &self,
        campaign_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64, LedgerKind)>, StoreError> {
        const SQL: &str = "SELECT id, at, kind FROM abandon_ledger WHERE campaign_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| {
                let kind: String = r.try_get(2)?;
                Ok((r.try_get(0)?, r.try_get(1)?, if kind == "abandon" { LedgerKind::Abandon } else { LedgerKind::HumanAnswer }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The campaign's abandonment ledger over `window` as of `now`,
    /// rebuilt from its stored rows: what a restarted runner starts from
    /// and what `dialler check` reads.
    pub async fn ledger(
        &self,
        campaign_id: i64,
        window: Duration,
        now: crate::clock::Millis,
    ) -> Result<crate::compliance::ledger::Ledger, StoreError> {
        Ok(self.ledger_with_ids(campaign_id, window, now).await?.0)
    }

    /// [`Store::ledger`] and the ids of the rows it was rebuilt from, in
    /// one read: a feed that resumes after the rebuild must know exactly
    /// which rows it holds (a row read by the rebuild but not known to be
    /// would be counted again, a human answer among them on the unsafe
    /// side).
    pub async fn ledger_with_ids(
        &self,
        campaign_id: i64,
        window: Duration,
        now: crate::clock::Millis,
    ) -> Result<(crate::compliance::ledger::Ledger, Vec<i64>), StoreError> {
        use crate::clock::Millis;
        use crate::compliance::ledger::{Event, Ledger};
        let rows = self
            .ledger_rows_between(campaign_id, now.minus(window).ms(), now.ms() + 1)
            .await?;
        let ids = rows.iter().map(|(id, _, _)| *id).collect();
        let ledger = Ledger::from_events(
            window,
            rows.into_iter().map(|(_, t, k)| {
                (
                    Millis(t).utc(),
                    match k {
                        LedgerKind::HumanAnswer => Event::HumanAnswer,
                        LedgerKind::Abandon => Event::Abandon,
                    },
                )
            }),
            now.utc(),
        );
        Ok((ledger, ids))
    }

    /// Human answers and abandons in `[from, to)` ms.
    pub async fn ledger_counts(
        &self,
        campaign_id: i64,
        from: i64,
        to: i64,
    ) -> Result<LedgerCounts, StoreError> {
        const SQL: &str = "SELECT
                COALESCE(SUM(CASE WHEN kind = 'human_answer' THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN kind = 'abandon' THEN 1 ELSE 0 END), 0)
             FROM abandon_ledger WHERE campaign_id = $1 AND at >= $2 AND at < $3";
        let counts = with_pool!(self, pool => {
            let r = sqlx::query(SQL).bind(campaign_id).bind(from).bind(to).fetch_one(pool).await?;
            LedgerCounts {
                human_answers: r.try_get(0)?,
                abandons: r.try_get(1)?,
            }
        });
        Ok(counts)
    }
}

/// Scope of the account's internal do-not-call list.
pub const SCOPE_INTERNAL: &str = "internal";

/// Scope of a campaign's own do-not-call list.
pub fn campaign_scope(campaign: &str) -> String {
    format!("campaign:{campaign}")
}

const DNC_INSERT: &str =
    "INSERT INTO dnc_numbers (scope, phone, added_at, source) VALUES ($1, $2, $3, $4)
     ON CONFLICT (scope, phone) DO NOTHING";
/// A person's own request (a `dnc` disposition, an opt-out): a number on
/// the list only by import becomes protected as the person's request.
const DNC_INSERT_REQUEST: &str =
    "INSERT INTO dnc_numbers (scope, phone, added_at, source) VALUES ($1, $2, $3, $4)
     ON CONFLICT (scope, phone) DO UPDATE SET source = excluded.source, added_at = excluded.added_at
     WHERE dnc_numbers.source = 'import'";
const DNC_MARK_LEADS: &str = "UPDATE leads SET status = 'dnc' WHERE phone = $1";

/// Rows per multi-row SQLite lead insert (9 parameters a row).
pub const LEAD_BATCH: usize = 1000;

/// `INSERT ... VALUES (?,?,?,?,?,?,?,?), ... ON CONFLICT DO NOTHING` for
/// `rows` rows.
///
/// Plain `?` placeholders, not `$N`: sqlx binds `$N` parameters by name, and
/// SQLite finds a parameter's name by a linear scan, so 8,000 named
/// parameters cost 8,000² string compares a statement (measured: 85% of a
/// SQLite import's time).
fn sqlite_lead_insert_sql(rows: usize) -> String {
    const INSERT: &str = "INSERT INTO leads (campaign_id, phone, country, timezones, fields, status, source_line, imported_at, list) VALUES ";
    const ROW: &str = "(?,?,?,?,?,?,?,?,?)";
    let mut sql = String::with_capacity(INSERT.len() + rows * (ROW.len() + 1) + 48);
    sql.push_str(INSERT);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(ROW);
    }
    sql.push_str(" ON CONFLICT (campaign_id, phone) DO NOTHING");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write transaction that reads before it writes is not failed by
    /// another connection's commit in between (SQLITE_BUSY_SNAPSHOT with
    /// a deferred BEGIN): the other write waits for it instead.
    #[tokio::test]
    async fn a_write_transaction_that_reads_first_survives_a_commit_in_between() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .expect("pool");
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .expect("table");
        sqlx::query("INSERT INTO t VALUES (0)")
            .execute(&pool)
            .await
            .expect("row");
        let mut tx = pool.begin_write().await.expect("begin");
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(&mut *tx)
            .await
            .expect("read");
        let other = tokio::spawn({
            let pool = pool.clone();
            async move {
                sqlx::query("UPDATE t SET x = x + 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
            }
        });
        // Time for the other write to try (it waits for the lock).
        tokio::time::sleep(Duration::from_millis(100)).await;
        sqlx::query("UPDATE t SET x = $1")
            .bind(x + 10)
            .execute(&mut *tx)
            .await
            .expect("write after the read");
        tx.commit().await.expect("commit");
        other.await.expect("task").expect("the other write");
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(&pool)
            .await
            .expect("read");
        assert_eq!(x, 11);
    }
}
