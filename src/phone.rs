//! Phone numbers: normalisation to E.164 for the countries we dial, and masking
//! for logs.
//!
//! Owns the parsing and masking; each country's numbering plan (trunk
//! prefixes, lengths, refused ranges) is in its profile
//! ([`crate::profile::Regulation`]). It does no I/O; the NANP area-code
//! table is data compiled into the binary (`data/nanp_regions.tsv`,
//! generated from libphonenumber).
//!
//! Why not the `phonenumber` crate: we need a fail-closed rule set for five
//! countries only, area-code level region checks for the NANP (a Canadian
//! number is out of country for a US campaign), and a parser that allocates
//! nothing, because a million-row import runs every number through it. The
//! crate's general regex-driven parser does far more than that per number.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A country whose numbering plan the dialler understands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Country {
    /// India, +91.
    #[serde(rename = "IN")]
    India,
    /// United States, +1 (NANP).
    #[serde(rename = "US")]
    UnitedStates,
    /// Canada, +1 (NANP).
    #[serde(rename = "CA")]
    Canada,
    /// United Kingdom, +44.
    #[serde(rename = "GB")]
    UnitedKingdom,
    /// Australia, +61.
    #[serde(rename = "AU")]
    Australia,
}

impl Country {
    /// ISO 3166-1 alpha-2 code.
    pub fn iso(self) -> &'static str {
        match self {
            Country::India => "IN",
            Country::UnitedStates => "US",
            Country::Canada => "CA",
            Country::UnitedKingdom => "GB",
            Country::Australia => "AU",
        }
    }

    /// The ITU country calling code.
    pub fn calling_code(self) -> u64 {
        self.rules().calling_code()
    }

    /// Parses an ISO code as stored in the database.
    pub fn from_iso(code: &str) -> Option<Country> {
        match code {
            "IN" => Some(Country::India),
            "US" => Some(Country::UnitedStates),
            "CA" => Some(Country::Canada),
            "GB" => Some(Country::UnitedKingdom),
            "AU" => Some(Country::Australia),
            _ => None,
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iso())
    }
}

/// A valid, normalised phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber {
    /// All E.164 digits (country code first) as an integer: +91 98765 43210 is
    /// 919876543210. E.164 numbers have at most 15 digits, so they fit in u64.
    pub digits: u64,
    /// The country the number belongs to.
    pub country: Country,
}

impl PhoneNumber {
    /// The E.164 text form, `+` followed by the digits.
    pub fn e164(&self) -> String {
        format!("+{}", self.digits)
    }

    /// The number masked for logs: only the last four digits are shown.
    pub fn masked(&self) -> String {
        mask(&self.digits.to_string())
    }

    /// Parses a number already stored in E.164 form (`+` and digits).
    pub fn from_e164(text: &str) -> Result<PhoneNumber, PhoneError> {
        if !text.starts_with('+') {
            return Err(PhoneError::NotE164);
        }
        let country = detect_country(text)?;
        parse(text, country)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.digits)
    }
}

/// Masks a phone number (any format) for logs: every digit but the last four
/// becomes `*`.
/// Text far longer than any number shows at most 16 stars, so a hostile
/// input cannot flood a log or a terminal.
pub fn mask(text: &str) -> String {
    const MAX_STARS: usize = 16;
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    let hidden = digits.len().saturating_sub(4);
    let mut out = "*".repeat(hidden.min(MAX_STARS));
    out.extend(&digits[hidden..]);
    out
}

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but spaces.
    #[error("empty phone number")]
    Empty,
    /// A character that has no place in a phone number (letters, `#`, ...).
    #[error("invalid character {0:?} in phone number")]
    InvalidCharacter(char),
    /// Too many or too few digits for the country.
    #[error("{digits} digits is not a valid {country} number length")]
    BadLength {
        /// Digits in the national number.
        digits: usize,
        /// The country whose plan was applied.
        country: Country,
    },
    /// The number starts with digits that the country does not assign.
    #[error("{country} numbers cannot start with {prefix}")]
    BadPrefix {
        /// The offending leading digits.
        prefix: String,
        /// The country whose plan was applied.
        country: Country,
    },
    /// A NANP area code that is not a geographic area code of any region
    /// (toll-free, premium, unassigned).
    #[error("area code {0} is not a geographic NANP area code")]
    UnknownAreaCode(u16),
    /// The number belongs to another country than the campaign's.
    #[error("out of country: number belongs to {found}, campaign dials {expected}")]
    OutOfCountry {
        /// What the number is (an ISO region or `+CC`).
        found: String,
        /// The campaign's country.
        expected: Country,
    },
    /// A stored value that should have been E.164 was not.
    #[error("not an E.164 number")]
    NotE164,
}

