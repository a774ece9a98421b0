//! The library side of the command line: what each `dialler` command does,
//! returning a typed report that prints for people (`Display`) and as one
//! JSON document (`Serialize`, for `--json`). `main.rs` only parses the
//! arguments, calls these and prints.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::auth::{self, NewToken, Role};
use crate::campaign::{self, Campaign, CampaignError};
use crate::clock::Millis;
use crate::compliance::dnd::{BadLine, DndImportReport};
use crate::leads::{self, ImportOptions, ImportReport, Reject};
use crate::pacing::Strategy;
use crate::phone::Country;
use crate::registry::{self, CheckReport, DndImport};
use crate::sim::{self, Scenario, SeedSummary, SimConfig, SimReport};
use crate::store::{AuditEntry, DndImportRecord, ErasureCounts, Store, TokenRow};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A campaign or scenario file.
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A registry import or check.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A lead import.
    #[error("{}", import_message(path, source))]
    Import {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::leads::ImportError,
    },
    /// Anything the user must fix, said plainly.
    #[error("{0}")]
    Usage(String),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A lead import's error, naming the file once (most of its errors name it
/// with the line already).
fn import_message(path: &Path, source: &crate::leads::ImportError) -> String {
    let said = source.to_string();
    if said.contains(&path.display().to_string()) {
        said
    } else {
        format!("importing {}: {said}", path.display())
    }
}

fn usage(message: impl Into<String>) -> CommandError {
    CommandError::Usage(message.into())
}

/// A country from its ISO code, as `--country` takes it.
pub fn country_arg(code: &str) -> Result<Country, CommandError> {
    Country::from_iso(&code.to_ascii_uppercase())
        .ok_or_else(|| usage(format!("--country {code}: use IN, US, CA, GB or AU")))
}

/// An RFC 3339 time as the options take it; `None`: `now`.
pub fn time_arg(
    text: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, CommandError> {
    match text {
        None => Ok(now),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| {
                usage(format!(
                    "{t:?} is not an RFC 3339 time such as 2026-12-01T10:00:00+05:30"
                ))
            }),
    }
}

// ---- campaign validate / list ----------------------------------------

/// One file's validation.
#[derive(Debug, Serialize)]
pub struct Validated {
    /// The file.
    pub file: PathBuf,
    /// `name, profile, strategy` when valid.
    pub campaign: Option<String>,
    /// Every error, as `file:line:column: field: message`.
    pub errors: Vec<String>,
    /// Warnings that do not stop the campaign yet (a holiday calendar
    /// ending within 180 days).
    pub warnings: Vec<String>,
}

/// `dialler campaign validate`.
#[derive(Debug, Serialize)]
pub struct ValidateReport {
    /// Each file.
    pub files: Vec<Validated>,
}

impl ValidateReport {
    /// Whether any file failed.
    pub fn failed(&self) -> bool {
        self.files.iter().any(|f| !f.errors.is_empty())
    }
}

impl fmt::Display for ValidateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.files {
            match &v.campaign {
                Some(c) if v.errors.is_empty() => writeln!(f, "{}: ok ({c})", v.file.display())?,
                _ => {
                    for e in &v.errors {
                        writeln!(f, "{e}")?;
                    }
                }
            }
            for w in &v.warnings {
                writeln!(f, "{}: warning: {w}", v.file.display())?;
            }
        }
        Ok(())
    }
}

/// Validates campaign files as of `today` (for data that runs out).
pub fn campaign_validate(files: &[PathBuf], today: chrono::NaiveDate) -> ValidateReport {
    let files = files
        .iter()
        .map(|f| match Campaign::load(f) {
            Ok(c) => Validated {
                file: f.clone(),
                campaign: Some(format!("{}, profile {}, {}", c.name, c.profile, c.strategy)),
                errors: Vec::new(),
                warnings: crate::compliance::hours::calendar_warning(c.profile, today)
                    .into_iter()
                    .chain((c.message_file.is_none() && matches!(c.profile, crate::profile::Profile::Us | crate::profile::Profile::Uk)).then(|| {
                        "no [abandonment] message_file: abandoned calls hear a generated tone, not a recorded message naming the seller and a number to call back (US TSR 310.4(b)(4)(iii), Ofcom's abandoned-call policy)".to_string()
                    }))
                    .collect(),
            },
            Err(CampaignError::Invalid { errors, .. }) => Validated {
                file: f.clone(),
                campaign: None,
                errors: errors.iter().map(ToString::to_string).collect(),
                warnings: Vec::new(),
            },
            Err(e) => Validated {
                file: f.clone(),
                campaign: None,
                errors: vec![e.to_string()],
                warnings: Vec::new(),
            },
        })
        .collect();
    ValidateReport { files }
}

/// A campaign in the folder.
#[derive(Debug, Serialize)]
pub struct CampaignRow {
    /// Name.
    pub name: String,
    /// Profile.
    pub profile: crate::profile::Profile,
    /// Strategy.
    pub strategy: String,
    /// File.
    pub file: String,
    /// Leads stored.
    pub leads: i64,
}

/// `dialler campaign list`.
#[derive(Debug, Serialize)]
pub struct CampaignList {
    /// Valid campaigns.
    pub campaigns: Vec<CampaignRow>,
    /// Files that failed validation, with why.
    pub invalid: Vec<String>,
}

impl fmt::Display for CampaignList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:<7} {:<14} {:>9}  FILE",
            "NAME", "PROFILE", "STRATEGY", "LEADS"
        )?;
        for r in &self.campaigns {
            writeln!(
                f,
                "{:<28} {:<7} {:<14} {:>9}  {}",
                r.name, r.profile, r.strategy, r.leads, r.file
            )?;
        }
        Ok(())
    }
}

/// Lists the campaigns in `dir` with their stored lead counts.
pub async fn campaign_list(store: &Store, dir: &Path) -> Result<CampaignList, CommandError> {
    let campaign::Loaded { campaigns, invalid } = campaign::load_dir(dir)?;
    let mut rows = Vec::new();
    for (path, c) in &campaigns {
        let leads = match store.campaign_id(&c.name).await? {
            Some(id) => store
                .lead_status_counts(id)
                .await?
                .iter()
                .map(|(_, n)| n)
                .sum(),
            None => 0,
        };
        rows.push(CampaignRow {
            name: c.name.clone(),
            profile: c.profile,
            strategy: c.strategy.to_string(),
            file: path.display().to_string(),
            leads,
        });
    }
    Ok(CampaignList {
        campaigns: rows,
        invalid: invalid.iter().map(ToString::to_string).collect(),
    })
}

// ---- leads -------------------------------------------------------------

