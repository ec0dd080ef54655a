//! The cost of a DPoP request: one warm request through the tower layer
//! with a DPoP-bound token (a fresh ES256 proof, its claims, `ath`, the
//! nonce lookup, the headers), against aws-lc-rs's bare ES256 signature of
//! the same signing input, in the same run. The bar: at most 1.3 x.
//!
//! `cargo bench --bench dpop --features dpop` runs criterion, then times
//! both again, interleaved, and prints the ratio. With `STACK=layer` or
//! `STACK=sign` and `N=<requests>` it only runs that many, for
//! `valgrind --tool=callgrind` (instructions per request: the count with
//! `N` minus the count with none, over `N`, as in benches/instructions.sh).

mod support;

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::Engine as _;
use bearer_refresh::dpop::DpopKey;
use bearer_refresh::{BearerAuthLayer, BoxFuture, Error, Origin, TokenManager};
use bearer_refresh::{TokenResponse, TokenSource, TokenType};
use criterion::{criterion_group, BatchSize, Criterion};
use secrecy::{ExposeSecret, SecretString};
use support::{noop, poll_once, request, Req};

const URL: &str = "https://api.example/v1/videos";

/// Hands out one DPoP-bound token for an hour.
struct Bound(DpopKey);

impl TokenSource for Bound {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(async {
            Ok(TokenResponse::new("x".repeat(600))
                .with_expires_in(Duration::from_secs(3600))
                .with_token_type(TokenType::Dpop))
        })
    }

    fn refresh<'a>(&'a self, _: &'a SecretString) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        self.login()
    }

    fn origin(&self) -> Option<Origin> {
        Origin::parse(URL).ok()
    }

    fn dpop_key(&self) -> Option<&DpopKey> {
        Some(&self.0)
    }
}

/// The layer with a warm DPoP-bound token, and the bare signer of the same
/// key with the signing input of one of the layer's proofs.
struct Stacks {
    layer: Box<dyn FnMut(Req) + Send>,
    sign: Box<dyn FnMut() + Send>,
    _runtime: tokio::runtime::Runtime,
}

fn stacks() -> Stacks {
    let runtime = support::runtime();
    let key = DpopKey::generate();
    let tokens = TokenManager::new(Bound(key.clone()));
    let auth = runtime.block_on(tokens.authorize()).expect("a token");
    assert!(auth.is_dpop());
    let proof = auth.dpop_proof("POST", URL).expect("a proof");
    let proof = proof.to_str().expect("ascii");
    let (signed, _) = proof.rsplit_once('.').expect("a JWS");
    let input = signed.as_bytes().to_vec();
    let pem = key.to_pem();
    let der: String = pem
        .expose_secret()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .expect("a PEM body");
    let signer =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).expect("the same key");
    let rng = SystemRandom::new();
    let mut service = {
        let _guard = runtime.enter();
        tower::ServiceBuilder::new()
            .layer(BearerAuthLayer::new(tokens))
            .service(noop())
    };
    let layer = Box::new(move |request: Req| poll_once(&mut service, request));
    let sign = Box::new(move || {
        let signature = signer.sign(&rng, &input).expect("a signature");
        std::hint::black_box(signature);
    });
    Stacks {
        layer,
        sign,
        _runtime: runtime,
    }
}

fn bench(c: &mut Criterion) {
    let mut stacks = stacks();
    let mut group = c.benchmark_group("dpop");
    group.bench_function("request through the layer", |b| {
        b.iter_batched(|| request(URL), &mut stacks.layer, BatchSize::SmallInput)
    });
    group.bench_function("bare ES256 signature", |b| b.iter(&mut stacks.sign));
    group.finish();
    ratio(&mut stacks);
}

/// Times both again, in alternating blocks so that drift hits both alike,
/// and prints the median block time of each and their ratio.
fn ratio(stacks: &mut Stacks) {
    const BLOCKS: usize = 30;
    const PER_BLOCK: u32 = 200;
    let (mut layer, mut sign) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        let requests: Vec<Req> = (0..PER_BLOCK).map(|_| request(URL)).collect();
        let started = Instant::now();
        requests.into_iter().for_each(&mut stacks.layer);
        layer.push(started.elapsed() / PER_BLOCK);
        let started = Instant::now();
        (0..PER_BLOCK).for_each(|_| (stacks.sign)());
        sign.push(started.elapsed() / PER_BLOCK);
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (layer, sign) = (median(&mut layer), median(&mut sign));
    println!(
        "dpop: a request through the layer {layer:?}, the bare ES256 signature {sign:?}: {:.2}x (the bar: 1.3x)",
        layer.as_secs_f64() / sign.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(stack) = std::env::var("STACK") {
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut stacks = stacks();
        match stack.as_str() {
            "layer" => (0..n).for_each(|_| (stacks.layer)(request(URL))),
            "sign" => (0..n).for_each(|_| (stacks.sign)()),
            other => panic!("unknown STACK {other}"),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
