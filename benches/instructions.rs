//! Instructions per warm request, for `valgrind --tool=callgrind`, which
//! counts instructions instead of timing them and so reads the same on a
//! noisy machine. `benches/instructions.sh` runs each stack twice (with
//! `N` requests and with none) and prints the difference per request,
//! building the request included; subtract `raw` for a layer's own cost.

mod support;

use bearer_refresh::testing::ApiVideoDouble;
use support::{noop, ours_stack, poll_once, request, static_and_copy_stack, static_stack, Naive};

fn main() {
    let stack = std::env::var("STACK").unwrap_or_else(|_| "ours".into());
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let runtime = support::runtime();
    let _guard = runtime.enter();
    let double = runtime
        .block_on(ApiVideoDouble::start())
        .expect("the double");
    let (tokens, ours) = runtime.block_on(ours_stack(&double));
    let url = double.url("/videos");
    let run = |send: &mut dyn FnMut()| (0..n).for_each(|_| send());
    match stack.as_str() {
        "raw" => {
            let mut service = noop();
            run(&mut || poll_once(&mut service, request(&url)));
        }
        "static" => {
            let mut service = static_stack();
            run(&mut || poll_once(&mut service, request(&url)));
        }
        "static_and_copy" => {
            let mut service = static_and_copy_stack();
            run(&mut || poll_once(&mut service, request(&url)));
        }
        "naive" => {
            let mut service = Naive::new(noop());
            run(&mut || poll_once(&mut service, request(&url)));
        }
        "ours" => {
            let mut service = ours;
            run(&mut || poll_once(&mut service, request(&url)));
        }
        "ours_without_replay" => {
            let mut service = tower::ServiceBuilder::new()
                .layer(bearer_refresh::BearerAuthLayer::new(tokens).max_replays(0))
                .service(noop());
            run(&mut || poll_once(&mut service, request(&url)));
        }
        other => panic!("unknown STACK {other}"),
    }
}
