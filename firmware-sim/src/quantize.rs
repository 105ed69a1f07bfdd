//! Quantizers from f32 rows to the GGML block formats `spool-sim synth` writes: F16, Q8_0,
//! Q4_0, Q5_0, Q4_K and Q6_K, written from the behaviour of ggml's reference quantizers
//! (`quantize_row_*_ref`, the ones llama-quantize uses without an importance matrix), so that
//! the blocks are the ones llama.cpp would write. Owns the quantizers only: the half
//! conversion, `nearest_int`, the K-quant scale packing and the dequantizers are the core's
//! (`spool_core::quant`), so the synth files and the core read one definition of each format.

use spool_core::quant::{dequantize_row, f16_to_f32, nearest_int, scale_min_k4, GgmlType};

/// f32 to IEEE half, rounding to nearest even (as ggml's `GGML_FP32_TO_FP16`): the core's.
pub use spool_core::quant::f32_to_f16;

/// Appends one row quantized to `ty` (F32, F16, Q8_0, Q4_0, Q5_0, Q4_K or Q6_K) to `out`.
///
/// Panics if the row is not a whole number of blocks or the type is not one of these.
pub fn quantize_row(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    match ty {
        GgmlType::F32 => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|&v| out.extend_from_slice(&f32_to_f16(v).to_le_bytes())),
        GgmlType::Q8_0 => x.chunks(32).for_each(|b| q8_0_block(b, out)),
        GgmlType::Q4_0 => x.chunks(32).for_each(|b| q4_0_block(b, out)),
        GgmlType::Q4_K => x.chunks(256).for_each(|b| q4_k_block(b, out)),
        GgmlType::Q5_0 => x.chunks(32).for_each(|b| q5_0_block(b, out)),
        GgmlType::Q6_K => x.chunks(256).for_each(|b| q6_k_block(b, out)),
        t => panic!("no quantizer for {}", t.name()),
    }
    let (elems, _) = ty.block();
    assert!((x.len() as u64).is_multiple_of(elems), "row of {} is not a whole number of {} blocks", x.len(), ty.name());
}

fn q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    // C's roundf: half away from zero.
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

fn q4_0_block(x: &[f32], out: &mut Vec<u8>) {
    // The signed value of largest magnitude (the first one on ties) maps to -8.
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    // C truncates the float to int8 (toward zero), then caps at 15.
    let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[16 + j]) << 4)));
}

/// As `quantize_row_q5_0_ref`: the signed value of largest magnitude maps to -16, the quants
/// are truncated after `+ 16.5` and capped at 31; the low nibbles pack as Q4_0's, the fifth bits
/// into `qh` (element `j` at bit `j`). Layout: `d: f16`, `qh: u32`, `qs: [u8; 16]`.
fn q5_0_block(x: &[f32], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| ((v * id + 16.5) as i8).min(31) as u8;
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (a, b) = (q(x[j]), q(x[16 + j]));
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= (((a & 0x10) >> 4) as u32) << j;
        qh |= (((b & 0x10) >> 4) as u32) << (j + 16);
    }
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend_from_slice(&qs);
}

