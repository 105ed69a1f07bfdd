#!/usr/bin/env python3
"""Makes reference.json: llama.cpp's greedy continuation of each prompt on Gemma 3 270M Q4_K_M.

Usage: python3 tests/data/gemma3/make-reference.py PEER_BIN_DIR MODEL [NEW_TOKENS] > reference.json
(reference.json was made with NEW_TOKENS 64.)

PEER_BIN_DIR holds llama-completion (from `bash /work/shared/peer/install.sh`) and llama-greedy,
built from scripts/llama-greedy.cpp against the peer's static libraries:
  cd .peer/llama.cpp && V=src/llama_cpp_python-0.3.36/vendor/llama.cpp && g++ -O2 -std=c++17 \
    -I$V/include -I$V/ggml/include ../../scripts/llama-greedy.cpp build/src/libllama.a \
    build/ggml/src/libggml.a build/ggml/src/libggml-cpu.a build/ggml/src/libggml-base.a \
    -lgomp -lpthread -ldl -o bin/llama-greedy
llama-greedy gives the prompt ids, the greedy new ids and llama.cpp's top-2 logit margin at each
step (f32 KV cache, no repacking, as `llama-completion -ctk f32 -ctv f32 --no-repack`);
llama-completion gives the text, which must be the prompt followed by the decoded new ids.

`robust` is the number of new ids before the first step whose margin is under ROBUST_MARGIN:
Spool's logits differ from llama.cpp's by about 0.3 (standard deviation over the vocabulary; the
two round and sum differently), so a closer call may go either way; the test compares these.
"""
import hashlib, json, subprocess, sys

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "The three primary colors are",
    "def fibonacci(n):",
    "Water boils at a temperature of",
    "The best way to learn a new language is",
    "The largest planet in the solar system is",
    "To make pancakes, you need",
]
ROBUST_MARGIN = 0.1


def main():
    bindir, model = sys.argv[1], sys.argv[2]
    new = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    greedy = [f"{bindir}/llama-greedy", model, "PROMPT", str(new), "1"]
    completion = [f"{bindir}/llama-completion", "-m", model, "-p", "PROMPT", "-n", str(new), "--temp", "0",
                  "-no-cnv", "-ctk", "f32", "-ctv", "f32", "--no-repack", "--repeat-penalty", "1.0",
                  "--top-k", "0", "--top-p", "1.0", "--min-p", "0", "-t", "1"]
    cases = []
    for prompt in PROMPTS:
        sub = lambda cmd: [prompt if a == "PROMPT" else a for a in cmd]
        g = json.loads(subprocess.run(sub(greedy), capture_output=True, text=True, check=True).stdout)
        text = subprocess.run(sub(completion), capture_output=True, text=True, check=True).stdout
        robust = next((i for i, m in enumerate(g["margins"]) if m < ROBUST_MARGIN), len(g["new_ids"]))
        cases.append({"prompt": prompt, "prompt_ids": g["prompt_ids"], "new_ids": g["new_ids"],
                      "margins": g["margins"], "robust": robust, "llama_completion_stdout": text})
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    show = lambda cmd: " ".join("MODEL" if a == model else a.replace(bindir + "/", "") for a in cmd)
    json.dump({"model": "gemma-3-270m-q4_k_m.gguf", "sha256": sha,
               "llama_cpp": "the llama.cpp tree vendored in llama-cpp-python 0.3.36 (the peer)",
               "commands": {"ids": show(greedy), "text": show(completion),
                            "this_file": f"python3 tests/data/gemma3/make-reference.py PEER_BIN_DIR MODEL {new}"},
               "robust_margin": ROBUST_MARGIN, "cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
    print()


main()
