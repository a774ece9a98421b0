//! Campaign files (`campaigns/*.toml`): parsing and validation.
//!
//! Owns the campaign configuration and every rule a file must meet before a
//! campaign may run: a campaign can only narrow its regulatory profile
//! (hours, abandonment limit and window), credentials are named by
//! environment variable and never written in the file, and every error is
//! reported with file, line and field. Reading files is the only I/O here.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::outcome::Outcome;
pub use crate::pacing::Strategy;
pub use desktop::{Desktop, PauseCode};

mod desktop;
use crate::phone::Country;
use crate::profile::{DayWindow, Profile, WeekPlan, day_index};

/// One problem in a campaign file, located by line, column and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field, such as `retry.delay.busy`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.message
        )
    }
}

/// Errors loading campaigns.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid campaign.
    #[error("{} has {} error(s):\n{}", path.display(), errors.len(), list(errors))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        errors: Vec<ConfigError>,
    },
    /// No campaign file has this name.
    #[error("no campaign named {name:?} in {}", dir.display())]
    NotFound {
        /// The name asked for.
        name: String,
        /// Where campaigns were looked for.
        dir: PathBuf,
    },
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// India's promotional categories (NCPR preferences), 1 to 8.
pub const NCPR_CATEGORIES: [&str; 8] = [
    "banking, insurance, financial products, credit cards",
    "real estate",
    "education",
    "health",
    "consumer goods and automobiles",
    "communication, broadcasting, entertainment, IT",
    "tourism and leisure",
    "food and beverages",
];

/// The kind of call, which decides India's caller-ID series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallType {
    /// Commercial promotion (India: 140 series).
    Promotional,
    /// Service call to an existing customer (India: 160 series).
    Service,
    /// Transactional call (India: 160 series).
    Transactional,
}

/// The longest duration a campaign file takes (a year and a day).
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// Call outcomes that a retry delay can be set for.
pub const RETRY_OUTCOMES: [&str; 7] = [
    "busy",
    "no_answer",
    "machine",
    "rejected",
    "failure",
    "abandoned",
    "callback",
];

/// A disposition agents may record, with what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disposition {
    /// Short stable code, such as `SALE`.
    pub code: String,
    /// What agents see.
    pub label: String,
    /// Counts as a conversion.
    #[serde(default)]
    pub conversion: bool,
    /// The right person was reached.
    #[serde(default)]
    pub contact: bool,
    /// The person asked not to be called again: the number joins the
    /// internal do-not-call list.
    #[serde(default)]
    pub dnc: bool,
    /// The agent schedules a call back.
    #[serde(default)]
    pub callback: bool,
}

/// The SIP trunk a campaign dials through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    /// SIP URI of the provider's proxy, `sip:` or `sips:`.
    pub uri: String,
    /// Environment variable holding the digest user name, if any.
    pub username_env: Option<String>,
    /// Environment variable holding the digest password, if any.
    pub password_env: Option<String>,
    /// Calls per second the provider accepts.
    pub cps: u32,
    /// Concurrent channels the trunk carries.
    pub max_channels: u32,
    /// The 200 OK header in which the provider reports its
    /// answering-machine detection (`machine`/`fax` or `human`), if it
    /// runs one. Without it every answer counts as a person.
    pub amd_header: Option<String>,
    /// The caller's name, sent as the display name in From (the US TSR and
    /// UK guidance expect the seller's name with the number).
    pub caller_name: Option<String>,
    /// The identity the trunk should assert for our calls, sent as
    /// P-Asserted-Identity (RFC 3325): a `sip:`, `sips:` or `tel:` URI.
    /// Nothing asks the network to withhold it: telemarketing rules
    /// require the caller ID to be shown, so no Privacy header is sent.
    pub asserted_identity: Option<String>,
    /// Register with the trunk before and while dialling (`register =
    /// true`): the AOR is the digest user at the URI's host, refreshed
    /// before `register_expires` (seconds, 3600 by default) runs out.
    pub register: bool,
    /// The registration expiry to ask for, seconds.
    pub register_expires: u32,
}

/// Optional costs for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    /// ISO 4217 currency, such as `INR`.
    pub currency: String,
    /// Trunk cost per connected minute.
    #[serde(default)]
    pub trunk_per_minute: f64,
    /// Agent cost per logged-in hour.
    #[serde(default)]
    pub agent_per_hour: f64,
}

/// `[costs]` as written, each figure with its place in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCosts {
    currency: Spanned<String>,
    #[serde(default)]
    trunk_per_minute: Option<Spanned<f64>>,
    #[serde(default)]
    agent_per_hour: Option<Spanned<f64>>,
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    /// Unique name, used on the command line.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Regulatory profile.
    pub profile: Profile,
    /// Kind of call (India's caller-ID series depends on it).
    pub call_type: CallType,
    /// India's NCPR category (1-8) the campaign's offer belongs to.
    pub dnd_category: Option<u8>,
    /// Presented caller ID, E.164.
    pub caller_id: String,
    /// Give up ringing after this long (at least the profile's minimum).
    #[serde(with = "secs")]
    pub ring_timeout: Duration,
    /// Abandonment limit the campaign holds, percent of human answers.
    pub abandon_limit_percent: f64,
    /// Abandonment rate the pacing aims at, percent (at most the limit).
    pub abandon_target_percent: f64,
    /// Rolling window the abandonment rate is measured over.
    #[serde(with = "secs")]
    pub abandon_window: Duration,
    /// How long the safe-harbour message an abandoned call hears lasts
    /// (`[abandonment] message_length`, 6 s by default).
    #[serde(with = "secs")]
    pub safe_harbour: Duration,
    /// The recorded safe-harbour message (`[abandonment] message_file`, a
    /// mono 8 kHz WAV (16-bit PCM or G.711) naming the seller and a number to call
    /// back), relative paths taken from the campaign file's folder. `None`:
    /// a generated chime and tone, which no regulator accepts as the
    /// message; `dialler validate` says so.
    pub message_file: Option<std::path::PathBuf>,
    /// Pacing strategy.
    pub strategy: Strategy,
    /// Highest dial level (calls per ready agent) pacing may use.
    pub max_dial_level: f64,
    /// The share of attempts expected to reach a person, before any call
    /// has shown it (`[pacing] expected_answer_rate`).
    pub expected_answer_rate: Option<f64>,
    /// The handle time (talk and wrap-up) expected before any call has
    /// shown it (`[pacing] expected_handle`).
    #[serde(with = "opt_secs")]
    pub expected_handle: Option<Duration>,
    /// Calling hours per weekday, Monday first, already narrowed.
    pub hours: WeekPlan,
    /// Maximum attempts per lead.
    pub max_attempts: u32,
    /// Maximum attempts per lead per local day.
    pub max_attempts_per_day: u32,
    /// Minimum delay before the next attempt, per outcome.
    #[serde(serialize_with = "secs_map")]
    pub retry_delay: BTreeMap<Outcome, Duration>,
    /// The delay before a `callback` disposition's lead is dialled again
    /// when the agent gives no time (`[retry] delay.callback`).
    #[serde(with = "opt_secs")]
    pub callback_delay: Option<Duration>,
    /// How long after its time a callback an agent kept for themself
    /// waits for that agent before any agent may take it
    /// (`[retry] callback_grace`, 15 minutes unless set).
    #[serde(with = "secs")]
    pub callback_grace: Duration,
    /// Dispositions agents may record.
    pub dispositions: Vec<Disposition>,
    /// The SIP trunk.
    pub provider: Provider,
    /// Costs for reports.
    pub costs: Option<Costs>,
    /// What the agent desktop shows: script and pause codes.
    pub desktop: Desktop,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

