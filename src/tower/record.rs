//! Recording a streaming request body as it goes out, so that a replay can
//! send it again: the recorded bytes first, then the part the first send
//! had not read.
//!
//! The original body sits in a state shared by every send of the request.
//! Only the newest send reads it; starting a replay cuts the older one off.
//! Nothing is read ahead: a send pulls frames at the pace its connection
//! takes them, so a long client stream starts at once.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The recording of one request's body, and the handle a replay starts from.
pub(crate) struct Recording<T: Body> {
    shared: Arc<Mutex<Shared<T>>>,
    cut_off: fn() -> Option<T::Error>,
}

impl<T: Body> Recording<T> {
    /// Starts recording `body`, up to `cap` bytes; returns the recording and
    /// the body for the first send.
    pub(crate) fn start(
        body: T,
        cap: usize,
        cut_off: fn() -> Option<T::Error>,
    ) -> (Self, Sender<T>) {
        let shared = Arc::new(Mutex::new(Shared {
            body,
            chunks: Vec::new(),
            len: 0,
            cap,
            trailers: None,
            overflowed: false,
            failed: false,
            done: false,
            epoch: 0,
            waker: None,
        }));
        let first = Sender::new(Arc::clone(&shared), 0, cut_off);
        (Recording { shared, cut_off }, first)
    }

    /// The body for a replay, or `None` when the recording cannot give the
    /// whole body again (past the cap, or the body failed). The previous
    /// send is cut off.
    pub(crate) fn replay(&self) -> Option<Sender<T>> {
        let mut shared = lock(&self.shared);
        if shared.overflowed || shared.failed {
            return None;
        }
        shared.epoch += 1;
        // A send parked on the original body would never hear of the cut:
        // wake it so it ends.
        if let Some(waker) = shared.waker.take() {
            waker.wake();
        }
        let epoch = shared.epoch;
        drop(shared);
        Some(Sender::new(Arc::clone(&self.shared), epoch, self.cut_off))
    }
}

