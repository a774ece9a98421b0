//! Regulatory profiles: the rules of each country a campaign may dial under,
//! one file per country ([`us`], [`uk`], [`india`], [`ca`], [`au`]), each
//! a [`Regulation`]: calling hours, the abandonment limit and its window,
//! the minimum ring time, how old the national registry may be, the recall
//! rule after an abandoned call, the holiday calendar, the caller-ID rules,
//! hours a number's own region sets ([`us_states`]) and the numbering
//! plan. Compliance, campaign validation, the phone
//! parser, the simulator and the demo ask the profile; none keeps a
//! country's rule of its own. A new country is a file here, its data, a
//! [`Profile`] and a [`Country`] variant, and their lines in
//! [`Profile::rules`] and [`Country::rules`].
//!
//! Campaign files may only narrow a profile's bounds; `campaign`
//! validation enforces that. Pure data and rules, no I/O.

pub mod au;
pub mod ca;
pub mod india;
mod nanp;
pub mod uk;
pub mod us;
pub mod us_states;

use std::fmt;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::campaign::CallType;
use crate::compliance::dnd::Format;
use crate::compliance::hours::{Calendar, Holiday};
use crate::phone::{Country, PhoneError};

/// One country's rules. Defaults cover what most countries share.
pub trait Regulation: Sync {
    /// The profile's name as written in campaign files.
    fn profile(&self) -> Profile;

    /// The country it dials.
    fn country(&self) -> Country;

    /// The widest calling hours allowed, in the called party's local time.
    fn hours(&self) -> WeekPlan;

    /// The legal abandonment limit (percent of human answers) and its
    /// window; `None` where the law sets no figure and the campaign must
    /// state its own.
    fn abandonment_limit(&self) -> Option<(f64, Duration)>;

    /// The shortest ring before a call may be given up as unanswered.
    fn min_ring(&self) -> Duration {
        Duration::from_secs(15)
    }

    /// The oldest the national registry may be before dialling stops.
    fn max_registry_age(&self) -> chrono::Duration;

    /// Calling hours narrower than [`Regulation::hours`] that the law
    /// sets for the number itself (US states, by area code), as digits
    /// of its E.164 form; `None` where the profile's hours stand.
    fn number_hours(&self, _digits: u64) -> Option<WeekPlan> {
        None
    }

    /// Holidays on which the law bars calls to the number itself (a US
    /// state's legal holidays, by area code); empty where none.
    fn number_holidays(&self, _digits: u64) -> &'static [Holiday] {
        &[]
    }

    /// How many calls the law allows to the number in any 24 hours on one
    /// subject (a campaign), when it sets a figure (US states).
    fn number_calls_per_24h(&self, _digits: u64) -> Option<u32> {
        None
    }

    /// How long after an abandoned call the same number may not be called
    /// again without an agent reserved.
    fn recall_after_abandon(&self) -> Option<chrono::Duration> {
        None
    }

    /// How long after a call an answering machine detector took for a
    /// machine the same number may not be called again without an agent
    /// reserved.
    fn recall_after_machine(&self) -> Option<chrono::Duration> {
        None
    }

    /// The public holidays on which calls are barred, when the rules bar
    /// them.
    fn calendar(&self) -> Option<&'static Calendar> {
        None
    }

    /// The zone most of the country's people live in (the simulator's and
    /// the demo's default).
    fn home_zone(&self) -> Tz;

    /// Whether calls of `call_type` are screened against the national
    /// registry.
    fn screens_national_registry(&self, _call_type: CallType) -> bool {
        true
    }

    /// Whether a campaign must state its registry category.
    fn needs_dnd_category(&self) -> bool {
        false
    }

    /// The caller ID a campaign presents, normalised to E.164, or why it
    /// may not be used. By default: a valid number of the country.
    fn caller_id(
        &self,
        text: &str,
        _call_type: CallType,
        _category: Option<u8>,
    ) -> Result<String, String> {
        crate::phone::parse(text, self.country())
            .map(|n| n.e164())
            .map_err(|e| format!("{text:?}: {e}"))
    }

    /// The country's sample data for the demo: a number in the home zone,
    /// and the sample national registry in `campaigns/dnd/` with its
    /// format.
    fn sample(&self) -> Sample;

    /// The ITU calling code.
    fn calling_code(&self) -> u64;

    /// Strips a trunk prefix, or a calling code written without `+`, from
    /// a number written in national form.
    fn strip_national_prefixes<'a>(&self, d: &'a [u8]) -> &'a [u8];

    /// Checks a national significant number (no trunk prefix) against the
    /// plan: the country it belongs to (the NANP shares its plan), or why
    /// it is refused.
    fn national_number(&self, n: &[u8]) -> Result<Country, PhoneError>;

    /// Whether the E.164 digits (calling code first) are this country's.
    fn owns_e164(&self, digits: &str) -> bool;
}

