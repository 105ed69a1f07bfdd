//! The golden greedy story with the model on a NOR flash that refuses unaligned reads, through
//! `spool_core::NorFlashStorage` (the `embedded-storage` bridge): every read the driver sees is
//! aligned to its `READ_SIZE`, and the token ids equal llama2.c's.

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use spool_core::{generate, Engine, NorFlashStorage, Sampler};

static MODEL: &[u8] = include_bytes!("../../models/stories260K.gguf");

/// A flash of `R`-byte read blocks that fails any other read.
struct Flash<const R: usize> {
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Refused;

impl NorFlashError for Refused {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::NotAligned
    }
}

impl<const R: usize> ErrorType for Flash<R> {
    type Error = Refused;
}

impl<const R: usize> ReadNorFlash for Flash<R> {
    const READ_SIZE: usize = R;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Refused> {
        let o = offset as usize;
        if !o.is_multiple_of(R) || !bytes.len().is_multiple_of(R) {
            return Err(Refused);
        }
        bytes.copy_from_slice(self.bytes.get(o..o + bytes.len()).ok_or(Refused)?);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

fn golden_ids() -> Vec<u32> {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../data/stories260K.golden.json")).expect("golden json");
    let case = golden["generation_cases"].as_array().unwrap().iter().find(|c| c["id"] == "greedy_once_64").unwrap();
    case["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn run<const R: usize>() -> (Vec<u32>, u64) {
    // A 600 KiB arena: about half the weights stream through a slot every token.
    let mut arena = vec![0u8; 600 << 10];
    // The image padded to a whole block, as it would be written to flash.
    let mut bytes = MODEL.to_vec();
    bytes.resize(MODEL.len().next_multiple_of(R), 0xFF);
    let storage = NorFlashStorage::<_, 256>::new(Flash::<R> { bytes }, 0, MODEL.len() as u32).expect("fits the flash");
    let mut engine = Engine::new(storage, &mut arena, 64).unwrap();
    let mut prompt = [0u32; 19];
    let mut scratch = [0u32; spool_core::tokenizer::encode_scratch_words(16)];
    let n = engine.tokenizer().encode_with(b"Once upon a time", true, &mut prompt, &mut scratch).unwrap();
    let mut ids = Vec::new();
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    generate(&mut engine, &mut sampler, &prompt[..n], 64, |ev| {
        if ev.pos == 0 {
            ids.push(ev.token);
        }
        ids.push(ev.next);
    })
    .unwrap();
    let bytes_read = engine.stats().bytes_read;
    (ids, bytes_read)
}

#[test]
fn the_golden_story_streams_from_a_nor_flash_that_refuses_unaligned_reads() {
    let want = golden_ids();
    for (r, (ids, streamed)) in [(1, run::<1>()), (4, run::<4>()), (256, run::<256>())] {
        assert_eq!(ids, want, "READ_SIZE {r}");
        assert!(streamed > 0, "READ_SIZE {r}: the weights streamed");
    }
}
