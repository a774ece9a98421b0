//! Lead claims for the live service's hopper, attempts tagged with the node
//! that placed them, and crash recovery.
//!
//! A claim moves leads to status `claimed` with the node's name and the
//! time, in one statement. On PostgreSQL the candidate rows are locked with
//! `FOR UPDATE SKIP LOCKED`, so two nodes claiming from one campaign at the
//! same instant get disjoint leads; SQLite has a single writer, so the same
//! `UPDATE ... RETURNING` is already exclusive.

use sqlx::Row;

use super::{Backend, BeginWrite, Lead, NewAttempt, Store, StoreError};
use crate::clock::Millis;
use crate::outcome::Outcome;
use crate::policy::{LeadRecord, PastAttempt};

/// The statement that enters in the ledger, as abandons, the open
/// attempts (of the nodes `$nodes` selects, in campaign `$1`) whose person
/// answered (a `human_answer` row) and was never put through (no
/// `connected_at`), each once: a crash or a dead node must not leave an
/// abandon out of the campaign's window (fail closed). The abandon is
/// dated at the answer.
macro_rules! unbridged_answers {
    ($nodes:literal) => {
        concat!(
            "INSERT INTO abandon_ledger (campaign_id, attempt_id, kind, at)
             SELECT a.campaign_id, a.id, 'abandon', a.answered_at FROM call_attempts a
             WHERE a.campaign_id = $1 AND ",
            $nodes,
            " AND a.outcome IS NULL
               AND a.answered_at IS NOT NULL AND a.connected_at IS NULL
               AND EXISTS (SELECT 1 FROM abandon_ledger l
                           WHERE l.attempt_id = a.id AND l.kind = 'human_answer')
               AND NOT EXISTS (SELECT 1 FROM abandon_ledger l
                               WHERE l.attempt_id = a.id AND l.kind = 'abandon')"
        )
    };
}

/// The key campaign `campaign_id`'s [`unbridged_answers!`] statements take
/// turns on (see [`super::BeginWrite::begin_write_in_turn`]): the campaign's id
/// under a prefix of this statement's own.
fn unbridged_key(campaign_id: i64) -> i64 {
    const PREFIX: i64 = 0x5542_0000_0000_0000; // "UB"
    PREFIX | (campaign_id & 0x0000_ffff_ffff_ffff)
}

/// A lead taken into a node's hopper, with its past attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedLead {
    /// The lead (status `claimed`).
    pub lead: Lead,
    /// Its attempts so far, oldest first.
    pub history: Vec<PastAttempt>,
    /// The last abandoned call to its number in any campaign of the
    /// account, from the ledger (see [`Store::last_abandon_of`]).
    pub last_abandon: Option<Millis>,
    /// The last call to its number in any campaign of the account that
    /// ended on an answering machine (see [`Store::last_machine_of`]).
    pub last_machine: Option<Millis>,
    /// A callback kept for the agent who booked it: that agent, and
    /// until when (ms since the epoch) no other agent may take it.
    pub kept_for: Option<(String, i64)>,
}

/// How far back a claim looks for abandoned calls to the number in other
/// campaigns: longer than any recall period (the UK's is 72 hours).
pub const RECALL_LOOKBACK_MS: i64 = 7 * 24 * 3_600_000;

impl ClaimedLead {
    /// The lead as compliance reads it at `now` (see
    /// [`Lead::record`]), with the account's last abandon of the number.
    pub fn record(&self, now: Millis) -> Result<LeadRecord, crate::phone::PhoneError> {
        let mut r = self.lead.record(self.history.iter().copied(), now)?;
        r.last_abandon_at = r.last_abandon_at.max(self.last_abandon.map(Millis::utc));
        r.last_machine_at = r.last_machine_at.max(self.last_machine.map(Millis::utc));
        Ok(r)
    }
}

