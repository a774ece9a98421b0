//! Campaign reports: the figures a contact centre runs on (contact rate,
//! abandonment per compliance window, AHT, talk share, occupancy,
//! conversions, revenue and cost), for a campaign over a time range.
//!
//! Owns the definitions and the arithmetic; the store sums integers
//! (counts, milliseconds, minor currency units) in SQL that SQLite and
//! PostgreSQL evaluate alike, and every rate and money figure is derived
//! from those here, so both databases give the same report. Writes no rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::campaign::Campaign;
use crate::store::{AgentState, Store, StoreError};

/// Errors from reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The range ends before it starts.
    #[error("the report range ends ({to}) before it starts ({from})")]
    BadRange {
        /// Start, ms.
        from: i64,
        /// End, ms.
        to: i64,
    },
    /// Writing CSV failed.
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Time agents spent in each state, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StateTimes {
    /// Ready, waiting for a call.
    pub ready_ms: i64,
    /// Reserved for a call about to be bridged.
    pub reserved_ms: i64,
    /// On a call.
    pub on_call_ms: i64,
    /// In wrap-up.
    pub wrapup_ms: i64,
    /// Paused.
    pub paused_ms: i64,
}

impl StateTimes {
    fn add(&mut self, state: AgentState, ms: i64) {
        let slot = match state {
            AgentState::Ready => &mut self.ready_ms,
            AgentState::Reserved => &mut self.reserved_ms,
            AgentState::OnCall => &mut self.on_call_ms,
            AgentState::Wrapup => &mut self.wrapup_ms,
            AgentState::Paused => &mut self.paused_ms,
        };
        *slot = slot.saturating_add(ms);
    }

    /// Logged in and available for work: every state but paused.
    pub fn working_ms(&self) -> i64 {
        self.ready_ms + self.reserved_ms + self.on_call_ms + self.wrapup_ms
    }

    /// Logged in, paused included: what agents are paid for.
    pub fn logged_in_ms(&self) -> i64 {
        self.working_ms() + self.paused_ms
    }

    /// On-call time over logged-in, non-paused time.
    pub fn talk_share(&self) -> Option<f64> {
        ratio(self.on_call_ms, self.working_ms())
    }

    /// On-call and wrap-up time over logged-in, non-paused time.
    pub fn occupancy(&self) -> Option<f64> {
        ratio(self.on_call_ms + self.wrapup_ms, self.working_ms())
    }
}

/// One agent's row.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AgentRow {
    /// Agent; `-` for connected calls that name no agent.
    pub agent_id: String,
    /// Connected calls handled.
    pub calls: i64,
    /// Talk time of those calls, ms.
    pub talk_ms: i64,
    /// Wrap-up recorded with those calls, ms.
    pub wrapup_ms: i64,
    /// Conversions recorded.
    pub conversions: i64,
    /// Revenue recorded, minor units.
    pub revenue_minor: i64,
    /// Time in each state.
    pub time: StateTimes,
    /// On-call over logged-in non-paused time.
    pub talk_share: Option<f64>,
    /// On-call and wrap-up over logged-in non-paused time.
    pub occupancy: Option<f64>,
}

/// One UTC hour's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourRow {
    /// Start of the hour, UTC.
    pub hour: DateTime<Utc>,
    /// Attempts started.
    pub attempts: i64,
    /// Human answers.
    pub human_answers: i64,
    /// Abandons.
    pub abandons: i64,
    /// Conversions.
    pub conversions: i64,
}

/// Abandonment in one compliance window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRow {
    /// Start of the window.
    pub start: DateTime<Utc>,
    /// Human answers.
    pub human_answers: i64,
    /// Abandons.
    pub abandons: i64,
    /// Abandons over human answers; `None` without human answers.
    pub abandon_rate: Option<f64>,
}

