//! The one decision both adapters take about every answer to a request in
//! scope: hand it to the caller, or send the request again, and what
//! happens to the token meanwhile.
//!
//! The adapters only carry it out (tower's poll state machine, reqwest's
//! async loop). A new kind of answer that means "send again" is one more
//! row here.

use http::{HeaderMap, StatusCode};

use super::challenge::{insufficient_scope, use_dpop_nonce};

/// gRPC's UNAUTHENTICATED, its 401.
const GRPC_UNAUTHENTICATED: &[u8] = b"16";

/// What came back for one send of a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer<'a> {
    /// A response's status and headers.
    Head {
        status: StatusCode,
        headers: &'a HeaderMap,
        /// Whether a `grpc-status` among the headers counts (the adapter
        /// carries gRPC calls).
        grpc: bool,
    },
    /// The trailers of a gRPC call, read after its response went to the
    /// caller: too late for a replay.
    #[allow(
        dead_code,
        reason = "only the tower adapter carries gRPC; a reqwest-only build never reads trailers"
    )]
    Trailers(&'a HeaderMap),
}

/// The send an answer is for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    /// The generation of the token it carried.
    pub(crate) generation: u64,
    /// How many replays went before it: 0 for the request's first send.
    pub(crate) replays: u32,
    /// How many replays the request may have in all.
    pub(crate) max_replays: u32,
    /// Whether it carried a DPoP proof (a DPoP-bound token).
    pub(crate) dpop: bool,
    /// Whether the request was already sent again for a DPoP nonce
    /// challenge: a second one is handed to the caller.
    pub(crate) nonce_replayed: bool,
}

impl Sent {
    /// Whether a request that has had `replays` replays may have another:
    /// also whether a copy for one is worth taking.
    #[inline]
    pub(crate) fn may_replay(replays: u32, max_replays: u32) -> bool {
        replays < max_replays
    }
}

/// What happens to the token before the answer is acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenAction {
    /// Nothing: the token stays as it is.
    Keep,
    /// The token of this generation is no good: the manager drops it, if it
    /// is still the current one, and the next request gets a fresh one.
    Invalidate(u64),
}

/// The outcome for one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Hand the response to the caller, once the token action is done.
    Return(TokenAction),
    /// Send the request again, once the token action is done.
    ///
    /// `replay` is the replay's number (1-based): the adapter waits
    /// `Backoff::replay_delay(replay)` before it, and counts it as the
    /// request's replays so far. An adapter that cannot have the request
    /// again (its body is gone) returns the response instead.
    ///
    /// `nonce` marks the answer to a DPoP nonce challenge: the same token
    /// goes again at once with a new proof and the server's new nonce.
    /// `replay` is then the replays so far, unchanged: it does not count
    /// against `max_replays`, and there is one such replay per request
    /// ([`Sent::nonce_replayed`]).
    Replay {
        token: TokenAction,
        replay: u32,
        nonce: bool,
    },
}

impl Decision {
    /// What happens to the token.
    #[inline]
    pub(crate) fn token(self) -> TokenAction {
        match self {
            Decision::Return(token) | Decision::Replay { token, .. } => token,
        }
    }
}

/// Decides about `answer`, the answer to `sent`:
///
/// | answer | decision |
/// |---|---|
/// | to a DPoP send, a 401 (or gRPC's) whose `DPoP` challenge says `use_dpop_nonce` | keep the token and replay once at once (`nonce`), unless a nonce replay went before, then return |
/// | a 401, unless its Bearer challenge says `insufficient_scope` | invalidate `sent.generation` on the first send only, and replay while `max_replays` allows |
/// | a 200 whose headers say `grpc-status: 16`, where gRPC counts | as a 401 |
/// | trailers saying `grpc-status: 16` | invalidate `sent.generation`, return |
/// | anything else (403 included) | return |
#[inline]
pub(crate) fn decide(answer: Answer<'_>, sent: Sent) -> Decision {
    match answer {
        Answer::Head {
            status,
            headers,
            grpc,
        } => {
            let rejected = if status == StatusCode::UNAUTHORIZED {
                // A new token would not have more scope.
                !insufficient_scope(headers)
            } else {
                // gRPC answers every call with a 200, and a header-less one
                // costs no lookup.
                grpc && status == StatusCode::OK
                    && !headers.is_empty()
                    && grpc_unauthenticated(headers)
            };
            if rejected && sent.dpop && use_dpop_nonce(headers) {
                nonce_challenge(sent)
            } else if rejected {
                rejected_send(sent)
            } else {
                Decision::Return(TokenAction::Keep)
            }
        }
        // The call may have had effects: it is not replayed, but the next
        // one gets a fresh token.
        Answer::Trailers(trailers) if grpc_unauthenticated(trailers) => {
            Decision::Return(TokenAction::Invalidate(sent.generation))
        }
        Answer::Trailers(_) => Decision::Return(TokenAction::Keep),
    }
}

