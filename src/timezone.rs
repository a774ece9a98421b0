//! Time zones of the called party, inferred from the phone number.
//!
//! The table is libphonenumber's prefix-to-time-zone map (exchange level,
//! NPA-NXX and longer, for the NANP), compiled into the binary from
//! `data/phone_timezones.tsv`, with the corrections of
//! `data/phone_timezones_overrides.tsv` applied (each with its reason: the
//! data gives Australian mobiles one zone, Queensland Sydney's, Yukon
//! Vancouver's). A prefix that spans several zones keeps all of them, so
//! calling hours can use the strictest; in the NANP a prefix also carries
//! every zone of the longer prefixes under it, so an exchange the data does
//! not list gets all of its area code's zones. A number matched only by its
//! bare country code in a country of several zones is unknown: the lead is
//! stored but never dialled until someone fixes it (fail closed).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;

use crate::phone::{Country, PhoneNumber};

struct Table {
    /// Keyed with the prefix's length folded in, so "1" and "01" never
    /// collide: key = prefix digits * 10 + length.
    by_prefix: HashMap<u64, Vec<Tz>>,
    /// Longest prefix in the table, in digits.
    max_len: usize,
}

/// libphonenumber's entries as shipped, before corrections.
fn libphonenumber() -> BTreeMap<String, Vec<Tz>> {
    let mut out = BTreeMap::new();
    for line in include_str!("../data/phone_timezones.tsv").lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((prefix, zones)) = line.split_once('\t') else {
            continue;
        };
        // Zones chrono-tz does not know are dropped; an entry left empty
        // falls through to a shorter prefix, or to unknown.
        let zones: Vec<Tz> = zones.split(',').filter_map(|z| z.parse().ok()).collect();
        if !zones.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) {
            out.insert(prefix.to_string(), zones);
        }
    }
    out
}

/// One line of the corrections file.
#[derive(Debug, Clone)]
pub(crate) struct Correction {
    /// `=`, `+` or `~`.
    pub op: char,
    /// The prefix it applies to.
    pub prefix: String,
    /// The zones it names (for `~`: the old zone, then the new).
    pub zones: Vec<Tz>,
}

/// The corrections, in file order. Every zone named must be known to
/// chrono-tz (a test holds this).
pub(crate) fn corrections() -> Vec<Correction> {
    include_str!("../data/phone_timezones_overrides.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let op = cols.next()?.chars().next()?;
            let prefix = cols.next()?.to_string();
            let zones = cols
                .next()?
                .split(',')
                .filter_map(|z| z.trim().parse().ok())
                .collect();
            Some(Correction { op, prefix, zones })
        })
        .collect()
}

fn push_unique(zones: &mut Vec<Tz>, z: Tz) {
    if !zones.contains(&z) {
        zones.push(z);
    }
}

