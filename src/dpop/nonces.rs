//! The servers' DPoP nonces (RFC 9449 §8, §9), one per origin: the token
//! endpoint's, and each API origin's apart.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderMap;

use crate::origin::Origin;

/// The header that carries a server's next nonce, on any answer.
pub(crate) const DPOP_NONCE: &str = "dpop-nonce";

/// A nonce longer than this is refused: servers send a few dozen bytes, and
/// a hostile one must not make every proof large.
const MAX_NONCE_LEN: usize = 512;

/// Origins remembered at most. Only origins that get the token are asked
/// for proofs, so a full map means `allow_any_origin` and many hosts:
/// it starts over, and each forgotten origin costs one nonce challenge.
const MAX_ORIGINS: usize = 256;

/// The latest nonce of each origin. Reading takes no lock and copies no
/// string: proofs are made on every send, nonces change rarely.
#[derive(Default)]
pub(crate) struct Nonces {
    by_origin: ArcSwap<HashMap<Origin, Arc<str>>>,
}

impl Nonces {
    /// The origin's latest nonce, if it sent one.
    pub(crate) fn get(&self, origin: &Origin) -> Option<Arc<str>> {
        self.by_origin.load().get(origin).cloned()
    }

    /// Keeps the `DPoP-Nonce` of an answer from `origin` (any status,
    /// 200s included). A malformed nonce is ignored.
    pub(crate) fn observe(&self, origin: &Origin, headers: &HeaderMap) {
        if let Some(nonce) = headers
            .get(DPOP_NONCE)
            .and_then(|value| value.to_str().ok())
        {
            self.set(origin, nonce);
        }
    }

    /// Makes `nonce` the origin's latest, unless it is malformed (RFC 9449
    /// §8.1: one or more printable ASCII characters but `"` and `\`).
    /// Returns whether it was kept.
    pub(crate) fn set(&self, origin: &Origin, nonce: &str) -> bool {
        if !is_valid(nonce) {
            return false;
        }
        let current = self.by_origin.load();
        if current.get(origin).is_some_and(|known| &**known == nonce) {
            return true;
        }
        let nonce: Arc<str> = Arc::from(nonce);
        self.by_origin.rcu(|map| {
            let mut map = if map.len() >= MAX_ORIGINS && !map.contains_key(origin) {
                HashMap::new()
            } else {
                HashMap::clone(map)
            };
            map.insert(origin.clone(), Arc::clone(&nonce));
            map
        });
        true
    }
}

fn is_valid(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|byte| matches!(byte, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// Nonces are not secrets, but they are the servers' to show: the count
/// is enough to debug with.
impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("origins", &self.by_origin.load().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::parse(url).unwrap()
    }

    #[test]
    fn each_origin_has_its_own_latest_nonce() {
        let nonces = Nonces::default();
        let (idp, api) = (origin("https://idp.example"), origin("https://api.example"));
        assert!(nonces.get(&idp).is_none());
        assert!(nonces.set(&idp, "a"));
        assert!(nonces.set(&api, "b"));
        assert!(nonces.set(&idp, "c"));
        assert_eq!(nonces.get(&idp).as_deref(), Some("c"));
        assert_eq!(nonces.get(&api).as_deref(), Some("b"));
    }

    #[test]
    fn a_dpop_nonce_header_is_kept_from_any_answer() {
        let nonces = Nonces::default();
        let api = origin("https://api.example");
        let mut headers = HeaderMap::new();
        nonces.observe(&api, &headers);
        assert!(nonces.get(&api).is_none());
        headers.insert(
            "DPoP-Nonce",
            HeaderValue::from_static("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
        );
        nonces.observe(&api, &headers);
        assert_eq!(
            nonces.get(&api).as_deref(),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v")
        );
    }

    #[test]
    fn malformed_nonces_are_ignored() {
        let nonces = Nonces::default();
        let api = origin("https://api.example");
        nonces.set(&api, "good");
        for bad in [
            "",
            "with space",
            "quote\"",
            "back\\slash",
            "é",
            &"n".repeat(MAX_NONCE_LEN + 1),
        ] {
            assert!(!nonces.set(&api, bad), "{bad:?}");
        }
        assert_eq!(nonces.get(&api).as_deref(), Some("good"));
    }

    #[test]
    fn a_full_map_starts_over() {
        let nonces = Nonces::default();
        for port in 0..MAX_ORIGINS {
            nonces.set(
                &origin(&format!("https://api.example:{}", 1000 + port)),
                "n",
            );
        }
        let known = origin("https://api.example:1000");
        nonces.set(&known, "again");
        assert_eq!(
            nonces.get(&known).as_deref(),
            Some("again"),
            "a known origin is updated"
        );
        let new = origin("https://other.example");
        nonces.set(&new, "x");
        assert_eq!(nonces.get(&new).as_deref(), Some("x"));
        assert!(nonces.get(&known).is_none());
        assert!(format!("{nonces:?}").contains("origins: 1"));
    }
}
