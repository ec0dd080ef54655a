//! Which request bodies a replay can send again, and how, for any body type
//! and with no trait for users to implement.
//!
//! The body type is known only as a type parameter, so the choice is made
//! by comparing `TypeId`s, which the compiler folds away for each type:
//! - bodies that share their bytes (`Full<Bytes>`, `Empty<Bytes>`, `Bytes`)
//!   are cloned;
//! - bodies that own theirs (`Vec<u8>`, `String`) are cloned when they fit
//!   in the replay buffer; a longer one is sent once, as a stream past the
//!   cap is;
//! - a type with a hook ([`BearerAuthLayer::clone_body`](crate::tower::BearerAuthLayer::clone_body))
//!   is copied by it;
//! - type-erased streaming bodies (`BoxBody`, `UnsyncBoxBody`, and axum's
//!   and tonic's bodies under their features) are recorded as they go out
//!   ([`record`](super::record)) and rebuilt around the recording, so the
//!   inner service still gets its own body type;
//! - anything else is sent once.

use std::any::{Any, TypeId};
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{Empty, Full};

use super::record::{Recording, Sender};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The default cap on a recorded body.
pub(crate) const DEFAULT_REPLAY_BUFFER: usize = 64 * 1024;

/// How request bodies are kept for a replay.
#[derive(Clone)]
pub(crate) struct Bodies {
    pub(crate) replay_buffer: usize,
    hooks: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

/// A user's copy function for the body type `B`.
type Hook<B> = Box<dyn Fn(&B) -> Option<B> + Send + Sync>;

impl Bodies {
    pub(crate) fn new() -> Self {
        Bodies {
            replay_buffer: DEFAULT_REPLAY_BUFFER,
            hooks: Vec::new(),
        }
    }

    /// Copies bodies of type `B` with `clone`, in place of a previous hook.
    pub(crate) fn add_hook<B: 'static>(
        &mut self,
        clone: impl Fn(&B) -> Option<B> + Send + Sync + 'static,
    ) {
        let hook: Hook<B> = Box::new(clone);
        self.hooks.retain(|(id, _)| *id != TypeId::of::<B>());
        self.hooks.push((TypeId::of::<B>(), Arc::new(hook)));
    }

    fn hook<B: 'static>(&self) -> Option<&Hook<B>> {
        self.hooks
            .iter()
            .find(|(id, _)| *id == TypeId::of::<B>())
            .and_then(|(_, hook)| hook.downcast_ref::<Hook<B>>())
    }
}

impl fmt::Debug for Bodies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bodies")
            .field("replay_buffer", &self.replay_buffer)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

/// What a replay sends as its body.
pub(crate) enum BodyCopy<B> {
    /// A copy, copied again for each replay.
    Copied {
        body: B,
        copy: fn(&B, &Bodies) -> Option<B>,
    },
    /// A recording: each call starts a replay of it.
    Recorded(Box<dyn Fn() -> Option<B> + Send + Sync>),
}

impl<B> BodyCopy<B> {
    /// A body for the next replay, or `None` when there is none (the
    /// recording went past its cap).
    pub(crate) fn next(&self, bodies: &Bodies) -> Option<B> {
        match self {
            BodyCopy::Copied { body, copy } => copy(body, bodies),
            BodyCopy::Recorded(replay) => replay(),
        }
    }
}

/// Keeps what a replay of `body` needs. A recorded body is swapped for one
/// of its own type that records as it streams; any other is left as is.
pub(crate) fn keep_body<B: 'static>(body: &mut B, bodies: &Bodies) -> Option<BodyCopy<B>> {
    if owned_len(body).is_some_and(|len| len > bodies.replay_buffer) {
        return None;
    }
    if let Some(copy) = in_memory::<B>() {
        return copy(body, bodies).map(|body| BodyCopy::Copied { body, copy });
    }
    if !bodies.hooks.is_empty() && bodies.hook::<B>().is_some() {
        let copy = with_hook::<B>;
        return copy(body, bodies).map(|body| BodyCopy::Copied { body, copy });
    }
    record(body, bodies.replay_buffer)
}

fn in_memory<B: 'static>() -> Option<fn(&B, &Bodies) -> Option<B>> {
    macro_rules! clone_if {
        ($($ty:ty),*) => {$(
            if is::<B, $ty>() {
                return Some(clone_as::<$ty, B>);
            }
        )*};
    }
    clone_if!(Full<Bytes>, Empty<Bytes>, Bytes, Vec<u8>, String);
    None
}

/// The length of a body that owns its bytes (`Vec<u8>`, `String`): a copy
/// doubles them, so one is taken only within the replay buffer. Kept as the
/// body's own type, as the shared ones are: a third kind of copy would
/// widen every request's snapshot (measured: about 47 more instructions
/// a request, in `benches/hot_path.sh`).
fn owned_len<B: 'static>(body: &B) -> Option<usize> {
    let body = body as &dyn Any;
    if let Some(vec) = body.downcast_ref::<Vec<u8>>() {
        return Some(vec.len());
    }
    body.downcast_ref::<String>().map(String::len)
}

