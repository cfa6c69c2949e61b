//! Ground truth for derivatives: finite differences in `f64` against the engine's three modes.
//!
//! [`check_derivatives`] takes a function written once against any carrier and verifies, on the given
//! inputs, (1) the reverse-mode gradient against central differences, (2) the forward-mode JVP along
//! random directions against central differences of the value, (3) the HVP (forward-over-reverse)
//! against central differences of the gradient, and (4) a block of tangents against one-at-a-time.
//! Non-scalar outputs are reduced to a scalar by a fixed random cotangent.

use crate::carrier::Carrier;
use crate::graph::{Graph, Var};
use crate::rng::Rng;
use crate::{Dual, Tensor};

/// A function of several tensors, written once for every carrier.
pub trait TestFn {
    /// Builds the output from the input variables.
    fn call<C: Carrier<f64>>(&self, g: &Graph<f64, C>, xs: &[Var]) -> Var;
}

/// Worst relative errors found by [`check_derivatives`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckReport {
    /// Reverse-mode gradient vs central differences.
    pub grad: f64,
    /// JVP vs central differences of the value.
    pub jvp: f64,
    /// HVP vs central differences of the gradient.
    pub hvp: f64,
    /// A block of 3 tangents vs one tangent at a time.
    pub block: f64,
}

impl CheckReport {
    /// Largest of the four errors.
    pub fn worst(&self) -> f64 {
        self.grad.max(self.jvp).max(self.hvp).max(self.block)
    }
}

/// Relative error with a floor on the scale so that values near zero are compared absolutely.
pub fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-3)
}

/// A tensor of uniform values in `[-1, 1)` from `seed`.
pub fn random_tensor(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut r = Rng::derive(seed, "check", shape.len() as u64);
    let n = crate::tensor::numel(shape);
    Tensor::from_vec((0..n).map(|_| r.uniform_in(-1.0, 1.0)).collect(), shape)
}

/// Scalar output: `<f(xs), r>` for a fixed random `r`.
fn scalar_out<Fn: TestFn, C: Carrier<f64>>(f: &Fn, g: &Graph<f64, C>, xs: &[Var]) -> Var {
    let y = f.call(g, xs);
    let shape = g.shape(y);
    if shape.is_empty() {
        return y;
    }
    let r = g.constant(random_tensor(&shape, 991));
    let p = g.mul(y, r);
    g.sum_all(p)
}

fn eval_value<Fn: TestFn>(f: &Fn, inputs: &[Tensor<f64>]) -> f64 {
    let g = Graph::<f64>::new();
    let xs: Vec<Var> = inputs.iter().map(|t| g.input(t.clone())).collect();
    g.tensor(scalar_out(f, &g, &xs)).item()
}

fn eval_grad<Fn: TestFn>(f: &Fn, inputs: &[Tensor<f64>]) -> Vec<Tensor<f64>> {
    let g = Graph::<f64>::new();
    let xs: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
    let out = scalar_out(f, &g, &xs);
    let grads = g.backward(out, None);
    xs.iter()
        .zip(inputs)
        .map(|(&x, t)| {
            grads
                .get(x)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(t.shape()))
        })
        .collect()
}

fn shifted(inputs: &[Tensor<f64>], dirs: &[Tensor<f64>], h: f64) -> Vec<Tensor<f64>> {
    inputs
        .iter()
        .zip(dirs)
        .map(|(x, d)| x.zip_map(d, |a, b| a + h * b))
        .collect()
}

