//! SIP legs in flight, per node, so that a node restarting after a crash
//! can end the legs it left up (see [`crate::sip::uac::LegRecord`]): a
//! leg's row is written before its INVITE goes out, again when it is
//! answered, and removed when it ends.

use sqlx::Row;

use super::{Backend, Store, StoreError};
use crate::sip::uac::LegRecord;

/// Which side of a call a leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegKind {
    /// The customer's leg, through the campaign's provider.
    Customer,
    /// An agent's phone leg.
    Agent,
}

impl LegKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            LegKind::Customer => "customer",
            LegKind::Agent => "agent",
        }
    }
}

/// A leg as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLeg {
    /// The campaign.
    pub campaign_id: i64,
    /// Customer or agent.
    pub kind: LegKind,
    /// A customer leg's attempt.
    pub attempt_id: Option<i64>,
    /// An agent leg's agent.
    pub agent_id: Option<String>,
    /// Its identity.
    pub record: LegRecord,
}

/// Inserts a leg: call_id, node, campaign_id, kind, attempt_id, agent_id,
/// record, created_at.
pub(super) const LEG_INSERT: &str = "INSERT INTO sip_legs
     (call_id, node, campaign_id, kind, attempt_id, agent_id, record, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(super) fn encode(rec: &LegRecord) -> Result<String, StoreError> {
    serde_json::to_string(rec).map_err(|e| StoreError::Encode {
        what: "SIP leg",
        message: e.to_string(),
    })
}

impl Store {
    /// Writes a leg `node` is about to place (before its INVITE).
    pub async fn leg_open(&self, node: &str, leg: &StoredLeg, now: i64) -> Result<(), StoreError> {
        const SQL: &str = LEG_INSERT;
        let record = encode(&leg.record)?;
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(leg.record.call_id.as_str())
            .bind(node)
            .bind(leg.campaign_id)
            .bind(leg.kind.as_str())
            .bind(leg.attempt_id)
            .bind(leg.agent_id.as_deref())
            .bind(record.as_str())
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Rewrites a leg's record (its dialog, once answered).
    pub async fn leg_update(&self, rec: &LegRecord) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sip_legs SET record = $2 WHERE call_id = $1";
        let record = encode(rec)?;
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(rec.call_id.as_str())
            .bind(record.as_str())
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Forgets a leg that ended.
    pub async fn leg_closed(&self, call_id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sip_legs WHERE call_id = $1";
        with_pool!(self, pool => sqlx::query(SQL).bind(call_id).execute(pool).await.map(|_| ())?);
        Ok(())
    }

    /// The legs `node` left, oldest first.
    pub async fn legs_of_node(&self, node: &str) -> Result<Vec<StoredLeg>, StoreError> {
        const SQL: &str = "SELECT campaign_id, kind, attempt_id, agent_id, record
             FROM sip_legs WHERE node = $1 ORDER BY created_at, call_id";
        type Row = (i64, String, Option<i64>, Option<String>, String);
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query(SQL)
            .bind(node)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        rows.into_iter()
            .map(|(campaign_id, kind, attempt_id, agent_id, record)| {
                let kind = match kind.as_str() {
                    "customer" => LegKind::Customer,
                    "agent" => LegKind::Agent,
                    _ => {
                        return Err(StoreError::Corrupt {
                            what: "SIP leg kind",
                            value: kind,
                        });
                    }
                };
                let record = serde_json::from_str(&record).map_err(|_| StoreError::Corrupt {
                    what: "SIP leg record",
                    value: record.chars().take(80).collect(),
                })?;
                Ok(StoredLeg {
                    campaign_id,
                    kind,
                    attempt_id,
                    agent_id,
                    record,
                })
            })
            .collect()
    }
}
