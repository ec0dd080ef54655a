//! Installs a test server's npm packages on first use, so that `cargo test`
//! is all the set-up a fresh clone needs.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use fs4::FileExt;

/// Makes sure the npm project `tests/<folder>` has its `node_modules`, and
/// returns the project's path.
///
/// When they are missing, or older than its `package-lock.json`, this runs
/// `npm ci` there once. Tests in one binary and parallel test binaries take
/// turns through a file lock and look again once they hold it, so only the
/// first one installs.
///
/// # Panics
///
/// When npm is not on the PATH (with a hint), or the install fails (with
/// npm's output).
pub(crate) fn ensure_installed(folder: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(folder);
    if installed(&dir) {
        return dir;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(tmp).expect("cargo's temporary folder for tests");
    let lock_path = tmp.join(format!("npm-{folder}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", lock_path.display()));
    // Blocking: a test that finds another one installing waits for it.
    FileExt::lock(&lock).unwrap_or_else(|err| panic!("cannot lock {}: {err}", lock_path.display()));
    if !installed(&dir) {
        npm_ci(&dir, folder);
    }
    // Dropping the file releases the lock.
    drop(lock);
    dir
}

/// Whether `npm ci` completed for the current lock file: npm writes
/// `node_modules/.package-lock.json` last, and a checkout that changes the
/// pins makes `package-lock.json` newer than it.
fn installed(dir: &Path) -> bool {
    let modified = |path: PathBuf| fs::metadata(path).and_then(|meta| meta.modified()).ok();
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(pinned)) => installed >= pinned,
        _ => false,
    }
}

fn npm_ci(dir: &Path, folder: &str) {
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "tests/{folder} needs node (20 or later) and npm on the PATH, to install its npm \
                 packages with `npm ci --prefix tests/{folder}`: {err}"
            )
        });
    assert!(
        output.status.success(),
        "`npm ci` in tests/{folder} failed ({}); run `npm ci --prefix tests/{folder}` to see \
         why.\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// A node server of ours (`tests/<folder>/server.mjs`), running until
/// dropped.
pub(crate) struct NodeServer {
    /// What the server printed after `READY `: its base URL or issuer.
    pub(crate) base: String,
    /// Held open: the servers exit when their stdin closes, so a test
    /// process that dies takes its servers with it.
    _stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

impl NodeServer {
    /// Installs the npm project `tests/<folder>` if needed (see
    /// [`ensure_installed`]), starts its `server.mjs` with `env`, and waits
    /// for its `READY <base>` line. `what` names it in panics.
    ///
    /// # Panics
    ///
    /// When node is missing, or the server does not start within 30 s.
    pub(crate) async fn start(folder: &str, what: &str, env: &[(&str, &str)]) -> NodeServer {
        use tokio::io::{AsyncBufReadExt, BufReader};

        let dir = ensure_installed(folder);
        let mut child = tokio::process::Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("the {what} tests need node (20 or later) on the PATH: {err}")
            });
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the {what} did not start within 30 s"))
            .unwrap_or_else(|err| panic!("the {what}'s stdout: {err}"))
            .unwrap_or_else(|| panic!("the {what} exited before it was ready"));
        let base = ready
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected first line from the {what}: {ready}"))
            .to_owned();
        // A server may write notices later on: keep reading, or its next
        // write would hit a closed pipe and kill it (EPIPE).
        let name = what.to_owned();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{name}: {line}");
            }
        });
        NodeServer {
            base,
            _stdin: stdin,
            _child: child,
        }
    }
}