/// A campaign's report over `[from, to)`.
///
/// Rates are fractions (0.05 is 5%), `None` when their denominator is zero.
/// A *call* is a connected call (a human answer bridged to an agent) that
/// has ended; per-call figures divide by those. Money: revenue is summed in
/// minor units of the campaign currency; `revenue` and every cost are in
/// major units (`revenue_minor` / 10^digits, digits from ISO 4217: 2 unless
/// the currency has 0 or 3). Costs need the campaign's `[costs]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Campaign name.
    pub campaign: String,
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range (excluded).
    pub to: DateTime<Utc>,
    /// Currency of revenue and costs, from the campaign's `[costs]`.
    pub currency: Option<String>,
    /// Attempts started.
    pub attempts: i64,
    /// Human answers (ledger).
    pub human_answers: i64,
    /// Dispositions flagged contact.
    pub contacts: i64,
    /// Contacts over attempts.
    pub contact_rate: Option<f64>,
    /// Abandons (ledger).
    pub abandons: i64,
    /// Abandons over human answers, whole range.
    pub abandon_rate: Option<f64>,
    /// The campaign's abandonment limit, fraction.
    pub abandon_limit: f64,
    /// Length of the compliance window, ms.
    pub window_ms: i64,
    /// Windows with any human answer or abandon, aligned to `from`.
    pub windows: Vec<WindowRow>,
    /// The window with the highest abandonment rate (the earliest on a tie).
    pub worst_window: Option<WindowRow>,
    /// Connected calls handled.
    pub calls: i64,
    /// Talk time of those calls, ms.
    pub talk_ms: i64,
    /// Wrap-up recorded with those calls, ms.
    pub wrapup_ms: i64,
    /// Average handle time (talk + wrap-up per call), ms.
    pub aht_ms: Option<f64>,
    /// Mean talk per call, ms.
    pub mean_talk_ms: Option<f64>,
    /// Mean wrap-up per call, ms.
    pub mean_wrapup_ms: Option<f64>,
    /// Agent time in each state, all agents.
    pub time: StateTimes,
    /// On-call over logged-in non-paused time.
    pub talk_share: Option<f64>,
    /// On-call and wrap-up over logged-in non-paused time.
    pub occupancy: Option<f64>,
    /// Conversions.
    pub conversions: i64,
    /// Conversions over contacts.
    pub conversion_rate_per_contact: Option<f64>,
    /// Conversions over attempts.
    pub conversion_rate_per_attempt: Option<f64>,
    /// Revenue, minor units.
    pub revenue_minor: i64,
    /// Revenue, major units.
    pub revenue: f64,
    /// Revenue per call, major units.
    pub revenue_per_call: Option<f64>,
    /// Revenue per logged-in agent hour (pauses included), major units.
    pub revenue_per_agent_hour: Option<f64>,
    /// Trunk minutes billed: answer to hang-up, each call rounded up to
    /// whole minutes.
    pub billed_minutes: i64,
    /// Trunk cost plus agent cost (logged-in hours, pauses included).
    pub cost: Option<f64>,
    /// Cost per call.
    pub cost_per_call: Option<f64>,
    /// Cost per conversion.
    pub cost_per_conversion: Option<f64>,
    /// Per agent, by agent id.
    pub agents: Vec<AgentRow>,
    /// Per UTC hour with any activity.
    pub hours: Vec<HourRow>,
}

