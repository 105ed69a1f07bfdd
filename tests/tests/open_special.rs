//! A model path that is not a regular file (a FIFO with no writer, a directory, a character
//! device) is refused at once with an error saying what it is. Before, opening a FIFO blocked
//! for ever and a directory failed later with a confusing message.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use spool_std::{FileStorage, MmapStorage};

/// Runs `f` on another thread; fails the test if it has not returned within 10 s.
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{what}: still blocked after 10 s"))
}

fn fifo(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let status = std::process::Command::new("mkfifo").arg(&path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
    path
}

fn check(path: &Path, kind: &str) {
    let p = path.to_path_buf();
    let e = within_10s("FileStorage::open", move || FileStorage::open(&p).map(|_| ())).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{}: {e}", path.display());
    assert!(e.to_string().contains(&format!("is {kind}, not a regular file")), "{e}");
    let p = path.to_path_buf();
    let e = within_10s("MmapStorage::open", move || MmapStorage::open(&p).map(|_| ())).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    for storage in [spool_sim::Backend::File, spool_sim::Backend::Mmap, spool_sim::Backend::Flash] {
        let opts = spool_sim::RunOptions {
            model: path.to_string_lossy().into_owned(),
            backend: storage,
            steps: 4,
            ..Default::default()
        };
        let e = within_10s("spool_sim::run", move || spool_sim::run(&opts).map(|_| ())).unwrap_err();
        assert!(e.starts_with("cannot open model") && e.contains("not a regular file"), "{e}");
    }
    let p = path.to_string_lossy().into_owned();
    let e = within_10s("spool_sim::inspect", move || spool_sim::inspect(&p, None, None).map(|_| ())).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn a_fifo_with_no_writer_is_refused_at_once() {
    let path = fifo("no-writer");
    check(&path, "a FIFO (named pipe)");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_directory_and_character_devices_are_refused() {
    check(Path::new(env!("CARGO_TARGET_TMPDIR")), "a directory");
    check(Path::new("/dev/null"), "a character device");
    check(Path::new("/dev/zero"), "a character device");
}

#[test]
fn a_regular_file_still_opens_and_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/stories260K.gguf");
    let mut f = FileStorage::open(&path).unwrap();
    let mut m = MmapStorage::open(&path).unwrap();
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    spool_core::Storage::read_at(&mut f, 1000, &mut a).unwrap();
    spool_core::Storage::read_at(&mut m, 1000, &mut b).unwrap();
    assert_eq!(a, b);
}
