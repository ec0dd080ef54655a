//! [`RedisStore`]: one token, and one refresh at a time, for a fleet of
//! processes (cargo feature `redis`).
//!
//! Layout under the key prefix `P` (no secret in any name):
//!
//! - `P:token`, a hash: `gen` (the fleet generation, in clear, for the
//!   compare-and-swap) and `blob` (the token, sealed with
//!   ChaCha20-Poly1305; the key name and generation are its associated data,
//!   so a blob cannot be replayed under another generation; unsealed JSON
//!   when there is no key);
//! - `P:lease`, the refresh lease: `SET NX PX`, released by a
//!   compare-and-delete script;
//! - `P:events`, the pub/sub channel announcing each new generation.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::OsRng;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::source::BoxFuture;
use crate::store::seal::{Context, Seal};
use crate::store::{Lease, StoredBytes, TokenStore};

/// The default timeout of one Redis command: an outage never stalls a
/// token round by more than this before the manager falls back.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// The HKDF salt of Redis seal keys (the info is the key prefix). Changing
/// it would leave every token already in Redis unopenable.
const SEAL_SALT: &[u8] = b"bearer-refresh/redis-seal/v1";
/// How long the token entry outlives its last write. The token's lifetime
/// is sealed, out of this store's sight; an expired token is never adopted
/// anyway, and keeping the entry keeps the generation count going.
const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Writes the token if the stored generation is the expected one (or there
/// is none and 0 is expected), then announces it.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('HGET', KEYS[1], 'gen')
if (current == false and ARGV[1] == '0') or current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'blob', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PUBLISH', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lease only if we still own it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A [`TokenStore`] in Redis, shared by every process using the same URL
/// and key prefix.
///
/// Several managers built with stores on the same Redis and prefix behave
/// as one: one login, one refresh, one new token after a 401 storm. Every
/// command has a short timeout (1 s by default); when Redis fails, each
/// process falls back to its own single flight and logs one warning, and
/// it rejoins on its own when Redis is back. The hot path never touches
/// Redis.
///
/// Tokens are sealed at rest. By default the key is derived (HKDF-SHA256)
/// from the source's long-lived credential, which every process of the
/// fleet holds anyway; [`seal_key`](Self::seal_key) sets another. A source
/// without a long-lived credential (a public client's refresh tokens) and
/// no `seal_key` leaves nothing to seal with: the token is then written
/// unsealed, with one warning per store that says so, and anyone who can
/// read the Redis keys can read it. A stored token that does not open with
/// the store's key (another key, or unsealed while this store seals) is a
/// store error: the process goes on with its own single flight rather
/// than overwrite the fleet's token.
///
/// ```no_run
/// use bearer_refresh::{ApiKeySource, RedisStore, TokenManager};
///
/// # async fn run() -> Result<(), bearer_refresh::Error> {
/// let source = ApiKeySource::new(ApiKeySource::PRODUCTION, "my-api-key")?;
/// let store = RedisStore::connect("redis://127.0.0.1:6379", "my-app").await?;
/// let tokens = TokenManager::builder(source).store(store).build();
/// # let _ = tokens;
/// # Ok(())
/// # }
/// ```
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    token_key: String,
    lease_key: String,
    channel: String,
    seal: Option<Seal>,
    command_timeout: Duration,
    owner: String,
    announced: watch::Receiver<u64>,
    subscriber: JoinHandle<()>,
    cas: redis::Script,
    release: redis::Script,
}

impl RedisStore {
    /// Connects to Redis at `url`, keeping every key under `prefix`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a malformed URL or an empty prefix,
    /// [`Error::Store`] when Redis cannot be reached within the command
    /// timeout.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        if prefix.is_empty() {
            return Err(Error::config("the Redis key prefix is empty"));
        }
        let client = redis::Client::open(url)
            .map_err(|err| Error::config(format!("invalid Redis URL: {}", err.category())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_COMMAND_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = tokio::time::timeout(
            DEFAULT_COMMAND_TIMEOUT,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| store_error("connecting timed out"))?
        .map_err(redis_error)?;
        let channel = format!("{prefix}:events");
        let (announce, announced) = watch::channel(0);
        let subscriber = tokio::spawn(subscribe(client, channel.clone(), announce));
        let mut owner = [0u8; 16];
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut owner);
        Ok(RedisStore {
            connection,
            token_key: format!("{prefix}:token"),
            lease_key: format!("{prefix}:lease"),
            channel,
            prefix: prefix.to_owned(),
            seal: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            owner: owner.iter().map(|b| format!("{b:02x}")).collect(),
            announced,
            subscriber,
            cas: redis::Script::new(COMPARE_AND_SWAP),
            release: redis::Script::new(RELEASE),
        })
    }

    /// Seals tokens with this key instead of one derived from the source's
    /// credential; the way to seal the tokens of a source that has none.
    /// Every member of the fleet must use the same key. A 32-byte key is
    /// used as is; key material of any other length goes through
    /// HKDF-SHA256 first.
    pub fn seal_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.seal = Some(Seal::from_key(
            key.as_ref(),
            SEAL_SALT,
            self.prefix.as_bytes(),
        ));
        self
    }

    /// How the sealing layer seals this store's tokens. The associated
    /// data is the token key and the generation.
    pub(in crate::store) fn seal_context(&self) -> Context {
        Context {
            key: self.seal.clone(),
            salt: SEAL_SALT,
            info: self.prefix.as_bytes().to_vec(),
            aad: format!("{}:", self.token_key),
            unopenable_is_error: true,
            setter: "RedisStore::seal_key",
            place: format!("the Redis key prefix {}", self.prefix),
        }
    }

    /// The timeout of each Redis command (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.command_timeout, command)
            .await
            .map_err(|_| store_error(format!("{what} timed out after {:?}", self.command_timeout)))?
            .map_err(redis_error)
    }
}

