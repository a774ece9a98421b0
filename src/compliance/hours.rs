//! Calling hours in the called party's local time, with holidays.
//!
//! Pure: takes `now` and the candidate zones, answers whether a call may be
//! placed and, if not, the first instant it may. A number with several
//! candidate zones must be inside the window in every one of them.
//! Daylight-saving transitions come from chrono-tz, so window edges on the
//! days clocks change are exact.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

use crate::profile::{DayWindow, Profile, WeekPlan, day_index};

/// How far ahead [`next_open`] looks for a permitted instant.
const HORIZON_DAYS: i64 = 15;

/// Why a moment is not permitted in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Outside the day's window, or a day with no window.
    OutsideHours,
    /// A public holiday of the profile's region.
    Holiday,
    /// The profile needs a holiday calendar and ours does not cover the
    /// year: refuse rather than guess.
    NoCalendar,
}

/// A region's public holidays over the years the data covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    dates: BTreeSet<NaiveDate>,
    first_year: i32,
    last_year: i32,
}

impl Calendar {
    /// Parses a holiday file: one `YYYY-MM-DD` a line (anything after the
    /// date is a comment), `#` comments. The years covered are those from
    /// the first date's to the last date's.
    pub fn parse(text: &str) -> Calendar {
        let dates: BTreeSet<NaiveDate> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter_map(|l| NaiveDate::parse_from_str(l.get(..10)?, "%Y-%m-%d").ok())
            .collect();
        let first_year = dates.first().map_or(i32::MAX, |d| d.year());
        let last_year = dates.last().map_or(i32::MIN, |d| d.year());
        Calendar {
            dates,
            first_year,
            last_year,
        }
    }

    /// The last day the data covers (31 December of its last year).
    pub fn last_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.last_year, 12, 31)
    }

    /// Whether calls are allowed on `date` as far as holidays go.
    pub fn status(&self, date: NaiveDate) -> Result<(), Closed> {
        if date.year() < self.first_year || date.year() > self.last_year {
            Err(Closed::NoCalendar)
        } else if self.dates.contains(&date) {
            Err(Closed::Holiday)
        } else {
            Ok(())
        }
    }
}

/// A holiday given by its rule rather than by a list of dates, so it
/// never runs out (US states' legal holidays, [`crate::profile::us_states`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holiday {
    /// A fixed date (month, day). The days it is observed on when it
    /// falls at a weekend (the Friday before a Saturday, the Monday after
    /// a Sunday) are barred as well as the date itself: the safe side of
    /// statutes that name the holiday, not the day off.
    Fixed(u32, u32),
    /// The n-th (from 1) weekday of a month, for example the third Monday
    /// of January.
    Nth(u32, Weekday, u8),
    /// The last weekday of a month (Memorial Day).
    Last(u32, Weekday),
    /// Days from Easter Sunday (Good Friday -2, Mardi Gras -47).
    Easter(i64),
    /// The Tuesday after the first Monday of November (general Election
    /// Day).
    ElectionDay,
}

impl Holiday {
    /// Whether the holiday (or its observed day) falls on `date`.
    pub fn falls_on(&self, date: NaiveDate) -> bool {
        let year = date.year();
        match *self {
            Holiday::Fixed(m, d) => {
                let Some(day) = NaiveDate::from_ymd_opt(year, m, d) else {
                    return false;
                };
                let observed = match day.weekday() {
                    Weekday::Sat => day.pred_opt(),
                    Weekday::Sun => day.succ_opt(),
                    _ => None,
                };
                // A 1 January on a Saturday is observed on 31 December of
                // the year before: look at next year's date too.
                let next = NaiveDate::from_ymd_opt(year + 1, m, d)
                    .filter(|n| n.weekday() == Weekday::Sat)
                    .and_then(|n| n.pred_opt());
                date == day || observed == Some(date) || next == Some(date)
            }
            Holiday::Nth(m, wd, n) => {
                NaiveDate::from_weekday_of_month_opt(year, m, wd, n) == Some(date)
            }
            Holiday::Last(m, wd) => {
                date.month() == m
                    && date.weekday() == wd
                    && date
                        .checked_add_signed(Duration::days(7))
                        .is_none_or(|next| next.month() != m)
            }
            Holiday::Easter(offset) => {
                easter(year).is_some_and(|e| e + Duration::days(offset) == date)
            }
            Holiday::ElectionDay => {
                NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Mon, 1)
                    .and_then(|m| m.succ_opt())
                    == Some(date)
            }
        }
    }
}

/// Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm,
/// Meeus/Jones/Butcher). Written here, as it is a dozen lines of
/// arithmetic and no crate we use carries it.
pub fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// How long before a holiday calendar ends `campaign validate` and the
/// service warn: extending the data takes a release.
pub const CALENDAR_WARNING_DAYS: i64 = 180;

/// Days from `today` to the last day `profile`'s holiday calendar covers,
/// for profiles that have one.
pub fn calendar_days_left(profile: Profile, today: NaiveDate) -> Option<i64> {
    let last = calendar(profile)?.last_day()?;
    Some((last - today).num_days())
}

/// A warning when `profile`'s holiday calendar ends within
/// [`CALENDAR_WARNING_DAYS`] of `today`: after its last day every call is
/// refused (`holiday_calendar_missing`).
pub fn calendar_warning(profile: Profile, today: NaiveDate) -> Option<String> {
    let left = calendar_days_left(profile, today)?;
    (left <= CALENDAR_WARNING_DAYS).then(|| {
        let last = calendar(profile)
            .and_then(Calendar::last_day)
            .map_or_else(String::new, |d| d.to_string());
        if left < 0 {
            format!("the {profile} holiday calendar ended on {last}: every call is refused until data/holidays is extended")
        } else {
            format!("the {profile} holiday calendar ends on {last}, in {left} days: after it every call is refused until data/holidays is extended")
        }
    })
}

/// The holiday calendar a profile must honour (`data/holidays/*.txt`), if
/// it has one: Australia bars calls on national public holidays.
pub fn calendar(profile: Profile) -> Option<&'static Calendar> {
    profile.rules().calendar()
}

/// The rules that decide calling hours for one campaign.
#[derive(Debug, Clone, Copy)]
pub struct Hours<'a> {
    /// Windows per weekday, already narrowed by the campaign.
    pub plan: &'a WeekPlan,
    /// Holidays with no calls, when the profile has them.
    pub calendar: Option<&'a Calendar>,
    /// Holidays the number's own rules bar (a US state's legal holidays);
    /// empty for most.
    pub holidays: &'a [Holiday],
}

impl Hours<'_> {
    /// Whether `now` is permitted in `tz`, or why not.
    pub fn status_in(&self, tz: Tz, now: DateTime<Utc>) -> Result<(), Closed> {
        let local = now.with_timezone(&tz);
        if let Some(c) = self.calendar {
            c.status(local.date_naive())?;
        }
        if self.holidays.iter().any(|h| h.falls_on(local.date_naive())) {
            return Err(Closed::Holiday);
        }
        match self.plan[day_index(local.weekday())] {
            Some(w) if in_window(&w, local.naive_local()) => Ok(()),
            _ => Err(Closed::OutsideHours),
        }
    }

    /// Whether `now` is permitted in every zone; the refusal otherwise (a
    /// holiday or a missing calendar wins over hours, being more specific).
    pub fn status(&self, zones: &[Tz], now: DateTime<Utc>) -> Result<(), Closed> {
        let mut worst = Ok(());
        for &tz in zones {
            match self.status_in(tz, now) {
                Ok(()) => {}
                Err(Closed::OutsideHours) => worst = Err(Closed::OutsideHours),
                Err(c) => return Err(c),
            }
        }
        worst
    }

    /// The end of the window `now` is in (the first instant after it that
    /// some zone's window has closed), if `now` is permitted in every zone.
    pub fn window_end(&self, zones: &[Tz], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if zones.is_empty() || self.status(zones, now).is_err() {
            return None;
        }
        let mut end: Option<DateTime<Utc>> = None;
        for &tz in zones {
            let local = now.with_timezone(&tz);
            let w = self.plan[day_index(local.weekday())]?;
            let e = local_to_utc(tz, local.date_naive().and_time(w.end))?;
            end = Some(end.map_or(e, |x| x.min(e)));
        }
        end
    }

    /// The first instant at or after `now` permitted in every zone, within
    /// a two-week horizon; `None` when there is none (for example zones
    /// whose windows never overlap).
    pub fn next_open(&self, zones: &[Tz], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if zones.is_empty() {
            return None;
        }
        if self.status(zones, now).is_ok() {
            return Some(now);
        }
        // The earliest point of an intersection of unions of intervals is
        // the start of one of them: try every window start in every zone.
        let mut starts: Vec<DateTime<Utc>> = Vec::new();
        for &tz in zones {
            let today = now.with_timezone(&tz).date_naive();
            for d in 0..=HORIZON_DAYS {
                let Some(date) = today.checked_add_signed(Duration::days(d)) else {
                    continue;
                };
                if let Some(w) = self.plan[day_index(date.weekday())]
                    && let Some(t) = local_to_utc(tz, date.and_time(w.start))
                    && t > now
                {
                    starts.push(t);
                }
            }
        }
        starts.sort_unstable();
        starts.into_iter().find(|&t| self.status(zones, t).is_ok())
    }
}