struct Shared<T> {
    body: T,
    /// The data frames read so far, while they fit under `cap`.
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
    trailers: Option<HeaderMap>,
    /// More than `cap` bytes went out: the recording is dropped.
    overflowed: bool,
    failed: bool,
    /// The original body has ended.
    done: bool,
    /// Which send owns the body: the newest one.
    epoch: u32,
    /// The owning send's waker, while it waits on the original body.
    waker: Option<Waker>,
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    // A panic while polling the original body leaves at worst a recording
    // that replays what it had; the panic itself reaches the caller.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The body one send of a recorded request carries.
pub(crate) struct Sender<T: Body> {
    shared: Arc<Mutex<Shared<T>>>,
    epoch: u32,
    /// How many recorded chunks this send has sent, and their bytes.
    next: usize,
    sent: usize,
    trailers_sent: bool,
    cut_off: fn() -> Option<T::Error>,
}

impl<T: Body> Sender<T> {
    fn new(shared: Arc<Mutex<Shared<T>>>, epoch: u32, cut_off: fn() -> Option<T::Error>) -> Self {
        Sender {
            shared,
            epoch,
            next: 0,
            sent: 0,
            trailers_sent: false,
            cut_off,
        }
    }
}

impl<T: Body> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl<T> Body for Sender<T>
where
    T: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = T::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, T::Error>>> {
        let this = self.get_mut();
        let mut guard = lock(&this.shared);
        let shared = &mut *guard;
        if shared.epoch != this.epoch {
            // A replay owns the body now. Ending with an error makes hyper
            // reset this stream instead of finishing a truncated request.
            return Poll::Ready((this.cut_off)().map(Err));
        }
        if !shared.overflowed {
            if let Some(chunk) = shared.chunks.get(this.next) {
                this.next += 1;
                this.sent += chunk.len();
                return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
            }
        }
        if shared.done {
            let trailers = shared.trailers.clone().filter(|_| !this.trailers_sent);
            this.trailers_sent = true;
            return Poll::Ready(trailers.map(|trailers| Ok(Frame::trailers(trailers))));
        }
        let frame = match Pin::new(&mut shared.body).poll_frame(cx) {
            Poll::Pending => {
                shared.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(None) => {
                shared.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => {
                shared.failed = true;
                return Poll::Ready(Some(Err(error)));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            shared.record(data);
            this.next = shared.chunks.len();
            this.sent += data.remaining();
        } else if let Some(trailers) = frame.trailers_ref() {
            // Trailers end a body: a sender that stops polling after them
            // must still leave the recording whole for a replay.
            shared.trailers = Some(trailers.clone());
            shared.done = true;
            this.trailers_sent = true;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        shared.epoch == self.epoch
            && (shared.overflowed || self.next >= shared.chunks.len())
            && (shared.done || shared.body.is_end_stream())
            && (self.trailers_sent || shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let shared = lock(&self.shared);
        let rest = if shared.done {
            SizeHint::with_exact(0)
        } else {
            shared.body.size_hint()
        };
        let recorded = if shared.overflowed {
            0
        } else {
            (shared.len - self.sent.min(shared.len)) as u64
        };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + recorded);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + recorded);
        }
        hint
    }
}

impl<T> Shared<T> {
    fn record(&mut self, data: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.len + data.len() > self.cap {
            self.overflowed = true;
            self.chunks = Vec::new();
            return;
        }
        self.len += data.len();
        self.chunks.push(data.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    type Stream =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    fn stream(chunks: &[&'static [u8]]) -> Stream {
        let frames: Vec<_> = chunks
            .iter()
            .map(|chunk| Ok(Frame::data(Bytes::from_static(chunk))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    async fn read<T: Body<Data = Bytes> + Unpin>(body: &mut Sender<T>, frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..frames {
            match body.frame().await {
                Some(Ok(frame)) => out.extend_from_slice(frame.data_ref().unwrap()),
                _ => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn a_replay_sends_the_trailers_too() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "42".parse().unwrap());
        let frames: Vec<Result<_, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let body = StreamBody::new(futures::stream::iter(frames));
        let (recording, mut first) = Recording::start(body, 64, || None);
        // The first send reads the data and the trailers, then stops, as
        // hyper does.
        assert_eq!(read(&mut first, 1).await, b"ab");
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.trailers_ref(), Some(&trailers));
        let replay = recording.replay().unwrap();
        let collected = replay.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), &b"ab"[..]);
    }

    #[tokio::test]
    async fn a_replay_sends_the_recorded_bytes_then_the_unread_rest() {
        let (recording, mut first) = Recording::start(stream(&[b"ab", b"cd", b"ef"]), 64, || None);
        assert_eq!(read(&mut first, 1).await, b"ab");
        let replay = recording.replay().unwrap();
        assert!(first.frame().await.is_none(), "the first send is cut off");
        assert_eq!(replay.size_hint().lower(), 2);
        assert_eq!(replay.collect().await.unwrap().to_bytes(), "abcdef");
    }

    #[tokio::test]
    async fn a_body_past_the_cap_is_not_replayed() {
        let (recording, first) = Recording::start(stream(&[b"abc", b"def"]), 4, || None);
        assert_eq!(first.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(recording.replay().is_none());
    }

    #[tokio::test]
    async fn a_replay_of_a_replay_sends_everything_again() {
        let (recording, first) = Recording::start(stream(&[b"ab", b"cd"]), 4, || None);
        drop(first);
        let mut second = recording.replay().unwrap();
        assert_eq!(read(&mut second, 1).await, b"ab");
        let third = recording.replay().unwrap();
        assert_eq!(third.collect().await.unwrap().to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn an_empty_body_replays_with_no_room() {
        let (recording, first) = Recording::start(stream(&[]), 0, || None);
        assert!(first.collect().await.unwrap().to_bytes().is_empty());
        let replay = recording.replay().unwrap();
        assert!(replay.is_end_stream());
    }
}
