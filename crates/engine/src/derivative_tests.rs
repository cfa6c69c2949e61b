//! One derivative check per operation: reverse-mode gradient, forward-mode JVP, forward-over-reverse
//! HVP and a block of tangents, all against central differences in f64 (tolerance 1e-6 relative).
//! Inputs are uniform in [-1, 1); functions needing a positive domain build it inside (e.g. `1 + x^2`).

use crate::derivative_test;
use crate::kernels::Conv2dGeometry;
use crate::ops::attention::AttentionParams;
use crate::Tensor;

// Binary primitives, same shapes and broadcasting both ways.
derivative_test!(add_broadcast, [[3, 4], [4]], |g, x| g.add(x[0], x[1]));
derivative_test!(sub_broadcast, [[2, 1, 3], [4, 1]], |g, x| g.sub(x[0], x[1]));
derivative_test!(mul_same_and_broadcast, [[3, 4], [3, 1]], |g, x| {
    let a = g.mul(x[0], x[0]);
    g.mul(a, x[1])
});
derivative_test!(div_positive_denominator, [[3, 4], [4]], |g, x| {
    let d = g.square(x[1]);
    let d = g.add_scalar(d, 0.5);
    g.div(x[0], d)
});
derivative_test!(scale_and_neg, [[5]], |g, x| {
    let a = g.scale(x[0], 2.5);
    let b = g.neg(x[0]);
    g.mul(a, b)
});

// Unary primitives (composed with a product so second derivatives are exercised).
derivative_test!(exp, [[6]], |g, x| g.exp(x[0]));
derivative_test!(log_of_positive, [[6]], |g, x| {
    let s = g.square(x[0]);
    let p = g.add_scalar(s, 0.3);
    g.log(p)
});
derivative_test!(tanh, [[6]], |g, x| g.tanh(x[0]));
derivative_test!(relu_away_from_kink, [[6]], |g, x| {
    let s = g.add_scalar(x[0], 3.0); // all positive: relu is locally linear
    let r = g.relu(s);
    g.mul(r, x[0])
});
derivative_test!(relu_negative_side, [[6]], |g, x| {
    let s = g.add_scalar(x[0], -3.0);
    let r = g.relu(s);
    g.add(r, x[0])
});
derivative_test!(sigmoid, [[6]], |g, x| g.sigmoid(x[0]));
derivative_test!(softplus, [[6]], |g, x| {
    let s = g.scale(x[0], 3.0);
    g.softplus(s)
});
derivative_test!(gelu, [[6]], |g, x| {
    let s = g.scale(x[0], 2.0);
    g.gelu(s)
});
derivative_test!(sqrt_rsqrt_recip, [[6]], |g, x| {
    let s = g.square(x[0]);
    let p = g.add_scalar(s, 0.5);
    let a = g.sqrt(p);
    let b = g.rsqrt(p);
    let c = g.recip(p);
    let ab = g.mul(a, b);
    g.add(ab, c)
});

// Matrix products, every transpose combination, batched and broadcast.
derivative_test!(matmul_plain, [[3, 4], [4, 2]], |g, x| g.matmul(x[0], x[1]));
derivative_test!(matmul_ta, [[4, 3], [4, 2]], |g, x| g
    .matmul_t(x[0], x[1], true, false));
derivative_test!(matmul_tb, [[3, 4], [2, 4]], |g, x| g
    .matmul_t(x[0], x[1], false, true));
derivative_test!(matmul_ta_tb, [[4, 3], [2, 4]], |g, x| g
    .matmul_t(x[0], x[1], true, true));
derivative_test!(matmul_batched_broadcast, [[2, 3, 4], [4, 2]], |g, x| g
    .matmul(x[0], x[1]));
derivative_test!(matmul_batched_both, [[2, 1, 3, 4], [3, 2, 4]], |g, x| g
    .matmul_t(x[0], x[1], false, true));
derivative_test!(matmul_squared, [[3, 3]], |g, x| {
    let a = g.matmul(x[0], x[0]);
    g.matmul_t(a, x[0], true, false)
});

// Reductions and data movement.
derivative_test!(sum_axes, [[2, 3, 4]], |g, x| {
    let s = g.square(x[0]);
    let a = g.sum(s, &[0, 2], false);
    let b = g.sum(x[0], &[1], true);
    let b = g.sum_all(b);
    g.mul(a, b)
});
derivative_test!(mean_and_broadcast_to, [[3, 1]], |g, x| {
    let b = g.broadcast_to(x[0], &[2, 3, 4]);
    let s = g.square(b);
    g.mean(s, &[2], false)
});
derivative_test!(reshape_permute_transpose, [[2, 3, 4]], |g, x| {
    let p = g.permute(x[0], &[2, 0, 1]);
    let r = g.reshape(p, &[4, 6]);
    let t = g.transpose(r);
    let t = g.square(t);
    g.reshape(t, &[24])
});
derivative_test!(concat_narrow, [[2, 3], [2, 2]], |g, x| {
    let c = g.concat(&[x[0], x[1]], 1);
    let s = g.square(c);
    let n = g.narrow(s, 1, 1, 3);
    g.mul(n, x[0])
});
derivative_test!(index_select_with_repeats, [[4, 3]], |g, x| {
    let e = g.index_select(x[0], 0, &[2, 0, 2, 3]);
    let s = g.square(e);
    g.mul(s, e)
});