fn secs_map<S: serde::Serializer>(
    m: &BTreeMap<Outcome, Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k.code(), v.as_secs())))
}

impl Campaign {
    /// The country the campaign dials.
    pub fn country(&self) -> Country {
        self.profile.country()
    }

    /// The retry delay after `outcome`, or none when the file sets none
    /// (see [`crate::policy::retry_delay`] for the delay that applies).
    pub fn retry_delay(&self, outcome: Outcome) -> Option<Duration> {
        self.retry_delay.get(&outcome).copied()
    }

    /// Loads and validates one campaign file.
    pub fn load(path: &Path) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Campaign::parse(&text, path).map_err(|errors| CampaignError::Invalid {
            path: path.to_path_buf(),
            errors,
        })
    }

    /// Parses and validates campaign text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Campaign, Vec<ConfigError>> {
        let mut v = Validator {
            text,
            path,
            errors: Vec::new(),
        };
        let raw: RawCampaign = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let field = field_at(text, span.clone(), e.message());
                v.error(span, &field, e.message().trim().to_string());
                return Err(v.errors);
            }
        };
        let campaign = v.campaign(raw);
        if v.errors.is_empty() {
            campaign.ok_or(v.errors)
        } else {
            Err(v.errors)
        }
    }
}

/// The dotted field a TOML error is about: the key on the line its span
/// starts on, under the table above it (`abandonment.target_percent`);
/// for an error with no key there (a missing field, whose span is the
/// table), the field serde names in backticks ("missing field `name`").
/// The message's backticks alone name the value as often as the field
/// ("unknown variant `fr`").
fn field_at(text: &str, span: std::ops::Range<usize>, message: &str) -> String {
    let named = || {
        message
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "(syntax)".to_string())
    };
    if message.trim_start().starts_with("missing field") {
        return named();
    }
    let start = span.start.min(text.len());
    let Some(prefix) = text.get(..start) else {
        return named();
    };
    let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').trim())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'));
    let Some(key) = key else {
        return named();
    };
    let table = text[..line_start].lines().rev().find_map(|l| {
        let t = l.trim();
        t.starts_with('[').then(|| {
            t.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string()
        })
    });
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    }
}

/// The line of `text` (a campaign or scenario file) a dotted field is on: `talk.mean`
/// is the `mean` under `[talk]`, `breaks[1]` the second `[[breaks]]`, a
/// table's name its header, a top-level key its own line; 1 when not
/// found.
pub(crate) fn field_line(text: &str, field: &str) -> usize {
    let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
    let key_at = |key: &str, from: usize| {
        lines[from..]
            .iter()
            .position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|i| from + i)
    };
    if let Some((name, index)) = field.split_once('[') {
        let n: usize = index.trim_end_matches(']').parse().unwrap_or(0);
        let header = format!("[[{name}]]");
        return lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(&header))
            .nth(n)
            .map_or(1, |(i, _)| i + 1);
    }
    let found = match field.split_once('.') {
        Some((table, key)) => {
            let header = format!("[{table}]");
            match lines.iter().position(|l| l.starts_with(&header)) {
                Some(h) => key_at(key, h + 1).or(Some(h)),
                // An inline table: `table = { key = ... }`.
                None => key_at(table, 0),
            }
        }
        None => key_at(field, 0).or_else(|| {
            let header = format!("[{field}]");
            lines.iter().position(|l| l.starts_with(&header))
        }),
    };
    found.map_or(1, |i| i + 1)
}

/// The campaigns of a folder.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid campaigns with their files, sorted by file name.
    pub campaigns: Vec<(PathBuf, Campaign)>,
    /// Files that failed validation, with every error.
    pub invalid: Vec<CampaignError>,
}

/// Loads every `*.toml` in `dir`: the valid campaigns, and the errors of the
/// others. Names must be unique across files.
pub fn load_dir(dir: &Path) -> Result<Loaded, CampaignError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CampaignError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut ok: Vec<(PathBuf, Campaign)> = Vec::new();
    let mut bad = Vec::new();
    for path in paths {
        match Campaign::load(&path) {
            Ok(c) => {
                if let Some((other, _)) = ok.iter().find(|(_, o)| o.name == c.name) {
                    // At the line that names it.
                    let line = std::fs::read_to_string(&path).map_or(1, |t| field_line(&t, "name"));
                    bad.push(CampaignError::Invalid {
                        path: path.clone(),
                        errors: vec![ConfigError {
                            file: path.clone(),
                            line,
                            column: 1,
                            field: "name".into(),
                            message: format!("{:?} is already used by {}", c.name, other.display()),
                        }],
                    });
                } else {
                    ok.push((path, c));
                }
            }
            Err(e) => bad.push(e),
        }
    }
    Ok(Loaded {
        campaigns: ok,
        invalid: bad,
    })
}

/// Finds the campaign called `name` in `dir` and validates it.
pub fn find(dir: &Path, name: &str) -> Result<Campaign, CampaignError> {
    let Loaded {
        campaigns: ok,
        invalid: bad,
    } = load_dir(dir)?;
    if let Some((_, c)) = ok.into_iter().find(|(_, c)| c.name == name) {
        return Ok(c);
    }
    // A file whose stem is the name but which failed validation: say why,
    // rather than "not found".
    for e in bad {
        if let CampaignError::Invalid { path, .. } = &e
            && path.file_stem().is_some_and(|s| s == name)
        {
            return Err(e);
        }
    }
    Err(CampaignError::NotFound {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    })
}