/// `dialler leads import`: the counts, and the refused rows.
#[derive(Debug, Serialize)]
pub struct LeadImport {
    /// The file.
    #[serde(skip)]
    pub file: PathBuf,
    /// The counts.
    #[serde(flatten)]
    pub report: ImportReport,
    /// Every refused row.
    #[serde(skip)]
    pub rejects: Vec<Reject>,
}

impl fmt::Display for LeadImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(
            f,
            "{}: {} rows, {} imported, {} duplicates, {} rejected, {} with unknown time zone (not dialled until fixed)",
            self.file.display(),
            r.rows,
            r.imported,
            r.duplicates,
            r.rejected,
            r.tz_unknown
        )?;
        writeln!(
            f,
            "scrub: {} on the national registry, {} on the internal list, {} on the campaign's list (imported, refused at dial time); {} suppressed after an erasure (rejected)",
            r.scrub.national, r.scrub.internal, r.scrub.campaign, r.scrub.suppressed
        )
    }
}

/// Imports a lead file into a campaign at `now`.
pub async fn leads_import(
    store: &Store,
    dnd_dir: &Path,
    campaign: &Campaign,
    file: &Path,
    opts: &ImportOptions,
    now: Millis,
) -> Result<LeadImport, CommandError> {
    let id = store.upsert_campaign(campaign, now.ms()).await?;
    let mut opts = opts.clone();
    opts.screening = Some(leads::Screening {
        registries: std::sync::Arc::new(registry::load(store, dnd_dir, &[campaign]).await?),
        campaign: campaign.name.clone(),
        country: campaign.country(),
        category: campaign.dnd_category,
    });
    let (report, rejects) =
        leads::import_file(store, id, campaign.country(), file, &opts, now.ms())
            .await
            .map_err(|source| CommandError::Import {
                path: file.to_path_buf(),
                source,
            })?;
    Ok(LeadImport {
        file: file.to_path_buf(),
        report,
        rejects,
    })
}

/// `dialler leads stats`.
#[derive(Debug, Serialize)]
pub struct LeadStats {
    /// Campaign.
    pub campaign: String,
    /// Leads in all.
    pub total: i64,
    /// By status.
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// By lead list: leads, and those still to dial.
    pub lists: Vec<crate::store::LeadList>,
    /// The lists the campaign dials (a supervisor's choice); `None`:
    /// every list.
    pub dialling_lists: Option<Vec<String>>,
}

impl fmt::Display for LeadStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} leads", self.campaign, self.total)?;
        for (s, n) in &self.by_status {
            writeln!(f, "  {s:<12} {n:>9}")?;
        }
        writeln!(f, "lists (leads, to dial):")?;
        for l in &self.lists {
            let on = self
                .dialling_lists
                .as_ref()
                .is_none_or(|d| d.contains(&l.name));
            let mark = if on { "" } else { "  (not dialled)" };
            writeln!(f, "  {:<16} {:>9} {:>9}{mark}", l.name, l.leads, l.to_dial)?;
        }
        Ok(())
    }
}

/// Counts a campaign's leads by status.
pub async fn leads_stats(store: &Store, campaign: &str) -> Result<LeadStats, CommandError> {
    let id = store.campaign_id(campaign).await?.ok_or_else(|| {
        usage(format!(
            "campaign {campaign:?} has no leads in the store; import some first"
        ))
    })?;
    let counts = store.lead_status_counts(id).await?;
    Ok(LeadStats {
        campaign: campaign.to_string(),
        total: counts.iter().map(|(_, n)| n).sum(),
        by_status: counts.into_iter().collect(),
        lists: store.lead_lists(id).await?,
        dialling_lists: store.campaign_controls(id).await?.lists,
    })
}

/// `dialler leads erase`.
#[derive(Debug, Serialize)]
pub struct Erased(pub ErasureCounts);

impl fmt::Display for Erased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "erased: {} leads deleted, {} call attempts de-identified (kept for counts), {} dispositions kept; the number is suppressed in every campaign (a keyed hash is kept, not the number)",
            self.0.leads, self.0.attempts, self.0.dispositions
        )
    }
}

/// Erases a person by number from every campaign.
pub async fn leads_erase(
    store: &Store,
    phone: &str,
    country: Option<Country>,
    now: Millis,
) -> Result<Erased, CommandError> {
    let e164 = crate::erasure::parse_number(phone, country).map_err(|e| usage(e.to_string()))?;
    let counts = crate::erasure::erase(store, &e164, now.ms())
        .await
        .map_err(|e| usage(e.to_string()))?;
    Ok(Erased(counts))
}

// ---- dnd import and check ---------------------------------------------

/// `dialler dnd import`: the counts, and the refused lines.
#[derive(Debug, Serialize)]
pub struct DndImported {
    /// Where the entries went.
    #[serde(skip)]
    pub target: registry::Target,
    /// The file.
    #[serde(skip)]
    pub file: PathBuf,
    /// The counts.
    #[serde(flatten)]
    pub report: DndImportReport,
    /// SHA-256 of the file, as recorded in the import history.
    pub sha256: String,
    /// Every refused line.
    #[serde(skip)]
    pub bad: Vec<BadLine>,
}

impl fmt::Display for DndImported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(
            f,
            "{} -> {}: {} entries, {} added, {} removed, {} refused ({} of them kept blocked); {} numbers listed",
            self.file.display(),
            self.target,
            r.entries,
            r.added,
            r.removed,
            r.rejected,
            r.kept_blocked,
            r.total
        )
    }
}

/// Imports a registry file.
pub async fn dnd_import(
    store: &Store,
    dnd_dir: &Path,
    req: &DndImport<'_>,
) -> Result<DndImported, CommandError> {
    let out = registry::import(store, dnd_dir, req).await?;
    Ok(DndImported {
        target: req.target.clone(),
        file: req.file.to_path_buf(),
        report: out.report,
        sha256: out.record.sha256,
        bad: out.bad,
    })
}

/// Tells the refused lines of a registry import: all of them to `rejects`
/// when given, the first 20 on stderr.
pub fn report_dnd_rejects(
    file: &Path,
    rejects: Option<&Path>,
    bad: &[BadLine],
) -> Result<(), CommandError> {
    if let Some(path) = rejects {
        write_dnd_rejects(path, bad)?;
    }
    for b in bad.iter().take(20) {
        eprintln!("{}:{}: {}", file.display(), b.line, b.reason);
    }
    if bad.len() > 20 {
        match rejects {
            Some(p) => eprintln!(
                "... {} more refused lines in {}",
                bad.len() - 20,
                p.display()
            ),
            None => eprintln!(
                "... {} more refused lines; write them all with --rejects PATH",
                bad.len() - 20
            ),
        }
    }
    Ok(())
}

