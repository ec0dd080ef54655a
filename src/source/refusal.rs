//! [`Refusal`]: a token endpoint's answer that is neither a token nor a
//! rate limit, handed to the source that maps it to an [`Error`].
//!
//! [`Error`]: crate::Error

use http::StatusCode;
use serde_json::{Map, Value};

use super::redact::Redactor;
use crate::error::TokenCall;

/// A refused token call: its status, and its body's text fields, which
/// come out only with the request's secrets removed.
pub(crate) struct Refusal {
    call: TokenCall,
    status: StatusCode,
    fields: Map<String, Value>,
    redactor: Redactor,
}

impl Refusal {
    /// The refusal of `call` with `status` and `body`; `redactor` holds the
    /// secrets the request carried.
    pub(crate) fn new(
        call: TokenCall,
        status: StatusCode,
        body: &[u8],
        redactor: Redactor,
    ) -> Self {
        // Any body that is not a JSON object has no fields: the status
        // still decides.
        let fields = serde_json::from_slice(body).unwrap_or_default();
        Refusal {
            call,
            status,
            fields,
            redactor,
        }
    }

    /// The call that was refused.
    pub(crate) fn call(&self) -> TokenCall {
        self.call
    }

    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The string field `name` of a JSON object body (an OAuth2 `error`, an
    /// api.video `title`), fit to quote: without any form of the request's
    /// secrets, cut short, and `None` when missing or empty.
    pub(crate) fn field(&self, name: &str) -> Option<String> {
        self.redactor.quote(self.fields.get(name)?.as_str()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_leniently_and_quoted_without_secrets() {
        let mut redactor = Redactor::default();
        redactor.secret("hunter2");
        let refusal = Refusal::new(
            TokenCall::Login,
            StatusCode::BAD_REQUEST,
            br#"{"title":"key HUNTER2 is wrong","status":400,"detail":""}"#,
            redactor.clone(),
        );
        assert_eq!(
            refusal.field("title").as_deref(),
            Some("key [redacted] is wrong")
        );
        assert_eq!(refusal.field("status"), None);
        assert_eq!(refusal.field("detail"), None);
        assert_eq!(refusal.field("missing"), None);
        for body in [&b"<html>"[..], b"[1]", b"", b"\"text\""] {
            let refusal = Refusal::new(TokenCall::Login, StatusCode::OK, body, redactor.clone());
            assert_eq!(refusal.field("title"), None);
        }
    }
}