/// Normalises `raw` to E.164, reading national formats with `default` as the
/// country. Numbers of another country are refused with
/// [`PhoneError::OutOfCountry`].
///
/// Accepts spaces, dashes, dots, slashes and parentheses as separators, a
/// leading `+` or `00` international prefix, and a trunk `0` (or `1` in the
/// NANP). The UK's `+44 (0)20 ...` form is understood.
pub fn parse(raw: &str, default: Country) -> Result<PhoneNumber, PhoneError> {
    let folded;
    let raw = if raw.is_ascii() {
        raw
    } else {
        folded = fold_unicode(raw);
        folded.as_str()
    };
    // At most 15 digits in E.164; keep a little room for prefixes such as 00.
    let mut buf = [0u8; 20];
    let mut len = 0usize;
    let mut plus = false;
    let mut seen_digit = false;
    let bytes = raw.trim().as_bytes();
    if bytes.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'0'..=b'9' => {
                if len == buf.len() {
                    // Far too long for any plan: say how long it is (the
                    // digits of the whole text), or its first bad character.
                    let mut digits = 0;
                    for c in raw.trim().chars() {
                        match c {
                            '0'..='9' => digits += 1,
                            ' ' | '-' | '.' | '/' | '\t' | '(' | ')' | '+' => {}
                            c => return Err(PhoneError::InvalidCharacter(c)),
                        }
                    }
                    return Err(PhoneError::BadLength {
                        digits,
                        country: default,
                    });
                }
                buf[len] = b - b'0';
                len += 1;
                seen_digit = true;
            }
            b'+' if !seen_digit && !plus => plus = true,
            b' ' | b'-' | b'.' | b'/' | b'\t' | b')' => {}
            b'(' => {
                // "+44 (0)20 ..." : a bracketed trunk zero after a country code.
                if plus && bytes.get(i + 1) == Some(&b'0') && bytes.get(i + 2) == Some(&b')') {
                    i += 3;
                    continue;
                }
            }
            _ => {
                let c = raw.trim()[i..].chars().next().unwrap_or('?');
                return Err(PhoneError::InvalidCharacter(c));
            }
        }
        i += 1;
    }
    let mut d = &buf[..len];
    if d.is_empty() {
        return Err(PhoneError::Empty);
    }
    // International forms: "+CC..." or "00CC...".
    let international = if plus {
        true
    } else if d.len() > 2 && d[0] == 0 && d[1] == 0 {
        d = &d[2..];
        true
    } else {
        false
    };
    let national: &[u8] = if international {
        let cc = calling_code_prefix(d);
        if cc.0 != default.calling_code() {
            return Err(PhoneError::OutOfCountry {
                found: format!("+{}", cc.0),
                expected: default,
            });
        }
        &d[cc.1..]
    } else {
        strip_national_prefixes(d, default)
    };
    national_number(national, default)
}

/// The first code point of each block of ten decimal digits (Unicode
/// category Nd) that numbers are written in: Arabic-Indic and Persian,
/// N'Ko, the Indian scripts, Sinhala, Thai, Lao, Tibetan, Myanmar, Khmer,
/// Mongolian, fullwidth.
const DIGIT_ZEROS: [u32; 22] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0xFF10, 0x1946,
];

