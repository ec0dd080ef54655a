//! Reading a credential that a platform keeps in a file and rewrites every
//! few minutes (a Kubernetes projected service-account token, a CI OIDC
//! token): afresh on each token request, bounded in size and time.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// A token file larger than this is refused: JWTs are a few KiB.
pub(super) const MAX_LEN: u64 = 64 * 1024;

/// A read that takes longer than this is given up (a hung network file
/// system): the token request fails instead of waiting with it.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads `path`, trimmed of whitespace, on Tokio's blocking pool.
///
/// Symbolic links are followed: Kubernetes swaps a projected token by
/// pointing a link at a new folder, so the path the pod sees is a link.
/// What is opened must be a regular file, which is checked on the open
/// file; it is opened without blocking, so a FIFO (which would wait for
/// a writer) is refused at once rather than stranding a thread.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `what` and the path when the file is
/// missing, unreadable, not a regular file, empty, too large or too slow.
/// No part of the file's content is in the error.
pub(super) async fn read(what: &str, path: &Path) -> Result<SecretString, Error> {
    let owned = path.to_owned();
    let reading = tokio::task::spawn_blocking(move || read_blocking(&owned));
    let why = match tokio::time::timeout(READ_TIMEOUT, reading).await {
        Ok(Ok(Ok(token))) => return Ok(token),
        Ok(Ok(Err(why))) => why,
        // The blocking pool drops tasks only while the runtime shuts down.
        Ok(Err(_)) => "the read was cancelled".to_owned(),
        Err(_) => format!("reading it took longer than {READ_TIMEOUT:?}"),
    };
    Err(unreadable(what, path, &why))
}

fn unreadable(what: &str, path: &Path, why: &str) -> Error {
    Error::config(format!(
        "the {what} file {} could not be used: {why}; check the path, and that the platform \
         writes the token there",
        path.display()
    ))
}

fn read_blocking(path: &Path) -> Result<SecretString, String> {
    let file = open(path).map_err(|err| describe(&err))?;
    let meta = file.metadata().map_err(|err| describe(&err))?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_owned());
    }
    let too_large = || format!("it is larger than {} KiB", MAX_LEN / 1024);
    if meta.len() > MAX_LEN {
        return Err(too_large());
    }
    // The file may grow between the check and the read: read one byte more
    // than allowed to tell.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    let read = file.take(MAX_LEN + 1).read_to_end(&mut bytes);
    let bytes = secrecy::SecretSlice::from(bytes);
    read.map_err(|err| describe(&err))?;
    if bytes.expose_secret().len() as u64 > MAX_LEN {
        return Err(too_large());
    }
    let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| "it is not UTF-8 text")?;
    let token = text.trim();
    if token.is_empty() {
        return Err("it is empty".to_owned());
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(unix)]
fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

/// What went wrong, in words: the OS error, never a path (the caller names
/// it) or content.
fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "it does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => format!("{err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_in(dir: &tempfile::TempDir, name: &str) -> Result<String, String> {
        read("subject token", &dir.path().join(name))
            .await
            .map(|token| token.expose_secret().to_owned())
            .map_err(|err| {
                assert!(!err.is_transient(), "{err}");
                err.to_string()
            })
    }

    #[tokio::test]
    async fn each_read_sees_the_current_content_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  first.jwt\n").unwrap();
        assert_eq!(read_in(&dir, "token").await.unwrap(), "first.jwt");
        // Rotated as Kubernetes does: a new file renamed over the old one.
        std::fs::write(dir.path().join("next"), "second.jwt\n").unwrap();
        std::fs::rename(dir.path().join("next"), &path).unwrap();
        assert_eq!(read_in(&dir, "token").await.unwrap(), "second.jwt");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symbolic_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        std::fs::write(dir.path().join("..data/token"), "linked.jwt").unwrap();
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();
        assert_eq!(read_in(&dir, "token").await.unwrap(), "linked.jwt");
    }

    #[tokio::test]
    async fn a_missing_file_is_a_permanent_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_in(&dir, "absent").await.unwrap_err();
        assert!(err.contains("subject token file"), "{err}");
        assert!(
            err.contains(&dir.path().join("absent").display().to_string()),
            "{err}"
        );
        assert!(err.contains("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_or_blank_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blank"), " \n\t").unwrap();
        let err = read_in(&dir, "blank").await.unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }

    #[tokio::test]
    async fn an_oversized_file_is_refused_without_echo() {
        let dir = tempfile::tempdir().unwrap();
        let big = "s".repeat(MAX_LEN as usize + 1);
        std::fs::write(dir.path().join("big"), &big).unwrap();
        let err = read_in(&dir, "big").await.unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");
        assert!(!err.contains("sss"), "{err}");
    }

    #[tokio::test]
    async fn a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("folder")).unwrap();
        let err = read_in(&dir, "folder").await.unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    /// Opening a FIFO for reading would wait for a writer; it is refused at
    /// once, by its type (a hung open would end in the timeout's message).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_in(&dir, "fifo").await.unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn an_unreadable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked");
        std::fs::write(&path, "t").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads anything; the check only means something for others.
        if File::open(&path).is_err() {
            let err = read_in(&dir, "locked").await.unwrap_err();
            assert!(err.contains("permission denied"), "{err}");
        }
    }
}
