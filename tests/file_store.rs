//! One machine sharing one token through a `FileStore`: managers in one
//! process, and real OS processes (this test binary run again as children,
//! as the Redis fleet tests do), all counted at the api.video double.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Duration;

use bearer_refresh::testing::ApiVideoDouble;
use bearer_refresh::{
    ApiKeySource, BoxFuture, Error, FileStore, TokenManager, TokenResponse, TokenSource, TokenStore,
};
use secrecy::SecretString;
use support::fleet::{
    a_stale_writer_loses, all_succeed, entry, expiry_storms, one_token, rerun_as_child,
    revocation_storm, storm,
};
use tempfile::TempDir;

fn member(double: &ApiVideoDouble, path: &Path) -> TokenManager {
    TokenManager::builder(double.source())
        .store(FileStore::open(path).unwrap())
        .build()
}

fn members(double: &ApiVideoDouble, path: &Path, n: usize) -> Vec<TokenManager> {
    (0..n).map(|_| member(double, path)).collect()
}

fn token_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_managers_on_one_file_make_one_login() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_millis(50));
    let members = members(&double, &path, 8);
    let headers = storm(&members, 50).await;
    assert!(one_token(&headers));
    assert_eq!(double.calls().logins, 1);
    assert_eq!(double.calls().refreshes, 0);
}

#[tokio::test(start_paused = true)]
async fn under_paused_time_a_cold_storm_still_makes_one_login() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_millis(500));
    let members = members(&double, &path, 8);
    let headers = storm(&members, 20).await;
    assert!(one_token(&headers));
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_storm_makes_one_refresh_and_never_reuses_a_refresh_token() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let members = members(&double, &path, 8);
    expiry_storms(&double, &members, 2, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_storm_across_four_managers_makes_one_new_token() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    let members = members(&double, &path, 4);
    revocation_storm(&double, &members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_makes_no_token_call_and_uses_the_rotated_refresh_token() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    let first = member(&double, &path).authorization().await.unwrap();
    // A new manager on the same file, as a process started again would be.
    let again = member(&double, &path).authorization().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(double.calls().logins, 1);

    double.set_lifetime(Duration::from_secs(2));
    double.revoke_access_tokens();
    double.expire_refresh_tokens();
    let (_dir, path) = token_file();
    member(&double, &path).authorization().await.unwrap();
    for run in 1..=2 {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let tokens = member(&double, &path);
        tokens.authorization().await.unwrap();
        // Only the refresh token the last run stored is live at the double:
        // any other would be rejected and cost a login.
        assert_eq!(tokens.stats().refreshes, 1, "run {run}");
        assert_eq!(tokens.stats().logins, 0, "run {run}");
    }
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (2, 2));
    assert_eq!(calls.refresh_reuses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_recovered_with_one_warning() {
    capture_warnings();
    let double = ApiVideoDouble::start().await.unwrap();
    let sealed = {
        let (_dir, path) = token_file();
        member(&double, &path).authorization().await.unwrap();
        std::fs::read(&path).unwrap()
    };
    let version = String::from_utf8(sealed.clone())
        .unwrap()
        .replace("\"version\":1", "\"version\":7");
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("truncated", sealed[..sealed.len() / 2].to_vec()),
        ("foreign", b"[core]\n\tbare = false\n".to_vec()),
        ("binary", vec![0xff, 0x00, 0xfe, 0x7b]),
        ("another version", version.into_bytes()),
    ];
    for (what, bytes) in cases {
        let (_dir, path) = token_file();
        std::fs::write(&path, &bytes).unwrap();
        let before = double.calls().logins;
        let members = members(&double, &path, 4);
        let headers = storm(&members, 10).await;
        assert!(one_token(&headers), "{what}");
        assert_eq!(double.calls().logins - before, 1, "{what}");
        assert_eq!(warnings_about(&path), 1, "{what}: one warning");
        // The file was overwritten with a good one: a restart adopts it.
        let restarted = member(&double, &path).authorization().await.unwrap();
        assert_eq!(restarted, headers[0], "{what}");
        assert_eq!(double.calls().logins - before, 1, "{what}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new-folder").join("token");
    let double = ApiVideoDouble::start().await.unwrap();
    member(&double, &path).authorization().await.unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&path.with_file_name("token.lock")), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_hold_no_token_or_api_key_in_clear() {
    let (dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    let members = members(&double, &path, 3);
    storm(&members, 5).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    storm(&members, 5).await;
    let mut secrets = double.issued_secrets();
    secrets.push(ApiVideoDouble::API_KEY.to_owned());
    assert!(secrets.len() >= 4);
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for secret in &secrets {
            let found = bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes());
            assert!(!found, "a secret is stored in clear");
        }
    }
    assert_eq!(files, 2, "the token file and its lock file, no leftovers");
}

#[tokio::test]
async fn a_bad_location_is_a_clear_error_from_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let mut bad = vec![file.join("token"), dir.path().to_path_buf()];
    if cfg!(target_os = "linux") {
        // Read-only even for root, who can write anywhere else.
        bad.push(PathBuf::from("/proc/self/bearer-refresh-token"));
    }
    for path in bad {
        let error = FileStore::open(&path).unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
        let message = error.to_string();
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            message.contains(&*name) || message.contains(&*file.to_string_lossy()),
            "names the path: {message}"
        );
        assert!(message.contains("choose a token file"), "{message}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_read_only_folder_is_a_clear_error_from_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("read-only");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(folder.join("probe"), b"").is_ok() {
        // Root writes anywhere; the /proc case above covers it.
        eprintln!("skipped: this user can write in a read-only folder");
        return;
    }
    let error = FileStore::open(folder.join("token")).unwrap_err();
    assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_removed_after_open_falls_back_to_the_local_single_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone").join("token");
    let double = ApiVideoDouble::start().await.unwrap();
    let members = members(&double, &path, 2);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let calls = tokio::time::timeout(Duration::from_secs(20), storm(&members, 10))
        .await
        .expect("no hang");
    assert!(one_token(&calls[..10]) && one_token(&calls[10..]));
    assert_eq!(double.calls().logins, 2, "one login per manager");
    assert!(members.iter().all(|tokens| !tokens.store_available()));
}

