#!/usr/bin/env python3
"""Makes logits.json: llama.cpp's logits at chosen positions on Gemma 3 270M Q4_K_M.

Usage: python3 tests/data/gemma3/make-logits.py PEER_BIN_DIR MODEL > tests/data/gemma3/logits.json

PEER_BIN_DIR holds llama-logits, built from scripts/llama-logits.cpp against the peer's static
libraries (f32 KV cache, no repacking, as `llama-completion -ctk f32 -ctv f32 --no-repack`):
  cd /work/peer/llama.cpp && V=src/llama_cpp_python-0.3.36/vendor/llama.cpp && g++ -O2 -std=c++17 \
    -I$V/include -I$V/ggml/include SPOOL/scripts/llama-logits.cpp build/src/libllama.a \
    build/ggml/src/libggml.a build/ggml/src/libggml-cpu.a build/ggml/src/libggml-base.a \
    -lgomp -lpthread -ldl -o PEER_BIN_DIR/llama-logits

Cases:
- "france": every position of "The capital of France is" and of its 32-token greedy continuation;
- "long": tests/data/gemma3/long-prompt.txt (708 tokens, past the 512-position sliding window),
  positions 600, 650, 700 and its last, and an 8-token continuation;
- the 8 prompts of reference.json: every 8th position of the prompt and of a 64-token
  continuation.
For each dumped position: llama.cpp's argmax, its top 8 (id, logit) and the logits of every
2039th id (129 ids), so the file stays small.

GGML_CPU_TILED_MM=0 turns off llama.cpp's tiled K-quant product for prompt batches of 8 or more
tokens (ggml-cpu/tiled), whose float summation differs from its per-row `vec_dot` (which it
still runs for generated tokens and shorter prompts, and which Spool follows bit for bit). With
it off, Spool's logits equal these on every case but "long" (whose 512-token prompt batches take
llama.cpp's tiled flash-attention path, f32 accumulation). Everything else is llama.cpp's default.
"""
import json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(bindir, model, prompt, new, frm, every):
    cmd = [f"{bindir}/llama-logits", model, prompt, str(new), "1", str(frm), str(every), "4096"]
    env = dict(os.environ, GGML_CPU_TILED_MM="0")
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout)
    show = "GGML_CPU_TILED_MM=0 " + " ".join("MODEL" if a == model else a.replace(bindir + "/", "") for a in cmd)
    return out, show


def main():
    bindir, model = sys.argv[1], sys.argv[2]
    prompts = [c["prompt"] for c in json.load(open(f"{HERE}/reference.json"))["cases"]]
    cases = []
    specs = [("france", "The capital of France is", 32, 0, 1),
             ("long", "@" + os.path.join(HERE, "long-prompt.txt"), 8, 600, 50)]
    specs += [(f"prompt{i}", p, 64, 0, 8) for i, p in enumerate(prompts)]
    for name, prompt, new, frm, every in specs:
        out, show = run(bindir, model, prompt, new, frm, every)
        out = {"name": name, "prompt": prompt.replace(HERE + "/", "") if prompt.startswith("@") else prompt,
               "command": show.replace(HERE + "/", "tests/data/gemma3/"), **out}
        cases.append(out)
    json.dump({"model": "gemma-3-270m-q4_k_m.gguf", "sample_stride": 2039, "top": 8,
               "this_file": "python3 tests/data/gemma3/make-logits.py PEER_BIN_DIR MODEL", "cases": cases},
              sys.stdout, separators=(",", ":"))
    print()


main()
