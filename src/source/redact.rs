//! Keeping the secrets a token request carried out of what the server says
//! back: every piece of server text that reaches an error or a log goes
//! through [`Redactor::quote`] first.
//!
//! A hostile or careless endpoint may echo a secret in any field (the
//! `error` code, a description, a problem title), and in any form the
//! request carried it: raw, form-urlencoded, percent-encoded, escaped in
//! JSON, inside the base64 of a `Basic` header, or upper- or lower-cased.
//! Each of those forms is removed wherever it appears, compared without
//! regard to case; if one is still there afterwards (a secret that is part
//! of the marker, say), the whole text is dropped.
// Without a shipped source, only the empty redactor of
// `TokenResponse::from_json` is used.
#![cfg_attr(not(any(feature = "api-video", feature = "oauth2")), allow(dead_code))]

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret in quoted text.
const MARKER: &str = "[redacted]";

/// The longest server text an error quotes, in characters; the rest is cut
/// so a verbose or hostile server cannot flood a log line.
const MAX_QUOTE: usize = 120;

/// The forms in which the secrets of one token request may come back.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    forms: Vec<SecretString>,
}

impl Redactor {
    /// Removes `secret` in each form a request may carry it.
    pub(crate) fn secret(&mut self, secret: &str) {
        let form = form_urlencoded(secret);
        // A form writes a space as `+`, and a literal `+` as `%2B`: every `+`
        // left is a space, which a URL path writes as `%20`.
        let percent = form.replace('+', "%20");
        let json = serde_json::to_string(secret).unwrap_or_default();
        let json = json
            .strip_prefix('"')
            .and_then(|json| json.strip_suffix('"'))
            .unwrap_or_default()
            .to_owned();
        let base64 = [
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
        ];
        // A server may trim what it quotes.
        let trimmed = secret.trim().to_owned();
        for candidate in [secret.to_owned(), trimmed, form, percent, json]
            .into_iter()
            .chain(base64)
        {
            self.add(candidate);
        }
    }

    /// Removes a credential the request sent in a header: the whole value
    /// (`Basic <base64>`) and the credential after its scheme, with and
    /// without base64 padding.
    pub(crate) fn header(&mut self, value: &HeaderValue) {
        let Ok(value) = value.to_str() else {
            return;
        };
        if let Some((_, credential)) = value.trim().split_once(' ') {
            let credential = credential.trim();
            self.add(credential.trim_end_matches('=').to_owned());
            self.add(credential.to_owned());
        }
        self.add(value.to_owned());
    }

    fn add(&mut self, form: String) {
        if !form.is_empty() && !self.forms.iter().any(|f| f.expose_secret() == form) {
            self.forms.push(SecretString::from(form));
        }
    }

    /// Server text fit for an error message: every form of every secret
    /// removed, then cut to a short length. `None` for empty text, or text
    /// that still holds a secret after the removal.
    pub(crate) fn quote(&self, text: &str) -> Option<String> {
        // Trimmed after the removal: a secret may begin or end with a space.
        let clean = self.scrub(text)?.trim().to_owned();
        if clean.is_empty() {
            return None;
        }
        Some(match clean.char_indices().nth(MAX_QUOTE) {
            Some((end, _)) => format!("{}…", &clean[..end]),
            None => clean,
        })
    }

    /// `text` with every form of every secret replaced by a marker, at any
    /// length; `None` if a form survives the replacement.
    pub(crate) fn scrub(&self, text: &str) -> Option<String> {
        let mut ranges = Vec::new();
        let folded = Folded::new(text);
        for form in &self.forms {
            ranges.extend(folded.find_all(&fold(form.expose_secret())));
        }
        if ranges.is_empty() {
            return Some(text.to_owned());
        }
        ranges.sort_unstable();
        let mut clean = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            if end <= at {
                continue;
            }
            if start >= at {
                clean.push_str(&text[at..start]);
                clean.push_str(MARKER);
            }
            at = end;
        }
        clean.push_str(&text[at..]);
        let survived = {
            let folded = Folded::new(&clean);
            self.forms.iter().any(|form| {
                folded
                    .find_all(&fold(form.expose_secret()))
                    .next()
                    .is_some()
            })
        };
        (!survived).then_some(clean)
    }
}

/// Text compared without regard to case: each character is folded (upper-
/// then lower-cased, so `ß` and `SS` meet), and each folded character
/// remembers the byte range of the character it came from.
struct Folded {
    chars: Vec<(char, usize, usize)>,
}