/// Writes every refused registry line to `path` as CSV: line, reason,
/// whether the number was kept blocked, the line as read.
pub fn write_dnd_rejects(path: &Path, bad: &[BadLine]) -> Result<(), CommandError> {
    let io = |e: csv::Error| CommandError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(["line", "reason", "kept_blocked", "text"])
        .map_err(io)?;
    for b in bad {
        w.write_record([
            b.line.to_string().as_str(),
            b.reason.as_str(),
            if b.kept_blocked { "true" } else { "false" },
            b.text.as_str(),
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|source| CommandError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `dialler dnd history`: every recorded registry import.
#[derive(Debug, Serialize)]
pub struct DndHistory {
    /// Oldest first.
    pub imports: Vec<DndImportRecord>,
}

impl fmt::Display for DndHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms).map_or_else(
                || ms.to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            )
        };
        writeln!(
            f,
            "{:<21} {:<12} {:<22} {:<5} {:<21} {:>9} {:>9} {:>9} {:>8} {:>10}  sha256 / file",
            "at",
            "by",
            "target",
            "kind",
            "data loaded",
            "entries",
            "added",
            "removed",
            "refused",
            "total"
        )?;
        for r in &self.imports {
            writeln!(
                f,
                "{:<21} {:<12} {:<22} {:<5} {:<21} {:>9} {:>9} {:>9} {:>8} {:>10}  {}{} {}",
                time(r.at),
                r.actor,
                r.target,
                r.kind,
                time(r.loaded_at),
                r.entries,
                r.added,
                r.removed,
                r.rejected,
                r.total,
                &r.sha256[..r.sha256.len().min(16)],
                if r.forced { " FORCED" } else { "" },
                r.file
            )?;
        }
        Ok(())
    }
}

/// Lists the recorded registry imports.
pub async fn dnd_history(store: &Store) -> Result<DndHistory, CommandError> {
    Ok(DndHistory {
        imports: store.dnd_imports().await?,
    })
}

/// `dialler dnd remove`: a number deliberately taken off a list.
#[derive(Debug, Serialize)]
pub struct DndRemoved {
    /// Whether anything was removed.
    pub removed: bool,
    /// The list, as recorded.
    pub list: String,
    /// The number, masked.
    pub phone: String,
}

impl fmt::Display for DndRemoved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed {
            writeln!(f, "{} removed from {} (audited)", self.phone, self.list)
        } else {
            writeln!(f, "{} is not on {}: nothing removed", self.phone, self.list)
        }
    }
}

/// Takes a number off the internal list (and the suppression list an
/// erasure left) or a campaign's list, whatever put it there: the one way
/// to undo an opt-out or an erasure, with a reason, recorded in the audit
/// log. National registries are not edited here: they follow the
/// regulator's files.
pub async fn dnd_remove(
    store: &Store,
    phone: &str,
    country: Option<Country>,
    campaign: Option<&str>,
    actor: &str,
    reason: &str,
    now: Millis,
) -> Result<DndRemoved, CommandError> {
    if reason.trim().len() < 3 {
        return Err(usage(
            "give the reason for removing the number with --reason",
        ));
    }
    let e164 = crate::erasure::parse_number(phone, country).map_err(|e| usage(e.to_string()))?;
    let number = crate::phone::PhoneNumber::from_e164(&e164).map_err(|e| usage(e.to_string()))?;
    let (scope, suppression) = match campaign {
        Some(name) => (crate::store::campaign_scope(name), None),
        None => {
            let key = store.suppression_key().await?;
            (
                crate::store::SCOPE_INTERNAL.to_string(),
                Some(crate::compliance::suppression::hash_hex(
                    &key,
                    number.digits,
                )),
            )
        }
    };
    let audit = AuditEntry::command(
        now.ms(),
        actor,
        "dnc.remove",
        format!("{scope} {}", number.masked()),
        reason.trim().to_string(),
    );
    let removed = store
        .dnc_remove_deliberately(&scope, &number.e164(), suppression.as_deref(), &audit)
        .await?;
    Ok(DndRemoved {
        removed,
        list: scope,
        phone: number.masked(),
    })
}

/// Who runs a command, for records: `--by` (when not blank), else the
/// login name (`USER`, `LOGNAME`, `USERNAME`), else the account's uid.
pub fn actor(by: Option<&str>) -> String {
    let named = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    by.map(str::to_string)
        .and_then(named)
        .or_else(|| {
            ["USER", "LOGNAME", "USERNAME"]
                .into_iter()
                .find_map(|v| std::env::var(v).ok().and_then(named))
        })
        .or_else(|| {
            // No name in the environment (a service, a container): the
            // account's number is still someone.
            std::fs::read_to_string("/proc/self/status")
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()
                .map(|uid| format!("uid {uid}"))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `dialler check`.
#[derive(Debug, Serialize)]
pub struct Checked {
    /// The number as given, masked for people.
    #[serde(skip)]
    pub phone: String,
    /// The verdict.
    #[serde(flatten)]
    pub report: CheckReport,
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(
            f,
            "{}: {}",
            crate::phone::mask(&self.phone),
            if r.allowed { "allowed" } else { "refused" }
        )?;
        for reason in &r.reasons {
            writeln!(f, "  {}: {}", reason.code(), reason.explain())?;
        }
        if let Some(d) = &r.detail {
            writeln!(f, "  {d}")?;
        }
        writeln!(
            f,
            "  time zone: {}",
            if r.timezone.is_empty() {
                "unknown".into()
            } else {
                r.timezone.join(", ")
            }
        )?;
        if let Some(t) = &r.local_time {
            writeln!(f, "  local time: {t}")?;
        }
        match r.next_allowed_at {
            Some(t) if !r.allowed => writeln!(f, "  next allowed: {}", t.to_rfc3339())?,
            None => writeln!(f, "  next allowed: never, until the data is fixed")?,
            _ => {}
        }
        Ok(())
    }
}

/// Checks a number for a campaign at `at`.
pub async fn check(
    store: &Store,
    dnd_dir: &Path,
    campaign: &Campaign,
    phone: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Checked, CommandError> {
    let report = registry::check_number(store, dnd_dir, campaign, phone, at).await?;
    Ok(Checked {
        phone: phone.to_string(),
        report,
    })
}

// ---- agent phones --------------------------------------------------------

/// `dialler phone list`.
#[derive(Debug, Serialize)]
pub struct PhoneList {
    /// Sorted by agent and URI.
    pub phones: Vec<crate::store::AgentPhone>,
}

impl fmt::Display for PhoneList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.phones {
            writeln!(f, "{:<16} {}  (by {})", p.agent_id, p.sip_uri, p.added_by)?;
        }
        Ok(())
    }
}

fn agent_id_arg(agent: &str) -> Result<(), CommandError> {
    if auth::valid_agent_id(agent) {
        Ok(())
    } else {
        Err(usage(auth::AGENT_ID_RULE))
    }
}

/// Binds a phone to an agent: logins may use only bound phones.
pub async fn phone_add(
    store: &Store,
    agent: &str,
    sip_uri: &str,
    actor: &str,
    now: Millis,
) -> Result<PhoneList, CommandError> {
    agent_id_arg(agent)?;
    let uri = sip_uri.trim();
    crate::sip::resolve::SipUri::parse(uri).map_err(|e| usage(format!("{uri}: {e}")))?;
    let by = AuditEntry::command(now.ms(), actor, "", String::new(), String::new());
    store.phone_add(agent, uri, by).await?;
    phone_list(store, Some(agent)).await
}

/// Unbinds a phone from an agent: the text to print, and whether it was
/// bound.
pub async fn phone_remove(
    store: &Store,
    agent: &str,
    sip_uri: &str,
    actor: &str,
    now: Millis,
) -> Result<(String, bool), CommandError> {
    agent_id_arg(agent)?;
    let by = AuditEntry::command(now.ms(), actor, "", String::new(), String::new());
    let removed = store.phone_remove(agent, sip_uri.trim(), by).await?;
    Ok(if removed {
        (format!("{} unbound from {agent}\n", sip_uri.trim()), true)
    } else {
        (
            format!("{} is not bound to {agent}\n", sip_uri.trim()),
            false,
        )
    })
}

/// The provisioned phones, of one agent or all.
pub async fn phone_list(store: &Store, agent: Option<&str>) -> Result<PhoneList, CommandError> {
    Ok(PhoneList {
        phones: store.agent_phones(agent).await?,
    })
}

// ---- tokens --------------------------------------------------------------

/// `dialler token create`: the token, shown once.
#[derive(Debug, Serialize)]
pub struct TokenCreated(pub NewToken);

impl fmt::Display for TokenCreated {
    /// The token alone, so that scripts can take it from stdout.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.0.token)
    }
}

