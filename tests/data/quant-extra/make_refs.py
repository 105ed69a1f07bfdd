"""Exact references for the BF16 and Q5_1 test files (not in tests/data/quant).

The .gguf files were made from models/stories260K.gguf with llama.cpp's own quantizer
(the peer build of bench/peer/install.sh, llama.cpp 0c1e57098 via llama-cpp-python 0.3.36):

    llama-quantize models/stories260K.gguf stories260K-BF16.gguf BF16
    llama-quantize models/stories260K.gguf stories260K-Q5_1.gguf Q5_1

As tests/data/quant/README.md does for its files, every tensor is dequantized with the `gguf`
package (`gguf.quants.dequantize`), then a float64 NumPy forward pass runs: RMSNorm, RoPE on
adjacent pairs, grouped-query attention, SwiGLU. It writes, per file, the logits of the 8 fed
positions (`<stem>.exact-logits.f32`, little-endian f32 [8][512]) and `refs.json` with the 32
greedy ids. Run: `pip install gguf numpy && python3 make_refs.py` (it first checks itself on
the F32 model against tests/data/stories260K.logits.f32).
"""
import json
import pathlib
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = pathlib.Path(__file__).resolve().parent
FED = [1, 403, 407, 261, 378, 432, 383, 286]
PROMPT = [1, 403, 407, 261, 378]


def load(path):
    r = GGUFReader(str(path))
    kv = {f.name: f for f in r.fields.values()}

    def scalar(name):
        f = kv[name]
        return f.parts[f.data[0]][0]

    cfg = dict(
        dim=int(scalar("llama.embedding_length")),
        hidden=int(scalar("llama.feed_forward_length")),
        layers=int(scalar("llama.block_count")),
        heads=int(scalar("llama.attention.head_count")),
        kv_heads=int(scalar("llama.attention.head_count_kv")),
        eps=float(np.float32(scalar("llama.attention.layer_norm_rms_epsilon"))),
    )
    w = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]  # [out][in]
        w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
    return cfg, w


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x) + eps) * g


def forward_all(cfg, w, tokens):
    dim, heads, kvh, L = cfg["dim"], cfg["heads"], cfg["kv_heads"], cfg["layers"]
    hs = dim // heads
    kv_dim = hs * kvh
    keys = np.zeros((L, len(tokens), kv_dim))
    vals = np.zeros((L, len(tokens), kv_dim))
    out = []
    for pos, tok in enumerate(tokens):
        x = w["token_embd.weight"][tok].copy()
        i = np.arange(0, hs, 2)
        theta = pos * 10000.0 ** (-i / hs)
        cos, sin = np.cos(theta), np.sin(theta)

        def rope(v):
            v = v.reshape(-1, hs).copy()
            a, b = v[:, 0::2].copy(), v[:, 1::2].copy()
            v[:, 0::2] = a * cos - b * sin
            v[:, 1::2] = a * sin + b * cos
            return v.reshape(-1)

        for l in range(L):
            p = f"blk.{l}."
            xb = rmsnorm(x, w[p + "attn_norm.weight"].reshape(-1), cfg["eps"])
            q = rope(w[p + "attn_q.weight"] @ xb)
            keys[l, pos] = rope(w[p + "attn_k.weight"] @ xb)
            vals[l, pos] = w[p + "attn_v.weight"] @ xb
            att_out = np.zeros(dim)
            for h in range(heads):
                kh = h // (heads // kvh)
                k = keys[l, : pos + 1, kh * hs : (kh + 1) * hs]
                v = vals[l, : pos + 1, kh * hs : (kh + 1) * hs]
                s = k @ q[h * hs : (h + 1) * hs] / np.sqrt(hs)
                s = np.exp(s - s.max())
                s /= s.sum()
                att_out[h * hs : (h + 1) * hs] = s @ v
            x = x + w[p + "attn_output.weight"] @ att_out
            xb = rmsnorm(x, w[p + "ffn_norm.weight"].reshape(-1), cfg["eps"])
            g = w[p + "ffn_gate.weight"] @ xb
            u = w[p + "ffn_up.weight"] @ xb
            x = x + w[p + "ffn_down.weight"] @ (g / (1 + np.exp(-g)) * u)
        x = rmsnorm(x, w["output_norm.weight"].reshape(-1), cfg["eps"])
        out.append(w["output.weight"] @ x)
    return np.array(out)


def greedy(cfg, w, n=32):
    tokens = list(PROMPT)
    for _ in range(n):
        logits = forward_all(cfg, w, tokens)[-1]
        tokens.append(int(np.argmax(logits)))
    return tokens[len(PROMPT):]


def main():
    repo = HERE.parent.parent.parent
    cfg, w = load(repo / "models/stories260K.gguf")
    ref = np.fromfile(repo / "tests/data/stories260K.logits.f32", dtype="<f4").reshape(8, 512)
    diff = np.abs(forward_all(cfg, w, FED) - ref).max()
    print(f"self-check on F32 vs run.c logits: max abs diff {diff:.2e}")
    if diff > 5e-5:
        sys.exit("self-check failed")
    refs = {}
    for stem in ["stories260K-BF16", "stories260K-Q5_1"]:
        cfg, w = load(HERE / f"{stem}.gguf")
        logits = forward_all(cfg, w, FED)
        logits.astype("<f4").tofile(HERE / f"{stem}.exact-logits.f32")
        ids = greedy(cfg, w)
        refs[stem] = {"fed_token_ids": FED, "argmax_per_position": [int(a) for a in logits.argmax(1)], "greedy_ids": ids}
        print(stem, "argmax", refs[stem]["argmax_per_position"], "greedy", ids[:8], "...")
    (HERE / "refs.json").write_text(json.dumps(refs, indent=1) + "\n")


if __name__ == "__main__":
    main()