/// ggml's `make_qx_quants` with `rmse_type` 1 (weights `x²`, no importance matrix): signed
/// levels `-nmax..nmax` stored as `l + nmax` in `l_out`, the scale chosen among `nmax + 0.1 k`
/// (k = -9..9) by the least weighted squared error. Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-15 {
        l_out.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (level(iscale, v) + nmax) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (level(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// As `quantize_row_q6_K_ref`: sixteen sub-blocks of 16 with `make_qx_quants(32)` scales, the
/// scales rounded to i8 against the largest (`d = max_scale / -128`), the quants re-rounded
/// to each stored scale. Layout: `ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`, `d: f16`.
fn q6_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; 256];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        *s = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = *s;
        }
    }
    if max_abs < 1e-15 {
        out.extend_from_slice(&[0u8; 210]);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = f32_to_f16(1.0 / iscale);
    let mut sc = [0u8; 16];
    for (o, &s) in sc.iter_mut().zip(&scales) {
        *o = nearest_int(iscale * s).min(127) as i8 as u8;
    }
    for j in 0..16 {
        let dj = f16_to_f32(d) * sc[j] as i8 as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for h in 0..2 {
        let (j, ql, qh) = (128 * h, &mut ql[64 * h..], &mut qh[32 * h..]);
        for k in 0..32 {
            let (a, b, c, e) = (l[j + k], l[j + k + 32], l[j + k + 64], l[j + k + 96]);
            ql[k] = (a & 0x0f) | ((c & 0x0f) << 4);
            ql[k + 32] = (b & 0x0f) | ((e & 0x0f) << 4);
            qh[k] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend_from_slice(&sc);
    out.extend_from_slice(&d.to_le_bytes());
}

/// ggml's `make_qkx2_quants`: a scale and a (non-positive) min for `x` with 4-bit levels in
/// `l`, chosen by trying `nstep + 1` scales around the naive one and keeping the least
/// weighted squared error. Returns (scale, -min).
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32; 32],
    w: &[f32; 32],
    l: &mut [u8; 32],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..32 {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0.0f32;
    for i in 0..32 {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best += w[i] * (diff * diff);
    }
    let mut aux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..32 {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = q as u8;
            let q = q as f32;
            sum_l += w[i] * q;
            sum_l2 += w[i] * q * q;
            sum_xl += w[i] * q * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut err = 0.0f32;
            for i in 0..32 {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if err < best {
                *l = aux;
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// One Q4_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
fn q4_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut levels = [[0u8; 32]; 8];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs: &[f32; 32] = x[32 * j..32 * j + 32].try_into().unwrap();
        let sum_x2 = xs.iter().fold(0.0f32, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let w: [f32; 32] = core::array::from_fn(|i| av_x + xs[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(15, xs, &w, &mut levels[j], -1.0, 0.1, 20);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = nearest_int(inv_scale * scales[j]).min(63) as u8;
        let lm = nearest_int(inv_min * mins[j]).min(63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d16 = f32_to_f16(max_scale / 63.0);
    let dmin16 = f32_to_f16(max_min / 63.0);
    let (d, dmin) = (f16_to_f32(d16), f16_to_f32(dmin16));
    for (j, lv) in levels.iter_mut().enumerate() {
        // Requantize against the rounded scales; a zero scale keeps make_qkx2_quants' levels.
        let (sc, m) = scale_min_k4(j, &packed);
        let dj = d * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for (i, q) in lv.iter_mut().enumerate() {
            *q = nearest_int((x[32 * j + i] + dm) / dj).clamp(0, 15) as u8;
        }
    }
    out.extend_from_slice(&d16.to_le_bytes());
    out.extend_from_slice(&dmin16.to_le_bytes());
    out.extend_from_slice(&packed);
    for pair in levels.chunks(2) {
        out.extend((0..32).map(|i| pair[0][i] | (pair[1][i] << 4)));
    }
}

/// Decodes Q4_K blocks (whole blocks of 256 values) into `out`: the core's
/// [`dequantize_row`].
pub fn dequantize_q4_k(data: &[u8], out: &mut [f32]) {
    dequantize_row(GgmlType::Q4_K, data, out);
}

/// Decodes Q8_0 blocks (whole blocks of 32 values) into `out`: the core's [`dequantize_row`].
pub fn dequantize_q8_0(data: &[u8], out: &mut [f32]) {
    dequantize_row(GgmlType::Q8_0, data, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_round_trips_closely() {
        let x: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 40.0) / 50.0).collect();
        let mut q = Vec::new();
        quantize_row(GgmlType::Q4_K, &x, &mut q);
        assert_eq!(q.len(), 288);
        let mut y = vec![0.0; 512];
        dequantize_q4_k(&q, &mut y);
        let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.1, "max error {err}");
    }

    /// Q5_0 and Q6_K rows decode (with the core's decoder) to within a step of the input.
    #[test]
    fn q5_0_and_q6_k_round_trip_closely() {
        let x: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 40.0) / 50.0).collect();
        for (ty, bytes, tol) in [(GgmlType::Q5_0, 16 * 22, 0.05), (GgmlType::Q6_K, 2 * 210, 0.03)] {
            let mut q = Vec::new();
            quantize_row(ty, &x, &mut q);
            assert_eq!(q.len(), bytes, "{}", ty.name());
            let mut y = vec![0.0; 512];
            dequantize_row(ty, &q, &mut y);
            let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < tol, "{}: max error {err}", ty.name());
        }
    }
}
