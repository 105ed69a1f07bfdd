//! The whole core path on the real model, small enough for Miri on every host the core
//! targets (`make miri`: x86-64, i686, big-endian s390x): parse the GGUF, plan a streaming
//! arena, encode the prompt, run forward passes through the slots, compare with the
//! reference logits (little-endian f32, read portably) and decode. The model is compiled in
//! (`include_bytes!`), so Miri needs no file access.

use spool_core::{Engine, SliceStorage};

static MODEL: &[u8] = include_bytes!("../../models/stories260K.gguf");
static LOGITS: &[u8] = include_bytes!("../data/stories260K.logits.f32");

#[test]
fn parse_plan_encode_and_forward_through_the_streaming_path_give_the_reference_logits() {
    // About a third of the model: the weights stream through slots every position.
    let mut arena = vec![0u8; 400 << 10];
    let mut engine = Engine::new(SliceStorage::new(MODEL), &mut arena, 4).unwrap();
    assert!(engine.plan().budget <= 400 << 10);
    let text = b"Once upon a time";
    let mut out = [0u32; 19];
    let mut scratch = [0u32; spool_core::tokenizer::encode_scratch_words(16)];
    let n = engine.tokenizer().encode_with(text, true, &mut out, &mut scratch).unwrap();
    // The golden ids of "Once upon a time" (tests/data/stories260K.golden.json).
    assert_eq!(&out[..n], &[1, 403, 407, 261, 378]);
    let positions = if cfg!(miri) { 1 } else { 4 };
    for pos in 0..positions {
        let logits = engine.forward(out[pos], pos as u32).unwrap();
        assert_eq!(logits.len(), 512);
        let want: Vec<f32> = LOGITS[pos * 2048..(pos + 1) * 2048]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for (i, (&a, &b)) in logits.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "pos {pos}, logit {i}: {a} vs {b}");
        }
    }
    let t = engine.tokenizer();
    assert_eq!(t.decode(1, 403), b"Once");
}
