//! How a matrix-vector product's rows are spread over compute units.
//!
//! The core is single-threaded: [`Inline`], the default, runs every job on the caller.
//! `spool-std` implements [`Executor`] with a pool of worker threads. A job computes a
//! consecutive range of output rows into its own chunk of the output, and each row's
//! arithmetic depends only on the row, so any split gives bit-identical results.

/// A row-range job: `job(row0, chunk)` computes rows `row0..row0 + chunk.len()` into `chunk`.
pub type RowJob<'j> = dyn Fn(usize, &mut [f32]) + Sync + 'j;

/// Runs row-range jobs, possibly split over several compute units.
pub trait Executor {
    /// Runs `job` over disjoint consecutive chunks of `out` that together cover all of it,
    /// each chunk exactly once, and returns when every chunk is done. `work` is the number
    /// of weight bytes the whole job reads, a hint for whether splitting pays.
    fn run_rows(&self, out: &mut [f32], work: usize, job: &RowJob<'_>);

    /// How many units may run chunks at once (1: inline).
    fn threads(&self) -> usize {
        1
    }
}

/// Runs every job on the calling thread, as one chunk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Executor for Inline {
    fn run_rows(&self, out: &mut [f32], _work: usize, job: &RowJob<'_>) {
        job(0, out);
    }
}

/// Splits `n` rows into `parts` consecutive ranges of near-equal size (the first ones one
/// row longer); returns the start of part `i` (`i` in `0..=parts`).
pub fn split_point(n: usize, parts: usize, i: usize) -> usize {
    let parts = parts.max(1);
    let (q, r) = (n / parts, n % parts);
    i * q + i.min(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_cover_the_rows_in_order() {
        for n in [0, 1, 5, 64, 1000] {
            for parts in 1..6 {
                assert_eq!(split_point(n, parts, 0), 0);
                assert_eq!(split_point(n, parts, parts), n);
                for i in 0..parts {
                    let (a, b) = (split_point(n, parts, i), split_point(n, parts, i + 1));
                    assert!(a <= b && b - a <= n / parts + 1);
                }
            }
        }
    }

    #[test]
    fn inline_runs_one_chunk() {
        let mut out = [0.0f32; 5];
        Inline.run_rows(&mut out, 0, &|row0, chunk: &mut [f32]| {
            for (i, o) in chunk.iter_mut().enumerate() {
                *o = (row0 + i) as f32;
            }
        });
        assert_eq!(out, [0.0, 1.0, 2.0, 3.0, 4.0]);
    }
}