const CANDIDATES: &str = "SELECT id FROM leads
     WHERE campaign_id = $1
       AND ((status IN ('new', 'retry') AND (next_attempt_at IS NULL OR next_attempt_at <= $3))
            OR (status = 'claimed' AND claimed_at < $4))
       AND (last_outcome = 'callback'
            OR NOT EXISTS (SELECT 1 FROM campaign_lists cl WHERE cl.campaign_id = $1)
            OR list IN (SELECT cl.list FROM campaign_lists cl WHERE cl.campaign_id = $1))
       AND (callback_agent IS NULL OR last_outcome IS NULL OR last_outcome <> 'callback'
            OR COALESCE(next_attempt_at, 0) + $6 <= $3
            OR EXISTS (SELECT 1 FROM agent_sessions s JOIN campaigns c ON c.name = s.campaign
                       WHERE s.agent_id = leads.callback_agent AND s.node = $2
                         AND c.id = $1))
     ORDER BY (CASE WHEN last_outcome = 'callback' THEN 0 ELSE 1 END),
         priority DESC, COALESCE(next_attempt_at, 0), id
     LIMIT $5";

const CLAIM_RETURNING: &str =
    " RETURNING id, campaign_id, phone, country, timezones, fields, status,
     priority, attempts, next_attempt_at, last_outcome, callback_agent";

macro_rules! lead_from_row {
    () => {
        |r| -> Result<Lead, sqlx::Error> {
            Ok(Lead {
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
            })
        }
    };
}

