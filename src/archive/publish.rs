//! The one place that publishes a file: every save, `ach import`, `ach
//! repack` and `ach export` goes through [`atomic_write`].
//!
//! The new bytes go to a temporary file beside the target, which this save
//! holds an exclusive advisory lock on from creation to rename. The file is
//! synced, renamed over the target (or linked without clobbering), and the
//! directory is synced. At any instant the path holds the old file or the
//! new one, never a torn one, and two saves to one path never touch each
//! other's temporaries: a leftover temporary is removed only when its lock
//! can be taken, which is when the save that made it has died.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How [`atomic_write`] publishes.
#[derive(Clone, Copy, Debug)]
pub struct PublishOptions {
    /// Replace an existing file at the path (otherwise the publish fails
    /// with [`Error::AlreadyExists`], even if a file appears there while the
    /// new one is being written).
    pub overwrite: bool,
    /// Sync the file before the rename and the directory after it. Off is
    /// for scratch files and benchmarks: after a crash soon after, the old
    /// file may reappear (never a torn one).
    pub durable: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            overwrite: false,
            durable: true,
        }
    }
}

/// What [`atomic_write`] did besides writing.
#[derive(Debug)]
pub struct Published<T> {
    /// What the writing function returned.
    pub value: T,
    /// The file actually replaced or created: the path given, or the file
    /// a symbolic link at that path points to.
    pub target: PathBuf,
    /// Things the user should know that did not stop the publish: leftover
    /// temporaries removed, a directory sync that failed after the rename.
    pub warnings: Vec<String>,
    /// Time spent syncing the file and its directory.
    pub sync_time: Duration,
}

/// Temporary files are `.NAME.XXXXXX.ach-tmp` beside the target `NAME`,
/// `XXXXXX` being six random ASCII letters and digits (layout.md §11).
pub(crate) const TEMP_SUFFIX: &str = ".ach-tmp";
const TEMP_RAND_LEN: usize = 6;
/// Symbolic links followed before giving up, as the kernel's own limit.
const MAX_LINK_HOPS: usize = 40;

/// Writes a file at `path` atomically: `write` fills a fresh temporary file
/// beside the target (it may seek; the file starts empty), then the file is
/// published as [`PublishOptions`] say. If `write` fails, or anything before
/// the rename does, the temporary is removed and the path is untouched.
///
/// A symbolic link at `path` is followed: the file it points to is replaced
/// (keeping that file's permissions) and the link stays a link. A new file
/// gets mode 0666 narrowed by the umask, as any new file would.
///
/// ```
/// use achronyme_env::{Error, PublishOptions, atomic_write};
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("notes.txt");
/// let opts = PublishOptions { overwrite: true, ..Default::default() };
/// atomic_write(&path, &opts, |file| {
///     file.write_all(b"hello").map_err(|e| Error::io("writing", &path, e))
/// })
/// .unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// ```
pub fn atomic_write<T>(
    path: &Path,
    options: &PublishOptions,
    write: impl FnOnce(&mut File) -> Result<T>,
) -> Result<Published<T>> {
    let target = resolve_target(path)?;
    if !options.overwrite && target.exists() {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let prefix = format!(".{file_name}.");
    let mut warnings = Vec::new();
    let stale = remove_abandoned_temporaries(&dir, &prefix);
    if stale > 0 {
        warnings.push(format!(
            "removed {stale} temporary file(s) left beside {file_name:?} by an interrupted save"
        ));
    }
    let (mut tmp, unlocked) = locked_temporary(&dir, &prefix)?;
    if let Some(e) = unlocked {
        warnings.push(format!(
            "the file system would not lock the temporary file ({e}); a save to the same \
             path started now could remove it, and leftovers of interrupted saves are kept"
        ));
    }
    // On any error from here to the rename, `tmp` is dropped, which deletes
    // the temporary file and releases its lock.
    let value = write(tmp.as_file_mut())?;

    let started = Instant::now();
    // Replacing a file keeps its permissions; set through the open handle,
    // before the sync, so the mode is as durable as the bytes.
    if let Ok(old) = std::fs::metadata(&target) {
        let _ = tmp.as_file().set_permissions(old.permissions());
    }
    if options.durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing", tmp.path(), e))?;
    }
    let persisted = if options.overwrite {
        tmp.persist(&target)
    } else {
        tmp.persist_noclobber(&target)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            Error::io("renaming the new file onto", &target, e.error)
        }
    })?;
    // The new file is in place now: a failure to sync the directory must
    // not be reported as a failed publish (the caller would believe the old
    // file intact). It is a warning that the rename may not survive a crash.
    if options.durable
        && let Err(e) = sync_dir(&dir)
    {
        warnings.push(format!(
            "the file was saved, but syncing its directory failed ({e}); \
             after a crash the previous version might reappear"
        ));
    }
    Ok(Published {
        value,
        target,
        warnings,
        sync_time: started.elapsed(),
    })
}

