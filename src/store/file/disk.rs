//! The blocking file operations behind [`FileStore`](super::FileStore):
//! the folder check at open, atomic writes, and the advisory lock. Every
//! function here runs on Tokio's blocking pool (or in `open`).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fs4::{FileExt, TryLockError};

/// A token file is a few hundred bytes; anything much larger is not ours,
/// and is not read whole.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The three paths of a store, all in one folder so that the rename is
/// atomic and the lock sits beside what it guards.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    pub(super) token: PathBuf,
    pub(super) lock: PathBuf,
    temp: PathBuf,
}

impl Paths {
    /// Checks that `token` can be a token file, creating its folder (mode
    /// 0700 on Unix) if needed, and proves the folder writable by creating
    /// the lock file and a temporary file.
    pub(super) fn prepare(token: &Path) -> Result<Self, String> {
        let name = token
            .file_name()
            .ok_or_else(|| format!("{} does not name a file", token.display()))?;
        let folder = match token.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_folder(&folder)
            .map_err(|err| format!("cannot create the folder {}: {err}", folder.display()))?;
        // One name for the file however it was reached, so every store on
        // it agrees on the paths (and on the warnings given about it).
        let folder = fs::canonicalize(&folder)
            .map_err(|err| format!("cannot resolve the folder {}: {err}", folder.display()))?;
        let token = &folder.join(name);
        if token.is_dir() {
            return Err(format!(
                "{} is a folder; give the path of a file in it",
                token.display()
            ));
        }
        let paths = Paths {
            token: token.to_path_buf(),
            lock: folder.join(suffixed(name, ".lock")),
            temp: folder.join(suffixed(name, ".tmp")),
        };
        paths
            .open_lock()
            .map_err(|err| format!("cannot open the lock file {}: {err}", paths.lock.display()))?;
        // A name of its own: the writers' temporary file may be in use by
        // another process, and other stores may be opening at once.
        let probe = folder.join(suffixed(
            name,
            &format!(
                ".{}-{}.probe",
                std::process::id(),
                PROBES.fetch_add(1, Ordering::Relaxed)
            ),
        ));
        create_private(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|err| format!("cannot write in the folder {}: {err}", folder.display()))?;
        Ok(paths)
    }

    /// The file's bytes, `None` if there is no file yet. A file past the
    /// size limit is returned cut, which makes it unparsable.
    pub(super) fn read(&self) -> io::Result<Option<Vec<u8>>> {
        let file = match File::open(&self.token) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// Replaces the token file with `bytes`: written to a temporary file in
    /// the same folder, fsynced, then renamed over the old one, so a
    /// reader sees the old file or the new one, never half of one.
    ///
    /// Callers hold the lock, so the one temporary name cannot be in use;
    /// one left by a writer that crashed is simply replaced.
    pub(super) fn replace(&self, bytes: &[u8]) -> io::Result<()> {
        match fs::remove_file(&self.temp) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let mut temp = create_private(&self.temp)?;
        temp.write_all(bytes)?;
        temp.sync_all()?;
        drop(temp);
        fs::rename(&self.temp, &self.token)?;
        sync_folder(&self.token);
        Ok(())
    }

    /// Opens (or creates, mode 0600) the lock file. Each call is a new open
    /// file description, so two stores in one process exclude each other.
    pub(super) fn open_lock(&self) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        private(&mut options);
        options.open(&self.lock)
    }

    /// Takes the lock on a new open of the lock file, or `None` if another
    /// open holds it. Never blocks.
    pub(super) fn try_lock(&self) -> io::Result<Option<File>> {
        let file = self.open_lock()?;
        match FileExt::try_lock(&file) {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    /// Takes the lock, retrying for up to `patience`.
    pub(super) fn lock_within(&self, patience: Duration) -> io::Result<Option<File>> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(file) = self.try_lock()? {
                return Ok(Some(file));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether nobody holds the lock right now. Takes a shared lock for an
    /// instant, which a lease taker racing it may see as taken; it then
    /// waits one poll and looks again.
    pub(super) fn lock_is_free(&self) -> io::Result<bool> {
        let file = self.open_lock()?;
        match FileExt::try_lock_shared(&file) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }
}

/// Releases a lock taken by [`Paths::try_lock`]. Closing the file would
/// too; unlocking first also covers a descriptor inherited by a child.
pub(super) fn unlock(file: File) {
    let _ = FileExt::unlock(&file);
}

/// Tells apart the probe files of the stores one process opens.
static PROBES: AtomicU64 = AtomicU64::new(0);

fn suffixed(name: &std::ffi::OsStr, suffix: &str) -> OsString {
    let mut name = name.to_os_string();
    name.push(suffix);
    name
}

fn create_folder(folder: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder)
}

/// Creates a new file readable and writable by its owner only.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private(&mut options);
    let file = options.open(path)?;
    // The umask can only remove bits; this makes the mode exact.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

fn private(options: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    #[cfg(not(unix))]
    let _ = options;
}

/// Makes the rename durable. Best effort: the token is in place either
/// way, and a lost rename after a power cut costs one token call.
fn sync_folder(token: &Path) {
    #[cfg(unix)]
    if let Some(folder) = token.parent() {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        if let Ok(folder) = File::open(folder) {
            let _ = folder.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = token;
}