impl TokenCreated {
    /// The note for stderr beside the bare token.
    pub fn note(&self) -> String {
        let t = &self.0;
        format!(
            "token {} ({}{}): shown once, store it now",
            t.id,
            t.role,
            t.agent_id
                .as_deref()
                .map(|a| format!(" for agent {a}"))
                .unwrap_or_default()
        )
    }
}

/// Creates a token.
pub async fn token_create(
    store: &Store,
    role: &str,
    agent: Option<&str>,
    label: Option<&str>,
    actor: &str,
    now: Millis,
) -> Result<TokenCreated, CommandError> {
    let role: Role = role
        .parse()
        .map_err(|e: auth::AuthError| usage(e.to_string()))?;
    let t = auth::create_token(store, role, agent, label, now.ms())
        .await
        .map_err(|e| usage(e.to_string()))?;
    let mut detail = format!("role {role}");
    if let Some(a) = agent {
        detail.push_str(&format!("; agent {a}"));
    }
    if let Some(l) = label {
        detail.push_str(&format!(
            "; label {}",
            l.chars().take(100).collect::<String>()
        ));
    }
    store
        .audit(&AuditEntry::command(
            now.ms(),
            actor,
            "token.create",
            format!("token {}", t.id),
            detail,
        ))
        .await?;
    Ok(TokenCreated(t))
}

/// `dialler token revoke`: whether a valid token was revoked (audited
/// when one was).
pub async fn token_revoke(
    store: &Store,
    id: i64,
    actor: &str,
    now: Millis,
) -> Result<bool, CommandError> {
    let revoked = auth::revoke(store, id, now.ms())
        .await
        .map_err(|e| usage(e.to_string()))?;
    if revoked {
        store
            .audit(&AuditEntry::command(
                now.ms(),
                actor,
                "token.revoke",
                format!("token {id}"),
                String::new(),
            ))
            .await?;
    }
    Ok(revoked)
}

/// `dialler token list`.
#[derive(Debug, Serialize)]
pub struct TokenList {
    /// Tokens, never their secrets.
    pub tokens: Vec<TokenRow>,
}

impl fmt::Display for TokenList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5} {:<10} {:<16} {:<20} {:<20} LABEL",
            "ID", "ROLE", "AGENT", "CREATED", "REVOKED"
        )?;
        let t = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(
                    || "-".to_string(),
                    |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
        };
        for r in &self.tokens {
            writeln!(
                f,
                "{:>5} {:<10} {:<16} {:<20} {:<20} {}",
                r.id,
                r.role,
                r.agent_id.as_deref().unwrap_or("-"),
                t(Some(r.created_at)),
                t(r.revoked_at),
                r.label.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    }
}

/// Lists tokens.
pub async fn token_list(store: &Store) -> Result<TokenList, CommandError> {
    Ok(TokenList {
        tokens: store.token_list().await?,
    })
}

// ---- report ----------------------------------------------------------------

/// A campaign's report over `[from, to)`.
pub async fn report(
    store: &Store,
    campaign: &Campaign,
    from: Millis,
    to: Millis,
    now: Millis,
) -> Result<crate::report::Report, CommandError> {
    let id = store.campaign_id(&campaign.name).await?.ok_or_else(|| {
        usage(format!(
            "campaign {:?} is not in the store; import leads first",
            campaign.name
        ))
    })?;
    crate::report::report(store, campaign, id, from.ms(), to.ms(), now.ms())
        .await
        .map_err(|e| usage(e.to_string()))
}

// ---- simulate --------------------------------------------------------------

/// What `dialler simulate` is asked.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The campaign.
    pub campaign: Campaign,
    /// The scenario, checked.
    pub scenario: Scenario,
    /// Strategy names, or `all`.
    pub strategies: String,
    /// First seed.
    pub seed: u64,
    /// Seeds.
    pub seeds: u64,
    /// A sweep specification.
    pub sweep: Option<String>,
}

/// `dialler simulate` without a sweep.
#[derive(Debug, Serialize)]
pub struct Simulated {
    /// Campaign.
    pub campaign: String,
    /// Scenario.
    pub scenario: String,
    /// Agents.
    pub agents: u32,
    /// Days.
    pub days: u32,
    /// First seed.
    pub seed: u64,
    /// Seeds.
    pub seeds: u64,
    /// Every run.
    pub runs: Vec<SimReport>,
    /// Per strategy, over the seeds (with more than one).
    pub summary: Option<Vec<SeedSummary>>,
    #[serde(skip)]
    header: String,
}

impl fmt::Display for Simulated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header)?;
        match &self.summary {
            Some(rows) => write!(f, "{}", sim::summary_table(rows)),
            None => write!(f, "{}", sim::table(&self.runs)),
        }
    }
}