// Convolution and pooling.
derivative_test!(unfold2d, [[2, 2, 4, 3]], |g, x| {
    let geom = Conv2dGeometry {
        channels: 2,
        height: 4,
        width: 3,
        kernel: (2, 2),
        stride: 1,
        padding: 1,
    };
    let u = g.unfold2d(x[0], geom);
    g.square(u)
});
derivative_test!(
    conv2d_with_bias_strided,
    [[2, 2, 5, 5], [3, 2, 3, 3], [3]],
    |g, x| {
        let y = g.conv2d(x[0], x[1], Some(x[2]), 2, 1);
        g.tanh(y)
    }
);
derivative_test!(avg_pool, [[1, 2, 4, 4]], |g, x| {
    let s = g.square(x[0]);
    g.avg_pool2d(s, 2)
});
derivative_test!(max_pool, [[2, 1, 4, 4]], |g, x| {
    let s = g.sigmoid(x[0]);
    g.max_pool2d(s, 2)
});
derivative_test!(global_avg_pool, [[2, 3, 2, 2]], |g, x| {
    let s = g.tanh(x[0]);
    g.global_avg_pool(s)
});

// Softmax family and losses.
derivative_test!(logsumexp, [[3, 5]], |g, x| {
    let s = g.scale(x[0], 4.0);
    g.logsumexp(s)
});
derivative_test!(softmax, [[3, 5]], |g, x| g.softmax(x[0]));
derivative_test!(log_softmax, [[2, 4]], |g, x| g.log_softmax(x[0]));
derivative_test!(scaled_causal_softmax, [[2, 3, 4, 4]], |g, x| {
    let spec = crate::kernels::softmax::Softmax {
        scale: 0.6,
        causal: true,
    };
    let y = g.scaled_softmax(x[0], spec);
    g.tanh(y)
});
derivative_test!(cross_entropy, [[4, 3]], |g, x| {
    let z = g.scale(x[0], 3.0);
    g.cross_entropy(z, &[0, 2, 1, 2])
});
derivative_test!(margin, [[4, 3]], |g, x| {
    let z = g.scale(x[0], 3.0);
    g.margin(z, &[0, 2, 1, 2])
});
derivative_test!(binary_logistic_and_margin, [[4, 1]], |g, x| {
    let l = g.binary_logistic(x[0], &[0, 1, 1, 0]);
    let m = g.binary_margin(x[0], &[0, 1, 1, 0]);
    let m = g.square(m);
    g.add(l, m)
});
derivative_test!(mse, [[3, 2]], |g, x| {
    let t = Tensor::from_f64s(&[0.1, -0.2, 0.3, 0.0, 0.5, 1.0], &[3, 2]);
    g.mse(x[0], t)
});
derivative_test!(weighted_mean, [[4, 3]], |g, x| {
    let l = g.cross_entropy(x[0], &[1, 1, 0, 2]);
    g.weighted_mean(l, &[1.0, 0.0, 0.5, 2.0])
});

// Normalisation, layers and attention.
derivative_test!(layer_norm, [[3, 5], [5], [5]], |g, x| {
    let y = g.layer_norm(x[0], x[1], x[2], 1e-5);
    g.tanh(y)
});
derivative_test!(group_norm, [[2, 4, 2, 2], [4], [4]], |g, x| {
    let y = g.group_norm(x[0], 2, x[1], x[2], 1e-5);
    g.sigmoid(y)
});
derivative_test!(channel_affine, [[3, 4, 5], [4], [4]], |g, x| {
    let y = g.channel_affine(x[0], x[1], x[2]);
    g.mul(y, y)
});
derivative_test!(
    channel_affine_without_spatial_axes,
    [[3, 2], [2], [2]],
    |g, x| {
        let y = g.channel_affine(x[0], x[1], x[2]);
        g.tanh(y)
    }
);
derivative_test!(linear_and_embedding, [[5, 3], [2, 3], [2]], |g, x| {
    let e = g.embedding(x[0], &[4, 1, 1, 0, 2, 3], &[2, 3]);
    let y = g.linear(e, x[1], Some(x[2]));
    g.gelu(y)
});
derivative_test!(
    causal_self_attention,
    [[2, 3, 4], [12, 4], [12], [4, 4], [4]],
    |g, x| {
        let p = AttentionParams {
            w_qkv: x[1],
            b_qkv: x[2],
            w_out: x[3],
            b_out: x[4],
        };
        g.causal_self_attention(x[0], &p, 2)
    }
);

#[test]
fn causal_attention_ignores_the_future() {
    use crate::Graph;
    // Changing the last position must not change earlier outputs.
    let mut rng = crate::Rng::new(5);
    let mut t = |s: &[usize]| {
        Tensor::<f64>::from_vec(
            (0..crate::tensor::numel(s)).map(|_| rng.normal()).collect(),
            s,
        )
    };
    let (x, w1, b1, w2, b2) = (t(&[1, 4, 4]), t(&[12, 4]), t(&[12]), t(&[4, 4]), t(&[4]));
    let run = |x: &Tensor<f64>| {
        let g = Graph::<f64>::new();
        let p = AttentionParams {
            w_qkv: g.input(w1.clone()),
            b_qkv: g.input(b1.clone()),
            w_out: g.input(w2.clone()),
            b_out: g.input(b2.clone()),
        };
        let xv = g.input(x.clone());
        let y = g.causal_self_attention(xv, &p, 2);
        g.tensor(y)
    };
    let y1 = run(&x);
    let mut x2 = x.clone();
    for v in &mut x2.data_mut()[12..16] {
        *v += 1.0;
    }
    let y2 = run(&x2);
    assert!(y1.data()[..12]
        .iter()
        .zip(&y2.data()[..12])
        .all(|(a, b)| a == b));
    assert!(y1.data()[12..] != y2.data()[12..]);
}
