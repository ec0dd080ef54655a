//! The two claims every token this crate signs carries: a `jti` that is
//! never reused, and `iat`.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand;

use super::base64url;

/// A fresh JWT ID: 128 random bits, base64url (22 characters). Random, not
/// a counter, so that processes sharing a key never collide.
pub(crate) fn jti() -> String {
    let mut bytes = [0u8; 16];
    // The system RNG fails only when the OS cannot provide randomness at
    // all, and then nothing this crate signs could be trusted either.
    rand::fill(&mut bytes).expect("the system random number generator failed");
    base64url::encode(bytes)
}

/// Now, in seconds since the Unix epoch (the wall clock: the server
/// compares `iat` with its own).
pub(crate) fn issued_at() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jtis_are_distinct_and_128_bits() {
        let a = jti();
        assert_eq!(a.len(), 22);
        assert_ne!(a, jti());
    }

    #[test]
    fn issued_at_is_after_2020() {
        assert!(issued_at() > 1_577_836_800);
    }
}