fn clone_as<T: Clone + 'static, B: 'static>(body: &B, _: &Bodies) -> Option<B> {
    let body = (body as &dyn Any).downcast_ref::<T>()?;
    cast::<T, B>(body.clone()).ok()
}

fn with_hook<B: 'static>(body: &B, bodies: &Bodies) -> Option<B> {
    bodies.hook::<B>()?(body)
}

fn is<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

/// `value` as a `U`, when `T` and `U` are the same type.
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    let cast = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take);
    match cast {
        Some(value) => Ok(value),
        // A failed downcast left the slot as it was.
        None => Err(slot.unwrap_or_else(|| unreachable!("the slot is only emptied on success"))),
    }
}

/// Why a first send's body ended: a replay took it over.
#[derive(Debug)]
struct CutOff;

impl fmt::Display for CutOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body cut off: a replay after a 401 sends it again")
    }
}

impl std::error::Error for CutOff {}

/// Ends a cut-off body with an error of its own type where one can be
/// made. `Infallible` and hyper's error cannot: such a body just ends, and
/// a body with a known length then fails in hyper for being short.
trait CutOffError: Sized {
    fn cut_off() -> Option<Self>;
}

impl CutOffError for BoxError {
    fn cut_off() -> Option<Self> {
        Some(Box::new(CutOff))
    }
}

impl CutOffError for Infallible {
    fn cut_off() -> Option<Self> {
        None
    }
}

impl CutOffError for hyper::Error {
    fn cut_off() -> Option<Self> {
        None
    }
}

impl CutOffError for std::io::Error {
    fn cut_off() -> Option<Self> {
        Some(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            CutOff,
        ))
    }
}

#[cfg(feature = "tonic")]
impl CutOffError for tonic::Status {
    fn cut_off() -> Option<Self> {
        Some(tonic::Status::cancelled(CutOff.to_string()))
    }
}

#[cfg(feature = "axum")]
impl CutOffError for axum_core::Error {
    fn cut_off() -> Option<Self> {
        Some(axum_core::Error::new(CutOff))
    }
}

/// Calls `$then!(type, wrap)` for each body type that can be recorded.
macro_rules! recordable_types {
    ($then:ident) => {
        recordable_types!(@errors $then;
            Box<dyn ::std::error::Error + Send + Sync>,
            ::std::convert::Infallible,
            ::hyper::Error,
            ::std::io::Error
        );
        #[cfg(feature = "tonic")]
        recordable_types!(@errors $then; ::tonic::Status);
        #[cfg(feature = "axum")]
        recordable_types!(@errors $then; ::axum_core::Error);
        #[cfg(feature = "tonic")]
        $then!(::tonic::body::Body, ::tonic::body::Body::new);
        #[cfg(feature = "axum")]
        $then!(::axum_core::body::Body, ::axum_core::body::Body::new);
    };
    (@errors $then:ident; $($error:ty),*) => {$(
        $then!(
            ::http_body_util::combinators::BoxBody<::bytes::Bytes, $error>,
            ::http_body_util::combinators::BoxBody::new
        );
        $then!(
            ::http_body_util::combinators::UnsyncBoxBody<::bytes::Bytes, $error>,
            ::http_body_util::combinators::UnsyncBoxBody::new
        );
    )*};
}

pub(crate) use recordable_types;

fn record<B: 'static>(body: &mut B, cap: usize) -> Option<BodyCopy<B>> {
    macro_rules! try_type {
        ($ty:ty, $wrap:expr) => {
            if let Some(typed) = (&mut *body as &mut dyn Any).downcast_mut::<$ty>() {
                return record_as::<$ty, B>(typed, cap, $wrap);
            }
        };
    }
    recordable_types!(try_type);
    None
}