/// The file a publish to `path` replaces: `path` itself, or where the chain
/// of symbolic links at `path` ends (which need not exist yet). Refuses a
/// path that names no file, or names a directory or another non-file.
fn resolve_target(path: &Path) -> Result<PathBuf> {
    let not_a_file = |path: &Path, what: &'static str| Error::InvalidSavePath {
        path: path.to_path_buf(),
        what,
    };
    let mut target = path.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        if target.file_name().is_none() {
            // "", "dir/..", "/": nothing to rename onto.
            return Err(not_a_file(path, "a path with no file name at its end"));
        }
        let meta = match std::fs::symlink_metadata(&target) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(Error::io("looking at", &target, e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            refuse_planted_link(path, &target, &meta)?;
            let link = std::fs::read_link(&target)
                .map_err(|e| Error::io("reading the symbolic link", &target, e))?;
            target = match target.parent() {
                Some(parent) if link.is_relative() => parent.join(link),
                _ => link,
            };
        } else if kind.is_dir() {
            return Err(not_a_file(path, "a directory"));
        } else if !kind.is_file() {
            return Err(not_a_file(path, "not a regular file"));
        } else {
            return Ok(target);
        }
    }
    Err(not_a_file(path, "a chain of more than 40 symbolic links"))
}

/// Refuses to follow a symbolic link that another user may have planted:
/// one in a world-writable sticky directory (such as `/tmp`) owned neither
/// by this process's user nor by the directory's owner. This is the rule
/// the kernel applies when it follows links itself (Linux's
/// `protected_symlinks`); a publish resolves links by hand before it
/// renames, so it must apply the rule itself, or a link left in `/tmp` by
/// someone else could make a save replace any file this user can write.
fn refuse_planted_link(path: &Path, link: &Path, meta: &std::fs::Metadata) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let parent = match link.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = std::fs::metadata(parent).map_err(|e| Error::io("looking at", parent, e))?;
        let sticky_and_shared = dir.mode() & 0o1002 == 0o1002;
        // SAFETY: geteuid has no preconditions, touches no memory of ours
        // and cannot fail (POSIX).
        let me = unsafe { libc::geteuid() };
        if sticky_and_shared && meta.uid() != me && meta.uid() != dir.uid() {
            return Err(Error::InvalidSavePath {
                path: path.to_path_buf(),
                what: "a symbolic link another user owns in a shared directory",
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, link, meta);
    Ok(())
}

/// A new temporary file in `dir` named `PREFIX XXXXXX .ach-tmp`, locked
/// exclusively. Another save may take a temporary for abandoned in the
/// instant between its creation and its locking, and remove it; then the
/// name no longer leads to our file, and we make another.
///
/// Where the file system cannot lock (some network file systems), the
/// temporary is used unlocked and `Ok((tmp, Some(why)))` says so: the
/// publish still works, but its leftovers cannot be told from a live save's.
fn locked_temporary(
    dir: &Path,
    prefix: &str,
) -> Result<(tempfile::NamedTempFile, Option<std::io::Error>)> {
    let mut last_error = None;
    for _ in 0..8 {
        let tmp = temp_builder(prefix)
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
        match tmp.as_file().try_lock() {
            Ok(()) => {}
            // A cleaner holds it and is about to remove it.
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Ok((tmp, Some(e))),
        }
        if still_linked(&tmp) {
            return Ok((tmp, None));
        }
        last_error = Some(tmp.path().to_path_buf());
    }
    Err(Error::io(
        "creating a temporary file in",
        dir,
        std::io::Error::other(format!(
            "other saves kept removing the temporary files (last {:?}); \
             are many saves to this path running at once?",
            last_error.unwrap_or_default()
        )),
    ))
}

/// Whether the temporary's name still leads to the file we hold open.
fn still_linked(tmp: &tempfile::NamedTempFile) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (
            tmp.as_file().metadata(),
            std::fs::symlink_metadata(tmp.path()),
        ) {
            (Ok(ours), Ok(named)) => ours.dev() == named.dev() && ours.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        tmp.path().exists()
    }
}

