//! Publishing a save: concurrent saves to one path, symbolic links, paths
//! that are not files. Real files on a real disk.

#[macro_use]
mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use achronyme_env::*;
use common::*;

/// An environment that says which save made it (`who`), with enough data
/// that compressing and syncing it takes a while.
fn env_of(who: usize) -> Environment {
    let mut env = Environment::new();
    env.set("who", Value::Number(who as f64));
    let smooth: Vec<f64> = (0..(1 << 19))
        .map(|i| ((i as f64) * 1e-4 + who as f64).sin())
        .collect();
    env.set(
        "data",
        Value::Tensor(Tensor::new(vec![smooth.len()], smooth).unwrap()),
    );
    env
}

/// Starts `n` saves of different environments to one path, `gap` apart,
/// each replacing whatever is there; returns their results.
fn concurrent_saves(path: &Path, n: usize, gap: Duration) -> Vec<Result<SaveReport>> {
    let envs: Vec<Arc<Environment>> = (0..n).map(|i| Arc::new(env_of(i))).collect();
    let start = Arc::new(Barrier::new(n));
    let handles: Vec<_> = envs
        .iter()
        .enumerate()
        .map(|(i, env)| {
            let (env, start, path) = (env.clone(), start.clone(), path.to_path_buf());
            std::thread::spawn(move || {
                start.wait();
                std::thread::sleep(gap * i as u32);
                let options = SaveOptions {
                    allow_overwrite: true,
                    compression: Compression::Zstd { level: 9 },
                    ..SaveOptions::default()
                };
                save_environment(&env, &path, &options)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// The archive at `path` is complete and is exactly one of the saved
/// environments.
fn assert_one_complete_archive(path: &Path, n: usize) {
    let archive = Archive::open(path).unwrap();
    assert!(archive.verify_report().is_ok(), "the target verifies");
    let Value::Number(who) = archive.get("who").unwrap() else {
        panic!("`who` is a number")
    };
    let who = who as usize;
    assert!(who < n);
    let mut restored = Environment::new();
    restore_environment(&mut restored, path, &RestoreOptions::default()).unwrap();
    assert_eq!(restored, env_of(who), "the target is save {who}, whole");
}

fn check_concurrent(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.ach");
    let results = concurrent_saves(&path, n, Duration::from_millis(40));
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "save {i} of {n} failed: {r:?}");
    }
    assert_one_complete_archive(&path, n);
    assert_eq!(
        dir_entries(dir.path()),
        ["work.ach"],
        "no temporary is left behind"
    );
}

#[test]
fn two_concurrent_saves_to_one_path_both_succeed() {
    check_concurrent(2);
}

#[test]
fn eight_concurrent_saves_to_one_path_all_succeed() {
    check_concurrent(8);
}

#[test]
fn concurrent_saves_without_overwrite_publish_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.ach");
    let n = 4;
    let envs: Vec<Arc<Environment>> = (0..n).map(|i| Arc::new(env_of(i))).collect();
    let start = Arc::new(Barrier::new(n));
    let results: Vec<_> = envs
        .iter()
        .map(|env| {
            let (env, start, path) = (env.clone(), start.clone(), path.clone());
            std::thread::spawn(move || {
                start.wait();
                save_environment(&env, &path, &fast())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        }
    }
    assert_one_complete_archive(&path, n);
}

#[cfg(unix)]
#[test]
fn saving_over_a_symlink_replaces_the_file_it_points_to() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let target = dir.path().join("real/work.ach");
    save_environment(&env_of(0), &target, &fast()).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("link.ach");
    std::os::unix::fs::symlink("real/work.ach", &link).unwrap();

    let options = SaveOptions {
        allow_overwrite: true,
        ..fast()
    };
    save_environment(&env_of(1), &link, &options).unwrap();

    assert!(
        link.symlink_metadata().unwrap().file_type().is_symlink(),
        "the link stays a link"
    );
    assert_eq!(
        Archive::open(&target).unwrap().get("who").unwrap(),
        Value::Number(1.0),
        "the file the link points to holds the new save"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the target keeps its permissions");
    assert_eq!(dir_entries(&dir.path().join("real")), ["work.ach"]);

    // Without allow_overwrite the existing target is refused, by the
    // path the user gave.
    assert_matches!(
        save_environment(&env_of(2), &link, &fast()),
        Err(Error::AlreadyExists { ref path }) if path == &link
    );
}

#[cfg(unix)]
#[test]
fn saving_through_a_dangling_symlink_creates_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.ach");
    std::os::unix::fs::symlink("new.ach", &link).unwrap();
    save_environment(&env_of(3), &link, &fast()).unwrap();
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        Archive::open(dir.path().join("new.ach"))
            .unwrap()
            .get("who")
            .unwrap(),
        Value::Number(3.0)
    );
}

#[test]
fn saving_to_a_directory_says_so_the_first_time() {
    let dir = tempfile::tempdir().unwrap();
    for allow_overwrite in [false, true] {
        let options = SaveOptions {
            allow_overwrite,
            ..fast()
        };
        let err = save_environment(&env_of(0), dir.path(), &options).unwrap_err();
        match &err {
            Error::InvalidSavePath { what, .. } => assert_eq!(*what, "a directory"),
            other => panic!("allow_overwrite {allow_overwrite}: got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("is a directory"), "{message}");
        assert!(!message.contains("allow_overwrite"), "{message}");
    }
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_path_that_names_no_file_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let err = save_environment(&env_of(0), dir.path().join(".."), &fast()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSavePath {
                what: "a path with no file name at its end",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

/// A publish resolves links by hand and then renames, so the kernel's
/// protection of shared sticky directories never applied: a link another
/// user left in such a directory made a save replace the file it pointed
/// to. The kernel's rule is applied: such a link is refused, and the file
/// it points to is untouched.
#[cfg(unix)]
#[test]
fn a_link_another_user_planted_in_a_shared_sticky_directory_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path().join("precious.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let link = shared.join("w.ach");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    // The link belongs to someone else (nobody), as if planted.
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();

    let options = SaveOptions {
        allow_overwrite: true,
        ..fast()
    };
    let err = save_environment(&env_of(0), &link, &options).unwrap_err();
    assert_matches!(
        &err,
        Error::InvalidSavePath { what, .. } if what.contains("another user")
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert_eq!(dir_entries(&shared), ["w.ach"], "no temporary is left");

    // A link of this user's own in the same directory is followed.
    std::fs::remove_file(&link).unwrap();
    let mine = dir.path().join("mine.ach");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    save_environment(&env_of(1), &link, &options).unwrap();
    assert_eq!(
        Archive::open(&mine).unwrap().get("who").unwrap(),
        Value::Number(1.0)
    );
}

/// The leftover-temporary cleaner checks what a candidate is on the
/// descriptor it opened without blocking or following links: a FIFO with a
/// temporary's name (put there, or swapped in after a check by name) never
/// makes a save wait for a writer, and is left alone.
#[cfg(unix)]
#[test]
fn a_fifo_named_like_a_temporary_does_not_block_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join(".w.ach.AbC123.ach-tmp");
    make_fifo(&fifo);
    let path = dir.path().join("w.ach");
    let result = unless_blocked_on(&fifo, "a save beside it", move || {
        save_environment(&env_of(0), &path, &fast()).map(drop)
    });
    result.unwrap();
    assert!(fifo.exists(), "a FIFO is not a temporary of ours: kept");
}
