//! The public JWK of a P-256 key (RFC 7518 §6.2.1) and JWK thumbprints
//! (RFC 7638).

use aws_lc_rs::digest::{digest, SHA256};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::base64url;

/// The public part of a P-256 key as a JWK: no `d`, ever.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EcPublicJwk {
    x: String,
    y: String,
}

impl EcPublicJwk {
    /// From an uncompressed SEC1 point (`04 || x || y`, 65 bytes), as
    /// aws-lc-rs gives a P-256 public key.
    pub(crate) fn from_point(point: &[u8]) -> Option<Self> {
        match point {
            [0x04, coordinates @ ..] if coordinates.len() == 64 => {
                let (x, y) = coordinates.split_at(32);
                Some(EcPublicJwk {
                    x: base64url::encode(x),
                    y: base64url::encode(y),
                })
            }
            _ => None,
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url (43 characters): what an
    /// authorization server puts in a DPoP-bound token's `cnf.jkt`.
    pub(crate) fn thumbprint(&self) -> String {
        thumbprint(&self.members())
    }

    /// The required members, in lexicographic order (RFC 7638 §3.2).
    fn members(&self) -> [(&'static str, &str); 4] {
        [
            ("crv", "P-256"),
            ("kty", "EC"),
            ("x", &self.x),
            ("y", &self.y),
        ]
    }
}

/// Serialises as the JWK object, for a JOSE header's `jwk`.
impl Serialize for EcPublicJwk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut jwk = serializer.serialize_struct("Jwk", 4)?;
        for (name, value) in self.members() {
            jwk.serialize_field(name, value)?;
        }
        jwk.end()
    }
}

/// The RFC 7638 thumbprint of a JWK given by its required members, in
/// lexicographic order of their names.
pub(crate) fn thumbprint(members: &[(&str, &str)]) -> String {
    base64url::encode(digest(&SHA256, canonical(members).as_bytes()))
}

/// `{"name":"value",...}` with no whitespace (RFC 7638 §3.2). Every
/// member of a public JWK's required set is a string.
fn canonical(members: &[(&str, &str)]) -> String {
    debug_assert!(members.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let mut json = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        // Serialising a &str cannot fail; to_string escapes it as JSON.
        json.push_str(&serde_json::Value::from(*name).to_string());
        json.push(':');
        json.push_str(&serde_json::Value::from(*value).to_string());
    }
    json.push('}');
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn the_rfc_7638_example_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc\
                 _BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ\
                 R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF\
                 TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = [("e", "AQAB"), ("kty", "RSA"), ("n", n)];
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn an_ec_jwk_has_the_public_members_only() {
        let mut point = vec![0x04];
        point.extend(1..=64u8);
        let jwk = EcPublicJwk::from_point(&point).unwrap();
        let json = serde_json::to_value(&jwk).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 4, "{json}");
        assert_eq!(json["kty"], "EC");
        assert_eq!(json["crv"], "P-256");
        assert_eq!(json["x"], base64url::encode((1..=32u8).collect::<Vec<_>>()));
        assert_eq!(jwk.thumbprint().len(), 43);
    }

    #[test]
    fn a_compressed_or_short_point_is_refused() {
        assert!(EcPublicJwk::from_point(&[0x02; 33]).is_none());
        assert!(EcPublicJwk::from_point(&[0x04; 64]).is_none());
    }
}
