//! `--storage direct` (O_DIRECT): every read returns the bytes a plain positioned read returns,
//! at any offset and length (the aligned superset is read and the request cut out of it), a
//! span read lands at an aligned place of any buffer with the planned slack, the plan gives
//! every slot that slack, and a generation streamed through it (4 reader threads) gives the
//! golden tokens, bit-identical to `file`, whatever the prefetch depth.
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
    for prefetch in [0, 2, 8] {
        let file = run(Backend::File, prefetch);
        assert_eq!(file.token_ids, ids(&c["token_ids"]));
        assert!(file.decode_bytes > 0, "the budget streams weights");
        let direct = run(Backend::Direct, prefetch);
        assert_eq!(direct.token_ids, file.token_ids, "prefetch {prefetch}");
        assert_eq!(direct.stdout, file.stdout);
        // The slots' slack leaves a little less room to pin: each storage reads its own plan's
        // streamed bytes, once per token.
        for r in [&file, &direct] {
            assert_eq!(r.bytes_read_per_token(), r.plan.streamed_bytes_per_token() as f64, "prefetch {prefetch}");
        }
        let slack = spool_core::storage::io_slack(open().alignment()) as u32;
        assert_eq!(direct.plan.io_slack, slack, "the plan shows the slots' slack");
        let largest = direct.plan.units.iter().filter(|u| u.pinned_at.is_none()).map(|u| u.bytes).max().unwrap();
        assert!(direct.plan.slot_bytes >= largest + slack, "every slot holds its unit and the slack");
    }
}

#[test]
fn a_span_read_lands_aligned_in_any_buffer_and_returns_the_file_bytes() {
    let bytes = model_bytes();
    let mut d = open();
    let a = d.io_align();
    assert_eq!(a, d.alignment());
    let slack = spool_core::storage::io_slack(a);
    let n = bytes.len();
    let mut room = vec![0u8; 200_000 + slack + 64];
    for (off, len) in
        [(0, 1), (1, 31), (a - 1, 2), (a + 7, 3 * a + 5), (12345, 54321), (n - 3, 3), (n - 100_000, 100_000)]
    {
        // Buffers starting at every kind of address: aligned, odd, one block in.
        for shift in [0, 1, 3, 17, 63] {
            let buf = &mut room[shift..shift + len + slack];
            let at = spool_core::storage::read_span_exact(&mut d, off as u64, len, buf).unwrap();
            assert!(at + len <= buf.len(), "at {at} for {len} B at {off}");
            assert!(buf[at..at + len] == bytes[off..off + len], "span of {len} B at {off}, shift {shift}");
            // The bytes landed where one aligned read put them: `at` is `offset % align` past an aligned address.
            assert_eq!((buf.as_ptr() as usize + at) % a, off % a, "{len} B at {off}");
        }
    }
    // Without the slack the span is read with a plain read to the buffer's start.
    let mut tight = vec![0u8; 1000];
    assert_eq!(spool_core::storage::read_span_exact(&mut d, 777, 1000, &mut tight).unwrap(), 0);
    assert!(tight == bytes[777..1777]);
    // Past the end is an error.
    assert!(spool_core::storage::read_span_exact(&mut d, n as u64 - 4, 8, &mut room).is_err());
}
