//! Simulation scenarios (`campaigns/scenarios/*.toml`): the team, the
//! customers' behaviour and the time distributions a campaign meets.

use std::path::Path;

use serde::Deserialize;

use crate::campaign::{CampaignError, ConfigError};
use crate::profile::DayWindow;

/// A distribution given by its mean and standard deviation, in seconds;
/// drawn as a lognormal (the usual shape of ring, talk and wrap-up times).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dist {
    /// Mean, seconds.
    pub mean: f64,
    /// Standard deviation, seconds.
    pub sd: f64,
}

impl Dist {
    /// The lognormal's (mu, sigma) with this mean and sd.
    pub fn lognormal_params(&self) -> (f64, f64) {
        let m = self.mean.max(1e-3);
        let v = self.sd.max(0.0).powi(2);
        let sigma2 = (1.0 + v / (m * m)).ln();
        (m.ln() - sigma2 / 2.0, sigma2.sqrt())
    }
}

/// Outcome probabilities of an attempt; they must sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcomes {
    /// A person answers.
    pub human: f64,
    /// An answering machine.
    pub machine: f64,
    /// Busy.
    pub busy: f64,
    /// Rings out.
    pub no_answer: f64,
    /// Network failure or rejection.
    pub failure: f64,
}

/// A scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// What it models.
    #[serde(default)]
    pub description: String,
    /// Agents on shift.
    pub agents: u32,
    /// Days simulated.
    pub days: u32,
    /// Agents' shift each day, `HH:MM-HH:MM` (the called party's local
    /// time; calls go out only inside the campaign's hours too).
    pub shift: String,
    /// Outcome probabilities.
    pub outcomes: Outcomes,
    /// Ring time of answered calls.
    pub ring: Dist,
    /// Talk time.
    pub talk: Dist,
    /// Wrap-up time.
    pub wrap: Dist,
    /// How long a person waits in silence after answering before hanging
    /// up.
    pub patience: Dist,
    /// Probability a connected call converts.
    pub conversion: f64,
    /// Human-answer probability by hour of day (24 values), replacing
    /// `outcomes.human` hour by hour; the other outcomes scale to fill.
    #[serde(default)]
    pub hourly_human: Option<Vec<f64>>,
    /// Talk and wrap-up time multiplier by hour of day (24 values).
    #[serde(default)]
    pub hourly_handle: Option<Vec<f64>>,
    /// Call records to replay instead of the distributions: a CSV path,
    /// relative to the scenario file. Each attempt draws one record at
    /// random (a bootstrap of the records, keyed like every other draw).
    #[serde(default)]
    pub replay: Option<std::path::PathBuf>,
    /// The records `replay` names, loaded with the scenario.
    #[serde(skip)]
    pub records: std::sync::Arc<Vec<CallRecord>>,
    /// The first simulated day, `YYYY-MM-DD` (a date in the leads' home
    /// zone): weekdays, holidays and daylight saving follow the calendar
    /// from there. Default: Monday 5 January 2026.
    #[serde(default)]
    pub start: Option<String>,
    /// Answering-machine detection at the provider: how long it listens
    /// after an answer before it reports a person or a machine, seconds.
    /// A person waits in silence meanwhile (and may hang up: an abandon).
    /// None: verdicts are instant.
    #[serde(default)]
    pub amd: Option<Dist>,
    /// Agents log in one after another over this long from the shift's
    /// start (`"30m"`); none: all at once.
    #[serde(default)]
    pub login_stagger: Option<String>,
    /// Breaks: at a local time, a share of the team pauses for a length
    /// (after the call and wrap-up they are on).
    #[serde(default)]
    pub breaks: Vec<Break>,
    /// Who the leads are: their time zones and how many are on the
    /// national do-not-call registry. Every dial passes the same
    /// compliance check as a live one, so closed hours and listed numbers
    /// show as refused dials.
    #[serde(default)]
    pub leads: LeadMix,
}