impl TokenStore for RedisStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredBytes>, Error>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let (generation, blob): (Option<u64>, Option<Vec<u8>>) = self
                .run(
                    "loading the token",
                    redis::cmd("HMGET")
                        .arg(&self.token_key)
                        .arg("gen")
                        .arg("blob")
                        .query_async(&mut connection),
                )
                .await?;
            match (generation, blob) {
                (Some(generation), Some(blob)) => Ok(Some(StoredBytes::new(generation, blob))),
                _ => Ok(None),
            }
        })
    }

    fn try_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<Lease>, Error>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let owner = format!(
                "{}:{}",
                self.owner,
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            );
            let taken: Option<String> = self
                .run(
                    "taking the lease",
                    redis::cmd("SET")
                        .arg(&self.lease_key)
                        .arg(&owner)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(ttl).max(1))
                        .query_async(&mut connection),
                )
                .await?;
            Ok(taken.map(|_| Lease::new(owner)))
        })
    }

    fn store<'a>(
        &'a self,
        expected: u64,
        entry: &'a StoredBytes,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let keep = millis(KEEP);
            let mut connection = self.connection.clone();
            let mut invocation = self.cas.key(&self.token_key);
            invocation
                .key(&self.channel)
                .arg(expected)
                .arg(entry.generation)
                .arg(&entry.bytes)
                .arg(keep);
            let written: i64 = self
                .run(
                    "storing the token",
                    invocation.invoke_async(&mut connection),
                )
                .await?;
            Ok(written == 1)
        })
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.release.key(&self.lease_key);
            invocation.arg(lease.id());
            let _: i64 = self
                .run(
                    "releasing the lease",
                    invocation.invoke_async(&mut connection),
                )
                .await?;
            Ok(())
        })
    }

    fn wait_for_change(&self, generation: u64, timeout: Duration) -> BoxFuture<'_, ()> {
        let mut announced = self.announced.clone();
        Box::pin(async move {
            // Announcements already seen do not count: a restarted Redis
            // numbers from 1 again, so only news wakes us. One that raced
            // our last look costs at most `timeout`, the bounded poll.
            if *announced.borrow_and_update() > generation {
                // News we have not acted on yet: look at the store again.
                return;
            }
            let _ = tokio::time::timeout(timeout, announced.changed()).await;
        })
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("sealed", &self.seal.is_some())
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Follows the announcements channel, re-subscribing after any failure, so
/// waiters wake without polling while Redis is up.
async fn subscribe(client: redis::Client, channel: String, announce: watch::Sender<u64>) {
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(generation) = message.get_payload::<u64>() {
                        announce.send_replace(generation);
                    }
                }
            }
        }
        if announce.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn store_error(reason: impl Into<String>) -> Error {
    Error::Store {
        reason: reason.into(),
    }
}

/// Redis errors can quote the command; only their kind and category go
/// into ours, so a sealed blob or a lease value never reaches a log.
fn redis_error(err: redis::RedisError) -> Error {
    store_error(format!("Redis error ({})", err.category()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use secrecy::ExposeSecret;

    use super::SEAL_SALT;
    use crate::store::seal::Seal;

    /// A value sealed by the RedisStore of before `store::seal` (key from
    /// the credential "api-key-123" under the prefix "my-app", generation
    /// 7, a fixed nonce), recomputed with Python's `cryptography`: tokens
    /// already in Redis must still open after an upgrade.
    const SEALED_BEFORE: &str = "000102030405060708090a0bde7c0442ccc7c6b5e6b4a59e34200ff3ba49d2\
        fae41743f092c3221b9ae0042eddba42bc0704394c823542e6dd18244cbdf8fae89b488bf5dfa85022322a3dfb2c\
        36d9c0258da7ab9f0af84bf91d98add8397d1e4236c49c8d73135466334bc26de2eb7324ddb7921ad83ea91ce90414";

    #[test]
    fn a_value_sealed_by_the_earlier_format_still_opens() {
        let blob: Vec<u8> = (0..SEALED_BEFORE.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&SEALED_BEFORE[i..i + 2], 16).unwrap())
            .collect();
        let seal = Seal::derive(b"api-key-123", SEAL_SALT, b"my-app");
        // The associated data is the token key and the generation.
        let token = seal.open(&blob, b"my-app:token:7", 7).unwrap();
        assert_eq!(token.access_token.expose_secret(), "access-abc");
        assert_eq!(token.refresh_token.unwrap().expose_secret(), "refresh-xyz");
        assert_eq!(
            token.expires_at,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)
        );
        assert_eq!(token.lifetime, Duration::from_secs(3600));
        assert!(seal.open(&blob, b"my-app:token:8", 8).is_none());
    }
}
