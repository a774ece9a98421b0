//! India: TRAI's Telecom Commercial Communications Customer Preference
//! Regulations (TCCCPR 2018). Calls 09:00-21:00; no statutory abandonment
//! figure (the campaign states its own); the NCPR records a preference per
//! number (fully blocked, or open to chosen categories within days and
//! hours), which a campaign's category is screened against, except for
//! transactional calls; promotional calls present a 140-series caller ID,
//! service and transactional ones a 160-series (1600 for regulated
//! financial entities). A registry copy is held to a day (see `max_registry_age`).

use std::time::Duration;

use chrono_tz::Tz;

use super::{DayWindow, Profile, Regulation, Sample, WeekPlan, every_day};
use crate::campaign::CallType;
use crate::compliance::dnd::Format;
use crate::phone::{Country, PhoneError, digits_str};

/// The Indian profile.
#[derive(Debug, Clone, Copy)]
pub struct India;

impl Regulation for India {
    fn profile(&self) -> Profile {
        Profile::In
    }

    fn country(&self) -> Country {
        Country::India
    }

    fn hours(&self) -> WeekPlan {
        every_day(DayWindow::hm((9, 0), (21, 0)))
    }

    fn abandonment_limit(&self) -> Option<(f64, Duration)> {
        None
    }

    /// A day: under the TCCCPR 2018 a preference registered with the NCPR
    /// takes effect within 24 hours (scrubbing is real time in the
    /// operators' DLT systems), so a copy older than that may dial a
    /// number whose owner has already said no. (The 2010 regulations'
    /// seven days, and the 31 of other registries, are too long.)
    fn max_registry_age(&self) -> chrono::Duration {
        chrono::Duration::days(1)
    }

    fn home_zone(&self) -> Tz {
        chrono_tz::Asia::Kolkata
    }

    fn screens_national_registry(&self, call_type: CallType) -> bool {
        // The NCPR does not bar transactional calls.
        call_type != CallType::Transactional
    }

    fn needs_dnd_category(&self) -> bool {
        true
    }

    fn caller_id(
        &self,
        text: &str,
        call_type: CallType,
        category: Option<u8>,
    ) -> Result<String, String> {
        // 140 and 160 series are 10-digit national numbers reserved for
        // telemarketers and service callers; the subscriber rules of
        // `phone::parse` reject them on purpose.
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let national = match digits.len() {
            12 if digits.starts_with("91") => &digits[2..],
            11 if digits.starts_with('0') => &digits[1..],
            _ => digits.as_str(),
        };
        let required = match (call_type, category) {
            (CallType::Promotional, _) => "140",
            (_, Some(1)) => "1600",
            _ => "160",
        };
        if national.len() != 10 || !national.starts_with(required) {
            let why = match required {
                "140" => "promotional calls in India must present a 140-series caller ID",
                "1600" => {
                    "service and transactional calls by banks, insurers and other regulated financial entities (category 1) must present a 1600-series caller ID"
                }
                _ => "service and transactional calls in India must present a 160-series caller ID",
            };
            return Err(format!("{text:?}: {why}"));
        }
        Ok(format!("+91{national}"))
    }

    fn sample(&self) -> Sample {
        Sample {
            number: "+919876500000",
            registry_file: "in-ncpr-sample.csv",
            registry_format: Format::Ncpr,
        }
    }

    fn calling_code(&self) -> u64 {
        91
    }

    fn strip_national_prefixes<'a>(&self, d: &'a [u8]) -> &'a [u8] {
        match d {
            [0, 9, 1, rest @ ..] if d.len() == 13 => rest,
            [0, rest @ ..] => rest,
            [9, 1, rest @ ..] if d.len() == 12 => rest,
            _ => d,
        }
    }

    fn national_number(&self, n: &[u8]) -> Result<Country, PhoneError> {
        if n.len() != 10 {
            return Err(PhoneError::BadLength {
                digits: n.len(),
                country: Country::India,
            });
        }
        // 0 is the trunk prefix; 140/160 series are telemarketer and
        // service caller IDs, not subscribers.
        if n[0] == 0 {
            return Err(PhoneError::BadPrefix {
                prefix: digits_str(&n[..1]),
                country: Country::India,
            });
        }
        if matches!(n, [1, 4 | 6, 0, ..]) {
            return Err(PhoneError::BadPrefix {
                prefix: digits_str(&n[..3]),
                country: Country::India,
            });
        }
        // 1800 (toll-free) and 1860 (shared cost) are service numbers of
        // the National Numbering Plan, not subscribers (no STD code's local
        // number starts with 0, so 180-0... is no Panipat line).
        if matches!(n, [1, 8, 0 | 6, 0, ..]) {
            return Err(PhoneError::BadPrefix {
                prefix: digits_str(&n[..4]),
                country: Country::India,
            });
        }
        Ok(Country::India)
    }

    fn owns_e164(&self, digits: &str) -> bool {
        digits.starts_with("91")
    }
}