/// A break in the team's day.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Break {
    /// When, `HH:MM` in the leads' home zone.
    pub at: String,
    /// How long (`"15m"`).
    pub length: String,
    /// The share of the team that takes it (0 to 1); successive breaks
    /// take successive agents.
    pub share: f64,
}

impl Break {
    /// (start, length) as a time of day and a duration.
    pub fn parsed(&self) -> Result<(chrono::NaiveTime, std::time::Duration), String> {
        let at = chrono::NaiveTime::parse_from_str(self.at.trim(), "%H:%M")
            .map_err(|_| format!("{:?} is not HH:MM", self.at))?;
        let length = humantime::parse_duration(self.length.trim())
            .map_err(|e| format!("{:?}: {e}", self.length))?;
        if !(0.0..=1.0).contains(&self.share) {
            return Err(format!("share {} is not 0 to 1", self.share));
        }
        Ok((at, length))
    }
}

/// The leads a scenario dials.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadMix {
    /// Share of numbers on the national registry (0 to 1).
    #[serde(default)]
    pub dnd_share: f64,
    /// Share of leads per IANA time zone (any non-negative weights);
    /// empty: every lead in the campaign country's home zone.
    #[serde(default)]
    pub zones: std::collections::BTreeMap<String, f64>,
}

/// The default first simulated day: a Monday in January, with no public
/// holiday or clock change in the five weeks after it in any profile's
/// home zone except Australia's (26 January).
pub const DEFAULT_START: &str = "2026-01-05";

/// What became of one past call, as a replay draws it.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// human, machine, busy, no_answer or failure.
    pub outcome: RecordOutcome,
    /// Seconds from dialling to the answer (or the signal).
    pub ring_s: f64,
    /// Seconds talking (a person only; 0 otherwise).
    #[serde(default)]
    pub talk_s: f64,
    /// Seconds of wrap-up after the call (a person only).
    #[serde(default)]
    pub wrap_s: f64,
    /// Seconds the person waited in silence before hanging up; missing:
    /// drawn from the scenario's patience distribution.
    #[serde(default)]
    pub patience_s: Option<f64>,
    /// The call ended in a sale (`1`/`0` or `true`/`false`).
    #[serde(default, deserialize_with = "flag")]
    pub converted: bool,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "converted is {other:?}: use 1/0 or true/false"
        ))),
    }
}

/// A recorded call's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// A person answered.
    Human,
    /// An answering machine.
    Machine,
    /// Busy.
    Busy,
    /// Rang out.
    NoAnswer,
    /// Network or number failure.
    Failure,
}

/// Reads call records from CSV (header: outcome, ring_s, talk_s, wrap_s,
/// and optionally patience_s, converted). A bad row is an error naming its
/// line: a replay with silently dropped rows would mislead the tuning.
pub fn load_records(path: &Path) -> Result<Vec<CallRecord>, CampaignError> {
    let fail = |line: usize, message: String| CampaignError::Invalid {
        path: path.to_path_buf(),
        errors: vec![ConfigError {
            file: path.to_path_buf(),
            line,
            column: 1,
            field: "replay".into(),
            message,
        }],
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| fail(1, e.to_string()))?;
    let mut out = Vec::new();
    for row in reader.deserialize::<CallRecord>() {
        let r = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            fail(line, e.to_string())
        })?;
        let line = out.len() + 2;
        let times = [r.ring_s, r.talk_s, r.wrap_s, r.patience_s.unwrap_or(0.0)];
        if times.iter().any(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(fail(line, "times must be seconds >= 0".into()));
        }
        if r.outcome == RecordOutcome::Human && r.talk_s <= 0.0 {
            return Err(fail(line, "a human answer needs talk_s > 0".into()));
        }
        out.push(r);
    }
    if out.is_empty() {
        return Err(fail(1, "no call records".into()));
    }
    Ok(out)
}

impl Default for Scenario {
    fn default() -> Scenario {
        toml::from_str(DEFAULT).unwrap_or_else(|e| panic!("built-in scenario: {e}"))
    }
}

