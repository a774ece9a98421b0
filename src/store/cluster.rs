//! What the nodes running one campaign share through the store: their
//! heartbeats (how many share the campaign's abandonment allowance) and
//! each other's ledger rows (so every node's ledger is the campaign's, not
//! its own).

use sqlx::Row;

use super::{Backend, LedgerKind, Store, StoreError};

/// A ledger row another node wrote, as a cursor reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRow {
    /// Row id (the cursor).
    pub id: i64,
    /// When, ms.
    pub at: i64,
    /// What.
    pub kind: LedgerKind,
    /// Written by the reading node itself.
    pub own: bool,
}

/// How long after a ledger row's id is taken its insert may still commit
/// and be read: ids come from a sequence when the row is inserted, so on
/// PostgreSQL a row can become visible after rows with higher ids (its
/// transaction commits later). A reader that only moved past the highest
/// id it saw would never read it: an abandon missing from that node's
/// ledger. [`LedgerFeed`] reads again the ids of this last stretch.
pub const LEDGER_COMMIT_LAG_MS: i64 = 30_000;

/// Reads a campaign's ledger rows in order of their ids, each once, even
/// when they commit out of order (see [`LEDGER_COMMIT_LAG_MS`]). Sans-IO:
/// the caller reads [`Store::ledger_rows_after`] from [`LedgerFeed::floor`]
/// and hands the rows to [`LedgerFeed::take`] with the time it read them.
/// A row that commits more than the lag after a higher one was read is
/// still missed; an insert commits within milliseconds.
#[derive(Debug, Clone)]
pub struct LedgerFeed {
    /// Every row up to this id was taken (or will never be).
    floor: i64,
    /// Rows above the floor taken already.
    taken: std::collections::BTreeSet<i64>,
    /// The highest id read by each read, when, oldest first: the floor
    /// moves up to what was read the lag ago.
    reads: std::collections::VecDeque<(i64, i64)>,
}

/// How many ids below the last one a resumed feed reads again (see
/// [`LedgerFeed::resuming`]): rows inserted before these many others and
/// still not committed are missed, as a row past the lag is.
pub const LEDGER_RESUME_IDS: i64 = 5_000;

impl LedgerFeed {
    /// A feed that has taken every row up to `last_id` (read when the
    /// ledger was rebuilt).
    pub fn new(last_id: i64) -> LedgerFeed {
        LedgerFeed {
            floor: last_id,
            taken: std::collections::BTreeSet::new(),
            reads: std::collections::VecDeque::new(),
        }
    }

    /// A feed for a ledger rebuilt at `now_ms` from the rows up to
    /// `last_id`, `rebuilt` being the ids of those rows above
    /// `last_id - LEDGER_RESUME_IDS` (read before the rebuild). A row
    /// below `last_id` whose insert had not committed at the rebuild is not
    /// among them, and is taken when it shows, within the lag, as any row
    /// committed out of order.
    pub fn resuming(last_id: i64, rebuilt: Vec<i64>, now_ms: i64) -> LedgerFeed {
        let floor = last_id.saturating_sub(LEDGER_RESUME_IDS).max(0);
        let taken = rebuilt.into_iter().filter(|id| *id > floor).collect();
        LedgerFeed {
            floor,
            taken,
            reads: std::collections::VecDeque::from([(now_ms, last_id)]),
        }
    }

    /// Read the rows after this id.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// The rows (read after [`LedgerFeed::floor`] at `now_ms`) not taken
    /// before, in id order.
    pub fn take(&mut self, rows: Vec<LedgerRow>, now_ms: i64) -> Vec<LedgerRow> {
        let new: Vec<LedgerRow> = rows
            .into_iter()
            .filter(|r| r.id > self.floor && self.taken.insert(r.id))
            .collect();
        let high = self.taken.last().copied().unwrap_or(self.floor);
        self.reads.push_back((now_ms, high));
        while let Some(&(at, id)) = self.reads.front() {
            if at > now_ms.saturating_sub(LEDGER_COMMIT_LAG_MS) {
                break;
            }
            self.floor = self.floor.max(id);
            self.reads.pop_front();
        }
        let floor = self.floor;
        self.taken.retain(|id| *id > floor);
        new
    }
}

