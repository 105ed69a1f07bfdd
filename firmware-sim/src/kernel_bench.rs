//! `spool-sim bench matvec`: matrix-vector GB/s per weight type, scalar against SIMD and one
//! thread against two, measured in one process and printed as ratios. A last group measures
//! the opt-in integer path (`--kernel simd-q8`: input rounded to Q8_0/Q8_K, as llama.cpp) against
//! the f32 SIMD path, for the types it has kernels for; its time includes rounding the input
//! once per product, as the engine does.
//!
//! Each type gets a `rows x cols` matrix of random values in valid blocks (finite f16 scales),
//! and the product runs as the engine runs it: [`Kernels::matvec`] over row chunks given out by
//! an [`Executor`]. GB/s counts weight bytes read per second.

use std::io::Write;
use std::time::Instant;

use spool_core::quant::{self, GgmlType, SUPPORTED_TYPES};
use spool_core::{Executor, Inline, Kernels};
use spool_std::ThreadPool;

/// Options of `bench matvec`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Rows of each matrix.
    pub rows: usize,
    /// Columns (a multiple of 256 suits every type).
    pub cols: usize,
    /// Types to measure.
    pub types: Vec<GgmlType>,
    /// Seconds per measurement.
    pub seconds: f64,
}

const ALL: [GgmlType; 11] = spool_core::quant::SUPPORTED;

/// The options of `bench matvec` (`types`: comma-separated names, None for all).
pub fn options(rows: usize, cols: usize, types: Option<&str>, seconds: f64) -> Result<BenchOptions, String> {
    let types = match types {
        None => ALL.to_vec(),
        Some(v) => v
            .split(',')
            .map(|n| {
                ALL.iter()
                    .copied()
                    .find(|t| t.name().eq_ignore_ascii_case(n.trim()))
                    .ok_or(format!("--types: `{n}` is not one of {SUPPORTED_TYPES}"))
            })
            .collect::<Result<_, _>>()?,
    };
    if rows == 0 || cols == 0 || !cols.is_multiple_of(256) {
        return Err(format!("--rows {rows} --cols {cols}: rows must be > 0 and cols a positive multiple of 256"));
    }
    Ok(BenchOptions { rows, cols, types, seconds })
}

/// xorshift64*: reproducible filler.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A positive normal f16 between about 2^-10 and 2^-6.
    fn scale_f16(&mut self) -> [u8; 2] {
        let exp = 5 + self.next() % 4;
        (((exp << 10) | (self.next() & 0x3ff)) as u16).to_le_bytes()
    }
}

/// A `rows x cols` matrix of `ty` with random quants and finite scales.
pub fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let row_bytes = ty.row_bytes(cols as u64).expect("cols is a multiple of 256") as usize;
    let mut w = vec![0u8; rows * row_bytes];
    match ty {
        GgmlType::F32 => w.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&rng.unit().to_le_bytes())),
        GgmlType::BF16 => {
            w.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&((rng.unit().to_bits() >> 16) as u16).to_le_bytes()))
        }
        GgmlType::F16 => w.chunks_exact_mut(2).for_each(|c| {
            let sign = (rng.next() & 1) << 15;
            let exp = 8 + rng.next() % 8;
            c.copy_from_slice(&((sign | (exp << 10) | (rng.next() & 0x3ff)) as u16).to_le_bytes())
        }),
        _ => {
            let (_, bpb) = ty.block();
            // Offsets of the f16 fields (scales, mins) in a block.
            let halves: &[usize] = match ty {
                GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
                GgmlType::Q6_K => &[208],
                _ => &[0],
            };
            for b in w.chunks_exact_mut(bpb as usize) {
                b.iter_mut().for_each(|v| *v = rng.next() as u8);
                for &at in halves {
                    b[at..at + 2].copy_from_slice(&rng.scale_f16());
                }
            }
        }
    }
    w
}

