//! Compliance data on disk and in the store: importing registries, loading
//! them for screening, and assembling one number's state for a verdict.
//!
//! The I/O side of `compliance`, which stays pure: national registries are
//! files in the DND folder (`national-<cc>.dnd`), the internal and campaign
//! lists live in the store (`dnc_numbers`), lead history comes from the
//! store's call attempts and the ledger from `abandon_ledger`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::compliance::dnd::{
    self, BadLine, DndError, DndImportReport, Entry, Format, NationalRegistry,
};
use crate::compliance::ledger::Ledger;
use crate::compliance::{self, Registries, Suppressions, Verdict};
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
    /// A load time in the future: the registry would never go stale.
    #[error(
        "--loaded-at {loaded_at} is in the future (now {now}): give the time the data was downloaded"
    )]
    FutureLoad {
        /// The time given.
        loaded_at: DateTime<Utc>,
        /// Now.
        now: DateTime<Utc>,
    },
    /// A safety check refused the import; nothing changed.
    #[error("{}: import into the {target} refused, nothing changed: {reason}; give --force to import it anyway", file.display())]
    Refused {
        /// The file.
        file: PathBuf,
        /// Where it was going.
        target: Target,
        /// Why.
        reason: String,
        /// Every line refused on the way (for the rejects file: a refused
        /// import says which lines, too).
        bad: Vec<BadLine>,
    },
}

/// How far ahead of the clock a load time may be (clocks differ a little).
const LOAD_TIME_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The share of a national registry a full import may drop without
/// `--force`, percent, by default. Registries shed far less than this
/// between two copies; a file that drops more is the wrong file.
pub const DEFAULT_MAX_DROP_PERCENT: f64 = 5.0;

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

impl Target {
    /// The target as recorded: `national:GB`, `internal`, `campaign:NAME`.
    pub fn key(&self) -> String {
        match self {
            Target::National(c) => format!("national:{}", c.iso()),
            Target::Internal => store::SCOPE_INTERNAL.to_string(),
            Target::Campaign(name) => store::campaign_scope(name),
        }
    }
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
    /// Now (the import's record, and the check on `loaded_at`).
    pub now: DateTime<Utc>,
    /// Who runs it, for the record.
    pub actor: String,
    /// Override the safety checks of a full import (an empty or all-bad
    /// file, numbers of another country, a large drop, an older copy).
    pub force: bool,
    /// The share of a national registry a full import may drop, percent.
    pub max_drop_percent: f64,
}

/// What an import did: the counts, the refused lines, and the record
/// kept in the store.
#[derive(Debug, Clone)]
pub struct DndImportOutcome {
    /// The counts.
    pub report: DndImportReport,
    /// Every refused line.
    pub bad: Vec<BadLine>,
    /// The record in `dnd_imports`.
    pub record: store::DndImportRecord,
}

