//! Choosing the next token from the logits: argmax, temperature, top-p and plain multinomial
//! (llama2.c's sampler), with llama.cpp's repetition penalty, top-k and min-p on top.
//!
//! The llama2.c part is a faithful port, down to its xorshift* generator, float32 softmax and
//! tie rules, so that a seeded run reproduces the reference: with top-k 0, min-p 0 and a
//! penalty of 1 not one float operation differs. It owns only its settings, the RNG state and
//! the ring of recent tokens, which the caller lends (no heap); the caller also lends the
//! candidate buffer (from the arena). It must not touch the logits beyond the one call that
//! samples them.
//!
//! The order of one [`Sampler::sample`]: repetition penalty on the raw logits (llama.cpp's
//! formula: a positive logit is divided by the penalty, any other multiplied), greedy if the
//! temperature is 0, else temperature, softmax, top-k, min-p (keep `p >= min_p * p_max`),
//! top-p, and one draw. Unlike llama.cpp, temperature comes before the filters (run.c's order,
//! which its goldens need), so top-p and min-p see the tempered distribution.

use crate::ops::softmax;

/// Sampler settings, RNG state and the recent tokens the repetition penalty looks at.
#[derive(Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Sampler<'w> {
    temperature: f32,
    topp: f32,
    top_k: u32,
    min_p: f32,
    penalty: f32,
    recent: Recent<'w>,
    rng: u64,
}

/// The last tokens fed to the model, in a ring the caller lends: its length is the window
/// (llama.cpp's `--repeat-last-n`).
#[derive(Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Recent<'w> {
    ring: &'w mut [u32],
    /// Entries filled (at most `ring.len()`).
    len: usize,
    /// Where the next token goes.
    next: usize,
}

impl Recent<'_> {
    fn push(&mut self, token: u32) {
        if self.ring.is_empty() {
            return;
        }
        self.ring[self.next] = token;
        self.next = (self.next + 1) % self.ring.len();
        self.len = (self.len + 1).min(self.ring.len());
    }

    fn tokens(&self) -> &[u32] {
        &self.ring[..self.len]
    }
}

/// Index of the largest value; the first wins a tie.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate().skip(1) {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler<'static> {
    /// `temperature` 0 is greedy; `topp` in (0, 1) is nucleus sampling, anything else plain
    /// multinomial; `seed` starts the xorshift* state. Top-k and min-p are off and there is no
    /// repetition penalty until the `with_` methods set them.
    pub fn new(temperature: f32, topp: f32, seed: u64) -> Self {
        Self {
            temperature,
            topp,
            top_k: 0,
            min_p: 0.0,
            penalty: 1.0,
            recent: Recent { ring: &mut [], len: 0, next: 0 },
            rng: seed,
        }
    }
}

impl<'w> Sampler<'w> {
    /// Keeps only the `k` most probable tokens (0: all).
    pub fn with_top_k(mut self, k: u32) -> Self {
        self.top_k = k;
        self
    }

    /// Keeps only tokens at least `p` times as probable as the most probable one (0: all).
    pub fn with_min_p(mut self, p: f32) -> Self {
        self.min_p = p;
        self
    }

    /// Penalizes every token among the last `window.len()` fed to the model (see
    /// [`Sampler::accept`]) once, however often it occurs: a positive logit is divided by
    /// `penalty`, any other multiplied (llama.cpp's `--repeat-penalty`). A penalty of 1 or an
    /// empty window is off. The window is the caller's: a static, a stack array or part of its
    /// own buffers, e.g. `&mut [0u32; 64]` for llama.cpp's default `--repeat-last-n 64`.
    pub fn with_repetition_penalty<'v>(self, penalty: f32, window: &'v mut [u32]) -> Sampler<'v> {
        Sampler {
            temperature: self.temperature,
            topp: self.topp,
            top_k: self.top_k,
            min_p: self.min_p,
            penalty,
            recent: Recent { ring: window, len: 0, next: 0 },
            rng: self.rng,
        }
    }

    /// Records a token fed to the model (prompt and generated alike), for the repetition
    /// penalty; [`crate::generate`] calls it for every position.
    pub fn accept(&mut self, token: u32) {
        self.recent.push(token);
    }

    fn random_u32(&mut self) -> u32 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn random_f32(&mut self) -> f32 {
        (self.random_u32() >> 8) as f32 / 16_777_216.0
    }

    /// Picks a token. `logits` is overwritten with probabilities; `candidates` needs
    /// `logits.len()` entries for top-p, top-k, min-p and the penalty (it is scratch).
    pub fn sample(&mut self, logits: &mut [f32], candidates: &mut [u32]) -> u32 {
        if self.penalty != 1.0 {
            penalize(logits, self.recent.tokens(), self.penalty, candidates);
        }
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        for l in logits.iter_mut() {
            *l /= self.temperature;
        }
        softmax(logits);
        let coin = self.random_f32();
        let all = self.top_k == 0 || self.top_k as usize >= logits.len();
        if all && self.min_p <= 0.0 {
            if self.topp <= 0.0 || self.topp >= 1.0 {
                sample_mult(logits, coin)
            } else {
                sample_topp(logits, self.topp, candidates, coin)
            }
        } else {
            let filter =
                Filter { top_k: if all { 0 } else { self.top_k as usize }, min_p: self.min_p, topp: self.topp };
            sample_filtered(logits, filter, candidates, coin)
        }
    }
}

