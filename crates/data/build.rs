//! Sets `cfg(attrib_shared_data)` when the real-data folder exists (`$ATTRIB_SHARED_DATA`, else
//! `../shared/data` next to the repository), so that the tests that need it are marked
//! `#[ignore]` with the reason when it is absent: the skip shows in the normal test output
//! ("ignored, needs ../shared/data ...") instead of passing silently.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(attrib_shared_data)");
    println!("cargo::rerun-if-env-changed=ATTRIB_SHARED_DATA");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let candidates: Vec<PathBuf> = match std::env::var_os("ATTRIB_SHARED_DATA") {
        Some(d) if !d.is_empty() => vec![PathBuf::from(d)],
        _ => vec![manifest.join("../../../shared/data")],
    };
    for c in &candidates {
        println!("cargo::rerun-if-changed={}", c.display());
    }
    if candidates.iter().any(|c| Path::new(c).is_dir()) {
        println!("cargo::rustc-cfg=attrib_shared_data");
    }
}