/// `raw` with other scripts' digits as ASCII digits, Unicode spaces and
/// dashes as separators, fullwidth `+ ( )` as ASCII, and invisible marks
/// (zero-width spaces, direction marks, a byte-order mark) dropped, as
/// spreadsheets and phones write them. Anything else is left for the
/// parser to refuse.
fn fold_unicode(raw: &str) -> String {
    raw.chars()
        .filter_map(|c| {
            let u = c as u32;
            if c.is_ascii() {
                return Some(c);
            }
            if let Some(z) = DIGIT_ZEROS.iter().find(|&&z| (z..z + 10).contains(&u)) {
                return char::from_digit(u - z, 10);
            }
            match c {
                '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}' => None,
                '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
                    Some(' ')
                }
                '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => {
                    Some('-')
                }
                '\u{FF0E}' => Some('.'),
                '\u{FF0F}' => Some('/'),
                '\u{FF0B}' | '\u{207A}' => Some('+'),
                '\u{FF08}' => Some('('),
                '\u{FF09}' => Some(')'),
                _ => Some(c),
            }
        })
        .collect()
}

/// The country calling code at the start of `d` and its length in digits:
/// ITU-T E.164's codes are one digit (1, 7), two (the list below) or
/// three (every other start), so a foreign number is named by its whole
/// code (`+998`, not `+99`). A number too short to hold a code is named
/// by what it has.
fn calling_code_prefix(d: &[u8]) -> (u64, usize) {
    /// The two-digit codes assigned in ITU-T E.164 (Annex to ITU
    /// Operational Bulletin No. 1125, "List of ITU-T Recommendation E.164
    /// assigned country codes").
    const TWO_DIGIT: [u8; 44] = [
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55,
        56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    ];
    let len = match d {
        [1 | 7, ..] => 1,
        [a, b, ..] if TWO_DIGIT.contains(&(a * 10 + b)) => 2,
        _ => 3,
    }
    .min(d.len());
    let code = d[..len]
        .iter()
        .fold(0u64, |acc, &x| acc * 10 + u64::from(x));
    (code, len)
}

/// Strips a trunk prefix or a country code written without `+` from a
/// number written in national form.
fn strip_national_prefixes(d: &[u8], country: Country) -> &[u8] {
    country.rules().strip_national_prefixes(d)
}

/// Validates a national significant number (no trunk prefix) against the
/// country's plan and builds the E.164 number.
fn national_number(n: &[u8], country: Country) -> Result<PhoneNumber, PhoneError> {
    let country = country.rules().national_number(n)?;
    let mut digits = country.calling_code();
    for &x in n {
        digits = digits * 10 + u64::from(x);
    }
    Ok(PhoneNumber { digits, country })
}

/// Finds the country of an E.164 string among those we support.
fn detect_country(text: &str) -> Result<Country, PhoneError> {
    let digits = &text[1..];
    crate::profile::Profile::ALL
        .iter()
        .map(|p| p.country())
        .find(|c| c.rules().owns_e164(digits))
        .ok_or(PhoneError::NotE164)
}

