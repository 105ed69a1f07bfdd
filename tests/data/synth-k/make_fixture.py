"""Regenerates two F32 tensors of synth-k-F32.gguf (see tests/data/quant/README.md,
"The synthetic generator (synth-k)") as raw little-endian float32, row-major [out][in]:

  blk.0.attn_q.weight.f32    256 x 256
  blk.0.ffn_gate.weight.f32  768 x 256

Only the draws up to blk.0.ffn_gate are replayed (the later ones do not affect them).
Run with numpy 2.4.6: python3 make_fixture.py
"""
import numpy as np

seed, qk_gain, resid_gain, norm_jitter = 20251126, 1.5, 0.35, 0.2
dim, hidden, n_heads, n_kv_heads, vocab = 256, 768, 8, 4, 512
kv_dim = dim // n_heads * n_kv_heads
rng = np.random.default_rng(seed)


def mat(r, c, std):
    w = rng.standard_normal((r, c))
    row_scale = np.exp(0.25 * rng.standard_normal((r, 1)))
    row_off = 0.15 * rng.standard_normal((r, 1))
    w = (w + row_off) * row_scale * std
    w[rng.random((r, c)) < 0.002] *= 3
    return w


def norm():
    return 1 + norm_jitter * (2 * rng.random(dim) - 1)


E = rng.standard_normal((vocab, dim))
attn_norm = norm()
attn_q = mat(dim, dim, qk_gain / np.sqrt(dim))
attn_k = mat(kv_dim, dim, qk_gain / np.sqrt(dim))
attn_v = mat(kv_dim, dim, 1 / np.sqrt(dim))
attn_output = mat(dim, dim, resid_gain / np.sqrt(dim))
ffn_norm = norm()
ffn_gate = mat(hidden, dim, 1 / np.sqrt(dim))

for name, w in [("blk.0.attn_q.weight", attn_q), ("blk.0.ffn_gate.weight", ffn_gate)]:
    w.astype("<f4").tofile(name + ".f32")
    print(name, w.shape)