/// `dialler simulate --sweep`.
#[derive(Debug, Serialize)]
pub struct Swept {
    /// Campaign.
    pub campaign: String,
    /// Scenario.
    pub scenario: String,
    /// Agents.
    pub agents: u32,
    /// Days.
    pub days: u32,
    /// The sweep.
    pub sweep: sim::sweep::Sweep,
    /// One row per (value, strategy).
    pub rows: Vec<sim::sweep::SweepRow>,
    /// The best fixed ratio that kept every window under the limit.
    pub best_ratio: Option<sim::sweep::SweepRow>,
    /// Every run, for `--csv`.
    #[serde(skip)]
    pub reports: Vec<SimReport>,
}

impl fmt::Display for Swept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", sim::sweep::table(self.sweep.param, &self.rows))?;
        if let Some(b) = &self.best_ratio {
            writeln!(
                f,
                "best fixed ratio within the limit: {} (talk {:.3}, worst window {:.2}%)",
                b.summary.strategy, b.summary.talk_share_mean, b.summary.worst_window_max_percent
            )?;
        }
        Ok(())
    }
}

/// The configurations of a simulation without a sweep, in run order.
pub fn simulate_configs(o: &SimulateOptions) -> Result<Vec<SimConfig>, CommandError> {
    let names: Vec<&str> = if o.strategies == "all" {
        sim::ALL_STRATEGIES.to_vec()
    } else {
        o.strategies.split(',').collect()
    };
    let mut configs = Vec::new();
    for name in names {
        let strategy =
            Strategy::parse(name).map_err(|e| usage(format!("--strategy {name}: {e}")))?;
        for seed in o.seed..o.seed + o.seeds.max(1) {
            configs.push(SimConfig {
                campaign: o.campaign.clone(),
                scenario: o.scenario.clone(),
                strategy: strategy.clone(),
                seed,
            });
        }
    }
    Ok(configs)
}

/// Runs the simulations of `o` (no sweep) on all cores, `done` after each.
pub fn simulate(o: &SimulateOptions, done: &(dyn Fn() + Sync)) -> Result<Simulated, CommandError> {
    let configs = simulate_configs(o)?;
    let runs = sim::run_all_with(&configs, done);
    let summary = (o.seeds > 1).then(|| sim::summarise(&runs));
    let c = &o.campaign;
    let sc = &o.scenario;
    Ok(Simulated {
        header: format!(
            "{} on scenario {} ({} agents, {} days, seed {}); abandonment limit {}% per {}",
            c.name,
            sc.name,
            sc.agents,
            sc.days,
            o.seed,
            c.abandon_limit_percent,
            humantime::format_duration(c.abandon_window)
        ),
        campaign: c.name.clone(),
        scenario: sc.name.clone(),
        agents: sc.agents,
        days: sc.days,
        seed: o.seed,
        seeds: o.seeds.max(1),
        runs,
        summary,
    })
}

/// The sweep of `spec` over `o`, and its points.
fn sweep_points(
    o: &SimulateOptions,
    spec: &str,
) -> Result<(sim::sweep::Sweep, Vec<sim::sweep::Point>), CommandError> {
    let sweep: sim::sweep::Sweep = spec
        .parse()
        .map_err(|e: sim::sweep::SweepError| usage(e.to_string()))?;
    let names: Vec<String> = if o.strategies == "all" {
        sim::ALL_STRATEGIES.iter().map(|s| s.to_string()).collect()
    } else {
        o.strategies.split(',').map(str::to_string).collect()
    };
    let base = SimConfig {
        campaign: o.campaign.clone(),
        scenario: o.scenario.clone(),
        strategy: Strategy::Predictive,
        seed: o.seed,
    };
    let points = sweep
        .points(&base, &names, o.seed..o.seed + o.seeds.max(1))
        .map_err(usage)?;
    Ok((sweep, points))
}

/// The number of runs the sweep `spec` makes.
pub fn sweep_runs(o: &SimulateOptions, spec: &str) -> Result<usize, CommandError> {
    Ok(sweep_points(o, spec)?.1.len())
}

/// Runs the sweep `spec` over `o`, `done` after each run.
pub fn simulate_sweep(
    o: &SimulateOptions,
    spec: &str,
    done: &(dyn Fn() + Sync),
) -> Result<Swept, CommandError> {
    let (sweep, points) = sweep_points(o, spec)?;
    let configs: Vec<SimConfig> = points.iter().map(|p| p.config.clone()).collect();
    let reports = sim::run_all_with(&configs, done);
    let rows = sim::sweep::rows(&points, &reports);
    let best_ratio = sim::sweep::best_ratio(&rows).cloned();
    Ok(Swept {
        campaign: o.campaign.name.clone(),
        scenario: o.scenario.name.clone(),
        agents: o.scenario.agents,
        days: o.scenario.days,
        sweep,
        rows,
        best_ratio,
        reports,
    })
}

// ---- sip call / load -------------------------------------------------------

/// What `dialler sip call` and `sip load` share.
#[derive(Debug, Clone)]
pub struct SipOptions {
    /// The provider URI.
    pub uri: String,
    /// Ring timeout, seconds.
    pub ring_timeout: f64,
    /// Hang up answered calls after this long, seconds.
    pub max_talk: Option<f64>,
    /// Digest username.
    pub user: Option<String>,
    /// The environment variable holding the digest password.
    pub password_env: String,
    /// Caller user part.
    pub from: String,
    /// How to find and reach the provider.
    pub net: SipNet,
}

pub use crate::sip::SipNet;

/// The parts of [`SipOptions`] a call needs.
struct SipParts {
    target: crate::sip::resolve::SipUri,
    ring: crate::sip::uac::RingTimeout,
    credentials: Option<crate::sip::auth::Credentials>,
    max_talk: Option<std::time::Duration>,
}

fn sip_parts(o: &SipOptions) -> Result<SipParts, CommandError> {
    let target = crate::sip::resolve::SipUri::parse(&o.uri).map_err(|e| usage(e.to_string()))?;
    let ring = crate::sip::uac::RingTimeout::new(std::time::Duration::from_secs_f64(
        o.ring_timeout.max(0.0),
    ))
    .map_err(|e| usage(e.to_string()))?;
    let credentials = match &o.user {
        Some(u) => Some(crate::sip::auth::Credentials {
            username: u.clone(),
            password: std::env::var(&o.password_env)
                .map_err(|_| usage(format!("--user needs the password in ${}", o.password_env)))?,
        }),
        None => None,
    };
    Ok(SipParts {
        target,
        ring,
        credentials,
        max_talk: o
            .max_talk
            .map(|t| std::time::Duration::from_secs_f64(t.max(0.0))),
    })
}