/// Runs the four checks and returns the worst relative errors.
pub fn check_derivatives<Fn: TestFn>(f: &Fn, inputs: &[Tensor<f64>]) -> CheckReport {
    let h = 1e-5;
    let mut report = CheckReport::default();

    // (1) gradient, element by element.
    let grads = eval_grad(f, inputs);
    for (i, x) in inputs.iter().enumerate() {
        for j in 0..x.len() {
            let mut plus = inputs.to_vec();
            let mut minus = inputs.to_vec();
            plus[i].data_mut()[j] += h;
            minus[i].data_mut()[j] -= h;
            let fd = (eval_value(f, &plus) - eval_value(f, &minus)) / (2.0 * h);
            report.grad = report.grad.max(rel_err(grads[i].data()[j], fd));
        }
    }

    // Random directions for JVP/HVP, 3 of them for the block check.
    let dirs: Vec<Vec<Tensor<f64>>> = (0..3)
        .map(|d| {
            inputs
                .iter()
                .enumerate()
                .map(|(i, x)| random_tensor(x.shape(), 100 + 10 * d + i as u64))
                .collect()
        })
        .collect();

    let mut single_jvp = Vec::new();
    let mut single_hvp = Vec::new();
    for dir in &dirs {
        // (2) JVP by a dual forward pass.
        let g = Graph::<f64, Dual<f64>>::new();
        let xs: Vec<Var> = inputs
            .iter()
            .zip(dir)
            .map(|(x, d)| g.input(Dual::with_tangent(x.clone(), d)))
            .collect();
        let out = g.value(scalar_out(f, &g, &xs));
        let jvp = out.tangent.map(|t| t.item()).unwrap_or(0.0);
        let fd = (eval_value(f, &shifted(inputs, dir, h))
            - eval_value(f, &shifted(inputs, dir, -h)))
            / (2.0 * h);
        report.jvp = report.jvp.max(rel_err(jvp, fd));
        single_jvp.push(jvp);

        // (3) HVP by a dual reverse pass.
        let g = Graph::<f64, Dual<f64>>::new();
        let xs: Vec<Var> = inputs
            .iter()
            .zip(dir)
            .map(|(x, d)| g.param(Dual::with_tangent(x.clone(), d)))
            .collect();
        let out = scalar_out(f, &g, &xs);
        let grads = g.backward(out, None);
        let gp = eval_grad(f, &shifted(inputs, dir, h));
        let gm = eval_grad(f, &shifted(inputs, dir, -h));
        let mut hvps = Vec::new();
        for (i, x) in xs.iter().enumerate() {
            let hv = grads
                .get(*x)
                .and_then(|d| d.tangent.clone())
                .map(|t| t.reshape(inputs[i].shape()))
                .unwrap_or_else(|| Tensor::zeros(inputs[i].shape()));
            for j in 0..hv.len() {
                let fd = (gp[i].data()[j] - gm[i].data()[j]) / (2.0 * h);
                report.hvp = report.hvp.max(rel_err(hv.data()[j], fd));
            }
            hvps.push(hv);
        }
        single_hvp.push(hvps);
    }

    // (4) the same three directions as one block of tangents.
    let g = Graph::<f64, Dual<f64>>::new();
    let xs: Vec<Var> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let parts: Vec<Tensor<f64>> = dirs
                .iter()
                .map(|d| {
                    let mut s = vec![1];
                    s.extend_from_slice(x.shape());
                    d[i].reshape(&s)
                })
                .collect();
            let refs: Vec<&Tensor<f64>> = parts.iter().collect();
            g.param(Dual::new(x.clone(), Tensor::concat(&refs, 0)))
        })
        .collect();
    let out = scalar_out(f, &g, &xs);
    let jvps = g
        .value(out)
        .tangent
        .map(|t| t.to_f64_vec())
        .unwrap_or_else(|| vec![0.0; 3]);
    for d in 0..3 {
        report.block = report.block.max(rel_err(jvps[d], single_jvp[d]));
    }
    let grads = g.backward(out, None);
    for (i, x) in xs.iter().enumerate() {
        if let Some(t) = grads.get(*x).and_then(|d| d.tangent.clone()) {
            let n = inputs[i].len();
            for (d, hvps) in single_hvp.iter().enumerate().take(3) {
                for j in 0..n {
                    report.block = report
                        .block
                        .max(rel_err(t.data()[d * n + j], hvps[i].data()[j]));
                }
            }
        }
    }
    report
}

/// Asserts every derivative check of `f` on `inputs` is within `tol` relative error.
///
/// # Panics
/// When a check fails, with the report.
pub fn assert_derivatives<Fn: TestFn>(name: &str, f: &Fn, inputs: &[Tensor<f64>], tol: f64) {
    let r = check_derivatives(f, inputs);
    assert!(
        r.worst() <= tol,
        "{name}: derivative check failed (tolerance {tol}): {r:?}"
    );
}

/// Declares a derivative-check test: `derivative_test!(name, [shapes..], |g, x| body)`.
#[macro_export]
macro_rules! derivative_test {
    ($name:ident, [$($shape:expr),* $(,)?], |$g:ident, $x:ident| $body:expr) => {
        #[test]
        fn $name() {
            struct TheFn;
            impl $crate::check::TestFn for TheFn {
                fn call<C: $crate::Carrier<f64>>(&self, $g: &$crate::Graph<f64, C>, $x: &[$crate::Var]) -> $crate::Var {
                    $body
                }
            }
            let mut seed = 0u64;
            let inputs: Vec<$crate::Tensor<f64>> = vec![$({ seed += 1; $crate::check::random_tensor(&$shape, seed) }),*];
            $crate::check::assert_derivatives(stringify!($name), &TheFn, &inputs, 1e-6);
        }
    };
}
