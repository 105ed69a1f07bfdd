//! # spool-sim
//!
//! Runs the full model on a desktop as a device would: a RAM budget, storage behind the core's
//! trait, and the reports a firmware engineer needs (tokens/s, the arena plan, cache hits and
//! bytes read per token). It holds no inference logic: everything it reports, the core
//! computed.
//!
//! ```text
//! spool-sim run -m PATH [-p TEXT | -f FILE] [-n NEW | --steps POSITIONS] [-c CTX] [-t THREADS]
//!               [-s SEED] [--temp T] [--top-p P] [--top-k K] [--min-p P] [--repeat-penalty X]
//!               [--repeat-last-n N] [--ram SIZE] [--storage file|mmap|flash|direct]
//!               [--verify SIDECAR] [--faults SPEC] ...
//! spool-sim checksum -m PATH -o SIDECAR
//! spool-sim inspect -m PATH [--ram SIZE] [-c CTX]
//! spool-sim bench budget|prefetch|policies|decode|matvec ...
//! spool-sim synth -o PATH ...
//! spool-sim tokenize -m PATH (-p TEXT | -f FILE) [--ids] [--no-bos] [--parse-special]
//! ```
//!
//! `spool-sim --help` and `spool-sim run --help` list every flag (clap). Sizes take K, M, G with
//! K = 1024 (`600K`, `600KiB` and `600KB` are the same), fractions (`1.5M`) and `50%` of the file.

pub mod bench;
mod budget;
pub mod cli;
pub mod flash;
mod inspect;
pub mod json;
pub mod kernel_bench;
mod options;
pub mod plot;
pub mod progress;
pub mod quantize;
mod report;
mod run;
pub mod synth;
pub mod tokenize;
pub mod verify;

pub use budget::{full_budget, full_budget_with, minimum_budget, minimum_budget_with, parse_budget, parse_size};
pub use cli::{main_with, utf8_args};
pub use inspect::inspect;
pub use options::{Backend, KernelChoice, RunOptions};
pub use report::{io_time_per_token, plan_json, plan_text, RunReport, Sampling, SimReport, Timing};
pub use run::{plan_options, run, run_on, run_on_with, run_with, runc_filter, OnToken};
