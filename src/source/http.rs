//! What the shipped sources share about talking HTTP with reqwest: reading
//! a capped body, the advertised wait of a 429, and transport failures.

use std::time::Duration;

use http::HeaderMap;

use crate::error::{Error, TokenCall};
use crate::source::MAX_RESPONSE_BYTES;

/// The longest 429 wait we honour; a larger one is cut to this, so a
/// misbehaving endpoint cannot park every caller for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The 429 wait: api.video's `X-RateLimit-Retry-After` first, then the
/// standard `Retry-After`, both in seconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ["x-ratelimit-retry-after", "retry-after"]
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .find(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Reads the body up to [`MAX_RESPONSE_BYTES`]; what is past the cap is
/// never buffered.
pub(crate) async fn read_capped(
    call: TokenCall,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, Result<Error, reqwest::Error>> {
    let too_large = || {
        Ok(Error::InvalidResponse {
            call,
            reason: format!(
                "the response is larger than {} KiB",
                MAX_RESPONSE_BYTES / 1024
            ),
        })
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Err)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failed send or read: a timeout, or an unreachable endpoint with the
/// transport's cause chain.
pub(crate) fn transport_error(call: TokenCall, timeout: Duration, err: &reqwest::Error) -> Error {
    if err.is_timeout() {
        return Error::Timeout {
            call,
            after: timeout,
        };
    }
    // reqwest's own message is generic; the cause chain says what broke.
    // None of it contains the request body, where the secrets are.
    let mut reason = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        reason.push_str(": ");
        reason.push_str(&inner.to_string());
        cause = inner.source();
    }
    Error::Unreachable { call, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_the_rate_limit_header() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("x-ratelimit-retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("x-ratelimit-retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "99999".parse().unwrap());
        headers.remove("x-ratelimit-retry-after");
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
    }
}
