//! The settings a layer gives each of its services.

use super::body::Bodies;
use crate::engine::TokenManager;
use crate::origin::Scope;

/// What every request through a [`BearerAuth`](super::BearerAuth) gets.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) tokens: TokenManager,
    pub(crate) scope: Scope,
    pub(crate) max_replays: u32,
    /// How bodies are kept for a replay.
    pub(crate) bodies: Bodies,
}

impl Policy {
    /// The token goes to the source's origin only, with one replay.
    pub(crate) fn new(tokens: TokenManager) -> Self {
        let scope = Scope::of(tokens.origin());
        Policy {
            tokens,
            scope,
            max_replays: 1,
            bodies: Bodies::new(),
        }
    }
}
