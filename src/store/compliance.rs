//! Compliance records in the store: the log of registry imports, the
//! suppression list that erasure leaves (keyed hashes, no numbers), the
//! account's suppression key, and the do-not-call entries only a
//! deliberate, audited act may remove.

use sqlx::Row;

use super::{AuditEntry, Backend, Store, StoreError};

/// Do-not-call entries with this source came from a registry or list
/// import; any other source (a `dnc` disposition, an opt-out, an erasure)
/// is the person's own request and only [`Store::dnc_remove_deliberately`]
/// removes it.
pub const SOURCE_IMPORT: &str = "import";

/// Do-not-call entries with this source are a called party's key press
/// during the abandoned-call message ([`Store::opt_out_by_key`]).
pub const SOURCE_KEY_PRESS: &str = "key_press";

/// One registry import, as recorded in `dnd_imports`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DndImportRecord {
    /// When it ran (ms since the epoch).
    pub at: i64,
    /// Who ran it.
    pub actor: String,
    /// `national:GB`, `internal` or `campaign:NAME`.
    pub target: String,
    /// `full` or `delta`.
    pub kind: String,
    /// The file as given.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// When the data left the regulator (ms).
    pub loaded_at: i64,
    /// Entries read.
    pub entries: i64,
    /// Numbers added or changed.
    pub added: i64,
    /// Numbers removed.
    pub removed: i64,
    /// Lines refused.
    pub rejected: i64,
    /// Numbers listed afterwards.
    pub total: i64,
    /// A safety check was overridden with `--force`.
    pub forced: bool,
    /// The national registry's content digest after the import (see
    /// [`crate::compliance::dnd::NationalRegistry::digest`]); `None` for a
    /// list import, or one recorded before digests were kept.
    pub digest: Option<String>,
}

/// See [`Store::dnd_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DndVersion {
    /// The last registry import's id.
    pub imports: i64,
    /// Entries on the internal and campaign lists.
    pub lists: i64,
    /// The latest entry's time.
    pub lists_latest: i64,
    /// Erasure suppressions.
    pub suppressions: i64,
}

