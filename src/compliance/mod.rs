//! Compliance: may this number be dialled now? One fail-closed verdict.
//!
//! [`check`] is the single entry point, used by the lead hopper just before
//! every dial and by `dialler check`. It is pure (sans-IO): the lead's
//! state, the campaign, the registries and the ledger's figures come in as
//! arguments with `now`. Whatever it cannot establish (the time zone, a
//! fresh national registry, a holiday calendar for the year) means no.
//!
//! Submodules: [`dnd`] (registries), [`hours`] (calling hours and
//! holidays), [`ledger`] (the abandonment ledger).

pub mod dnd;
pub mod hours;
pub mod ledger;
pub mod suppression;

pub use suppression::Suppressions;

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::campaign::Campaign;
use crate::dnd_set::DndSet;
use crate::outcome::Outcome;
use crate::phone::{Country, PhoneNumber};
use crate::profile::{DayWindow, Profile, WeekPlan};

use self::dnd::{Listing, NationalRegistry, TimeBand};
use self::hours::{Closed, Hours};
use self::ledger::LedgerStatus;

/// Why a number may not be dialled. The codes are stable: logs, the API
/// and reports use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The number is not a valid number of the campaign's country.
    InvalidNumber,
    /// The lead's time zone is unknown.
    TimezoneUnknown,
    /// Listed in the national registry (for India: blocked for the
    /// campaign's category).
    DndNational,
    /// On the account's internal do-not-call list.
    DndInternal,
    /// On the campaign's own do-not-call list.
    DndCampaign,
    /// The person had their data erased: the number is suppressed in
    /// every campaign (a keyed hash, not the number, is kept).
    Suppressed,
    /// No national registry is loaded for the country.
    DndRegistryMissing,
    /// The national registry is older than the profile allows.
    DndRegistryStale,
    /// Outside the calling hours in the called party's local time.
    OutsideHours,
    /// A public holiday where the profile bars calls.
    Holiday,
    /// The holiday calendar does not cover the date.
    HolidayCalendarMissing,
    /// The lead has had its maximum number of attempts.
    MaxAttempts,
    /// The lead has had its maximum attempts for the local day.
    MaxAttemptsToday,
    /// The retry delay after the last outcome has not passed.
    RetryDelay,
    /// The number's call was abandoned within the recall period (UK: 72 h)
    /// and no agent is reserved for this call.
    RecallAfterAbandon,
    /// The number's last call was taken for an answering machine within
    /// the profile's period (UK: 24 h) and no agent is reserved.
    RecallAfterMachine,
    /// The abandonment rate is at the limit: only a dial with an agent
    /// reserved may go out.
    AbandonBudgetExhausted,
}