impl Store {
    /// Claims up to `n` leads of the campaign for `node`: due callbacks
    /// first (a time agreed with the customer), then highest priority and
    /// earliest next attempt: leads that are new or due for a
    /// retry at `now`, and leads whose claim is older than `lease_ms` (their
    /// node died). A callback an agent kept for themself is claimed, until
    /// `callback_grace_ms` after its time, only by the node holding that
    /// agent's session on this campaign (and marked
    /// [`ClaimedLead::kept_for`]); then by anyone. Returns them in
    /// dialling order with their recent history.
    pub async fn claim_leads(
        &self,
        campaign_id: i64,
        node: &str,
        n: u32,
        now: i64,
        lease_ms: i64,
        callback_grace_ms: i64,
    ) -> Result<Vec<ClaimedLead>, StoreError> {
        let stale = now.saturating_sub(lease_ms);
        let _held = self.hold_time();
        let leads: Vec<Lead> = match &*self.backend {
            Backend::Postgres(pool) => {
                let sql = format!(
                    "UPDATE leads SET status = 'claimed', claim_owner = $2, claimed_at = $3
                     WHERE id IN ({CANDIDATES} FOR UPDATE SKIP LOCKED){CLAIM_RETURNING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(node)
                    .bind(now)
                    .bind(stale)
                    .bind(i64::from(n))
                    .bind(callback_grace_ms)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(lead_from_row!())
                    .collect::<Result<_, _>>()?
            }
            Backend::Sqlite(pool) => {
                let sql = format!(
                    "UPDATE leads SET status = 'claimed', claim_owner = $2, claimed_at = $3
                     WHERE id IN ({CANDIDATES}){CLAIM_RETURNING}"
                );
                let mut tx = pool.begin_write().await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(node)
                    .bind(now)
                    .bind(stale)
                    .bind(i64::from(n))
                    .bind(callback_grace_ms)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(lead_from_row!())
                    .collect::<Result<_, _>>()?;
                tx.commit().await?;
                rows
            }
        };
        // RETURNING gives no order.
        // Due callbacks first: a time agreed with the customer.
        let claimed: Vec<i64> = leads.iter().map(|l| l.id).collect();
        let details = self.claim_details(leads, now, callback_grace_ms).await;
        if details.is_err() {
            // The claims are committed but the caller gets none of them:
            // given back now, or the node's heartbeat would keep them from
            // every node for as long as it runs.
            for id in claimed {
                if let Err(e) = self.release_lead(id, node).await {
                    tracing::warn!(lead = id, error = %e, "giving back a claim failed");
                }
            }
        }
        details
    }

    /// What a node needs of each lead it claimed, in dialling order: its
    /// past attempts and the number's last abandon (the recall rule).
    async fn claim_details(
        &self,
        mut leads: Vec<Lead>,
        now: i64,
        callback_grace_ms: i64,
    ) -> Result<Vec<ClaimedLead>, StoreError> {
        leads.sort_by_key(|l| {
            (
                l.last_outcome.as_deref() != Some("callback"),
                -l.priority,
                l.next_attempt_at.unwrap_or(0),
                l.id,
            )
        });
        const HISTORY: &str = "SELECT started_at, ended_at, outcome FROM call_attempts
             WHERE lead_id = $1 ORDER BY started_at";
        let mut out = Vec::with_capacity(leads.len());
        for lead in leads {
            // Abandons are per person: another campaign's abandoned call
            // to the number counts for the recall rule, whatever its
            // attempt's final status.
            let last_abandon = self
                .last_abandon_of(&lead.phone, now.saturating_sub(RECALL_LOOKBACK_MS))
                .await?
                .map(Millis);
            let last_machine = self
                .last_machine_of(&lead.phone, now.saturating_sub(RECALL_LOOKBACK_MS))
                .await?
                .map(Millis);
            let kept_for = match (&lead.callback_agent, lead.last_outcome.as_deref()) {
                (Some(agent), Some("callback")) => {
                    let until = lead
                        .next_attempt_at
                        .unwrap_or(0)
                        .saturating_add(callback_grace_ms);
                    (until > now).then(|| (agent.clone(), until))
                }
                _ => None,
            };
            let mut c = ClaimedLead {
                lead,
                history: Vec::new(),
                last_abandon,
                last_machine,
                kept_for,
            };
            if c.lead.attempts > 0 {
                let rows: Vec<(i64, Option<i64>, Option<String>)> = with_pool!(self, pool => sqlx::query(HISTORY)
                    .bind(c.lead.id)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?);
                c.history = rows
                    .into_iter()
                    .map(|(started, ended, outcome)| PastAttempt {
                        started_at: Millis(started),
                        ended_at: ended.map(Millis),
                        outcome: outcome.as_deref().and_then(Outcome::from_code),
                    })
                    .collect();
            }
            out.push(c);
        }
        Ok(out)
    }

    /// Gives back one claimed lead that was not dialled (its attempt could
    /// not be written), so that it need not wait for the claim's lease.
    /// Only `node`'s own claim is given back: one that lapsed and was
    /// taken by another node stays with that node. Whether it was
    /// `node`'s to give back.
    pub async fn release_lead(&self, lead_id: i64, node: &str) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE leads
             SET status = CASE WHEN attempts = 0 THEN 'new' ELSE 'retry' END,
                 claim_owner = NULL, claimed_at = NULL
             WHERE id = $1 AND status = 'claimed' AND claim_owner = $2";
        Ok(with_pool!(self, pool => sqlx::query(SQL)
            .bind(lead_id)
            .bind(node)
            .execute(pool)
            .await?
            .rows_affected())
            > 0)
    }

    /// Gives back the campaign's leads claimed by `node` and not dialled
    /// (shutdown, or a restart under the same name). Returns how many.
    pub async fn release_claims(&self, campaign_id: i64, node: &str) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE leads
             SET status = CASE WHEN attempts = 0 THEN 'new' ELSE 'retry' END,
                 claim_owner = NULL, claimed_at = NULL
             WHERE campaign_id = $1 AND status = 'claimed' AND claim_owner = $2";
        Ok(with_pool!(self, pool => sqlx::query(SQL)
            .bind(campaign_id)
            .bind(node)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// A claimed lead that compliance refused just before its dial: back to
    /// `retry` at `next_at`, or `refused` when waiting cannot help, with the
    /// reason codes. Only while `node` still holds the claim: a lead
    /// another node took meanwhile is that node's to judge. Whether it was
    /// `node`'s.
    pub async fn refuse_lead(
        &self,
        lead_id: i64,
        node: &str,
        next_at: Option<i64>,
        reasons: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE leads SET status = $2, next_attempt_at = $3, refused_reason = $4,
                 claim_owner = NULL, claimed_at = NULL
             WHERE id = $1 AND status = 'claimed' AND claim_owner = $5";
        let status = if next_at.is_some() {
            "retry"
        } else {
            "refused"
        };
        Ok(with_pool!(self, pool => sqlx::query(SQL)
            .bind(lead_id)
            .bind(status)
            .bind(next_at)
            .bind(reasons)
            .bind(node)
            .execute(pool)
            .await?
            .rows_affected()
            > 0))
    }

    /// As [`Store::start_attempt`], tagging the attempt with the node that
    /// places it and writing its SIP leg (see [`Store::leg_open`]) in the
    /// same transaction. Written before the INVITE goes out. The lead must
    /// still be claimed by `node` ([`Store::claim_leads`]): otherwise
    /// [`StoreError::ClaimLost`] and nothing is written.
    pub async fn start_attempt_on(
        &self,
        a: &NewAttempt,
        node: &str,
        leg: Option<&crate::sip::uac::LegRecord>,
    ) -> Result<i64, StoreError> {
        // Only a lead `node` still holds: after a pause longer than the
        // claim's lease (a node cut off from the store, then back),
        // another node may have taken it, and both would call the person.
        const BUMP: &str = "UPDATE leads SET attempts = attempts + 1, status = 'dialling',
                 refused_reason = NULL
             WHERE id = $1 AND campaign_id = $2 AND status = 'claimed' AND claim_owner = $3
             RETURNING attempts";
        const EXISTS: &str = "SELECT COUNT(*) FROM leads WHERE id = $1 AND campaign_id = $2";
        const INSERT: &str =
            "INSERT INTO call_attempts (campaign_id, lead_id, attempt_no, phone, started_at, node)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        let id = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let attempt_no: Option<i64> = sqlx::query_scalar(BUMP)
                .bind(a.lead_id)
                .bind(a.campaign_id)
                .bind(node)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(attempt_no) = attempt_no else {
                let n: i64 = sqlx::query_scalar(EXISTS)
                    .bind(a.lead_id)
                    .bind(a.campaign_id)
                    .fetch_one(&mut *tx)
                    .await?;
                return Err(if n == 0 {
                    StoreError::NotFound { what: "lead", id: a.lead_id }
                } else {
                    StoreError::ClaimLost { lead: a.lead_id, node: node.to_owned() }
                });
            };
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(a.campaign_id)
                .bind(a.lead_id)
                .bind(attempt_no)
                .bind(a.phone.as_str())
                .bind(a.started_at)
                .bind(node)
                .fetch_one(&mut *tx)
                .await?;
            if let Some(rec) = leg {
                sqlx::query(super::legs::LEG_INSERT)
                    .bind(rec.call_id.as_str())
                    .bind(node)
                    .bind(a.campaign_id)
                    .bind(super::legs::LegKind::Customer.as_str())
                    .bind(id)
                    .bind(None::<&str>)
                    .bind(super::legs::encode(rec)?)
                    .bind(a.started_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Crash recovery for `node` in a campaign: its attempts still in
    /// flight end as `interrupted` at `now` (a human answer never bridged
    /// also enters the ledger as an abandon), their leads go back to `retry`
    /// no earlier than `retry_at` (or to `done` where the person had been
    /// put through to an agent), and its unused claims are released.
    /// Returns how many attempts were closed.
    pub async fn recover_node(
        &self,
        campaign_id: i64,
        node: &str,
        now: i64,
        retry_at: i64,
    ) -> Result<u64, StoreError> {
        const ATTEMPTS: &str = "UPDATE call_attempts SET outcome = 'interrupted',
                 ended_at = CASE WHEN started_at > $3 THEN started_at ELSE $3 END
             WHERE campaign_id = $1 AND node = $2 AND outcome IS NULL
             RETURNING lead_id, connected_at";
        const LEAD: &str = "UPDATE leads SET status = 'retry', next_attempt_at = $2,
                 last_outcome = 'interrupted', claim_owner = NULL, claimed_at = NULL
             WHERE id = $1 AND status IN ('dialling', 'claimed')";
        // A person already put through to an agent has been reached: the
        // lead is done, as after any connected call (`policy::after_attempt`),
        // crash or not; only a disposition the agent still records (a
        // callback, an opt-out) changes it after this.
        const LEAD_REACHED: &str = "UPDATE leads SET status = 'done', next_attempt_at = NULL,
                 last_outcome = 'interrupted', claim_owner = NULL, claimed_at = NULL
             WHERE id = $1 AND status IN ('dialling', 'claimed')";
        // A person who answered and was never put through to an agent was
        // abandoned, crash or not: the ledger counts it (fail closed).
        const ABANDONS: &str = unbridged_answers!("a.node = $2");
        let n = with_pool!(self, pool => {
            let mut tx = pool.begin_write_in_turn(unbridged_key(campaign_id)).await?;
            sqlx::query(ABANDONS)
                .bind(campaign_id)
                .bind(node)
                .execute(&mut *tx)
                .await?;
            let leads: Vec<(Option<i64>, Option<i64>)> = sqlx::query_as(ATTEMPTS)
                .bind(campaign_id)
                .bind(node)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            for (lead, connected_at) in &leads {
                let Some(lead) = lead else { continue };
                if connected_at.is_some() {
                    sqlx::query(LEAD_REACHED).bind(*lead).execute(&mut *tx).await?;
                } else {
                    sqlx::query(LEAD).bind(*lead).bind(retry_at).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            leads.len() as u64
        });
        self.release_claims(campaign_id, node).await?;
        Ok(n)
    }

    /// What [`Store::recover_node`] does for the ledger, done by a live
    /// node for the campaign's nodes that are gone: a node other than
    /// `node` that has not beaten for the campaign since `live_since` (ms;
    /// dead, or cut off from the store, or left with calls open) may
    /// never come back to run its recovery, and until then a person its
    /// call left unbridged is missing from every node's ledger. Each such
    /// answer enters the ledger as an abandon at its answer time, once
    /// (the rows reach every node through the cluster sync). Fail closed:
    /// a node merely cut off that does put the call through later leaves
    /// an abandon too many, never one too few. Only the ledger is touched:
    /// the gone node's attempts and leads stay as they are for its own
    /// recovery, as a node cut off may still be on the call. Returns how
    /// many abandons were entered.
    pub async fn ledger_take_over_lapsed(
        &self,
        campaign_id: i64,
        node: &str,
        live_since: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = unbridged_answers!(
            "a.node <> $2 AND NOT EXISTS (SELECT 1 FROM campaign_nodes n
                 WHERE n.campaign_id = a.campaign_id AND n.node = a.node
                   AND n.heartbeat_at >= $3)"
        );
        // Every live node runs this: they take turns (and with a node's
        // own recovery), so that each answer is entered once.
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write_in_turn(unbridged_key(campaign_id)).await?;
            let n = sqlx::query(SQL)
                .bind(campaign_id)
                .bind(node)
                .bind(live_since)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        }))
    }

    /// Agents with an open state interval in the campaign (to close after a
    /// crash with [`Store::agent_state_end_all`]).
    pub async fn agents_with_open_state(
        &self,
        campaign_id: i64,
    ) -> Result<Vec<String>, StoreError> {
        const SQL: &str =
            "SELECT agent_id FROM agent_states WHERE campaign_id = $1 AND ended_at IS NULL";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(campaign_id)
            .fetch_all(pool)
            .await?))
    }

    /// The campaign id and lead fields of an attempt, for an agent's screen.
    pub async fn attempt_lead_fields(&self, attempt_id: i64) -> Result<Option<String>, StoreError> {
        const SQL: &str =
            "SELECT l.fields FROM call_attempts a JOIN leads l ON l.id = a.lead_id WHERE a.id = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(attempt_id)
            .fetch_optional(pool)
            .await?))
    }
}