impl Store {
    /// The campaign's last ledger row id (0 when none).
    pub async fn ledger_last_id(&self, campaign_id: i64) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM abandon_ledger WHERE campaign_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .fetch_one(pool)
            .await?))
    }

    /// The ids of the campaign's ledger rows in `(after_id, upto_id]`.
    pub async fn ledger_ids_between(
        &self,
        campaign_id: i64,
        after_id: i64,
        upto_id: i64,
    ) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM abandon_ledger
             WHERE campaign_id = $1 AND id > $2 AND id <= $3 ORDER BY id";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .bind(after_id)
            .bind(upto_id)
            .fetch_all(pool)
            .await?))
    }

    /// The campaign's ledger rows after `after_id`, in id order, each
    /// marked whether `node` wrote it (by its attempt's node; a row with no
    /// attempt counts as another's).
    pub async fn ledger_rows_after(
        &self,
        campaign_id: i64,
        after_id: i64,
        node: &str,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        const SQL: &str = "SELECT l.id, l.at, l.kind,
                 CASE WHEN a.node = $3 THEN 1 ELSE 0 END
             FROM abandon_ledger l LEFT JOIN call_attempts a ON a.id = l.attempt_id
             WHERE l.campaign_id = $1 AND l.id > $2 ORDER BY l.id";
        let rows = with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(after_id)
            .bind(node)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<(i64, i64, String, i32), sqlx::Error> {
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        rows.into_iter()
            .map(|(id, at, kind, own)| {
                let kind = LedgerKind::parse(&kind).ok_or(StoreError::Corrupt {
                    what: "ledger kind",
                    value: kind,
                })?;
                Ok(LedgerRow {
                    id,
                    at,
                    kind,
                    own: own == 1,
                })
            })
            .collect()
    }

    /// Records that `node` runs the campaign at `now`.
    pub async fn campaign_heartbeat(
        &self,
        campaign_id: i64,
        node: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO campaign_nodes (campaign_id, node, heartbeat_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (campaign_id, node) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(node)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// When `node` last beat for the campaign (`None`: it stopped cleanly,
    /// or never ran it). Recovery closes what a crash left at this time,
    /// so the downtime is not counted as talk or work.
    pub async fn campaign_node_heartbeat(
        &self,
        campaign_id: i64,
        node: &str,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str =
            "SELECT heartbeat_at FROM campaign_nodes WHERE campaign_id = $1 AND node = $2";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .bind(node)
            .fetch_optional(pool)
            .await?))
    }

    /// Takes `node` out of the campaign's nodes (a clean stop).
    pub async fn campaign_leave(&self, campaign_id: i64, node: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM campaign_nodes WHERE campaign_id = $1 AND node = $2";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(node)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// How many nodes beat for the campaign at or after `since`.
    pub async fn campaign_nodes_active(
        &self,
        campaign_id: i64,
        since: i64,
    ) -> Result<u32, StoreError> {
        const SQL: &str =
            "SELECT COUNT(*) FROM campaign_nodes WHERE campaign_id = $1 AND heartbeat_at >= $2";
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .bind(since)
            .fetch_one(pool)
            .await?);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// `node`'s last sign of life in the store: its latest heartbeat for
    /// any campaign or any agent session it holds (`None`: none on record).
    pub async fn node_last_beat(&self, node: &str) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT MAX(b) FROM (
                 SELECT MAX(heartbeat_at) AS b FROM campaign_nodes WHERE node = $1
                 UNION ALL
                 SELECT MAX(heartbeat_at) AS b FROM agent_sessions WHERE node = $1) beats";
        Ok(
            with_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>(SQL)
            .bind(node)
            .fetch_one(pool)
            .await?),
        )
    }

    /// The node holding `agent`'s session lease and its last heartbeat.
    pub async fn session_holder(&self, agent: &str) -> Result<Option<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT node, heartbeat_at FROM agent_sessions WHERE agent_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(agent)
            .fetch_optional(pool)
            .await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> LedgerRow {
        LedgerRow {
            id,
            at: id * 10,
            kind: LedgerKind::Abandon,
            own: false,
        }
    }

    fn ids(rows: &[LedgerRow]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    /// Row 12 commits after 13 was read: it is still taken, once; reads
    /// long past the lag start above what was read then.
    #[test]
    fn a_row_committed_after_a_higher_one_is_taken_once() {
        let mut feed = LedgerFeed::new(10);
        assert_eq!(ids(&feed.take(vec![row(11), row(13)], 1_000)), [11, 13]);
        assert_eq!(feed.floor(), 10, "12 may still commit");
        assert_eq!(
            ids(&feed.take(vec![row(11), row(13)], 2_000)),
            Vec::<i64>::new()
        );
        assert_eq!(
            ids(&feed.take(vec![row(11), row(12), row(13), row(14)], 3_000)),
            [12, 14]
        );
        // A read the lag after the first: the floor passes 13, what the
        // first read had seen.
        let later = 1_000 + LEDGER_COMMIT_LAG_MS;
        assert!(feed.take(vec![row(12), row(13), row(14)], later).is_empty());
        assert_eq!(feed.floor(), 13);
        assert!(feed.take(vec![row(14)], later + 1_000).is_empty());
        assert_eq!(ids(&feed.take(vec![row(14), row(15)], later + 2_000)), [15]);
        // A row at or below the floor is never taken again.
        assert!(feed.take(vec![row(9), row(13)], later + 3_000).is_empty());
    }

    /// A node that rebuilt its ledger from rows 1-20 while row 18's insert
    /// had not committed: 18 is taken when it shows, the rebuilt rows are
    /// not taken again, and the floor reaches 20 the lag after the rebuild.
    #[test]
    fn a_row_uncommitted_at_the_rebuild_is_taken_when_it_shows() {
        let rebuilt: Vec<i64> = (1..=20).filter(|id| *id != 18).collect();
        let mut feed = LedgerFeed::resuming(20, rebuilt, 1_000);
        assert_eq!(feed.floor(), 0);
        let all: Vec<LedgerRow> = (1..=21).map(row).collect();
        assert_eq!(ids(&feed.take(all.clone(), 2_000)), [18, 21]);
        assert!(feed.take(all.clone(), 3_000).is_empty());
        let later = 1_000 + LEDGER_COMMIT_LAG_MS;
        assert!(feed.take(all[19..].to_vec(), later).is_empty());
        assert_eq!(feed.floor(), 20);
        // Far below the last id: the floor starts LEDGER_RESUME_IDS under it.
        let feed = LedgerFeed::resuming(LEDGER_RESUME_IDS + 50, vec![], 0);
        assert_eq!(feed.floor(), 50);
    }
}
