//! Time zones of the called party, inferred from the phone number.
//!
//! The table is libphonenumber's prefix-to-time-zone map (exchange level,
//! NPA-NXX and longer, for the NANP), compiled into the binary from
//! `data/phone_timezones.tsv`. A prefix that spans several zones keeps all
//! of them, so calling hours can use the strictest. A number matched only by
//! its bare country code in a country of several zones is unknown: the lead
//! is stored but never dialled until someone fixes it (fail closed).

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono_tz::Tz;

use crate::phone::PhoneNumber;

/// Longest prefix in the table, in digits.
const MAX_PREFIX: usize = 7;

struct Table {
    by_prefix: HashMap<u64, Vec<Tz>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_prefix = HashMap::new();
        for line in include_str!("../data/phone_timezones.tsv").lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let Some((prefix, zones)) = line.split_once('\t') else {
                continue;
            };
            // Prefixes are keyed with their length folded in, so "1" and
            // "01" never collide: key = prefix digits * 10 + length.
            let Ok(digits) = prefix.parse::<u64>() else {
                continue;
            };
            // Zones chrono-tz does not know are dropped; an entry left empty
            // falls through to a shorter prefix, or to unknown.
            let zones: Vec<Tz> = zones.split(',').filter_map(|z| z.parse().ok()).collect();
            if !zones.is_empty() {
                by_prefix.insert(digits * 10 + prefix.len() as u64, zones);
            }
        }
        Table { by_prefix }
    })
}

/// The candidate time zones of `number`, longest prefix first; empty when
/// unknown.
pub fn infer(number: &PhoneNumber) -> &'static [Tz] {
    let text_len = number_of_digits(number.digits);
    let cc_len = number_of_digits(number.country.calling_code());
    let table = table();
    for len in (1..=MAX_PREFIX.min(text_len)).rev() {
        let prefix = number.digits / 10u64.pow((text_len - len) as u32);
        if let Some(zones) = table.by_prefix.get(&(prefix * 10 + len as u64)) {
            if len <= cc_len && zones.len() > 1 {
                // Only the country code matched, and the country has several
                // zones: the number says nothing about where the person is.
                return &[];
            }
            return zones;
        }
    }
    &[]
}

fn number_of_digits(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Formats zones for storage: IANA names joined by commas.
pub fn join(zones: &[Tz]) -> String {
    let mut out = String::new();
    for (i, z) in zones.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(z.name());
    }
    out
}

/// Parses zones as stored by [`join`]; `None` when any name is unknown.
pub fn split(text: &str) -> Option<Vec<Tz>> {
    text.split(',').map(|z| z.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{Country, parse};

    fn zones(raw: &str, c: Country) -> Vec<&'static str> {
        infer(&parse(raw, c).expect(raw))
            .iter()
            .map(|z| z.name())
            .collect()
    }

    #[test]
    fn single_zone_countries_infer_directly() {
        assert_eq!(zones("9876543210", Country::India), ["Asia/Calcutta"]);
        assert!(zones("020 7946 0018", Country::UnitedKingdom).contains(&"Europe/London"));
    }

    #[test]
    fn nanp_area_codes_map_to_their_zone() {
        assert_eq!(
            zones("212 555 0123", Country::UnitedStates),
            ["America/New_York"]
        );
        assert_eq!(
            zones("415 555 0123", Country::UnitedStates),
            ["America/Los_Angeles"]
        );
        assert_eq!(zones("416 555 0123", Country::Canada), ["America/Toronto"]);
    }

    #[test]
    fn an_area_code_spanning_two_zones_keeps_both() {
        // 208 (Idaho) spans Mountain and Pacific time; exchange-level data
        // resolves some exchanges, the rest keep both zones.
        let both = zones("208 555 0123", Country::UnitedStates);
        assert!(
            both.contains(&"America/Boise") && both.contains(&"America/Los_Angeles"),
            "{both:?}"
        );
        assert_eq!(
            zones("208 201 0123", Country::UnitedStates),
            ["America/Denver"]
        );
    }

    #[test]
    fn australian_numbers_by_area() {
        assert_eq!(
            zones("(02) 9876 5432", Country::Australia),
            ["Australia/Sydney"]
        );
        // 08 covers both South and Western Australia: both zones are kept.
        assert_eq!(
            zones("(08) 9876 5432", Country::Australia),
            ["Australia/Adelaide", "Australia/Perth"]
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let z = infer(&parse("208 555 0123", Country::UnitedStates).expect("valid"));
        assert_eq!(split(&join(z)).as_deref(), Some(z));
        assert_eq!(split("Mars/Olympus"), None);
    }
}