impl Store {
    /// Refreshes the claims `node` holds at `now` in the campaigns it runs
    /// (its heartbeat): a lead a live node keeps in its hopper longer than
    /// the claim lease is not taken (and dialled) by another node; a dead
    /// node's claims lapse, and so do a live node's claims in a campaign
    /// it no longer runs (a restart with fewer `--campaign`s), which
    /// nothing of it would ever dial or give back. Returns how many.
    pub async fn claims_heartbeat(
        &self,
        node: &str,
        campaign_ids: &[i64],
        now: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE leads SET claimed_at = $2
             WHERE claim_owner = $1 AND status = 'claimed' AND campaign_id = $3";
        let mut n = 0;
        for id in campaign_ids {
            n += with_pool!(self, pool => sqlx::query(SQL)
                .bind(node)
                .bind(now)
                .bind(*id)
                .execute(pool)
                .await?
                .rows_affected());
        }
        Ok(n)
    }
}

/// A callback agreed with a customer, as `GET /api/callbacks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Callback {
    /// The lead.
    pub lead_id: i64,
    /// Its number, masked (last four digits).
    pub phone: String,
    /// When it is due, ms since the epoch.
    pub due_at: i64,
    /// The agent who booked it, if known.
    pub agent_id: Option<String>,
    /// The agent it is kept for (only that agent takes it until
    /// `kept_until`); none: anyone's.
    pub kept_for: Option<String>,
    /// Until when (ms since the epoch) it is kept for `kept_for`: its
    /// time plus the campaign's grace.
    pub kept_until: Option<i64>,
}

