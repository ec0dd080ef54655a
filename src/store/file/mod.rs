//! [`FileStore`]: one token for the processes of one machine, through one
//! file (cargo feature `file-store`).

mod disk;
mod format;

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use self::disk::Paths;
use crate::error::Error;
use crate::source::BoxFuture;
use crate::store::seal::{Context, Seal};
use crate::store::{Lease, StoredBytes, TokenStore};

/// The longest a file operation may take before the manager falls back to
/// its own single flight.
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a waiter looks at the file while another member refreshes.
const POLL: Duration = Duration::from_millis(25);
const SEAL_SALT: &[u8] = b"bearer-refresh/file-seal/v1";
const SEAL_INFO: &[u8] = b"token-file";

/// A [`TokenStore`] in a file, shared by every process of one machine that
/// opens the same path.
///
/// Command-line tools, agents, test runners and a service's workers then
/// share one token: each start reuses the stored token instead of logging
/// in, a rotated refresh token survives a restart, and when the token needs
/// replacing one process makes the token call while the others wait for
/// it.
///
/// - **Lease.** An OS advisory lock (`flock` on Unix, `LockFileEx` on
///   Windows) on `<path>.lock` beside the token file. It belongs to an open
///   file, so two stores in one process exclude each other too, and a
///   process that dies, even by `SIGKILL`, frees it at once. Taking it
///   never blocks.
/// - **Writes** go to `<path>.tmp`, are fsynced, then renamed over the
///   token file: readers see the old token or the new one, never half of
///   one. The write is a compare-and-swap on the generation, under the
///   lock.
/// - **Modes.** The files are created with mode 0600, and a missing folder
///   with 0700 (Unix).
/// - **Trust (Unix).** The folder must belong to this user (or root) and be
///   writable by no one else, as ssh's `StrictModes` asks: a shared folder
///   such as `/tmp` is refused by [`open`](Self::open). The token file and
///   the lock file are opened without following a symbolic link or waiting
///   on a FIFO, and must be plain files of this user that no one else may
///   write. Anything else makes the store unusable, with one warning
///   naming the path and what is wrong; the manager then goes on with its
///   own single flight.
/// - **Bad files.** A file that does not parse (empty, truncated, foreign,
///   from another version, sealed with another key) counts as empty and is
///   overwritten by the next token, with one warning.
/// - **Waiters** poll the file every 25 ms while another member holds the
///   lease, and wake as soon as a newer generation is written or the lease
///   is free again (its holder finished or died). A file watcher would
///   miss the second event, since a released lock changes no file.
/// - Every file operation runs on Tokio's blocking pool with a timeout (1 s
///   by default); a failing store makes the manager fall back to its own
///   single flight with one warning. The hot path never touches the file.
///
/// # What protects the file
///
/// Tokens are sealed with ChaCha20-Poly1305 under a key derived
/// (HKDF-SHA256) from the source's long-lived credential: the API key of an
/// [`ApiKeySource`](crate::ApiKeySource), the client secret of an OAuth2
/// client. The file then holds no token in clear, and is useless without
/// that credential.
///
/// A source without a long-lived credential, such as a public-client
/// refresh-token source, has nothing to derive a key from: the token is
/// then written unsealed, with one warning per store that says so. The
/// file is protected by its 0600 mode only, like an SSH key or a CLI's
/// credentials file, so any process of the same user can read it. Give
/// such a store a key with [`seal_key`](Self::seal_key) (from the OS
/// keychain, say) to seal it too. A store with a key takes no unsealed
/// token from the file, nor one sealed with another key, and never one of
/// a lower generation than it already saw.
///
/// ```no_run
/// use bearer_refresh::{ApiKeySource, FileStore, TokenManager};
///
/// # fn run() -> Result<(), bearer_refresh::Error> {
/// let source = ApiKeySource::new(ApiKeySource::PRODUCTION, "my-api-key")?;
/// let store = FileStore::open("/var/cache/my-app/token")?;
/// let tokens = TokenManager::builder(source).store(store).build();
/// # let _ = tokens;
/// # Ok(())
/// # }
/// ```
pub struct FileStore {
    shared: Arc<Shared>,
    seal: Option<Seal>,
    io_timeout: Duration,
}

