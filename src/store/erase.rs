//! Personal data erasure: removing a person, found by phone number, from
//! every campaign while keeping the counts reports and the abandonment
//! ledger are built on.

use super::{Backend, Store, StoreError};

/// What an erasure removed or de-identified. Holds counts only, never the
/// number, so it may be logged and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ErasureCounts {
    /// Lead rows deleted (one per campaign that had the number).
    pub leads: i64,
    /// Call attempts whose number and lead link were removed (kept for
    /// counts: outcome, timings, campaign, agent).
    pub attempts: i64,
    /// Dispositions of those attempts, kept: they hold no personal data once
    /// their attempt is de-identified and their notes cleared.
    pub dispositions: i64,
}

impl Store {
    /// Erases everything the store holds about the person with number
    /// `phone` (E.164), in every campaign, in one transaction:
    ///
    /// - deletes their lead rows (number, name, custom fields);
    /// - sets `phone` and `lead_id` to NULL on their call attempts, which
    ///   stay for aggregates;
    /// - keeps dispositions and ledger rows, which point only at attempts,
    ///   and clears the agent's free-text notes on those dispositions;
    /// - de-identifies the webhook events that carry the number (delivered or
    ///   not): their lead's id, number and fields become null, as for an
    ///   event written after the erasure, and tells each live subscriber of a
    ///   campaign that held the lead with a `lead.erased` event (its id only);
    /// - replaces the number's do-not-call entries (every list) by a
    ///   suppression entry, `suppression` (the number's keyed hash, see
    ///   [`crate::compliance::suppression`]): honouring the request means
    ///   never calling again, in any campaign, without keeping the number;
    /// - logs the request in `erasures`, with counts only.
    ///
    /// Erasing a number the store does not know still adds the suppression
    /// entry and logs a request with zero counts.
    pub async fn erase_number(
        &self,
        phone: &str,
        suppression: &str,
        at: i64,
    ) -> Result<ErasureCounts, StoreError> {
        // Attempts are matched by number as well as by lead: an attempt may
        // outlive its lead's link, and the number is what identifies the
        // person.
        const DISPOSITIONS: &str = "SELECT COUNT(*) FROM dispositions WHERE attempt_id IN
             (SELECT id FROM call_attempts WHERE phone = $1
                 OR lead_id IN (SELECT id FROM leads WHERE phone = $1))";
        const UNLINK: &str = "UPDATE call_attempts SET phone = NULL, lead_id = NULL
             WHERE phone = $1 OR lead_id IN (SELECT id FROM leads WHERE phone = $1)";
        const DELETE: &str = "DELETE FROM leads WHERE phone = $1";
        // A leg a crash left carries the number (its Request-URI): the
        // erasure wins over ending it after the restart.
        const LEGS: &str = "DELETE FROM sip_legs WHERE attempt_id IN
             (SELECT id FROM call_attempts WHERE phone = $1
                 OR lead_id IN (SELECT id FROM leads WHERE phone = $1))";
        const SUPPRESS: &str = "INSERT INTO suppressions (hash, added_at, source)
             VALUES ($1, $2, 'erasure') ON CONFLICT (hash) DO NOTHING";
        const FORGET_DNC: &str = "DELETE FROM dnc_numbers WHERE phone = $1";
        // The agent's free-text notes may name the person: they go, the
        // disposition's code and figures stay.
        const NOTES: &str = "UPDATE dispositions SET notes = NULL
             WHERE notes IS NOT NULL AND attempt_id IN
             (SELECT id FROM call_attempts WHERE phone = $1
                 OR lead_id IN (SELECT id FROM leads WHERE phone = $1))";
        // Webhook events carry the lead's number and fields: those not yet
        // delivered must not take them to the CRM after the erasure, and a
        // replay of delivered ones must not send them again. The payload is
        // compact JSON written by `webhooks::payload`; an E.164 number holds
        // no LIKE wildcard.
        const OUTBOX: &str = "SELECT id, payload FROM webhook_outbox WHERE payload LIKE $1";
        const OUTBOX_REDACT: &str = "UPDATE webhook_outbox SET payload = $2 WHERE id = $1";
        // Every live subscriber of a campaign that held the lead is told
        // (GDPR Art. 19), in this transaction.
        const ERASED_LEADS: &str = "SELECT l.id, c.id, c.name FROM leads l
             JOIN campaigns c ON c.id = l.campaign_id WHERE l.phone = $1";
        const NOTIFY: &str = "INSERT INTO webhook_outbox
             (subscription_id, event, payload, created_at, next_attempt_at)
             SELECT id, $1, $2, $3, $3 FROM webhook_subscriptions
             WHERE campaign_id = $4 AND removed_at IS NULL";
        const LOG: &str =
            "INSERT INTO erasures (at, leads, attempts, dispositions) VALUES ($1, $2, $3, $4)";
        let counts = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let dispositions: i64 = sqlx::query_scalar(DISPOSITIONS)
                .bind(phone)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(LEGS).bind(phone).execute(&mut *tx).await?;
            sqlx::query(NOTES).bind(phone).execute(&mut *tx).await?;
            let events: Vec<(i64, String)> = sqlx::query_as(OUTBOX)
                .bind(format!("%\"phone\":\"{phone}\"%"))
                .fetch_all(&mut *tx)
                .await?;
            for (id, payload) in &events {
                sqlx::query(OUTBOX_REDACT)
                    .bind(id)
                    .bind(crate::webhooks::erased_payload(payload))
                    .execute(&mut *tx)
                    .await?;
            }
            if !events.is_empty() {
                tracing::info!(events = events.len(), "erasure: webhook events de-identified");
            }
            let erased: Vec<(i64, i64, String)> = sqlx::query_as(ERASED_LEADS)
                .bind(phone)
                .fetch_all(&mut *tx)
                .await?;
            for (lead_id, campaign_id, campaign) in &erased {
                sqlx::query(NOTIFY)
                    .bind(crate::webhooks::ERASED_EVENT)
                    .bind(crate::webhooks::erased_notice(campaign, *lead_id, at))
                    .bind(at)
                    .bind(campaign_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let attempts = sqlx::query(UNLINK).bind(phone).execute(&mut *tx).await?.rows_affected();
            let leads = sqlx::query(DELETE).bind(phone).execute(&mut *tx).await?.rows_affected();
            sqlx::query(SUPPRESS)
                .bind(suppression)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(FORGET_DNC).bind(phone).execute(&mut *tx).await?;
            let counts = ErasureCounts {
                leads: i64::try_from(leads).unwrap_or(i64::MAX),
                attempts: i64::try_from(attempts).unwrap_or(i64::MAX),
                dispositions,
            };
            sqlx::query(LOG)
                .bind(at)
                .bind(counts.leads)
                .bind(counts.attempts)
                .bind(counts.dispositions)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            counts
        });
        Ok(counts)
    }

    /// Erasure requests logged in `[from, to)` ms, oldest first, as
    /// `(at, counts)`.
    pub async fn erasures(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, ErasureCounts)>, StoreError> {
        const SQL: &str = "SELECT at, leads, attempts, dispositions FROM erasures
             WHERE at >= $1 AND at < $2 ORDER BY at, id";
        let rows: Vec<(i64, i64, i64, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(at, leads, attempts, dispositions)| {
                (
                    at,
                    ErasureCounts {
                        leads,
                        attempts,
                        dispositions,
                    },
                )
            })
            .collect())
    }
}
