#!/usr/bin/env python3
"""Makes reference.json: llama.cpp's greedy continuation of each prompt on Gemma 3 270M Q4_K_M.

Usage: python3 tests/data/gemma3/make-reference.py PEER_BIN_DIR MODEL [NEW_TOKENS]
PEER_BIN_DIR holds llama-completion and llama-tokenize (`bash /work/shared/peer/install.sh`).
The new ids are read from llama-completion's debug log (`-v` prints every batch it feeds as
`embd: [ 'piece':id, ... ]`); it is asked for one token more than recorded, so that every
recorded token has been fed. `robust` (how many new ids the test compares) is filled in by
hand after comparing with Spool, with the reason in `robust_note`.
"""
import json, re, subprocess, sys, hashlib

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "The three primary colors are",
    "def fibonacci(n):",
    "Water boils at a temperature of",
    "The best way to learn a new language is",
]

def main():
    bindir, model = sys.argv[1], sys.argv[2]
    new = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    cases = []
    commands = {}
    for prompt in PROMPTS:
        tok = [f"{bindir}/llama-tokenize", "-m", model, "-p", prompt, "--ids", "--log-disable"]
        out = subprocess.run(tok, capture_output=True, text=True, check=True).stdout
        prompt_ids = json.loads(out.strip().splitlines()[-1])
        comp = [f"{bindir}/llama-completion", "-m", model, "-p", prompt, "-n", str(new + 1), "--temp", "0",
                "-no-cnv", "-ctk", "f32", "-ctv", "f32", "--no-repack", "--repeat-penalty", "1.0",
                "--top-k", "0", "--top-p", "1.0", "--min-p", "0", "-t", "1", "--seed", "0", "-v"]
        r = subprocess.run(comp, capture_output=True, text=True, check=True)
        fed = []
        for line in r.stderr.splitlines():
            if line.startswith("embd: ["):
                fed.append([int(x) for x in re.findall(r"':(\d+)(?=, '|, \"|\s*\])", line)])
        # The first batch is the prompt; every later one is a single generated token.
        assert fed and fed[0] == prompt_ids, (prompt, fed[:1], prompt_ids)
        new_ids = [b[0] for b in fed[1:]][:new]
        commands = {"tokenize": " ".join(tok[:1] + ["-m", "MODEL", "-p", "PROMPT"] + tok[5:]),
                    "completion": " ".join(comp[:1] + ["-m", "MODEL", "-p", "PROMPT"] + comp[5:])}
        cases.append({"prompt": prompt, "prompt_ids": prompt_ids, "new_ids": new_ids,
                      "llama_cpp_stdout": r.stdout, "robust": len(new_ids), "robust_note": ""})
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    json.dump({"model": "gemma-3-270m-q4_k_m.gguf", "sha256": sha, "llama_cpp": "llama-cpp-python 0.3.36 vendor tree",
               "commands": commands, "cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
    print()

main()
