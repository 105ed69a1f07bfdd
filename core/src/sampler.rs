//! Choosing the next token from the logits: argmax, temperature, top-p and plain multinomial.
//!
//! A faithful port of llama2.c's sampler, down to its xorshift* generator, float32 softmax and
//! tie rules, so that a seeded run reproduces the reference. It owns only its settings and the
//! RNG state; the caller lends the candidate buffer (from the arena).

use crate::ops::softmax;

/// Sampler settings and RNG state.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Sampler {
    temperature: f32,
    topp: f32,
    rng: u64,
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

impl Sampler {
    /// `temperature` 0 is greedy; `topp` in (0, 1) is nucleus sampling, anything else plain
    /// multinomial; `seed` starts the xorshift* state.
    pub fn new(temperature: f32, topp: f32, seed: u64) -> Self {
        Self { temperature, topp, rng: seed }
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
    /// `logits.len()` entries for top-p.
    pub fn sample(&mut self, logits: &mut [f32], candidates: &mut [u32]) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        for l in logits.iter_mut() {
            *l /= self.temperature;
        }
        softmax(logits);
        let coin = self.random_f32();
        if self.topp <= 0.0 || self.topp >= 1.0 {
            sample_mult(logits, coin)
        } else {
            sample_topp(logits, self.topp, candidates, coin)
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
    let r = coin * cumulative;
    let mut cdf = 0.0f32;
    for &id in &kept[..=last] {
        cdf += probs[id as usize];
        if r < cdf {
            return id;
        }
    }
    kept[last]
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
}
