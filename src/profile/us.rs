//! United States: the FTC's Telemarketing Sales Rule and the FCC's TCPA
//! rules. 08:00-21:00 in the called party's time; at most 3% of
//! human-answered calls abandoned per campaign over 30 days, each
//! abandoned call given a message naming the seller with a number to call
//! back; ring at least 15 s; the national Do Not Call registry scrubbed at
//! least every 31 days.

use std::time::Duration;

use chrono_tz::Tz;

use super::{DayWindow, Profile, Regulation, Sample, WeekPlan, every_day, nanp};
use crate::compliance::dnd::Format;
use crate::compliance::hours::Holiday;
use crate::phone::{Country, PhoneError};

/// The US profile.
#[derive(Debug, Clone, Copy)]
pub struct Us;

impl Regulation for Us {
    fn profile(&self) -> Profile {
        Profile::Us
    }

    fn country(&self) -> Country {
        Country::UnitedStates
    }

    fn hours(&self) -> WeekPlan {
        every_day(DayWindow::hm((8, 0), (21, 0)))
    }

    /// Some states are stricter than 08:00-21:00 (Florida, Texas, ...):
    /// [`super::us_states`].
    fn number_hours(&self, digits: u64) -> Option<WeekPlan> {
        super::us_states::hours_of(digits).map(|(_, _, plan)| plan)
    }

    /// Pennsylvania, Alabama, Louisiana, Mississippi, Rhode Island and Utah
    /// bar their legal holidays.
    fn number_holidays(&self, digits: u64) -> &'static [Holiday] {
        super::us_states::holidays_of(digits)
    }

    /// Florida, Oklahoma, Maryland and Oregon: at most 3 calls in 24 hours.
    fn number_calls_per_24h(&self, digits: u64) -> Option<u32> {
        super::us_states::calls_per_24h(digits)
    }

    fn abandonment_limit(&self) -> Option<(f64, Duration)> {
        Some((3.0, Duration::from_secs(30 * 86_400)))
    }

    fn max_registry_age(&self) -> chrono::Duration {
        chrono::Duration::days(31)
    }

    fn home_zone(&self) -> Tz {
        chrono_tz::America::New_York
    }

    fn sample(&self) -> Sample {
        Sample {
            number: "+12125550100",
            registry_file: "us-dnc-sample.txt",
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
        nanp::national_number(n, Country::UnitedStates)
    }

    fn owns_e164(&self, digits: &str) -> bool {
        // Any NANP number that is not Canadian reads as the US's (other
        // members are refused by the plan check).
        digits.starts_with('1') && nanp::region_of(digits) != Some("CA")
    }
}
