//! Progress bars on stderr (indicatif) for the long steps: synth, a long prompt's prefill and
//! bench sweeps. A bar draws only when stderr is a terminal and `--quiet` is off; otherwise it
//! is hidden and costs nothing, so pipes, files and tests never see one. Owns no logging (the
//! `log` macros go through env_logger, set up in `cli/`) and no report text.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set by `--quiet`: no bars.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns every later bar off (`--quiet`) or back on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether bars draw: stderr is a terminal and `--quiet` is off.
pub fn enabled() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn target() -> ProgressDrawTarget {
    if enabled() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar over `len` steps (`bench` sweeps: one step per run), with the step's name as message.
pub fn steps(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), target());
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

/// A bar over `len` bytes (`synth`).
pub fn bytes(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), target());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

/// A counter of positions whose total is not known (a long prompt's prefill).
pub fn positions(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {pos} positions ({per_sec})") {
        bar.set_style(style);
    }
    bar.set_prefix(what.to_string());
    bar
}

/// A writer that advances a bar by the bytes written through it.
pub struct Counting<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W: Write> Counting<W> {
    /// Wraps `inner`; `bar` advances by every byte written.
    pub fn new(inner: W, bar: ProgressBar) -> Self {
        Self { inner, bar }
    }

    /// The bar (to finish it).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_passes_every_byte_through_and_counts_it() {
        let bar = ProgressBar::hidden();
        let mut w = Counting::new(Vec::new(), bar.clone());
        w.write_all(b"hello").unwrap();
        w.write_all(b", world").unwrap();
        assert_eq!((w.inner.as_slice(), bar.position()), (&b"hello, world"[..], 12));
    }
}
