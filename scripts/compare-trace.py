#!/usr/bin/env python3
"""Compares two traces of Gemma 3 (scripts/llama-trace.cpp's format): llama.cpp's and Spool's
(tests/tests/gemma3_trace.rs), tensor by tensor in Spool's order, and prints for each the
largest and the rms difference and the rms of llama.cpp's values, per position.

usage: compare-trace.py LLAMA.bin SPOOL.bin [NAME_FILTER]
llama.cpp's per-head tensors (Qcur/Kcur after the head norms and RoPE) are matched by the
last tensor of that name and shape; `attn_out` is llama.cpp's unnamed projection before
attn_post_norm.
"""
import struct, sys, math


def read(path):
    f = open(path, "rb").read()
    o, out = 0, []
    while o < len(f):
        n, = struct.unpack_from("<I", f, o); o += 4
        name = f[o:o + n].decode(); o += n
        ne = struct.unpack_from("<4q", f, o); o += 32
        cnt = ne[0] * ne[1] * ne[2] * ne[3]
        out.append((name, ne, struct.unpack_from(f"<{cnt}f", f, o))); o += 4 * cnt
    return out


def llama_index(trace):
    """Name -> values in Spool's naming."""
    idx, prev = {}, None
    seen = {}
    for name, ne, v in trace:
        base, _, layer = name.partition("-")
        # Qcur-L appears as the projection (flat), reshaped, and after RoPE (node after the
        # norm): the first is "Qcur", the one after Qcur_normed is the roped one.
        if base in ("Qcur", "Kcur", "Vcur") and layer.isdigit():
            k = seen.get(name, 0); seen[name] = k + 1
            if k == 0:
                idx[name] = v
            elif prev and prev.startswith(base + "_normed"):
                idx[f"{base}_roped-{layer}"] = v
        elif name.startswith("node_") and prev and prev.startswith("kqv_out-"):
            idx["attn_out-" + prev.split("-")[1]] = v
        elif name.startswith("node_") and prev and prev.startswith("Vcur-") and "(view)" not in name:
            pass
        else:
            idx.setdefault(name, v) if name not in ("norm",) and not name.startswith("norm-") else None
        prev = name
    return idx


def evals(trace):
    """The trace cut into forward passes (each starts with inp_scaled)."""
    out = []
    for i, t in enumerate(trace):
        if t[0] == "embd":
            continue
        if t[0] == "inp_scaled" or not out:
            out.append([])
        out[-1].append(t)
    return out


def main():
    filt = sys.argv[3] if len(sys.argv) > 3 else ""
    print(f"{'tensor':<20} {'pos':>3} {'max|d|':>9} {'rms d':>9} {'rms ref':>9} {'rel':>8}")
    llama_evals, spool_evals = evals(read(sys.argv[1])), evals(read(sys.argv[2]))
    at = 0
    for e, (le, se) in enumerate(zip(llama_evals, spool_evals)):
        compare(llama_index(le), se, filt, at)
        at += se[0][1][1]


def compare(llama, spool, filt, at):
    for name, ne, v in spool:
        if filt not in name:
            continue
        ref = llama.get(name)
        if ref is None:
            print(f"{name:<20} (no llama.cpp tensor)")
            continue
        if len(ref) != len(v):
            # llama.cpp's result tensors hold every position: compare the last.
            ref = ref[len(ref) - len(v):]
        width, rows = ne[0], ne[1]
        for p in range(rows):
            a, b = v[p * width:(p + 1) * width], ref[p * width:(p + 1) * width]
            d = [x - y for x, y in zip(a, b)]
            mx = max(abs(x) for x in d)
            rms = math.sqrt(sum(x * x for x in d) / len(d))
            rr = math.sqrt(sum(x * x for x in b) / len(b))
            print(f"{name:<20} {at + p:>3} {mx:9.3g} {rms:9.3g} {rr:9.3g} {rms / rr if rr else 0:8.2e}")


main()
