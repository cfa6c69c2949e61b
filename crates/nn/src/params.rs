//! Parameters as one flat vector with a named layout: optimizers and metagradients work on flat
//! vectors, models read named tensors.

use engine::{Carrier, Dual, Float, Graph, Rng, Tensor, Var};

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in `[-bound, bound]` (PyTorch's default for linear and conv layers: `1/sqrt(fan_in)`).
    Uniform(f64),
    /// Normal with this standard deviation.
    Normal(f64),
    /// All ones (norm scales).
    Ones,
    /// All zeros (norm shifts).
    Zeros,
}

/// One named parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Name, e.g. `layers.0.weight` (also its safetensors key).
    pub name: String,
    /// Shape (weights are `[out, in]` as in PyTorch).
    pub shape: Vec<usize>,
    /// Initialisation.
    pub init: Init,
}

/// The ordered list of a model's parameters and their positions in the flat vector.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    specs: Vec<ParamSpec>,
    offsets: Vec<usize>,
    total: usize,
}

impl Layout {
    /// Adds a parameter at the end.
    pub fn push(&mut self, name: impl Into<String>, shape: &[usize], init: Init) {
        self.offsets.push(self.total);
        self.total += shape.iter().product::<usize>();
        self.specs.push(ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            init,
        });
    }

    /// The parameters in order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Total number of scalars.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Range of parameter `i` in the flat vector.
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i] + self.specs[i].shape.iter().product::<usize>()
    }

    /// Seeded initialisation; each tensor draws from its own stream, so adding a parameter never
    /// changes the others.
    pub fn init<F: Float>(&self, seed: u64) -> Vec<F> {
        let mut flat = Vec::with_capacity(self.total);
        for (i, spec) in self.specs.iter().enumerate() {
            let mut rng = Rng::derive(seed, "init", i as u64);
            let n: usize = spec.shape.iter().product();
            flat.extend((0..n).map(|_| {
                F::from_f64(match spec.init {
                    Init::Uniform(b) => rng.uniform_in(-b, b),
                    Init::Normal(s) => s * rng.normal(),
                    Init::Ones => 1.0,
                    Init::Zeros => 0.0,
                })
            }));
        }
        flat
    }

    /// The parameters as tensors.
    pub fn tensors<F: Float>(&self, flat: &[F]) -> Vec<Tensor<F>> {
        (0..self.specs.len())
            .map(|i| Tensor::from_vec(flat[self.range(i)].to_vec(), &self.specs[i].shape))
            .collect()
    }

    /// Concatenates per-parameter tensors (e.g. gradients) into a flat vector; `None` is zeros.
    pub fn flatten<F: Float>(&self, parts: impl IntoIterator<Item = Option<Tensor<F>>>) -> Vec<F> {
        let mut flat = Vec::with_capacity(self.total);
        for (i, p) in parts.into_iter().enumerate() {
            match p {
                Some(t) => flat.extend_from_slice(&t.data()[..self.range(i).len()]),
                None => flat.extend(std::iter::repeat_n(F::ZERO, self.range(i).len())),
            }
        }
        flat
    }

    /// Parameter leaves on a plain graph; `track` makes them differentiable.
    pub fn leaves<F: Float>(&self, g: &Graph<F, Tensor<F>>, flat: &[F], track: bool) -> Vec<Var> {
        self.tensors(flat)
            .into_iter()
            .map(|t| if track { g.param(t) } else { g.input(t) })
            .collect()
    }

    /// Parameter leaves on a dual graph with `k = dirs.len()` tangent directions (flat vectors).
    pub fn dual_leaves<F: Float>(
        &self,
        g: &Graph<F, Dual<F>>,
        flat: &[F],
        dirs: &[&[F]],
        track: bool,
    ) -> Vec<Var> {
        (0..self.specs.len())
            .map(|i| {
                let r = self.range(i);
                let shape = &self.specs[i].shape;
                let value = Tensor::from_vec(flat[r.clone()].to_vec(), shape);
                let mut tshape = vec![dirs.len()];
                tshape.extend_from_slice(shape);
                let mut t = Vec::with_capacity(dirs.len() * r.len());
                for d in dirs {
                    t.extend_from_slice(&d[r.clone()]);
                }
                let c = Dual::new(value, Tensor::from_vec(t, &tshape));
                if track {
                    g.param(c)
                } else {
                    g.input(c)
                }
            })
            .collect()
    }

    /// Gradients of the leaves as one flat vector of primal values.
    pub fn flat_grad<F: Float, C: Carrier<F>>(
        &self,
        grads: &engine::Gradients<C>,
        leaves: &[Var],
    ) -> Vec<F> {
        self.flatten(
            leaves
                .iter()
                .map(|&v| grads.get(v).map(|c| c.primal().clone())),
        )
    }
}
