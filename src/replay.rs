//! The request side's rules, shared by the tower layer and the reqwest
//! middleware: which requests get the token, which 401s ask for a new one,
//! and which bodies can be sent again.

use bytes::Bytes;
use http::header::{HeaderName, WWW_AUTHENTICATE};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, Version};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Either, Empty, Full, StreamBody};

use crate::manager::TokenManager;
use crate::scope::{Origin, Scope};

/// The longest `WWW-Authenticate` value we parse. A longer one is not read
/// for a scope error, so the 401 counts as a plain token rejection.
const MAX_CHALLENGE_LEN: usize = 8 * 1024;

/// The settings both adapters apply to every request.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) tokens: TokenManager,
    pub(crate) scope: Scope,
    pub(crate) max_replays: u32,
}

impl Policy {
    /// The token goes to the source's origin only, with one replay.
    pub(crate) fn new(tokens: TokenManager) -> Self {
        let scope = Scope::Origins(tokens.origin().cloned().into_iter().collect());
        Policy {
            tokens,
            scope,
            max_replays: 1,
        }
    }

    pub(crate) fn allow_origin(&mut self, origin: Origin) {
        self.scope.add(origin);
    }

    pub(crate) fn allow_any_origin(&mut self) {
        self.scope = Scope::Any;
    }
}

/// Whether a response asks for a new token: a 401, unless its Bearer
/// challenge says `error="insufficient_scope"` (a new token would not have
/// more scope). Every other status, 403 included, passes through.
pub(crate) fn wants_new_token(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED && !insufficient_scope(headers)
}

/// Whether any `WWW-Authenticate` header holds a Bearer challenge with
/// `error="insufficient_scope"` (RFC 6750 §3.1).
pub(crate) fn insufficient_scope(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(challenges_insufficient_scope)
}

/// Parses one `WWW-Authenticate` value (a list of challenges, RFC 7235).
/// Parsing stops at the first malformed challenge; what came before counts.
pub(crate) fn challenges_insufficient_scope(value: &str) -> bool {
    if value.len() > MAX_CHALLENGE_LEN {
        return false;
    }
    http_auth::ChallengeParser::new(value)
        .map_while(Result::ok)
        .filter(|challenge| challenge.scheme.eq_ignore_ascii_case("bearer"))
        .any(|challenge| {
            challenge.params.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("error") && value.to_unescaped() == "insufficient_scope"
            })
        })
}

/// A request body that can be copied for a replay.
///
/// A 401 is answered by sending the request again with a new token, which
/// needs the body a second time. Bodies held in memory copy cheaply and
/// return `Some`; streaming bodies return `None` and are sent once.
///
/// Streaming bodies (`BoxBody`, `UnsyncBoxBody`, `StreamBody`, hyper's
/// `Incoming`) are implemented as never copied. Implement it for your own
/// body type to opt it in:
///
/// ```
/// use bearer_refresh::ReplayBody;
///
/// #[derive(Clone)]
/// struct MyBody(bytes::Bytes);
///
/// impl ReplayBody for MyBody {
///     fn try_clone_body(&self) -> Option<Self> {
///         Some(self.clone())
///     }
/// }
///
/// assert!(MyBody(bytes::Bytes::from_static(b"{}")).try_clone_body().is_some());
/// ```
pub trait ReplayBody: Sized {
    /// A copy of the body for a replay, or `None` when it cannot be had
    /// cheaply (a stream).
    fn try_clone_body(&self) -> Option<Self>;
}