impl Store {
    /// The campaign's callbacks still to dial, soonest first; with
    /// `agent`, only those that agent booked. A kept callback is kept
    /// until `grace_ms` after its time.
    pub async fn callbacks(
        &self,
        campaign_id: i64,
        agent: Option<&str>,
        grace_ms: i64,
    ) -> Result<Vec<Callback>, StoreError> {
        const SQL: &str = "SELECT id, phone, next_attempt_at, booked_by, callback_agent FROM (
                 SELECT l.id, l.phone, l.next_attempt_at, l.callback_agent,
                     (SELECT d.agent_id FROM dispositions d
                          JOIN call_attempts a ON a.id = d.attempt_id
                      WHERE a.lead_id = l.id AND d.callback_at IS NOT NULL
                      ORDER BY d.created_at DESC, d.id DESC LIMIT 1) AS booked_by
                 FROM leads l
                 WHERE l.campaign_id = $1 AND l.last_outcome = 'callback'
                     AND l.status IN ('retry', 'claimed')) c
             WHERE $2 IS NULL OR booked_by = $2
             ORDER BY next_attempt_at, id";
        type Row = (i64, String, Option<i64>, Option<String>, Option<String>);
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(SQL)
                .bind(campaign_id)
                .bind(agent)
                .fetch_all(pool)
                .await?);
        Ok(rows
            .into_iter()
            .map(|(lead_id, phone, due, agent_id, kept_for)| {
                let due_at = due.unwrap_or(0);
                Callback {
                    lead_id,
                    phone: crate::phone::mask(&phone),
                    due_at,
                    agent_id,
                    kept_until: kept_for.as_ref().map(|_| due_at.saturating_add(grace_ms)),
                    kept_for,
                }
            })
            .collect())
    }
}