/// SHA-256 of the file at `path`, hex.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Imports a registry file. National registries are rebuilt from a full
/// file, or updated in place by a delta; the account's lists only grow
/// from a full file, and a delta's removals never take out a person's own
/// request (a `dnc` disposition, an opt-out, an erasure). Bad data only
/// adds protection: a full national import that is empty or all bad, names
/// another country's numbers, drops more than `max_drop_percent` of the
/// registry or is older than the copy it replaces is refused unless
/// forced. The registry's age stays that of its last full copy: deltas
/// do not make it fresh. Every import is recorded with the file's SHA-256.
pub async fn import(
    store: &Store,
    dir: &Path,
    req: &DndImport<'_>,
) -> Result<DndImportOutcome, RegistryError> {
    let file = req.file;
    if req.loaded_at > req.now + LOAD_TIME_SKEW {
        return Err(RegistryError::FutureLoad {
            loaded_at: req.loaded_at,
            now: req.now,
        });
    }
    let input = std::fs::File::open(file).map_err(|source| RegistryError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    // The file's hash for the record, on the other core while this one
    // parses (hashing inline cost a sixth of a 10M-number import).
    let hashing = {
        let path = file.to_path_buf();
        std::thread::spawn(move || file_sha256(&path))
    };
    // A full national import compares with the registry it replaces: load
    // that while the file parses, too.
    let replacing = match &req.target {
        Target::National(c) if !req.delta => {
            let path = dnd::registry_path(dir, *c);
            path.exists()
                .then(|| std::thread::spawn(move || NationalRegistry::load(&path)))
        }
        _ => None,
    };
    let parsed = dnd::parse(input, req.format, req.country, req.delta).map_err(|source| {
        RegistryError::Io {
            path: file.to_path_buf(),
            source,
        }
    })?;
    let sha256 = hashing
        .join()
        .map_err(|_| RegistryError::Io {
            path: file.to_path_buf(),
            source: std::io::Error::other("hashing the file failed"),
        })?
        .map_err(|source| RegistryError::Io {
            path: file.to_path_buf(),
            source,
        })?;
    let dnd::Parsed {
        entries,
        removal_lines,
        removal_texts,
        mut bad,
    } = parsed;
    let refuse = |reason: String, bad: &[BadLine]| RegistryError::Refused {
        file: file.to_path_buf(),
        target: req.target.clone(),
        reason,
        bad: bad.to_vec(),
    };
    let foreign = bad.iter().filter(|b| b.foreign).count();
    if foreign > 0 && matches!(req.target, Target::National(_)) && !req.force {
        let first = bad.iter().find(|b| b.foreign).map_or(0, |b| b.line);
        return Err(refuse(
            format!(
                "{foreign} numbers of another country than {} (the first on line {first}): is --country right?",
                req.country
            ),
            &bad,
        ));
    }
    let mut report = DndImportReport {
        entries: entries.len() as u64,
        ..Default::default()
    };
    let mut forced = false;
    let mut digest = None;
    match &req.target {
        Target::National(c) => {
            std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = dnd::registry_path(dir, *c);
            let registry = if req.delta {
                if !path.exists() {
                    return Err(RegistryError::NoBase(*c));
                }
                let mut r = NationalRegistry::load(&path)?;
                let (added, removed) = r.apply(&entries);
                report.added = added;
                report.removed = removed;
                // The age stays the last full copy's.
                r
            } else {
                let valid = entries.len();
                let check = |ok: bool, reason: String| -> Result<(), RegistryError> {
                    if ok || req.force {
                        Ok(())
                    } else {
                        Err(refuse(reason, &bad))
                    }
                };
                forced |= req.force;
                check(
                    valid > 0,
                    format!(
                        "the file has no valid entries ({} lines refused): it would empty the registry",
                        bad.len()
                    ),
                )?;
                check(
                    bad.len() <= valid,
                    format!(
                        "{} lines refused against {valid} read: more bad lines than good",
                        bad.len()
                    ),
                )?;
                let r = NationalRegistry::build(*c, req.loaded_at, &entries);
                if let Some(loading) = replacing {
                    let old = loading.join().map_err(|_| RegistryError::Io {
                        path: path.clone(),
                        source: std::io::Error::other("loading the registry failed"),
                    })??;
                    check(
                        req.loaded_at >= old.loaded_at,
                        format!(
                            "the data was loaded at {}, before the registry it would replace ({})",
                            req.loaded_at.to_rfc3339(),
                            old.loaded_at.to_rfc3339()
                        ),
                    )?;
                    let dropped = old.dropped_by(&r);
                    report.removed = dropped;
                    let share = 100.0 * dropped as f64 / old.len().max(1) as f64;
                    // Past the default share, a raised limit lifts a
                    // safety check as --force does: the record says so.
                    forced |= share > DEFAULT_MAX_DROP_PERCENT;
                    check(
                        share <= req.max_drop_percent,
                        format!(
                            "it would drop {dropped} of the registry's {} numbers ({share:.1}%, more than {}%)",
                            old.len(),
                            req.max_drop_percent
                        ),
                    )?;
                    // Listed in both: the rest of the new copy is new.
                    let kept = (old.len() as u64).saturating_sub(dropped);
                    report.added = (r.len() as u64).saturating_sub(kept);
                } else {
                    report.added = r.len() as u64;
                }
                r
            };
            report.total = registry.len() as u64;
            digest = Some(registry.save(&path)?);
        }
        Target::Internal | Target::Campaign(_) => {
            let scope = match &req.target {
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
            let mut removes: Vec<(String, (u64, String))> = entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Removed(n) => Some(e164(*n)),
                    _ => None,
                })
                .zip(removal_lines.into_iter().zip(removal_texts))
                .collect();
            // A person's own request is not undone by a file.
            let phones: Vec<String> = removes.iter().map(|(p, _)| p.clone()).collect();
            let protected = store.dnc_protected(&scope, &phones).await?;
            if !protected.is_empty() {
                removes.retain_mut(|(p, (line, text))| {
                    let Some((_, source)) = protected.iter().find(|(q, _)| q == p) else {
                        return true;
                    };
                    bad.push(BadLine {
                        line: *line,
                        reason: format!(
                            "{} is on the list by the person's own request ({source}): only `dialler dnd remove` with a reason takes it off",
                            phone::mask(p)
                        ),
                        text: std::mem::take(text),
                        kept_blocked: true,
                        foreign: false,
                    });
                    false
                });
                bad.sort_by_key(|b| b.line);
            }
            let removes: Vec<String> = removes.into_iter().map(|(p, _)| p).collect();
            let now = store::millis(req.loaded_at);
            report.added = store
                .dnc_add(&scope, &adds, now, store::SOURCE_IMPORT)
                .await?;
            report.removed = store.dnc_remove(&scope, &removes).await?;
            report.total = store.dnc_list(&scope).await?.len() as u64;
        }
    }
    report.rejected = bad.len() as u64;
    report.kept_blocked = bad.iter().filter(|b| b.kept_blocked).count() as u64;
    let record = store::DndImportRecord {
        at: store::millis(req.now),
        actor: req.actor.clone(),
        target: req.target.key(),
        kind: if req.delta { "delta" } else { "full" }.into(),
        file: file.display().to_string(),
        sha256,
        loaded_at: store::millis(req.loaded_at),
        entries: report.entries as i64,
        added: report.added as i64,
        removed: report.removed as i64,
        rejected: report.rejected as i64,
        total: report.total as i64,
        forced,
        digest,
    };
    store.record_dnd_import(&record).await?;
    Ok(DndImportOutcome {
        report,
        bad,
        record,
    })
}

