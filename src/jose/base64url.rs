//! base64url without padding (RFC 7515 §2), the encoding of every JOSE
//! segment.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Encodes `bytes` as unpadded base64url.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the unpadded base64url of `bytes` to `out`, so that a JWS is
/// built in one buffer.
pub(crate) fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_padding_and_the_url_alphabet() {
        assert_eq!(encode([0xfb, 0xff]), "-_8");
        let mut out = String::from("a.");
        encode_into(b"hi", &mut out);
        assert_eq!(out, "a.aGk");
    }
}