/// A country's sample data for the demo.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// A number in the home zone, E.164.
    pub number: &'static str,
    /// The sample national registry's file in `campaigns/dnd/`.
    pub registry_file: &'static str,
    /// Its format.
    pub registry_format: Format,
}

/// A regulatory profile name as written in campaign files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// United States: TSR and TCPA.
    Us,
    /// United Kingdom: Ofcom's persistent misuse policy.
    Uk,
    /// India: TRAI's TCCCPR 2018.
    In,
    /// Canada: CRTC Unsolicited Telecommunications Rules.
    Ca,
    /// Australia: ACMA, Do Not Call Register Act and industry standard.
    Au,
}

/// A window of permitted local times on one day; `None` in a week plan means
/// no calls that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayWindow {
    /// First permitted local time.
    pub start: NaiveTime,
    /// End of the window (exclusive).
    pub end: NaiveTime,
}

impl DayWindow {
    /// A window from `start` to `end` given as (hour, minute) pairs.
    pub const fn hm(start: (u32, u32), end: (u32, u32)) -> DayWindow {
        DayWindow {
            start: time(start.0, start.1),
            end: time(end.0, end.1),
        }
    }

    /// Whether `self` lies within `outer`.
    pub fn within(&self, outer: &DayWindow) -> bool {
        self.start >= outer.start && self.end <= outer.end
    }
}

impl fmt::Display for DayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// Every day of the week with the same window.
pub const fn every_day(w: DayWindow) -> WeekPlan {
    [Some(w); 7]
}

const fn time(h: u32, m: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(h, m, 0) {
        Some(t) => t,
        None => panic!("invalid constant time"),
    }
}

/// Permitted calling windows for each day of the week, Monday first.
pub type WeekPlan = [Option<DayWindow>; 7];

/// Index of a weekday in a [`WeekPlan`].
pub fn day_index(day: Weekday) -> usize {
    day.num_days_from_monday() as usize
}

impl Profile {
    /// All profiles, for listings.
    pub const ALL: [Profile; 5] = [
        Profile::Us,
        Profile::Uk,
        Profile::In,
        Profile::Ca,
        Profile::Au,
    ];

    /// The profile's rules.
    pub fn rules(self) -> &'static dyn Regulation {
        match self {
            Profile::Us => &us::Us,
            Profile::Uk => &uk::Uk,
            Profile::In => &india::India,
            Profile::Ca => &ca::Ca,
            Profile::Au => &au::Au,
        }
    }

    /// The country this profile dials.
    pub fn country(self) -> Country {
        self.rules().country()
    }

    /// The widest calling hours the profile allows, in the called party's
    /// local time.
    pub fn hours(self) -> WeekPlan {
        self.rules().hours()
    }

    /// The legal abandonment limit in percent of human answers, and the
    /// window it is measured over; `None` where the law sets no figure.
    pub fn abandonment_limit(self) -> Option<(f64, Duration)> {
        self.rules().abandonment_limit()
    }

    /// The shortest ring time before a call may be given up as unanswered.
    pub fn min_ring(self) -> Duration {
        self.rules().min_ring()
    }

    /// The zone most of the country's people live in.
    pub fn home_zone(self) -> Tz {
        self.rules().home_zone()
    }

    /// The name as written in campaign files.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Us => "us",
            Profile::Uk => "uk",
            Profile::In => "in",
            Profile::Ca => "ca",
            Profile::Au => "au",
        }
    }
}

impl Country {
    /// The rules of the profile that dials this country.
    pub fn rules(self) -> &'static dyn Regulation {
        match self {
            Country::UnitedStates => &us::Us,
            Country::UnitedKingdom => &uk::Uk,
            Country::India => &india::India,
            Country::Canada => &ca::Ca,
            Country::Australia => &au::Au,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn australia_has_no_sunday_window() {
        assert_eq!(Profile::Au.hours()[day_index(Weekday::Sun)], None);
        assert_eq!(
            Profile::Au.hours()[day_index(Weekday::Sat)],
            Some(DayWindow::hm((9, 0), (17, 0)))
        );
    }

    #[test]
    fn canada_weekends_are_shorter() {
        let h = Profile::Ca.hours();
        assert_eq!(
            h[day_index(Weekday::Fri)],
            Some(DayWindow::hm((9, 0), (21, 30)))
        );
        assert_eq!(
            h[day_index(Weekday::Sun)],
            Some(DayWindow::hm((10, 0), (18, 0)))
        );
    }

    #[test]
    fn window_containment() {
        let outer = DayWindow::hm((9, 0), (21, 0));
        assert!(DayWindow::hm((9, 30), (20, 0)).within(&outer));
        assert!(!DayWindow::hm((8, 30), (20, 0)).within(&outer));
    }
}