impl Reason {
    /// Every reason, for listings.
    pub const ALL: [Reason; 17] = [
        Reason::InvalidNumber,
        Reason::TimezoneUnknown,
        Reason::DndNational,
        Reason::DndInternal,
        Reason::DndCampaign,
        Reason::Suppressed,
        Reason::DndRegistryMissing,
        Reason::DndRegistryStale,
        Reason::OutsideHours,
        Reason::Holiday,
        Reason::HolidayCalendarMissing,
        Reason::MaxAttempts,
        Reason::MaxAttemptsToday,
        Reason::RetryDelay,
        Reason::RecallAfterAbandon,
        Reason::RecallAfterMachine,
        Reason::AbandonBudgetExhausted,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidNumber => "invalid_number",
            Reason::TimezoneUnknown => "timezone_unknown",
            Reason::DndNational => "dnd_national",
            Reason::DndInternal => "dnd_internal",
            Reason::DndCampaign => "dnd_campaign",
            Reason::Suppressed => "suppressed",
            Reason::DndRegistryMissing => "dnd_registry_missing",
            Reason::DndRegistryStale => "dnd_registry_stale",
            Reason::OutsideHours => "outside_hours",
            Reason::Holiday => "holiday",
            Reason::HolidayCalendarMissing => "holiday_calendar_missing",
            Reason::MaxAttempts => "max_attempts",
            Reason::MaxAttemptsToday => "max_attempts_today",
            Reason::RetryDelay => "retry_delay",
            Reason::RecallAfterAbandon => "recall_after_abandon",
            Reason::RecallAfterMachine => "recall_after_machine",
            Reason::AbandonBudgetExhausted => "abandon_budget_exhausted",
        }
    }

    /// What it means and what clears it, for people.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::InvalidNumber => "not a valid number of the campaign's country",
            Reason::TimezoneUnknown => {
                "the called party's time zone is unknown; fix the lead's zone"
            }
            Reason::DndNational => "listed in the national do-not-call registry",
            Reason::DndInternal => "on the account's internal do-not-call list",
            Reason::DndCampaign => "on the campaign's own do-not-call list",
            Reason::Suppressed => {
                "the person's data was erased at their request; never called again in any campaign"
            }
            Reason::DndRegistryMissing => {
                "no national registry loaded for this country, or this node's copy is not the one last imported into the store; run dialler dnd import here"
            }
            Reason::DndRegistryStale => {
                "the national registry is older than the profile allows; import a fresh copy"
            }
            Reason::OutsideHours => "outside calling hours in the called party's local time",
            Reason::Holiday => {
                "a public holiday on which the profile, or the US state of the number's area code, bars calls"
            }
            Reason::HolidayCalendarMissing => {
                "the holiday calendar does not cover this date; extend data/holidays"
            }
            Reason::MaxAttempts => "no attempts left for this lead",
            Reason::MaxAttemptsToday => "no attempts left for this lead today",
            Reason::RetryDelay => "the retry delay after the last outcome has not passed",
            Reason::RecallAfterAbandon => {
                "called and abandoned within the recall period; needs an agent reserved"
            }
            Reason::RecallAfterMachine => {
                "taken for an answering machine within the recall period; needs an agent reserved"
            }
            Reason::AbandonBudgetExhausted => {
                "abandonment rate at the limit; only dials with an agent reserved"
            }
        }
    }

    /// Whether waiting can clear it (as opposed to someone fixing data).
    fn passes_with_time(self) -> bool {
        matches!(
            self,
            Reason::OutsideHours
                | Reason::Holiday
                | Reason::MaxAttemptsToday
                | Reason::RetryDelay
                | Reason::RecallAfterAbandon
                | Reason::RecallAfterMachine
                | Reason::AbandonBudgetExhausted
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The answer to "may this number be dialled now?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// True only when no reason stands against the call.
    pub allowed: bool,
    /// Every reason against it, in a stable order.
    pub reasons: Vec<Reason>,
    /// When to look again: `now` when allowed, the first instant every
    /// time-bound reason has passed, or `None` when waiting cannot help
    /// (a DND listing, no attempts left, an unknown zone, missing data).
    pub next_allowed_at: Option<DateTime<Utc>>,
}

/// What compliance needs to know about a lead.
#[derive(Debug, Clone, Copy)]
pub struct LeadState<'a> {
    /// The number.
    pub number: PhoneNumber,
    /// Candidate time zones; empty when unknown.
    pub zones: &'a [Tz],
    /// The person asked not to be called (a `dnc` disposition, an
    /// erasure): refused as [`Reason::DndInternal`] whatever the lists say.
    pub opted_out: bool,
    /// Attempts made so far.
    pub attempts: u32,
    /// Start times of recent attempts (at least those of the last two days).
    pub recent_attempts: &'a [DateTime<Utc>],
    /// The last attempt's outcome and when it ended.
    pub last_outcome: Option<(Outcome, DateTime<Utc>)>,
    /// When a call to this number was last abandoned, if ever.
    pub last_abandon_at: Option<DateTime<Utc>>,
    /// When a call to this number last ended on an answering machine, if
    /// ever: the recall rule after a machine runs from it whatever
    /// outcomes came after (a call with an agent reserved may follow
    /// within the period; the one after that is still inside it).
    pub last_machine_at: Option<DateTime<Utc>>,
}

/// The do-not-call data compliance screens against.
#[derive(Debug, Default)]
pub struct Registries {
    /// National registries by country.
    pub national: HashMap<Country, std::sync::Arc<NationalRegistry>>,
    /// The account's internal do-not-call list (every campaign).
    pub internal: DndSet,
    /// Campaign lists, by campaign name.
    pub campaign: HashMap<String, DndSet>,
    /// Numbers erased at the person's request, as keyed hashes.
    pub suppressed: Suppressions,
}

/// Everything besides the lead and campaign that a verdict depends on.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Do-not-call data.
    pub registries: &'a Registries,
    /// The campaign's abandonment ledger now, if the caller tracks it.
    pub ledger: Option<LedgerStatus>,
    /// When the ledger's figures next improve (its oldest event expires).
    pub ledger_retry_at: Option<DateTime<Utc>>,
    /// An agent is reserved for this call (progressive dialling): allows
    /// the calls the abandonment rules would otherwise refuse.
    pub agent_reserved: bool,
}