// ---- raw file form -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    profile: Spanned<Profile>,
    call_type: Option<Spanned<CallType>>,
    dnd_category: Option<Spanned<i64>>,
    caller_id: Spanned<String>,
    ring_timeout: Spanned<String>,
    abandonment: Spanned<RawAbandonment>,
    pacing: RawPacing,
    calling_hours: Option<BTreeMap<String, Spanned<String>>>,
    retry: RawRetry,
    dispositions: Spanned<Vec<Spanned<Disposition>>>,
    provider: RawProvider,
    costs: Option<Spanned<RawCosts>>,
    desktop: Option<Spanned<desktop::RawDesktop>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbandonment {
    limit_percent: Option<Spanned<f64>>,
    target_percent: Spanned<f64>,
    window: Option<Spanned<String>>,
    message_length: Option<Spanned<String>>,
    message_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPacing {
    strategy: Spanned<String>,
    max_dial_level: Option<Spanned<f64>>,
    expected_answer_rate: Option<Spanned<f64>>,
    expected_handle: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Spanned<i64>,
    max_attempts_per_day: Option<Spanned<i64>>,
    #[serde(default)]
    delay: BTreeMap<String, Spanned<String>>,
    callback_grace: Option<Spanned<String>>,
}

/// How long a kept callback waits for its agent unless the campaign says.
pub const DEFAULT_CALLBACK_GRACE: Duration = Duration::from_secs(15 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    uri: Spanned<String>,
    username_env: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    cps: Option<Spanned<i64>>,
    max_channels: Option<Spanned<i64>>,
    amd_header: Option<Spanned<String>>,
    caller_name: Option<Spanned<String>>,
    asserted_identity: Option<Spanned<String>>,
    register: Option<Spanned<bool>>,
    register_expires: Option<Spanned<i64>>,
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(start, |nl| start - nl - 1) + 1;
        self.errors.push(ConfigError {
            file: self.path.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn duration(&mut self, s: &Spanned<String>, field: &str) -> Option<Duration> {
        match humantime::parse_duration(s.get_ref().trim()) {
            // No setting of a campaign is longer than a year; a longer one
            // is a slip of the pen, and one too long for a date would be
            // added as nothing (a retry delay that no longer holds).
            Ok(d) if d > MAX_DURATION => {
                self.error(
                    s.span(),
                    field,
                    format!(
                        "{:?} is longer than any setting takes: at most 366 days",
                        s.get_ref()
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    s.span(),
                    field,
                    format!(
                        "{:?} is not a duration ({e}); write 30s, 15m, 72h or 30d",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn positive(&mut self, s: &Spanned<i64>, field: &str, max: i64) -> Option<u32> {
        let v = *s.get_ref();
        if v < 1 || v > max {
            self.error(s.span(), field, format!("{v} must be between 1 and {max}"));
            None
        } else {
            u32::try_from(v).ok()
        }
    }

    fn campaign(&mut self, raw: RawCampaign) -> Option<Campaign> {
        let profile = *raw.profile.get_ref();
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error(
                raw.name.span(),
                "name",
                format!("{name:?}: use letters, digits, '-' and '_' only"),
            );
        }
        let call_type = raw
            .call_type
            .as_ref()
            .map_or(CallType::Promotional, |c| *c.get_ref());

        let dnd_category = self.dnd_category(&raw, profile);
        let caller_id = self.caller_id(&raw, profile, call_type, dnd_category);

        let ring_timeout = self.duration(&raw.ring_timeout, "ring_timeout");
        if let Some(r) = ring_timeout
            && r < profile.min_ring()
        {
            self.error(
                raw.ring_timeout.span(),
                "ring_timeout",
                format!(
                    "{} is too short: ring at least {} s",
                    raw.ring_timeout.get_ref(),
                    profile.min_ring().as_secs()
                ),
            );
        }
        if let Some(r) = ring_timeout
            && r > Duration::from_secs(120)
        {
            self.error(raw.ring_timeout.span(), "ring_timeout", "at most 120 s");
        }

        let (limit, target, window) = self.abandonment(&raw.abandonment, profile);
        let safe_harbour = match &raw.abandonment.get_ref().message_length {
            None => Some(crate::policy::DEFAULT_SAFE_HARBOUR),
            Some(m) => match self.duration(m, "abandonment.message_length") {
                Some(d) if (Duration::from_secs(2)..=Duration::from_secs(60)).contains(&d) => {
                    Some(d)
                }
                Some(_) => {
                    self.error(
                        m.span(),
                        "abandonment.message_length",
                        "between 2s and 60s: long enough to name the seller and a number to call back",
                    );
                    None
                }
                None => None,
            },
        };
        let (safe_harbour, message_file) = match &raw.abandonment.get_ref().message_file {
            None => (safe_harbour, None),
            Some(f) => self.message_file(
                f,
                raw.abandonment.get_ref().message_length.is_some(),
                safe_harbour,
            ),
        };
        let (strategy, max_dial_level) = self.pacing(&raw.pacing);
        let expected_answer_rate = match &raw.pacing.expected_answer_rate {
            None => Some(None),
            Some(r) if r.get_ref().is_finite() && (0.01..=1.0).contains(r.get_ref()) => {
                Some(Some(*r.get_ref()))
            }
            Some(r) => {
                self.error(
                    r.span(),
                    "pacing.expected_answer_rate",
                    format!("{} must be a share between 0.01 and 1", r.get_ref()),
                );
                None
            }
        };
        let expected_handle = match &raw.pacing.expected_handle {
            None => Some(None),
            Some(h) => match self.duration(h, "pacing.expected_handle") {
                Some(d) if (Duration::from_secs(5)..=Duration::from_secs(3600)).contains(&d) => {
                    Some(Some(d))
                }
                Some(_) => {
                    self.error(h.span(), "pacing.expected_handle", "between 5s and 1h");
                    None
                }
                None => None,
            },
        };
        let hours = self.hours(raw.calling_hours.as_ref(), profile);
        let retry = self.retry(&raw.retry, profile);
        let callback_grace = match &raw.retry.callback_grace {
            None => Some(DEFAULT_CALLBACK_GRACE),
            Some(v) => match self.duration(v, "retry.callback_grace") {
                Some(d) if d > Duration::from_secs(7 * 86_400) => {
                    self.error(
                        v.span(),
                        "retry.callback_grace",
                        "at most 7 days: a customer's agreed time is not held longer",
                    );
                    None
                }
                d => d,
            },
        };
        let dispositions = self.dispositions(&raw.dispositions);
        let provider = self.provider(&raw.provider);
        let desktop = match raw.desktop {
            None => Some(Desktop::default()),
            Some(d) => {
                let span = d.span();
                match d.into_inner().check() {
                    Ok(d) => Some(d),
                    Err(errors) => {
                        for (field, message) in errors {
                            self.error(span.clone(), &field, message);
                        }
                        None
                    }
                }
            }
        };
        let costs = raw.costs.as_ref().map(|c| {
            let c = c.get_ref();
            let currency = c.currency.get_ref();
            if !(currency.len() == 3 && currency.chars().all(|x| x.is_ascii_uppercase())) {
                self.error(
                    c.currency.span(),
                    "costs.currency",
                    "use a three-letter ISO 4217 code such as INR, USD or GBP",
                );
            }
            let mut figure = |field: &str, v: &Option<Spanned<f64>>| {
                let Some(v) = v else { return 0.0 };
                let x = *v.get_ref();
                if !(x.is_finite() && x >= 0.0) {
                    self.error(
                        v.span(),
                        field,
                        format!("{x}: a cost is a finite amount, not negative"),
                    );
                }
                x
            };
            Costs {
                currency: currency.clone(),
                trunk_per_minute: figure("costs.trunk_per_minute", &c.trunk_per_minute),
                agent_per_hour: figure("costs.agent_per_hour", &c.agent_per_hour),
            }
        });

        let (max_attempts, max_attempts_per_day, mut delays) = retry?;
        let callback_delay = delays.remove("callback");
        let retry_delay = delays
            .into_iter()
            .filter_map(|(k, v)| Some((Outcome::from_code(&k)?, v)))
            .collect();
        Some(Campaign {
            name,
            description: raw.description,
            profile,
            call_type,
            dnd_category,
            caller_id: caller_id?,
            ring_timeout: ring_timeout?,
            abandon_limit_percent: limit?,
            abandon_target_percent: target?,
            abandon_window: window?,
            safe_harbour: safe_harbour?,
            message_file,
            strategy: strategy?,
            max_dial_level: max_dial_level?,
            expected_answer_rate: expected_answer_rate?,
            expected_handle: expected_handle?,
            hours: hours?,
            max_attempts,
            max_attempts_per_day,
            retry_delay,
            callback_delay,
            callback_grace: callback_grace?,
            dispositions: dispositions?,
            provider: provider?,
            costs,
            desktop: desktop?,
        })
    }

    fn dnd_category(&mut self, raw: &RawCampaign, profile: Profile) -> Option<u8> {
        match (&raw.dnd_category, profile) {
            (Some(c), _) => {
                let v = *c.get_ref();
                if (1..=8).contains(&v) {
                    u8::try_from(v).ok()
                } else {
                    self.error(
                        c.span(),
                        "dnd_category",
                        format!("{v} is not an NCPR category; use 1 to 8"),
                    );
                    None
                }
            }
            (None, p) if p.rules().needs_dnd_category() => {
                self.error(
                    raw.profile.span(),
                    "dnd_category",
                    format!("a {p} campaign must declare its registry category (1-8), e.g. dnd_category = 1 for insurance"),
                );
                None
            }
            (None, _) => None,
        }
    }

    fn caller_id(
        &mut self,
        raw: &RawCampaign,
        profile: Profile,
        call_type: CallType,
        category: Option<u8>,
    ) -> Option<String> {
        let text = raw.caller_id.get_ref();
        match profile.rules().caller_id(text, call_type, category) {
            Ok(id) => Some(id),
            Err(e) => {
                self.error(raw.caller_id.span(), "caller_id", e);
                None
            }
        }
    }

    fn abandonment(
        &mut self,
        raw: &Spanned<RawAbandonment>,
        profile: Profile,
    ) -> (Option<f64>, Option<f64>, Option<Duration>) {
        let a = raw.get_ref();
        let legal = profile.abandonment_limit();
        let limit = match (&a.limit_percent, legal) {
            (Some(l), legal) => {
                let v = *l.get_ref();
                if !(0.0..=100.0).contains(&v) {
                    self.error(
                        l.span(),
                        "abandonment.limit_percent",
                        format!("{v} is not a percentage"),
                    );
                    None
                } else if let Some((max, _)) = legal.filter(|(max, _)| v > *max) {
                    self.error(
                        l.span(),
                        "abandonment.limit_percent",
                        format!("{v}% is above the {profile} legal limit of {max}%; a campaign may only tighten it"),
                    );
                    None
                } else {
                    Some(v)
                }
            }
            (None, Some((max, _))) => Some(max),
            (None, None) => {
                self.error(
                    raw.span(),
                    "abandonment.limit_percent",
                    format!(
                        "the {profile} profile sets no legal limit: the campaign must state its own"
                    ),
                );
                None
            }
        };
        let target = *a.target_percent.get_ref();
        let target = if !target.is_finite() || target <= 0.0 {
            self.error(
                a.target_percent.span(),
                "abandonment.target_percent",
                format!("{target} must be a percentage above 0"),
            );
            None
        } else if limit.is_some_and(|l| target > l) {
            self.error(
                a.target_percent.span(),
                "abandonment.target_percent",
                format!(
                    "{target}% is above the limit of {}%",
                    limit.unwrap_or_default()
                ),
            );
            None
        } else {
            Some(target)
        };
        let window = match (&a.window, legal) {
            (Some(w), legal) => {
                let d = self.duration(w, "abandonment.window");
                match (d, legal) {
                    (Some(d), Some((_, max))) if d > max => {
                        self.error(
                            w.span(),
                            "abandonment.window",
                            format!(
                                "{} is longer than the {profile} window of {}; a shorter window is stricter, a longer one is not allowed",
                                w.get_ref(),
                                humantime::format_duration(max)
                            ),
                        );
                        None
                    }
                    (Some(d), _) if d < Duration::from_secs(3600) => {
                        self.error(w.span(), "abandonment.window", "at least 1h");
                        None
                    }
                    (d, _) => d,
                }
            }
            (None, Some((_, w))) => Some(w),
            (None, None) => {
                self.error(
                    raw.span(),
                    "abandonment.window",
                    format!("the {profile} profile sets no window: the campaign must state one, e.g. window = \"24h\""),
                );
                None
            }
        };
        (limit, target, window)
    }

    fn pacing(&mut self, raw: &RawPacing) -> (Option<Strategy>, Option<f64>) {
        let strategy = match Strategy::parse(raw.strategy.get_ref()) {
            Ok(Strategy::Oracle) => {
                self.error(
                    raw.strategy.span(),
                    "pacing.strategy",
                    "oracle knows the future and runs only in the simulator (dialler simulate --strategy oracle)",
                );
                None
            }
            Ok(s) => Some(s),
            Err(e) => {
                self.error(raw.strategy.span(), "pacing.strategy", e);
                None
            }
        };
        let level = match &raw.max_dial_level {
            None => Some(3.0),
            Some(l) if (1.0..=10.0).contains(l.get_ref()) => Some(*l.get_ref()),
            Some(l) => {
                self.error(
                    l.span(),
                    "pacing.max_dial_level",
                    format!("{} must be between 1 and 10", l.get_ref()),
                );
                None
            }
        };
        (strategy, level)
    }

    fn hours(
        &mut self,
        raw: Option<&BTreeMap<String, Spanned<String>>>,
        profile: Profile,
    ) -> Option<WeekPlan> {
        let mut plan = profile.hours();
        let Some(raw) = raw else {
            return Some(plan);
        };
        const DAYS: [(&str, Weekday); 7] = [
            ("monday", Weekday::Mon),
            ("tuesday", Weekday::Tue),
            ("wednesday", Weekday::Wed),
            ("thursday", Weekday::Thu),
            ("friday", Weekday::Fri),
            ("saturday", Weekday::Sat),
            ("sunday", Weekday::Sun),
        ];
        let mut ok = true;
        // Group keys first, single days after, so "friday" overrides
        // "weekdays" whatever order the file uses.
        let order = |k: &str| match k {
            "daily" => 0,
            "weekdays" | "weekends" => 1,
            _ => 2,
        };
        let mut keys: Vec<&String> = raw.keys().collect();
        keys.sort_by_key(|k| order(k));
        for key in keys {
            let value = &raw[key];
            let field = format!("calling_hours.{key}");
            let days: Vec<Weekday> = match key.as_str() {
                "daily" => DAYS.iter().map(|d| d.1).collect(),
                "weekdays" => DAYS[..5].iter().map(|d| d.1).collect(),
                "weekends" => DAYS[5..].iter().map(|d| d.1).collect(),
                k => match DAYS.iter().find(|d| d.0 == k) {
                    Some(d) => vec![d.1],
                    None => {
                        self.error(
                            value.span(),
                            &field,
                            "unknown day; use daily, weekdays, weekends or monday..sunday",
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            let window = match parse_window(value.get_ref()) {
                Ok(w) => w,
                Err(e) => {
                    self.error(value.span(), &field, e);
                    ok = false;
                    continue;
                }
            };
            // One message per key, naming every day it does not fit.
            let mut outside = Vec::new();
            let mut closed = Vec::new();
            for day in days {
                let outer = profile.hours()[day_index(day)];
                match (window, outer) {
                    (None, _) => plan[day_index(day)] = None,
                    (Some(w), Some(o)) if w.within(&o) => plan[day_index(day)] = Some(w),
                    (Some(_), Some(o)) => outside.push(format!("{day} {o}")),
                    (Some(_), None) => closed.push(day.to_string()),
                }
            }
            if let (Some(w), false) = (window, outside.is_empty()) {
                self.error(
                    value.span(),
                    &field,
                    format!(
                        "{w} is outside the {profile} profile's hours ({}); a campaign may only narrow its profile's hours",
                        outside.join(", ")
                    ),
                );
                ok = false;
            }
            if !closed.is_empty() {
                self.error(
                    value.span(),
                    &field,
                    format!(
                        "the {profile} profile allows no calls on {}",
                        closed.join(", ")
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(plan)
    }

    fn retry(
        &mut self,
        raw: &RawRetry,
        profile: Profile,
    ) -> Option<(u32, u32, BTreeMap<String, Duration>)> {
        let max = self.positive(&raw.max_attempts, "retry.max_attempts", 50);
        let per_day = match &raw.max_attempts_per_day {
            Some(p) => self.positive(p, "retry.max_attempts_per_day", 50),
            None => max,
        };
        let mut delays = BTreeMap::new();
        let mut ok = true;
        for (outcome, value) in &raw.delay {
            let field = format!("retry.delay.{outcome}");
            if !RETRY_OUTCOMES.contains(&outcome.as_str()) {
                self.error(
                    value.span(),
                    &field,
                    format!("unknown outcome; use one of {}", RETRY_OUTCOMES.join(", ")),
                );
                ok = false;
                continue;
            }
            match self.duration(value, &field) {
                Some(d) => {
                    delays.insert(outcome.clone(), d);
                }
                None => ok = false,
            }
        }
        // The UK (Ofcom): a number whose call was abandoned is not called
        // again within 72 hours, nor one an answering machine detector
        // took for a machine within 24 hours, unless an agent is
        // guaranteed; the campaign's delays may not be shorter.
        let rules = profile.rules();
        for (outcome, what, min) in [
            (
                "abandoned",
                "an abandoned number",
                rules.recall_after_abandon(),
            ),
            (
                "machine",
                "a number answered by a machine",
                rules.recall_after_machine(),
            ),
        ] {
            let Some(min) = min.and_then(|d| d.to_std().ok()) else {
                continue;
            };
            match raw.delay.get(outcome) {
                Some(v) if delays.get(outcome).is_some_and(|d| *d < min) => {
                    self.error(
                        v.span(),
                        &format!("retry.delay.{outcome}"),
                        format!(
                            "the {profile} profile forbids calling {what} again within {} hours (unless an agent is reserved, which the dialler does by itself)",
                            min.as_secs() / 3600
                        ),
                    );
                    ok = false;
                }
                Some(_) => {}
                None => {
                    delays.insert(outcome.into(), min);
                }
            }
        }
        match (max, per_day) {
            (Some(m), Some(p)) if p > m => {
                if let Some(span) = raw.max_attempts_per_day.as_ref().map(Spanned::span) {
                    self.error(
                        span,
                        "retry.max_attempts_per_day",
                        "cannot exceed retry.max_attempts",
                    );
                }
                None
            }
            (Some(m), Some(p)) if ok => Some((m, p, delays)),
            _ => None,
        }
    }

    fn dispositions(
        &mut self,
        raw: &Spanned<Vec<Spanned<Disposition>>>,
    ) -> Option<Vec<Disposition>> {
        let mut ok = true;
        let mut seen = HashSet::new();
        for (i, d) in raw.get_ref().iter().enumerate() {
            let field = format!("dispositions[{i}]");
            let v = d.get_ref();
            let code_ok = !v.code.is_empty()
                && v.code
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !code_ok {
                self.error(
                    d.span(),
                    &format!("{field}.code"),
                    format!("{:?}: use A-Z, 0-9 and _", v.code),
                );
                ok = false;
            }
            if !seen.insert(v.code.clone()) {
                self.error(
                    d.span(),
                    &format!("{field}.code"),
                    format!("{:?} is listed twice", v.code),
                );
                ok = false;
            }
            if v.conversion && !v.contact {
                self.error(
                    d.span(),
                    &format!("{field}.contact"),
                    "a conversion is always a contact: set contact = true",
                );
                ok = false;
            }
        }
        if raw.get_ref().is_empty() {
            self.error(
                raw.span(),
                "dispositions",
                "declare at least one disposition",
            );
            ok = false;
        } else if !raw.get_ref().iter().any(|d| d.get_ref().dnc) {
            self.error(
                raw.span(),
                "dispositions",
                "no disposition has dnc = true: agents must be able to record a do-not-call request",
            );
            ok = false;
        }
        ok.then(|| raw.get_ref().iter().map(|d| d.get_ref().clone()).collect())
    }

    /// The recording: readable, mono 8 kHz (16-bit PCM or G.711), 2 s to 60 s, and no
    /// longer than `message_length` when that is given (the pacer holds the
    /// line for that long). Without `message_length` the recording's own
    /// length is the message length.
    fn message_file(
        &mut self,
        f: &Spanned<String>,
        length_given: bool,
        length: Option<Duration>,
    ) -> (Option<Duration>, Option<std::path::PathBuf>) {
        let field = "abandonment.message_file";
        let rel = Path::new(f.get_ref());
        let path = match self.path.parent() {
            Some(dir) if rel.is_relative() => dir.join(rel),
            _ => rel.to_path_buf(),
        };
        let samples = match crate::media::wav::read_file(&path) {
            Ok(s) => s,
            Err(e) => {
                self.error(f.span(), field, format!("{}: {e}", path.display()));
                return (length, None);
            }
        };
        let played = crate::media::wav::duration(&samples);
        if !(Duration::from_secs(2)..=Duration::from_secs(60)).contains(&played) {
            self.error(
                f.span(),
                field,
                format!(
                    "{}: {:.1} s long; the message must last 2 s to 60 s",
                    path.display(),
                    played.as_secs_f64()
                ),
            );
            return (length, None);
        }
        match length {
            Some(l) if length_given && played > l => {
                self.error(
                    f.span(),
                    field,
                    format!(
                        "{}: {:.1} s long, over message_length ({:.1} s): the line would be held longer than paced for",
                        path.display(),
                        played.as_secs_f64(),
                        l.as_secs_f64()
                    ),
                );
                (length, None)
            }
            Some(l) if length_given => (Some(l), Some(path)),
            Some(_) => (Some(played), Some(path)),
            None => (None, Some(path)),
        }
    }

    fn provider(&mut self, raw: &RawProvider) -> Option<Provider> {
        let mut ok = true;
        let uri = raw.uri.get_ref().trim();
        let scheme_ok = crate::sip::after_scheme(uri, "sip:").is_some()
            || crate::sip::after_scheme(uri, "sips:").is_some();
        if !scheme_ok || uri.len() < 5 {
            self.error(
                raw.uri.span(),
                "provider.uri",
                format!("{uri:?} is not a sip: or sips: URI"),
            );
            ok = false;
        } else if let Err(e) = crate::sip::resolve::SipUri::parse(uri) {
            // What `dialler run` will need to locate the trunk (RFC 3263).
            self.error(raw.uri.span(), "provider.uri", e.to_string());
            ok = false;
        } else if uri
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once('@'))
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        {
            self.error(raw.uri.span(), "provider.uri", "write credentials in environment variables (username_env, password_env), never in the URI");
            ok = false;
        }
        for (value, field) in [
            (&raw.username_env, "provider.username_env"),
            (&raw.password_env, "provider.password_env"),
        ] {
            if let Some(v) = value {
                let name = v.get_ref();
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    self.error(
                        v.span(),
                        field,
                        "the name of an environment variable (A-Z, 0-9, _), not the secret itself",
                    );
                    ok = false;
                }
            }
        }
        let cps = match &raw.cps {
            Some(c) => self.positive(c, "provider.cps", 10_000),
            None => Some(10),
        };
        let channels = match &raw.max_channels {
            Some(c) => self.positive(c, "provider.max_channels", 100_000),
            None => Some(100),
        };
        let mut amd_ok = true;
        let amd_header = raw.amd_header.as_ref().map(|h| {
            let name = h.get_ref().trim().to_string();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                amd_ok = false;
                self.error(
                    h.span(),
                    "provider.amd_header",
                    "must be a SIP header name (letters, digits, '-')",
                );
            }
            name
        });
        let caller_name = raw.caller_name.as_ref().map(|n| {
            let name = n.get_ref().trim().to_string();
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                amd_ok = false;
                self.error(
                    n.span(),
                    "provider.caller_name",
                    "a name of 1 to 64 characters without quotes, backslashes or control characters",
                );
            }
            name
        });
        let asserted_identity = raw.asserted_identity.as_ref().map(|u| {
            let uri = u.get_ref().trim().to_string();
            let scheme = ["sip:", "sips:", "tel:"].iter().any(|s| uri.starts_with(s));
            if !scheme
                || uri.len() < 6
                || uri.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"'
                })
            {
                amd_ok = false;
                self.error(
                    u.span(),
                    "provider.asserted_identity",
                    format!("{uri:?} is not a sip:, sips: or tel: URI"),
                );
            }
            uri
        });
        let register = raw.register.as_ref().is_some_and(|r| *r.get_ref());
        if register && (raw.username_env.is_none() || raw.password_env.is_none()) {
            amd_ok = false;
            let span = raw.register.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                "provider.register",
                "registration needs username_env and password_env (the AOR is the digest user)",
            );
        }
        let register_expires = match &raw.register_expires {
            None => Some(3600),
            Some(e) => {
                let v = *e.get_ref();
                if (60..=86_400).contains(&v) {
                    Some(v as u32)
                } else {
                    self.error(
                        e.span(),
                        "provider.register_expires",
                        "seconds, 60 to 86400",
                    );
                    None
                }
            }
        };
        let username_env = raw.username_env.as_ref().map(|s| s.get_ref().clone());
        let password_env = raw.password_env.as_ref().map(|s| s.get_ref().clone());
        match (ok && amd_ok && register_expires.is_some(), cps, channels) {
            (true, Some(cps), Some(max_channels)) => Some(Provider {
                uri: uri.to_string(),
                username_env,
                password_env,
                cps,
                max_channels,
                amd_header,
                caller_name,
                asserted_identity,
                register,
                register_expires: register_expires.unwrap_or(3600),
            }),
            _ => None,
        }
    }
}

/// Parses `HH:MM-HH:MM`, or `closed` for no calls.
fn parse_window(text: &str) -> Result<Option<DayWindow>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("closed") {
        return Ok(None);
    }
    let (a, b) = t
        .split_once('-')
        .ok_or_else(|| format!("{t:?}: write HH:MM-HH:MM, or \"closed\""))?;
    let parse = |s: &str| {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("{:?} is not a time HH:MM", s.trim()))
    };
    let (start, end) = (parse(a)?, parse(b)?);
    if start >= end {
        return Err(format!("{t:?}: the window must end after it starts"));
    }
    Ok(Some(DayWindow { start, end }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_US: &str = r#"
name = "us-test"
profile = "us"
caller_id = "+1 212 555 0100"
ring_timeout = "25s"

[abandonment]
target_percent = 2.0

[pacing]
strategy = "predictive"

[calling_hours]
weekdays = "09:00-20:00"
sunday = "closed"

[retry]
max_attempts = 4
delay = { busy = "15m", no_answer = "2h" }

[[dispositions]]
code = "SALE"
label = "Sale"
conversion = true
contact = true

[[dispositions]]
code = "DNC"
label = "Do not call"
dnc = true
contact = true

[provider]
uri = "sip:trunk.example.com"
password_env = "TRUNK_PASSWORD"
"#;

    fn errors(text: &str) -> Vec<ConfigError> {
        Campaign::parse(text, Path::new("c.toml")).expect_err("should be invalid")
    }

    #[test]
    fn a_good_file_takes_profile_defaults() {
        let c = Campaign::parse(GOOD_US, Path::new("c.toml")).expect("valid");
        assert_eq!(c.abandon_limit_percent, 3.0);
        assert_eq!(c.abandon_window, Duration::from_secs(30 * 86400));
        assert_eq!(c.hours[day_index(Weekday::Sun)], None);
        assert_eq!(
            c.hours[day_index(Weekday::Mon)],
            Some(DayWindow::hm((9, 0), (20, 0)))
        );
        assert_eq!(
            c.hours[day_index(Weekday::Sat)],
            Some(DayWindow::hm((8, 0), (21, 0)))
        );
        assert_eq!(c.caller_id, "+12125550100");
        assert_eq!(c.provider.cps, 10);
    }

    /// A duration longer than a year is refused where it is written: a
    /// retry delay too long to add to a date would otherwise hold nothing
    /// back.
    #[test]
    fn a_duration_over_a_year_is_refused_with_its_field() {
        let text = GOOD_US.replace("busy = \"15m\"", "busy = \"1000000y\"");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "retry.delay.busy");
        assert!(errs[0].message.contains("366 days"), "{errs:?}");
        assert_eq!(errs[0].line, 19, "{errs:?}");
        let ok = GOOD_US.replace("busy = \"15m\"", "busy = \"366d\"");
        assert!(Campaign::parse(&ok, Path::new("c.toml")).is_ok());
    }

    /// A name used by two files is refused in the second at the line
    /// that names it.
    #[test]
    fn a_name_used_twice_is_reported_at_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.toml"), GOOD_US).expect("write");
        std::fs::write(dir.path().join("b.toml"), format!("# copy\n{GOOD_US}")).expect("write");
        let loaded = load_dir(dir.path()).expect("dir");
        assert_eq!(loaded.campaigns.len(), 1);
        let Some(CampaignError::Invalid { errors, .. }) = loaded.invalid.first() else {
            panic!("{:?}", loaded.invalid);
        };
        let want = GOOD_US
            .lines()
            .position(|l| l.starts_with("name"))
            .expect("name")
            + 2;
        assert_eq!((errors[0].field.as_str(), errors[0].line), ("name", want));
    }

    /// A TOML error names the field it is about, not the value: the key
    /// on the error's line under its table.
    #[test]
    fn a_type_error_names_its_field_not_its_value() {
        for (from, to, want) in [
            ("profile = \"us\"", "profile = \"fr\"", "profile"),
            (
                "ring_timeout = \"25s\"",
                "ring_timeout = 20",
                "ring_timeout",
            ),
            (
                "target_percent = 2.0",
                "target_percent = \"2\"",
                "abandonment.target_percent",
            ),
            (
                "max_attempts = 4",
                "max_attempts = 4\nbogus = 1",
                "retry.bogus",
            ),
            ("name = \"us-test\"", "", "name"),
        ] {
            assert!(GOOD_US.contains(from), "{from}");
            let errs = errors(&GOOD_US.replace(from, to));
            assert_eq!(errs[0].field, want, "{to}: {errs:?}");
        }
    }

    #[test]
    fn every_semantic_error_is_reported_with_its_line() {
        let text = GOOD_US
            .replace("\"25s\"", "\"10s\"")
            .replace(
                "target_percent = 2.0",
                "target_percent = 2.0\nlimit_percent = 4.0",
            )
            .replace("weekdays = \"09:00-20:00\"", "weekdays = \"07:00-20:00\"");
        let errs = errors(&text);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"ring_timeout"), "{errs:?}");
        assert!(fields.contains(&"abandonment.limit_percent"), "{errs:?}");
        assert!(fields.contains(&"calling_hours.weekdays"), "{errs:?}");
        let ring = errs
            .iter()
            .find(|e| e.field == "ring_timeout")
            .expect("ring error");
        assert_eq!(ring.line, 5);
        assert!(ring.to_string().starts_with("c.toml:5:"), "{ring}");
    }

    /// A bad figure in `[costs]` is reported on its own line, not on the
    /// table's header.
    #[test]
    fn a_bad_cost_is_reported_at_its_own_line() {
        let text = format!(
            "{GOOD_US}\n[costs]\ncurrency = \"usd\"\ntrunk_per_minute = nan\nagent_per_hour = -1.0\n"
        );
        let base = GOOD_US.lines().count() + 1;
        let errs = errors(&text);
        let line = |field: &str| {
            errs.iter()
                .find(|e| e.field == field)
                .map(|e| e.line)
                .unwrap_or_else(|| panic!("{field}: {errs:?}"))
        };
        assert_eq!(line("costs.currency"), base + 2);
        assert_eq!(line("costs.trunk_per_minute"), base + 3);
        assert_eq!(line("costs.agent_per_hour"), base + 4);
    }

    #[test]
    fn unknown_fields_such_as_a_password_are_refused() {
        let text = GOOD_US.replace(
            "password_env = \"TRUNK_PASSWORD\"",
            "password = \"hunter2\"",
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "provider.password");
        assert_eq!(errs[0].line, 35);
    }

    #[test]
    fn an_amd_header_must_be_a_header_name() {
        let with = |v: &str| {
            GOOD_US.replace(
                "password_env = \"TRUNK_PASSWORD\"",
                &format!("password_env = \"TRUNK_PASSWORD\"\namd_header = \"{v}\""),
            )
        };
        let c = Campaign::parse(&with("X-AMD"), Path::new("c.toml")).expect("valid");
        assert_eq!(c.provider.amd_header.as_deref(), Some("X-AMD"));
        let errs = errors(&with("X AMD: machine"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "provider.amd_header");
        assert_eq!(errs[0].line, 36);
    }

    #[test]
    fn caller_name_and_asserted_identity_are_checked() {
        let with = |extra: &str| {
            GOOD_US.replace(
                "password_env = \"TRUNK_PASSWORD\"",
                &format!("password_env = \"TRUNK_PASSWORD\"\n{extra}"),
            )
        };
        let c = Campaign::parse(
            &with("caller_name = \"Acme Solar\"\nasserted_identity = \"tel:+12125550100\""),
            Path::new("c.toml"),
        )
        .expect("valid");
        assert_eq!(c.provider.caller_name.as_deref(), Some("Acme Solar"));
        assert_eq!(
            c.provider.asserted_identity.as_deref(),
            Some("tel:+12125550100")
        );
        for (extra, field) in [
            ("caller_name = \"Bad \\\"quote\"", "provider.caller_name"),
            ("caller_name = \"\"", "provider.caller_name"),
            (
                "asserted_identity = \"+12125550100\"",
                "provider.asserted_identity",
            ),
            (
                "asserted_identity = \"sip:a@b>\\r\\nX: y\"",
                "provider.asserted_identity",
            ),
        ] {
            let errs = errors(&with(extra));
            assert_eq!(errs.len(), 1, "{extra}: {errs:?}");
            assert_eq!(errs[0].field, field, "{extra}");
        }
    }

    #[test]
    fn a_provider_uri_must_be_one_dns_can_locate() {
        for bad in [
            "sip:trunk_x.example",
            "sips:edge.example;transport=udp",
            "sip:edge.example;transport=sctp",
            "sip:edge.example:70000",
        ] {
            let text = GOOD_US.replace("sip:trunk.example.com", bad);
            let errs = errors(&text);
            assert_eq!(errs[0].field, "provider.uri", "{bad}: {errs:?}");
        }
        let ok = GOOD_US.replace("sip:trunk.example.com", "sips:edge.example:5071");
        assert!(Campaign::parse(&ok, Path::new("c.toml")).is_ok());
    }

    #[test]
    fn registration_needs_credentials_and_a_sane_expiry() {
        let with = |extra: &str| {
            GOOD_US.replace(
                "password_env = \"TRUNK_PASSWORD\"",
                &format!("password_env = \"TRUNK_PASSWORD\"\n{extra}"),
            )
        };
        let c = Campaign::parse(
            &with("username_env = \"TRUNK_USER\"\nregister = true"),
            Path::new("c.toml"),
        )
        .expect("valid");
        assert!(c.provider.register);
        assert_eq!(c.provider.register_expires, 3600);
        let errs = errors(&with(
            "username_env = \"TRUNK_USER\"\nregister = true\nregister_expires = 10",
        ));
        assert_eq!(errs[0].field, "provider.register_expires");
        let errs = errors(&with("register = true"));
        assert!(
            errs.iter().any(|e| e.field == "provider.register"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_recorded_message_is_checked_for_format_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let wav = |name: &str, secs: f64| {
            let samples = crate::media::wav::generated_prompt(secs);
            std::fs::write(dir.path().join(name), crate::media::wav::write(&samples)).unwrap();
        };
        wav("ok.wav", 5.5);
        wav("long.wav", 7.0);
        wav("short.wav", 1.0);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.path().join("stereo.wav"), spec).unwrap();
        for _ in 0..48_000 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let path = dir.path().join("c.toml");
        let with =
            |extra: &str| GOOD_US.replace("[abandonment]\n", &format!("[abandonment]\n{extra}\n"));
        let c = Campaign::parse(&with("message_file = \"ok.wav\""), &path).expect("valid");
        assert_eq!(
            c.message_file.as_deref(),
            Some(dir.path().join("ok.wav").as_path())
        );
        assert_eq!(
            c.safe_harbour,
            Duration::from_millis(5500),
            "the recording's length"
        );
        let c = Campaign::parse(
            &with("message_file = \"ok.wav\"\nmessage_length = \"6s\""),
            &path,
        )
        .expect("valid");
        assert_eq!(c.safe_harbour, Duration::from_secs(6));
        for (extra, says) in [
            (
                "message_file = \"long.wav\"\nmessage_length = \"6s\"",
                "over message_length",
            ),
            ("message_file = \"short.wav\"", "2 s to 60 s"),
            ("message_file = \"stereo.wav\"", "mono"),
            ("message_file = \"missing.wav\"", "missing.wav"),
        ] {
            let errs = Campaign::parse(&with(extra), &path).expect_err(extra);
            assert_eq!(errs[0].field, "abandonment.message_file", "{extra}");
            assert!(
                errs[0].message.contains(says),
                "{extra}: {}",
                errs[0].message
            );
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let text = GOOD_US.replace("caller_id = \"+1 212 555 0100\"\n", "");
        let errs = errors(&text);
        assert_eq!(errs[0].field, "caller_id");
    }

    #[test]
    fn uk_abandoned_recall_under_72h_is_refused() {
        let text = GOOD_US
            .replace("profile = \"us\"", "profile = \"uk\"")
            .replace("+1 212 555 0100", "+44 20 7946 0000")
            .replace(
                "no_answer = \"2h\"",
                "no_answer = \"2h\", abandoned = \"24h\"",
            );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "retry.delay.abandoned");
    }

    #[test]
    fn uk_machine_recall_under_24h_is_refused_and_24h_is_the_default() {
        let uk = GOOD_US
            .replace("profile = \"us\"", "profile = \"uk\"")
            .replace("+1 212 555 0100", "+44 20 7946 0000");
        let errs =
            errors(&uk.replace("no_answer = \"2h\"", "no_answer = \"2h\", machine = \"4h\""));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "retry.delay.machine");
        assert!(errs[0].message.contains("24 hours"), "{}", errs[0].message);
        let c = Campaign::parse(&uk, Path::new("uk.toml")).expect("valid");
        assert_eq!(
            c.retry_delay(Outcome::Machine),
            Some(Duration::from_secs(24 * 3600))
        );
        // Elsewhere a shorter machine delay stands.
        let us = GOOD_US.replace("no_answer = \"2h\"", "no_answer = \"2h\", machine = \"4h\"");
        let us = Campaign::parse(&us, Path::new("us.toml")).expect("valid");
        assert_eq!(
            us.retry_delay(Outcome::Machine),
            Some(Duration::from_secs(4 * 3600))
        );
    }

    #[test]
    fn india_needs_a_category_and_the_right_caller_id_series() {
        let base = GOOD_US
            .replace("profile = \"us\"", "profile = \"in\"")
            .replace(
                "target_percent = 2.0",
                "target_percent = 2.0\nlimit_percent = 3.0\nwindow = \"24h\"",
            );
        let no_category = errors(&base.replace("+1 212 555 0100", "1401234567"));
        assert_eq!(no_category[0].field, "dnd_category");

        let with_cat = base
            .replace("call_type", "x")
            .replace("profile = \"in\"", "profile = \"in\"\ndnd_category = 1");
        // Promotional from a 140 number: fine.
        assert!(
            Campaign::parse(
                &with_cat.replace("+1 212 555 0100", "140-123-4567"),
                Path::new("c")
            )
            .is_ok()
        );
        // Promotional from an ordinary mobile: refused.
        let errs = errors(&with_cat.replace("+1 212 555 0100", "+91 98765 43210"));
        assert_eq!(errs[0].field, "caller_id");
        // A service call by an insurer must use 1600.
        let service = with_cat.replace(
            "dnd_category = 1",
            "dnd_category = 1\ncall_type = \"service\"",
        );
        assert!(
            Campaign::parse(
                &service.replace("+1 212 555 0100", "1600123456"),
                Path::new("c")
            )
            .is_ok()
        );
        let errs = errors(&service.replace("+1 212 555 0100", "1601234567"));
        assert!(errs[0].message.contains("1600"), "{errs:?}");
    }

    #[test]
    fn australia_cannot_open_on_sunday() {
        let text = GOOD_US
            .replace("profile = \"us\"", "profile = \"au\"")
            .replace("+1 212 555 0100", "02 9876 5432")
            .replace("sunday = \"closed\"", "sunday = \"10:00-16:00\"")
            .replace(
                "target_percent = 2.0",
                "target_percent = 2.0\nlimit_percent = 3.0\nwindow = \"24h\"",
            );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("no calls on Sun"), "{errs:?}");
    }

    /// A window that fits no day is one error naming the days, not one
    /// error a day.
    #[test]
    fn a_window_outside_the_profile_is_one_error_naming_the_days() {
        let text = GOOD_US.replace("weekdays = \"09:00-20:00\"", "daily = \"07:00-22:00\"");
        let errs = errors(&text);
        let daily: Vec<&ConfigError> = errs
            .iter()
            .filter(|e| e.field == "calling_hours.daily")
            .collect();
        assert_eq!(daily.len(), 1, "{errs:?}");
        assert!(
            daily[0].message.contains("Mon") && daily[0].message.contains("Sat"),
            "{errs:?}"
        );
    }

    #[test]
    fn strategies_parse_with_parameters() {
        assert_eq!(
            Strategy::parse("ratio:1.5"),
            Ok(Strategy::Ratio { ratio: 1.5 })
        );
        assert_eq!(
            Strategy::parse("threshold"),
            Ok(Strategy::Threshold { probability: 0.97 })
        );
        assert!(Strategy::parse("ratio").is_err());
        assert!(Strategy::parse("ratio:0.5").is_err());
        assert!(Strategy::parse("magic").is_err());
        assert!(Strategy::parse("progressive:2").is_err());
    }

    #[test]
    fn disposition_rules() {
        let text = GOOD_US
            .replace("dnc = true\n", "")
            .replace("conversion = true\ncontact = true", "conversion = true");
        let errs = errors(&text);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"dispositions"), "{errs:?}");
        assert!(fields.contains(&"dispositions[0].contact"), "{errs:?}");
    }
}