/// Applies the repetition penalty to each distinct token of `recent` (ids beyond the logits
/// are ignored). The distinct tokens are found by sorting a copy in `scratch`; a window longer
/// than the scratch is deduplicated by search instead.
fn penalize(logits: &mut [f32], recent: &[u32], penalty: f32, scratch: &mut [u32]) {
    let mut hit = |t: u32| {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l <= 0.0 { *l * penalty } else { *l / penalty };
        }
    };
    if recent.len() <= scratch.len() {
        let copy = &mut scratch[..recent.len()];
        copy.copy_from_slice(recent);
        copy.sort_unstable();
        for (i, &t) in copy.iter().enumerate() {
            if i == 0 || copy[i - 1] != t {
                hit(t);
            }
        }
    } else {
        for (i, &t) in recent.iter().enumerate() {
            if !recent[..i].contains(&t) {
                hit(t);
            }
        }
    }
}

fn sample_mult(probs: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0f32;
    for (i, &p) in probs.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i as u32;
        }
    }
    probs.len().saturating_sub(1) as u32
}

fn sample_topp(probs: &[f32], topp: f32, candidates: &mut [u32], coin: f32) -> u32 {
    // Tokens below the cutoff cannot be in the nucleus; dropping them first keeps the sort small.
    let n = probs.len();
    let cutoff = (1.0 - topp) / (n as f32 - 1.0);
    let mut n0 = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p >= cutoff && n0 < candidates.len() {
            candidates[n0] = i as u32;
            n0 += 1;
        }
    }
    if n0 == 0 {
        return argmax(probs);
    }
    let kept = &mut candidates[..n0];
    // Descending probability; equal probabilities keep index order (the reference's stable sort).
    kept.sort_unstable_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]).then(a.cmp(&b)));
    let mut cumulative = 0.0f32;
    let mut last = n0 - 1;
    for (i, &id) in kept.iter().enumerate() {
        cumulative += probs[id as usize];
        if cumulative > topp {
            last = i;
            break;
        }
    }
    draw(probs, &kept[..=last], coin * cumulative)
}

/// Walks the cumulative probabilities of `kept` until it passes `r`.
fn draw(probs: &[f32], kept: &[u32], r: f32) -> u32 {
    let mut cdf = 0.0f32;
    for &id in kept {
        cdf += probs[id as usize];
        if r < cdf {
            return id;
        }
    }
    kept[kept.len() - 1]
}

/// The filters of the general path (top-k 0: all; top-p outside (0, 1): off).
#[derive(Clone, Copy)]
struct Filter {
    top_k: usize,
    min_p: f32,
    topp: f32,
}