/// A source with no long-lived credential to seal with, like a public
/// client's refresh-token source.
struct NoSealingSecret(ApiKeySource);

impl TokenSource for NoSealingSecret {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        self.0.login()
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<TokenResponse, Error>> {
        self.0.refresh(refresh_token)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_credential_the_mode_protects_the_file_unless_a_seal_key_is_given() {
    let double = ApiVideoDouble::start().await.unwrap();
    for seal_key in [false, true] {
        let (_dir, path) = token_file();
        let mut store = FileStore::open(&path).unwrap();
        if seal_key {
            store = store.seal_key(b"from the OS keychain");
        }
        let tokens = TokenManager::builder(NoSealingSecret(double.source()))
            .store(store)
            .build();
        let header = tokens.authorization().await.unwrap();
        let access = header.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let in_clear = bytes
            .windows(access.len())
            .any(|window| window == access.as_bytes());
        assert_eq!(in_clear, !seal_key, "seal key: {seal_key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_cannot_overwrite_a_newer_generation() {
    let (_dir, path) = token_file();
    let first = FileStore::open(&path).unwrap();
    let second = FileStore::open(&path).unwrap();
    a_stale_writer_loses(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_sealed_with_another_key_is_not_taken_but_replaced() {
    capture_warnings();
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    let keyed = |key: &[u8]| {
        TokenManager::builder(double.source())
            .store(FileStore::open(&path).unwrap().seal_key(key))
            .build()
    };
    let first = keyed(b"one key").authorization().await.unwrap();
    let strangers: Vec<_> = (0..4).map(|_| keyed(b"another key")).collect();
    let headers = storm(&strangers, 5).await;
    assert!(one_token(&headers));
    let stranger = headers[0].clone();
    assert_ne!(first, stranger);
    assert_eq!(double.calls().logins, 2, "the strangers could not open it");
    assert_eq!(warnings_about(&path), 1, "one warning");
    // The stranger's token replaced it: a member with its key adopts it.
    assert_eq!(
        keyed(b"another key").authorization().await.unwrap(),
        stranger
    );
    assert_eq!(double.calls().logins, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_in_one_process_exclude_each_other_and_a_dropped_one_frees_the_lease() {
    let (_dir, path) = token_file();
    let ttl = Duration::from_secs(30);
    let first = FileStore::open(&path).unwrap();
    let second = FileStore::open(&path).unwrap();
    let lease = first.try_lease(ttl).await.unwrap().expect("a free lease");
    assert!(first.try_lease(ttl).await.unwrap().is_none());
    assert!(second.try_lease(ttl).await.unwrap().is_none());
    first.release(lease).await.unwrap();
    let _held = second.try_lease(ttl).await.unwrap().expect("released");
    assert!(first.try_lease(ttl).await.unwrap().is_none());
    drop(second);
    assert!(first.try_lease(ttl).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_never_released_is_handed_on_by_its_store_after_its_ttl() {
    let (_dir, path) = token_file();
    let ttl = Duration::from_millis(200);
    let store = FileStore::open(&path).unwrap();
    let other = FileStore::open(&path).unwrap();
    let abandoned = store.try_lease(ttl).await.unwrap().unwrap();
    assert!(store.try_lease(ttl).await.unwrap().is_none());
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    // The round that took it was dropped; the next round of the same store
    // gets the lock, and the stale handle releases nothing.
    let renewed = store.try_lease(ttl).await.unwrap().expect("handed on");
    assert_ne!(renewed, abandoned);
    store.release(abandoned).await.unwrap();
    assert!(other.try_lease(ttl).await.unwrap().is_none());
    store.release(renewed).await.unwrap();
    assert!(other.try_lease(ttl).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_wakes_on_a_new_generation_and_when_the_lease_is_freed() {
    let (_dir, path) = token_file();
    let ttl = Duration::from_secs(30);
    let writer = FileStore::open(&path).unwrap();
    let waiter = FileStore::open(&path).unwrap();
    let lease = writer.try_lease(ttl).await.unwrap().unwrap();
    let long = Duration::from_secs(20);

    let started = tokio::time::Instant::now();
    let woken = tokio::spawn(async move {
        waiter.wait_for_change(0, long).await;
        waiter
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(writer.store(0, &entry(1, "one")).await.unwrap());
    let waiter = woken.await.unwrap();
    assert!(started.elapsed() < long / 2, "woken by the new generation");

    let started = tokio::time::Instant::now();
    let woken = tokio::spawn(async move { waiter.wait_for_change(1, long).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.release(lease).await.unwrap();
    woken.await.unwrap();
    assert!(started.elapsed() < long / 2, "woken by the free lease");
}

// ---- Real OS processes -------------------------------------------------

const CHILD_PATH: &str = "FILE_STORE_PATH";
const CHILD_BASE: &str = "FILE_STORE_BASE";

/// Runs only as a child of the process tests: a storm on one manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_child() {
    let (Ok(path), Ok(base)) = (std::env::var(CHILD_PATH), std::env::var(CHILD_BASE)) else {
        return;
    };
    let source = ApiKeySource::new(&base, ApiVideoDouble::API_KEY).unwrap();
    let store = FileStore::open(path).unwrap();
    let tokens = TokenManager::builder(source).store(store).build();
    let headers = storm(&[tokens], 100).await;
    assert!(one_token(&headers));
}

fn child(path: &Path, double: &ApiVideoDouble) -> tokio::process::Child {
    let path = path.to_str().unwrap();
    rerun_as_child(
        "file_store_child",
        &[(CHILD_PATH, path), (CHILD_BASE, &double.base_url())],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locking_that_times_out_keeps_no_lease() {
    let (_dir, path) = token_file();
    let holder = FileStore::open(&path).unwrap();
    let slow = std::sync::Arc::new(
        FileStore::open(&path)
            .unwrap()
            .io_timeout(Duration::from_millis(400)),
    );
    let token = entry(1, "queued");
    // On a loaded machine the queue below may form too late; try again.
    let timed_out = 'attempts: {
        for _ in 0..5 {
            let lease = holder
                .try_lease(Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            // Writes of `slow` wait up to half its I/O timeout for the lock
            // the holder keeps, one after the other: a locking queued behind
            // three of them starts only after its own timeout.
            let writes: Vec<_> = (0..3)
                .map(|_| {
                    let (slow, token) = (slow.clone(), token.clone());
                    tokio::spawn(async move { slow.store(0, &token).await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let locking = slow.try_lease(Duration::from_secs(60)).await;
            holder.release(lease).await.unwrap();
            for write in writes {
                let _ = write.await.unwrap();
            }
            match locking {
                Err(_) => break 'attempts true,
                Ok(Some(ours)) => slow.release(ours).await.unwrap(),
                Ok(None) => {}
            }
        }
        false
    };
    assert!(timed_out, "no locking timed out: the test proves nothing");
    // The blocking pool has run the timed-out locking by now: it must not
    // have taken the lock its caller gave up on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = FileStore::open(&path).unwrap();
    let lease = other.try_lease(Duration::from_secs(60)).await.unwrap();
    assert!(lease.is_some(), "no abandoned lock is left behind");
}

#[test]
fn stores_opened_at_once_on_one_file_all_open() {
    let (_dir, path) = token_file();
    let opened: Vec<_> = (0..16)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| FileStore::open(&path).map(drop))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in opened {
        for result in thread.join().unwrap() {
            result.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_make_one_login_then_one_refresh() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_latency(Duration::from_millis(200));
    double.set_lifetime(Duration::from_secs(4));
    all_succeed((0..4).map(|_| child(&path, &double)).collect()).await;
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 0), "a cold storm");

    // A 4 s token is unusable after 3 s.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    all_succeed((0..4).map(|_| child(&path, &double)).collect()).await;
    let calls = double.calls();
    assert_eq!((calls.logins, calls.refreshes), (1, 1), "an expiry storm");
    assert_eq!(calls.refresh_reuses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_killed_mid_refresh_is_replaced_at_once() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    double.set_lifetime(Duration::from_secs(2));
    member(&double, &path).authorization().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // A child starts the refresh, which the double makes last a minute.
    double.set_latency(Duration::from_secs(60));
    let mut holder = child(&path, &double);
    support::eventually(Duration::from_secs(10), || double.calls().refreshes == 1).await;
    let survivor = member(&double, &path);
    let waiting = tokio::spawn({
        let survivor = survivor.clone();
        async move { survivor.authorization().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the survivor waits for the holder");

    double.set_latency(Duration::ZERO);
    holder.start_kill().unwrap(); // SIGKILL
    let killed = tokio::time::Instant::now();
    assert!(!holder.wait().await.unwrap().success());
    let header = waiting.await.unwrap().unwrap();
    // The lease lasts the call timeout (30 s) plus one second; the lock of
    // a dead process is free at once.
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "replaced after {:?}",
        killed.elapsed()
    );
    let reply = reqwest::Client::new()
        .get(double.url("/videos"))
        .header(http::header::AUTHORIZATION, header)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(survivor.stats().logins + survivor.stats().refreshes, 1);
    assert!(double.calls().refresh_reuses <= 1, "one reuse is allowed");
}

// ---- A hostile neighbour (#18) -----------------------------------------

/// A token file as another process could write it: an unsealed token of
/// `generation`, expiring at `expires_ms` (Unix ms) out of `lifetime_ms`.
fn planted(path: &Path, generation: u64, access: &str, expires_ms: u64, lifetime_ms: u64) {
    let file = format!(
        r#"{{"format":"bearer-refresh token","version":1,"generation":{generation},"plain":{{"access":"{access}","refresh":null,"expires_ms":{expires_ms},"lifetime_ms":{lifetime_ms}}}}}"#
    );
    std::fs::write(path, file).unwrap();
}

fn in_an_hour_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(now.as_millis()).unwrap() + 3_600_000
}

/// A manager of a source with no credential to seal with (a public
/// client), so that an unsealed token planted in the file would open.
fn public_member(double: &ApiVideoDouble, path: &Path) -> TokenManager {
    TokenManager::builder(NoSealingSecret(double.source()))
        .store(FileStore::open(path).unwrap())
        .build()
}

/// Whether `tokens` ignored the planted token: it logged in itself, and
/// its store is unusable.
async fn ignored_the_plant(double: &ApiVideoDouble, tokens: &TokenManager) {
    let header = tokio::time::timeout(Duration::from_secs(20), tokens.authorization())
        .await
        .expect("no hang")
        .unwrap();
    assert_ne!(header, "Bearer attacker-access");
    assert_eq!(double.calls().logins, 1);
    assert!(!tokens.store_available());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_token_file_is_not_followed() {
    let (dir, path) = token_file();
    let elsewhere = dir.path().join("attacker");
    planted(&elsewhere, 1, "attacker-access", in_an_hour_ms(), 3_600_000);
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let double = ApiVideoDouble::start().await.unwrap();
    ignored_the_plant(&double, &public_member(&double, &path)).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_lock_file_is_not_followed() {
    let (dir, path) = token_file();
    let target = dir.path().join("created-by-the-victim");
    std::os::unix::fs::symlink(&target, path.with_file_name("token.lock")).unwrap();
    let error = FileStore::open(&path).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(!target.exists(), "nothing created through the link");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_file_turned_into_a_symlink_after_open_is_not_followed() {
    let (dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = public_member(&double, &path);
    let lock = path.with_file_name("token.lock");
    let target = dir.path().join("created-by-the-victim");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    tokens.authorization().await.unwrap();
    assert!(!target.exists(), "nothing created through the link");
    assert!(!tokens.store_available());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_at_the_token_path_strands_no_thread() {
    let (_dir, path) = token_file();
    let store = FileStore::open(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Each load that blocked on the FIFO would keep a blocking-pool thread
    // until a writer came; each comes back at once, saying why.
    for _ in 0..20 {
        let loaded = tokio::time::timeout(Duration::from_secs(10), store.load())
            .await
            .expect("no hang");
        let error = loaded.unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
    }
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = member(&double, &path);
    tokio::time::timeout(Duration::from_secs(20), tokens.authorization())
        .await
        .expect("no hang")
        .unwrap();
    assert!(!tokens.store_available());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_others_may_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o666, 0o620] {
        let (_dir, path) = token_file();
        planted(&path, 1, "attacker-access", in_an_hour_ms(), 3_600_000);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let double = ApiVideoDouble::start().await.unwrap();
        ignored_the_plant(&double, &public_member(&double, &path)).await;
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_of_another_user_is_not_used() {
    let (_dir, path) = token_file();
    planted(&path, 1, "attacker-access", in_an_hour_ms(), 3_600_000);
    if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: this user cannot give a file to another user");
        return;
    }
    let double = ApiVideoDouble::start().await.unwrap();
    ignored_the_plant(&double, &public_member(&double, &path)).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_shared_folder_such_as_tmp_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let writable = tempfile::tempdir().unwrap();
    std::fs::set_permissions(writable.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let tmp = Path::new("/tmp/bearer-refresh-test-token");
    for path in [
        tmp,
        &shared.path().join("token"),
        &writable.path().join("token"),
    ] {
        let error = FileStore::open(path).unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
        assert!(
            error.to_string().contains("use a private folder"),
            "{error}"
        );
        assert!(!path
            .with_file_name("bearer-refresh-test-token.lock")
            .exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_at_its_limit_causes_no_panic() {
    let (_dir, path) = token_file();
    planted(&path, u64::MAX, "old-access", 0, 3_600_000);
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = public_member(&double, &path);
    tokio::time::timeout(Duration::from_secs(20), tokens.authorization())
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(double.calls().logins, 1);
    assert!(
        !tokens.store_available(),
        "the store is unusable, not wrapped"
    );
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(file.contains(&u64::MAX.to_string()), "left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_file_rolled_back_is_not_taken() {
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = member(&double, &path);
    let first = tokens.authorization().await.unwrap();
    let old = std::fs::read(&path).unwrap();
    let second = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(second.generation()));
    let second = tokens.authorization().await.unwrap();
    assert_ne!(first, second);
    // The round that made `second` installs it before it writes the file:
    // let it finish, so that the next invalidation starts a round of its
    // own.
    written(&path, 2).await;
    // Someone who can write the file puts the older sealed token back.
    std::fs::write(&path, &old).unwrap();
    let third = tokens.authorize().await.unwrap();
    assert!(tokens.invalidate(third.generation()));
    let fourth = tokens.authorization().await.unwrap();
    assert_ne!(fourth, first, "the rolled-back token is not taken");
    assert_ne!(fourth, second);
    // The next write goes above the highest generation seen, not above the
    // rolled-back one (the round writes the file after it hands out the
    // token, hence the wait).
    written(&path, 3).await;
}

/// Returns once the token file holds `generation` and its writer had time
/// to end its round.
async fn written(path: &Path, generation: u64) {
    let wanted = format!(r#""generation":{generation},"#);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !std::fs::read_to_string(path).is_ok_and(|file| file.contains(&wanted)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the round writes the file");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_token_lives_no_longer_than_its_lifetime() {
    let (_dir, path) = token_file();
    planted(&path, 1, "forever-access", u64::MAX, 2_000);
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = public_member(&double, &path);
    let adopted = tokens.authorization().await.unwrap();
    assert_eq!(adopted, "Bearer forever-access");
    assert_eq!(double.calls().logins, 0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let next = tokens.authorization().await.unwrap();
    assert_ne!(next, adopted, "expired with its 2 s lifetime");
    assert_eq!(double.calls().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsealed_write_is_announced_once_with_the_way_out() {
    capture_warnings();
    let (_dir, path) = token_file();
    let double = ApiVideoDouble::start().await.unwrap();
    let tokens = public_member(&double, &path);
    let first = tokens.authorize().await.unwrap();
    written(&path, 1).await;
    assert!(tokens.invalidate(first.generation()));
    tokens.authorization().await.unwrap();
    written(&path, 2).await;
    let path = path.canonicalize().unwrap();
    let log = LOG.lock().unwrap();
    let announced = String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| line.contains("unsealed") && line.contains(&*path.to_string_lossy()))
        .inspect(|line| assert!(line.contains("FileStore::seal_key"), "{line}"))
        .count();
    assert_eq!(announced, 1);
}

// ---- Captured warnings -------------------------------------------------

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every warning to `LOG`, once per test process. Warnings come
/// from the blocking pool's threads, so the capture is process-wide.
fn capture_warnings() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// How many "unusable" warnings named `path`.
fn warnings_about(path: &Path) -> usize {
    let path = path.canonicalize().unwrap();
    let log = LOG.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| line.contains("unusable") && line.contains(&*path.to_string_lossy()))
        .count()
}
