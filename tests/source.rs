//! The byte source seam: what a reader does when storage fails, which files
//! it agrees to open, and what a loaded tensor says about its storage.

#[macro_use]
mod common;

use std::io;
use std::sync::Arc;

use achronyme_env::*;
use common::*;

/// A source over an archive in memory that fails, with an I/O error of
/// `kind`, every read whose range contains byte `fail_at`.
struct Failing {
    inner: MemorySource,
    fail_at: u64,
    kind: io::ErrorKind,
}

impl Failing {
    fn archive(bytes: &[u8], fail_at: u64, kind: io::ErrorKind) -> Result<Archive> {
        Archive::from_source(Arc::new(Failing {
            inner: MemorySource::from_vec(bytes.to_vec()),
            fail_at,
            kind,
        }))
    }
}

impl Source for Failing {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read(&self, offset: u64, len: u64) -> std::result::Result<Bytes, ReadError> {
        if (offset..offset.saturating_add(len)).contains(&self.fail_at) {
            return Err(ReadError::Io(io::Error::new(self.kind, "injected failure")));
        }
        self.inner.read(offset, len)
    }
}

/// A number then a tensor: entry 0 is "a", entry 1 is "t", a tensor large
/// enough for a blob of its own (the number lives in the table).
fn two_bindings() -> Vec<u8> {
    let mut env = Environment::new();
    env.set("a", Value::Number(1.0));
    env.set("t", Value::Tensor(iota(&[512])));
    archive_bytes(&env)
}

/// A failed read of a blob was reported as "blob lies outside the file
/// (entry 0)": damage, at the wrong entry. It is a read failure naming the
/// binding and its index, and other bindings still load.
#[test]
fn an_io_error_reading_a_blob_names_the_binding_and_is_not_damage() {
    let bytes = two_bindings();
    let map = Map::of(&bytes);
    let at = map.entries[1].blob_offset.get();
    let archive = Failing::archive(&bytes, at, io::ErrorKind::Other).unwrap();
    let err = archive.get("t").unwrap_err();
    assert_matches!(
        &err,
        Error::SourceRead { action: "reading the blob", name: Some(n), index: Some(1), source }
            if n == "t" && source.kind() == io::ErrorKind::Other
    );
    let message = err.to_string();
    assert!(message.contains("\"t\" (entry 1)"), "{message}");
    assert!(!message.contains("damaged"), "{message}");
    assert_eq!(archive.get("a").unwrap(), Value::Number(1.0));
    // Verify reports it as a read failure, not damage, with the same
    // message.
    let report = archive.verify_report();
    assert!(report.damaged.is_empty(), "{report:?}");
    assert!(report.nonzero_padding.is_empty(), "{report:?}");
    assert_eq!(report.read_errors[0], message);
    assert!(
        report
            .read_errors
            .iter()
            .all(|e| e.contains("injected failure")),
        "{report:?}"
    );
}

/// A failed read of the hash pool was "digests lie outside the file (entry
/// 0)".
#[test]
fn an_io_error_reading_chunk_digests_names_the_binding() {
    let bytes = two_bindings();
    let map = Map::of(&bytes);
    let e = &map.entries[1];
    let at = map.digest_at(e.hash_index.get() as usize) as u64;
    let archive = Failing::archive(&bytes, at, io::ErrorKind::Other).unwrap();
    assert_matches!(
        archive.get("t"),
        Err(Error::SourceRead { action: "reading the chunk digests", name: Some(n), index: Some(1), .. })
            if n == "t"
    );
    // Without checksums the digests are not read at all.
    let opts = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    assert!(archive.get_with(Section::Bindings, "t", opts).is_ok());
}

/// A failed read at open was "archive is truncated: it should be 1004 bytes
/// but is 1068": an expected size smaller than the one found.
#[test]
fn an_io_error_at_open_is_a_read_failure_not_truncation() {
    let bytes = two_bindings();
    let map = Map::of(&bytes);
    let trailer = (map.toc_offset + map.toc_len) as u64;
    for (at, action) in [
        (0, "reading the header"),
        (map.toc_offset as u64, "reading the table of contents"),
        (trailer, "reading the trailer"),
    ] {
        let err = Failing::archive(&bytes, at, io::ErrorKind::Other).unwrap_err();
        assert_matches!(
            &err,
            Error::SourceRead { action: a, name: None, index: None, .. } if *a == action
        );
        assert!(!err.to_string().contains("truncated"), "{err}");
    }
}

/// A copy that cannot be allocated comes back from the source as an
/// out-of-memory read failure, and reaches the caller as one.
#[test]
fn an_out_of_memory_source_is_reported_as_such() {
    let bytes = two_bindings();
    let map = Map::of(&bytes);
    let at = map.entries[1].blob_offset.get() + 100;
    let archive = Failing::archive(&bytes, at, io::ErrorKind::OutOfMemory).unwrap();
    assert_matches!(
        archive.get("t"),
        Err(Error::SourceRead { source, .. }) if source.kind() == io::ErrorKind::OutOfMemory
    );
}

