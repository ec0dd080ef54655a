//! The copy of a reqwest request that a 401 replay sends again.

use std::time::Duration;

use http::{Method, Version};

use crate::request::{read_headers, Flat};

/// What a replay of a reqwest request needs, taken before our header goes
/// in, so that the copy never holds a token that may be rejected.
pub(super) enum ReplayCopy {
    /// A request with a body: reqwest's own copy, which shares a buffered
    /// body and refuses a streaming one.
    Cloned(reqwest::Request),
    /// A request without a body: method, version, timeout, and the URL and
    /// headers flattened into one inline buffer (no allocation, where
    /// `try_clone` makes one for the URL and one per header value).
    Bodiless {
        method: Method,
        version: Version,
        timeout: Option<Duration>,
        flat: Flat,
        url_len: usize,
    },
}

impl ReplayCopy {
    /// `None` for a request whose body cannot be sent twice (a stream).
    pub(super) fn take(request: &reqwest::Request) -> Option<Self> {
        if request.body().is_some() {
            return request.try_clone().map(ReplayCopy::Cloned);
        }
        let mut flat = Flat::new();
        flat.push(request.url().as_str().as_bytes());
        let url_len = flat.len();
        flat.push_headers(request.headers())?;
        Some(ReplayCopy::Bodiless {
            method: request.method().clone(),
            version: request.version(),
            timeout: request.timeout().copied(),
            flat,
            url_len,
        })
    }

    /// The request again; `None` only if the copy no longer parses, which
    /// cannot happen for one taken from a valid request.
    pub(super) fn restore(self) -> Option<reqwest::Request> {
        match self {
            ReplayCopy::Cloned(request) => Some(request),
            ReplayCopy::Bodiless {
                method,
                version,
                timeout,
                flat,
                url_len,
            } => {
                let (url, headers) = flat.as_slice().split_at(url_len);
                let url = reqwest::Url::parse(std::str::from_utf8(url).ok()?).ok()?;
                let mut request = reqwest::Request::new(method, url);
                *request.version_mut() = version;
                *request.timeout_mut() = timeout;
                read_headers(headers, request.headers_mut())?;
                Some(request)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_copies_keep_everything_a_replay_needs() {
        let client = reqwest::Client::new();
        let mut request = client
            .delete("https://api.example/videos/v1?force=true")
            .header("x-trace", "42")
            .header("accept", "a")
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        request
            .headers_mut()
            .append("accept", http::HeaderValue::from_static("b"));
        let copy = ReplayCopy::take(&request).unwrap();
        assert!(matches!(copy, ReplayCopy::Bodiless { .. }));
        let again = copy.restore().unwrap();
        assert_eq!(again.method(), request.method());
        assert_eq!(again.url(), request.url());
        assert_eq!(again.headers(), request.headers());
        assert_eq!(again.timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(again.version(), request.version());
    }

    #[test]
    fn requests_with_a_body_use_reqwest_s_copy() {
        let request = reqwest::Client::new()
            .post("https://api.example/videos")
            .body("{}")
            .build()
            .unwrap();
        let copy = ReplayCopy::take(&request).unwrap().restore().unwrap();
        assert_eq!(
            copy.body().and_then(reqwest::Body::as_bytes),
            Some(&b"{}"[..])
        );
    }
}
