//! API token rows (`api_tokens`). Only hashes are stored; making tokens,
//! hashing and roles belong to `crate::auth`.

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// A stored API token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    /// Row id, used to revoke it.
    pub id: i64,
    /// `agent`, `supervisor` or `admin`.
    pub role: String,
    /// The agent an agent token belongs to.
    pub agent_id: Option<String>,
    /// Free text saying whose or what the token is.
    pub label: Option<String>,
    /// Created, ms since epoch.
    pub created_at: i64,
    /// Revoked, ms; `None` while valid.
    pub revoked_at: Option<i64>,
}

/// Reads a [`TokenRow`] from a row of either database selected as in
/// [`LIST`].
macro_rules! token_row {
    ($r:expr) => {
        TokenRow {
            id: $r.try_get(0)?,
            role: $r.try_get(1)?,
            agent_id: $r.try_get(2)?,
            label: $r.try_get(3)?,
            created_at: $r.try_get(4)?,
            revoked_at: $r.try_get(5)?,
        }
    };
}

const BY_HASH: &str = "SELECT id, role, agent_id, label, created_at, revoked_at
     FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL";
const LIST: &str =
    "SELECT id, role, agent_id, label, created_at, revoked_at FROM api_tokens ORDER BY id";

impl Store {
    /// Stores a token's hash with its role; returns the row id. The caller
    /// has checked that `agent_id` is given for, and only for, agent tokens
    /// (the table refuses anything else as well).
    pub async fn token_insert(
        &self,
        token_hash: &str,
        role: &str,
        agent_id: Option<&str>,
        label: Option<&str>,
        now: i64,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO api_tokens (token_hash, role, agent_id, label, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(token_hash)
            .bind(role)
            .bind(agent_id)
            .bind(label)
            .bind(now)
            .fetch_one(pool)
            .await?))
    }

    /// The token row with this hash, unless revoked.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = with_pool!(self, pool => match sqlx::query(BY_HASH)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        {
            Some(r) => Some(token_row!(r)),
            None => None,
        });
        Ok(row)
    }

    /// Whether token `id` exists and is not revoked (open event streams
    /// ask again and again).
    pub async fn token_active(&self, id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM api_tokens WHERE id = $1 AND revoked_at IS NULL";
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(id)
            .fetch_one(pool)
            .await?);
        Ok(n > 0)
    }

    /// Revokes token `id` at `now`. Returns false when there is no such
    /// token or it was already revoked (the first revocation time stays).
    pub async fn token_revoke(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
        let n = with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Every token, revoked ones too, oldest first.
    pub async fn token_list(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query(LIST)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok(token_row!(r)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }
}
