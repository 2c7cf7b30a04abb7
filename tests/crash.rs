//! Crash safety and readers during a replace: a save killed (SIGKILL) at any
//! moment leaves the path holding an archive that verifies, old or new, and
//! a temporary file the next save recognises and removes; a reader that has
//! mapped the old archive keeps reading the old bytes after a replace.
//!
//! The saves to kill run in a child process: this test binary re-executed
//! with `CHILD_SAVE_TO` set runs `child_process_save` and nothing else.
//! Kill moments are chosen by how many bytes the child has written to its
//! temporary file (seeded), not by timers.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use achronyme_env::testdata::Rng;
use achronyme_env::*;
use common::*;

const CHILD_SAVE_TO: &str = "ACH_CRASH_TEST_SAVE_TO";
const CHILD_GENERATION: &str = "ACH_CRASH_TEST_GENERATION";
/// Set: the child restores the archive at `CHILD_SAVE_TO`, sets `resaves`
/// to `CHILD_GENERATION` and saves it back, copying the unchanged tensors
/// from the very file it replaces.
const CHILD_RESAVE: &str = "ACH_CRASH_TEST_RESAVE";

/// 4 tensors of 16 MiB: a 64 MiB archive.
const TENSORS: usize = 4;
const ELEMENTS: usize = 2 * 1024 * 1024;

/// Generation `g`: every element of every tensor is `g`, so a reader can
/// tell old from new and notice any mix of the two.
fn generation(g: u32) -> Environment {
    let mut env = Environment::new();
    for t in 0..TENSORS {
        let data = vec![f64::from(g); ELEMENTS];
        env.set(
            format!("t{t}"),
            Value::Tensor(Tensor::new(vec![ELEMENTS], data).unwrap()),
        );
    }
    env.set("generation", Value::Number(f64::from(g)));
    env
}

fn overwrite() -> SaveOptions {
    SaveOptions {
        allow_overwrite: true,
        ..fast()
    }
}

/// Runs in the child only: saves generation `CHILD_GENERATION` over
/// `CHILD_SAVE_TO`. In a normal test run neither is set and it does nothing.
#[test]
fn child_process_save() {
    let Some(path) = std::env::var_os(CHILD_SAVE_TO) else {
        return;
    };
    let g = std::env::var(CHILD_GENERATION).unwrap().parse().unwrap();
    // Durable, as users save: the kills also land in the fsyncs.
    let options = SaveOptions {
        allow_overwrite: true,
        ..SaveOptions::default()
    };
    if std::env::var_os(CHILD_RESAVE).is_none() {
        save_environment(&generation(g), PathBuf::from(path), &options).unwrap();
        return;
    }
    let mut env = Environment::new();
    restore_environment(&mut env, PathBuf::from(&path), &RestoreOptions::default()).unwrap();
    env.set("resaves", Value::Number(f64::from(g)));
    // Raw, as the archive it replaces was saved, so that every tensor
    // blob is accepted as stored.
    let options = SaveOptions {
        compression: Compression::None,
        ..options
    };
    let report = save_environment(&env, PathBuf::from(path), &options).unwrap();
    // Every tensor copied from the file being replaced, none rewritten.
    assert_eq!(report.bytes_copied, (TENSORS * (64 + ELEMENTS * 8)) as u64);
}

/// Whether `name` looks like a temporary file of the target `file_name`:
/// `.NAME.XXXXXX.ach-tmp` (layout.md §11).
fn is_temporary_of(name: &str, file_name: &str) -> bool {
    name.strip_prefix(&format!(".{file_name}."))
        .and_then(|r| r.strip_suffix(".ach-tmp"))
        .is_some_and(|mid| mid.len() == 6 && mid.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".ach-tmp"))
        })
        .map(|e| e.path())
        .collect()
}

/// The generation the archive at `path` holds, after checking that it
/// verifies and that every tensor belongs to that one generation.
fn verified_generation(path: &Path) -> u32 {
    let archive = Archive::open(path).unwrap();
    archive.verify().unwrap();
    let Value::Number(g) = archive.get("generation").unwrap() else {
        panic!("generation is not a number")
    };
    for t in 0..TENSORS {
        let Value::Tensor(x) = archive.get(&format!("t{t}")).unwrap() else {
            panic!("t{t} is not a tensor")
        };
        assert_eq!(x.data().len(), ELEMENTS);
        assert!(x.data().iter().all(|&v| v == g), "t{t} mixes generations");
    }
    g as u32
}