/// The built-in scenario, also shipped as `campaigns/scenarios/default.toml`.
pub const DEFAULT: &str = include_str!("../../campaigns/scenarios/default.toml");

impl Scenario {
    /// Loads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |line: usize, field: &str, message: String| CampaignError::Invalid {
            path: path.to_path_buf(),
            errors: vec![ConfigError {
                file: path.to_path_buf(),
                line,
                column: 1,
                field: field.to_string(),
                message,
            }],
        };
        let s: Scenario = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |sp| {
                text[..sp.start.min(text.len())].matches('\n').count() + 1
            });
            err(line, "(scenario)", e.message().to_string())
        })?;
        s.check().map_err(|(field, message)| {
            let line = crate::campaign::field_line(&text, &field);
            err(line, &field, message)
        })?;
        let mut s = s;
        if let Some(rel) = &s.replay {
            let file = path.parent().unwrap_or(Path::new(".")).join(rel);
            s.records = std::sync::Arc::new(load_records(&file)?);
        }
        Ok(s)
    }

    /// Checks the values make sense.
    pub fn check(&self) -> Result<(), (String, String)> {
        let o = &self.outcomes;
        let sum = o.human + o.machine + o.busy + o.no_answer + o.failure;
        // NaN fails each test.
        if !sum.is_finite()
            || (sum - 1.0).abs() > 1e-6
            || [o.human, o.machine, o.busy, o.no_answer, o.failure]
                .iter()
                .any(|p| !(*p >= 0.0 && p.is_finite()))
        {
            return Err((
                "outcomes".into(),
                format!("probabilities must be >= 0 and sum to 1 (they sum to {sum})"),
            ));
        }
        if self.agents == 0 || self.agents > 10_000 {
            return Err(("agents".into(), "between 1 and 10000".into()));
        }
        if self.days == 0 || self.days > 366 {
            return Err(("days".into(), "between 1 and 366".into()));
        }
        self.shift_window().map_err(|e| ("shift".to_string(), e))?;
        for (name, d) in [
            ("ring", self.ring),
            ("talk", self.talk),
            ("wrap", self.wrap),
            ("patience", self.patience),
        ] {
            if !(d.mean > 0.0 && d.mean <= MAX_SECONDS) {
                return Err((
                    format!("{name}.mean"),
                    format!("mean must be above 0 and at most {MAX_SECONDS} seconds (a day)"),
                ));
            }
            if !(d.sd >= 0.0 && d.sd <= MAX_SECONDS) {
                return Err((
                    format!("{name}.sd"),
                    format!("sd must be 0 to {MAX_SECONDS} seconds (a day)"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.conversion) {
            return Err(("conversion".into(), "a probability, 0 to 1".into()));
        }
        for (name, v) in [
            ("hourly_human", &self.hourly_human),
            ("hourly_handle", &self.hourly_handle),
        ] {
            if let Some(v) = v
                && (v.len() != 24 || v.iter().any(|x| !(*x >= 0.0 && x.is_finite())))
            {
                return Err((name.into(), "24 non-negative values, one per hour".into()));
            }
        }
        if let Some(h) = &self.hourly_human
            && h.iter().any(|x| *x > 1.0 - self.outcomes.failure)
        {
            return Err((
                "hourly_human".into(),
                "each hour's human rate must leave room for failures".into(),
            ));
        }
        self.start_date().map_err(|e| ("start".to_string(), e))?;
        if let Some(d) = self.amd {
            if !(d.mean > 0.0 && d.mean <= MAX_SECONDS) {
                return Err((
                    "amd.mean".into(),
                    format!("mean must be above 0 and at most {MAX_SECONDS} seconds"),
                ));
            }
            if !(d.sd >= 0.0 && d.sd <= MAX_SECONDS) {
                return Err((
                    "amd.sd".into(),
                    format!("sd must be 0 or more and at most {MAX_SECONDS} seconds"),
                ));
            }
        }
        // Checked above: the shift parses.
        let shift = self.shift_window().map_err(|e| ("shift".to_string(), e))?;
        let shift_ms = (shift.end - shift.start).num_milliseconds().max(0) as u128;
        let stagger = self
            .stagger()
            .map_err(|e| ("login_stagger".to_string(), e))?;
        if stagger.as_millis() >= shift_ms {
            return Err((
                "login_stagger".into(),
                format!("{stagger:?} is not shorter than the shift {}", self.shift),
            ));
        }
        for (i, b) in self.breaks.iter().enumerate() {
            let field = format!("breaks[{i}]");
            let (at, length) = b.parsed().map_err(|e| (field.clone(), e))?;
            let end = at + chrono::Duration::milliseconds(length.as_millis() as i64);
            // A break outside the shift would be skipped in silence.
            if length.is_zero() || at < shift.start || end > shift.end || end < at {
                return Err((
                    field,
                    format!(
                        "the break at {} for {} must lie within the shift {}",
                        b.at, b.length, self.shift
                    ),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.leads.dnd_share) {
            return Err(("leads.dnd_share".into(), "a share, 0 to 1".into()));
        }
        self.lead_zones()
            .map_err(|e| ("leads.zones".to_string(), e))?;
        Ok(())
    }

    /// The log-in stagger.
    pub fn stagger(&self) -> Result<std::time::Duration, String> {
        match &self.login_stagger {
            None => Ok(std::time::Duration::ZERO),
            Some(t) => humantime::parse_duration(t.trim()).map_err(|e| format!("{t:?}: {e}")),
        }
    }

    /// The first simulated day.
    pub fn start_date(&self) -> Result<chrono::NaiveDate, String> {
        let text = self.start.as_deref().unwrap_or(DEFAULT_START);
        chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{text:?} is not a date YYYY-MM-DD"))
    }

    /// The leads' zones with their weights, normalised to sum to 1; empty
    /// when the scenario names none.
    pub fn lead_zones(&self) -> Result<Vec<(chrono_tz::Tz, f64)>, String> {
        let mut out = Vec::new();
        for (name, w) in &self.leads.zones {
            let tz: chrono_tz::Tz = name
                .parse()
                .map_err(|_| format!("{name:?} is not an IANA time zone"))?;
            if !(w.is_finite() && *w >= 0.0) {
                return Err(format!("{name}: the weight must be a number >= 0"));
            }
            out.push((tz, *w));
        }
        let total: f64 = out.iter().map(|(_, w)| w).sum();
        if !out.is_empty() && total <= 0.0 {
            return Err("the weights must not all be 0".into());
        }
        for (_, w) in &mut out {
            *w /= total;
        }
        Ok(out)
    }

    /// The shift as a window.
    pub fn shift_window(&self) -> Result<DayWindow, String> {
        let (a, b) = self
            .shift
            .split_once('-')
            .ok_or_else(|| format!("{:?}: write HH:MM-HH:MM", self.shift))?;
        let t = |s: &str| {
            chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("{s:?} is not HH:MM"))
        };
        let w = DayWindow {
            start: t(a)?,
            end: t(b)?,
        };
        if w.start >= w.end {
            return Err("the shift must end after it starts".into());
        }
        Ok(w)
    }

    /// The outcome probabilities at an hour of day.
    pub fn outcomes_at(&self, hour: usize) -> Outcomes {
        let Some(h) = self.hourly_human.as_ref().and_then(|v| v.get(hour)) else {
            return self.outcomes;
        };
        let o = self.outcomes;
        let rest = o.machine + o.busy + o.no_answer;
        let scale = if rest > 0.0 {
            (1.0 - h - o.failure) / rest
        } else {
            0.0
        };
        Outcomes {
            human: *h,
            machine: o.machine * scale,
            busy: o.busy * scale,
            no_answer: o.no_answer * scale,
            failure: o.failure,
        }
    }

    /// The handle-time multiplier at an hour of day.
    pub fn handle_factor_at(&self, hour: usize) -> f64 {
        self.hourly_handle
            .as_ref()
            .and_then(|v| v.get(hour))
            .copied()
            .unwrap_or(1.0)
    }
}

/// The longest mean or spread of a scenario's durations, in seconds (a
/// day): beyond it times overflow the simulator's clock.
const MAX_SECONDS: f64 = 86_400.0;

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped default scenario with `from` replaced by `to`, loaded:
    /// the error's (line, field, message), or none.
    fn load_with(from: &str, to: &str) -> Option<(usize, String, String)> {
        assert!(DEFAULT.contains(from), "{from}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, DEFAULT.replacen(from, to, 1)).expect("write");
        match Scenario::load(&path) {
            Ok(_) => None,
            Err(CampaignError::Invalid { errors, .. }) => {
                let e = &errors[0];
                Some((e.line, e.field.clone(), e.message.clone()))
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn line_of(needle: &str) -> usize {
        DEFAULT
            .lines()
            .position(|l| l.trim_start().starts_with(needle))
            .expect("line")
            + 1
    }

    /// A NaN probability, a mean beyond a day, a break outside the shift:
    /// refused with the field and its line (the `mean` under `[talk]`, not
    /// the first `mean` of the file).
    #[test]
    fn nonsense_values_are_refused_at_their_field_and_line() {
        let (line, field, _) = load_with("human = 0.30", "human = nan").expect("refused");
        assert_eq!((line, field.as_str()), (line_of("[outcomes]"), "outcomes"));
        let talk_mean = DEFAULT
            .lines()
            .enumerate()
            .skip_while(|(_, l)| !l.starts_with("[talk]"))
            .find(|(_, l)| l.starts_with("mean"))
            .map(|(i, _)| i + 1)
            .expect("talk.mean");
        let (line, field, _) = load_with("mean = 240.0", "mean = 1e17").expect("refused");
        assert_eq!((line, field.as_str()), (talk_mean, "talk.mean"));
        let (line, field, _) = load_with("sd = 150.0", "sd = inf").expect("refused");
        assert_eq!((line, field.as_str()), (talk_mean + 1, "talk.sd"));
        // Breaks are an array of tables: appended at the end of the file;
        // the second ends after the shift (20:00).
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            format!("{DEFAULT}\n[[breaks]]\nat = \"12:00\"\nlength = \"30m\"\nshare = 0.5\n\n[[breaks]]\nat = \"19:50\"\nlength = \"15m\"\nshare = 0.5\n"),
        )
        .expect("write");
        match Scenario::load(&path) {
            Err(CampaignError::Invalid { errors, .. }) => {
                assert_eq!(errors[0].field, "breaks[1]", "{errors:?}");
                let text = std::fs::read_to_string(&path).expect("read");
                let second = text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| l.starts_with("[[breaks]]"))
                    .nth(1)
                    .map(|(i, _)| i + 1)
                    .expect("second break");
                assert_eq!(errors[0].line, second);
                assert!(errors[0].message.contains("within the shift"), "{errors:?}");
            }
            other => panic!("a break past the shift's end was taken: {other:?}"),
        }
        assert!(load_with("agents = 25", "agents = 25").is_none());
        // A bad AMD spread is named as the sd, at its own line.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("amd.toml");
        std::fs::write(&path, format!("{DEFAULT}\n[amd]\nmean = 1.5\nsd = -1.0\n")).expect("write");
        match Scenario::load(&path) {
            Err(CampaignError::Invalid { errors, .. }) => {
                assert_eq!(errors[0].field, "amd.sd", "{errors:?}");
                let text = std::fs::read_to_string(&path).expect("read");
                let sd = text.lines().count();
                assert_eq!(errors[0].line, sd, "{errors:?}");
            }
            other => panic!("a negative AMD sd was taken: {other:?}"),
        }
    }
}
