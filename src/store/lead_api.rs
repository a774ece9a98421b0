//! The leads API's part of the store: one lead with its history, changes
//! to a lead (priority, fields, an agreed callback), a paged export of
//! outcomes per lead, and the idempotency keys of lead posts.

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// A lead as the API shows it, with its list and last disposition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LeadView {
    /// Row id.
    pub id: i64,
    /// E.164 number.
    pub phone: String,
    /// ISO country.
    pub country: String,
    /// IANA zones, comma-separated; none when unknown.
    pub timezones: Option<String>,
    /// The lead list it was imported into.
    pub list: String,
    /// Lifecycle status: new, claimed, dialling, retry, done, dnc, ...
    pub status: String,
    /// Higher dials first.
    pub priority: i64,
    /// Attempts made.
    pub attempts: i64,
    /// Earliest next attempt, ms.
    pub next_attempt_at: Option<i64>,
    /// The last attempt's outcome.
    pub last_outcome: Option<String>,
    /// The last disposition's code.
    pub disposition: Option<String>,
    /// Whether the last disposition was a conversion.
    pub conversion: Option<bool>,
    /// The last disposition's amount, minor units.
    pub amount_minor: Option<i64>,
    /// When the last disposition was recorded, ms.
    pub disposition_at: Option<i64>,
    /// The other columns.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
}

const VIEW: &str = "SELECT l.id, l.phone, l.country, l.timezones, l.list, l.status, l.priority,
         l.attempts, l.next_attempt_at, l.last_outcome, d.code, d.conversion, d.amount_minor,
         d.created_at, l.fields
     FROM leads l
     LEFT JOIN dispositions d ON d.id = (SELECT MAX(d2.id) FROM dispositions d2
         JOIN call_attempts a2 ON a2.id = d2.attempt_id WHERE a2.lead_id = l.id)";

fn view(r: &impl LeadRow) -> Result<LeadView, sqlx::Error> {
    r.view()
}

/// Reads a [`LeadView`] from either database's row.
trait LeadRow {
    fn view(&self) -> Result<LeadView, sqlx::Error>;
}

macro_rules! lead_row_impl {
    ($row:ty) => {
        impl LeadRow for $row {
            fn view(&self) -> Result<LeadView, sqlx::Error> {
                let fields: String = self.try_get(14)?;
                Ok(LeadView {
                    id: self.try_get(0)?,
                    phone: self.try_get(1)?,
                    country: self.try_get(2)?,
                    timezones: self.try_get(3)?,
                    list: self.try_get(4)?,
                    status: self.try_get(5)?,
                    priority: self.try_get(6)?,
                    attempts: self.try_get(7)?,
                    next_attempt_at: self.try_get(8)?,
                    last_outcome: self.try_get(9)?,
                    disposition: self.try_get(10)?,
                    conversion: self.try_get(11)?,
                    amount_minor: self.try_get(12)?,
                    disposition_at: self.try_get(13)?,
                    fields: serde_json::from_str(&fields).unwrap_or(serde_json::Value::Null),
                })
            }
        }
    };
}
lead_row_impl!(sqlx::sqlite::SqliteRow);
lead_row_impl!(sqlx::postgres::PgRow);

/// A change to a lead; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadChange {
    /// New priority.
    pub priority: Option<i64>,
    /// New fields (a JSON object), replacing the old.
    pub fields: Option<String>,
    /// An agreed callback time (ms): the lead waits for it.
    pub callback_at: Option<i64>,
}

/// Why a lead change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadChangeRefused {
    /// No such lead in the campaign.
    NotFound,
    /// A callback for a lead that may not be called (opted out, erased,
    /// done with, being dialled): its status.
    Status(String),
}

/// How long a request with an `Idempotency-Key` may run before a repeat
/// takes it for one that never finished (see [`Store::idempotency_begin`]):
/// far longer than any import of the API's largest body takes.
pub const IDEMPOTENCY_LEASE_MS: i64 = 10 * 60 * 1000;

impl Store {
    /// Lead `id` of campaign `campaign_id`.
    pub async fn lead_view(
        &self,
        campaign_id: i64,
        id: i64,
    ) -> Result<Option<LeadView>, StoreError> {
        let sql = format!("{VIEW} WHERE l.campaign_id = $1 AND l.id = $2");
        Ok(
            with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(campaign_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(view)
            .transpose()?),
        )
    }

    /// Campaign `campaign_id`'s leads after id `after_id`, by id, at most
    /// `limit`: the outcome export.
    pub async fn leads_export(
        &self,
        campaign_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LeadView>, StoreError> {
        let sql = format!("{VIEW} WHERE l.campaign_id = $1 AND l.id > $2 ORDER BY l.id LIMIT $3");
        Ok(
            with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(campaign_id)
            .bind(after_id)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(pool)
            .await?
            .iter()
            .map(view)
            .collect::<Result<Vec<_>, sqlx::Error>>()?),
        )
    }