/// The temporary file beside the target. On Unix it is created with mode
/// 0666, which the process's umask narrows exactly as for any new file
/// (tempfile's default, 0600, would make every archive private).
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .rand_bytes(TEMP_RAND_LEN)
        .suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b
}

/// Whether `file_name` is one of our temporary files for the target whose
/// temporaries start with `prefix` (`.NAME.`).
fn is_temporary_of(file_name: &str, prefix: &str) -> bool {
    file_name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|mid| {
            mid.len() == TEMP_RAND_LEN && mid.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes this target's temporary files whose lock can be taken: their
/// save was killed (a crash, SIGKILL, power loss), since a running save
/// holds its lock until the rename and the kernel drops the lock of a dead
/// process. A save still running elsewhere, however slow, is left alone.
/// Best effort: a file that cannot be opened, locked or removed is skipped.
/// Returns how many were removed.
fn remove_abandoned_temporaries(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temporary_of(name, prefix) {
            continue;
        }
        // Opened without following a link or waiting on a FIFO someone put
        // there, and checked on the descriptor: what is checked is what is
        // locked and removed.
        let Ok(file) = open_no_follow(&entry.path()) else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        // Held while removing, so its owner (if it is between creating and
        // locking it) sees the name gone and makes another.
        if file.try_lock().is_ok() && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Opens `path` for reading without following a final symbolic link and
/// without blocking on a FIFO.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_recognised_by_their_exact_pattern() {
        let p = ".work.ach.";
        assert!(is_temporary_of(".work.ach.a1B2c3.ach-tmp", p));
        assert!(!is_temporary_of(".work.ach.a1B2c.ach-tmp", p), "5 random");
        assert!(!is_temporary_of(".work.ach.a1B2c3d.ach-tmp", p), "7 random");
        assert!(!is_temporary_of(".work.ach.a1-2c3.ach-tmp", p), "not alnum");
        assert!(
            !is_temporary_of(".other.ach.a1B2c3.ach-tmp", p),
            "other target"
        );
        assert!(!is_temporary_of(".work.ach.a1B2c3.ach", p), "other suffix");
        assert!(!is_temporary_of("work.ach", p));
    }

    #[test]
    fn a_locked_temporary_is_kept_and_an_unlocked_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (live, unlocked) = locked_temporary(dir.path(), ".w.ach.").unwrap();
        assert!(unlocked.is_none(), "this file system locks");
        let dead = temp_builder(".w.ach.")
            .tempfile_in(dir.path())
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        assert_eq!(remove_abandoned_temporaries(dir.path(), ".w.ach."), 1);
        assert!(live.path().exists(), "a save's own temporary survives");
        assert!(!dead.exists(), "an abandoned temporary is removed");
    }
}