/// Records `body` (a `B` known to be a `T`) in place: it becomes a `T`
/// rebuilt by `wrap` around the recording.
fn record_as<T, B>(body: &mut T, cap: usize, wrap: fn(Sender<T>) -> T) -> Option<BodyCopy<B>>
where
    T: Body<Data = Bytes, Error: CutOffError> + Default + Unpin + Send + 'static,
    B: 'static,
{
    // With no room, only a body known to be empty can be replayed.
    if cap == 0 && body.size_hint().exact() != Some(0) {
        return None;
    }
    let (recording, first) = Recording::start(std::mem::take(body), cap, T::Error::cut_off);
    *body = wrap(first);
    let replay = move || {
        let sender = recording.replay()?;
        cast::<T, B>(wrap(sender)).ok()
    };
    Some(BodyCopy::Recorded(Box::new(replay)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
    use http_body_util::BodyExt;

    fn kept<B: 'static>(mut body: B, bodies: &Bodies) -> (B, Option<BodyCopy<B>>) {
        let kept = keep_body(&mut body, bodies);
        (body, kept)
    }

    #[test]
    fn in_memory_bodies_are_copied_for_every_replay() {
        let bodies = Bodies::new();
        let (_, copy) = kept(Full::new(Bytes::from_static(b"{}")), &bodies);
        let copy = copy.unwrap();
        for _ in 0..2 {
            assert_eq!(
                format!("{:?}", copy.next(&bodies).unwrap()),
                r#"Full { data: Some(b"{}") }"#
            );
        }
        assert_eq!(
            kept(String::from("s"), &bodies)
                .1
                .unwrap()
                .next(&bodies)
                .unwrap(),
            "s"
        );
        assert_eq!(
            kept(vec![1u8], &bodies).1.unwrap().next(&bodies).unwrap(),
            [1]
        );
        assert_eq!(
            kept(Bytes::from_static(b"b"), &bodies)
                .1
                .unwrap()
                .next(&bodies)
                .unwrap(),
            "b"
        );
        assert!(kept(Empty::<Bytes>::new(), &bodies).1.is_some());
    }

    #[test]
    fn owned_bodies_are_kept_within_the_cap_only() {
        let mut bodies = Bodies::new();
        bodies.replay_buffer = 4;
        let (first, copy) = kept(vec![1u8, 2, 3, 4], &bodies);
        assert_eq!(first, [1, 2, 3, 4], "the first send keeps its body");
        let copy = copy.unwrap();
        for _ in 0..2 {
            assert_eq!(copy.next(&bodies).unwrap(), [1, 2, 3, 4]);
        }
        assert_eq!(
            kept(String::from("a€"), &bodies)
                .1
                .unwrap()
                .next(&bodies)
                .unwrap(),
            "a€"
        );
        let (first, copy) = kept(vec![0u8; 5], &bodies);
        assert_eq!(first.len(), 5);
        assert!(copy.is_none(), "past the cap: sent once");
        assert!(kept(String::from("abcde"), &bodies).1.is_none());
        bodies.replay_buffer = 0;
        assert!(kept(Vec::<u8>::new(), &bodies).1.is_some(), "empty fits");
        assert!(kept(vec![1u8], &bodies).1.is_none());
    }

    #[test]
    fn unknown_bodies_are_sent_once_unless_a_hook_copies_them() {
        #[derive(Debug, PartialEq)]
        struct Mine(u8);
        let mut bodies = Bodies::new();
        assert!(kept(Mine(1), &bodies).1.is_none());
        // Each copy is one more than its original: one copy when the body is
        // kept, one from that copy for the replay.
        bodies.add_hook(|body: &Mine| Some(Mine(body.0 + 1)));
        let (body, copy) = kept(Mine(1), &bodies);
        assert_eq!(body, Mine(1));
        assert_eq!(copy.unwrap().next(&bodies), Some(Mine(3)));
    }

    #[tokio::test]
    async fn type_erased_bodies_are_recorded_and_rebuilt_in_their_own_type() {
        let bodies = Bodies::new();
        let body = BoxBody::<Bytes, BoxError>::new(
            Full::new(Bytes::from_static(b"boxed")).map_err(Into::into),
        );
        let (first, copy) = kept(body, &bodies);
        assert_eq!(first.collect().await.unwrap().to_bytes(), "boxed");
        let replay = copy.unwrap().next(&bodies).unwrap();
        assert_eq!(replay.collect().await.unwrap().to_bytes(), "boxed");

        let body = UnsyncBoxBody::<Bytes, Infallible>::new(Full::new(Bytes::from_static(b"u")));
        let (_, copy) = kept(body, &bodies);
        assert!(copy.is_some());
        // An error type the crate does not know: sent once.
        let body =
            BoxBody::<Bytes, std::fmt::Error>::new(Empty::new().map_err(|never| match never {}));
        assert!(kept(body, &bodies).1.is_none());
    }

    #[tokio::test]
    async fn with_no_room_only_bodies_known_empty_are_kept() {
        let mut bodies = Bodies::new();
        bodies.replay_buffer = 0;
        let full = BoxBody::<Bytes, Infallible>::new(Full::new(Bytes::from_static(b"x")));
        assert!(kept(full, &bodies).1.is_none());
        let empty = BoxBody::<Bytes, Infallible>::new(Empty::new());
        let (first, copy) = kept(empty, &bodies);
        assert!(first.collect().await.unwrap().to_bytes().is_empty());
        assert!(copy.unwrap().next(&bodies).unwrap().is_end_stream());
    }

    #[tokio::test]
    async fn a_replay_cuts_the_first_send_off_with_an_error() {
        let bodies = Bodies::new();
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(1);
        let stream =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let (mut first, copy) = kept(BoxBody::new(stream), &bodies);
        sender
            .send(Ok(http_body::Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        assert!(first.frame().await.unwrap().is_ok());
        let replay = copy.unwrap().next(&bodies).unwrap();
        let error = first.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("cut off"), "{error}");
        drop(sender);
        assert_eq!(replay.collect().await.unwrap().to_bytes(), "a");
    }
}
