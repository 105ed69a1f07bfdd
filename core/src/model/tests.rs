//! The model description against hostile files: sizes that overflow, offsets near 2^64. Tests
//! only: must not hold code the loader runs.

use super::*;
use crate::model::arch::llama::test_header;
use crate::storage::SliceStorage;

#[test]
fn a_header_with_dim_and_hidden_of_2_pow_31_is_refused_with_the_overflow_named() {
    // dim = hidden = 2^31: an F32 gate of 2^31 x 2^31 elements is 2^64 bytes, which wrapped to
    // 0 and was accepted, after which the planner walked 2^31 rows per tensor.
    const BIG: u64 = 1 << 31;
    let mut g = test_header(BIG as u32, BIG as u32, 1, 1, 4);
    g.tensor("blk.0.ffn_gate.weight", &[BIG, BIG], GgmlType::F32, 0);
    let bytes = g.finish(64);
    let err = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_err();
    assert_eq!(err, Error::Malformed("tensor size overflows 64 bits"));
    // A tensor that fits in 64 bits but not in the file is refused by its end.
    let mut g = test_header(BIG as u32, BIG as u32, 1, 1, 4);
    g.tensor("token_embd.weight", &[BIG, 4], GgmlType::F32, 0);
    let bytes = g.finish(64);
    let err = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_err();
    assert!(matches!(err, Error::Truncated { what: "tensor data", end, .. } if end > 1 << 35), "{err:?}");
}

#[test]
fn a_tensor_offset_near_2_pow_64_is_refused() {
    for offset in [u64::MAX - 31, u64::MAX - (1 << 20) - 31, (u64::MAX - (1 << 20)) & !31] {
        let mut g = test_header(64, 64, 1, 1, 4);
        g.tensor("token_embd.weight", &[64, 4], GgmlType::F32, offset & !31);
        let bytes = g.finish(64);
        let err = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_err();
        assert!(
            matches!(err, Error::Malformed("tensor offset overflows") | Error::Truncated { what: "tensor data", .. }),
            "offset {offset}: {err:?}"
        );
        // The bare table walk (what `inspect` lists) refuses it too.
        let mut s = SliceStorage::new(&bytes);
        let header = gguf::read_header(&mut s).unwrap();
        let first = gguf::first_pass(&mut s, &header).unwrap();
        assert!(gguf::for_each_tensor(&mut s, &header, first, |_| Ok(())).is_err(), "offset {offset}");
    }
}

#[test]
fn a_tensor_whose_end_wraps_is_refused() {
    assert_eq!(
        tensor_end(u64::MAX - 64, GgmlType::F32, 1, 64, u64::MAX),
        Err(Error::Malformed("tensor offset + size overflows 64 bits"))
    );
    assert_eq!(
        tensor_end(0, GgmlType::F32, 1, 1 << 32, u64::MAX),
        Err(Error::Malformed("tensor dimension exceeds 2^32 elements"))
    );
    assert_eq!(tensor_end(32, GgmlType::F32, 2, 8, 96), Ok(96));
}

#[test]
fn an_unknown_architecture_is_named_with_the_supported_ones() {
    let mut g = crate::testutil::GgufWriter::default();
    g.string("general.architecture", "mamba").tokens(4);
    let bytes = g.finish(0);
    let err = ModelInfo::load(&mut SliceStorage::new(&bytes)).unwrap_err();
    let mut msg = heapless::String::<128>::new();
    core::fmt::write(&mut msg, format_args!("{err}")).unwrap();
    let mut want = heapless::String::<128>::new();
    core::fmt::write(&mut want, format_args!("unsupported architecture \"mamba\" (general.architecture); supported: "))
        .unwrap();
    for (i, name) in arch::NAMES.iter().enumerate() {
        want.push_str(if i == 0 { "" } else { ", " }).unwrap();
        want.push_str(name).unwrap();
    }
    assert_eq!(msg, want);
    assert!(arch::NAMES.contains(&"gemma3") && arch::NAMES.len() == arch::ARCHS.len());
}

#[test]
fn rope_factors_of_the_wrong_length_or_type_are_refused_by_name() {
    // dim 64 in one head: 32 pairs, so `rope_freqs.weight` holds 32 f32 factors.
    let load = |dims: &[u64], ty: GgmlType| {
        let mut g = test_header(64, 64, 1, 1, 4);
        g.tensor("rope_freqs.weight", dims, ty, 0);
        ModelInfo::load(&mut SliceStorage::new(&g.finish(256))).unwrap_err()
    };
    let name = TensorName::RopeFreqs;
    assert_eq!(load(&[31], GgmlType::F32), Error::BadShape { tensor: name, expected: (1, 32), found: (1, 31) });
    assert_eq!(load(&[32], GgmlType::F16), Error::UnsupportedType { tensor: name, ggml_type: 1 });
    // The right one passes, and the load goes on to the next missing tensor.
    assert_eq!(load(&[32], GgmlType::F32), Error::MissingTensor(TensorName::TokenEmbd));
}
