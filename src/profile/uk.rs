//! United Kingdom: Ofcom's persistent misuse policy. No statutory calling
//! hours (08:00-21:00 is the default a campaign may narrow); at most 3% of
//! live calls abandoned per campaign in any 24 hours; a number whose call
//! was abandoned is not called again within 72 hours unless an agent is
//! guaranteed; ring at least 15 s; the TPS register screened at least
//! every 28 days.

use std::time::Duration;

use chrono_tz::Tz;

use super::{DayWindow, Profile, Regulation, Sample, WeekPlan, every_day};
use crate::compliance::dnd::Format;
use crate::phone::{Country, PhoneError, digits_str};

/// The UK profile.
#[derive(Debug, Clone, Copy)]
pub struct Uk;

impl Regulation for Uk {
    fn profile(&self) -> Profile {
        Profile::Uk
    }

    fn country(&self) -> Country {
        Country::UnitedKingdom
    }

    fn hours(&self) -> WeekPlan {
        every_day(DayWindow::hm((8, 0), (21, 0)))
    }

    fn abandonment_limit(&self) -> Option<(f64, Duration)> {
        Some((3.0, Duration::from_secs(86_400)))
    }

    fn max_registry_age(&self) -> chrono::Duration {
        chrono::Duration::days(28)
    }

    fn recall_after_abandon(&self) -> Option<chrono::Duration> {
        Some(chrono::Duration::hours(72))
    }

    /// Ofcom's statement of policy on persistent misuse (2016), on
    /// answering machine detection: a number whose call AMD took for a
    /// machine may be called again within the same 24 hours only with a
    /// live operator guaranteed (a false positive was a person hung up on).
    fn recall_after_machine(&self) -> Option<chrono::Duration> {
        Some(chrono::Duration::hours(24))
    }

    fn home_zone(&self) -> Tz {
        chrono_tz::Europe::London
    }

    fn sample(&self) -> Sample {
        Sample {
            number: "+442079460000",
            registry_file: "uk-tps-sample.txt",
            registry_format: Format::Plain,
        }
    }

    fn calling_code(&self) -> u64 {
        44
    }

    fn strip_national_prefixes<'a>(&self, d: &'a [u8]) -> &'a [u8] {
        match d {
            [0, rest @ ..] => rest,
            [4, 4, rest @ ..] if d.len() >= 11 => rest,
            _ => d,
        }
    }

    fn national_number(&self, n: &[u8]) -> Result<Country, PhoneError> {
        // Geographic (01, 02), non-geographic (03) and mobile (07): ten
        // digits, or nine for a few 01 areas. Premium 09 and freephone 08
        // ranges are not telemarketing targets.
        match n.len() {
            10 if matches!(n[0], 1 | 2 | 3 | 7) => Ok(Country::UnitedKingdom),
            9 if n[0] == 1 => Ok(Country::UnitedKingdom),
            9 | 10 => Err(PhoneError::BadPrefix {
                prefix: digits_str(&n[..1]),
                country: Country::UnitedKingdom,
            }),
            _ => Err(PhoneError::BadLength {
                digits: n.len(),
                country: Country::UnitedKingdom,
            }),
        }
    }

    fn owns_e164(&self, digits: &str) -> bool {
        digits.starts_with("44")
    }
}