/// `is_mapped` said true for every tensor that borrowed the archive's bytes,
/// even when those bytes were a vector in memory.
#[test]
fn tensors_of_archives_in_memory_are_not_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "t.ach");
    let mut env = Environment::new();
    env.set("t", Value::Tensor(iota(&[16, 4])));
    save(&env, &path);
    let bytes = std::fs::read(&path).unwrap();
    let archives = [
        ("from_bytes", Archive::from_bytes(bytes).unwrap()),
        ("open_copied", Archive::open_copied(&path).unwrap()),
    ];
    for (how, archive) in archives {
        let Value::Tensor(t) = archive.get("t").unwrap() else {
            panic!("t is not a tensor")
        };
        assert!(!t.is_mapped(), "{how}: nothing is mapped");
        assert_eq!(t, iota(&[16, 4]));
    }
}

/// A tensor loaded from `Archive::open` is a view of the file's mapping,
/// large (past the size served by `pread`) or just large enough for a blob
/// of its own; a smaller one, in the table's value pool (format 1.4), is
/// a copy of the table as read at open.
#[test]
fn tensors_of_an_opened_file_are_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "t.ach");
    let mut env = Environment::new();
    env.set("big", Value::Tensor(iota(&[512, 512]))); // 2 MiB
    env.set("small", Value::Tensor(iota(&[504]))); // 4,032 bytes + frame
    env.set("tiny", Value::Tensor(iota(&[503])));
    save(&env, &path);
    let archive = Archive::open(&path).unwrap();
    for (name, mapped) in [("big", true), ("small", true), ("tiny", false)] {
        let Value::Tensor(t) = archive.get(name).unwrap() else {
            panic!("{name} is not a tensor")
        };
        assert_eq!(t.is_mapped(), mapped, "{name}");
        assert_eq!(Value::Tensor(t), *env.get(name).unwrap());
    }
}

/// Opening a FIFO blocked in `open` until some writer came, so `ach info`,
/// `env_info` and `Archive::open` on one hung forever. Anything but a
/// regular file is refused at once.
#[cfg(unix)]
#[test]
fn opening_a_fifo_fails_at_once_instead_of_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = path_in(&dir, "pipe.ach");
    make_fifo(&fifo);
    let p = fifo.clone();
    // The opens either return or block until a writer comes.
    let results = unless_blocked_on(&fifo, "opening it", move || {
        [
            Archive::open(&p).map(drop),
            env_info(&p).map(drop),
            Archive::open_copied(&p).map(drop),
            MemorySource::map_file(&p).map(drop),
        ]
    });
    for r in results {
        assert_matches!(
            r,
            Err(Error::NotAFile { kind: "named pipe (FIFO)", path }) if path == fifo
        );
    }
}

/// Devices and directories are not archives either: `/dev/null` was
/// "truncated: 0 bytes" and `/dev/zero` read forever when copied.
#[cfg(unix)]
#[test]
fn devices_and_directories_are_refused_as_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for (path, kind) in [
        (std::path::Path::new("/dev/null"), "character device"),
        (std::path::Path::new("/dev/zero"), "character device"),
        (dir.path(), "directory"),
    ] {
        let shown = path.display().to_string();
        let err = Archive::open(path).unwrap_err();
        assert_matches!(&err, Error::NotAFile { kind: k, .. } if *k == kind);
        let message = err.to_string();
        assert!(
            message.contains(&shown) && message.contains(kind),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
        assert_matches!(env_info(path), Err(Error::NotAFile { .. }));
        assert_matches!(
            Archive::open_copied(path).map(drop),
            Err(Error::NotAFile { .. })
        );
        assert_matches!(
            MemorySource::map_file(path).map(drop),
            Err(Error::NotAFile { .. })
        );
    }
}

