//! Webhooks in the store: subscriptions, the outbox (written by the store
//! functions whose rows the events describe, in their transactions; see
//! the `webhook_context!` and `outbox_emit!` macros), claims of due
//! events by delivery tasks, every try's record, and replays.

use sqlx::Row;

use super::{AuditEntry, Backend, Store, StoreError};

/// The outbox insert, one row per live subscription of the campaign to
/// the event: `$1` campaign id, `$2` event, `$3` payload, `$4` now, `$5`
/// the event's LIKE pattern.
pub(crate) const OUTBOX_INSERT: &str =
    "INSERT INTO webhook_outbox (subscription_id, event, payload, created_at, next_attempt_at)
     SELECT id, $2, $3, $4, $4 FROM webhook_subscriptions
     WHERE campaign_id = $1 AND removed_at IS NULL AND events LIKE $5";

/// A call's context for its events, read only when its campaign has a
/// live subscription: `$1` the attempt id.
pub(crate) const CONTEXT: &str =
    "SELECT a.campaign_id, c.name, a.lead_id, a.phone, a.attempt_no, l.fields
     FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id
     LEFT JOIN leads l ON l.id = a.lead_id
     WHERE a.id = $1 AND EXISTS (SELECT 1 FROM webhook_subscriptions s
         WHERE s.campaign_id = a.campaign_id AND s.removed_at IS NULL)";

/// One subscription (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookSubscription {
    /// Its id.
    pub id: i64,
    /// The campaign's name.
    pub campaign: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events sent.
    pub events: Vec<String>,
    /// When it was added (ms).
    pub created_at: i64,
    /// Who added it.
    pub created_by: String,
    /// When it was removed (ms); removed ones send nothing more.
    pub removed_at: Option<i64>,
}

/// An event claimed for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// The outbox row (the idempotency key is made from it).
    pub id: i64,
    /// The event.
    pub event: String,
    /// Its data (JSON).
    pub payload: String,
    /// When it happened (ms).
    pub created_at: i64,
    /// When its current run of tries began (ms): `created_at`, or its last
    /// replay; delivery gives up [`crate::webhooks::GIVE_UP_AFTER`] later.
    pub tries_from: i64,
    /// Tries so far.
    pub attempts: i64,
    /// The receiver.
    pub url: String,
    /// The signing secret.
    pub secret: String,
}

/// One event in the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRow {
    /// The outbox row (its idempotency key is `evt_ID`).
    pub id: i64,
    /// The subscription.
    pub subscription_id: i64,
    /// The event.
    pub event: String,
    /// When it happened (ms).
    pub created_at: i64,
    /// Tries so far.
    pub attempts: i64,
    /// When it was delivered (a 2xx), ms.
    pub delivered_at: Option<i64>,
    /// When it was given up, ms.
    pub failed_at: Option<i64>,
    /// When the next try is due, ms (pending ones).
    pub next_attempt_at: i64,
    /// The last try's HTTP status.
    pub last_status: Option<i64>,
    /// The last try's error.
    pub last_error: Option<String>,
}

impl OutboxRow {
    /// `delivered`, `failed` or `pending`.
    pub fn state(&self) -> &'static str {
        if self.delivered_at.is_some() {
            "delivered"
        } else if self.failed_at.is_some() {
            "failed"
        } else {
            "pending"
        }
    }
}

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// One event.
    Event(i64),
    /// A subscription's events created at or after a time (ms).
    Since {
        /// The subscription.
        subscription_id: i64,
        /// From.
        since: i64,
    },
}