/// `dialler sip call`.
#[derive(Debug, Serialize)]
pub struct SipCalled {
    /// The target, for people (masked).
    #[serde(skip)]
    pub uri: String,
    /// The call.
    #[serde(flatten)]
    pub report: crate::sip::ua::CallReport,
}

impl fmt::Display for SipCalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.report.summary;
        writeln!(
            f,
            "{}: {}",
            crate::sip::masked_uri(&self.uri),
            s.outcome.name()
        )?;
        let codes: Vec<String> = s.codes.iter().map(u16::to_string).collect();
        writeln!(f, "  codes: {}", codes.join(" "))?;
        let ms = |d: Option<std::time::Duration>| {
            d.map_or("-".to_string(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1000.0)
            })
        };
        writeln!(f, "  first response after {}", ms(s.first_response_after))?;
        writeln!(f, "  ringing after {}", ms(s.progress_after))?;
        writeln!(f, "  answered after {}", ms(s.answer_after))?;
        writeln!(f, "  200 OK to ACK {}", ms(self.report.ack_latency))?;
        writeln!(f, "  talk {}", ms(s.talk))?;
        if let Some(p) = self.report.prompt_packets {
            writeln!(f, "  prompt: {p} RTP packets sent")?;
        }
        Ok(())
    }
}

/// Places one call; plays the generated prompt for `play` seconds when
/// answered.
pub async fn sip_call(o: &SipOptions, play: Option<f64>) -> Result<SipCalled, CommandError> {
    let p = sip_parts(o)?;
    let cfg = o
        .net
        .ua_config(&p.target)
        .await
        .map_err(|e| usage(e.to_string()))?;
    let ua = crate::sip::ua::Ua::start(cfg)
        .await
        .map_err(|e| usage(e.to_string()))?;
    let report = crate::sip::ua::call_once(
        ua,
        crate::sip::uac::CallParams {
            ids: None,
            target: p.target.uri.clone(),
            from_user: o.from.clone(),
            ring_timeout: p.ring,
            credentials: p.credentials,
            media_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            max_talk: p.max_talk,
            display_name: None,
            extra_headers: Vec::new(),
            destinations: Vec::new(),
        },
        play,
    )
    .await
    .map_err(|e| usage(e.to_string()))?;
    Ok(SipCalled {
        uri: p.target.uri,
        report,
    })
}

/// `dialler sip load`.
#[derive(Debug, Serialize)]
pub struct SipLoaded(pub crate::sip::load::LoadReport);

impl fmt::Display for SipLoaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        writeln!(
            f,
            "{} calls in {:.1} s: {:.1} calls/s (asked {}), peak {} in flight, {:.2} s CPU",
            r.calls, r.elapsed_s, r.achieved_cps, r.target_cps, r.peak_in_flight, r.cpu_s
        )?;
        for (o, n) in &r.outcomes {
            writeln!(f, "  {:<12} {n:>8}", o.name())?;
        }
        if r.unconfirmed_hangups > 0 {
            writeln!(
                f,
                "  {} hang-ups not confirmed by the far end (BYE timed out, refused or failed)",
                r.unconfirmed_hangups
            )?;
        }
        for (name, p) in [
            ("setup (INVITE to first response)", r.setup_ms),
            ("answer (INVITE to 200)", r.answer_ms),
            ("200 OK to ACK", r.ack_ms),
        ] {
            writeln!(
                f,
                "  {name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
                p.p50, p.p90, p.p99, p.max, p.n
            )?;
        }
        if r.backoffs > 0 {
            writeln!(
                f,
                "  backed off {} times, {:.1} s in all",
                r.backoffs, r.backoff_s
            )?;
        }
        Ok(())
    }
}

/// Places `calls` calls at `cps`, at most `max_channels` at once.
pub async fn sip_load(
    o: &SipOptions,
    cps: u32,
    calls: u64,
    max_channels: usize,
) -> Result<SipLoaded, CommandError> {
    let p = sip_parts(o)?;
    let ua = o
        .net
        .ua_config(&p.target)
        .await
        .map_err(|e| usage(e.to_string()))?;
    let cfg = crate::sip::load::LoadConfig {
        uri: p.target.uri.clone(),
        ua,
        cps,
        calls,
        max_channels,
        ring_timeout: p.ring,
        max_talk: p.max_talk,
        credentials: p.credentials,
        from_user: o.from.clone(),
    };
    // One event loop on a thread of its own (see `run_on_this_thread`).
    let report = tokio::task::spawn_blocking(move || crate::sip::load::run_on_this_thread(cfg))
        .await
        .map_err(|e| usage(format!("load run: {e}")))?
        .map_err(|e| usage(e.to_string()))?;
    Ok(SipLoaded(report))
}

// ---- run -------------------------------------------------------------------

/// What `dialler run` is asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Campaigns to run; empty: every valid campaign in the folder.
    pub campaigns: Vec<String>,
    /// The campaign folder.
    pub campaigns_dir: PathBuf,
    /// The DND folder.
    pub dnd_dir: PathBuf,
    /// The provider every call goes to, instead of the campaigns' URIs.
    pub provider: Option<std::net::SocketAddr>,
    /// How to find and reach the campaigns' providers.
    pub net: SipNet,
    /// `--rtp-ports FIRST-LAST`.
    pub rtp_ports: Option<String>,
    /// Local SIP address.
    pub sip_bind: std::net::SocketAddr,
    /// Node name.
    pub node: String,
    /// Shutdown grace, seconds.
    pub grace: f64,
    /// The service's clock.
    pub clock: crate::clock::Clock,
}

/// The valid campaigns of `dir` named in `names` (every one when `names`
/// is empty); a name with no valid campaign is an error.
fn chosen_campaigns(dir: &Path, names: &[String]) -> Result<Vec<Campaign>, CommandError> {
    let chosen: Vec<Campaign> = campaign::load_dir(dir)?
        .campaigns
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| names.is_empty() || names.contains(&c.name))
        .collect();
    for name in names {
        if !chosen.iter().any(|c| &c.name == name) {
            return Err(usage(format!(
                "no valid campaign {name} in {}",
                dir.display()
            )));
        }
    }
    Ok(chosen)
}

