//! Runs the `spool-sim` binary as a child process under a deadline, the way a user or a script
//! would, so that a panic (exit 101), a signal or a hang is seen as such and not hidden inside
//! the test process. It knows nothing of models or of what a run should print.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Exit {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Exit {
    /// The exit code (None for a signal or a hang).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Panics unless the run ended by itself, with a non-zero code that is not a panic's (101),
    /// and printed `needle` on stderr. Returns stderr.
    pub fn assert_error(&self, what: &str, needle: &str) -> &str {
        let status = self.status.unwrap_or_else(|| panic!("{what}: hung (killed after {:?})", self.elapsed));
        match status.code() {
            None => panic!("{what}: killed by a signal ({status}); stderr: {}", self.stderr),
            Some(0) => panic!("{what}: exit 0, expected an error containing {needle:?}; stderr: {}", self.stderr),
            Some(101) => panic!("{what}: panicked (exit 101); stderr: {}", self.stderr),
            Some(_) => {}
        }
        assert!(self.stderr.contains(needle), "{what}: stderr lacks {needle:?}: {}", self.stderr);
        &self.stderr
    }

    /// Panics unless the run ended by itself with exit 0.
    pub fn assert_ok(&self, what: &str) {
        assert_eq!(self.code(), Some(0), "{what}: {:?}; stderr: {}", self.status, self.stderr);
    }
}

/// Runs `exe args..`, killing it after `timeout`.
pub fn run(exe: impl AsRef<Path>, args: &[&str], timeout: Duration) -> Exit {
    let start = Instant::now();
    let mut child = Command::new(exe.as_ref())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.as_ref().display()));
    // Drain both pipes on threads so that a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    Exit { status, stdout: out.join().unwrap(), stderr: err.join().unwrap(), elapsed }
}
