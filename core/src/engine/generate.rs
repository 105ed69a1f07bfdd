//! The generation loop, as llama2.c's `generate`: feed the prompt in prefill chunks, then
//! sample, one token at a time, and report each position to the caller. Knows nothing of the
//! block or the weights.

use crate::cache::{CacheStats, Loader};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::arch::Stops;
use crate::sampler::Sampler;
use crate::storage::Storage;
use crate::tokenizer::printable;

/// Whether a position consumes the prompt or generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// The token fed at this position comes from the prompt.
    Prefill,
    /// The token fed at this position was generated.
    Decode,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopReason {
    /// All steps ran.
    Steps,
    /// The model chose BOS (architectures that stop as llama2.c's `run.c`).
    Bos,
    /// The model chose an end-of-generation token: EOS or a control piece its architecture
    /// names (Gemma's `<end_of_turn>`).
    Eos,
}

/// Most stop tokens an architecture may name besides EOS.
const MAX_STOPS: usize = 4;

/// The tokens that end generation for this engine's architecture, and the reason they give.
fn stop_tokens<'a, S: Storage, L: Loader<'a>>(
    engine: &Engine<'a, S, L>,
) -> (heapless::Vec<u32, MAX_STOPS>, StopReason) {
    let t = engine.tokenizer();
    let mut ids = heapless::Vec::new();
    match engine.weights.model.arch.stops {
        Stops::Bos => {
            let _ = ids.push(t.bos());
            (ids, StopReason::Bos)
        }
        Stops::Eos(pieces) => {
            let _ = ids.push(t.eos());
            for id in pieces.iter().filter_map(|p| t.lookup(p.as_bytes())) {
                // Pieces beyond the capacity are not stops (an architecture names one or two).
                let _ = ids.push(id);
            }
            (ids, StopReason::Eos)
        }
    }
}

/// One position of [`generate`].
#[derive(Debug)]
pub struct TokenEvent<'t> {
    /// The position just run.
    pub pos: u32,
    /// The token fed at it.
    pub token: u32,
    /// The next token (from the prompt or sampled).
    pub next: u32,
    /// What the next token prints (empty for unprintable lone bytes).
    pub text: &'t [u8],
    /// Whether `token` came from the prompt.
    pub phase: Phase,
}

/// What [`generate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Outcome {
    /// Positions run.
    pub positions: u32,
    /// Positions whose fed token came from the prompt.
    pub prefill_positions: u32,
    /// Why it stopped.
    pub stop: StopReason,
    /// Cache counters while the prompt was fed.
    pub prefill: CacheStats,
    /// Cache counters after the prompt.
    pub decode: CacheStats,
}

/// llama2.c's `generate`: feeds the prompt, then samples, for `steps` positions (clamped to the
/// planned context) or until the model chooses a stop token (BOS where the architecture stops as `run.c` does; EOS
/// and the architecture's end-of-turn pieces otherwise). The prompt runs layer-major in chunks of
/// [`crate::Plan::prefill_chunk`] positions. `on_token` sees every position.
pub fn generate<'a, S: Storage, L: Loader<'a>>(
    engine: &mut Engine<'a, S, L>,
    sampler: &mut Sampler,
    prompt: &[u32],
    steps: u32,
    on_token: impl FnMut(&TokenEvent<'_>),
) -> Result<Outcome> {
    generate_with_logits(engine, sampler, prompt, steps, |_, _| {}, on_token)
}

/// As [`generate`], and `on_logits(pos, logits)` sees the logits of every forward pass before
/// they are sampled: those of position `pos`, the last of its prefill chunk (every position
/// when the plan's prefill chunk is 1).
pub fn generate_with_logits<'a, S: Storage, L: Loader<'a>>(
    engine: &mut Engine<'a, S, L>,
    sampler: &mut Sampler,
    prompt: &[u32],
    steps: u32,
    mut on_logits: impl FnMut(u32, &[f32]),
    mut on_token: impl FnMut(&TokenEvent<'_>),
) -> Result<Outcome> {
    if prompt.is_empty() {
        return Err(Error::BufferTooSmall { what: "prompt", needed: 1, got: 0 });
    }
    let steps = steps.min(engine.plan().context) as usize;
    let (stops, reason) = stop_tokens(engine);
    let start = engine.stats();
    let prefilled = prompt.len().min(steps);
    let mut pos = 0usize;
    let mut token = prompt[0];
    // Prefill: positions whose fed token comes from the prompt.
    for chunk in prompt[..prefilled].chunks(engine.work.positions) {
        let logits = engine.forward_batch(chunk, pos as u32)?;
        on_logits((pos + chunk.len() - 1) as u32, logits);
        for _ in chunk {
            let next = match prompt.get(pos + 1) {
                Some(&t) => t,
                None => engine.sample(sampler),
            };
            pos += 1;
            if stops.contains(&next) {
                on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text: &[], phase: Phase::Prefill });
                let end = engine.stats();
                return Ok(Outcome {
                    positions: pos as u32,
                    prefill_positions: pos as u32,
                    stop: reason,
                    prefill: end.since(&start),
                    decode: CacheStats::default(),
                });
            }
            let text = printable(engine.tokenizer().decode(token, next));
            on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text, phase: Phase::Prefill });
            token = next;
        }
    }
    let mid = engine.stats();
    let mut stop = StopReason::Steps;
    while pos < steps {
        let logits = engine.forward(token, pos as u32)?;
        on_logits(pos as u32, logits);
        let next = engine.sample(sampler);
        pos += 1;
        if stops.contains(&next) {
            stop = reason;
            on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text: &[], phase: Phase::Decode });
            break;
        }
        let text = printable(engine.tokenizer().decode(token, next));
        on_token(&TokenEvent { pos: pos as u32 - 1, token, next, text, phase: Phase::Decode });
        token = next;
    }
    let end = engine.stats();
    Ok(Outcome {
        positions: pos as u32,
        prefill_positions: prefilled as u32,
        stop,
        prefill: mid.since(&start),
        decode: end.since(&mid),
    })
}
