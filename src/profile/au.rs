//! Australia: the Telemarketing and Research Industry Standard and the Do
//! Not Call Register Act. Weekdays 09:00-20:00, Saturdays 09:00-17:00, no
//! calls on Sundays or national public holidays (`data/holidays/au.txt`);
//! no statutory abandonment figure (the campaign states its own); wash
//! results valid for 30 days.

use std::sync::OnceLock;
use std::time::Duration;

use chrono_tz::Tz;

use super::{DayWindow, Profile, Regulation, Sample, WeekPlan};
use crate::compliance::dnd::Format;
use crate::compliance::hours::Calendar;
use crate::phone::{Country, PhoneError, digits_str};

/// The Australian profile.
#[derive(Debug, Clone, Copy)]
pub struct Au;

impl Regulation for Au {
    fn profile(&self) -> Profile {
        Profile::Au
    }

    fn country(&self) -> Country {
        Country::Australia
    }

    fn hours(&self) -> WeekPlan {
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

    fn abandonment_limit(&self) -> Option<(f64, Duration)> {
        None
    }

    fn max_registry_age(&self) -> chrono::Duration {
        chrono::Duration::days(30)
    }

    fn calendar(&self) -> Option<&'static Calendar> {
        static AU: OnceLock<Calendar> = OnceLock::new();
        Some(AU.get_or_init(|| Calendar::parse(include_str!("../../data/holidays/au.txt"))))
    }

    fn home_zone(&self) -> Tz {
        chrono_tz::Australia::Sydney
    }

    fn sample(&self) -> Sample {
        Sample {
            number: "+61298765432",
            registry_file: "au-dncr-sample.txt",
            registry_format: Format::Plain,
        }
    }

    fn calling_code(&self) -> u64 {
        61
    }

    fn strip_national_prefixes<'a>(&self, d: &'a [u8]) -> &'a [u8] {
        match d {
            [0, rest @ ..] => rest,
            [6, 1, rest @ ..] if d.len() == 11 => rest,
            _ => d,
        }
    }

    fn national_number(&self, n: &[u8]) -> Result<Country, PhoneError> {
        if n.len() != 9 {
            return Err(PhoneError::BadLength {
                digits: n.len(),
                country: Country::Australia,
            });
        }
        // 2, 3, 7, 8: geographic; 4: mobile.
        if !matches!(n[0], 2 | 3 | 4 | 7 | 8) {
            return Err(PhoneError::BadPrefix {
                prefix: digits_str(&n[..1]),
                country: Country::Australia,
            });
        }
        Ok(Country::Australia)
    }

    fn owns_e164(&self, digits: &str) -> bool {
        digits.starts_with("61")
    }
}