impl Folded {
    fn new(text: &str) -> Self {
        let chars = text
            .char_indices()
            .flat_map(|(at, c)| {
                let end = at + c.len_utf8();
                fold_char(c).map(move |f| (f, at, end))
            })
            .collect();
        Folded { chars }
    }

    /// The byte ranges, in the original text, of each match of `needle`
    /// (which is never empty: a form is never empty, nor is its fold).
    fn find_all<'a>(&'a self, needle: &'a [char]) -> impl Iterator<Item = (usize, usize)> + 'a {
        self.chars
            .windows(needle.len().max(1))
            .filter(move |window| {
                !needle.is_empty() && window.iter().zip(needle).all(|(c, n)| c.0 == *n)
            })
            .map(|window| (window[0].1, window[window.len() - 1].2))
    }
}

/// `application/x-www-form-urlencoded`, as the WHATWG URL standard (and
/// the `form_urlencoded` crate) writes it; by hand, so that the sources of
/// every feature share it without that crate.
fn form_urlencoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xF)]));
            }
        }
    }
    out
}

fn fold_char(c: char) -> impl Iterator<Item = char> {
    c.to_uppercase().flat_map(char::to_lowercase)
}

fn fold(text: &str) -> Vec<char> {
    text.chars().flat_map(fold_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut redactor = Redactor::default();
        for secret in secrets {
            redactor.secret(secret);
        }
        redactor
    }

    #[test]
    fn every_form_of_a_secret_is_removed() {
        let secret = "p@ss wörd+/ß\"";
        let redactor = redactor(&[secret]);
        let form = form_urlencoded(secret);
        assert_eq!(form, "p%40ss+w%C3%B6rd%2B%2F%C3%9F%22");
        for echo in [
            secret.to_owned(),
            secret.to_uppercase(),
            secret.to_lowercase(),
            form.clone(),
            form.to_lowercase(),
            form.replace('+', "%20"),
            r#"p@ss wörd+/ß\""#.to_owned(),
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
        ] {
            let text = format!("bad value <{echo}> here");
            let quoted = redactor.quote(&text).unwrap();
            assert_eq!(quoted, "bad value <[redacted]> here", "{echo}");
        }
    }

    #[test]
    fn the_whole_basic_credential_is_removed() {
        let mut redactor = Redactor::default();
        let value = HeaderValue::from_static("Basic aWQ6c2VjcmV0LXh5eg==");
        redactor.header(&value);
        for echo in [
            "Basic aWQ6c2VjcmV0LXh5eg==",
            "aWQ6c2VjcmV0LXh5eg==",
            "aWQ6c2VjcmV0LXh5eg",
            "BASIC AWQ6C2VJCMV0LXH5EG==",
        ] {
            let quoted = redactor.quote(&format!("got {echo}")).unwrap();
            assert!(!quoted.to_lowercase().contains("awq6"), "{quoted}");
        }
    }

    #[test]
    fn overlapping_and_repeated_echoes_are_all_removed() {
        let redactor = redactor(&["abcabc", "cab"]);
        let quoted = redactor.quote("xabcabcabcabcx cab").unwrap();
        assert!(!quoted.contains("cab"), "{quoted}");
        assert!(!quoted.contains("abcabc"), "{quoted}");
    }

    #[test]
    fn spaces_around_a_secret_do_not_hide_it() {
        let redactor = redactor(&[" s3cret "]);
        assert_eq!(redactor.quote(" s3cret ").as_deref(), Some("[redacted]"));
        // The whole secret goes, its spaces too; the trimmed form when a
        // server trimmed it.
        assert_eq!(
            redactor.quote("x s3cret y").as_deref(),
            Some("x[redacted]y")
        );
        assert_eq!(redactor.quote("xs3crety").as_deref(), Some("x[redacted]y"));
    }

    #[test]
    fn a_secret_inside_the_marker_drops_the_text() {
        let redactor = redactor(&["dact"]);
        assert_eq!(redactor.quote("x dact y"), None);
        assert_eq!(redactor.quote("harmless").as_deref(), Some("harmless"));
    }

    #[test]
    fn quotes_are_short_and_never_empty() {
        let redactor = Redactor::default();
        assert_eq!(redactor.quote("  "), None);
        let long = redactor.quote(&"x".repeat(10_000)).unwrap();
        assert_eq!(long.chars().count(), MAX_QUOTE + 1);
        // A secret is removed before the cut, so no half of one survives.
        let secret = "s".repeat(200);
        let redactor = self::redactor(&[&secret]);
        let quoted = redactor
            .quote(&format!("{}{secret}", "x".repeat(100)))
            .unwrap();
        assert!(!quoted.contains('s'), "{quoted}");
    }
}