/// How a child save ended.
#[derive(Debug, PartialEq)]
enum End {
    Killed,
    Finished,
}

/// Starts a child that saves generation `g` over `path`, and SIGKILLs it as
/// soon as its temporary file holds `kill_at` bytes or more (0: at once);
/// with `kill_at` past the archive's size, as soon as its temporary file has
/// been renamed (the save is then syncing the directory or returning). A
/// child that finishes first is left to finish.
fn save_and_kill(path: &Path, g: u32, kill_at: u64, full: u64) -> End {
    kill_child(path, g, false, kill_at, full)
}

/// [`save_and_kill`], for a child that saves generation `g` (`resave`
/// false) or restores the archive and saves it back with `resaves` set to
/// `g` (true).
fn kill_child(path: &Path, g: u32, resave: bool, kill_at: u64, full: u64) -> End {
    let dir = path.parent().unwrap();
    // Temporaries left by earlier kills are not this child's.
    let earlier = temporaries(dir);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_process_save", "--test-threads=1"])
        .env(CHILD_SAVE_TO, path)
        .env(CHILD_GENERATION, g.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resave {
        command.env(CHILD_RESAVE, "1");
    }
    let mut child = command.spawn().unwrap();
    let mut seen = false;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the child's save failed: {status}");
            return End::Finished;
        }
        let own: Vec<u64> = temporaries(dir)
            .iter()
            .filter(|t| !earlier.contains(t))
            .filter_map(|t| std::fs::metadata(t).ok())
            .map(|m| m.len())
            .collect();
        let renamed = seen && own.is_empty();
        seen |= !own.is_empty();
        let written = own.iter().max().copied().unwrap_or(0);
        let now = if kill_at > full {
            renamed
        } else {
            kill_at == 0 || written >= kill_at
        };
        if now {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return End::Killed;
        }
        std::thread::yield_now();
    }
}

struct Survived {
    kills: usize,
    old: usize,
    new: usize,
}

fn kill_saves_at_random_moments(kills: usize, seed: u64) -> Survived {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.ach");
    let mut current = 1;
    save_environment(&generation(current), &path, &fast()).unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    assert!(full > 64 << 20, "the archive is {full} bytes");

    let mut rng = Rng::new(seed);
    let mut survived = Survived {
        kills: 0,
        old: 0,
        new: 0,
    };
    let mut g = current;
    while survived.kills < kills {
        g += 1;
        // Anywhere from before the temporary file exists to its last byte,
        // and one kill in eight just after the rename.
        let kill_at = rng.next_u64() % (full + full / 8);
        let end = save_and_kill(&path, g, kill_at, full);
        let found = verified_generation(&path);
        match end {
            End::Finished => assert_eq!(found, g, "a finished save is in place"),
            End::Killed => {
                survived.kills += 1;
                if found == g {
                    survived.new += 1;
                } else {
                    assert_eq!(found, current, "neither the old nor the new archive");
                    survived.old += 1;
                }
            }
        }
        current = found;
        let file_name = "work.ach";
        for t in temporaries(dir.path()) {
            let name = t.file_name().unwrap().to_str().unwrap();
            assert!(is_temporary_of(name, file_name), "unrecognisable {name}");
        }
    }

    // The next save removes whatever the killed ones left, and only that.
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let stale = temporaries(dir.path()).len();
    let report = save_environment(&generation(g + 1), &path, &overwrite()).unwrap();
    assert_eq!(temporaries(dir.path()), Vec::<PathBuf>::new());
    if stale > 0 {
        let said = format!("removed {stale} temporary");
        assert!(
            report.warnings.iter().any(|w| w.contains(&said)),
            "{:?}",
            report.warnings
        );
    }
    assert_eq!(
        dir_entries(dir.path()),
        ["notes.txt".to_string(), "work.ach".to_string()]
    );
    assert_eq!(verified_generation(&path), g + 1);
    survived
}

#[cfg(unix)]
#[test]
fn a_save_killed_at_any_moment_leaves_the_old_or_the_new_archive() {
    let s = kill_saves_at_random_moments(24, 0x5EED_C0DE);
    eprintln!("{} kills survived: {} old, {} new", s.kills, s.old, s.new);
    assert_eq!(s.kills, 24);
}

