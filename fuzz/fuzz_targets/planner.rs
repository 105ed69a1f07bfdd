//! The planner alone on arbitrary hyperparameters, tensor types and budgets (a ModelInfo built
//! field by field, no file): every plan it accepts must keep the invariants of `check_plan`.
//! With `small_address_space` the plan is made for a 32-bit target (`plan_within` with a
//! `u32::MAX` address space, the case of defect 4) and must end below 4 GiB.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use spool_core::model::{Config, LayerKind, LayerPattern, LayerTensor, TensorRef};
use spool_core::quant::GgmlType;
use spool_core::ModelInfo;
use spool_fuzz::{check_plan, Num, Opts};

#[derive(Debug, Arbitrary)]
struct Input {
    dim: Num,
    hidden: Num,
    layers: u8,
    heads: u8,
    kv_div: u8,
    vocab: Num,
    ctx_len: Num,
    ctx: Num,
    types: [u8; 4],
    tied: bool,
    strings: Num,
    budget: Num,
    opts: Opts,
    small_address_space: bool,
}

fuzz_target!(|i: Input| {
    let dim = i.dim.get32().max(1);
    let heads = (i.heads as u32).max(1);
    let kv_heads = (heads / (i.kv_div as u32).max(1)).max(1);
    let head_size = dim / heads;
    let vocab = i.vocab.get32().max(1);
    let config = Config {
        dim,
        hidden_dim: i.hidden.get32().max(1),
        n_layers: (i.layers as u32 % 128).max(1),
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_size,
        q_dim: dim,
        kv_dim: head_size.wrapping_mul(kv_heads),
        vocab,
        context_length: i.ctx_len.get32().max(1),
        rope_theta: 10000.0,
        rms_eps: 1e-5,
        embedding_scale: None,
        logit_softcap: None,
        layers: LayerPattern::uniform(LayerKind::global(10000.0)),
    };
    let ty = |k: usize| spool_core::quant::SUPPORTED[i.types[k] as usize % spool_core::quant::SUPPORTED.len()];
    // Lay the tensors out back to back as a file would; give up where the sizes overflow (the
    // parser refuses such files, and the planner may assume it did).
    let mut offset = 0u64;
    let mut file_ok = true;
    let mut tensor = |rows: u32, cols: u32, t: GgmlType| {
        let t = if t.row_bytes(cols as u64).is_some() { t } else { GgmlType::F32 };
        let r = TensorRef { offset, ty: t, rows, cols };
        match t.row_bytes(cols as u64).and_then(|b| b.checked_mul(rows as u64)).and_then(|b| offset.checked_add(b)) {
            Some(end) => offset = end,
            None => file_ok = false,
        }
        r
    };
    let token_embd = tensor(vocab, dim, ty(0));
    let output_norm = tensor(1, dim, GgmlType::F32);
    let output = if i.tied { token_embd } else { tensor(vocab, dim, ty(1)) };
    let mut layers = heapless::Vec::new();
    for _ in 0..config.n_layers {
        // Llama's roles with their shapes; the rest of the table is empty, as the loader leaves it.
        let mut refs = [TensorRef { offset: 0, ty: GgmlType::F32, rows: 0, cols: 0 }; spool_core::model::ROLES];
        for (r, &lt) in refs.iter_mut().zip(spool_core::model::arch::llama::LLAMA.roles) {
            let (rows, cols) = lt.shape(&config);
            let ffn = [LayerTensor::Gate, LayerTensor::Up, LayerTensor::Down].contains(&lt);
            *r = tensor(rows, cols, if lt.is_norm() { GgmlType::F32 } else { ty(if ffn { 3 } else { 2 }) });
        }
        let _ = layers.push(refs);
    }
    if !file_ok {
        return;
    }
    let mut header = spool_core::gguf::Header::default();
    header.tokens = Some(spool_core::gguf::ArrayRef {
        count: vocab as u64,
        string_bytes: i.strings.get() % (1 << 40),
        elem_type: 8,
        ..Default::default()
    });
    let model = ModelInfo {
        arch: &spool_core::model::arch::llama::LLAMA,
        config,
        header,
        token_embd,
        output_norm,
        output,
        tied_output: i.tied,
        rope_freqs: None,
        layers,
        parse_bytes: 0,
        file_len: offset,
    };
    let ctx = i.ctx.get32();
    let limit = if i.small_address_space { u64::from(u32::MAX) } else { usize::MAX as u64 };
    let budget = (i.budget.get()).min(limit) as usize;
    if let Ok(plan) = spool_core::plan_within(&model, ctx, budget, i.opts.get(), limit) {
        assert!(
            plan.used_bytes() as u64 <= limit,
            "a plan for a {limit}-byte address space uses {}",
            plan.used_bytes()
        );
        check_plan(&model, &plan);
    }
});
