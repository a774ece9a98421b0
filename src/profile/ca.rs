//! Canada: the CRTC's Unsolicited Telecommunications Rules. Weekdays
//! 09:00-21:30 and weekends 10:00-18:00 in the called party's time; at
//! most 5% of live answered calls abandoned per campaign per day; the
//! National Do Not Call List scrubbed at least every 31 days.

use std::time::Duration;

use chrono_tz::Tz;

use super::{DayWindow, Profile, Regulation, Sample, WeekPlan, nanp};
use crate::compliance::dnd::Format;
use crate::phone::{Country, PhoneError};

/// The Canadian profile.
#[derive(Debug, Clone, Copy)]
pub struct Ca;

impl Regulation for Ca {
    fn profile(&self) -> Profile {
        Profile::Ca
    }

    fn country(&self) -> Country {
        Country::Canada
    }

    fn hours(&self) -> WeekPlan {
        let wd = Some(DayWindow::hm((9, 0), (21, 30)));
        let we = Some(DayWindow::hm((10, 0), (18, 0)));
        [wd, wd, wd, wd, wd, we, we]
    }

    fn abandonment_limit(&self) -> Option<(f64, Duration)> {
        Some((5.0, Duration::from_secs(86_400)))
    }

    fn max_registry_age(&self) -> chrono::Duration {
        chrono::Duration::days(31)
    }

    fn home_zone(&self) -> Tz {
        chrono_tz::America::Toronto
    }

    fn sample(&self) -> Sample {
        Sample {
            number: "+14165550100",
            registry_file: "ca-dncl-sample.txt",
            registry_format: Format::Plain,
        }
    }

    fn calling_code(&self) -> u64 {
        1
    }

    fn strip_national_prefixes<'a>(&self, d: &'a [u8]) -> &'a [u8] {
        nanp::strip_national_prefixes(d)
    }

    fn national_number(&self, n: &[u8]) -> Result<Country, PhoneError> {
        nanp::national_number(n, Country::Canada)
    }

    fn owns_e164(&self, digits: &str) -> bool {
        nanp::region_of(digits) == Some("CA")
    }
}