/// When a blob could not be mapped (address space exhausted), the fallback
/// copied it into one allocation made with `vec!`, and a copy the process
/// could not allocate aborted it. It is an out-of-memory read failure now,
/// and the copies it does make are not reported as mapped.
///
/// The test runs itself twice more as a child process: once to measure the
/// address space the child uses before loading, then under `ulimit -v`
/// (`RLIMIT_AS`) of that plus 48 MiB: too little to map or copy the 128 MiB
/// blob, enough for everything else.
#[cfg(target_os = "linux")]
#[test]
fn a_blob_that_can_be_neither_mapped_nor_copied_is_an_error_not_an_abort() {
    const CHILD: &str = "ACH_TEST_ADDRESS_SPACE_CHILD";
    const NAME: &str = "a_blob_that_can_be_neither_mapped_nor_copied_is_an_error_not_an_abort";
    if let Some(path) = std::env::var_os(CHILD) {
        return limited_child(std::path::Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(&dir, "big.ach");
    let mut env = Environment::new();
    env.set("big", Value::Tensor(Tensor::from_vec(vec![0.5; 16 << 20])));
    env.set("small", Value::Tensor(iota(&[8])));
    save(&env, &path);
    drop(env);
    let exe = std::env::current_exe().unwrap();
    let run = |limit_kib: Option<u64>| {
        let limit = limit_kib.map_or("unlimited".to_string(), |k| k.to_string());
        let out = std::process::Command::new("sh")
            .args(["-c", "ulimit -v \"$0\" && exec \"$@\"", &limit])
            .arg(&exe)
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child (limit {limit} KiB) failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        stdout
    };
    let measured = run(None);
    let vm_kib: u64 = measured
        .lines()
        .find_map(|l| l.split("limited child: uses ").nth(1))
        .and_then(|v| v.strip_suffix(" KiB"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no measure in {measured}"));
    let limited = run(Some(vm_kib + 48 * 1024));
    assert!(limited.contains("limited child: done"), "{limited}");
}

/// The child's half: say how much address space it uses; when limited, load.
#[cfg(target_os = "linux")]
fn limited_child(path: &std::path::Path) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    println!("limited child: uses {vm_kib} KiB");
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let unlimited = limits
        .lines()
        .any(|l| l.starts_with("Max address space") && l.contains("unlimited"));
    if unlimited {
        return;
    }
    let archive = Archive::open(path).unwrap();
    let Value::Tensor(small) = archive.get("small").unwrap() else {
        panic!("small is not a tensor")
    };
    assert_eq!(small, iota(&[8]));
    assert!(!small.is_mapped(), "the file could not be mapped: a copy");
    let opts = LoadOptions {
        verify_checksum: false,
        ..LoadOptions::default()
    };
    let err = archive
        .get_with(Section::Bindings, "big", opts)
        .unwrap_err();
    assert_matches!(
        &err,
        Error::SourceRead { name: Some(n), index: Some(0), source, .. }
            if n == "big" && source.kind() == io::ErrorKind::OutOfMemory
    );
    assert!(err.to_string().contains("could not be mapped"), "{err}");
    println!("limited child: done");
}

/// A source that fails every read touching byte `fail_at` while `failing`
/// is set, then serves them again: storage that recovers.
struct Flaky {
    inner: MemorySource,
    fail_at: u64,
    failing: std::sync::atomic::AtomicBool,
}

impl Source for Flaky {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read(&self, offset: u64, len: u64) -> std::result::Result<Bytes, ReadError> {
        let hit = (offset..offset.saturating_add(len)).contains(&self.fail_at);
        if hit && self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ReadError::Io(io::Error::other("injected failure")));
        }
        self.inner.read(offset, len)
    }
}

/// A hash pool that could not be read was reported as damage ("digests do
/// not match", "closing SHA-256 does not match"), and `stored_digests`
/// kept that verdict after the storage recovered.
#[test]
fn an_unreadable_hash_pool_is_a_read_failure_and_is_not_remembered() {
    let bytes = two_bindings();
    let map = Map::of(&bytes);
    let flaky = Arc::new(Flaky {
        inner: MemorySource::from_vec(bytes.clone()),
        fail_at: map.hashes_offset as u64,
        failing: std::sync::atomic::AtomicBool::new(true),
    });
    let archive = Archive::from_source(flaky.clone()).unwrap();
    assert_matches!(
        archive.stored_digests(Section::Bindings, "t"),
        Err(Error::SourceRead {
            action: "reading the hash pool",
            ..
        })
    );
    let report = archive.verify_report();
    assert!(!report.is_ok());
    // The pool, and the first binding's digests in it, could not be read.
    assert_eq!(report.read_errors.len(), 2, "{report:?}");
    assert!(
        report
            .read_errors
            .iter()
            .all(|e| e.contains("injected failure"))
    );
    assert!(report.damaged.is_empty(), "nothing is damaged: {report:?}");
    assert!(report.to_string().contains("could not be read"), "{report}");

    flaky
        .failing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let digests = archive.stored_digests(Section::Bindings, "t").unwrap();
    assert_eq!(digests.len(), 1);
    assert!(archive.verify_report().is_ok());
}

/// A source serving fewer bytes than it promised at open said "archive is
/// truncated: it should be N bytes but is M" with N < M. Every range read
/// at open was checked against the length first, so it is a read failure.
#[test]
fn a_short_read_at_open_is_a_read_failure_not_truncation() {
    struct Short(MemorySource, u64);
    impl Source for Short {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn read(&self, offset: u64, len: u64) -> std::result::Result<Bytes, ReadError> {
            // The table of contents comes back one byte short.
            let len = if offset == self.1 { len - 1 } else { len };
            self.0.read(offset, len)
        }
    }
    let bytes = two_bindings();
    let toc = Map::of(&bytes).toc_offset as u64;
    let err =
        Archive::from_source(Arc::new(Short(MemorySource::from_vec(bytes), toc))).unwrap_err();
    assert_matches!(&err, Error::SourceRead { name: None, source, .. }
        if source.kind() == io::ErrorKind::UnexpectedEof);
    assert!(!err.to_string().contains("truncated"), "{err}");
}
