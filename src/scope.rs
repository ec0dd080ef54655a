//! Which requests get the token: origins (scheme, host, port) and the
//! scope built from them.

use std::fmt;
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
}

impl Origin {
    /// Parses the origin of an absolute `http` or `https` URL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the URL is malformed, has another
    /// scheme, or has no host.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = reqwest::Url::parse(url)
            .map_err(|err| Error::config(format!("{url:?} is not a valid URL: {err}")))?;
        Self::from_url(&url)
    }

    pub(crate) fn from_url(url: &reqwest::Url) -> Result<Self, Error> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(Error::config(format!(
                    "the URL scheme must be http or https, not {other:?}"
                )))
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| Error::config("the URL has no host"))?
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Error::config("the URL has no port"))?;
        let authority = if port == default_port(https) {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Origin {
            https,
            host,
            port,
            authority,
        })
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
    pub fn matches_url(&self, url: &reqwest::Url) -> bool {
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
    pub(crate) fn is_loopback(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only these origins; shared, as every service clone holds the scope.
    Origins(Arc<[Origin]>),
    /// Every request, whatever its destination.
    Any,
}

impl Scope {
    pub(crate) fn allows_uri(&self, uri: &http::Uri) -> bool {
        match self {
            Scope::Any => true,
            Scope::Origins(origins) => origins.iter().any(|origin| origin.matches_uri(uri)),
        }
    }

    pub(crate) fn allows_url(&self, url: &reqwest::Url) -> bool {
        match self {
            Scope::Any => true,
            Scope::Origins(origins) => origins.iter().any(|origin| origin.matches_url(url)),
        }
    }

    pub(crate) fn add(&mut self, origin: Origin) {
        if let Scope::Origins(origins) = self {
            if !origins.contains(&origin) {
                *origins = origins.iter().cloned().chain([origin]).collect();
            }
        }
    }
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
        let url = reqwest::Url::parse("http://LocalHost/y").unwrap();
        assert!(origin.matches_url(&url));
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
        let mut scope = Scope::Origins(Arc::from([Origin::parse("https://ws.api.video").unwrap()]));
        assert!(scope.allows_uri(&uri("https://ws.api.video/videos")));
        assert!(!scope.allows_uri(&uri("https://evil.example/videos")));
        assert!(!scope.allows_uri(&uri("https://ws.api.video.evil.example/")));
        scope.add(Origin::parse("https://cdn.api.video").unwrap());
        assert!(scope.allows_uri(&uri("https://cdn.api.video/x")));
        assert!(Scope::Any.allows_uri(&uri("https://evil.example/")));
    }

    #[test]
    fn non_http_urls_are_refused() {
        assert!(Origin::parse("ftp://example.com").is_err());
        assert!(Origin::parse("not a url").is_err());
    }
}
