//! The North American Numbering Plan, shared by the US and Canada: ten
//! digits, area codes and exchanges starting 2-9, and the region of each
//! geographic area code from libphonenumber's metadata
//! (`data/nanp_regions.tsv`), so that a Canadian number is out of country
//! for a US campaign and the other way round.

use crate::phone::{Country, PhoneError, digits_str, nanp_region};

/// A trunk `1` before ten digits.
pub(super) fn strip_national_prefixes(d: &[u8]) -> &[u8] {
    match d.len() {
        11 if d[0] == 1 => &d[1..],
        _ => d,
    }
}

/// A NANP number of `country`'s region.
pub(super) fn national_number(n: &[u8], country: Country) -> Result<Country, PhoneError> {
    if n.len() != 10 {
        return Err(PhoneError::BadLength {
            digits: n.len(),
            country,
        });
    }
    if n[0] < 2 {
        return Err(PhoneError::BadPrefix {
            prefix: digits_str(&n[..1]),
            country,
        });
    }
    if n[3] < 2 {
        return Err(PhoneError::BadPrefix {
            prefix: digits_str(&n[..4]),
            country,
        });
    }
    let npa = u16::from(n[0]) * 100 + u16::from(n[1]) * 10 + u16::from(n[2]);
    let region = nanp_region(npa).ok_or(PhoneError::UnknownAreaCode(npa))?;
    if region != country.iso() {
        return Err(PhoneError::OutOfCountry {
            found: region.to_string(),
            expected: country,
        });
    }
    Ok(country)
}

/// The region (`US`, `CA`, another NANP member) of E.164 digits starting
/// with 1; `None` for an area code the table does not know.
pub(super) fn region_of(digits: &str) -> Option<&'static str> {
    let npa: u16 = digits.strip_prefix('1')?.get(..3)?.parse().ok()?;
    nanp_region(npa)
}
