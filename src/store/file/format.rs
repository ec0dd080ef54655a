//! The token file's bytes: a small JSON envelope with the generation in
//! clear (for the compare-and-swap and the waiters) and the token as the
//! sealing layer made it: sealed (base64), or its JSON object when there is
//! no key. Files of earlier versions read the same.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::store::StoredBytes;

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
    plain: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Why a token file is not usable; it then counts as empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unusable {
    Empty,
    NotOurs,
    OtherVersion,
}

impl Unusable {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Unusable::Empty => "it is empty",
            Unusable::NotOurs => "it is not a bearer-refresh token file (truncated or foreign)",
            Unusable::OtherVersion => "it is from another version of bearer-refresh",
        }
    }
}

/// The start of the associated data that binds a sealed token to this
/// file format; the generation follows.
pub(super) fn associated_data_prefix() -> String {
    format!("{FORMAT}/v{VERSION}:")
}

/// The bytes of a file holding `entry`. An unsealed token (a JSON object)
/// is kept as such, anything else as base64. `None` only if the JSON
/// cannot be written, which it can for no entry.
pub(super) fn encode(entry: &StoredBytes) -> Option<Vec<u8>> {
    let (sealed, plain) = match serde_json::from_slice(&entry.bytes) {
        Ok(object) => (None, Some(object)),
        Err(_) => (Some(STANDARD.encode(&entry.bytes)), None),
    };
    let envelope = Envelope {
        format: FORMAT.to_owned(),
        version: VERSION,
        generation: entry.generation,
        sealed,
        plain,
    };
    let mut bytes = serde_json::to_vec(&envelope).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

/// The entry in a file's bytes.
pub(super) fn decode(bytes: &[u8]) -> Result<StoredBytes, Unusable> {
    let envelope = envelope(bytes)?;
    let payload = match (envelope.sealed, envelope.plain) {
        (Some(blob), None) => STANDARD.decode(blob).map_err(|_| Unusable::NotOurs)?,
        (None, Some(plain)) => serde_json::to_vec(&plain).map_err(|_| Unusable::NotOurs)?,
        _ => return Err(Unusable::NotOurs),
    };
    Ok(StoredBytes::new(envelope.generation, payload))
}

/// The generation in a file's bytes, without the token: what the waiters
/// poll.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_and_unsealed_entries_round_trip() {
        let sealed = StoredBytes::new(3, vec![0, 1, 2, b'{', 0xff]);
        let file = encode(&sealed).unwrap();
        assert_eq!(decode(&file).unwrap(), sealed);
        assert_eq!(generation(&file), Some(3));

        let unsealed = StoredBytes::new(2, br#"{"access":"a","expires_ms":1}"#.to_vec());
        let file = encode(&unsealed).unwrap();
        assert!(String::from_utf8(file.clone())
            .unwrap()
            .contains(r#""plain":{"#));
        let back = decode(&file).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&back.bytes).unwrap();
        assert_eq!(value["access"], "a");
    }

    /// Files written before the sealing layer: their payloads are what
    /// the layer seals and opens.
    #[test]
    fn files_of_the_earlier_layout_read_the_same() {
        let sealed =
            br#"{"format":"bearer-refresh token","version":1,"generation":4,"sealed":"AAECAw=="}"#;
        assert_eq!(
            decode(sealed).unwrap(),
            StoredBytes::new(4, vec![0, 1, 2, 3])
        );
        let plain = br#"{"format":"bearer-refresh token","version":1,"generation":2,"plain":{"access":"a","refresh":null,"expires_ms":5,"lifetime_ms":6}}"#;
        let entry = decode(plain).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&entry.bytes).unwrap();
        assert_eq!(value["lifetime_ms"], 6);
    }

    #[test]
    fn bad_files_are_named_not_trusted() {
        let file = encode(&StoredBytes::new(3, vec![9; 40])).unwrap();
        let half = &file[..file.len() / 2];
        let cases: [(&[u8], Unusable); 7] = [
            (b"", Unusable::Empty),
            (b"  \n", Unusable::Empty),
            (half, Unusable::NotOurs),
            (br#"{"hello":"world"}"#, Unusable::NotOurs),
            (
                br#"{"format":"bearer-refresh token","version":1,"generation":1}"#,
                Unusable::NotOurs,
            ),
            (
                br#"{"format":"bearer-refresh token","version":1,"generation":1,"sealed":"!!"}"#,
                Unusable::NotOurs,
            ),
            (
                br#"{"format":"bearer-refresh token","version":99,"generation":1}"#,
                Unusable::OtherVersion,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes).err(), Some(expected));
        }
    }
}
