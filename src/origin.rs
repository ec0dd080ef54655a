//! Which requests get the token: origins (scheme, host, port) and the
//! scope built from them. A leaf: the engine, the sources and both adapters
//! import it, and it imports nothing of theirs.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;

/// A web origin: scheme, host and port, as in RFC 6454.
///
/// The token is attached only to requests whose origin is in scope, so it
/// never leaks to a third party.
///
/// ```
/// use bearer_refresh::Origin;
///
/// let origin = Origin::parse("https://ws.api.video/some/path").unwrap();
/// assert_eq!(origin.to_string(), "https://ws.api.video:443");
/// assert!(origin.matches_uri(&"https://WS.api.video/videos".parse().unwrap()));
/// assert!(!origin.matches_uri(&"http://ws.api.video/videos".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
    /// `host:port`, or the bare host on the scheme's default port: how
    /// requests usually spell the authority, compared whole before parsing.
    authority: String,
    /// `scheme://authority` as a normalised URL starts, for a prefix
    /// comparison before any parsing.
    prefix: String,
}

impl Origin {
    /// Parses the origin of an absolute `http` or `https` URL.
    ///
    /// Only the origin is kept: a path, query or fragment is accepted and
    /// dropped, so `https://api.example/v1` gives the token to every path
    /// of `https://api.example`. The first such URL in a process logs a
    /// warning that says so.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, has another
    /// scheme, or has no host.
    pub fn parse(url: &str) -> Result<Self, Error> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        let (origin, path) = Self::of_url(url)?;
        if path {
            origin.path_dropped(&WARNED);
        }
        Ok(origin)
    }

    #[cold]
    fn path_dropped(&self, warned: &AtomicBool) {
        if !warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "Origin::parse keeps only the origin {self} of a URL with a path: the token goes \
                 to every path there (this is said once)"
            );
        }
    }

    /// The origin of `url`, and whether the URL had more than the origin
    /// (a path other than `/`, a query, a fragment). Says nothing: for the
    /// crate's own callers, whose URLs have paths by design.
    pub(crate) fn of_url(url: &str) -> Result<(Self, bool), Error> {
        let invalid = |why: &str| Error::config(format!("{url:?} is not a valid origin: {why}"));
        let uri: http::Uri = url.parse().map_err(|err| invalid(&format!("{err}")))?;
        let https = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            Some(other) => {
                return Err(Error::config(format!(
                    "the URL scheme must be http or https, not {other:?}"
                )))
            }
            None => return Err(invalid("it is not an absolute URL")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("it has no host"));
        }
        let port = authority.port_u16().unwrap_or(default_port(https));
        let path = !matches!(uri.path(), "" | "/") || uri.query().is_some() || url.contains('#');
        let origin = Self::from_parts(https, authority.host().to_ascii_lowercase(), port);
        Ok((origin, path))
    }

    fn from_parts(https: bool, host: String, port: u16) -> Self {
        let authority = if port == default_port(https) {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let scheme = if https { "https" } else { "http" };
        let prefix = format!("{scheme}://{authority}");
        Origin {
            https,
            host,
            port,
            authority,
            prefix,
        }
    }

    /// Whether `uri` is addressed to this origin. A URI without scheme or
    /// host (a bare path) never matches.
    pub fn matches_uri(&self, uri: &http::Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        if https != self.https {
            return false;
        }
        // The hot path: the authority as it is usually written. Anything
        // else (an explicit default port, userinfo) is parsed below.
        let written = authority.as_str();
        if written == self.authority || written.eq_ignore_ascii_case(&self.authority) {
            return true;
        }
        let port = authority.port_u16().unwrap_or(default_port(https));
        self.port == port && self.host.eq_ignore_ascii_case(authority.host())
    }

    /// Whether `url` is addressed to this origin.
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn matches_url(&self, url: &reqwest::Url) -> bool {
        // A parsed URL is normalised (lower-case host, no default port), so
        // the usual case is one prefix comparison.
        if let Some(rest) = url.as_str().strip_prefix(self.prefix.as_str()) {
            if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
                return true;
            }
        }
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return false,
        };
        self.https == https
            && url.port_or_known_default() == Some(self.port)
            && url
                .host_str()
                .is_some_and(|host| self.host.eq_ignore_ascii_case(host))
    }

    /// Whether the host is a loopback address or `localhost`.
    #[cfg_attr(not(any(feature = "api-video", feature = "oauth2")), allow(dead_code))]
    pub(crate) fn is_loopback(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }

    #[cfg_attr(not(any(feature = "api-video", feature = "oauth2")), allow(dead_code))]
    pub(crate) fn is_https(&self) -> bool {
        self.https
    }
}

