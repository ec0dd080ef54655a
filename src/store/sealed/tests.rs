use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;

use super::*;
use crate::store::memory::{token, Memory, Nothing};

/// The layer over `memory`, sealing with a key derived from `key` as from
/// a source's credential.
fn keyed(memory: &Arc<Memory>, key: &str) -> Sealed {
    let store: Box<dyn TokenStore> = Box::new(Arc::clone(memory));
    let context = context(&*store);
    let seal = Seal::derive(key.as_bytes(), context.salt, &context.info);
    Sealed::with_seal(store, Some(seal), context)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_sealing_key_seals_and_another_key_sees_no_token() {
    let memory = Arc::new(Memory::default());
    let sealed = keyed(&memory, "api-key");
    assert!(sealed
        .write(0, &token("access-1", 1, Duration::from_secs(60)))
        .await
        .unwrap());
    let bytes = memory.entry.lock().unwrap().clone().unwrap().bytes;
    assert!(!contains(&bytes, "access-1") && !contains(&bytes, "api-key"));
    let back = sealed.load().await.unwrap();
    assert_eq!(back.token.unwrap().access_token.expose_secret(), "access-1");

    let stranger = keyed(&memory, "other");
    let seen = stranger.load().await.unwrap();
    assert!(seen.token.is_none());
    assert_eq!(seen.generation, 1, "the next write still replaces it");
    let unsealed = Sealed::new(Box::new(Arc::clone(&memory)), &Nothing);
    assert!(unsealed.load().await.unwrap().token.is_none());
}

#[tokio::test]
async fn without_a_key_the_token_is_written_unsealed_and_read_back() {
    let memory = Arc::new(Memory::default());
    let sealed = Sealed::new(Box::new(Arc::clone(&memory)), &Nothing);
    assert!(sealed
        .write(0, &token("access-1", 1, Duration::from_secs(60)))
        .await
        .unwrap());
    assert_eq!(
        memory.plain().unwrap().access_token.expose_secret(),
        "access-1"
    );
    let back = sealed.load().await.unwrap().token.unwrap();
    assert_eq!(
        back.refresh_token.unwrap().expose_secret(),
        "access-1-refresh"
    );
    // A sealing reader does not take an unsealed token someone put there.
    let keyed = keyed(&memory, "api-key");
    assert!(keyed.load().await.unwrap().token.is_none());
}

#[tokio::test]
async fn a_stored_expiry_far_in_the_future_is_clamped() {
    let memory = Arc::new(Memory::default());
    let mut forever = token("forever", 1, Duration::ZERO);
    forever.expires_at = UNIX_EPOCH + Duration::from_millis(u64::MAX);
    forever.lifetime = Duration::from_millis(u64::MAX);
    memory.put_plain(&forever);
    let before = SystemTime::now();
    let loaded = Sealed::new(Box::new(Arc::clone(&memory)), &Nothing)
        .load()
        .await
        .unwrap()
        .token
        .unwrap();
    let year = Duration::from_secs(365 * 24 * 3600);
    assert_eq!(loaded.lifetime, year);
    assert!(loaded.expires_at <= SystemTime::now() + year);
    assert!(loaded.expires_at >= before + year);

    // No more left than the token's whole lifetime.
    let mut short = token("short", 2, Duration::from_secs(3600));
    short.lifetime = Duration::from_secs(60);
    memory.put_plain(&short);
    let loaded = Sealed::new(Box::new(Arc::clone(&memory)), &Nothing)
        .load()
        .await
        .unwrap()
        .token
        .unwrap();
    assert!(loaded.expires_at <= SystemTime::now() + Duration::from_secs(60));
}

#[tokio::test]
async fn a_generation_lower_than_one_seen_is_not_accepted() {
    let memory = Arc::new(Memory::default());
    let sealed = keyed(&memory, "api-key");
    assert!(sealed
        .write(0, &token("one", 1, Duration::from_secs(60)))
        .await
        .unwrap());
    let first = memory.entry.lock().unwrap().clone();
    assert!(sealed
        .write(1, &token("two", 2, Duration::from_secs(60)))
        .await
        .unwrap());
    assert_eq!(sealed.load().await.unwrap().generation, 2);
    // The older sealed entry, put back whole: it opens, but is not taken.
    *memory.entry.lock().unwrap() = first;
    let loaded = sealed.load().await.unwrap();
    assert_eq!(loaded.generation, 1);
    assert!(loaded.token.is_none());
    assert_eq!(sealed.next_generation(1).unwrap(), 3);
}

#[test]
fn the_next_generation_never_wraps() {
    let sealed = Sealed::new(Box::new(Arc::new(Memory::default())), &Nothing);
    assert_eq!(sealed.next_generation(7).unwrap(), 8);
    let error = sealed.next_generation(u64::MAX).unwrap_err();
    assert!(matches!(error, Error::Store { .. }), "{error:?}");
}

/// A member whose DPoP key differs (or that has none) sees no token: it
/// could use neither the access token nor its refresh token. The same key
/// reads it back.
#[tokio::test]
async fn a_token_bound_to_another_dpop_key_is_not_used() {
    let memory = Arc::new(Memory::default());
    let member = |thumbprint: Option<&str>| {
        let mut sealed = keyed(&memory, "api-key");
        sealed.thumbprint = thumbprint.map(str::to_owned);
        sealed
    };
    let mut bound = token("access-1", 1, Duration::from_secs(60));
    bound.dpop = true;
    bound.thumbprint = Some("jkt-a".into());
    assert!(member(Some("jkt-a")).write(0, &bound).await.unwrap());
    let same = member(Some("jkt-a")).load().await.unwrap().token.unwrap();
    assert!(same.dpop);
    assert!(same.refresh_token.is_some());
    for other in [Some("jkt-b"), None] {
        let seen = member(other).load().await.unwrap();
        assert!(seen.token.is_none(), "{other:?}");
        assert_eq!(seen.generation, 1, "its own token replaces it");
    }
    // A bearer token of a member without a key is not one for a DPoP member.
    let plain = token("access-2", 2, Duration::from_secs(60));
    assert!(member(None).write(1, &plain).await.unwrap());
    assert!(member(None).load().await.unwrap().token.is_some());
    assert!(member(Some("jkt-a")).load().await.unwrap().token.is_none());
}