/// How long after an abandoned call the same number may not be called
/// again without an agent reserved (UK: Ofcom, 72 hours).
pub fn recall_after_abandon(profile: Profile) -> Option<Duration> {
    profile.rules().recall_after_abandon()
}

/// The oldest a national registry may be before dialling stops: the US
/// (TSR) and Canada (DNCL) require a copy at most 31 days old, the UK's TPS
/// 28 days, Australia's wash results last 30 days; India (NCPR) is held to
/// 31 days by our policy.
pub fn max_registry_age(profile: Profile) -> Duration {
    profile.rules().max_registry_age()
}

/// May `lead` be dialled for `campaign` at `now`? Pure; see the module
/// docs. Allocates only when refusing.
pub fn check(
    lead: &LeadState<'_>,
    campaign: &Campaign,
    ctx: &Context<'_>,
    now: DateTime<Utc>,
) -> Verdict {
    let mut reasons: Vec<Reason> = Vec::new();
    let mut wait_until = now;
    let profile = campaign.profile;

    if lead.number.country != campaign.country() {
        reasons.push(Reason::InvalidNumber);
    }

    // Do-not-call lists.
    let n = lead.number.digits;
    let mut band: Option<TimeBand> = None;
    if lead.opted_out || ctx.registries.internal.contains(n) {
        reasons.push(Reason::DndInternal);
    }
    if ctx.registries.suppressed.contains(n) {
        reasons.push(Reason::Suppressed);
    }
    // Most accounts keep no campaign lists: skip hashing the name.
    if !ctx.registries.campaign.is_empty()
        && ctx
            .registries
            .campaign
            .get(&campaign.name)
            .is_some_and(|s| s.contains(n))
    {
        reasons.push(Reason::DndCampaign);
    }
    // India's registry does not bar transactional calls, for one.
    if profile
        .rules()
        .screens_national_registry(campaign.call_type)
    {
        match ctx.registries.national.get(&campaign.country()) {
            None => reasons.push(Reason::DndRegistryMissing),
            Some(reg) => {
                if now.signed_duration_since(reg.loaded_at) > max_registry_age(profile) {
                    reasons.push(Reason::DndRegistryStale);
                }
                match reg.lookup(n, campaign.dnd_category) {
                    Listing::Clear => {}
                    Listing::Narrowed(b) => band = Some(b),
                    Listing::Blocked => reasons.push(Reason::DndNational),
                }
            }
        }
    }

    if lead.zones.is_empty() {
        reasons.push(Reason::TimezoneUnknown);
    }

    // Attempts and delays.
    if lead.attempts >= campaign.max_attempts {
        reasons.push(Reason::MaxAttempts);
    }
    if let Some(until) = day_limit_until(lead, campaign.max_attempts_per_day, now) {
        reasons.push(Reason::MaxAttemptsToday);
        wait_until = wait_until.max(until);
    }
    if let Some(until) = rolling_limit_until(lead, profile, now) {
        reasons.push(Reason::MaxAttemptsToday);
        wait_until = wait_until.max(until);
    }
    if let Some((outcome, ended)) = lead.last_outcome
        && let Some(delay) = campaign.retry_delay(outcome)
    {
        // A delay too long to add to a date is a wait past any date, not
        // none (fail closed).
        let until = Duration::from_std(delay)
            .ok()
            .and_then(|d| ended.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if until > now {
            reasons.push(Reason::RetryDelay);
            wait_until = wait_until.max(until);
        }
    }
    if !ctx.agent_reserved
        && let (Some(period), Some(at)) = (recall_after_abandon(profile), lead.last_abandon_at)
        && at + period > now
    {
        reasons.push(Reason::RecallAfterAbandon);
        wait_until = wait_until.max(at + period);
    }
    if !ctx.agent_reserved
        && let Some(period) = profile.rules().recall_after_machine()
        && let Some(ended) = lead.last_machine_at
        && ended + period > now
    {
        reasons.push(Reason::RecallAfterMachine);
        wait_until = wait_until.max(ended + period);
    }
    if !ctx.agent_reserved && ctx.ledger.is_some_and(|l| l.exhausted) {
        reasons.push(Reason::AbandonBudgetExhausted);
        match ctx.ledger_retry_at {
            Some(t) => wait_until = wait_until.max(t),
            // Without a time the figures improve, only new answers help:
            // look again soon.
            None => wait_until = wait_until.max(now + Duration::minutes(1)),
        }
    }

    // Calling hours in the called party's zones, narrowed by an NCPR band
    // and by the number's own rules (a US state's hours and holidays).
    let mut plan = effective_plan(&campaign.hours, band);
    if let Some(local) = profile.rules().number_hours(lead.number.digits) {
        plan = narrowed(&plan, &local);
    }
    let hours = Hours {
        plan: &plan,
        calendar: hours::calendar(profile),
        holidays: profile.rules().number_holidays(lead.number.digits),
    };
    if !lead.zones.is_empty() {
        match hours.status(lead.zones, now) {
            Ok(()) => {}
            Err(Closed::OutsideHours) => reasons.push(Reason::OutsideHours),
            Err(Closed::Holiday) => reasons.push(Reason::Holiday),
            Err(Closed::NoCalendar) => reasons.push(Reason::HolidayCalendarMissing),
        }
    }

    if reasons.is_empty() {
        return Verdict {
            allowed: true,
            reasons,
            next_allowed_at: Some(now),
        };
    }
    let next_allowed_at = if reasons.iter().all(|r| r.passes_with_time()) {
        hours.next_open(lead.zones, wait_until)
    } else {
        None
    };
    Verdict {
        allowed: false,
        reasons,
        next_allowed_at,
    }
}

/// When a call to the lead is allowed again under a law's limit of calls
/// in any 24 hours (a US state's, by the number), if the limit is reached
/// now: when the oldest call that keeps it reached is 24 hours old.
fn rolling_limit_until(
    lead: &LeadState<'_>,
    profile: Profile,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let limit = profile.rules().number_calls_per_24h(lead.number.digits)? as usize;
    let day = Duration::hours(24);
    let within = |t: &&DateTime<Utc>| **t > now - day && **t <= now;
    if limit == 0 || lead.recent_attempts.iter().filter(within).count() < limit {
        return None;
    }
    let mut inside: Vec<DateTime<Utc>> = lead
        .recent_attempts
        .iter()
        .filter(within)
        .copied()
        .collect();
    inside.sort_unstable();
    Some(inside[inside.len() - limit] + day)
}

/// When the lead's attempts of the called party's day stop counting
/// against `per_day`, if it has used them up: the next local midnight.
/// With several candidate zones the strictest counts (any zone where the
/// day is used up, and its latest midnight). `None` while attempts are
/// left today, or when the zone is unknown (which refuses on its own).
/// The scheduler asks this too, so that a retry is not set for a day with
/// no attempt left.
pub fn day_limit_until(
    lead: &LeadState<'_>,
    per_day: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut until: Option<DateTime<Utc>> = None;
    for &tz in lead.zones {
        let today = now.with_timezone(&tz).date_naive();
        let used = lead
            .recent_attempts
            .iter()
            .filter(|t| t.with_timezone(&tz).date_naive() == today)
            .count();
        if used >= per_day as usize {
            let midnight = today
                .succ_opt()
                .and_then(|d| hours::local_to_utc(tz, d.and_time(NaiveTime::MIN)))
                .unwrap_or(now + Duration::days(1));
            until = until.max(Some(midnight));
        }
    }
    until
}

/// The campaign's windows narrowed by a number's NCPR band.
fn effective_plan(plan: &WeekPlan, band: Option<TimeBand>) -> WeekPlan {
    let Some(band) = band else {
        return *plan;
    };
    let mut out = *plan;
    for (i, day) in out.iter_mut().enumerate() {
        if band.days != 0 && band.days & (1 << i) == 0 {
            *day = None;
        }
        if let (Some(w), Some((start, end))) = (*day, band.window) {
            *day = overlap(w, DayWindow { start, end });
        }
    }
    out
}

/// The part of a day both windows share, if any.
fn overlap(a: DayWindow, b: DayWindow) -> Option<DayWindow> {
    let start = a.start.max(b.start);
    let end = a.end.min(b.end);
    (start < end).then_some(DayWindow { start, end })
}

/// `plan` within `other`, day by day.
fn narrowed(plan: &WeekPlan, other: &WeekPlan) -> WeekPlan {
    let mut out = *plan;
    for (day, o) in out.iter_mut().zip(other) {
        *day = match (*day, o) {
            (Some(w), Some(o)) => overlap(w, *o),
            _ => None,
        };
    }
    out
}

/// Local time of `now` in `tz`, for display.
pub fn local_time(tz: Tz, now: DateTime<Utc>) -> String {
    tz.from_utc_datetime(&now.naive_utc())
        .format("%Y-%m-%d %H:%M:%S %Z (%a)")
        .to_string()
}

#[cfg(test)]
mod tests;