/// A send whose token was turned away.
#[cold]
fn rejected_send(sent: Sent) -> Decision {
    // Only the request's first rejection speaks for its token: a later one
    // answers a fresh token, and invalidating that too would turn a
    // permanently failing endpoint into a refresh loop.
    let token = if sent.replays == 0 {
        TokenAction::Invalidate(sent.generation)
    } else {
        TokenAction::Keep
    };
    if Sent::may_replay(sent.replays, sent.max_replays) {
        Decision::Replay {
            token,
            replay: sent.replays + 1,
            nonce: false,
        }
    } else {
        Decision::Return(token)
    }
}

/// A DPoP send answered with a nonce challenge: the token is fine, the
/// proof needs the nonce the answer carried. Replays off (`max_replays`
/// 0) means none for this either.
#[cold]
fn nonce_challenge(sent: Sent) -> Decision {
    if sent.nonce_replayed || sent.max_replays == 0 {
        Decision::Return(TokenAction::Keep)
    } else {
        Decision::Replay {
            token: TokenAction::Keep,
            replay: sent.replays,
            nonce: true,
        }
    }
}

/// Whether `grpc-status: 16` (UNAUTHENTICATED) is among `headers`.
#[inline]
fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == GRPC_UNAUTHENTICATED)
}

#[cfg(test)]
mod tests {
    use super::*;

    use Decision::{Replay, Return};
    use TokenAction::{Invalidate, Keep};

    const G: u64 = 7;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    /// Which answer, over which transport: a plain HTTP adapter (reqwest)
    /// or one that carries gRPC (tower).
    #[derive(Clone, Copy, Debug)]
    enum Seen {
        Http(u16),
        Grpc(u16),
        Trailers,
    }

    /// The answer seen, its headers, the replays before its send and
    /// `max_replays`, and the decision expected.
    type Row = (
        Seen,
        &'static [(&'static str, &'static str)],
        u32,
        u32,
        Decision,
    );