/// Top-k, min-p then top-p over the probabilities, and one draw among what is left.
fn sample_filtered(probs: &[f32], f: Filter, candidates: &mut [u32], coin: f32) -> u32 {
    let pmax = probs.iter().copied().fold(0.0f32, f32::max);
    let floor = f.min_p * pmax;
    let mut n0 = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p >= floor && n0 < candidates.len() {
            candidates[n0] = i as u32;
            n0 += 1;
        }
    }
    if n0 == 0 {
        return argmax(probs);
    }
    let desc = |&a: &u32, &b: &u32| probs[b as usize].total_cmp(&probs[a as usize]).then(a.cmp(&b));
    let mut kept = &mut candidates[..n0];
    if f.top_k > 0 && f.top_k < kept.len() {
        kept.select_nth_unstable_by(f.top_k - 1, desc);
        kept = &mut kept[..f.top_k];
    }
    kept.sort_unstable_by(desc);
    let mut cumulative = 0.0f32;
    let mut last = kept.len() - 1;
    for (i, &id) in kept.iter().enumerate() {
        cumulative += probs[id as usize];
        if f.topp > 0.0 && f.topp < 1.0 && cumulative > f.topp {
            last = i;
            break;
        }
    }
    draw(probs, &kept[..=last], coin * cumulative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_matches_the_reference_sequence() {
        // First outputs of run.c's random_u32 with seed 42, computed by hand from its definition.
        let mut s = Sampler::new(1.0, 0.9, 42);
        let mut state: u64 = 42;
        for _ in 0..5 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let expected = (state.wrapping_mul(0x2545F4914F6CDD1D) >> 32) as u32;
            assert_eq!(s.random_u32(), expected);
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut l = [1.0, 3.0, 3.0, 0.0];
        assert_eq!(Sampler::new(0.0, 0.9, 1).sample(&mut l, &mut [0; 4]), 1);
    }

    #[test]
    fn topp_keeps_only_the_nucleus() {
        // One token holds 99% of the mass: top-p 0.5 must always pick it.
        let mut s = Sampler::new(1.0, 0.5, 7);
        for _ in 0..50 {
            let mut l = [10.0, 0.0, 0.0, 0.0, 0.0];
            assert_eq!(s.sample(&mut l, &mut [0; 5]), 0);
        }
    }

    // The probabilities of the hand-computed cases: 0.1, 0.4, 0.2, 0.3 (exact sums below are
    // within one f32 rounding; no coin is placed near a boundary).
    const P: [f32; 4] = [0.1, 0.4, 0.2, 0.3];
    const OFF: Filter = Filter { top_k: 0, min_p: 0.0, topp: 1.0 };

    #[test]
    fn top_k_keeps_the_k_most_probable() {
        // k = 2 keeps tokens 1 (0.4) and 3 (0.3), mass 0.7: a coin below 0.4/0.7 = 0.571 picks 1,
        // above it 3; tokens 0 and 2 never come.
        let f = Filter { top_k: 2, ..OFF };
        for (coin, want) in [(0.0, 1), (0.5, 1), (0.56, 1), (0.58, 3), (0.9, 3), (0.999, 3)] {
            assert_eq!(sample_filtered(&P, f, &mut [0; 4], coin), want, "coin {coin}");
        }
        // k = 1 is greedy whatever the coin.
        let f = Filter { top_k: 1, ..OFF };
        assert!([0.0, 0.5, 0.999].iter().all(|&c| sample_filtered(&P, f, &mut [0; 4], c) == 1));
    }

    #[test]
    fn min_p_keeps_tokens_near_the_most_probable() {
        // min-p 0.6: floor 0.6 x 0.4 = 0.24 keeps 1 and 3, as top-k 2 above.
        let f = Filter { min_p: 0.6, ..OFF };
        for (coin, want) in [(0.5, 1), (0.58, 3), (0.99, 3)] {
            assert_eq!(sample_filtered(&P, f, &mut [0; 4], coin), want, "coin {coin}");
        }
        // min-p 0.45: floor 0.18 keeps 1, 3, 2 (mass 0.9, cumulative 0.4, 0.7, 0.9): coin 0.9
        // gives r = 0.81, past 0.7, so token 2; coin 0.7 gives 0.63, token 3. Token 0 never.
        let f = Filter { min_p: 0.45, ..OFF };
        for (coin, want) in [(0.1, 1), (0.7, 3), (0.9, 2)] {
            assert_eq!(sample_filtered(&P, f, &mut [0; 4], coin), want, "coin {coin}");
        }
    }

    #[test]
    fn top_p_applies_after_top_k() {
        // k = 3 keeps 1, 3, 2; top-p 0.5 then stops at 0.4 + 0.3 = 0.7 > 0.5: tokens 1 and 3 only.
        let f = Filter { top_k: 3, min_p: 0.0, topp: 0.5 };
        assert_eq!(sample_filtered(&P, f, &mut [0; 4], 0.999), 3);
        assert_eq!(sample_filtered(&P, f, &mut [0; 4], 0.5), 1);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        // Tokens 0 and 1 were seen (0 twice, penalized once): 2.0 / 2 = 1.0, -1.0 x 2 = -2.0;
        // 2 and 3 keep theirs. Every value is exact in binary.
        let mut l = [2.0, -1.0, 0.5, 3.0];
        penalize(&mut l, &[0, 1, 0], 2.0, &mut [0; 4]);
        assert_eq!(l, [1.0, -2.0, 0.5, 3.0]);
        // A window longer than the scratch deduplicates by search, with the same result.
        let mut l = [2.0, -1.0, 0.5, 3.0];
        penalize(&mut l, &[0, 1, 0], 2.0, &mut [0; 2]);
        assert_eq!(l, [1.0, -2.0, 0.5, 3.0]);
    }

    #[test]
    fn repetition_penalty_changes_the_greedy_choice_within_its_window() {
        // 3.0 / 2 = 1.5 < 2.0: once token 0 was fed, greedy picks 2.
        let mut window = [0u32; 2];
        let mut s = Sampler::new(0.0, 0.9, 1).with_repetition_penalty(2.0, &mut window);
        assert_eq!(s.sample(&mut [3.0, 0.0, 2.0], &mut [0; 3]), 0);
        s.accept(0);
        assert_eq!(s.sample(&mut [3.0, 0.0, 2.0], &mut [0; 3]), 2);
        // Two more tokens push 0 out of the two-token window.
        s.accept(1);
        s.accept(2);
        assert_eq!(s.sample(&mut [3.0, 0.0, 2.0], &mut [0; 3]), 0);
    }

    #[test]
    fn a_seed_repeats_its_draws() {
        let logits = [0.5, 1.0, 0.2, 0.9, 0.1, 0.7];
        let run = |seed| {
            let mut s = Sampler::new(1.0, 0.95, seed).with_top_k(4).with_min_p(0.05);
            let mut out = [0u32; 32];
            for o in out.iter_mut() {
                *o = s.sample(&mut logits.clone(), &mut [0; 6]);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // Top-k 4 never picks the two least probable tokens (2 and 4).
        assert!(run(7).iter().chain(run(8).iter()).all(|&t| t != 2 && t != 4));
    }
}
