//! What several CLI test files share.

/// Breast cancer, logistic regression, SGD with momentum, 3 epochs: each retraining takes
/// milliseconds, so tests can afford many.
pub const RECIPE: &str = r#"
[data]
source = "breast_cancer"
[model]
kind = "logistic"
[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9
[train]
epochs = 3
batch_size = 64
"#;
