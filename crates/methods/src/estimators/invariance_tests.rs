//! Invariance tests for every registered method (STYLE item 10): scores must not depend on how the
//! targets are grouped into calls, nor on how the work is cut (the chunk size of the passes over
//! the training set; for MAGIC, the number of targets carried per reverse sweep).

use crate::options::Options;
use crate::registry::{build, REGISTRY};
use crate::testutil::*;
use nn::Output;
use run::{Run, Targets};

/// Options that make every method cheap and well-posed on the tiny runs (the tiny MLP's Hessian
/// has eigenvalues down to about -0.13, so the influence functions get damping 0.2). Iterative
/// solvers run to tight tolerances (Lanczos to the whole Krylov space) so that what remains of a
/// change in chunk size is rounding, not a different stopping point.
pub(crate) fn options(name: &str) -> Vec<(&'static str, &'static str)> {
    match name {
        "if-exact" => vec![("damping", "0.2")],
        "if-cg" | "if-gn" => vec![("damping", "0.2"), ("tol", "1e-12"), ("max_iters", "1000")],
        "if-lissa" => vec![("damping", "0.2"), ("tol", "1e-12"), ("depth", "20000")],
        "if-arnoldi" => vec![("damping", "0.2"), ("rank", "10"), ("iters", "200")],
        "tracin" => vec![("checkpoints", "4")],
        "trak" => vec![("k", "64")],
        "datamodels" => vec![("subsets", "30"), ("drop", "0.1")],
        "tmc-shapley" => vec![("permutations", "24"), ("tol", "0"), ("window", "4")],
        _ => vec![],
    }
}

/// An option that cuts the work differently without changing the mathematics (none for
/// `datamodels` and `tmc-shapley`, whose retrainings are per subset or permutation already).
fn recut(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "magic" => Some(("block", "1")),
        "datamodels" | "tmc-shapley" => None,
        _ => Some(("chunk", "37")),
    }
}

fn scores(name: &str, extra: &[(&str, &str)], run: &Run, targets: &Targets) -> Vec<Vec<f64>> {
    let mut o = Options::empty(name);
    for (k, v) in options(name).iter().chain(extra) {
        o = o.set(k, v);
    }
    let (m, _) = build(name, o).unwrap();
    m.attribute(run, targets).unwrap()
}

pub(crate) fn run_for(name: &str) -> Run {
    match name {
        "loo-ridge" => ridge_run(1e-2),
        "loo-newton" => logistic_at_optimum(1e-2),
        "tmc-shapley" => tiny_logistic(6),
        _ => tiny_mlp(1e-2),
    }
}

/// The method names of the summary table in `estimators/mod.rs`' docs, in table order.
fn documented_names() -> Vec<String> {
    include_str!("mod.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .flat_map(|row| {
            let first = row.split(" | ").next().unwrap_or("");
            format!("`{first}")
                .split(", ")
                .map(|n| n.trim_matches('`').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_registry_is_the_documented_table() {
    // A method dropped from the registry, registered twice, or missing from the docs fails here.
    let registered: Vec<String> = REGISTRY.iter().map(|r| r.name.to_string()).collect();
    let documented = documented_names();
    assert!(documented.len() >= 17, "table not found: {documented:?}");
    assert_eq!(registered, documented);
}

#[test]
fn scores_do_not_depend_on_target_grouping_or_chunk_size() {
    for reg in REGISTRY {
        let name = reg.name;
        let run = run_for(name);
        let all = Targets::test(vec![0, 1, 2, 3], Output::Margin);
        let one = scores(name, &[], &run, &all);
        let first = scores(name, &[], &run, &Targets::test(vec![0, 1], Output::Margin));
        let second = scores(name, &[], &run, &Targets::test(vec![2, 3], Output::Margin));
        let split: Vec<Vec<f64>> = first.into_iter().chain(second).collect();
        let d_split = rel_diff(&split, &one);
        let chunked = scores(name, recut(name).as_slice(), &run, &all);
        let d_chunk = rel_diff(&chunked, &one);
        eprintln!(
            "{name}: targets split {d_split:e}, {:?} {d_chunk:e}",
            recut(name)
        );
        assert!(
            d_split <= 1e-10,
            "{name}: splitting targets changed scores by {d_split:e}"
        );
        assert!(
            d_chunk <= 1e-10,
            "{name}: {:?} changed scores by {d_chunk:e}",
            recut(name)
        );
        assert_eq!(one.len(), 4);
        assert!(one
            .iter()
            .all(|r| r.len() == run.n_train() && r.iter().all(|v| v.is_finite())));
    }
}

#[test]
fn attribute_records_the_options_used() {
    let run = logistic_at_optimum(1e-2);
    let (m, used) = build("if-cg", Options::empty("if-cg").set("tol", "1e-9")).unwrap();
    assert_eq!(used["tol"], "0.000000001");
    assert_eq!(used["damping"], "auto");
    let s = crate::method::attribute(
        &run,
        m.as_ref(),
        used,
        &Targets::test(vec![0], Output::Loss),
    )
    .unwrap();
    assert_eq!(s.values.len(), run.n_train());
    assert_eq!(s.meta.method, "if-cg");
    let e = build("if-cg", Options::empty("if-cg").set("dampnig", "1"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("damping (auto)") && e.contains("max_iters (200)"),
        "{e}"
    );
}
