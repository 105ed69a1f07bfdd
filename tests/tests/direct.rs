//! `--storage direct` (O_DIRECT): every read returns the bytes a plain positioned read returns,
//! at any offset and length (the aligned superset is read and the request cut out of it), and a
//! generation streamed through it gives the golden tokens, bit-identical to `file`.
#![cfg(target_os = "linux")]

mod common;

use common::{case, case_options, ids, model_bytes, model_path};
use spool_core::Storage;
use spool_sim::{Backend, RunOptions};
use spool_std::DirectStorage;

fn open() -> DirectStorage {
    DirectStorage::open(model_path()).unwrap_or_else(|e| panic!("{}: {e}", model_path()))
}

#[test]
fn reads_at_any_offset_and_length_are_the_file_bytes() {
    let bytes = model_bytes();
    let mut d = open();
    let a = d.alignment();
    assert!(a.is_power_of_two() && (512..=4096).contains(&a), "alignment {a}");
    assert_eq!(d.len(), bytes.len() as u64);
    let n = bytes.len();
    // Unaligned starts and ends, a read across a block boundary, one longer than a 4 MiB chunk
    // would be (the file is smaller: the whole file), and the file's last bytes.
    let cases =
        [(0, 1), (1, 31), (a - 1, 2), (a + 7, 3 * a + 5), (12345, 54321), (0, n), (n - 3, 3), (n - a - 1, a + 1)];
    for (off, len) in cases {
        let mut buf = vec![0u8; len];
        d.read_at(off as u64, &mut buf).unwrap();
        assert!(buf == bytes[off..off + len], "read of {len} B at {off}");
    }
    // A clone reads the same bytes.
    let mut c = d.try_clone().unwrap();
    let mut buf = vec![0u8; 1000];
    c.read_at(777, &mut buf).unwrap();
    assert!(buf == bytes[777..1777]);
    // Past the end is an error, not a short buffer.
    let mut buf = vec![0u8; 8];
    assert!(d.read_at(n as u64 - 4, &mut buf).is_err());
}

#[test]
fn a_streamed_generation_gives_the_same_tokens_as_file_storage() {
    let c = case("greedy_once_64");
    let budget = model_bytes().len() / 2;
    let run = |backend, prefetch| {
        let opts = RunOptions { backend, prefetch, ram: Some(budget), ..case_options(&c) };
        spool_sim::run(&opts).unwrap_or_else(|e| panic!("{backend:?}: {e}"))
    };
    for prefetch in [0, 2] {
        let file = run(Backend::File, prefetch);
        assert_eq!(file.token_ids, ids(&c["token_ids"]));
        assert!(file.decode_bytes > 0, "the budget streams weights");
        let direct = run(Backend::Direct, prefetch);
        assert_eq!(direct.token_ids, file.token_ids, "prefetch {prefetch}");
        assert_eq!(direct.stdout, file.stdout);
        assert_eq!(direct.decode_bytes, file.decode_bytes, "prefetch {prefetch}: the same units are read");
    }
}
