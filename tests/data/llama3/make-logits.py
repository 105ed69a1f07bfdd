#!/usr/bin/env python3
"""Makes logits.json: llama.cpp's logits at several positions of one prompt on small
Llama-3-shaped synth files (the real Llama 3 vocabulary, rope_freqs.weight with Llama 3.2's RoPE
scaling, the classifier tied to the embedding table, GQA), which tests/tests/llama3.rs
regenerates with `spool-sim synth` from the recorded arguments (synth is deterministic), so no
model file is committed.

Usage (from the repository root):
  python3 tests/data/llama3/make-logits.py SPOOL_SIM PEER_BIN_DIR > tests/data/llama3/logits.json

SPOOL_SIM is a `spool-sim` binary of this commit (`cargo build --release -p spool-sim`:
target/release/spool-sim). PEER_BIN_DIR holds llama-logits, built from scripts/llama-logits.cpp
against the peer's static libraries (f32 KV cache, no repacking, as `llama-completion -ctk f32
-ctv f32 --no-repack`):
  cd /work/peer/llama.cpp && V=src/llama_cpp_python-0.3.36/vendor/llama.cpp && g++ -O2 -std=c++17 \
    -I$V/include -I$V/ggml/include SPOOL/scripts/llama-logits.cpp build/src/libllama.a \
    build/ggml/src/libggml.a build/ggml/src/libggml-cpu.a build/ggml/src/libggml-base.a \
    -lgomp -lpthread -ldl -o PEER_BIN_DIR/llama-logits

Each case: the synth arguments (the vocabulary path relative to the repository), the prompt
(prompt.txt, BOS added and special text parsed as llama-logits does), every 8th position of the
prompt, its last and an 8-token greedy continuation; for each dumped position llama.cpp's argmax,
its top 8 (id, logit) and the logits of every 2039th id (63 of 128,256).
"""
import json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = "tests/data/vocab/ggml-vocab-llama-bpe.gguf"
SHAPE_64 = ["--dim", "256", "--hidden", "512", "--layers", "2", "--heads", "4", "--kv-heads", "2"]
SHAPE_128 = ["--dim", "512", "--hidden", "1024", "--layers", "2", "--heads", "4", "--kv-heads", "2"]
# name, synth arguments after the preset.
CASES = [
    ("f32-head64", SHAPE_64 + ["--ctx", "128", "--type", "F32", "--seed", "7"]),
    ("q8_0-head64", SHAPE_64 + ["--ctx", "128", "--type", "Q8_0", "--seed", "7"]),
    ("q8_0-head128", SHAPE_128 + ["--ctx", "128", "--type", "Q8_0", "--seed", "8"]),
]


def main():
    spool_sim, bindir = sys.argv[1], sys.argv[2]
    prompt = "@" + os.path.join(HERE, "prompt.txt")
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in CASES:
            synth = ["--preset", "llama3-1b"] + args + ["--vocab-from", VOCAB]
            path = os.path.join(tmp, name + ".gguf")
            subprocess.run([spool_sim, "synth", "-o", path] + synth, check=True, capture_output=True)
            cmd = [f"{bindir}/llama-logits", path, prompt, "8", "1", "0", "8", "128"]
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            show = " ".join(cmd).replace(bindir + "/", "").replace(path, "MODEL").replace(HERE + "/", "tests/data/llama3/")
            cases.append({"name": name, "synth": synth, "model": "spool-sim synth -o MODEL " + " ".join(synth),
                          "command": show, **out})
    json.dump({"prompt": "tests/data/llama3/prompt.txt", "sample_stride": 2039, "top": 8,
               "this_file": "python3 tests/data/llama3/make-logits.py SPOOL_SIM PEER_BIN_DIR", "cases": cases},
              sys.stdout, separators=(",", ":"))
    print()


main()
