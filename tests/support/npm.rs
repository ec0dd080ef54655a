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
