//! # spool-sim
//!
//! Runs the full model on a desktop as a device would: a RAM budget, storage behind the core's
//! trait, and the reports a firmware engineer needs (tokens/s, the arena plan, cache hits and
//! bytes read per token). It holds no inference logic: everything it reports, the core
//! computed.
//!
//! ```text
//! spool-sim run -m PATH [-p TEXT] [-n STEPS] [--temp T] [--top-p P] [--seed S] [--ram SIZE]
//!               [--ctx N] [--storage file|mmap|flash] [--flash-mbps M] [--flash-latency-us U]
//!               [--policy pin|lru|lru-protect|mru|min] [--prefetch N] [--prefill-chunk N] [--json]
//!               [--kernel scalar|simd|simd-q8|simd-q8-avx2|auto] [--threads N] [--dump-logits PATH]
//!               [--verify SIDECAR]
//! spool-sim checksum -m PATH -o SIDECAR
//! spool-sim inspect -m PATH [--ram SIZE] [--ctx N]
//! spool-sim bench matvec [--rows R] [--cols C] [--types T,T,..] [--seconds S]
//! ```

pub mod bench;
mod budget;
mod cli;
pub mod flash;
mod inspect;
pub mod json;
pub mod kernel_bench;
mod options;
pub mod plot;
pub mod quantize;
mod report;
mod run;
pub mod synth;
pub mod verify;

pub use budget::{full_budget, full_budget_with, minimum_budget, parse_budget, parse_size};
pub use cli::{main_with, utf8_args};
pub use inspect::inspect;
pub use options::{Backend, KernelChoice, RunOptions};
pub use report::{io_time_per_token, plan_json, plan_text, RunReport, SimReport};
pub use run::{plan_options, run, run_on};
