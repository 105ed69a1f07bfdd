//! `spool-sim synth`'s options and its summary line. Owns no file layout (`write.rs`).

use std::io::{BufWriter, Write};
use std::time::Instant;

use spool_core::quant::GgmlType;

use super::{tensors, vocab_for, write_model, SynthConfig, Vocab, DEFAULT_VOCAB_GGUF};

fn parse_type(s: &str) -> Result<GgmlType, String> {
    Ok(match s.to_ascii_uppercase().as_str() {
        "F32" => GgmlType::F32,
        "F16" => GgmlType::F16,
        "Q8_0" => GgmlType::Q8_0,
        "Q4_0" => GgmlType::Q4_0,
        "Q4_K" => GgmlType::Q4_K,
        "Q5_0" => GgmlType::Q5_0,
        "Q6_K" => GgmlType::Q6_K,
        _ => return Err(format!("--type {s}: expected F32, F16, Q8_0, Q4_0, Q5_0, Q4_K or Q6_K")),
    })
}

/// Usage of `spool-sim synth`.
pub const USAGE: &str =
    "spool-sim synth -o PATH [--preset stories15m|tinyllama|llama7b|llama3-1b] [--dim N --hidden N --layers N --heads N
                  --kv-heads N --vocab N --ctx N] [--type F32|F16|Q8_0|Q4_0|Q5_0|Q4_K|Q6_K] [--seed S] [--threads N]
                  [--vocab-from GGUF]";

/// Parses `spool-sim synth` options into (config, output path, threads, vocabulary file).
pub fn parse(args: &[String]) -> Result<(SynthConfig, String, usize, String), String> {
    let mut out = None;
    let mut preset = None;
    let mut shape: [Option<u32>; 7] = [None; 7];
    let (mut ty, mut seed, mut threads) = (None, 1u64, 0usize);
    let mut vocab_from = DEFAULT_VOCAB_GGUF.to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value\nusage: {USAGE}"))?;
        let num = |v: &str| v.parse::<u32>().map_err(|_| format!("{a} {v}: expected a number"));
        let slot =
            ["--dim", "--hidden", "--layers", "--heads", "--kv-heads", "--vocab", "--ctx"].iter().position(|f| f == a);
        match (a.as_str(), slot) {
            (_, Some(i)) => shape[i] = Some(num(v)?),
            ("-o", _) => out = Some(v.clone()),
            ("--preset", _) => preset = Some(v.clone()),
            ("--type", _) => ty = Some(parse_type(v)?),
            ("--seed", _) => seed = v.parse().map_err(|_| format!("--seed {v}: expected a number"))?,
            ("--threads", _) => threads = num(v)? as usize,
            ("--vocab-from", _) => vocab_from = v.clone(),
            _ => return Err(format!("bad synth option `{a}`\nusage: {USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("synth needs -o PATH\nusage: {USAGE}"))?;
    let mut c = match &preset {
        Some(p) => SynthConfig::preset(p)
            .ok_or_else(|| format!("--preset {p}: expected stories15m, tinyllama, llama7b or llama3-1b"))?,
        None => {
            if shape[..4].iter().any(Option::is_none) {
                return Err(format!(
                    "synth needs --preset or at least --dim, --hidden, --layers and --heads\nusage: {USAGE}"
                ));
            }
            SynthConfig::custom(0, 0, 0, 0, 0, 32000)
        }
    };
    let fields = [&mut c.dim, &mut c.hidden, &mut c.layers, &mut c.heads, &mut c.kv_heads, &mut c.vocab, &mut c.ctx];
    let changed = shape.iter().any(Option::is_some);
    for (f, v) in fields.into_iter().zip(shape) {
        if let Some(v) = v {
            *f = v;
        }
    }
    if preset.is_none() && shape[4].is_none() {
        c.kv_heads = c.heads;
    }
    if changed && preset.is_some() {
        c.name = format!("{} (modified)", c.name);
    }
    if let Some(t) = ty {
        c.ty = t;
    }
    c.seed = seed;
    // A modified llama7b is still held to the llama7b type rule.
    if c.name.starts_with("llama7b") {
        let n = std::mem::replace(&mut c.name, "llama7b".into());
        c.validate()?;
        c.name = n;
    }
    c.validate()?;
    Ok((c, out, threads, vocab_from))
}

/// `spool-sim synth ...`: writes the file and prints a summary on `out`.
pub fn cli(args: &[String], out: &mut dyn Write, _err: &mut dyn Write) -> Result<(), String> {
    let (mut c, path, threads, vocab_from) = parse(args)?;
    // An explicit --vocab-from gives the file its vocabulary, and so its vocabulary size.
    let vocab = if vocab_from != DEFAULT_VOCAB_GGUF {
        let v = Vocab::from_gguf(&vocab_from)?;
        c.vocab = u32::try_from(v.tokens.len()).map_err(|_| format!("{vocab_from}: too many tokens"))?;
        c.validate()?;
        v
    } else {
        vocab_for(&c, &vocab_from)?
    };
    let start = Instant::now();
    let file = std::fs::File::create(&path).map_err(|e| format!("cannot create {path}: {e}"))?;
    let total: u64 = tensors(&c).iter().map(|s| s.rows * s.row_bytes()).sum();
    let mut w =
        crate::progress::Counting::new(BufWriter::with_capacity(1 << 20, file), crate::progress::bytes(total, "synth"));
    let bytes = write_model(&c, &vocab, threads, &mut w).map_err(|e| format!("writing {path}: {e}"))?;
    w.bar().finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let specs = tensors(&c);
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for s in &specs {
        match counts.iter_mut().find(|(t, _)| *t == s.ty) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.ty, 1)),
        }
    }
    let mut types: Vec<String> = counts.iter().map(|(t, n)| format!("{}x{n}", t.name())).collect();
    if c.rope_scaling.is_some() {
        types.push("rope_freqs".into());
    }
    if c.tied {
        types.push("tied classifier".into());
    }
    let _ = writeln!(
        out,
        "wrote {path}: {} dim {} hidden {} layers {} heads {}/{} vocab {} ctx {}, {} ({}), seed {}, {} bytes in {:.1} s ({:.0} MB/s)",
        c.name,
        c.dim,
        c.hidden,
        c.layers,
        c.heads,
        c.kv_heads,
        c.vocab,
        c.ctx,
        c.ty.name(),
        types.join(" "),
        c.seed,
        bytes,
        secs,
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}
