//! Compliance data on disk and in the store: importing registries, loading
//! them for screening, and assembling one number's state for a verdict.
//!
//! The I/O side of `compliance`, which stays pure: national registries are
//! files in the DND folder (`national-<cc>.dnd`), the internal and campaign
//! lists live in the store (`dnc_numbers`), lead history comes from the
//! store's call attempts and the ledger from `abandon_ledger`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::compliance::dnd::{
    self, BadLine, DndError, DndImportReport, Entry, Format, NationalRegistry,
};
use crate::compliance::ledger::Ledger;
use crate::compliance::{self, Registries, Verdict};
use crate::dnd_set::DndSet;
use crate::outcome::Outcome;
use crate::phone::{self, Country, PhoneError};
use crate::policy::{self, DialView, LeadRecord, PastAttempt};
use crate::store::{self, Store, StoreError};
use crate::timezone;

/// Errors of registry imports and checks.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A registry file problem.
    #[error(transparent)]
    Dnd(#[from] DndError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The input file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The number to check is not a valid number of the campaign's country.
    #[error("{0}")]
    Phone(#[from] PhoneError),
    /// A delta for a national registry that was never imported.
    #[error("no national registry for {0} yet: import a full file before a delta")]
    NoBase(Country),
}

/// Which list an import goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The national registry of a country (a file in the DND folder).
    National(Country),
    /// The account's internal list.
    Internal,
    /// A campaign's own list.
    Campaign(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::National(c) => write!(f, "national registry {c}"),
            Target::Internal => f.write_str("internal do-not-call list"),
            Target::Campaign(name) => write!(f, "do-not-call list of campaign {name}"),
        }
    }
}

/// A registry file to import.
#[derive(Debug, Clone)]
pub struct DndImport<'a> {
    /// Where the numbers go.
    pub target: Target,
    /// The file.
    pub file: &'a Path,
    /// Its format.
    pub format: Format,
    /// Country for numbers written in national form.
    pub country: Country,
    /// The file is a delta (adds, changes and removals), not a full copy.
    pub delta: bool,
    /// When the data was downloaded from the regulator.
    pub loaded_at: DateTime<Utc>,
}

/// Imports a registry file. National registries are rebuilt from a full
/// file, or updated in place by a delta. Returns the counts and the
/// refused lines.
pub async fn import(
    store: &Store,
    dir: &Path,
    req: &DndImport<'_>,
) -> Result<(DndImportReport, Vec<BadLine>), RegistryError> {
    let DndImport {
        target,
        file,
        format,
        country,
        delta,
        loaded_at,
    } = req.clone();
    let input = std::fs::File::open(file).map_err(|source| RegistryError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let (entries, bad) =
        dnd::parse(input, format, country).map_err(|source| RegistryError::Io {
            path: file.to_path_buf(),
            source,
        })?;
    let mut report = DndImportReport {
        entries: entries.len() as u64,
        rejected: bad.len() as u64,
        ..Default::default()
    };
    match target {
        Target::National(c) => {
            std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = dnd::registry_path(dir, c);
            let registry = if delta {
                if !path.exists() {
                    return Err(RegistryError::NoBase(c));
                }
                let mut r = NationalRegistry::load(&path)?;
                let (added, removed) = r.apply(&entries);
                report.added = added;
                report.removed = removed;
                r.loaded_at = loaded_at;
                r
            } else {
                let r = NationalRegistry::build(c, loaded_at, &entries);
                report.added = r.len() as u64;
                r
            };
            report.total = registry.len() as u64;
            registry.save(&path)?;
        }
        Target::Internal | Target::Campaign(_) => {
            let scope = match &target {
                Target::Campaign(name) => store::campaign_scope(name),
                _ => store::SCOPE_INTERNAL.to_string(),
            };
            let e164 = |n: u64| format!("+{n}");
            let adds: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Blocked(n) | Entry::Partial { number: n, .. } => Some(e164(*n)),
                    Entry::Removed(_) => None,
                })
                .collect();
            let removes: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Removed(n) => Some(e164(*n)),
                    _ => None,
                })
                .collect();
            let now = store::millis(loaded_at);
            report.added = store.dnc_add(&scope, &adds, now, "import").await?;
            report.removed = store.dnc_remove(&scope, &removes).await?;
            report.total = store.dnc_list(&scope).await?.len() as u64;
        }
    }
    Ok((report, bad))
}