/// What the blocking operations share with the store.
struct Shared {
    paths: Paths,
    /// The lease this store holds: the locked lock file, kept open until
    /// released.
    held: Mutex<Option<Held>>,
    leases: AtomicU64,
}

/// The token files reported unusable and not rewritten since: one warning
/// per bad file, however many stores in the process read it.
static REPORTED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

struct Held {
    id: String,
    file: File,
    until: Instant,
}

impl FileStore {
    /// Opens the token file at `path`, shared with every store opened on
    /// the same path. The file itself may not exist yet; its folder is
    /// created if missing.
    ///
    /// This does a little blocking file I/O, once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the location is unusable: the path
    /// names a folder, its parent is a file, the folder cannot be created
    /// or written (read-only, no permission), or (Unix) it belongs to
    /// another user or others may write in it, as in `/tmp`. The message
    /// names the path and what is wrong.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let paths = Paths::prepare(path.as_ref()).map_err(Error::config)?;
        Ok(FileStore {
            shared: Arc::new(Shared {
                paths,
                held: Mutex::new(None),
                leases: AtomicU64::new(0),
            }),
            seal: None,
            io_timeout: DEFAULT_IO_TIMEOUT,
        })
    }

    /// Seals tokens with this key instead of one derived from the source's
    /// credential; the way to seal the file of a source that has none.
    /// Every process sharing the file must use the same key. A 32-byte key
    /// is used as is; key material of any other length goes through
    /// HKDF-SHA256 first.
    pub fn seal_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.seal = Some(Seal::from_key(key.as_ref(), SEAL_SALT, SEAL_INFO));
        self
    }

    /// How the sealing layer seals this store's tokens.
    pub(in crate::store) fn seal_context(&self) -> Context {
        Context {
            key: self.seal.clone(),
            salt: SEAL_SALT,
            info: SEAL_INFO.to_vec(),
            aad: format::associated_data_prefix(),
            unopenable_is_error: false,
            setter: "FileStore::seal_key",
            place: self.shared.paths.token.display().to_string(),
        }
    }

    /// The timeout of each file operation (default 1 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.shared.paths.token
    }

    /// Runs `op` on the blocking pool, within the I/O timeout.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&Shared) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let shared = Arc::clone(&self.shared);
        let task = tokio::task::spawn_blocking(move || op(&shared));
        match tokio::time::timeout(self.io_timeout, task).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(err))) => Err(store_error(format!(
                "{what} {}: {err}",
                self.shared.paths.token.display()
            ))),
            Ok(Err(_)) => Err(store_error(format!("{what}: the file task failed"))),
            Err(_) => Err(store_error(format!(
                "{what} {} timed out after {:?}",
                self.shared.paths.token.display(),
                self.io_timeout
            ))),
        }
    }
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, Option<Held>> {
        // Every update of `held` is one assignment, so a poisoned lock
        // still holds a consistent value.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored entry; a bad file counts as none, with one warning.
    fn read_entry(&self) -> std::io::Result<Option<StoredBytes>> {
        let Some(bytes) = self.paths.read()? else {
            return Ok(None);
        };
        match format::decode(&bytes) {
            Ok(entry) => {
                self.reported(false);
                Ok(Some(entry))
            }
            Err(unusable) => {
                if self.reported(true) {
                    tracing::warn!(
                        path = %self.paths.token.display(),
                        reason = unusable.reason(),
                        "the token file is unusable; treating it as empty, the next token overwrites it"
                    );
                }
                Ok(None)
            }
        }
    }
}