fn ratio(num: i64, den: i64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

fn per(num: f64, den: i64) -> Option<f64> {
    (den != 0).then(|| num / den as f64)
}

fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Digits after the decimal point of an ISO 4217 currency.
pub fn currency_digits(code: &str) -> u32 {
    match code.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// The report of `campaign` (stored as `campaign_id`) over `[from_ms,
/// to_ms)`. Agent state intervals still open count up to `to_ms`, so pass
/// a `to_ms` no later than now.
pub async fn report(
    store: &Store,
    campaign: &Campaign,
    campaign_id: i64,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Result<Report, ReportError> {
    if to_ms < from_ms {
        return Err(ReportError::BadRange {
            from: from_ms,
            to: to_ms,
        });
    }
    let window_ms = i64::try_from(campaign.abandon_window.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let data = store
        .report_data(campaign_id, from_ms, to_ms, window_ms, now_ms)
        .await?;

    let mut agents: BTreeMap<String, AgentRow> = BTreeMap::new();
    fn row<'a>(agents: &'a mut BTreeMap<String, AgentRow>, id: &str) -> &'a mut AgentRow {
        agents.entry(id.to_string()).or_insert_with(|| AgentRow {
            agent_id: id.to_string(),
            ..AgentRow::default()
        })
    }
    for c in &data.calls {
        let r = row(&mut agents, c.agent_id.as_deref().unwrap_or("-"));
        r.calls += c.calls;
        r.talk_ms += c.talk_ms;
        r.wrapup_ms += c.wrapup_ms;
    }
    for d in &data.dispositions {
        let r = row(&mut agents, &d.agent_id);
        r.conversions += d.conversions;
        r.revenue_minor += d.revenue_minor;
    }
    for s in &data.states {
        row(&mut agents, &s.agent_id).time.add(s.state, s.ms);
    }
    let mut time = StateTimes::default();
    for r in agents.values_mut() {
        r.talk_share = r.time.talk_share();
        r.occupancy = r.time.occupancy();
        for s in AgentState::ALL {
            let ms = match s {
                AgentState::Ready => r.time.ready_ms,
                AgentState::Reserved => r.time.reserved_ms,
                AgentState::OnCall => r.time.on_call_ms,
                AgentState::Wrapup => r.time.wrapup_ms,
                AgentState::Paused => r.time.paused_ms,
            };
            time.add(s, ms);
        }
    }
    let agents: Vec<AgentRow> = agents.into_values().collect();
    let calls: i64 = agents.iter().map(|a| a.calls).sum();
    let talk_ms: i64 = agents.iter().map(|a| a.talk_ms).sum();
    let wrapup_ms: i64 = agents.iter().map(|a| a.wrapup_ms).sum();
    let contacts: i64 = data.dispositions.iter().map(|d| d.contacts).sum();
    let conversions: i64 = data.dispositions.iter().map(|d| d.conversions).sum();
    let revenue_minor: i64 = data.dispositions.iter().map(|d| d.revenue_minor).sum();

    let currency = campaign.costs.as_ref().map(|c| c.currency.clone());
    let scale = 10f64.powi(currency.as_deref().map_or(2, currency_digits) as i32);
    let revenue = revenue_minor as f64 / scale;
    let agent_hours = time.logged_in_ms() as f64 / 3_600_000.0;
    let cost = campaign
        .costs
        .as_ref()
        .map(|c| c.trunk_per_minute * data.billed_minutes as f64 + c.agent_per_hour * agent_hours);

    let windows: Vec<WindowRow> = data
        .windows
        .iter()
        .map(|w| WindowRow {
            start: time_of(w.start_ms),
            human_answers: w.human_answers,
            abandons: w.abandons,
            abandon_rate: ratio(w.abandons, w.human_answers),
        })
        .collect();
    let mut worst_window: Option<WindowRow> = None;
    for w in &windows {
        let Some(rate) = w.abandon_rate else { continue };
        if worst_window
            .as_ref()
            .and_then(|b| b.abandon_rate)
            .is_none_or(|best| rate > best)
        {
            worst_window = Some(w.clone());
        }
    }

    Ok(Report {
        campaign: campaign.name.clone(),
        from: time_of(from_ms),
        to: time_of(to_ms),
        currency,
        attempts: data.attempts,
        human_answers: data.human_answers,
        contacts,
        contact_rate: ratio(contacts, data.attempts),
        abandons: data.abandons,
        abandon_rate: ratio(data.abandons, data.human_answers),
        abandon_limit: campaign.abandon_limit_percent / 100.0,
        window_ms,
        windows,
        worst_window,
        calls,
        talk_ms,
        wrapup_ms,
        aht_ms: per((talk_ms + wrapup_ms) as f64, calls),
        mean_talk_ms: per(talk_ms as f64, calls),
        mean_wrapup_ms: per(wrapup_ms as f64, calls),
        time,
        talk_share: time.talk_share(),
        occupancy: time.occupancy(),
        conversions,
        conversion_rate_per_contact: ratio(conversions, contacts),
        conversion_rate_per_attempt: ratio(conversions, data.attempts),
        revenue_minor,
        revenue,
        revenue_per_call: per(revenue, calls),
        revenue_per_agent_hour: (agent_hours > 0.0).then(|| revenue / agent_hours),
        billed_minutes: data.billed_minutes,
        cost,
        cost_per_call: cost.and_then(|c| per(c, calls)),
        cost_per_conversion: cost.and_then(|c| per(c, conversions)),
        agents,
        hours: data
            .hours
            .iter()
            .map(|h| HourRow {
                hour: time_of(h.start_ms),
                attempts: h.attempts,
                human_answers: h.human_answers,
                abandons: h.abandons,
                conversions: h.conversions,
            })
            .collect(),
    })
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.2}%", r * 100.0))
}

fn secs(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{:.1} s", ms / 1000.0))
}

fn hours(ms: i64) -> String {
    format!("{:.2} h", ms as f64 / 3_600_000.0)
}

fn money(v: Option<f64>, currency: &str) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2} {currency}"))
        .trim_end()
        .to_string()
}