/// Loads what `campaigns` need to be screened: the national registries of
/// their countries (when saved), the internal list and their own lists.
pub async fn load(
    store: &Store,
    dir: &Path,
    campaigns: &[&Campaign],
) -> Result<Registries, RegistryError> {
    let mut r = Registries::default();
    for c in campaigns {
        let country = c.country();
        let path = dnd::registry_path(dir, country);
        if let std::collections::hash_map::Entry::Vacant(slot) = r.national.entry(country)
            && path.exists()
        {
            slot.insert(NationalRegistry::load(&path)?);
        }
        let own = to_set(&store.dnc_list(&store::campaign_scope(&c.name)).await?);
        r.campaign.insert(c.name.clone(), own);
    }
    r.internal = to_set(&store.dnc_list(store::SCOPE_INTERNAL).await?);
    Ok(r)
}

fn to_set(phones: &[String]) -> DndSet {
    DndSet::from_unsorted(
        phones
            .iter()
            .filter_map(|p| p.strip_prefix('+').and_then(|d| d.parse().ok()))
            .collect(),
    )
}

/// `dialler check`'s answer: the verdict and where the number is.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// May it be dialled.
    pub allowed: bool,
    /// Reason codes against it.
    pub reasons: Vec<compliance::Reason>,
    /// Candidate zones (empty when unknown).
    pub timezone: Vec<String>,
    /// Local time in the first zone, if known.
    pub local_time: Option<String>,
    /// When to look again.
    pub next_allowed_at: Option<DateTime<Utc>>,
}

/// Checks `raw` for `campaign` at `now`, with the lead's history if the
/// campaign has the number, the registries and the ledger.
pub async fn check_number(
    store: &Store,
    dir: &Path,
    campaign: &Campaign,
    raw: &str,
    now: DateTime<Utc>,
) -> Result<CheckReport, RegistryError> {
    let number = phone::parse(raw, campaign.country())?;
    let registries = load(store, dir, &[campaign]).await?;
    let campaign_id = store.campaign_id(&campaign.name).await?;
    let lead = match campaign_id {
        Some(id) => store.lead_by_phone(id, &number.e164()).await?,
        None => None,
    };
    let now_ms = Millis::from_utc(now);
    let record = match &lead {
        Some(l) => {
            let history = store
                .attempts_for_lead(l.id)
                .await?
                .into_iter()
                .map(|a| PastAttempt {
                    started_at: Millis(a.started_at),
                    ended_at: a.ended_at.map(Millis),
                    outcome: a.outcome.as_deref().and_then(Outcome::from_code),
                });
            l.record(history, now_ms)?
        }
        // Not a lead yet: the zones its number gives.
        None => LeadRecord::new(number, timezone::infer(&number).to_vec()),
    };
    let mut ledger = match campaign_id {
        Some(id) => store.ledger(id, campaign.abandon_window, now_ms).await?,
        None => Ledger::new(campaign.abandon_window),
    };
    let dial = DialView {
        ledger: ledger.status(
            now,
            campaign.abandon_target_percent,
            campaign.abandon_limit_percent,
        ),
        ledger_retry_at: ledger.next_expiry(),
        agent_reserved: false,
    };
    let verdict: Verdict = policy::screen(&record, campaign, &registries, &dial, now);
    let zones = &record.zones;
    Ok(CheckReport {
        allowed: verdict.allowed,
        reasons: verdict.reasons,
        timezone: zones.iter().map(|z| z.name().to_string()).collect(),
        local_time: zones.first().map(|&z| compliance::local_time(z, now)),
        next_allowed_at: verdict.next_allowed_at,
    })
}