impl Shared {
    /// Marks the file as reported bad (or good again); returns whether
    /// that changed anything.
    fn reported(&self, bad: bool) -> bool {
        let mut reported = REPORTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if bad {
            reported.insert(self.paths.token.clone())
        } else {
            reported.remove(&self.paths.token)
        }
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredBytes>, Error>> {
        Box::pin(self.blocking("reading the token file", Shared::read_entry))
    }

    fn try_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<Lease>, Error>> {
        let id = format!(
            "file:{}:{}",
            std::process::id(),
            self.shared.leases.fetch_add(1, Ordering::Relaxed)
        );
        // A locking that outlasts the I/O timeout goes on in the blocking
        // pool; the caller has given up on it, so it must not keep a lease
        // nobody will release. Checked and set under `held`.
        let given_up = Arc::new(AtomicBool::new(false));
        let lease = Lease::new(id.clone());
        let locking = {
            let given_up = Arc::clone(&given_up);
            self.blocking("locking", move |shared| {
                let until = Instant::now() + ttl;
                let mut held = shared.held();
                if given_up.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                if let Some(ours) = held.as_mut() {
                    if Instant::now() < ours.until {
                        return Ok(None);
                    }
                    // Our own lease, past its time: the round that took it
                    // ended without releasing it (its task was dropped).
                    // The lock is still ours; hand it to the new round.
                    ours.id.clone_from(&id);
                    ours.until = until;
                    return Ok(Some(Lease::new(id)));
                }
                let Some(file) = shared.paths.try_lock()? else {
                    return Ok(None);
                };
                *held = Some(Held {
                    id: id.clone(),
                    file,
                    until,
                });
                Ok(Some(Lease::new(id)))
            })
        };
        Box::pin(async move {
            let leased = locking.await;
            if leased.is_err() {
                given_up.store(true, Ordering::Relaxed);
                // If the locking already took the lease, give it back.
                let _ = self.release(lease).await;
            }
            leased
        })
    }

    fn store<'a>(
        &'a self,
        expected: u64,
        entry: &'a StoredBytes,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let patience = self.io_timeout / 2;
        Box::pin(async move {
            let bytes =
                format::encode(entry).ok_or_else(|| store_error("cannot encode the token"))?;
            self.blocking("writing the token file", move |shared| {
                let held = shared.held();
                // The lease holder already has the lock; anyone else takes
                // it for the compare-and-swap, waiting a little for it.
                let lock = match held.as_ref() {
                    Some(_) => None,
                    None => match shared.paths.lock_within(patience)? {
                        Some(file) => Some(file),
                        None => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::WouldBlock,
                                "another member holds the lock",
                            ))
                        }
                    },
                };
                let current = shared.read_entry()?.map_or(0, |entry| entry.generation);
                let written = current == expected;
                if written {
                    shared.paths.replace(&bytes)?;
                    shared.reported(false);
                }
                drop(held);
                if let Some(file) = lock {
                    disk::unlock(file);
                }
                Ok(written)
            })
            .await
        })
    }

    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.blocking("unlocking", move |shared| {
            let mut held = shared.held();
            if held.as_ref().is_some_and(|ours| ours.id == lease.id()) {
                if let Some(ours) = held.take() {
                    disk::unlock(ours.file);
                }
            }
            Ok(())
        }))
    }

    fn wait_for_change(&self, generation: u64, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return;
                }
                tokio::time::sleep(POLL.min(deadline - now)).await;
                let news = self
                    .blocking("watching the token file", move |shared| {
                        let newer = shared
                            .paths
                            .read()?
                            .and_then(|bytes| format::generation(&bytes))
                            .is_some_and(|stored| stored > generation);
                        Ok(newer || shared.paths.lock_is_free()?)
                    })
                    .await;
                // An error is news too: the manager's next look at the
                // store reports it and falls back.
                if news.unwrap_or(true) {
                    return;
                }
            }
        })
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.shared.paths.token)
            .field("sealed", &self.seal.is_some())
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

fn store_error(reason: impl Into<String>) -> Error {
    Error::Store {
        reason: reason.into(),
    }
}
