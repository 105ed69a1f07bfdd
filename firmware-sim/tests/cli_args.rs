//! The `spool-sim` binary on arguments it cannot read: a clear error and exit code 2, never a
//! panic (exit 101). Lives here because only this package's tests can run its binary.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

fn spool_sim(args: &[&OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spool-sim")).args(args).output().expect("run spool-sim");
    (
        out.status.code().expect("spool-sim exits, not killed by a signal"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_non_utf8_argument_is_a_clear_error_with_exit_2() {
    let bad = OsStr::from_bytes(b"model-\xff\xfe.gguf");
    for args in [
        vec![OsStr::new("run"), OsStr::new("-m"), bad],
        vec![OsStr::new("run"), OsStr::new("-m"), OsStr::new("x.gguf"), OsStr::new("-p"), OsStr::from_bytes(b"\xc3(")],
        vec![bad],
    ] {
        let (code, stderr) = spool_sim(&args);
        assert_eq!(code, 2, "{args:?}: stderr {stderr}");
        assert!(stderr.contains("is not valid UTF-8"), "{args:?}: stderr {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: stderr {stderr}");
    }
}

#[test]
fn utf8_arguments_still_reach_the_cli() {
    let (code, stderr) = spool_sim(&[OsStr::new("run"), OsStr::new("-m"), OsStr::new("/nonexistent/model.gguf")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot open model `/nonexistent/model.gguf`"), "{stderr}");
}
