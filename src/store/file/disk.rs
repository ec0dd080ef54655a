//! The blocking file operations behind [`FileStore`](super::FileStore):
//! the folder check at open, atomic writes, and the advisory lock. Every
//! function here runs on Tokio's blocking pool (or in `open`).
//!
//! Nothing found at the store's paths is trusted: files are opened without
//! following a symbolic link or waiting on a FIFO, and used only if they
//! are plain files of this user that no one else may write.

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
    /// 0700 on Unix) if needed, checking that it is private, and proving it
    /// writable by creating the lock file and a temporary file. The error
    /// is the whole message for the user.
    pub(super) fn prepare(token: &Path) -> Result<Self, String> {
        let writable = |reason: String| {
            format!("{reason}; choose a token file in a folder this process can write")
        };
        let paths = Self::locate(token).map_err(writable)?;
        private_folder(&paths.token)?;
        paths.probe().map_err(writable)?;
        Ok(paths)
    }

    /// The paths of `token` in its canonical folder, created if missing.
    fn locate(token: &Path) -> Result<Self, String> {
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
        Ok(Paths {
            token: token.to_path_buf(),
            lock: folder.join(suffixed(name, ".lock")),
            temp: folder.join(suffixed(name, ".tmp")),
        })
    }

    /// Opens the lock file and creates a file of our own in the folder.
    fn probe(&self) -> Result<(), String> {
        let (Some(folder), Some(name)) = (self.token.parent(), self.token.file_name()) else {
            return Err(format!("{} does not name a file", self.token.display()));
        };
        self.open_lock()
            .map_err(|err| format!("cannot open the lock file {}: {err}", self.lock.display()))?;
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
        Ok(())
    }

    /// The file's bytes, `None` if there is no file yet. A file past the
    /// size limit is returned cut, which makes it unparsable.
    pub(super) fn read(&self) -> io::Result<Option<Vec<u8>>> {
        let mut options = OpenOptions::new();
        options.read(true);
        let file = match open_trusted(&mut options, &self.token) {
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
        open_trusted(&mut options, &self.lock)
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

/// Opens `path` without following a symbolic link or blocking on a FIFO,
/// and checks what was opened (see [`trusted`]).
fn open_trusted(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        // Both flags fit an `i32` (they are small positive constants).
        let flags = (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits();
        std::os::unix::fs::OpenOptionsExt::custom_flags(options, flags as i32);
    }
    let file = options.open(path).map_err(|err| {
        let link = fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
        if link {
            untrusted(path, "is a symbolic link, which is not followed")
        } else {
            err
        }
    })?;
    trusted(&file, path)?;
    Ok(file)
}

/// Checks an open file (`fstat`): a regular file, owned by this process's
/// effective user, that neither its group nor others may write. Anyone else
/// could have put a token of theirs there, or could read ours.
#[cfg(unix)]
fn trusted(file: &File, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(untrusted(path, "is not a regular file"));
    }
    let user = rustix::process::geteuid().as_raw();
    if meta.uid() != user {
        return Err(untrusted(
            path,
            &format!(
                "belongs to user {}, not to this process's user {user}",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            path,
            &format!(
                "may be written by others (mode {:o}); make it private with mode 600",
                meta.mode() & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn trusted(file: &File, path: &Path) -> io::Result<()> {
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(untrusted(path, "is not a regular file"))
    }
}

fn untrusted(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {what}; the store does not use it", path.display()),
    )
}

/// Checks the token's folder as ssh's `StrictModes` does: it belongs to
/// this user (or root), and neither its group nor others may write in it,
/// or they could replace the files in it.
#[cfg(unix)]
fn private_folder(token: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let folder = token.parent().unwrap_or(Path::new("."));
    let meta = fs::metadata(folder)
        .map_err(|err| format!("cannot inspect the folder {}: {err}", folder.display()))?;
    let user = rustix::process::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != user && meta.uid() != 0 {
        return Err(format!(
            "the folder {} belongs to user {}, not to this process's user {user}; use a private folder of this user's",
            folder.display(),
            meta.uid()
        ));
    }
    if mode & 0o022 != 0 {
        let shared = if mode & 0o1000 != 0 {
            "is a shared folder (like /tmp)"
        } else {
            "may be written by others"
        };
        return Err(format!(
            "the folder {} {shared} (mode {mode:o}), where others could replace the token file; use a private folder, one that only this user can write (mode 700)",
            folder.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_folder(_token: &Path) -> Result<(), String> {
    Ok(())
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
