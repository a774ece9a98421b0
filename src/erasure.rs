//! Personal data erasure ("right to be forgotten") by phone number.
//!
//! Owns the request: parse the number, have the store erase it in one
//! transaction, log counts. The number itself is never logged, not even
//! masked, nor kept: what stays is a suppression entry, the number's keyed
//! hash, which refuses it at lead import and at dial time in every
//! campaign.

use crate::phone::{self, Country, PhoneError};
use crate::store::{ErasureCounts, Store, StoreError};

/// Errors from an erasure request.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The number could not be read.
    #[error("cannot read the phone number: {0}")]
    Phone(#[from] PhoneError),
    /// A national-format number without a country to read it in.
    #[error("give the number in E.164 form (+...) or name its country")]
    CountryNeeded,
    /// The store failed; nothing was erased.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the number of an erasure request: E.164 (`+...`) always; a
/// national format only with `country`.
pub fn parse_number(raw: &str, country: Option<Country>) -> Result<String, ErasureError> {
    let raw = raw.trim();
    let number = if raw.starts_with('+') {
        // from_e164 tells the country from the leading digits, so the
        // separators people write go first.
        let compact: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        phone::PhoneNumber::from_e164(&compact)?
    } else {
        phone::parse(raw, country.ok_or(ErasureError::CountryNeeded)?)?
    };
    Ok(number.e164())
}

/// Erases the person with number `e164` from the store at `now` (ms): see
/// [`Store::erase_number`] for what goes and what stays. Logs the counts,
/// never the number.
pub async fn erase(store: &Store, e164: &str, now: i64) -> Result<ErasureCounts, ErasureError> {
    let number = phone::PhoneNumber::from_e164(e164)?;
    let key = store.suppression_key().await?;
    let hash = crate::compliance::suppression::hash_hex(&key, number.digits);
    let counts = store.erase_number(e164, &hash, now).await?;
    tracing::info!(
        leads = counts.leads,
        attempts = counts.attempts,
        dispositions = counts.dispositions,
        "personal data erased"
    );
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_need_e164_or_a_country() {
        assert_eq!(
            parse_number("+91 98765 43210", None).ok().as_deref(),
            Some("+919876543210")
        );
        assert_eq!(
            parse_number("098765 43210", Some(Country::India))
                .ok()
                .as_deref(),
            Some("+919876543210")
        );
        assert!(matches!(
            parse_number("9876543210", None),
            Err(ErasureError::CountryNeeded)
        ));
        assert!(parse_number("+91 12", None).is_err());
    }
}
