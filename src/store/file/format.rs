//! The token file's bytes: a small JSON envelope with the generation in
//! clear (for the compare-and-swap and the waiters) and the token, sealed
//! when there is a key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::store::seal::{PlainToken, Seal};
use crate::store::StoredToken;

/// Names the file's kind, so a foreign JSON file is recognised as such.
const FORMAT: &str = "bearer-refresh token";
/// Bumped when the layout changes; other versions count as empty.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plain: Option<PlainToken>,
}

/// Why a token file is not usable; it then counts as empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unusable {
    Empty,
    NotOurs,
    OtherVersion,
    WrongKey,
    Unsealed,
    NoKey,
}

impl Unusable {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Unusable::Empty => "it is empty",
            Unusable::NotOurs => "it is not a bearer-refresh token file (truncated or foreign)",
            Unusable::OtherVersion => "it is from another version of bearer-refresh",
            Unusable::WrongKey => {
                "it does not open with our seal key (another credential or seal key, or tampered)"
            }
            Unusable::Unsealed => "it holds an unsealed token but this store seals them",
            Unusable::NoKey => "it holds a sealed token but this store has no seal key",
        }
    }
}

/// The bytes of a file holding `token`, sealed with `seal` if there is
/// one. `None` only if sealing fails, which it does not for tokens we
/// produced.
pub(super) fn encode(token: &StoredToken, seal: Option<&Seal>) -> Option<Vec<u8>> {
    let (sealed, plain) = match seal {
        Some(seal) => {
            let blob = seal.seal(token, &associated_data(token.generation))?;
            (Some(STANDARD.encode(blob)), None)
        }
        None => (None, Some(PlainToken::new(token))),
    };
    let envelope = Envelope {
        format: FORMAT.to_owned(),
        version: VERSION,
        generation: token.generation,
        sealed,
        plain,
    };
    let mut bytes = serde_json::to_vec(&envelope).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

/// The token in a file's bytes.
pub(super) fn decode(bytes: &[u8], seal: Option<&Seal>) -> Result<StoredToken, Unusable> {
    let envelope = envelope(bytes)?;
    match (seal, envelope.sealed, envelope.plain) {
        (Some(seal), Some(blob), _) => STANDARD
            .decode(blob)
            .ok()
            .and_then(|blob| {
                seal.open(
                    &blob,
                    &associated_data(envelope.generation),
                    envelope.generation,
                )
            })
            .ok_or(Unusable::WrongKey),
        (None, None, Some(plain)) => Ok(plain.into_stored(envelope.generation)),
        (Some(_), None, Some(_)) => Err(Unusable::Unsealed),
        (None, Some(_), _) => Err(Unusable::NoKey),
        (_, None, None) => Err(Unusable::NotOurs),
    }
}

/// The generation in a file's bytes, without opening the token: what the
/// waiters poll.
pub(super) fn generation(bytes: &[u8]) -> Option<u64> {
    envelope(bytes).ok().map(|envelope| envelope.generation)
}

fn envelope(bytes: &[u8]) -> Result<Envelope, Unusable> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Unusable::Empty);
    }
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|_| Unusable::NotOurs)?;
    if envelope.format != FORMAT {
        return Err(Unusable::NotOurs);
    }
    if envelope.version != VERSION {
        return Err(Unusable::OtherVersion);
    }
    Ok(envelope)
}

/// Binds a sealed token to this file format and its generation, so a blob
/// cannot be replayed under another generation.
fn associated_data(generation: u64) -> Vec<u8> {
    format!("{FORMAT}/v{VERSION}:{generation}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use std::time::{Duration, SystemTime};

    fn token(generation: u64) -> StoredToken {
        StoredToken {
            generation,
            access_token: SecretString::from("access-abc".to_owned()),
            refresh_token: Some(SecretString::from("refresh-xyz".to_owned())),
            expires_at: SystemTime::now() + Duration::from_secs(60),
            lifetime: Duration::from_secs(60),
        }
    }

    fn seal() -> Seal {
        Seal::derive(b"key", b"salt", b"info")
    }

    #[test]
    fn sealed_and_plain_files_round_trip() {
        let sealed = encode(&token(3), Some(&seal())).unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"access-abc"));
        let back = decode(&sealed, Some(&seal())).unwrap();
        assert_eq!(back.generation, 3);
        assert_eq!(back.access_token.expose_secret(), "access-abc");
        assert_eq!(generation(&sealed), Some(3));

        let plain = encode(&token(2), None).unwrap();
        let back = decode(&plain, None).unwrap();
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "refresh-xyz");
    }

    #[test]
    fn bad_files_are_named_not_trusted() {
        let sealed = encode(&token(3), Some(&seal())).unwrap();
        let half = &sealed[..sealed.len() / 2];
        let cases: [(&[u8], Unusable); 5] = [
            (b"", Unusable::Empty),
            (b"  \n", Unusable::Empty),
            (half, Unusable::NotOurs),
            (br#"{"hello":"world"}"#, Unusable::NotOurs),
            (
                br#"{"format":"bearer-refresh token","version":99,"generation":1}"#,
                Unusable::OtherVersion,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes, Some(&seal())).err(), Some(expected));
        }
        let other = Seal::derive(b"other", b"salt", b"info");
        assert_eq!(
            decode(&sealed, Some(&other)).err(),
            Some(Unusable::WrongKey)
        );
        assert_eq!(decode(&sealed, None).err(), Some(Unusable::NoKey));
        let plain = encode(&token(1), None).unwrap();
        assert_eq!(
            decode(&plain, Some(&seal())).err(),
            Some(Unusable::Unsealed)
        );
    }

    #[test]
    fn a_blob_moved_to_another_generation_does_not_open() {
        let sealed = String::from_utf8(encode(&token(3), Some(&seal())).unwrap()).unwrap();
        let moved = sealed.replace("\"generation\":3", "\"generation\":4");
        assert_eq!(
            decode(moved.as_bytes(), Some(&seal())).err(),
            Some(Unusable::WrongKey)
        );
    }
}
