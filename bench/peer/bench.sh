#!/usr/bin/env bash
# Times llama.cpp's decode (token generation) on a GGUF file with a given thread count:
#   bash bench/peer/bench.sh MODEL.gguf THREADS [TOKENS] [REPS]
# It prints one line, "llama.cpp tg tok/s: MEDIAN (threads T, tokens N, reps R)". Run Spool on the
# same file, with the same threads, in the same script, and print the ratio: these machines are
# shared and noisy, so only a ratio measured side by side means anything.
# It uses llama-bench with mmap (the default) and no prompt (-p 0), so the figure is pure decode.
set -euo pipefail
model=$1; threads=${2:-1}; n=${3:-32}; reps=${4:-3}
PREFIX=${PREFIX:-.peer/llama.cpp}
bench="$PREFIX/bin/llama-bench"
[ -x "$bench" ] || { echo "no $bench: run bench/peer/install.sh first" >&2; exit 2; }
"$bench" -m "$model" -t "$threads" -p 0 -n "$n" -r "$reps" -o json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
r = [x for x in rows if x.get("n_gen", 0) > 0][0]
print("llama.cpp tg tok/s: %.2f (threads %d, tokens %d, reps %d, stddev %.2f)" % (
    r["avg_ts"], r["n_threads"], r["n_gen"], len(r.get("samples_ts", [])), r.get("stddev_ts", 0)))
'
