//! Regulatory profiles: the rules of each country a campaign may dial under.
//!
//! A profile fixes the outer bounds (calling hours in the called party's
//! local time, abandonment limit and window, minimum ring time). Campaign
//! files may only narrow them; `campaign` validation enforces that. Pure data,
//! no I/O.

use std::fmt;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use crate::phone::Country;

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

    /// The country this profile dials.
    pub fn country(self) -> Country {
        match self {
            Profile::Us => Country::UnitedStates,
            Profile::Uk => Country::UnitedKingdom,
            Profile::In => Country::India,
            Profile::Ca => Country::Canada,
            Profile::Au => Country::Australia,
        }
    }

    /// The widest calling hours the profile allows, in the called party's
    /// local time. The UK has no statutory hours; 08:00-21:00 is the
    /// configurable default a campaign may narrow.
    pub fn hours(self) -> WeekPlan {
        let all = |w| [Some(w); 7];
        match self {
            Profile::Us => all(DayWindow::hm((8, 0), (21, 0))),
            Profile::Uk => all(DayWindow::hm((8, 0), (21, 0))),
            Profile::In => all(DayWindow::hm((9, 0), (21, 0))),
            Profile::Ca => {
                let wd = Some(DayWindow::hm((9, 0), (21, 30)));
                let we = Some(DayWindow::hm((10, 0), (18, 0)));
                [wd, wd, wd, wd, wd, we, we]
            }
            Profile::Au => {
                let wd = Some(DayWindow::hm((9, 0), (20, 0)));
                [
                    wd,
                    wd,
                    wd,
                    wd,
                    wd,
                    Some(DayWindow::hm((9, 0), (17, 0))),
                    None,
                ]
            }
        }
    }

    /// The legal abandonment limit in percent of human answers, and the
    /// window it is measured over. `None` where the law sets no figure (India,
    /// Australia): the campaign must state its own.
    pub fn abandonment_limit(self) -> Option<(f64, Duration)> {
        const DAY: u64 = 24 * 3600;
        match self {
            Profile::Us => Some((3.0, Duration::from_secs(30 * DAY))),
            Profile::Uk => Some((3.0, Duration::from_secs(DAY))),
            // CRTC: 5% of live answered calls per campaign per day.
            Profile::Ca => Some((5.0, Duration::from_secs(DAY))),
            Profile::In | Profile::Au => None,
        }
    }

    /// The zone most of the country's people live in: where the
    /// simulator puts leads whose scenario names no zones.
    pub fn home_zone(self) -> chrono_tz::Tz {
        match self {
            Profile::Us => chrono_tz::America::New_York,
            Profile::Uk => chrono_tz::Europe::London,
            Profile::In => chrono_tz::Asia::Kolkata,
            Profile::Ca => chrono_tz::America::Toronto,
            Profile::Au => chrono_tz::Australia::Sydney,
        }
    }

    /// The shortest ring time before a call may be given up as unanswered.
    pub fn min_ring(self) -> Duration {
        Duration::from_secs(15)
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