/// The table as used: libphonenumber's entries with the corrections and
/// the NANP widening applied.
fn corrected() -> BTreeMap<String, Vec<Tz>> {
    let mut map = libphonenumber();
    for c in corrections() {
        match c.op {
            '=' => {
                map.insert(c.prefix, c.zones);
            }
            '+' => {
                let e = map.entry(c.prefix).or_default();
                for z in c.zones {
                    push_unique(e, z);
                }
            }
            '~' => {
                if let [old, new] = c.zones[..] {
                    let under = map
                        .range_mut(c.prefix.clone()..)
                        .take_while(|(p, _)| p.starts_with(&c.prefix));
                    for (_, zones) in under {
                        for z in zones.iter_mut().filter(|z| **z == old) {
                            *z = new;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // NANP: an area code (or a shorter group of exchanges) carries every
    // zone of the exchanges under it, so an exchange the data does not
    // list is screened against all of them.
    let nanp: Vec<(String, Vec<Tz>)> = map
        .iter()
        .filter(|(p, _)| p.starts_with('1') && p.len() > 4)
        .map(|(p, z)| (p.clone(), z.clone()))
        .collect();
    for (p, zones) in nanp {
        for len in 4..p.len() {
            if let Some(e) = map.get_mut(&p[..len]) {
                for &z in &zones {
                    push_unique(e, z);
                }
            }
        }
    }
    for zones in map.values_mut() {
        zones.sort_by_key(|z| z.name());
        zones.dedup();
    }
    map
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_prefix = HashMap::new();
        let mut max_len = 1;
        for (prefix, zones) in corrected() {
            let Ok(digits) = prefix.parse::<u64>() else {
                continue;
            };
            max_len = max_len.max(prefix.len());
            by_prefix.insert(digits * 10 + prefix.len() as u64, zones);
        }
        Table { by_prefix, max_len }
    })
}

/// The zones of one prefix as the table holds them (after corrections).
#[cfg(test)]
pub(crate) fn entry(prefix: &str) -> Option<&'static [Tz]> {
    let digits: u64 = prefix.parse().ok()?;
    table()
        .by_prefix
        .get(&(digits * 10 + prefix.len() as u64))
        .map(Vec::as_slice)
}

/// The candidate time zones of `number`, longest prefix first; empty when
/// unknown.
pub fn infer(number: &PhoneNumber) -> &'static [Tz] {
    let text_len = number_of_digits(number.digits);
    let cc_len = number_of_digits(number.country.calling_code());
    let table = table();
    for len in (1..=table.max_len.min(text_len)).rev() {
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

/// Every zone a number of `country` can be in, from the table (for a zone
/// given without a number that tells it).
pub fn country_zones(country: Country) -> &'static [Tz] {
    static ZONES: OnceLock<HashMap<Country, Vec<Tz>>> = OnceLock::new();
    let all = ZONES.get_or_init(|| {
        let mut out: HashMap<Country, Vec<Tz>> = HashMap::new();
        let countries = crate::profile::Profile::ALL.map(|p| p.country());
        for (prefix, zones) in corrected() {
            for &c in &countries {
                let cc = c.calling_code().to_string();
                let Some(rest) = prefix.strip_prefix(&cc) else {
                    continue;
                };
                let ours = if cc == "1" {
                    rest.len() >= 3
                        && rest[..3]
                            .parse::<u16>()
                            .ok()
                            .and_then(crate::phone::nanp_region)
                            == Some(c.iso())
                } else {
                    // Below the country code; or the country code itself
                    // where it names one zone.
                    !rest.is_empty() || zones.len() == 1
                };
                if ours {
                    let e = out.entry(c).or_default();
                    for &z in &zones {
                        push_unique(e, z);
                    }
                }
            }
        }
        out
    });
    all.get(&country).map_or(&[], Vec::as_slice)
}

/// Whether two zone names keep the same clock (aliases such as
/// Asia/Kolkata and Asia/Calcutta, or zones with identical rules): their
/// UTC offsets agree at weekly probes over 2024-2031.
pub fn same_clock(a: Tz, b: Tz) -> bool {
    use chrono::Offset;
    if a == b {
        return true;
    }
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single();
    let Some(start) = start else {
        return false;
    };
    (0..8 * 53).all(|w| {
        let t = start + chrono::Duration::hours(w * 24 * 7 + (w % 24));
        a.offset_from_utc_datetime(&t.naive_utc()).fix()
            == b.offset_from_utc_datetime(&t.naive_utc()).fix()
    })
}

/// The IANA zones of `country` (`data/country_timezones.tsv`, from the tz
/// database), with the zones the number data gives its numbers.
fn zones_of_country(country: Country) -> &'static [Tz] {
    static ZONES: OnceLock<HashMap<Country, Vec<Tz>>> = OnceLock::new();
    let all = ZONES.get_or_init(|| {
        let mut out: HashMap<Country, Vec<Tz>> = HashMap::new();
        let countries = crate::profile::Profile::ALL.map(|p| p.country());
        for line in include_str!("../data/country_timezones.tsv").lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((iso, zone)) = line.split_once('\t') else {
                continue;
            };
            let (Some(&c), Ok(z)) = (
                countries.iter().find(|c| c.iso() == iso.trim()),
                zone.trim().parse::<Tz>(),
            ) else {
                continue;
            };
            push_unique(out.entry(c).or_default(), z);
        }
        for c in countries {
            for &z in country_zones(c) {
                push_unique(out.entry(c).or_default(), z);
            }
        }
        out
    });
    all.get(&country).map_or(&[], Vec::as_slice)
}

/// Whether `zone` is one of `country`'s: a zone of the tz database's for
/// the country, one of its legacy names (`US/Eastern`, `Asia/Calcutta`),
/// or one the number data gives it. A zone abroad with the same clock
/// (Asia/Shanghai for Perth, Europe/Lisbon for London) is not.
pub fn is_zone_of(country: Country, zone: Tz) -> bool {
    zones_of_country(country).contains(&zone)
}

/// Narrows `number`'s zones by a zone given for it (a lead file's column):
/// the given zone must be one of the number's country's (see
/// [`is_zone_of`]), and one of the number's zones or an alias keeping the
/// same clock (or, when the number's zone is unknown, any of its
/// country's). The answer is the narrowed list, or why the zone cannot be
/// the number's. A zone can only narrow: it never moves a number out of
/// the places its digits allow, nor into another country.
pub fn narrow(number: &PhoneNumber, given: Tz) -> Result<Vec<Tz>, String> {
    if !is_zone_of(number.country, given) {
        return Err(format!(
            "time zone {} is not a zone of {}",
            given.name(),
            number.country.iso()
        ));
    }
    let inferred = infer(number);
    if inferred.is_empty() {
        return Ok(vec![given]);
    }
    match inferred.iter().find(|&&z| same_clock(z, given)) {
        Some(&z) => Ok(vec![z]),
        None => Err(format!(
            "time zone {} is not where the number can be ({})",
            given.name(),
            join(inferred)
        )),
    }
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
        // 08 9 covers South and Western Australia (with Eucla): all kept.
        assert_eq!(
            zones("(08) 9876 5432", Country::Australia),
            ["Australia/Adelaide", "Australia/Eucla", "Australia/Perth"]
        );
    }

    #[test]
    fn australian_mobiles_can_be_in_any_zone_of_the_country() {
        let z = zones("0412 345 678", Country::Australia);
        for want in [
            "Australia/Perth",
            "Australia/Darwin",
            "Australia/Adelaide",
            "Australia/Brisbane",
            "Australia/Sydney",
            "Australia/Lord_Howe",
            "Indian/Christmas",
            "Indian/Cocos",
        ] {
            assert!(z.contains(&want), "{want} missing from {z:?}");
        }
    }

    #[test]
    fn queensland_lord_howe_and_yukon_are_their_own() {
        assert_eq!(
            zones("(07) 4123 4567", Country::Australia),
            ["Australia/Brisbane"]
        );
        assert_eq!(
            zones("(02) 6563 2123", Country::Australia),
            ["Australia/Lord_Howe"]
        );
        // 07 55: the Gold Coast, and Tweed Heads across the border in New
        // South Wales (daylight saving) on the same exchanges.
        assert_eq!(
            zones("(07) 5536 2277", Country::Australia),
            ["Australia/Brisbane", "Australia/Sydney"]
        );
        // Whitehorse, Yukon: UTC-7 all year, not Vancouver's UTC-8 winter.
        let whitehorse = zones("867 667 0123", Country::Canada);
        assert_eq!(whitehorse, ["America/Whitehorse"]);
        // An unlisted 867 exchange: every zone of the three territories.
        let any = zones("867 222 0123", Country::Canada);
        for want in ["America/Whitehorse", "America/Edmonton", "America/Iqaluit"] {
            assert!(any.contains(&want), "{want} missing from {any:?}");
        }
        assert!(!any.contains(&"America/Vancouver"), "{any:?}");
        // 257, the newest overlay of British Columbia, reaches its
        // Mountain-time east as 236, 672 and 778 do.
        for overlay in ["236", "672", "778", "257"] {
            let z = zones(&format!("{overlay} 555 0123"), Country::Canada);
            assert!(z.contains(&"America/Edmonton"), "{overlay}: {z:?}");
        }
    }

    #[test]
    fn an_unlisted_exchange_of_a_split_area_code_carries_all_its_zones() {
        // 850 is Eastern in the east of the Florida panhandle and Central
        // in the west; the data lists the Central exchanges.
        assert_eq!(
            zones("850 200 0123", Country::UnitedStates),
            ["America/Chicago"]
        );
        let unlisted = zones("850 201 0123", Country::UnitedStates);
        assert_eq!(unlisted, ["America/Chicago", "America/New_York"]);
    }

    /// An overlay carries the zones of the area code it overlays: a new
    /// number can be given anywhere in its area (libphonenumber lists no
    /// exchanges for most overlays).
    #[test]
    fn an_overlay_carries_the_zones_of_the_area_code_it_overlays() {
        let cases: [(&str, Country, &[&str]); 9] = [
            (
                "364 555 0123",
                Country::UnitedStates,
                &["America/Chicago", "America/New_York"],
            ),
            (
                "930 555 0123",
                Country::UnitedStates,
                &["America/Chicago", "America/New_York"],
            ),
            (
                "448 555 0123",
                Country::UnitedStates,
                &["America/Chicago", "America/New_York"],
            ),
            (
                "458 555 0123",
                Country::UnitedStates,
                &["America/Denver", "America/Los_Angeles"],
            ),
            (
                "306 688 0123",
                Country::Canada,
                &["America/Edmonton", "America/Regina", "America/Winnipeg"],
            ),
            (
                "639 555 0123",
                Country::Canada,
                &["America/Edmonton", "America/Regina", "America/Winnipeg"],
            ),
            (
                "474 555 0123",
                Country::Canada,
                &["America/Edmonton", "America/Regina"],
            ),
            (
                "778 555 0123",
                Country::Canada,
                &["America/Edmonton", "America/Vancouver"],
            ),
            (
                "581 555 0123",
                Country::Canada,
                &["America/Halifax", "America/Toronto"],
            ),
        ];
        for (raw, country, want) in cases {
            let got = zones(raw, country);
            assert!(want.iter().all(|w| got.contains(w)), "{raw}: {got:?}");
        }
    }

    /// The corrected table against libphonenumber, prefix by prefix: every
    /// zone libphonenumber gives is kept, except where a correction
    /// replaces it (`=` or `~`, each with its reason in the file); every
    /// NANP prefix carries the zones of the prefixes under it.
    #[test]
    fn the_table_keeps_every_libphonenumber_zone_but_the_corrected_ones() {
        let corrections = corrections();
        for c in &corrections {
            let want = if c.op == '~' { 2 } else { c.zones.len().max(1) };
            assert!(!c.zones.is_empty() && c.zones.len() >= want, "{c:?}");
        }
        let lib = libphonenumber();
        let mut compared = 0;
        for (prefix, lib_zones) in &lib {
            let ours = entry(prefix).unwrap_or_else(|| panic!("{prefix} lost"));
            for z in lib_zones {
                let replaced = corrections.iter().any(|c| match c.op {
                    '=' => c.prefix == *prefix,
                    '~' => prefix.starts_with(&c.prefix) && c.zones[0] == *z,
                    _ => false,
                });
                assert!(
                    replaced || ours.contains(z),
                    "{prefix}: {} dropped from {ours:?}",
                    z.name()
                );
            }
            if prefix.starts_with('1') && prefix.len() > 4 {
                for len in 4..prefix.len() {
                    if let Some(up) = entry(&prefix[..len]) {
                        for z in ours {
                            assert!(up.contains(z), "{}: lacks {}", &prefix[..len], z.name());
                        }
                    }
                }
            }
            compared += 1;
        }
        assert!(compared > 3_000, "{compared}");
    }

    #[test]
    fn a_given_zone_only_narrows_within_the_number() {
        let boise = parse("208 555 0123", Country::UnitedStates).expect("valid");
        let mountain: Tz = "America/Boise".parse().expect("zone");
        assert_eq!(narrow(&boise, mountain).ok(), Some(vec![mountain]));
        let ny = parse("212 555 0123", Country::UnitedStates).expect("valid");
        let la: Tz = "America/Los_Angeles".parse().expect("zone");
        assert!(narrow(&ny, la).is_err());
        // Another country's zone is refused; an alias of the right one is not.
        let mumbai = parse("9876543210", Country::India).expect("valid");
        let london: Tz = "Europe/London".parse().expect("zone");
        assert!(narrow(&mumbai, london).is_err());
        let kolkata: Tz = "Asia/Kolkata".parse().expect("zone");
        assert!(narrow(&mumbai, kolkata).is_ok());
        assert!(country_zones(Country::Canada).contains(&chrono_tz::America::Toronto));
        assert!(!country_zones(Country::Canada).contains(&chrono_tz::Europe::London));
    }

    /// A zone abroad that keeps the same clock as one of the number's is
    /// another country's, and refused; the country's own legacy names are
    /// taken, and narrow to the number's zone.
    #[test]
    fn a_zone_abroad_with_the_same_clock_is_refused_and_a_legacy_name_is_not() {
        let cases: [(&str, Country, &str, Option<&str>); 14] = [
            ("0412 345 701", Country::Australia, "Asia/Shanghai", None),
            ("0412 345 701", Country::Australia, "Etc/GMT-8", None),
            (
                "0412 345 701",
                Country::Australia,
                "Australia/West",
                Some("Australia/Perth"),
            ),
            ("07 3123 4703", Country::Australia, "Pacific/Guam", None),
            (
                "07 3123 4703",
                Country::Australia,
                "Australia/Queensland",
                Some("Australia/Brisbane"),
            ),
            (
                "020 7946 0801",
                Country::UnitedKingdom,
                "Europe/Lisbon",
                None,
            ),
            (
                "020 7946 0801",
                Country::UnitedKingdom,
                "Europe/Dublin",
                None,
            ),
            (
                "020 7946 0801",
                Country::UnitedKingdom,
                "GB",
                Some("Europe/London"),
            ),
            ("9171704801", Country::India, "Asia/Colombo", None),
            // The number data names India's zone by its old name.
            (
                "9171704801",
                Country::India,
                "Asia/Kolkata",
                Some("Asia/Calcutta"),
            ),
            (
                "212 555 0103",
                Country::UnitedStates,
                "America/Toronto",
                None,
            ),
            (
                "212 555 0103",
                Country::UnitedStates,
                "US/Eastern",
                Some("America/New_York"),
            ),
            ("604 555 0104", Country::Canada, "America/Los_Angeles", None),
            (
                "604 555 0104",
                Country::Canada,
                "Canada/Pacific",
                Some("America/Vancouver"),
            ),
        ];
        for (raw, country, given, want) in cases {
            let n = parse(raw, country).expect(raw);
            let z: Tz = given.parse().expect(given);
            let got = narrow(&n, z);
            match want {
                None => assert!(got.is_err(), "{raw} {given}: {got:?}"),
                Some(w) => assert_eq!(
                    got.map(|v| v.iter().map(|z| z.name()).collect::<Vec<_>>()),
                    Ok(vec![w]),
                    "{raw} {given}"
                ),
            }
        }
        // Every zone of the table is one chrono-tz knows, and every
        // country has its zones.
        for line in include_str!("../data/country_timezones.tsv").lines() {
            if let Some((_, zone)) = line.split_once('\t')
                && !line.starts_with('#')
            {
                assert!(zone.parse::<Tz>().is_ok(), "{zone}");
            }
        }
        for p in crate::profile::Profile::ALL {
            assert!(!zones_of_country(p.country()).is_empty(), "{p:?}");
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let z = infer(&parse("208 555 0123", Country::UnitedStates).expect("valid"));
        assert_eq!(split(&join(z)).as_deref(), Some(z));
        assert_eq!(split("Mars/Olympus"), None);
    }
}