/// Digits as text.
pub(crate) fn digits_str(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

/// The ISO region of a geographic NANP area code, from libphonenumber's
/// metadata (`data/nanp_regions.tsv`).
pub fn nanp_region(npa: u16) -> Option<&'static str> {
    static TABLE: OnceLock<HashMap<u16, &'static str>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            include_str!("../data/nanp_regions.tsv")
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .filter_map(|l| {
                    let (npa, region) = l.split_once('\t')?;
                    Some((npa.parse().ok()?, region))
                })
                .collect()
        })
        .get(&npa)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, c: Country) -> String {
        parse(raw, c)
            .map(|n| n.e164())
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn other_scripts_digits_and_unicode_separators_normalise() {
        for raw in [
            "\u{0669}\u{0668}\u{0667}\u{0666}\u{0665}\u{0664}\u{0663}\u{0662}\u{0661}\u{0660}",
            "\u{096F}\u{096E}\u{096D}\u{096C}\u{096B}\u{096A}\u{0969}\u{0968}\u{0967}\u{0966}",
            "\u{FF0B}\u{FF19}\u{FF11}\u{3000}\u{FF19}\u{FF18}\u{FF17}\u{FF16}\u{FF15}\u{FF14}\u{FF13}\u{FF12}\u{FF11}\u{FF10}",
            "+91\u{00A0}98765\u{2011}43210",
            "\u{200E}+91 98765 43210\u{200F}",
        ] {
            assert_eq!(ok(raw, Country::India), "+919876543210", "{raw:?}");
        }
        assert!(parse("98765 4321\u{00BD}", Country::India).is_err());
    }

    #[test]
    fn india_formats_normalise_to_the_same_number() {
        for raw in [
            "9876543210",
            "09876543210",
            "+91 98765 43210",
            "+91-98765-43210",
            "919876543210",
            "91 9876 543 210",
            "0091 98765 43210",
            "+919876543210",
        ] {
            assert_eq!(ok(raw, Country::India), "+919876543210", "{raw}");
        }
        assert_eq!(ok("011-2345-6789", Country::India), "+911123456789");
    }

    #[test]
    fn india_rejects_bad_lengths_prefixes_and_telemarketer_series() {
        assert!(matches!(
            parse("98765432", Country::India),
            Err(PhoneError::BadLength { .. })
        ));
        assert!(matches!(
            parse("0987654321", Country::India),
            Err(PhoneError::BadLength { .. })
        ));
        assert!(matches!(
            parse("1401234567", Country::India),
            Err(PhoneError::BadPrefix { .. })
        ));
        assert!(matches!(
            parse("1600123456", Country::India),
            Err(PhoneError::BadPrefix { .. })
        ));
        // Toll-free and shared-cost service numbers are no subscribers:
        // the National Consumer Helpline, 1800-11-4000.
        for raw in ["1800 11 4000", "+91 1800 11 4000", "1860 12 3456"] {
            assert!(
                matches!(
                    parse(raw, Country::India),
                    Err(PhoneError::BadPrefix { .. })
                ),
                "{raw}"
            );
        }
        // A Delhi line (STD 11) is one.
        assert!(parse("011 2345 6789", Country::India).is_ok());
    }

    #[test]
    fn nanp_formats_normalise_to_the_same_number() {
        for raw in [
            "2125550123",
            "(212) 555-0123",
            "1-212-555-0123",
            "+1 212 555 0123",
            "212.555.0123",
            "12125550123",
            "001 212 555 0123",
        ] {
            assert_eq!(ok(raw, Country::UnitedStates), "+12125550123", "{raw}");
        }
    }

    #[test]
    fn nanp_checks_area_code_region() {
        // Toronto is Canadian: out of country for a US campaign, fine for CA.
        assert!(matches!(
            parse("416 555 0123", Country::UnitedStates),
            Err(PhoneError::OutOfCountry { .. })
        ));
        assert_eq!(
            parse("416 555 0123", Country::Canada).map(|n| n.country),
            Ok(Country::Canada)
        );
        // Jamaica shares +1 but is neither.
        assert!(matches!(
            parse("876 555 0123", Country::UnitedStates),
            Err(PhoneError::OutOfCountry { .. })
        ));
        // Toll-free and invalid area or exchange codes.
        assert_eq!(
            parse("800 555 0123", Country::UnitedStates),
            Err(PhoneError::UnknownAreaCode(800))
        );
        assert!(matches!(
            parse("112 555 0123", Country::UnitedStates),
            Err(PhoneError::BadPrefix { .. })
        ));
        assert!(matches!(
            parse("212 055 0123", Country::UnitedStates),
            Err(PhoneError::BadPrefix { .. })
        ));
    }

    #[test]
    fn uk_formats_normalise_to_the_same_number() {
        for raw in [
            "07700 900123",
            "+44 7700 900123",
            "447700900123",
            "0044 7700 900123",
            "+44 (0)7700 900123",
        ] {
            assert_eq!(ok(raw, Country::UnitedKingdom), "+447700900123", "{raw}");
        }
        assert_eq!(ok("020 7946 0018", Country::UnitedKingdom), "+442079460018");
        assert_eq!(
            ok("+44 (0)20 7946 0018", Country::UnitedKingdom),
            "+442079460018"
        );
        assert!(matches!(
            parse("09098 790123", Country::UnitedKingdom),
            Err(PhoneError::BadPrefix { .. })
        ));
        assert!(matches!(
            parse("07700 9001", Country::UnitedKingdom),
            Err(PhoneError::BadLength { .. })
        ));
    }

    #[test]
    fn australia_formats_normalise() {
        for raw in ["0412 345 678", "+61 412 345 678", "61412345678"] {
            assert_eq!(ok(raw, Country::Australia), "+61412345678", "{raw}");
        }
        assert_eq!(ok("(02) 9876 5432", Country::Australia), "+61298765432");
    }

    #[test]
    fn other_countries_are_out_of_country() {
        assert!(matches!(
            parse("+44 7700 900123", Country::India),
            Err(PhoneError::OutOfCountry { .. })
        ));
        assert!(matches!(
            parse("+33 6 12 34 56 78", Country::UnitedKingdom),
            Err(PhoneError::OutOfCountry { .. })
        ));
    }

    #[test]
    fn a_foreign_number_is_named_by_its_whole_calling_code() {
        let found = |raw: &str, c: Country| match parse(raw, c) {
            Err(PhoneError::OutOfCountry { found, .. }) => found,
            other => panic!("{raw}: {other:?}"),
        };
        // One, two and three digits, as ITU-T E.164 assigns them.
        assert_eq!(found("+7 495 123 45 67", Country::UnitedKingdom), "+7");
        assert_eq!(found("+49 30 1234567", Country::UnitedKingdom), "+49");
        assert_eq!(found("0049 30 1234567", Country::India), "+49");
        assert_eq!(found("+998 90 123 45 67", Country::UnitedKingdom), "+998");
        assert_eq!(found("+353 1 234 5678", Country::UnitedKingdom), "+353");
        assert_eq!(found("+999 123", Country::UnitedKingdom), "+999");
        assert_eq!(found("+1 212 555 0123", Country::UnitedKingdom), "+1");
        assert_eq!(found("+3", Country::UnitedKingdom), "+3");
    }

    #[test]
    fn a_number_far_too_long_is_told_its_real_length() {
        let long = format!("+{}", "1".repeat(100_000));
        assert_eq!(
            parse(&long, Country::UnitedKingdom),
            Err(PhoneError::BadLength {
                digits: 100_000,
                country: Country::UnitedKingdom
            })
        );
        let long_then_junk = format!("{}x", "9".repeat(30));
        assert_eq!(
            parse(&long_then_junk, Country::India),
            Err(PhoneError::InvalidCharacter('x'))
        );
        // And its mask stays short.
        assert_eq!(mask(&long), format!("{}1111", "*".repeat(16)));
    }

    #[test]
    fn junk_is_refused_with_the_character() {
        assert_eq!(
            parse("98765x43210", Country::India),
            Err(PhoneError::InvalidCharacter('x'))
        );
        assert_eq!(parse("   ", Country::India), Err(PhoneError::Empty));
        assert_eq!(parse("--", Country::India), Err(PhoneError::Empty));
        assert!(matches!(
            parse("1234567890123456789012", Country::India),
            Err(PhoneError::BadLength { .. })
        ));
    }

    #[test]
    fn masking_keeps_only_last_four_digits() {
        assert_eq!(mask("+91 98765 43210"), "********3210");
        assert_eq!(mask("12"), "12");
    }

    #[test]
    fn e164_round_trips() {
        for (raw, c) in [
            ("9876543210", Country::India),
            ("4165550123", Country::Canada),
            ("2125550123", Country::UnitedStates),
            ("07700900123", Country::UnitedKingdom),
            ("0412345678", Country::Australia),
        ] {
            let n = parse(raw, c).expect(raw);
            assert_eq!(PhoneNumber::from_e164(&n.e164()), Ok(n));
        }
    }
}