/// A call put through to an agent that has no disposition yet (its
/// wrap-up was cut by a crash or a shutdown), as
/// `GET /api/agents/{id}/pending` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PendingDisposition {
    /// The call (attempt) id: `POST /api/calls/{id}/disposition` takes it.
    pub call_id: i64,
    /// Its campaign.
    pub campaign_id: i64,
    /// The agent it was put through to.
    pub agent_id: String,
    /// Put through at, ms since the Unix epoch.
    pub connected_at: i64,
    /// Ended at (ms), when it has.
    pub ended_at: Option<i64>,
    /// How it ended (`interrupted` for a crash).
    pub outcome: Option<String>,
}

/// A row of the pending-disposition queries.
type PendingRow = (i64, i64, String, i64, Option<i64>, Option<String>);

impl From<PendingRow> for PendingDisposition {
    fn from(
        (call_id, campaign_id, agent_id, connected_at, ended_at, outcome): PendingRow,
    ) -> PendingDisposition {
        PendingDisposition {
            call_id,
            campaign_id,
            agent_id,
            connected_at,
            ended_at,
            outcome,
        }
    }
}

impl Store {
    /// Calls put through to `agent` that ended without a disposition,
    /// oldest first (at most 200).
    pub async fn pending_dispositions(
        &self,
        agent: &str,
    ) -> Result<Vec<PendingDisposition>, StoreError> {
        const SQL: &str =
            "SELECT a.id, a.campaign_id, a.agent_id, a.connected_at, a.ended_at, a.outcome
             FROM call_attempts a
             WHERE a.agent_id = $1 AND a.connected_at IS NOT NULL AND a.outcome IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM dispositions d WHERE d.attempt_id = a.id)
             ORDER BY a.connected_at, a.id LIMIT 200";
        let rows: Vec<PendingRow> =
            with_pool!(self, pool => sqlx::query_as(SQL).bind(agent).fetch_all(pool).await?);
        Ok(rows.into_iter().map(PendingDisposition::from).collect())
    }

    /// The one call of [`Store::pending_dispositions`] with id `call_id`.
    pub async fn pending_disposition(
        &self,
        call_id: i64,
    ) -> Result<Option<PendingDisposition>, StoreError> {
        const SQL: &str =
            "SELECT a.id, a.campaign_id, a.agent_id, a.connected_at, a.ended_at, a.outcome
             FROM call_attempts a
             WHERE a.id = $1 AND a.agent_id IS NOT NULL AND a.connected_at IS NOT NULL
               AND a.outcome IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM dispositions d WHERE d.attempt_id = a.id)";
        let row: Option<PendingRow> =
            with_pool!(self, pool => sqlx::query_as(SQL).bind(call_id).fetch_optional(pool).await?);
        Ok(row.map(PendingDisposition::from))
    }
}
