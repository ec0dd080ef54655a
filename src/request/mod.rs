//! What the tower layer and the reqwest middleware share about a request
//! in scope: the [`decide`] function that turns each answer into "return
//! it" or "send again", with what happens to the token, and the flat copy
//! of a request's URI and headers that a replay parses back.
//!
//! Nothing here knows the token manager: the decision takes plain values,
//! and each adapter carries it out with its own mechanics.

mod challenge;
mod decision;
mod flat;

pub(crate) use decision::{decide, Answer, Decision, Sent, TokenAction};
pub(crate) use flat::{read_headers, Flat};