impl Report {
    /// The report as a readable text table.
    pub fn to_text(&self) -> String {
        let cur = self.currency.as_deref().unwrap_or("");
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} to {}",
            self.campaign,
            self.from.to_rfc3339(),
            self.to.to_rfc3339()
        );
        let mut line = |k: &str, v: String| {
            let _ = writeln!(s, "  {k:<28} {v}");
        };
        line("attempts", self.attempts.to_string());
        line("human answers", self.human_answers.to_string());
        line(
            "contacts",
            format!("{} ({} of attempts)", self.contacts, pct(self.contact_rate)),
        );
        line(
            "abandons",
            format!(
                "{} ({} of human answers; limit {})",
                self.abandons,
                pct(self.abandon_rate),
                pct(Some(self.abandon_limit))
            ),
        );
        line(
            "worst window",
            match &self.worst_window {
                Some(w) => format!(
                    "{} from {} ({} of {}; window {})",
                    pct(w.abandon_rate),
                    w.start.to_rfc3339(),
                    w.abandons,
                    w.human_answers,
                    humantime::format_duration(std::time::Duration::from_millis(
                        u64::try_from(self.window_ms).unwrap_or(0)
                    ))
                ),
                None => "-".into(),
            },
        );
        line("calls handled", self.calls.to_string());
        line(
            "AHT",
            format!(
                "{} (talk {}, wrap-up {})",
                secs(self.aht_ms),
                secs(self.mean_talk_ms),
                secs(self.mean_wrapup_ms)
            ),
        );
        line(
            "agent time",
            format!(
                "{} logged in, {} paused",
                hours(self.time.logged_in_ms()),
                hours(self.time.paused_ms)
            ),
        );
        line("talk share", pct(self.talk_share));
        line("occupancy", pct(self.occupancy));
        line(
            "conversions",
            format!(
                "{} ({} of contacts, {} of attempts)",
                self.conversions,
                pct(self.conversion_rate_per_contact),
                pct(self.conversion_rate_per_attempt)
            ),
        );
        line("revenue", money(Some(self.revenue), cur));
        line("revenue per call", money(self.revenue_per_call, cur));
        line(
            "revenue per agent hour",
            money(self.revenue_per_agent_hour, cur),
        );
        line("billed trunk minutes", self.billed_minutes.to_string());
        line("cost", money(self.cost, cur));
        line("cost per call", money(self.cost_per_call, cur));
        line("cost per conversion", money(self.cost_per_conversion, cur));
        if !self.agents.is_empty() {
            let _ = writeln!(
                s,
                "\n  {:<16} {:>6} {:>10} {:>10} {:>6} {:>12} {:>8} {:>8}",
                "AGENT", "CALLS", "TALK", "WRAP-UP", "CONV", "REVENUE", "TALK%", "OCC%"
            );
            for a in &self.agents {
                let _ = writeln!(
                    s,
                    "  {:<16} {:>6} {:>10} {:>10} {:>6} {:>12} {:>8} {:>8}",
                    a.agent_id,
                    a.calls,
                    hours(a.talk_ms),
                    hours(a.wrapup_ms),
                    a.conversions,
                    money(
                        Some(a.revenue_minor as f64 / 10f64.powi(self.digits() as i32)),
                        ""
                    ),
                    pct(a.talk_share),
                    pct(a.occupancy)
                );
            }
        }
        if !self.hours.is_empty() {
            let _ = writeln!(
                s,
                "\n  {:<20} {:>8} {:>8} {:>8} {:>6}",
                "HOUR (UTC)", "ATTEMPTS", "HUMAN", "ABANDON", "CONV"
            );
            for h in &self.hours {
                let _ = writeln!(
                    s,
                    "  {:<20} {:>8} {:>8} {:>8} {:>6}",
                    h.hour.format("%Y-%m-%d %H:00"),
                    h.attempts,
                    h.human_answers,
                    h.abandons,
                    h.conversions
                );
            }
        }
        s
    }

    fn digits(&self) -> u32 {
        self.currency.as_deref().map_or(2, currency_digits)
    }

    /// Writes the report as CSV: the summary (`metric,value`), the agent
    /// table and the hour table, each with its header, separated by a blank
    /// line.
    pub fn write_csv<W: std::io::Write>(&self, mut out: W) -> Result<(), ReportError> {
        let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
        let summary: Vec<(&str, String)> = vec![
            ("campaign", self.campaign.clone()),
            ("from", self.from.to_rfc3339()),
            ("to", self.to.to_rfc3339()),
            ("currency", self.currency.clone().unwrap_or_default()),
            ("attempts", self.attempts.to_string()),
            ("human_answers", self.human_answers.to_string()),
            ("contacts", self.contacts.to_string()),
            ("contact_rate", opt(self.contact_rate)),
            ("abandons", self.abandons.to_string()),
            ("abandon_rate", opt(self.abandon_rate)),
            (
                "worst_window_start",
                self.worst_window
                    .as_ref()
                    .map(|w| w.start.to_rfc3339())
                    .unwrap_or_default(),
            ),
            (
                "worst_window_abandon_rate",
                opt(self.worst_window.as_ref().and_then(|w| w.abandon_rate)),
            ),
            ("calls", self.calls.to_string()),
            ("aht_ms", opt(self.aht_ms)),
            ("mean_talk_ms", opt(self.mean_talk_ms)),
            ("mean_wrapup_ms", opt(self.mean_wrapup_ms)),
            ("logged_in_ms", self.time.logged_in_ms().to_string()),
            ("talk_share", opt(self.talk_share)),
            ("occupancy", opt(self.occupancy)),
            ("conversions", self.conversions.to_string()),
            (
                "conversion_rate_per_contact",
                opt(self.conversion_rate_per_contact),
            ),
            (
                "conversion_rate_per_attempt",
                opt(self.conversion_rate_per_attempt),
            ),
            ("revenue_minor", self.revenue_minor.to_string()),
            ("revenue", self.revenue.to_string()),
            ("revenue_per_call", opt(self.revenue_per_call)),
            ("revenue_per_agent_hour", opt(self.revenue_per_agent_hour)),
            ("billed_minutes", self.billed_minutes.to_string()),
            ("cost", opt(self.cost)),
            ("cost_per_call", opt(self.cost_per_call)),
            ("cost_per_conversion", opt(self.cost_per_conversion)),
        ];
        {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["metric", "value"])?;
            for (k, v) in &summary {
                w.write_record([k, v.as_str()])?;
            }
            w.flush().map_err(csv::Error::from)?;
        }
        out.write_all(b"\n").map_err(csv::Error::from)?;
        {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record([
                "agent_id",
                "calls",
                "talk_ms",
                "wrapup_ms",
                "conversions",
                "revenue_minor",
                "logged_in_ms",
                "paused_ms",
                "talk_share",
                "occupancy",
            ])?;
            for a in &self.agents {
                w.write_record([
                    a.agent_id.clone(),
                    a.calls.to_string(),
                    a.talk_ms.to_string(),
                    a.wrapup_ms.to_string(),
                    a.conversions.to_string(),
                    a.revenue_minor.to_string(),
                    a.time.logged_in_ms().to_string(),
                    a.time.paused_ms.to_string(),
                    opt(a.talk_share),
                    opt(a.occupancy),
                ])?;
            }
            w.flush().map_err(csv::Error::from)?;
        }
        out.write_all(b"\n").map_err(csv::Error::from)?;
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record([
            "hour_utc",
            "attempts",
            "human_answers",
            "abandons",
            "conversions",
        ])?;
        for h in &self.hours {
            w.write_record([
                h.hour.to_rfc3339(),
                h.attempts.to_string(),
                h.human_answers.to_string(),
                h.abandons.to_string(),
                h.conversions.to_string(),
            ])?;
        }
        w.flush().map_err(csv::Error::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_divide_by_non_paused_time() {
        let t = StateTimes {
            ready_ms: 100,
            reserved_ms: 0,
            on_call_ms: 600,
            wrapup_ms: 100,
            paused_ms: 200,
        };
        assert_eq!(t.working_ms(), 800);
        assert_eq!(t.logged_in_ms(), 1000);
        assert_eq!(t.talk_share(), Some(0.75));
        assert_eq!(t.occupancy(), Some(0.875));
        assert_eq!(StateTimes::default().talk_share(), None);
    }

    #[test]
    fn currency_digits_follow_iso_4217() {
        assert_eq!(currency_digits("INR"), 2);
        assert_eq!(currency_digits("jpy"), 0);
        assert_eq!(currency_digits("KWD"), 3);
    }
}