/// Loads the chosen campaigns and their registries and starts the live
/// service on `listener`; it stops when `shutdown` completes.
pub async fn start_service(
    store: &Store,
    o: RunOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<crate::service::Running, CommandError> {
    let chosen = chosen_campaigns(&o.campaigns_dir, &o.campaigns)?;
    if chosen.is_empty() {
        return Err(usage(format!(
            "no campaigns to run in {}",
            o.campaigns_dir.display()
        )));
    }
    let refs: Vec<&Campaign> = chosen.iter().collect();
    let registries = registry::load(store, &o.dnd_dir, &refs).await?;
    let mut cfg = crate::service::ServiceConfig::new(store.clone(), chosen, registries);
    cfg.dnd_dir = Some(o.dnd_dir.clone());
    cfg.clock = o.clock;
    cfg.provider = o.provider;
    cfg.net = o.net;
    if let Some(r) = &o.rtp_ports {
        let range = crate::media::ports::PortRange::parse(r)
            .map_err(|e| usage(format!("--rtp-ports {r}: {e}")))?;
        cfg.rtp_ports = Some(std::sync::Arc::new(range));
    }
    cfg.sip_bind = o.sip_bind;
    cfg.node = o.node;
    cfg.grace = std::time::Duration::from_secs_f64(o.grace.max(0.0));
    crate::service::start(cfg, listener, shutdown)
        .await
        .map_err(|e| usage(e.to_string()))
}

// ---- node recover ----------------------------------------------------------

/// How long a node must have been silent (no heartbeat for any campaign or
/// agent session) before `dialler node recover` treats it as gone without
/// `--force`: twice the claim lease. A node merely cut off from the store
/// may still be on calls; recovering it puts their leads back for retry.
pub const NODE_GONE: std::time::Duration = std::time::Duration::from_secs(600);

/// What `dialler node recover` did.
#[derive(Debug, Serialize)]
pub struct NodeRecovered {
    /// The node.
    pub node: String,
    /// Its last heartbeat (ms since the epoch).
    pub last_beat: i64,
    /// Per campaign: name, calls closed as interrupted, agent intervals
    /// closed.
    pub campaigns: Vec<NodeRecoveredCampaign>,
    /// SIP legs the node placed still on record (its restart under the same
    /// name ends them; otherwise the carrier's timers).
    pub sip_legs_on_record: usize,
    /// Done with `--force` while the node had beaten recently.
    pub forced: bool,
}

/// One campaign of [`NodeRecovered`].
#[derive(Debug, Serialize)]
pub struct NodeRecoveredCampaign {
    /// Campaign name.
    pub campaign: String,
    /// Calls closed as interrupted (an unbridged answer counted as an abandon).
    pub interrupted: u64,
    /// Agent state intervals closed.
    pub agents_closed: u64,
}

impl std::fmt::Display for NodeRecovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "node {} recovered{} (audited)",
            self.node,
            if self.forced { " with --force" } else { "" }
        )?;
        for c in &self.campaigns {
            writeln!(
                f,
                "  {}: {} calls closed as interrupted, {} agent intervals closed",
                c.campaign, c.interrupted, c.agents_closed
            )?;
        }
        if self.sip_legs_on_record > 0 {
            writeln!(
                f,
                "  {} SIP legs it placed are still on record: a restart of the node under the same name ends them",
                self.sip_legs_on_record
            )?;
        }
        Ok(())
    }
}

/// `dialler node recover`: does for a node that will not come back what
/// its own restart would (the same [`crate::service::recovery::recover`]):
/// its calls in flight end as interrupted at its last heartbeat (a person
/// who answered and was never put through enters the ledger as an
/// abandon), their leads wait the retry delay, its claims and agent
/// sessions are given back and its agent intervals closed, in every
/// campaign of `campaigns_dir` (or only `campaign`) it ran. Refused while
/// the node has beaten within [`NODE_GONE`] unless `force`: it may still
/// be on those calls; and for a node with no heartbeat on record (it never
/// ran, or stopped cleanly). Audited.
pub async fn node_recover(
    store: &Store,
    campaigns_dir: &Path,
    node: &str,
    campaign: Option<&str>,
    force: bool,
    actor: &str,
    now: Millis,
) -> Result<NodeRecovered, CommandError> {
    let Some(last_beat) = store.node_last_beat(node).await? else {
        // A node that stops cleanly leaves the campaigns and gives its
        // sessions back: nothing of it is left to recover.
        return Err(usage(format!(
            "no node {node} on record: it never ran a campaign here, or it stopped cleanly (nothing to recover)"
        )));
    };
    let gone_ms = i64::try_from(NODE_GONE.as_millis()).unwrap_or(i64::MAX);
    let recent = last_beat > now.ms().saturating_sub(gone_ms);
    if recent && !force {
        let ago = (now.ms() - last_beat).max(0) / 1000;
        return Err(usage(format!(
            "node {node} beat {ago} s ago: it may still be running or on calls; stop it (or wait until it has been silent for {} min), or pass --force if it is known to be gone",
            NODE_GONE.as_secs() / 60
        )));
    }
    let names: Vec<String> = campaign.map(str::to_string).into_iter().collect();
    let chosen = chosen_campaigns(campaigns_dir, &names)?;
    let mut campaigns = Vec::new();
    for c in &chosen {
        let Some(id) = store.campaign_id(&c.name).await? else {
            continue;
        };
        let r = crate::service::recovery::recover(store, id, c, node, now).await?;
        store.campaign_leave(id, node).await?;
        if r.interrupted > 0 || r.agents_closed > 0 {
            campaigns.push(NodeRecoveredCampaign {
                campaign: c.name.clone(),
                interrupted: r.interrupted,
                agents_closed: r.agents_closed,
            });
        }
    }
    store.session_release_node(node).await?;
    let sip_legs_on_record = store.legs_of_node(node).await?.len();
    let detail = campaigns
        .iter()
        .map(|c| format!("{}: {} interrupted", c.campaign, c.interrupted))
        .collect::<Vec<_>>()
        .join("; ");
    store
        .audit(&AuditEntry::command(
            now.ms(),
            actor,
            "node.recover",
            format!("node {node}"),
            format!(
                "{detail}{}",
                if recent {
                    "; forced while recently beating"
                } else {
                    ""
                }
            ),
        ))
        .await?;
    Ok(NodeRecovered {
        node: node.to_string(),
        last_beat,
        campaigns,
        sip_legs_on_record,
        forced: recent,
    })
}

// ---- sandbox ---------------------------------------------------------------

/// Checks the sandbox's outcome weights.
pub fn sandbox_weights(
    w: crate::sip::sandbox::Weights,
) -> Result<crate::sip::sandbox::Weights, CommandError> {
    let all = [w.answer, w.busy, w.no_answer, w.reject, w.unavailable];
    if all.iter().any(|x| !x.is_finite() || *x < 0.0) || all.iter().sum::<f64>() <= 0.0 {
        return Err(usage(
            "outcome weights must be non-negative and not all zero",
        ));
    }
    Ok(w)
}

// ---- audit -------------------------------------------------------------

/// `dialler audit`: a page of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditList {
    /// Oldest first.
    pub entries: Vec<crate::store::AuditRecord>,
}

