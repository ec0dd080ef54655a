//! Allocations per warm request, counted by a global allocator: ours
//! against a static header, and against the static header plus the copy a
//! replay needs (the fair floor). And the memory a request holds beyond its
//! body, within `replay_buffer`.

#[path = "../benches/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{BearerAuthLayer, TokenManager};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use support::{ours_stack, poll_once, request, static_and_copy_stack, static_stack, Req};
use tower::{Layer, Service, ServiceExt};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated minus bytes freed while measuring, and their peak.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        if MEASURING.with(Cell::get) {
            let size = layout.size() as isize;
            let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if MEASURING.with(Cell::get) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: usize = 100;

/// Allocations per request made while `service` handles prepared requests
/// (building the requests is not counted).
fn per_request<S: Service<Req>>(service: &mut S, make: impl Fn() -> Req) -> f64 {
    poll_once(service, make());
    let requests: Vec<_> = (0..ROUNDS).map(|_| make()).collect();
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|counting| counting.set(true));
    for request in requests {
        poll_once(service, request);
    }
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) as f64 / ROUNDS as f64
}

#[tokio::test(flavor = "current_thread")]
async fn a_warm_request_allocates_no_more_than_the_fair_floor() {
    let double = ApiVideoDouble::start().await.unwrap();
    let (_tokens, mut ours) = ours_stack(&double).await;
    let url = double.url("/videos");
    let typical = || request(&url);
    let fixed = per_request(&mut static_stack(), typical);
    let floor = per_request(&mut static_and_copy_stack(), typical);
    let measured = per_request(&mut ours, typical);
    println!("allocations per request: static {fixed}, static+copy {floor}, ours {measured}");
    assert!(measured <= floor, "ours {measured} > static+copy {floor}");
    assert!(
        measured <= fixed,
        "ours {measured} allocates more than the static header {fixed}"
    );

    // With nothing to copy but the body, the copy is free: ours allocates
    // exactly what the static header does.
    let uri: &'static str = Box::leak(url.into_boxed_str());
    let bare = || {
        let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
        *request.uri_mut() = Uri::from_static(uri);
        request
    };
    let fixed = per_request(&mut static_stack(), bare);
    let measured = per_request(&mut ours, bare);
    println!("bare request: static {fixed}, ours {measured}");
    assert_eq!(measured, fixed);
}

/// The most memory allocated at once on this thread by `future`, beyond
/// what was allocated before it started.
async fn peak_while<T>(future: impl std::future::Future<Output = T>) -> (T, isize) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    MEASURING.with(|measuring| measuring.set(true));
    let out = future.await;
    MEASURING.with(|measuring| measuring.set(false));
    (out, PEAK.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_past_the_replay_buffer_is_not_copied() {
    const BODY: usize = 256 << 20;
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = TokenManager::new(double.source());
    tokens.authorization().await.unwrap();
    // The API: reads the body's length, and answers 401 so that a replay
    // would follow if the body had been kept.
    let api = tower::service_fn(|request: Request<Vec<u8>>| async move {
        let mut response = Response::new(request.body().len());
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        Ok::<_, Infallible>(response)
    });
    let service = BearerAuthLayer::new(tokens).replay_buffer(0).layer(api);
    let mut request = Request::new(vec![7u8; BODY]);
    *request.uri_mut() = double.url("/videos").parse().unwrap();
    let (response, held) = peak_while(service.oneshot(request)).await;
    let response = response.unwrap();
    assert_eq!(*response.body(), BODY, "the body went out whole");
    assert_eq!(response.status(), 401, "sent once, and its 401 handed back");
    println!("held beyond a {BODY}-byte body: {held} bytes");
    assert!(held < 1 << 20, "{held} bytes held beyond the body");
}
