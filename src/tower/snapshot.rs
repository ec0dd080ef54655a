//! The copy a replay needs, taken before our header goes in and kept
//! cheap: the URI and headers flattened into one inline buffer, and the
//! body kept by [`keep_body`](super::body::keep_body).

use http::{Extensions, Method, Request, Uri, Version};

use super::body::{Bodies, BodyCopy};
use crate::request::{read_headers, Flat};

/// What a replay needs: method, URI, version, headers, extensions and the
/// body's copy, taken before our `Authorization` goes in so the old token
/// is never copied.
///
/// The URI and the headers are flattened into one buffer, inline up to
/// a typical request's size ([`Flat`]). Cloning them instead costs an allocation per
/// header value and one for a parsed URI (each `Bytes` is promoted to a
/// shared one on its first clone) and an atomic count per part; a typical
/// request now costs none, and the parsing back happens only when a replay
/// really follows a 401. Even where nothing needs promoting (the URI cloned
/// from an already shared one, no headers), a plain clone of both measured
/// about 150 more instructions per request (`benches/hot_path.sh`).
pub(crate) struct Snapshot<B> {
    method: Method,
    version: Version,
    extensions: Extensions,
    body: BodyCopy<B>,
    flat: Flat,
    uri_len: usize,
}

impl<B> Snapshot<B> {
    /// Takes a snapshot, or `None` for a header too long to keep (see
    /// [`Flat::push_headers`]).
    pub(crate) fn take(request: &Request<B>, body: BodyCopy<B>) -> Option<Self> {
        let uri = request.uri();
        let mut flat = Flat::new();
        match uri.scheme_str() {
            Some("https") => flat.push(b"https://"),
            Some("http") => flat.push(b"http://"),
            Some(other) => {
                flat.push(other.as_bytes());
                flat.push(b"://");
            }
            None => {}
        }
        if let Some(authority) = uri.authority() {
            flat.push(authority.as_str().as_bytes());
        }
        if let Some(path) = uri.path_and_query() {
            flat.push(path.as_str().as_bytes());
        }
        let uri_len = flat.len();
        flat.push_headers(request.headers())?;
        Some(Snapshot {
            method: request.method().clone(),
            version: request.version(),
            extensions: request.extensions().clone(),
            body,
            flat,
            uri_len,
        })
    }

    /// The request again, or `None` when its body cannot be had again (a
    /// recording past its cap). A part that no longer parses would also
    /// give `None`, which cannot happen for parts that came out of a valid
    /// request; the 401 is then handed back instead of a replay.
    pub(crate) fn restore(&self, bodies: &Bodies) -> Option<Request<B>> {
        let (uri, headers) = self.flat.as_slice().split_at(self.uri_len);
        let mut request = Request::new(self.body.next(bodies)?);
        *request.method_mut() = self.method.clone();
        *request.version_mut() = self.version;
        *request.extensions_mut() = self.extensions.clone();
        *request.uri_mut() = Uri::try_from(uri).ok()?;
        read_headers(headers, request.headers_mut())?;
        Some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_keep_everything_a_replay_needs() {
        use bytes::Bytes;
        use http_body_util::Full;

        let mut request = Request::post("https://api.example/videos?page=2")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        request.extensions_mut().insert(7u8);
        let bodies = Bodies::new();
        let body = crate::tower::body::keep_body(request.body_mut(), &bodies);
        let snapshot = Snapshot::take(&request, body.unwrap()).unwrap();
        for _ in 0..2 {
            let copy = snapshot.restore(&bodies).unwrap();
            assert_eq!(copy.method(), "POST");
            assert_eq!(copy.uri(), request.uri());
            assert_eq!(copy.headers(), request.headers());
            assert_eq!(copy.extensions().get::<u8>(), Some(&7));
            assert_eq!(
                format!("{:?}", copy.body()),
                format!("{:?}", request.body())
            );
        }
    }
}