/// Seconds per product, running for about `seconds` (at least 3 products).
fn time(kernels: Kernels, exec: &dyn Executor, ty: GgmlType, w: &[u8], x: &[f32], out: &mut [f32], s: f64) -> f64 {
    let row_bytes = w.len() / out.len();
    let job = |row0: usize, chunk: &mut [f32]| {
        kernels.matvec(ty, &w[row0 * row_bytes..(row0 + chunk.len()) * row_bytes], x, chunk)
    };
    exec.run_rows(out, w.len(), &job); // warm up
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || start.elapsed().as_secs_f64() < s {
        exec.run_rows(out, w.len(), &job);
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

/// Seconds per product on the integer path: the input rounded to `vt` once per product (on the
/// caller's thread, as the engine does), then the rows.
#[allow(clippy::too_many_arguments)]
fn time_q8(
    kernels: Kernels,
    exec: &dyn Executor,
    ty: GgmlType,
    vt: GgmlType,
    w: &[u8],
    x: &[f32],
    out: &mut [f32],
    s: f64,
) -> f64 {
    let row_bytes = w.len() / out.len();
    let mut xq = vec![0u8; quant::activation_bytes(vt, x.len()).unwrap_or(0)];
    let mut once = |out: &mut [f32]| {
        quant::quantize_activations(vt, x, &mut xq);
        let xq = &xq[..];
        let job = |row0: usize, chunk: &mut [f32]| {
            kernels.matvec_quantized(ty, &w[row0 * row_bytes..(row0 + chunk.len()) * row_bytes], xq, chunk)
        };
        exec.run_rows(out, w.len(), &job);
    };
    once(out); // warm up
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || start.elapsed().as_secs_f64() < s {
        once(out);
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

/// The largest `|a - b|` over `reference`'s largest magnitude.
fn rel_diff(a: &[f32], reference: &[f32]) -> f32 {
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    a.iter().zip(reference).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// Runs the benchmark and prints one line per type.
pub fn matvec(o: &BenchOptions, out: &mut dyn Write) -> Result<(), String> {
    let simd = spool_std::kernels::simd();
    let pool = ThreadPool::new(2).with_min_work(0);
    let simd_name = simd.map_or("none", |k| k.path().name());
    let q8 = spool_std::kernels::simd_q8();
    let _ = writeln!(
        out,
        "matvec {} x {}; GB/s of weight bytes; scalar vs SIMD ({simd_name}), 1 vs 2 threads, f32 activations; \
         q8: activations rounded to Q8_0/Q8_K, integer dots (opt-in simd-q8), vs SIMD",
        o.rows, o.cols
    );
    let _ = writeln!(
        out,
        "{:<5} {:>9} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>7} {:>7} | {:>9} | {:>8} {:>8} {:>8} {:>9}",
        "type",
        "MiB",
        "scalar",
        "simd",
        "simd/sc",
        "scal 2t",
        "simd 2t",
        "2t/1t",
        "2t/sc1",
        "max rel d",
        "q8",
        "q8/simd",
        "q8 2t",
        "q8 rel d"
    );
    let mut rng = Rng(0x5eed);
    let x: Vec<f32> = (0..o.cols).map(|_| rng.unit()).collect();
    for (i, &ty) in o.types.iter().enumerate() {
        let w = random_matrix(ty, o.rows, o.cols, 0x1234 + i as u64);
        let gb = w.len() as f64 / 1e9;
        let mut reference = vec![0.0f32; o.rows];
        let mut got = vec![0.0f32; o.rows];
        let s1 = time(Kernels::SCALAR, &Inline, ty, &w, &x, &mut reference, o.seconds);
        let s2 = time(Kernels::SCALAR, &pool, ty, &w, &x, &mut got, o.seconds);
        if got != reference {
            return Err(format!("{}: scalar results differ between 1 and 2 threads", ty.name()));
        }
        let (v1, v2, diff) = match simd {
            Some(k) => {
                let mut one = vec![0.0f32; o.rows];
                let v1 = time(k, &Inline, ty, &w, &x, &mut one, o.seconds);
                let v2 = time(k, &pool, ty, &w, &x, &mut got, o.seconds);
                if got != one {
                    return Err(format!("{}: SIMD results differ between 1 and 2 threads", ty.name()));
                }
                (v1, v2, rel_diff(&one, &reference))
            }
            None => (s1, s2, 0.0),
        };
        let q8_cols = match q8.and_then(|k| Some((k, k.activation_type(ty)?))) {
            Some((k, vt)) => {
                let mut one = vec![0.0f32; o.rows];
                let q1 = time_q8(k, &Inline, ty, vt, &w, &x, &mut one, o.seconds);
                let q2 = time_q8(k, &pool, ty, vt, &w, &x, &mut got, o.seconds);
                if got != one {
                    return Err(format!("{}: q8 results differ between 1 and 2 threads", ty.name()));
                }
                format!("{:>8.2} {:>7.2}x {:>8.2} {:>9.1e}", gb / q1, v1 / q1, gb / q2, rel_diff(&one, &reference))
            }
            None => format!("{:>8} {:>8} {:>8} {:>9}", "-", "-", "-", "-"),
        };
        let _ = writeln!(
            out,
            "{:<5} {:>9.1} | {:>8.2} {:>8.2} {:>7.2}x | {:>8.2} {:>8.2} {:>6.2}x {:>6.2}x | {:>9.1e} | {q8_cols}",
            ty.name(),
            w.len() as f64 / (1 << 20) as f64,
            gb / s1,
            gb / v1,
            s1 / v1,
            gb / s2,
            gb / v2,
            v1 / v2,
            s1 / v2,
            diff
        );
    }
    Ok(())
}