impl fmt::Display for AuditList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return writeln!(f, "no audit entries match");
        }
        writeln!(
            f,
            "{:>6}  {:<24}  {:<28}  {:<18}  {:<16}  {:>6}  {:<22}  detail",
            "id", "at (UTC)", "actor", "action", "subject", "status", "origin"
        )?;
        for r in &self.entries {
            let e = &r.entry;
            let at = Millis(e.at)
                .utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let status = e.status.map_or_else(|| "-".to_string(), |s| s.to_string());
            writeln!(
                f,
                "{:>6}  {:<24}  {:<28}  {:<18}  {:<16}  {:>6}  {:<22}  {}",
                r.id, at, e.actor, e.action, e.subject, status, e.origin, e.detail
            )?;
        }
        Ok(())
    }
}

/// The filter `dialler audit`'s options ask for (times in RFC 3339).
#[allow(clippy::too_many_arguments)]
pub fn audit_filter(
    since: Option<&str>,
    until: Option<&str>,
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    failed: bool,
    after_id: Option<i64>,
    limit: i64,
) -> Result<crate::store::AuditFilter, CommandError> {
    if limit < 1 {
        return Err(usage("--limit must be at least 1"));
    }
    let time = |t: Option<&str>| -> Result<Option<i64>, CommandError> {
        t.map(|t| time_arg(Some(t), chrono::Utc::now()).map(|t| t.timestamp_millis()))
            .transpose()
    };
    Ok(crate::store::AuditFilter {
        since: time(since)?,
        until: time(until)?,
        actor,
        action,
        subject,
        failed: failed.then_some(true),
        after_id,
        limit,
    })
}

/// The audit entries `filter` selects.
pub async fn audit_list(
    store: &Store,
    filter: &crate::store::AuditFilter,
) -> Result<AuditList, CommandError> {
    Ok(AuditList {
        entries: store.audit_query(filter).await?,
    })
}

// ---- webhooks ------------------------------------------------------------

/// `dialler webhook add`: the new subscription and its secret (shown once).
#[derive(Debug, Serialize)]
pub struct WebhookAdded {
    /// The subscription's id.
    pub id: i64,
    /// The campaign.
    pub campaign: String,
    /// Where events go.
    pub url: String,
    /// The events sent.
    pub events: Vec<String>,
    /// The signing secret: give it to the receiver; it is not shown again.
    pub secret: String,
}

impl fmt::Display for WebhookAdded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "webhook {} for {}: {} ({})",
            self.id,
            self.campaign,
            self.url,
            self.events.join(", ")
        )?;
        writeln!(
            f,
            "signing secret (shown once; X-Dialler-Signature is HMAC-SHA256 over \"t.body\"):"
        )?;
        writeln!(f, "{}", self.secret)
    }
}

/// Subscribes `url` to campaign `c`'s `events` (comma-separated, or
/// `all`); audited as `actor`.
pub async fn webhook_add(
    store: &Store,
    c: &Campaign,
    url: &str,
    events: &str,
    actor: &str,
    now: Millis,
) -> Result<WebhookAdded, CommandError> {
    let url = crate::webhooks::check_url(url).map_err(|e| usage(e.to_string()))?;
    let events = crate::webhooks::parse_events(events).map_err(|e| usage(e.to_string()))?;
    let campaign_id = store.upsert_campaign(c, now.ms()).await?;
    let secret = crate::webhooks::new_secret();
    let by = AuditEntry::command(now.ms(), actor, "", String::new(), String::new());
    let id = store
        .webhook_add(campaign_id, &url, &events, &secret, &by)
        .await?;
    Ok(WebhookAdded {
        id,
        campaign: c.name.clone(),
        url,
        events,
        secret,
    })
}

/// `dialler webhook list`.
#[derive(Debug, Serialize)]
pub struct WebhookList(pub Vec<crate::store::WebhookSubscription>);

impl fmt::Display for WebhookList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no webhooks");
        }
        for w in &self.0 {
            let state = if w.removed_at.is_some() {
                "removed"
            } else {
                "live"
            };
            writeln!(
                f,
                "{:>4}  {:<20}  {:<7}  {}  [{}]  by {}",
                w.id,
                w.campaign,
                state,
                w.url,
                w.events.join(","),
                w.created_by
            )?;
        }
        Ok(())
    }
}

/// `dialler webhook log`.
#[derive(Debug, Serialize)]
pub struct WebhookLog(pub Vec<crate::store::OutboxRow>);

impl fmt::Display for WebhookLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no webhook events");
        }
        writeln!(
            f,
            "{:>8}  {:>4}  {:<22}  {:<24}  {:<9}  {:>5}  last",
            "event", "sub", "type", "created (UTC)", "state", "tries"
        )?;
        for e in &self.0 {
            let last = match (&e.last_status, &e.last_error) {
                (_, Some(err)) => err.clone(),
                (Some(s), None) => s.to_string(),
                (None, None) => "-".into(),
            };
            writeln!(
                f,
                "{:>8}  {:>4}  {:<22}  {:<24}  {:<9}  {:>5}  {last}",
                e.id,
                e.subscription_id,
                e.event,
                crate::webhooks::time(e.created_at),
                e.state(),
                e.attempts
            )?;
        }
        Ok(())
    }
}

/// The delivery log, checked options.
pub async fn webhook_log(
    store: &Store,
    subscription: Option<i64>,
    state: Option<&str>,
    limit: i64,
) -> Result<WebhookLog, CommandError> {
    if let Some(s) = state
        && !matches!(s, "pending" | "delivered" | "failed")
    {
        return Err(usage(format!(
            "--state {s}: use pending, delivered or failed"
        )));
    }
    if limit < 1 {
        return Err(usage("--limit must be at least 1"));
    }
    Ok(WebhookLog(
        store.webhook_log(subscription, state, limit).await?,
    ))
}

/// Replays one event, or a subscription's since a time (RFC 3339);
/// audited. Returns how many.
pub async fn webhook_replay(
    store: &Store,
    event: Option<i64>,
    subscription: Option<i64>,
    since: Option<&str>,
    actor: &str,
    now: Millis,
) -> Result<u64, CommandError> {
    let what = match (event, subscription, since) {
        (Some(id), None, None) => crate::store::Replay::Event(id),
        (None, Some(subscription_id), Some(t)) => crate::store::Replay::Since {
            subscription_id,
            since: time_arg(Some(t), now.utc())?.timestamp_millis(),
        },
        _ => {
            return Err(usage(
                "give --event ID, or --subscription ID with --since TIME",
            ));
        }
    };
    let by = AuditEntry::command(now.ms(), actor, "", String::new(), String::new());
    Ok(store.webhook_replay(&what, &by).await?)
}
