//! `similarity`: cosine similarity of penultimate-layer features (MATH.md E4, a weak baseline).
//!
//! `tau[t][i] = sign * cos(phi(z_t), phi(z_i))`, with `phi` the input of the model's last linear layer
//! ([`nn::Model::features`]: the flattened input for linear models, the last hidden activations of an
//! MLP, the pooled channels of a CNN, the mean final hidden state of a GPT) at the run's final
//! parameters, and `sign = +1` for the margin and the log-likelihood, `-1` for the loss: a similar
//! training example is assumed to help, which raises a margin and lowers a loss, following the
//! sign convention `tau_i = d f / d w_i` (only the ranking is meaningful; the scale is arbitrary).
//! A zero feature vector has cosine 0 with everything.
//!
//! Options: `chunk` (512): training examples per forward pass.

use nn::Output;

use crate::error::Result;
use crate::linalg::{dot, norm};
use crate::method::{Method, Registration};
use crate::options::Options;
use crate::support::chunks::chunk_option;
use crate::support::features::{features, train_features};
use run::{Run, Targets};

/// The registry entry.
pub const REGISTRATION: Registration = Registration {
    name: "similarity",
    summary: "cosine similarity of penultimate-layer features (weak baseline; E4)",
    build,
};

/// Representation similarity (module docs).
#[derive(Debug, Clone)]
pub struct Similarity {
    chunk: usize,
}

/// Reads the options: `chunk` (512).
///
/// # Errors
/// A bad option value.
pub fn build(opts: &mut Options) -> Result<Box<dyn Method>> {
    Ok(Box::new(Similarity {
        chunk: chunk_option(opts)?,
    }))
}

/// `row / ||row||` (a zero row stays zero).
fn unit(row: Vec<f64>) -> Vec<f64> {
    let nr = norm(&row);
    if nr > 0.0 {
        row.iter().map(|x| x / nr).collect()
    } else {
        row
    }
}

impl Method for Similarity {
    fn name(&self) -> &'static str {
        "similarity"
    }

    fn attribute(&self, run: &Run, targets: &Targets) -> Result<Vec<Vec<f64>>> {
        let sign = match targets.output {
            Output::Loss | Output::Token => -1.0,
            Output::Margin | Output::LogLikelihood => 1.0,
        };
        let tf: Vec<Vec<f64>> =
            features(&run.model, &run.params, &run.target_batch::<f64>(targets))
                .into_iter()
                .map(unit)
                .collect();
        let train: Vec<Vec<f64>> = train_features(run, self.chunk)
            .into_iter()
            .map(unit)
            .collect();
        Ok(tf
            .iter()
            .map(|t| train.iter().map(|x| sign * dot(t, x)).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use run::Split;

    #[test]
    fn self_similarity_is_one_and_the_loss_flips_the_sign() {
        let run = tiny_mlp(0.0);
        let mut targets = Targets {
            split: Split::Train,
            indices: vec![3, 50],
            output: Output::Margin,
        };
        let m = build(&mut Options::empty("similarity")).unwrap();
        let tau = m.attribute(&run, &targets).unwrap();
        assert!((tau[0][3] - 1.0).abs() < 1e-12 && (tau[1][50] - 1.0).abs() < 1e-12);
        assert!(tau.iter().flatten().all(|v| v.abs() <= 1.0 + 1e-12));
        targets.output = Output::Loss;
        let neg = m.attribute(&run, &targets).unwrap();
        assert_eq!(neg[0][7], -tau[0][7]);
    }
}