/// A save that copies its tensors from the archive it replaces (restored
/// from it, one scalar changed), killed at any moment: the path holds the
/// old or the new archive, verifying, tensors intact.
#[cfg(unix)]
#[test]
fn a_save_copying_from_the_archive_it_replaces_killed_at_any_moment_leaves_old_or_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.ach");
    let mut first = generation(1);
    first.set("resaves", Value::Number(0.0));
    save_environment(&first, &path, &fast()).unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    let resaves = |path: &Path| match Archive::open(path).unwrap().get("resaves").unwrap() {
        Value::Number(n) => n as u32,
        other => panic!("resaves is {other:?}"),
    };
    let mut rng = Rng::new(0xC0_9105);
    let (mut current, mut kills, mut new) = (0, 0, 0);
    for n in 1..=16 {
        let kill_at = rng.next_u64() % (full + full / 8);
        let end = kill_child(&path, n, true, kill_at, full);
        // The tensors are generation 1's whatever happened, checksums and all.
        assert_eq!(verified_generation(&path), 1);
        let found = resaves(&path);
        match end {
            End::Finished => assert_eq!(found, n, "a finished save is in place"),
            End::Killed => {
                kills += 1;
                assert!(
                    found == n || found == current,
                    "resaves {found}: neither old nor new"
                );
                new += usize::from(found == n);
            }
        }
        current = found;
    }
    eprintln!("{kills} kills of copying saves survived, {new} after the rename");
    assert!(kills >= 8, "only {kills} of 16 saves were killed");
    // One left to finish: the child checks it copied every tensor.
    assert_matches!(
        kill_child(&path, 17, true, u64::MAX, u64::MAX),
        End::Finished
    );
    assert_eq!((verified_generation(&path), resaves(&path)), (1, 17));
}

/// The same with many more kills: `cargo test --release --test crash -- --ignored`.
#[cfg(unix)]
#[test]
#[ignore = "slow: hundreds of 64 MiB saves"]
fn many_saves_killed_at_any_moment_leave_the_old_or_the_new_archive() {
    let s = kill_saves_at_random_moments(300, 0xC4A5_11ED);
    eprintln!("{} kills survived: {} old, {} new", s.kills, s.old, s.new);
    assert_eq!(s.kills, 300);
}

#[test]
fn a_mapped_view_keeps_the_old_data_after_another_thread_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.ach");
    let mut old = Environment::new();
    old.set("x", Value::Tensor(iota(&[256, 256])));
    old.set("y", Value::Tensor(iota(&[1000])));
    save(&old, &path);

    let archive = Archive::open(&path).unwrap();
    let Value::Tensor(x) = archive.get("x").unwrap() else {
        panic!("x is not a tensor")
    };
    assert!(x.is_mapped(), "the test needs a view into the mapping");

    let replace_path = path.clone();
    std::thread::spawn(move || {
        let mut new = Environment::new();
        new.set(
            "x",
            Value::Tensor(Tensor::new(vec![3], vec![-1.0; 3]).unwrap()),
        );
        new.set("y", Value::from("replaced"));
        save_environment(&new, &replace_path, &overwrite()).unwrap();
    })
    .join()
    .unwrap();

    // The path holds the new archive...
    assert_eq!(
        Archive::open(&path).unwrap().get("y").unwrap(),
        Value::from("replaced")
    );
    // ...while the view, and the archive opened before the replace, still
    // read the old file, checksums and all.
    assert_eq!(Value::Tensor(x), old.get("x").unwrap().clone());
    assert_eq!(&archive.get("y").unwrap(), old.get("y").unwrap());
    archive.verify().unwrap();
}

#[cfg(unix)]
#[test]
fn an_archive_opened_before_a_replace_by_another_process_reads_the_old_file() {
    // Opened (header and table read, nothing mapped yet), then replaced by a
    // save in another process, then loaded: the open handle keeps the old file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.ach");
    save_environment(&generation(1), &path, &fast()).unwrap();
    let archive = Archive::open(&path).unwrap();
    assert_matches!(save_and_kill(&path, 2, u64::MAX, u64::MAX), End::Finished);
    assert_eq!(verified_generation(&path), 2);
    let Value::Tensor(t) = archive.get("t0").unwrap() else {
        panic!("t0 is not a tensor")
    };
    assert!(t.data().iter().all(|&v| v == 1.0));
    archive.verify().unwrap();
}
