//! Group scores of every registered method against ground truth (MATH.md E5): the sum of the
//! members' per-example scores (exact for methods linear in the data weights, whether the method
//! overrides [`Method::attribute_groups`] with group gradients or not), and for MAGIC the
//! finite-difference derivative of retraining in a group weight.

use nn::Output;

use super::Grouping;
use crate::estimators::invariance_tests::{options, run_for};
use crate::method::Method;
use crate::options::Options;
use crate::registry::{build, REGISTRY};
use crate::testutil::rel_diff;
use run::{Run, Targets};

fn method(name: &str, extra: &[(&str, &str)]) -> Box<dyn Method> {
    let mut o = Options::empty(name);
    for (k, v) in options(name).iter().chain(extra) {
        o = o.set(k, v);
    }
    build(name, o).unwrap().0
}

/// A grouping of `n >= k` examples into `k` non-empty groups of seeded random members.
fn scattered(n: usize, k: usize) -> Grouping {
    let perm = engine::Rng::new(11).permutation(n);
    let mut a = vec![0; n];
    for (j, &i) in perm.iter().enumerate() {
        a[i] = j % k;
    }
    Grouping::new(a, k, "scattered").unwrap()
}

/// Each group's sum of its members' scores, written out here rather than taken from
/// `Grouping::sum_columns` (which the default `attribute_groups` uses): for the methods that keep
/// the default, a wrong sum or a wrong group order breaks the comparison; for those with group
/// gradients, the gradients themselves are checked (issue 13, item 19).
fn summed_by_group(per: &[Vec<f64>], groups: &Grouping) -> Vec<Vec<f64>> {
    let mut sums = vec![vec![0.0; groups.k]; per.len()];
    for (row, out) in per.iter().zip(&mut sums) {
        for (i, &g) in groups.assignment.iter().enumerate() {
            out[g] += row[i];
        }
    }
    sums
}

#[test]
fn group_scores_are_sums_of_per_example_scores_for_every_method() {
    for reg in REGISTRY {
        let name = reg.name;
        let run = run_for(name);
        let k = 13.min(run.n_train() / 2);
        let groups = scattered(run.n_train(), k);
        let targets = Targets::test(vec![0, 1, 2], Output::Margin);
        let m = method(name, &[]);
        let per = m.attribute(&run, &targets).unwrap();
        let grouped = m.attribute_groups(&run, &targets, &groups).unwrap();
        let d = rel_diff(&grouped, &summed_by_group(&per, &groups));
        eprintln!("{name}: group scores vs summed per-example scores: relative difference {d:e}");
        assert!(grouped.iter().all(|r| r.len() == k));
        assert!(d <= 1e-10, "{name}: {d:e}");
        // Singleton groups in a permuted order are the per-example scores, permuted.
        let perm = engine::Rng::new(5).permutation(run.n_train());
        let singletons = Grouping::new(perm.clone(), run.n_train(), "singletons").unwrap();
        let permuted = m.attribute_groups(&run, &targets, &singletons).unwrap();
        for (p, row) in permuted.iter().zip(&per) {
            for (i, &g) in perm.iter().enumerate() {
                assert!(
                    (p[g] - row[i]).abs() <= 1e-10 * row[i].abs().max(1e-8),
                    "{name}: singleton group {g} (example {i}): {} vs {}",
                    p[g],
                    row[i]
                );
            }
        }
    }
}

#[test]
fn a_grouping_for_another_training_set_is_refused() {
    let run = run_for("if-cg");
    let groups = scattered(run.n_train() - 1, 3);
    let e = method("if-cg", &[])
        .attribute_groups(&run, &Targets::test(vec![0], Output::Loss), &groups)
        .unwrap_err()
        .to_string();
    assert!(e.contains("attrib group"), "{e}");
}

/// `d f / d w_G` by central differences of retrainings with every member of `G` reweighted.
fn group_finite_difference(run: &Run, groups: &Grouping, g: usize, targets: &Targets) -> Vec<f64> {
    let h = 1e-4;
    let f = |e: f64| {
        let mut wg = vec![1.0; groups.k];
        wg[g] += e;
        run.target_outputs(&run.retrain(&groups.expand(&wg)).unwrap(), targets)
    };
    f(h).iter()
        .zip(f(-h))
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect()
}

#[test]
fn magic_group_scores_are_derivatives_in_the_group_weights() {
    let run = run_for("magic");
    let groups = scattered(run.n_train(), 10);
    let targets = Targets::test(vec![0, 5], Output::Loss);
    let tau = method("magic", &[])
        .attribute_groups(&run, &targets, &groups)
        .unwrap();
    for g in [0, 3, 9] {
        let fd = group_finite_difference(&run, &groups, g, &targets);
        for (t, &want) in fd.iter().enumerate() {
            let got = tau[t][g];
            let rel = (got - want).abs() / want.abs().max(1e-8);
            eprintln!("magic group {g}, target {t}: {got:e} vs finite differences {want:e}");
            assert!(
                rel <= 1e-5,
                "group {g} target {t}: {got:e} vs {want:e} ({rel:e})"
            );
        }
    }
}

/// With fewer groups than targets the influence functions solve for the group gradients instead
/// of the target gradients (the group side); by the symmetry of `H` the scores are the same up to
/// the solver's tolerance (the invariance tests' options solve to 1e-12).
#[test]
fn influence_group_side_solves_equal_summed_per_example_scores() {
    for name in ["if-exact", "if-cg", "if-gn", "if-lissa"] {
        let run = run_for(name);
        let groups = scattered(run.n_train(), 2);
        let targets = Targets::test(vec![0, 1, 2, 3], Output::Margin);
        let m = method(name, &[]);
        let per = m.attribute(&run, &targets).unwrap();
        let grouped = m.attribute_groups(&run, &targets, &groups).unwrap();
        let d = rel_diff(&grouped, &summed_by_group(&per, &groups));
        eprintln!("{name}: group-side solve vs summed per-example scores: {d:e}");
        assert!(d <= 1e-6, "{name}: {d:e}");
    }
}