impl Store {
    /// Records a registry import.
    pub async fn record_dnd_import(&self, r: &DndImportRecord) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO dnd_imports (at, actor, target, kind, file, sha256,
                 loaded_at, entries, added, removed, rejected, total, forced, digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(r.at)
            .bind(&r.actor)
            .bind(&r.target)
            .bind(&r.kind)
            .bind(&r.file)
            .bind(&r.sha256)
            .bind(r.loaded_at)
            .bind(r.entries)
            .bind(r.added)
            .bind(r.removed)
            .bind(r.rejected)
            .bind(r.total)
            .bind(r.forced)
            .bind(r.digest.as_deref())
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// A stamp of the do-not-call data the store holds (imports recorded,
    /// list entries and the latest, suppressions): it changes when a
    /// registry is imported, a number is added to or removed from a list
    /// (a `dnc` disposition, an opt-out, an import, a deliberate removal)
    /// or a number is erased. A running service reloads on a change.
    pub async fn dnd_version(&self) -> Result<DndVersion, StoreError> {
        const SQL: &str = "SELECT
                 CAST((SELECT COALESCE(MAX(id), 0) FROM dnd_imports) AS BIGINT),
                 CAST((SELECT COUNT(*) FROM dnc_numbers) AS BIGINT),
                 CAST((SELECT COALESCE(MAX(added_at), 0) FROM dnc_numbers) AS BIGINT),
                 CAST((SELECT COUNT(*) FROM suppressions) AS BIGINT)";
        let (imports, lists, lists_latest, suppressions): (i64, i64, i64, i64) =
            with_pool!(self, pool => sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(DndVersion {
            imports,
            lists,
            lists_latest,
            suppressions,
        })
    }

    /// The latest recorded import of the national registry `target`
    /// (`national:GB`), if any: the registry every node of the cluster is to
    /// screen against.
    pub async fn latest_national_import(
        &self,
        target: &str,
    ) -> Result<Option<DndImportRecord>, StoreError> {
        const SQL: &str = "SELECT id FROM dnd_imports WHERE target = $1 ORDER BY id DESC LIMIT 1";
        let id: Option<i64> = with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(target)
            .fetch_optional(pool)
            .await?);
        let Some(id) = id else { return Ok(None) };
        Ok(self.dnd_imports_where(Some(id)).await?.pop())
    }

    /// Every recorded registry import, oldest first.
    pub async fn dnd_imports(&self) -> Result<Vec<DndImportRecord>, StoreError> {
        self.dnd_imports_where(None).await
    }

    /// The import with row id `id`, or every one.
    async fn dnd_imports_where(&self, id: Option<i64>) -> Result<Vec<DndImportRecord>, StoreError> {
        const SQL: &str = "SELECT at, actor, target, kind, file, sha256, loaded_at, entries,
                 added, removed, rejected, total, forced, digest FROM dnd_imports
             WHERE $1 IS NULL OR id = $1 ORDER BY at, id";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(DndImportRecord {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    target: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    file: r.try_get(4)?,
                    sha256: r.try_get(5)?,
                    loaded_at: r.try_get(6)?,
                    entries: r.try_get(7)?,
                    added: r.try_get(8)?,
                    removed: r.try_get(9)?,
                    rejected: r.try_get(10)?,
                    total: r.try_get(11)?,
                    forced: r.try_get(12)?,
                    digest: r.try_get(13)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The account's suppression key (32 bytes), made at random the first
    /// time it is asked for. Every node of a cluster reads the same one.
    pub async fn suppression_key(&self) -> Result<[u8; 32], StoreError> {
        const GET: &str = "SELECT value FROM settings WHERE name = 'suppression_key'";
        const PUT: &str = "INSERT INTO settings (name, value) VALUES ('suppression_key', $1)
             ON CONFLICT (name) DO NOTHING";
        let mut fresh = [0u8; 32];
        rand::RngExt::fill(&mut rand::rng(), &mut fresh[..]);
        let value: String = with_pool!(self, pool => {
            sqlx::query(PUT).bind(hex::encode(fresh)).execute(pool).await?;
            sqlx::query_scalar(GET).fetch_one(pool).await?
        });
        let mut key = [0u8; 32];
        match hex::decode(&value) {
            Ok(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
            _ => {
                return Err(StoreError::Corrupt {
                    what: "suppression key",
                    value: "(not shown)".into(),
                });
            }
        }
        Ok(key)
    }

    /// Erasures recorded before suppression entries existed left the
    /// person's number on a do-not-call list (source `erasure`) in plain
    /// text. Each becomes a suppression entry (its keyed hash, as an
    /// erasure makes now) and the number goes, in one transaction per
    /// number; a row whose number cannot be read stays (it still blocks).
    /// Run when the store opens; returns how many were turned.
    pub async fn hash_plaintext_erasures(&self) -> Result<u64, StoreError> {
        const FIND: &str = "SELECT DISTINCT phone FROM dnc_numbers WHERE source = 'erasure'";
        const SUPPRESS: &str = "INSERT INTO suppressions (hash, added_at, source)
             SELECT $1, MIN(added_at), 'erasure' FROM dnc_numbers
             WHERE source = 'erasure' AND phone = $2
             ON CONFLICT (hash) DO NOTHING";
        const FORGET: &str = "DELETE FROM dnc_numbers WHERE source = 'erasure' AND phone = $1";
        let phones: Vec<String> =
            with_pool!(self, pool => sqlx::query_scalar(FIND).fetch_all(pool).await?);
        if phones.is_empty() {
            return Ok(0);
        }
        let key = self.suppression_key().await?;
        let mut turned = 0;
        for phone in phones {
            let Some(digits) = phone.strip_prefix('+').and_then(|d| d.parse::<u64>().ok()) else {
                continue;
            };
            let hash = crate::compliance::suppression::hash_hex(&key, digits);
            with_pool!(self, pool => {
                let mut tx = pool.begin_write().await?;
                sqlx::query(SUPPRESS)
                    .bind(&hash)
                    .bind(&phone)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(FORGET).bind(&phone).execute(&mut *tx).await?;
                tx.commit().await?;
            });
            turned += 1;
        }
        tracing::info!(
            numbers = turned,
            "erased numbers kept in plain text by an older version were replaced by their keyed hashes"
        );
        Ok(turned)
    }

    /// Adds a suppression hash (hex); false when it was there already.
    pub async fn suppress(&self, hash: &str, at: i64, source: &str) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO suppressions (hash, added_at, source) VALUES ($1, $2, $3)
             ON CONFLICT (hash) DO NOTHING";
        Ok(with_pool!(self, pool => sqlx::query(SQL)
            .bind(hash)
            .bind(at)
            .bind(source)
            .execute(pool)
            .await?
            .rows_affected())
            > 0)
    }

    /// Every suppression hash (hex).
    pub async fn suppressions(&self) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT hash FROM suppressions";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL).fetch_all(pool).await?))
    }

    /// Where `phones` (E.164) are on a do-not-call list by a person's own
    /// request (any source but an import), with that source.
    pub async fn dnc_protected(
        &self,
        scope: &str,
        phones: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str =
            "SELECT source FROM dnc_numbers WHERE scope = $1 AND phone = $2 AND source <> $3";
        let mut out = Vec::new();
        for phone in phones {
            let source: Option<String> = with_pool!(self, pool => sqlx::query_scalar(SQL)
                .bind(scope)
                .bind(phone.as_str())
                .bind(SOURCE_IMPORT)
                .fetch_optional(pool)
                .await?);
            if let Some(s) = source {
                out.push((phone.clone(), s));
            }
        }
        Ok(out)
    }

    /// Removes one number from a do-not-call list whatever put it there,
    /// and, with `suppression`, that hash from the suppression list: the
    /// deliberate act that undoes an opt-out or an erasure, recorded in
    /// the audit log in the same transaction. Returns whether anything was
    /// removed (nothing is logged when nothing was).
    pub async fn dnc_remove_deliberately(
        &self,
        scope: &str,
        phone: &str,
        suppression: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        const DNC: &str = "DELETE FROM dnc_numbers WHERE scope = $1 AND phone = $2";
        const SUPPRESSION: &str = "DELETE FROM suppressions WHERE hash = $1";
        let removed = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut n = sqlx::query(DNC).bind(scope).bind(phone).execute(&mut *tx).await?.rows_affected();
            if let Some(h) = suppression {
                n += sqlx::query(SUPPRESSION).bind(h).execute(&mut *tx).await?.rows_affected();
            }
            if n > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            n > 0
        });
        Ok(removed)
    }

    /// When a call to `phone` (E.164) was last abandoned, in any campaign,
    /// after `since` (ms): from the abandonment ledger, so an abandon
    /// counts whatever its attempt's final status (a crash-recovered call
    /// keeps its ledger row).
    pub async fn last_abandon_of(
        &self,
        phone: &str,
        since: i64,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT MAX(l.at) FROM abandon_ledger l
             JOIN call_attempts a ON a.id = l.attempt_id
             WHERE a.phone = $1 AND l.kind = 'abandon' AND l.at >= $2";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(phone)
            .bind(since)
            .fetch_one(pool)
            .await?))
    }

    /// When a call to `phone` (E.164) last ended on an answering machine,
    /// in any campaign, after `since` (ms): the UK's rule after a machine
    /// is per number, like the recall rule after an abandon.
    pub async fn last_machine_of(
        &self,
        phone: &str,
        since: i64,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT MAX(ended_at) FROM call_attempts
             WHERE phone = $1 AND outcome = 'machine' AND ended_at >= $2";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(phone)
            .bind(since)
            .fetch_one(pool)
            .await?))
    }
}
