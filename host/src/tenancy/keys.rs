//! API keys: how they look, how they are made, and how a presented key is checked.
//!
//! A key is `spool_<id>_<secret>`: the id finds the stored record without a scan, the
//! secret (128 random bits) proves possession. Only the SHA-256 of the whole key is
//! stored. A fast hash is enough because the secret is random, not a password: there
//! is nothing to guess from its hash that would be cheaper than guessing the key.

use sha2::{Digest, Sha256};

const PREFIX: &str = "spool_";

/// A key just made: the full key (to show once) and what is stored of it.
pub struct MintedKey {
    pub key: String,
    pub key_id: String,
    pub secret_sha256: String,
}

pub fn mint() -> MintedKey {
    let key_id = format!("{:012x}", rand::random::<u64>() >> 16);
    let key = format!("{PREFIX}{key_id}_{:032x}", rand::random::<u128>());
    MintedKey {
        secret_sha256: digest(&key),
        key,
        key_id,
    }
}

/// The id part of a presented key, if it has the shape of one.
pub fn key_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 12) && hex(secret, 32)).then_some(id)
}

/// SHA-256 of a key, lowercase hex: what is stored and compared.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `presented` is the key whose digest is `stored`. The comparison takes the
/// same time wherever the digests differ.
pub fn matches(stored_sha256: &str, presented: &str) -> bool {
    let presented = digest(presented);
    stored_sha256.len() == presented.len()
        && stored_sha256
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_parses_and_matches_only_itself() {
        let minted = mint();
        assert_eq!(key_id(&minted.key), Some(minted.key_id.as_str()));
        assert!(matches(&minted.secret_sha256, &minted.key));
        let other = mint();
        assert!(!matches(&minted.secret_sha256, &other.key));
        assert_ne!(minted.key, other.key);
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for bad in [
            "",
            "spool_",
            "spool_abc_def",
            "bearer spool_0123456789ab_0123456789abcdef0123456789abcdef",
            "spool_0123456789ab_0123456789abcdef0123456789abcdeX",
            "spool_0123456789ab_0123456789abcdef0123456789abcdef0",
        ] {
            assert_eq!(key_id(bad), None, "{bad:?}");
        }
    }
}