fn default_port(https: bool) -> u16 {
    if https {
        443
    } else {
        80
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The set of origins that receive the token.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// No origin at all: the source names none and none was allowed. The
    /// flag, shared by every clone, makes the warning about it a single one.
    Nowhere(Arc<AtomicBool>),
    /// Only these origins; shared, as every service clone holds the scope,
    /// with what was said about the requests turned away.
    Origins(Arc<[Origin]>, Arc<TurnedAway>),
    /// Every request, whatever its destination.
    Any,
}

impl Scope {
    /// The source's origin, if it names one.
    pub(crate) fn of(origin: Option<&Origin>) -> Self {
        match origin {
            Some(origin) => Scope::Origins(Arc::from([origin.clone()]), Arc::default()),
            None => Scope::Nowhere(Arc::default()),
        }
    }

    /// Whether a request to `uri` gets the token. One that does not is
    /// logged: once per origin at DEBUG, and a bare path once at WARN.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    #[inline]
    pub(crate) fn allows_uri(&self, uri: &http::Uri) -> bool {
        match self {
            Scope::Any => true,
            // Most layers have one origin: no loop for them.
            Scope::Origins(origins, turned_away) => {
                let allowed = match &**origins {
                    [origin] => origin.matches_uri(uri),
                    origins => origins.iter().any(|origin| origin.matches_uri(uri)),
                };
                allowed || turned_away.uri(uri, origins)
            }
            Scope::Nowhere(warned) => nowhere(warned),
        }
    }

    /// Whether a request to `url` gets the token; one that does not is
    /// logged once per origin at DEBUG.
    #[cfg(feature = "reqwest")]
    pub(crate) fn allows_url(&self, url: &reqwest::Url) -> bool {
        match self {
            Scope::Any => true,
            Scope::Origins(origins, turned_away) => {
                origins.iter().any(|origin| origin.matches_url(url))
                    || turned_away.url(url, origins)
            }
            Scope::Nowhere(warned) => nowhere(warned),
        }
    }

    /// Whether `url` is in scope, without a word (for a response's URL).
    #[cfg(feature = "reqwest")]
    pub(crate) fn includes_url(&self, url: &reqwest::Url) -> bool {
        match self {
            Scope::Any => true,
            Scope::Origins(origins, _) => origins.iter().any(|origin| origin.matches_url(url)),
            Scope::Nowhere(_) => false,
        }
    }

    pub(crate) fn add(&mut self, origin: Origin) {
        match self {
            Scope::Nowhere(_) => *self = Scope::of(Some(&origin)),
            Scope::Origins(origins, _) => {
                if !origins.contains(&origin) {
                    *origins = origins.iter().cloned().chain([origin]).collect();
                }
            }
            Scope::Any => {}
        }
    }
}

/// How many origins turned away are remembered, so that each is logged
/// once: a client that calls ever new hosts cannot grow this set.
const REMEMBERED: usize = 64;

/// What a scope has said about the requests it turned away.
#[derive(Debug, Default)]
pub(crate) struct TurnedAway {
    bare_path: AtomicBool,
    origins: Mutex<HashSet<String>>,
}

impl TurnedAway {
    /// Logs a request to `uri` that gets no token; always `false`.
    #[cold]
    fn uri(&self, uri: &http::Uri, scope: &[Origin]) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            if !self.bare_path.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "a request with a bare path (no scheme, no host) gets no token: the token goes \
                     only to {}. Give the client its origin (tonic: \
                     `Client::with_origin(channel, origin)`), or call allow_any_origin() if the \
                     inner service can reach nothing but the API (this is said once)",
                    Listed(scope)
                );
            }
            return false;
        };
        if tracing::enabled!(tracing::Level::DEBUG) {
            let port = authority.port_u16();
            self.debug(scheme, authority.host(), port, scope);
        }
        false
    }

    /// Logs a request to `url` that gets no token; always `false`.
    #[cfg(feature = "reqwest")]
    #[cold]
    fn url(&self, url: &reqwest::Url, scope: &[Origin]) -> bool {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let host = url.host_str().unwrap_or_default();
            self.debug(url.scheme(), host, url.port(), scope);
        }
        false
    }

    /// Once per origin: the userinfo a URL may carry is never logged.
    fn debug(&self, scheme: &str, host: &str, port: Option<u16>, scope: &[Origin]) {
        let origin = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }
        .to_ascii_lowercase();
        let mut seen = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= REMEMBERED || !seen.insert(origin.clone()) {
            return;
        }
        drop(seen);
        tracing::debug!(
            "requests to {origin} get no token: not in the scope ({}); allow_origin(..) sends \
             the token there too (this is said once per origin)",
            Listed(scope)
        );
    }
}

