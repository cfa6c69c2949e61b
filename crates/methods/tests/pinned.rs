//! Pinned values: a hash of the demo recipe's MAGIC scores, computed here from scratch (training
//! and MAGIC), so that any change to a bit of training or of MAGIC fails this test.
//!
//! The value is machine-specific: the GEMM kernels (`gemm` crate) choose their micro-kernel by the
//! CPU's SIMD width, which changes the rounding of every product. It was recorded on an x86-64
//! CPU with the x86-64-v4 AVX-512 set, where `gemm` runs its AVX-512 kernels (see `RECORDED_ON`); on a CPU with other SIMD features the test says it is
//! skipped (on stderr) instead of failing. The property the pin guards is bitwise
//! reproducibility on one machine across code changes; thread-count independence is tested in
//! `magic.rs`.

use attrib_methods::Options;
use engine::hash::Fnv1a;
use nn::{Output, RunConfig};
use run::{Run, Targets};

/// The SIMD features the pinned value was recorded with (x86-64), as detected at run time.
const RECORDED_ON: &str = "x86_64 avx2 fma x86-v4";

/// FNV-1a over the little-endian f32 bits of the demo's MAGIC scores of test targets 0..3 (the
/// values `attrib demo` writes to `scores/magic.npy`, row by row).
const PINNED: u64 = 0x4046_675c_a853_3cf8;

fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut f = vec!["x86_64"];
        if std::arch::is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        // The `gemm` crate's AVX-512 kernels (its `x86-v4` feature) run where all five are present.
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            f.push("x86-v4");
        }
        f.join(" ")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

#[test]
fn demo_magic_scores_keep_their_bits() {
    let features = cpu_features();
    if features != RECORDED_ON {
        eprintln!(
            "SKIPPED demo_magic_scores_keep_their_bits: pinned on \"{RECORDED_ON}\", this CPU is \"{features}\""
        );
        return;
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/digits_mlp.toml"
    );
    let path = std::path::Path::new(path);
    let cfg = RunConfig::from_toml_file(path).unwrap();
    let run = Run::train(cfg, path.parent().unwrap()).unwrap();
    let targets = Targets::test(vec![0, 1, 2], Output::Margin);
    let (method, used) = attrib_methods::build("magic", Options::empty("magic")).unwrap();
    let scores = attrib_methods::attribute(&run, method.as_ref(), used, &targets).unwrap();
    let bits: Vec<u8> = scores
        .values
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    let hash = Fnv1a::new().bytes(&bits).finish();
    assert_eq!(
        hash, PINNED,
        "the demo's MAGIC scores changed bits: {hash:#018x} instead of {PINNED:#018x}"
    );
}
