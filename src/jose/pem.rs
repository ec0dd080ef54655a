//! PEM (RFC 7468) for private keys: the armour around PKCS#8 DER. Error
//! messages describe the text's shape and never quote it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::{SecretSlice, SecretString};

/// The only label read: unencrypted PKCS#8.
const PKCS8: &str = "PRIVATE KEY";

/// A PEM longer than this is not a key: an 8192-bit RSA key is under 7 KiB.
const MAX_LEN: usize = 16 * 1024;

/// The DER inside a `PRIVATE KEY` PEM block. Text around the block (such
/// as OpenSSL's explanatory lines) is ignored.
///
/// # Errors
///
/// Why the text is not an unencrypted PKCS#8 PEM, and how to convert a
/// key in another format.
pub(crate) fn decode(text: &str) -> Result<SecretSlice<u8>, String> {
    if text.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes"));
    }
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|line| line.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or("it has no -----BEGIN PRIVATE KEY----- line")?;
    if label != PKCS8 {
        // The label is one of a handful of fixed words, not key material;
        // still, only known ones are named.
        let known = ["RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"];
        let named = known
            .iter()
            .find(|known| **known == label)
            .unwrap_or(&"another");
        return Err(format!(
            "it is a {named} PEM, not an unencrypted PKCS#8 PRIVATE KEY; convert it with \
             `openssl pkey -in key.pem -out key-pkcs8.pem`"
        ));
    }
    let end = format!("-----END {PKCS8}-----");
    let mut body = String::with_capacity(text.len());
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("it has no {end} line"));
    }
    let der = STANDARD.decode(body.as_bytes());
    // The body held the key: wipe it whether or not it decoded.
    drop(SecretString::from(body));
    der.map(SecretSlice::from)
        .map_err(|_| "its body is not base64".to_owned())
}

/// `der` as a `PRIVATE KEY` PEM, 64 characters a line.
pub(crate) fn encode(der: &[u8]) -> SecretString {
    let body = SecretString::from(STANDARD.encode(der));
    let mut pem = format!("-----BEGIN {PKCS8}-----\n");
    let mut rest = secrecy::ExposeSecret::expose_secret(&body);
    while !rest.is_empty() {
        // base64 is ASCII, so any index is a character boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str(&format!("-----END {PKCS8}-----\n"));
    SecretString::from(pem)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_round_trip_keeps_the_bytes() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode(&der);
        assert!(pem.expose_secret().lines().all(|line| line.len() <= 64));
        assert_eq!(
            decode(pem.expose_secret()).unwrap().expose_secret(),
            &der[..]
        );
    }

    #[test]
    fn text_around_the_block_is_ignored() {
        let pem = format!(
            "Key for the test\n{}\ntrailer",
            encode(b"key").expose_secret()
        );
        assert_eq!(decode(&pem).unwrap().expose_secret(), b"key");
    }

    #[test]
    fn other_formats_are_refused_with_a_conversion_hint_and_no_echo() {
        let cases = [
            (
                "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----",
                "RSA PRIVATE KEY",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----",
                "openssl pkey",
            ),
            (
                "-----BEGIN c2VjcmV0-----\nc2VjcmV0\n-----END c2VjcmV0-----",
                "another",
            ),
            ("c2VjcmV0", "no -----BEGIN"),
            ("-----BEGIN PRIVATE KEY-----\nc2VjcmV0", "no -----END"),
            (
                "-----BEGIN PRIVATE KEY-----\nc2Vj*mV0\n-----END PRIVATE KEY-----",
                "not base64",
            ),
        ];
        for (text, hint) in cases {
            let err = decode(text).unwrap_err();
            assert!(err.contains(hint), "{err}");
            assert!(!err.contains("c2Vj"), "the PEM is echoed: {err}");
        }
        assert!(decode(&"A".repeat(MAX_LEN + 1))
            .unwrap_err()
            .contains("longer"));
    }
}
