//! A request's URI and headers flattened into one byte buffer, inline up to
//! a typical request's size: the cheap copy a replay needs, taken by both
//! adapters before the token goes in, and parsed back only when a replay
//! really follows.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

/// Enough for the URI and a handful of headers of a typical API request.
const INLINE: usize = 128;

/// An append-only byte buffer, inline up to `INLINE` bytes.
pub(crate) enum Flat {
    Inline { bytes: [u8; INLINE], len: usize },
    Heap(Vec<u8>),
}

impl Flat {
    #[inline]
    pub(crate) fn new() -> Self {
        Flat::Inline {
            bytes: [0; INLINE],
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, data: &[u8]) {
        if let Flat::Inline { bytes, len } = self {
            if let Some(slot) = bytes.get_mut(*len..*len + data.len()) {
                slot.copy_from_slice(data);
                *len += data.len();
                return;
            }
        }
        self.push_to_heap(data);
    }

    /// Kept out of line so that the inline case stays small enough to be
    /// inlined at each call.
    #[cold]
    fn push_to_heap(&mut self, data: &[u8]) {
        if let Flat::Inline { bytes, len } = self {
            let mut heap = Vec::with_capacity(2 * INLINE + data.len());
            heap.extend_from_slice(&bytes[..*len]);
            *self = Flat::Heap(heap);
        }
        if let Flat::Heap(heap) = self {
            heap.extend_from_slice(data);
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Appends every header (several values of a name included, in order).
    /// `None` for a header over 64 KiB: every server we know refuses those,
    /// and such a request is simply not replayed.
    pub(crate) fn push_headers(&mut self, headers: &HeaderMap) -> Option<()> {
        for (name, value) in headers {
            let (name, sensitive, value) = (
                name.as_str().as_bytes(),
                value.is_sensitive(),
                value.as_bytes(),
            );
            let [n0, n1] = u16::try_from(name.len()).ok()?.to_le_bytes();
            let [v0, v1] = u16::try_from(value.len()).ok()?.to_le_bytes();
            self.push(&[u8::from(sensitive), n0, n1, v0, v1]);
            self.push(name);
            self.push(value);
        }
        Some(())
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Flat::Inline { bytes, len } => &bytes[..*len],
            Flat::Heap(heap) => heap,
        }
    }
}

/// Per header in the buffer: a sensitivity flag, the name's and the
/// value's lengths (u16, little-endian), then their bytes.
const HEADER_PREFIX: usize = 1 + 2 + 2;

/// Appends the headers written by [`Flat::push_headers`] to `headers`.
/// `None` if the bytes do not parse, which cannot happen for bytes that came
/// from a valid header map.
pub(crate) fn read_headers(mut flat: &[u8], headers: &mut HeaderMap) -> Option<()> {
    while !flat.is_empty() {
        let (prefix, rest) = flat.split_at_checked(HEADER_PREFIX)?;
        let name_len = usize::from(u16::from_le_bytes([prefix[1], prefix[2]]));
        let value_len = usize::from(u16::from_le_bytes([prefix[3], prefix[4]]));
        let (name, rest) = rest.split_at_checked(name_len)?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        let mut value = HeaderValue::from_bytes(value).ok()?;
        value.set_sensitive(prefix[0] == 1);
        headers.append(HeaderName::from_bytes(name).ok()?, value);
        flat = rest;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_headers_read_back_in_order_and_sensitive() {
        let mut headers = HeaderMap::new();
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        let mut secret = HeaderValue::from_static("s3cr3t");
        secret.set_sensitive(true);
        headers.insert("x-api-secret", secret);
        headers.insert("x-long", HeaderValue::from_str(&"v".repeat(300)).unwrap());
        let mut flat = Flat::new();
        flat.push_headers(&headers).unwrap();
        let mut back = HeaderMap::new();
        read_headers(flat.as_slice(), &mut back).unwrap();
        assert_eq!(back, headers);
        assert!(back["x-api-secret"].is_sensitive());
        let mut huge = HeaderMap::new();
        huge.insert(
            "x-huge",
            HeaderValue::from_str(&"a".repeat(70_000)).unwrap(),
        );
        assert!(
            Flat::new().push_headers(&huge).is_none(),
            "not replayed rather than truncated"
        );
    }
}
