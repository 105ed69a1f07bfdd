//! # spool-core
//!
//! A `no_std`, heap-free inference core for transformer models (the architectures in
//! [`model::arch`]) whose weights do not fit in RAM. The caller hands it a RAM arena
//! (`&mut [u8]`, the budget) and a blocking [`Storage`]; the core plans the arena, keeps the
//! hot weights resident, streams the rest through slots and runs the forward pass. The data flows one way:
//!
//! ```text
//! storage --read_at--> cache (resident set + slots) --&[u8] views--> model (forward pass)
//!         --> logits --> sampler --> token --> tokenizer.decode --> caller's sink
//! ```
//!
//! ```
//! use spool_core::{Engine, SliceStorage, Sampler, generate};
//! # let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf")).unwrap();
//! let storage = SliceStorage::new(&bytes);
//! let mut arena = vec![0u8; 700 * 1024]; // about half the model, plus the KV cache
//! let mut engine = Engine::new(storage, &mut arena, 64).unwrap();
//! let text = b"Once upon a time";
//! let mut prompt = [0u32; 32];
//! let mut scratch = [0u32; spool_core::tokenizer::encode_scratch_words(16)]; // 16 = text.len()
//! let n = engine.tokenizer().encode_with(text, true, &mut prompt, &mut scratch).unwrap();
//! let mut sampler = Sampler::new(0.0, 0.9, 42);
//! let mut text = Vec::new();
//! generate(&mut engine, &mut sampler, &prompt[..n], 16, |ev| text.extend_from_slice(ev.text)).unwrap();
//! assert!(text.starts_with(b"Once upon a time, there was"));
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// Internals: the arena's typed views, the forward pass and its ops, the logging shim.
mod bytes;
mod engine;
mod fmt;
mod mathf;
mod ops;

// The API, by concept; the items a caller needs most are re-exported below.
pub mod cache;
pub mod error;
pub mod exec;
pub mod gguf;
pub mod model;
pub mod plan;
pub mod quant;
pub mod sampler;
pub mod storage;
pub mod tokenizer;
#[cfg(feature = "trace")]
pub mod trace;

#[cfg(test)]
mod testutil;

pub use cache::{CacheStats, Completion, Loader, SyncLoader};
pub use engine::{generate, generate_with_logits, Engine, Outcome, Phase, StopReason, TokenEvent, WorkingLayout};
pub use error::{Error, PlanError, Size};
pub use exec::{Executor, Inline};
pub use gguf::{tensors, TensorEntry};
pub use model::ModelInfo;
pub use plan::{plan, plan_with, plan_within, Plan, PlanOptions, Policy};
pub use quant::{KernelPath, Kernels};
pub use sampler::Sampler;
#[cfg(feature = "embedded-storage")]
pub use storage::NorFlashStorage;
pub use storage::{CountingStorage, Faults, FaultyStorage, ReadSeekStorage, SliceStorage, Storage};