/// Origins, comma-separated.
struct Listed<'a>(&'a [Origin]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, origin) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{origin}")?;
        }
        Ok(())
    }
}

/// A layer or middleware with no origin attaches the token to nothing. That
/// is safe, but almost always a forgotten `allow_origin`: say so, once.
#[cold]
fn nowhere(warned: &AtomicBool) -> bool {
    if !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the token is attached to no request: its source names no API origin (OAuth2 sources \
             don't) and none was allowed; call allow_origin(..) or allow_any_origin() on the \
             layer or middleware"
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    #[test]
    fn default_ports_and_case_are_normalised() {
        let origin = Origin::parse("http://LOCALHOST:80/").unwrap();
        assert!(origin.matches_uri(&uri("http://localhost/x")));
        assert!(origin.matches_uri(&uri("http://localhost:80/x")));
        assert!(origin.matches_uri(&uri("http://user@localhost/x")));
        assert!(!origin.matches_uri(&uri("http://localhost:8080/x")));
        assert!(!origin.matches_uri(&uri("http://localhost:80@evil.example/x")));
        assert!(!origin.matches_uri(&uri("https://localhost/x")));
        let custom = Origin::parse("https://api.example:8443").unwrap();
        assert!(custom.matches_uri(&uri("https://API.example:8443/x")));
        assert!(!custom.matches_uri(&uri("https://api.example/x")));
        assert!(!origin.matches_uri(&uri("/x")));
        #[cfg(feature = "reqwest")]
        {
            let url = reqwest::Url::parse("http://LocalHost/y").unwrap();
            assert!(origin.matches_url(&url));
            let other = reqwest::Url::parse("http://localhost.evil/y").unwrap();
            assert!(!origin.matches_url(&other));
            let port = reqwest::Url::parse("http://localhost:8080/y").unwrap();
            assert!(!origin.matches_url(&port));
        }
    }

    #[test]
    fn ipv6_hosts_match() {
        let origin = Origin::parse("http://[::1]:8080").unwrap();
        assert!(origin.is_loopback());
        assert!(origin.matches_uri(&uri("http://[::1]:8080/videos")));
        assert!(!origin.matches_uri(&uri("http://[::2]:8080/videos")));
    }

    #[test]
    fn scope_filters_other_hosts() {
        let mut scope = Scope::of(Some(&Origin::parse("https://ws.api.video").unwrap()));
        assert!(scope.allows_uri(&uri("https://ws.api.video/videos")));
        assert!(!scope.allows_uri(&uri("https://evil.example/videos")));
        assert!(!scope.allows_uri(&uri("https://ws.api.video.evil.example/")));
        scope.add(Origin::parse("https://cdn.api.video").unwrap());
        assert!(scope.allows_uri(&uri("https://cdn.api.video/x")));
        assert!(Scope::Any.allows_uri(&uri("https://evil.example/")));
    }

    #[test]
    fn no_origin_allows_nothing_and_warns_once() {
        let scope = Scope::of(None);
        let Scope::Nowhere(warned) = &scope else {
            panic!("a source without origin gives an empty scope");
        };
        assert!(!warned.load(Ordering::Relaxed));
        assert!(!scope.allows_uri(&uri("https://api.example/videos")));
        assert!(
            warned.load(Ordering::Relaxed),
            "warned on the first request"
        );
        assert!(!scope.clone().allows_uri(&uri("https://api.example/videos")));
        let mut allowed = scope;
        allowed.add(Origin::parse("https://api.example").unwrap());
        assert!(allowed.allows_uri(&uri("https://api.example/videos")));
    }

    #[test]
    fn non_http_urls_are_refused() {
        assert!(Origin::parse("ftp://example.com").is_err());
        assert!(Origin::parse("not a url").is_err());
    }

    /// Runs `f` under a subscriber at DEBUG; returns what it logged.
    fn logged(f: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_origin_turned_away_is_logged_once_and_bare_paths_warn() {
        let mut scope = Scope::of(Some(&Origin::parse("http://127.0.0.1:8080").unwrap()));
        scope.add(Origin::parse("https://cdn.example").unwrap());
        let out = logged(|| {
            for _ in 0..3 {
                assert!(!scope.allows_uri(&uri("http://localhost:8080/videos")));
                assert!(!scope.allows_uri(&uri("http://user:s3cr3t@evil.example/x")));
                assert!(!scope.allows_uri(&uri("/pkg.Service/Method")));
            }
            assert!(scope.allows_uri(&uri("http://127.0.0.1:8080/videos")));
        });
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].contains("DEBUG"), "{out}");
        assert!(
            lines[0].contains("http://localhost:8080 get no token"),
            "{out}"
        );
        assert!(
            lines[0].contains("http://127.0.0.1:8080, https://cdn.example:443"),
            "names the scope: {out}"
        );
        assert!(
            lines[1].contains("http://evil.example get no token"),
            "{out}"
        );
        assert!(!out.contains("s3cr3t"), "no userinfo: {out}");
        assert!(
            lines[2].contains("WARN") && lines[2].contains("with_origin"),
            "{out}"
        );
    }

    #[test]
    fn the_origins_remembered_are_bounded() {
        let scope = Scope::of(Some(&Origin::parse("https://api.example").unwrap()));
        let out = logged(|| {
            for i in 0..2 * REMEMBERED {
                assert!(!scope.allows_uri(&uri(&format!("https://host{i}.example/"))));
            }
        });
        assert_eq!(out.lines().count(), REMEMBERED, "{out}");
        let Scope::Origins(_, turned_away) = &scope else {
            panic!("a scope of origins");
        };
        assert_eq!(turned_away.origins.lock().unwrap().len(), REMEMBERED);
    }

    #[test]
    fn parse_keeps_the_origin_of_a_url_with_a_path() {
        let (origin, path) = Origin::of_url("https://api.example/v1").unwrap();
        assert_eq!(origin.to_string(), "https://api.example:443");
        assert!(path);
        assert!(!Origin::of_url("https://api.example/").unwrap().1);
        assert!(!Origin::of_url("https://api.example").unwrap().1);
        assert!(Origin::of_url("https://api.example?x=1").unwrap().1);
        // Said once: `parse` keeps its flag for the process.
        let warned = AtomicBool::new(false);
        let out = logged(|| {
            for _ in 0..2 {
                origin.path_dropped(&warned);
            }
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains("WARN") && out.contains("keeps only the origin https://api.example:443")
        );
    }
}