/// Loads what `campaigns` need to be screened: the national registries of
/// their countries (when saved, and the ones last imported into the store:
/// see [`load_national`]), the internal list and their own lists.
pub async fn load(
    store: &Store,
    dir: &Path,
    campaigns: &[&Campaign],
) -> Result<Registries, RegistryError> {
    let mut r = load_lists(store, campaigns).await?;
    let expected = expected_national(store, campaigns).await?;
    r.national = load_national(dir, campaigns, &expected)?;
    Ok(r)
}

/// For each of `campaigns`' countries, the latest import of its national
/// registry recorded in the store (by any node), when it carries a digest
/// (one recorded before digests were kept is not checked against).
pub async fn expected_national(
    store: &Store,
    campaigns: &[&Campaign],
) -> Result<HashMap<Country, store::DndImportRecord>, RegistryError> {
    let mut expected = HashMap::new();
    for c in campaigns {
        let country = c.country();
        if expected.contains_key(&country) {
            continue;
        }
        if let Some(record) = store
            .latest_national_import(&Target::National(country).key())
            .await?
            && record.digest.is_some()
        {
            expected.insert(country, record);
        }
    }
    Ok(expected)
}

/// The national registries of `campaigns`' countries saved in `dir`
/// (a country with none saved has none). Blocking file reads.
///
/// Each node keeps its own saved copy, but the store the nodes share
/// records every import: a copy whose digest is not that of the latest
/// import in `expected` (another node took a newer registry, or this one
/// missed a delta) is not loaded, so the country's numbers are refused as
/// having no registry, with an error that says which import to repeat
/// here, until this node holds the same data. A country with no import
/// on record (or none with a digest) is not checked.
pub fn load_national(
    dir: &Path,
    campaigns: &[&Campaign],
    expected: &HashMap<Country, store::DndImportRecord>,
) -> Result<HashMap<Country, std::sync::Arc<NationalRegistry>>, RegistryError> {
    let mut national = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for c in campaigns {
        let country = c.country();
        let path = dnd::registry_path(dir, country);
        if !seen.insert(country) || !path.exists() {
            continue;
        }
        let (registry, digest) = NationalRegistry::load_with_digest(&path)?;
        if let Some(record) = expected.get(&country)
            && record.digest.as_deref() != Some(digest.as_str())
        {
            tracing::error!(
                country = %country,
                file = %path.display(),
                imported = %chrono::DateTime::from_timestamp_millis(record.at)
                    .map_or_else(|| record.at.to_string(), |t| t.to_rfc3339()),
                by = %record.actor,
                source = %record.file,
                "this node's national registry is not the one last imported into the store: \
                 numbers of this country are refused until that import is repeated on this node"
            );
            continue;
        }
        national.insert(country, std::sync::Arc::new(registry));
    }
    Ok(national)
}

/// What the store holds for screening `campaigns`: the internal list,
/// their own lists and the erasure suppressions (no national registry).
pub async fn load_lists(
    store: &Store,
    campaigns: &[&Campaign],
) -> Result<Registries, RegistryError> {
    let mut r = Registries::default();
    for c in campaigns {
        let own = to_set(&store.dnc_list(&store::campaign_scope(&c.name)).await?);
        r.campaign.insert(c.name.clone(), own);
    }
    r.internal = to_set(&store.dnc_list(store::SCOPE_INTERNAL).await?);
    let key = store.suppression_key().await?;
    let (suppressed, damaged) = Suppressions::new(key, store.suppressions().await?);
    if damaged > 0 {
        tracing::error!(
            damaged,
            "suppression entries that are not hashes: their numbers cannot be recognised"
        );
    }
    r.suppressed = suppressed;
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
    /// What is wrong with the number, when it is not a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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
    let number = match phone::parse(raw, campaign.country()) {
        Ok(n) => n,
        // Not a number the campaign could dial: a verdict, not an error.
        Err(e) => {
            return Ok(CheckReport {
                allowed: false,
                reasons: vec![compliance::Reason::InvalidNumber],
                timezone: Vec::new(),
                local_time: None,
                next_allowed_at: None,
                detail: Some(e.to_string()),
            });
        }
    };
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
    let mut record = record;
    // The recall rules are per person: an abandon or a machine in any
    // campaign counts.
    let since = now_ms.ms().saturating_sub(store::RECALL_LOOKBACK_MS);
    if let Some(at) = store.last_abandon_of(&number.e164(), since).await? {
        record.last_abandon_at = record.last_abandon_at.max(Some(Millis(at).utc()));
    }
    if let Some(at) = store.last_machine_of(&number.e164(), since).await? {
        record.last_machine_at = record.last_machine_at.max(Some(Millis(at).utc()));
    }
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
        detail: None,
    })
}