macro_rules! cloneable_bodies {
    ($($body:ty),* $(,)?) => {$(
        impl ReplayBody for $body {
            fn try_clone_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

cloneable_bodies!(
    Full<Bytes>,
    Empty<Bytes>,
    String,
    Bytes,
    Vec<u8>,
    &'static str,
    &'static [u8]
);

impl<E> ReplayBody for BoxBody<Bytes, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<E> ReplayBody for UnsyncBoxBody<Bytes, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<S> ReplayBody for StreamBody<S> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

/// A body received by a hyper server: forwarded once (a proxy use).
impl ReplayBody for hyper::body::Incoming {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<L: ReplayBody, R: ReplayBody> ReplayBody for Either<L, R> {
    fn try_clone_body(&self) -> Option<Self> {
        match self {
            Either::Left(body) => body.try_clone_body().map(Either::Left),
            Either::Right(body) => body.try_clone_body().map(Either::Right),
        }
    }
}

/// What a replay needs: method, URI, version, headers, extensions and a
/// copy of the body, taken before our `Authorization` goes in so the old
/// token is never copied.
///
/// The URI and the headers are flattened into one buffer, inline up to
/// `INLINE` bytes (`Flat`). Cloning them would cost an allocation per header value
/// and one for the URI (each `Bytes` is promoted to a shared one on its
/// first clone); a typical request now costs none, and the parsing back
/// happens only when a replay really follows a 401.
pub(crate) struct Snapshot<B> {
    method: Method,
    version: Version,
    extensions: Extensions,
    body: B,
    flat: Flat,
    uri_len: usize,
}

/// Enough for the URI and a handful of headers of a typical API request.
const INLINE: usize = 128;

/// An append-only byte buffer, inline up to `INLINE` bytes.
enum Flat {
    Inline { bytes: [u8; INLINE], len: usize },
    Heap(Vec<u8>),
}

impl Flat {
    fn new() -> Self {
        Flat::Inline {
            bytes: [0; INLINE],
            len: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if let Flat::Inline { bytes, len } = self {
            if let Some(slot) = bytes.get_mut(*len..*len + data.len()) {
                slot.copy_from_slice(data);
                *len += data.len();
                return;
            }
            let mut heap = Vec::with_capacity(2 * INLINE + data.len());
            heap.extend_from_slice(&bytes[..*len]);
            *self = Flat::Heap(heap);
        }
        if let Flat::Heap(heap) = self {
            heap.extend_from_slice(data);
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Flat::Inline { bytes, len } => &bytes[..*len],
            Flat::Heap(heap) => heap,
        }
    }
}

/// Per header in the buffer: a sensitivity flag, the name's and the
/// value's lengths (u16, little-endian), then their bytes.
const HEADER_PREFIX: usize = 1 + 2 + 2;

impl<B: ReplayBody> Snapshot<B> {
    /// Takes a snapshot, or `None` when the body cannot be copied.
    pub(crate) fn take(request: &Request<B>) -> Option<Self> {
        let body = request.body().try_clone_body()?;
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
        for (name, value) in request.headers() {
            let (name, sensitive, value) = (
                name.as_str().as_bytes(),
                value.is_sensitive(),
                value.as_bytes(),
            );
            // A header over 64 KiB is refused by every server we know; such a
            // request is simply not replayed.
            let [n0, n1] = u16::try_from(name.len()).ok()?.to_le_bytes();
            let [v0, v1] = u16::try_from(value.len()).ok()?.to_le_bytes();
            flat.push(&[u8::from(sensitive), n0, n1, v0, v1]);
            flat.push(name);
            flat.push(value);
        }
        Some(Snapshot {
            method: request.method().clone(),
            version: request.version(),
            extensions: request.extensions().clone(),
            body,
            flat,
            uri_len,
        })
    }

    /// The request again. `None` only if a part no longer parses, which
    /// cannot happen for parts that came out of a valid request; the 401 is
    /// then handed back instead of a replay.
    pub(crate) fn restore(self) -> Option<Request<B>> {
        let (uri, mut rest) = self.flat.as_slice().split_at(self.uri_len);
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.version_mut() = self.version;
        *request.extensions_mut() = self.extensions;
        *request.uri_mut() = Uri::try_from(uri).ok()?;
        let headers = request.headers_mut();
        while !rest.is_empty() {
            let (prefix, tail) = rest.split_at_checked(HEADER_PREFIX)?;
            let name_len = usize::from(u16::from_le_bytes([prefix[1], prefix[2]]));
            let value_len = usize::from(u16::from_le_bytes([prefix[3], prefix[4]]));
            let (name, tail) = tail.split_at_checked(name_len)?;
            let (value, tail) = tail.split_at_checked(value_len)?;
            let mut value = HeaderValue::from_bytes(value).ok()?;
            value.set_sensitive(prefix[0] == 1);
            headers.append(HeaderName::from_bytes(name).ok()?, value);
            rest = tail;
        }
        Some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(WWW_AUTHENTICATE, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn plain_401s_want_a_new_token() {
        assert!(wants_new_token(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
        assert!(wants_new_token(
            StatusCode::UNAUTHORIZED,
            &headers(&[r#"Bearer realm="api", error="invalid_token""#])
        ));
        assert!(!wants_new_token(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert!(!wants_new_token(StatusCode::OK, &HeaderMap::new()));
    }

    #[test]
    fn insufficient_scope_passes_through() {
        for value in [
            r#"Bearer error="insufficient_scope""#,
            r#"bearer realm="a, b", ERROR=insufficient_scope, scope="videos""#,
            r#"Basic realm="x", Bearer realm="y", error="insufficient_scope""#,
            r#"Bearer realm="say \"hi\"", error="insufficient_scope""#,
        ] {
            assert!(challenges_insufficient_scope(value), "{value}");
        }
        assert!(insufficient_scope(&headers(&[
            r#"Basic realm="x""#,
            r#"Bearer error="insufficient_scope""#
        ])));
    }

    #[test]
    fn other_challenges_do_not_pass_through() {
        for value in [
            "",
            "Bearer",
            r#"Bearer error="invalid_token""#,
            r#"Basic error="insufficient_scope""#,
            r#"Bearer error="insufficient_scope"#,
            "Bearer ,,,===",
            "\"unterminated",
        ] {
            assert!(!challenges_insufficient_scope(value), "{value}");
        }
        let huge = format!(
            r#"Bearer realm="{}", error="insufficient_scope""#,
            "a".repeat(MAX_CHALLENGE_LEN)
        );
        assert!(!challenges_insufficient_scope(&huge));
    }

    #[test]
    fn snapshots_keep_everything_a_replay_needs() {
        let mut request = Request::post("https://api.example/videos?page=2")
            .header("content-type", "application/json")
            .header("x-trace", "42")
            .header("accept", "a")
            .header("accept", "b")
            .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
            .unwrap();
        let mut secret = HeaderValue::from_static("s3cr3t");
        secret.set_sensitive(true);
        request.headers_mut().insert("x-api-secret", secret);
        request.extensions_mut().insert(7u8);
        let copy = Snapshot::take(&request).unwrap().restore().unwrap();
        let again = Snapshot::take(&copy).unwrap().restore().unwrap();
        for copy in [copy, again] {
            assert_eq!(copy.method(), "POST");
            assert_eq!(copy.uri(), request.uri());
            assert_eq!(copy.version(), request.version());
            assert_eq!(copy.headers(), request.headers());
            assert!(copy.headers()["x-api-secret"].is_sensitive());
            let accepts: Vec<_> = copy.headers().get_all("accept").iter().collect();
            assert_eq!(accepts, ["a", "b"]);
            assert_eq!(copy.extensions().get::<u8>(), Some(&7));
            assert_eq!(
                format!("{:?}", copy.body()),
                format!("{:?}", request.body())
            );
        }
        let relative = Request::get("/videos").body(String::new()).unwrap();
        assert_eq!(
            Snapshot::take(&relative).unwrap().restore().unwrap().uri(),
            "/videos"
        );
        let boxed = Request::new(BoxBody::<Bytes, std::convert::Infallible>::new(Full::new(
            Bytes::new(),
        )));
        assert!(Snapshot::take(&boxed).is_none());
        let huge = Request::get("https://api.example/")
            .header("x-huge", "a".repeat(70_000))
            .body(String::new())
            .unwrap();
        assert!(
            Snapshot::take(&huge).is_none(),
            "not replayed rather than truncated"
        );
    }

    proptest! {
        #[test]
        fn the_challenge_parser_never_panics(value in ".{0,300}") {
            let _ = challenges_insufficient_scope(&value);
        }

        #[test]
        fn scope_errors_are_found_among_other_challenges(
            realm in "[a-zA-Z0-9 ,=]{0,40}",
            scheme in "(Basic|Digest|Negotiate)",
        ) {
            let value = format!(r#"{scheme} realm="{realm}", Bearer realm="{realm}", error="insufficient_scope""#);
            prop_assert!(challenges_insufficient_scope(&value));
            let other = format!(r#"{scheme} realm="{realm}", Bearer realm="{realm}", error="invalid_token""#);
            prop_assert!(!challenges_insufficient_scope(&other));
        }
    }
}