impl Store {
    /// Adds a subscription of campaign `campaign_id` (audited as `by`, the
    /// secret never); returns its id.
    pub async fn webhook_add(
        &self,
        campaign_id: i64,
        url: &str,
        events: &[String],
        secret: &str,
        by: &AuditEntry,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO webhook_subscriptions
                 (campaign_id, url, events, secret, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        let id = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(SQL)
                .bind(campaign_id)
                .bind(url)
                .bind(crate::webhooks::events_column(events))
                .bind(secret)
                .bind(by.at)
                .bind(&by.actor)
                .fetch_one(&mut *tx)
                .await?;
            let audit = AuditEntry {
                action: "webhook.add".into(),
                subject: format!("webhook {id}"),
                detail: format!("campaign {campaign_id}; {url}; {}", events.join(",")),
                ..by.clone()
            };
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Removes subscription `id` (audited); false when there was no live
    /// one. Its undelivered events are not sent.
    pub async fn webhook_remove(&self, id: i64, by: &AuditEntry) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE webhook_subscriptions SET removed_at = $2
             WHERE id = $1 AND removed_at IS NULL";
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(SQL).bind(id).bind(by.at).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                let audit = AuditEntry {
                    action: "webhook.remove".into(),
                    subject: format!("webhook {id}"),
                    ..by.clone()
                };
                insert_audit!(&mut *tx, &audit)?;
            }
            tx.commit().await?;
            n > 0
        }))
    }

    /// Every subscription, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<WebhookSubscription>, StoreError> {
        const SQL: &str =
            "SELECT s.id, c.name, s.url, s.events, s.created_at, s.created_by, s.removed_at
             FROM webhook_subscriptions s JOIN campaigns c ON c.id = s.campaign_id ORDER BY s.id";
        type Row = (i64, String, String, String, i64, String, Option<i64>);
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, campaign, url, events, created_at, created_by, removed_at)| {
                    WebhookSubscription {
                        id,
                        campaign,
                        url,
                        events: events
                            .split(',')
                            .filter(|e| !e.is_empty())
                            .map(str::to_string)
                            .collect(),
                        created_at,
                        created_by,
                        removed_at,
                    }
                },
            )
            .collect())
    }

    /// Claims up to `limit` due events of live subscriptions for `node`
    /// until `now + lease_ms` (an event another node claimed is left to it
    /// until its lease lapses), oldest first.
    pub async fn webhook_claim(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        const DUE: &str = "SELECT o.id FROM webhook_outbox o
             JOIN webhook_subscriptions s ON s.id = o.subscription_id
             WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $3
               AND (o.claimed_until IS NULL OR o.claimed_until < $3) AND s.removed_at IS NULL
             ORDER BY o.next_attempt_at, o.id LIMIT $4";
        const DETAILS: &str = "SELECT o.id, o.event, o.payload, o.created_at,
                 COALESCE(o.retry_from, o.created_at), o.attempts, s.url, s.secret
             FROM webhook_outbox o JOIN webhook_subscriptions s ON s.id = o.subscription_id
             WHERE o.claimed_by = $1 AND o.claimed_until = $2 ORDER BY o.id";
        let until = now + lease_ms;
        // Most rounds find nothing due: a read says so without taking
        // SQLite's write lock.
        let any: Option<i64> = with_pool!(self, pool => sqlx::query_scalar(
                sqlx::AssertSqlSafe(format!("SELECT id FROM ({DUE}) due LIMIT 1")),
            )
            .bind(node)
            .bind(until)
            .bind(now)
            .bind(1i64)
            .fetch_optional(pool)
            .await?);
        if any.is_none() {
            return Ok(Vec::new());
        }
        // PostgreSQL locks the rows it claims (two nodes at once get
        // different events); SQLite has one writer.
        let claim = match &*self.backend {
            Backend::Sqlite(_) => format!(
                "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN ({DUE})"
            ),
            Backend::Postgres(_) => format!(
                "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2
                 WHERE id IN ({DUE} FOR UPDATE OF o SKIP LOCKED)"
            ),
        };
        type Row = (i64, String, String, i64, i64, i64, String, String);
        let rows: Vec<Row> = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sqlx::AssertSqlSafe(claim.clone()))
                .bind(node)
                .bind(until)
                .bind(now)
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query_as(DETAILS)
                .bind(node)
                .bind(until)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, event, payload, created_at, tries_from, attempts, url, secret)| OutboxItem {
                    id,
                    event,
                    payload,
                    created_at,
                    tries_from,
                    attempts,
                    url,
                    secret,
                },
            )
            .collect())
    }

    /// Records a try of outbox row `id` at `at` and what it came to, in
    /// one transaction with its line in the delivery log. A delivery says
    /// the receiver is back: with `backlog_by`, the subscription's events
    /// waiting out a longer back-off are brought forward to that time.
    #[allow(clippy::too_many_arguments)]
    pub async fn webhook_tried(
        &self,
        id: i64,
        at: i64,
        status: Option<i64>,
        error: Option<&str>,
        duration_ms: i64,
        outcome: &crate::webhooks::TryOutcome,
        backlog_by: Option<i64>,
    ) -> Result<(), StoreError> {
        const BACKLOG: &str = "UPDATE webhook_outbox SET next_attempt_at = $2
             WHERE subscription_id = (SELECT subscription_id FROM webhook_outbox WHERE id = $1)
               AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at > $2";
        use crate::webhooks::TryOutcome;
        const LOG: &str = "INSERT INTO webhook_attempts (outbox_id, at, status, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5)";
        const UPDATE: &str = "UPDATE webhook_outbox SET attempts = attempts + 1,
                 last_status = $2, last_error = $3, claimed_by = NULL, claimed_until = NULL,
                 delivered_at = $4, failed_at = $5, next_attempt_at = COALESCE($6, next_attempt_at)
             WHERE id = $1";
        let (delivered, failed, next) = match outcome {
            TryOutcome::Delivered => (Some(at), None, None),
            TryOutcome::GaveUp => (None, Some(at), None),
            TryOutcome::Retry(next) => (None, None, Some(*next)),
        };
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(LOG)
                .bind(id)
                .bind(at)
                .bind(status)
                .bind(error)
                .bind(duration_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(UPDATE)
                .bind(id)
                .bind(status)
                .bind(error)
                .bind(delivered)
                .bind(failed)
                .bind(next)
                .execute(&mut *tx)
                .await?;
            if let (Some(by), Some(_)) = (backlog_by, delivered) {
                sqlx::query(BACKLOG).bind(id).bind(by).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The delivery log: events of `subscription` (or all), only those in
    /// `state` (`pending`, `delivered`, `failed`) when given, newest first,
    /// at most `limit`.
    pub async fn webhook_log(
        &self,
        subscription: Option<i64>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        const SQL: &str = "SELECT id, subscription_id, event, created_at, attempts, delivered_at,
                 failed_at, next_attempt_at, last_status, last_error
             FROM webhook_outbox
             WHERE ($1 IS NULL OR subscription_id = $1)
               AND ($2 IS NULL
                    OR ($2 = 'delivered' AND delivered_at IS NOT NULL)
                    OR ($2 = 'failed' AND failed_at IS NOT NULL)
                    OR ($2 = 'pending' AND delivered_at IS NULL AND failed_at IS NULL))
             ORDER BY id DESC LIMIT $3";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(subscription)
            .bind(state)
            .bind(limit.clamp(1, 100_000))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get(0)?,
                    subscription_id: r.try_get(1)?,
                    event: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                    delivered_at: r.try_get(5)?,
                    failed_at: r.try_get(6)?,
                    next_attempt_at: r.try_get(7)?,
                    last_status: r.try_get(8)?,
                    last_error: r.try_get(9)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The tries of outbox row `id`: (at, status, error, duration ms),
    /// oldest first.
    pub async fn webhook_tries(
        &self,
        id: i64,
    ) -> Result<Vec<(i64, Option<i64>, Option<String>, i64)>, StoreError> {
        const SQL: &str = "SELECT at, status, error, duration_ms FROM webhook_attempts
             WHERE outbox_id = $1 ORDER BY id";
        Ok(with_pool!(self, pool => sqlx::query_as(SQL).bind(id).fetch_all(pool).await?))
    }

    /// Sends events again (delivered or failed ones too, with the same id
    /// and body, so a receiver keeping idempotency keys takes them once):
    /// due at `by.at`. Audited; returns how many.
    pub async fn webhook_replay(&self, what: &Replay, by: &AuditEntry) -> Result<u64, StoreError> {
        // A replay starts a new run of tries: its give-up time counts from
        // now, not from the event (an event older than that would be given
        // up at its first failure).
        const ONE: &str = "UPDATE webhook_outbox SET delivered_at = NULL, failed_at = NULL,
                 next_attempt_at = $2, retry_from = $2, claimed_by = NULL, claimed_until = NULL
             WHERE id = $1";
        const SINCE: &str = "UPDATE webhook_outbox SET delivered_at = NULL, failed_at = NULL,
                 next_attempt_at = $2, retry_from = $2, claimed_by = NULL, claimed_until = NULL
             WHERE subscription_id = $1 AND created_at >= $3";
        let (subject, detail) = match what {
            Replay::Event(id) => (format!("webhook event {id}"), String::new()),
            Replay::Since {
                subscription_id,
                since,
            } => (
                format!("webhook {subscription_id}"),
                format!("since {}", crate::webhooks::time(*since)),
            ),
        };
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let n = match what {
                Replay::Event(id) => sqlx::query(ONE).bind(id).bind(by.at).execute(&mut *tx).await?,
                Replay::Since { subscription_id, since } => sqlx::query(SINCE)
                    .bind(subscription_id)
                    .bind(by.at)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?,
            }
            .rows_affected();
            if n > 0 {
                let audit = AuditEntry {
                    action: "webhook.replay".into(),
                    subject,
                    detail: format!("{detail} ({n} events)").trim().to_string(),
                    ..by.clone()
                };
                insert_audit!(&mut *tx, &audit)?;
            }
            tx.commit().await?;
            n
        }))
    }
}
