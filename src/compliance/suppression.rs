//! The suppression list: numbers whose owners had their data erased, kept
//! as keyed hashes (HMAC-SHA256 of the E.164 number under the account's
//! key) so that nothing personal stays, yet the number is refused at lead
//! import and at dial time in every campaign. Pure: the key and the hashes
//! come from the store.

use std::collections::HashSet;

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The account's suppression list, ready for look-ups.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    key: [u8; 32],
    hashes: HashSet<[u8; 32]>,
}

/// The keyed hash of the E.164 number whose digits are `digits`.
pub fn hash(key: &[u8; 32], digits: u64) -> [u8; 32] {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes a key of any length: this cannot happen.
        Err(_) => return [0; 32],
    };
    mac.update(format!("+{digits}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// [`hash`] as stored: lower-case hex.
pub fn hash_hex(key: &[u8; 32], digits: u64) -> String {
    hex::encode(hash(key, digits))
}

impl Suppressions {
    /// The list from the account's key and the stored hashes (hex; a
    /// damaged one is skipped and reported in the second value).
    pub fn new(key: [u8; 32], stored: impl IntoIterator<Item = String>) -> (Suppressions, usize) {
        let mut hashes = HashSet::new();
        let mut damaged = 0;
        for h in stored {
            let mut out = [0u8; 32];
            match hex::decode_to_slice(h.trim(), &mut out) {
                Ok(()) => {
                    hashes.insert(out);
                }
                Err(_) => damaged += 1,
            }
        }
        (Suppressions { key, hashes }, damaged)
    }

    /// Whether the number with `digits` is suppressed.
    pub fn contains(&self, digits: u64) -> bool {
        // Most accounts have erased nobody: skip the hash.
        !self.hashes.is_empty() && self.hashes.contains(&hash(&self.key, digits))
    }

    /// How many numbers are suppressed.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suppressed_number_is_found_by_its_keyed_hash_only() {
        let key = [7u8; 32];
        let (s, damaged) =
            Suppressions::new(key, [hash_hex(&key, 447700900123), "not hex".to_string()]);
        assert_eq!((s.len(), damaged), (1, 1));
        assert!(s.contains(447700900123));
        assert!(!s.contains(447700900124));
        // Another account's key gives another hash: nothing to match.
        let (other, _) = Suppressions::new([8u8; 32], [hash_hex(&key, 447700900123)]);
        assert!(!other.contains(447700900123));
        assert_ne!(hash_hex(&key, 447700900123), "447700900123");
    }
}
