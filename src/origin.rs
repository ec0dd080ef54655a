//! Which requests get the token: origins (scheme, host, port) and the
//! scope built from them. A leaf: the engine, the sources and both adapters
//! import it, and it imports nothing of theirs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, has another
    /// scheme, or has no host.
    pub fn parse(url: &str) -> Result<Self, Error> {
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
        Ok(Self::from_parts(
            https,
            authority.host().to_ascii_lowercase(),
            port,
        ))
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
    /// Only these origins; shared, as every service clone holds the scope.
    Origins(Arc<[Origin]>),
    /// Every request, whatever its destination.
    Any,
}

impl Scope {
    /// The source's origin, if it names one.
    pub(crate) fn of(origin: Option<&Origin>) -> Self {
        match origin {
            Some(origin) => Scope::Origins(Arc::from([origin.clone()])),
            None => Scope::Nowhere(Arc::default()),
        }
    }

    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    #[inline]
    pub(crate) fn allows_uri(&self, uri: &http::Uri) -> bool {
        match self {
            Scope::Any => true,
            // Most layers have one origin: no loop for them.
            Scope::Origins(origins) => match &**origins {
                [origin] => origin.matches_uri(uri),
                origins => origins.iter().any(|origin| origin.matches_uri(uri)),
            },
            Scope::Nowhere(warned) => nowhere(warned),
        }
    }

    #[cfg(feature = "reqwest")]
    pub(crate) fn allows_url(&self, url: &reqwest::Url) -> bool {
        match self {
            Scope::Any => true,
            Scope::Origins(origins) => origins.iter().any(|origin| origin.matches_url(url)),
            Scope::Nowhere(warned) => nowhere(warned),
        }
    }

    pub(crate) fn add(&mut self, origin: Origin) {
        match self {
            Scope::Nowhere(_) => *self = Scope::Origins(Arc::from([origin])),
            Scope::Origins(origins) => {
                if !origins.contains(&origin) {
                    *origins = origins.iter().cloned().chain([origin]).collect();
                }
            }
            Scope::Any => {}
        }
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
}