    #[test]
    fn the_decision_table() {
        use Seen::{Grpc, Http, Trailers};
        type Headers = &'static [(&'static str, &'static str)];
        const NONE: Headers = &[];
        const PLAIN: Headers = &[("www-authenticate", r#"Bearer error="invalid_token""#)];
        const SCOPE: Headers = &[("www-authenticate", r#"Bearer error="insufficient_scope""#)];
        const GRPC16: Headers = &[("content-type", "application/grpc"), ("grpc-status", "16")];
        const PROXY16: Headers = &[("grpc-status", "16")];
        const GRPC7: Headers = &[("content-type", "application/grpc"), ("grpc-status", "7")];
        #[rustfmt::skip]
        let table: &[Row] = &[
            // seen, headers, replays so far, max_replays => decision
            (Http(200), NONE, 0, 1, Return(Keep)),
            (Http(403), PLAIN, 0, 1, Return(Keep)),
            (Http(500), NONE, 0, 1, Return(Keep)),
            (Http(401), NONE, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (Http(401), PLAIN, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (Http(401), SCOPE, 0, 1, Return(Keep)),
            // Only the first 401 invalidates; max_replays bounds the rest.
            (Http(401), NONE, 1, 1, Return(Keep)),
            (Http(401), NONE, 1, 3, Replay { token: Keep, replay: 2, nonce: false }),
            (Http(401), NONE, 2, 3, Replay { token: Keep, replay: 3, nonce: false }),
            (Http(401), NONE, 3, 3, Return(Keep)),
            (Http(401), NONE, 0, 0, Return(Invalidate(G))),
            // gRPC's 401 counts only where gRPC does.
            (Http(200), GRPC16, 0, 1, Return(Keep)),
            (Grpc(200), GRPC16, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (Grpc(200), PROXY16, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (Grpc(200), GRPC16, 1, 1, Return(Keep)),
            (Grpc(200), GRPC16, 0, 0, Return(Invalidate(G))),
            (Grpc(200), GRPC7, 0, 1, Return(Keep)),
            (Grpc(200), NONE, 0, 1, Return(Keep)),
            (Grpc(500), GRPC16, 0, 1, Return(Keep)),
            (Grpc(401), GRPC16, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (Grpc(401), SCOPE, 0, 1, Return(Keep)),
            // Trailers come too late for a replay, whatever the count.
            (Trailers, PROXY16, 0, 1, Return(Invalidate(G))),
            (Trailers, PROXY16, 1, 1, Return(Invalidate(G))),
            (Trailers, GRPC7, 0, 1, Return(Keep)),
            (Trailers, NONE, 0, 1, Return(Keep)),
        ];
        for &(seen, pairs, replays, max_replays, expected) in table {
            let map = headers(pairs);
            let answer = match seen {
                Http(status) | Grpc(status) => Answer::Head {
                    status: StatusCode::from_u16(status).unwrap(),
                    headers: &map,
                    grpc: matches!(seen, Grpc(_)),
                },
                Trailers => Answer::Trailers(&map),
            };
            let sent = Sent {
                generation: G,
                replays,
                max_replays,
                dpop: false,
                nonce_replayed: false,
            };
            let decision = decide(answer, sent);
            assert_eq!(
                decision, expected,
                "{seen:?} {pairs:?} after {replays} of {max_replays} replays"
            );
            assert_eq!(decision.token(), expected.token());
        }
    }

    /// The status, whether gRPC counts, the headers, whether the send
    /// carried a proof, whether a nonce replay went before it, the replays
    /// before it and `max_replays`, and the decision expected.
    #[cfg(feature = "dpop")]
    type DpopRow = (
        u16,
        bool,
        &'static [(&'static str, &'static str)],
        bool,
        bool,
        u32,
        u32,
        Decision,
    );

    /// The DPoP rows: the send carried a proof (or not), and a nonce
    /// replay went before it (or not).
    #[cfg(feature = "dpop")]
    #[test]
    fn the_dpop_rows() {
        type Headers = &'static [(&'static str, &'static str)];
        const NONCE: Headers = &[(
            "www-authenticate",
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
        )];
        const INVALID: Headers = &[("www-authenticate", r#"DPoP error="invalid_token""#)];
        const GRPC_NONCE: Headers = &[
            ("grpc-status", "16"),
            ("www-authenticate", r#"DPoP error="use_dpop_nonce""#),
        ];
        const NONE: Headers = &[];
        let nonce_replay = |replay| Replay {
            token: Keep,
            replay,
            nonce: true,
        };
        #[rustfmt::skip]
        let table: &[DpopRow] = &[
            // status, grpc, headers, dpop, nonce replayed, replays, max => decision
            // The same token again at once, whatever the replays so far.
            (401, false, NONCE, true, false, 0, 1, nonce_replay(0)),
            (401, false, NONCE, true, false, 1, 1, nonce_replay(1)),
            (401, false, NONCE, true, false, 2, 3, nonce_replay(2)),
            (200, true, GRPC_NONCE, true, false, 0, 1, nonce_replay(0)),
            // A second challenge for one request is the caller's.
            (401, false, NONCE, true, true, 0, 1, Return(Keep)),
            (401, false, NONCE, true, true, 1, 3, Return(Keep)),
            (200, true, GRPC_NONCE, true, true, 0, 1, Return(Keep)),
            // Replays off: none at all.
            (401, false, NONCE, true, false, 0, 0, Return(Keep)),
            // invalid_token or a plain 401 go the usual way, even after a nonce replay.
            (401, false, INVALID, true, false, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (401, false, NONE, true, true, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            (401, false, INVALID, true, true, 1, 1, Return(Keep)),
            // A bearer send's nonce challenge is a plain 401.
            (401, false, NONCE, false, false, 0, 1, Replay { token: Invalidate(G), replay: 1, nonce: false }),
            // A nonce on a success changes nothing here (the adapters keep it).
            (200, false, &[("dpop-nonce", "n")], true, false, 0, 1, Return(Keep)),
            (403, false, NONCE, true, false, 0, 1, Return(Keep)),
        ];
        for &(status, grpc, pairs, dpop, nonce_replayed, replays, max_replays, expected) in table {
            let map = headers(pairs);
            let answer = Answer::Head {
                status: StatusCode::from_u16(status).unwrap(),
                headers: &map,
                grpc,
            };
            let sent = Sent {
                generation: G,
                replays,
                max_replays,
                dpop,
                nonce_replayed,
            };
            assert_eq!(
                decide(answer, sent),
                expected,
                "{status} {pairs:?} dpop {dpop} nonce replayed {nonce_replayed} after {replays} of {max_replays}"
            );
        }
    }

    #[test]
    fn a_copy_is_worth_taking_while_a_replay_may_follow() {
        assert!(Sent::may_replay(0, 1));
        assert!(!Sent::may_replay(1, 1));
        assert!(!Sent::may_replay(0, 0));
    }
}
