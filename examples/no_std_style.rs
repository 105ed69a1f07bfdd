//! A no_std-style program on spool-core: what firmware does, on a desktop so it can run here.
//! No heap in the inference path: the arena is a `static` buffer, the prompt and sampler
//! buffers are arrays, and the model comes through a custom `Storage` (here a "flash chip"
//! that serves 256-byte pages from a byte image, as a SPI flash driver would). The core sees
//! only the trait; swap `PagedFlash` for the board's driver.
//!
//! The one std use is loading the image and printing; on a device the image is the flash and
//! the text goes to a UART.

use embedded_io::{ErrorKind, ErrorType};
use spool_core::{generate, Engine, Sampler, Storage};

/// The RAM budget: about half of stories260K (1.2 MB) plus the KV cache, in a static buffer
/// as a linker would place it.
const ARENA_BYTES: usize = 700 * 1024;

/// A flash chip that reads whole 256-byte pages and copies out what was asked (a driver would
/// clock the pages over SPI; here they come from a byte image).
struct PagedFlash<'a> {
    image: &'a [u8],
}

const PAGE: u64 = 256;

/// The chip's error: a read past the end of the device.
#[derive(Debug)]
struct OutOfRange;

impl core::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("read past the end of the flash")
    }
}

impl core::error::Error for OutOfRange {}

impl embedded_io::Error for OutOfRange {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

impl ErrorType for PagedFlash<'_> {
    type Error = OutOfRange;
}

impl Storage for PagedFlash<'_> {
    fn len(&self) -> u64 {
        self.image.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let end = offset.checked_add(buf.len() as u64).ok_or(OutOfRange)?;
        if end > self.len() {
            return Err(OutOfRange);
        }
        // Whole pages, as the chip transfers them, then the bytes asked for.
        let (first, last) = (offset / PAGE * PAGE, end.div_ceil(PAGE) * PAGE);
        let pages = &self.image[first as usize..(last as usize).min(self.image.len())];
        let start = (offset - first) as usize;
        buf.copy_from_slice(&pages[start..start + buf.len()]);
        Ok(())
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../models/stories260K.gguf").into());
    let image = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // A static arena, handed out once (a `static mut` would need `unsafe`; a leaked box is the
    // desktop stand-in for a linker-placed buffer and is the only allocation of the program's
    // inference path).
    let arena: &'static mut [u8; ARENA_BYTES] = Box::leak(Box::new([0u8; ARENA_BYTES]));
    let flash = PagedFlash { image: &image };

    let mut engine = match Engine::new(flash, arena, 64) {
        Ok(e) => e,
        Err(e) => panic!("cannot plan {path} in {ARENA_BYTES} bytes: {e}"),
    };
    let mut prompt = [0u32; 32];
    let mut scratch = [0u32; spool_core::tokenizer::encode_scratch_words(16)];
    let n = match engine.tokenizer().encode_with(b"Once upon a time", true, &mut prompt, &mut scratch) {
        Ok(n) => n,
        Err(e) => panic!("encode: {e}"),
    };
    let mut sampler = Sampler::new(0.0, 0.9, 42);
    let mut text = [0u8; 1024];
    let mut len = 0;
    let outcome = generate(&mut engine, &mut sampler, &prompt[..n], 48, |ev| {
        let end = (len + ev.text.len()).min(text.len());
        text[len..end].copy_from_slice(&ev.text[..end - len]);
        len = end;
    });
    match outcome {
        Ok(o) => println!(
            "{}\n[{} positions in a {ARENA_BYTES}-byte static arena, {} bytes read from flash]",
            String::from_utf8_lossy(&text[..len]),
            o.positions,
            engine.stats().bytes_read
        ),
        Err(e) => panic!("generate: {e}"),
    }
}