    /// Changes lead `id` of campaign `campaign_id`. A callback is taken
    /// only for a lead waiting to be called (new or retry): never one
    /// opted out, erased or done with, nor one a node has claimed (its
    /// hopper would dial it before the agreed time).
    pub async fn lead_change(
        &self,
        campaign_id: i64,
        id: i64,
        c: &LeadChange,
    ) -> Result<Result<(), LeadChangeRefused>, StoreError> {
        const STATUS: &str = "SELECT status FROM leads WHERE campaign_id = $1 AND id = $2";
        const SET: &str = "UPDATE leads SET priority = COALESCE($3, priority),
                 fields = COALESCE($4, fields)
             WHERE campaign_id = $1 AND id = $2";
        const CALLBACK: &str = "UPDATE leads SET status = 'retry', next_attempt_at = $3,
                 last_outcome = 'callback'
             WHERE campaign_id = $1 AND id = $2 AND status IN ('new', 'retry')";
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let status: Option<String> = sqlx::query_scalar(STATUS)
                .bind(campaign_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(status) = status else {
                return Ok(Err(LeadChangeRefused::NotFound));
            };
            if c.callback_at.is_some() && !matches!(status.as_str(), "new" | "retry") {
                return Ok(Err(LeadChangeRefused::Status(status)));
            }
            sqlx::query(SET)
                .bind(campaign_id)
                .bind(id)
                .bind(c.priority)
                .bind(c.fields.as_deref())
                .execute(&mut *tx)
                .await?;
            if let Some(at) = c.callback_at {
                sqlx::query(CALLBACK)
                    .bind(campaign_id)
                    .bind(id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }))
    }

    /// Starts a request with idempotency key `key`: `Ok(None)` when it is
    /// new (the caller runs it, then [`Store::idempotency_finish`]);
    /// `Ok(Some((hash, response)))` when the key was seen (response `None`
    /// while the first request still runs). A first request with no answer
    /// after [`IDEMPOTENCY_LEASE_MS`] never finished (its process died, or
    /// its answer could not be stored): the same request may run again
    /// (an import is idempotent in its effect: rows already in are
    /// duplicates), instead of a 409 for the key for ever.
    pub async fn idempotency_begin(
        &self,
        campaign_id: i64,
        key: &str,
        request_sha256: &str,
        now: i64,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        const INSERT: &str =
            "INSERT INTO api_idempotency (campaign_id, key, request_sha256, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, key) DO NOTHING";
        const READ: &str = "SELECT request_sha256, response FROM api_idempotency
             WHERE campaign_id = $1 AND key = $2";
        let inserted = with_pool!(self, pool => sqlx::query(INSERT)
            .bind(campaign_id)
            .bind(key)
            .bind(request_sha256)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        if inserted > 0 {
            return Ok(None);
        }
        const TAKE_OVER: &str = "UPDATE api_idempotency SET created_at = $4
             WHERE campaign_id = $1 AND key = $2 AND request_sha256 = $3
               AND response IS NULL AND created_at < $5";
        let taken = with_pool!(self, pool => sqlx::query(TAKE_OVER)
            .bind(campaign_id)
            .bind(key)
            .bind(request_sha256)
            .bind(now)
            .bind(now.saturating_sub(IDEMPOTENCY_LEASE_MS))
            .execute(pool)
            .await?
            .rows_affected());
        if taken > 0 {
            return Ok(None);
        }
        let row = with_pool!(self, pool => sqlx::query(READ)
            .bind(campaign_id)
            .bind(key)
            .fetch_optional(pool)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get::<String, _>(0)?, r.try_get::<Option<String>, _>(1)?)))
            .transpose()?);
        Ok(row)
    }

    /// Stores the answer of the request with key `key`; with `None` (it
    /// failed), forgets the key so the request can be made again.
    pub async fn idempotency_finish(
        &self,
        campaign_id: i64,
        key: &str,
        response: Option<&str>,
    ) -> Result<(), StoreError> {
        const SET: &str =
            "UPDATE api_idempotency SET response = $3 WHERE campaign_id = $1 AND key = $2";
        const FORGET: &str = "DELETE FROM api_idempotency WHERE campaign_id = $1 AND key = $2";
        with_pool!(self, pool => {
            match response {
                Some(r) => sqlx::query(SET).bind(campaign_id).bind(key).bind(r).execute(pool).await?,
                None => sqlx::query(FORGET).bind(campaign_id).bind(key).execute(pool).await?,
            };
        });
        Ok(())
    }
}

/// One attempt of a lead, as the agent's screen lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AttemptHistory {
    /// The attempt (call) id.
    pub call_id: i64,
    /// When it was dialled, ms.
    pub started_at: i64,
    /// How it ended (none while in flight).
    pub outcome: Option<String>,
    /// The agent it was put through to.
    pub agent: Option<String>,
    /// The disposition recorded for it.
    pub disposition: Option<String>,
    /// The agent's notes with the disposition.
    pub notes: Option<String>,
    /// The callback agreed, ms.
    pub callback_at: Option<i64>,
}

impl Store {
    /// Lead `lead_id`'s attempts, newest first, at most `limit`.
    pub async fn lead_history(
        &self,
        lead_id: i64,
        limit: i64,
    ) -> Result<Vec<AttemptHistory>, StoreError> {
        const SQL: &str = "SELECT a.id, a.started_at, a.outcome, a.agent_id, d.code, d.notes,
                d.callback_at
             FROM call_attempts a LEFT JOIN dispositions d ON d.attempt_id = a.id
             WHERE a.lead_id = $1 ORDER BY a.started_at DESC, a.id DESC LIMIT $2";
        Ok(with_pool!(self, pool => sqlx::query(SQL)
            .bind(lead_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(AttemptHistory {
                    call_id: r.try_get(0)?,
                    started_at: r.try_get(1)?,
                    outcome: r.try_get(2)?,
                    agent: r.try_get(3)?,
                    disposition: r.try_get(4)?,
                    notes: r.try_get(5)?,
                    callback_at: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?))
    }
}