fn in_window(w: &DayWindow, local: NaiveDateTime) -> bool {
    let t = local.time();
    t >= w.start && t < w.end
}

/// The UTC instant of a local wall-clock time. In a fall-back overlap it is
/// the earlier of the two; in a spring-forward gap, the first instant after
/// the gap (the wall time that does not exist is skipped, not dropped).
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps are at most a few hours: step forward a minute at a time.
            (1..=240).find_map(
                |m| match tz.from_local_datetime(&(local + Duration::minutes(m))) {
                    LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                    LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
                    LocalResult::None => None,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn us_window_edges_on_the_spring_forward_day_are_exact() {
        let plan = Profile::Us.hours();
        let h = Hours {
            plan: &plan,
            calendar: None,
            holidays: &[],
        };
        let ny = [chrono_tz::America::New_York];
        // 2026-03-08: clocks go 02:00 EST -> 03:00 EDT. 08:00 EDT is 12:00 UTC.
        assert_eq!(
            h.status(&ny, utc("2026-03-08T11:59:59Z")),
            Err(Closed::OutsideHours)
        );
        assert_eq!(h.status(&ny, utc("2026-03-08T12:00:00Z")), Ok(()));
        // The day before, 08:00 EST is 13:00 UTC.
        assert_eq!(
            h.status(&ny, utc("2026-03-07T12:30:00Z")),
            Err(Closed::OutsideHours)
        );
        assert_eq!(
            h.next_open(&ny, utc("2026-03-07T12:30:00Z")),
            Some(utc("2026-03-07T13:00:00Z"))
        );
        // 21:00 EDT is 01:00 UTC the next day: 20:59:59 allowed, 21:00 not.
        assert_eq!(h.status(&ny, utc("2026-03-09T00:59:59Z")), Ok(()));
        assert_eq!(
            h.status(&ny, utc("2026-03-09T01:00:00Z")),
            Err(Closed::OutsideHours)
        );
        // Asked in the night before the change, the next opening is 08:00 EDT.
        assert_eq!(
            h.next_open(&ny, utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T12:00:00Z"))
        );
    }

    #[test]
    fn us_window_edges_on_the_fall_back_day_are_exact() {
        let plan = Profile::Us.hours();
        let h = Hours {
            plan: &plan,
            calendar: None,
            holidays: &[],
        };
        let la = [chrono_tz::America::Los_Angeles];
        // 2026-11-01: 02:00 PDT -> 01:00 PST. 08:00 PST is 16:00 UTC.
        assert_eq!(
            h.status(&la, utc("2026-11-01T15:30:00Z")),
            Err(Closed::OutsideHours)
        );
        assert_eq!(h.status(&la, utc("2026-11-01T16:00:00Z")), Ok(()));
        assert_eq!(
            h.next_open(&la, utc("2026-11-01T08:30:00Z")),
            Some(utc("2026-11-01T16:00:00Z"))
        );
        // The evening before, 21:00 PDT was 04:00 UTC.
        assert_eq!(h.status(&la, utc("2026-11-01T03:59:59Z")), Ok(()));
        assert_eq!(
            h.status(&la, utc("2026-11-01T04:00:00Z")),
            Err(Closed::OutsideHours)
        );
    }

    #[test]
    fn uk_and_australia_dst_edges() {
        let plan = Profile::Uk.hours();
        let h = Hours {
            plan: &plan,
            calendar: None,
            holidays: &[],
        };
        let london = [chrono_tz::Europe::London];
        // 2026-03-29 BST starts: 08:00 BST is 07:00 UTC.
        assert_eq!(
            h.status(&london, utc("2026-03-29T06:59:59Z")),
            Err(Closed::OutsideHours)
        );
        assert_eq!(h.status(&london, utc("2026-03-29T07:00:00Z")), Ok(()));
        // Sydney: 2026-04-05 AEDT ends (UTC+11 -> +10); 09:00 AEST = 23:00 UTC the day before.
        let plan = Profile::Au.hours();
        let h = Hours {
            plan: &plan,
            calendar: None,
            holidays: &[],
        };
        let syd = [chrono_tz::Australia::Sydney];
        // 2026-04-06 is a Monday.
        assert_eq!(
            h.status(&syd, utc("2026-04-05T22:59:59Z")),
            Err(Closed::OutsideHours)
        );
        assert_eq!(h.status(&syd, utc("2026-04-05T23:00:00Z")), Ok(()));
    }

    #[test]
    fn a_number_in_two_zones_must_be_inside_both() {
        let plan = Profile::Us.hours();
        let h = Hours {
            plan: &plan,
            calendar: None,
            holidays: &[],
        };
        // Idaho 208: Boise (Mountain) and Los Angeles (Pacific).
        let both = [chrono_tz::America::Boise, chrono_tz::America::Los_Angeles];
        // 15:30 UTC in January: 08:30 MST but 07:30 PST: not yet.
        let t = utc("2026-01-14T15:30:00Z");
        assert_eq!(h.status(&[chrono_tz::America::Boise], t), Ok(()));
        assert_eq!(h.status(&both, t), Err(Closed::OutsideHours));
        // Opens when Pacific reaches 08:00 (16:00 UTC).
        assert_eq!(h.next_open(&both, t), Some(utc("2026-01-14T16:00:00Z")));
        // Closes when Mountain reaches 21:00 (04:00 UTC).
        assert_eq!(h.status(&both, utc("2026-01-15T03:59:00Z")), Ok(()));
        assert_eq!(
            h.status(&both, utc("2026-01-15T04:00:00Z")),
            Err(Closed::OutsideHours)
        );
    }

    #[test]
    fn australia_has_no_calls_on_sunday_or_national_holidays() {
        let plan = Profile::Au.hours();
        let h = Hours {
            plan: &plan,
            calendar: calendar(Profile::Au),
            holidays: &[],
        };
        let syd = [chrono_tz::Australia::Sydney];
        // Sunday 2026-02-01, noon in Sydney.
        let sunday = utc("2026-02-01T01:00:00Z");
        assert_eq!(
            sunday
                .with_timezone(&chrono_tz::Australia::Sydney)
                .weekday(),
            Weekday::Sun
        );
        assert_eq!(h.status(&syd, sunday), Err(Closed::OutsideHours));
        assert_eq!(h.next_open(&syd, sunday), Some(utc("2026-02-01T22:00:00Z")));
        // Australia Day, Monday 2026-01-26, noon in Sydney: a holiday.
        assert_eq!(
            h.status(&syd, utc("2026-01-26T01:00:00Z")),
            Err(Closed::Holiday)
        );
        // Good Friday 2026-04-03, then Saturday opens at 09:00 (22:00 UTC Fri, AEDT).
        assert_eq!(
            h.status(&syd, utc("2026-04-03T01:00:00Z")),
            Err(Closed::Holiday)
        );
        assert_eq!(
            h.next_open(&syd, utc("2026-04-03T01:00:00Z")),
            Some(utc("2026-04-03T22:00:00Z"))
        );
    }

    #[test]
    fn years_the_calendar_does_not_cover_are_refused() {
        let plan = Profile::Au.hours();
        let h = Hours {
            plan: &plan,
            calendar: calendar(Profile::Au),
            holidays: &[],
        };
        // A Tuesday in 2037, 11:00 in Sydney.
        assert_eq!(
            h.status(&[chrono_tz::Australia::Sydney], utc("2037-06-02T01:00:00Z")),
            Err(Closed::NoCalendar)
        );
    }

    #[test]
    fn a_calendar_ending_within_180_days_is_warned_of() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        let last = calendar(Profile::Au)
            .and_then(Calendar::last_day)
            .expect("au");
        assert!(last >= day(2036, 12, 31), "{last}");
        assert_eq!(calendar_warning(Profile::Au, day(2026, 11, 30)), None);
        let soon = calendar_warning(Profile::Au, last - Duration::days(179)).expect("warned");
        assert!(soon.contains("in 179 days"), "{soon}");
        assert!(calendar_warning(Profile::Au, last + Duration::days(1)).is_some());
        // Within 180 days includes the 180th.
        assert!(calendar_warning(Profile::Au, last - Duration::days(180)).is_some());
        assert_eq!(
            calendar_warning(Profile::Au, last - Duration::days(181)),
            None
        );
        // Profiles without a holiday rule have nothing to run out.
        assert_eq!(calendar_warning(Profile::Us, day(2040, 1, 1)), None);
    }

    #[test]
    fn easter_is_right_across_centuries() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        for (y, m, d) in [
            (1961, 4, 2),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter(y), day(y, m, d), "{y}");
        }
    }

    #[test]
    fn holiday_rules_fall_on_their_days() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        let on = |h: Holiday, y, m, d| h.falls_on(day(y, m, d));
        // Thanksgiving: the fourth Thursday, not the last (2026-11-26 is
        // the fourth; 2029 has five Thursdays).
        let thanksgiving = Holiday::Nth(11, Weekday::Thu, 4);
        assert!(on(thanksgiving, 2026, 11, 26));
        assert!(on(thanksgiving, 2029, 11, 22) && !on(thanksgiving, 2029, 11, 29));
        // Memorial Day: the last Monday of May.
        let memorial = Holiday::Last(5, Weekday::Mon);
        assert!(on(memorial, 2026, 5, 25) && !on(memorial, 2026, 5, 18));
        assert!(on(memorial, 2027, 5, 31));
        // Election Day: the Tuesday after the first Monday (2026-11-03;
        // 2027-11-02, when 1 November is a Monday; 2022-11-08 when it is a
        // Tuesday).
        assert!(on(Holiday::ElectionDay, 2026, 11, 3));
        assert!(on(Holiday::ElectionDay, 2027, 11, 2));
        assert!(on(Holiday::ElectionDay, 2022, 11, 8) && !on(Holiday::ElectionDay, 2022, 11, 1));
        // Fixed dates and their observed days: Independence Day 2026 is a
        // Saturday (Friday 3rd observed), 2027 a Sunday (Monday 5th);
        // New Year's Day 2028 is a Saturday, observed Friday 2027-12-31.
        let july4 = Holiday::Fixed(7, 4);
        assert!(on(july4, 2026, 7, 4) && on(july4, 2026, 7, 3) && !on(july4, 2026, 7, 6));
        assert!(on(july4, 2027, 7, 5) && !on(july4, 2027, 7, 2));
        let new_year = Holiday::Fixed(1, 1);
        assert!(on(new_year, 2027, 12, 31) && on(new_year, 2028, 1, 1));
        assert!(!on(new_year, 2026, 12, 31), "2027-01-01 is a Friday");
        // Good Friday and Mardi Gras from Easter.
        assert!(on(Holiday::Easter(-2), 2026, 4, 3));
        assert!(on(Holiday::Easter(-47), 2026, 2, 17));
    }

    #[test]
    fn spring_forward_gaps_resolve_to_the_first_instant_after() {
        let ny = chrono_tz::America::New_York;
        let gap = NaiveDate::from_ymd_opt(2026, 3, 8)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .expect("date");
        assert_eq!(local_to_utc(ny, gap), Some(utc("2026-03-08T07:00:00Z")));
    }
}
