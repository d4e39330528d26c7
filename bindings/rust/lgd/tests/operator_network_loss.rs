//! liblgd 0.5.0's operators and network losses: average pooling (block means), the mask,
//! the adjoint identity, the operator loss against its formula and finite differences;
//! a network loss on the `linear` fixture (f = W x + b) against the closed forms
//! (cross-entropy clean and noisy, squared error with targets), classifier guidance,
//! errors with the library's messages.
mod common;

use common::{ctx, fixture, safetensors_f32};
use lgd::{
    Covariance, Loss, Model, Network, NetworkLossInput, NetworkLossKind, NetworkLossOptions, Operator, Status,
};

fn close(a: f32, b: f64, tol: f64) -> bool {
    (a as f64 - b).abs() <= tol * b.abs().max(1.0)
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// [C][H][W] -> [C][H/f][W/f] block means, in f64.
fn avg_pool(x: &[f32], c: usize, h: usize, w: usize, f: usize) -> Vec<f64> {
    let (ho, wo) = (h / f, w / f);
    let mut y = vec![0.0f64; c * ho * wo];
    for ch in 0..c {
        for i in 0..ho {
            for j in 0..wo {
                let mut s = 0.0;
                for a in 0..f {
                    for b in 0..f {
                        s += x[ch * h * w + (f * i + a) * w + f * j + b] as f64;
                    }
                }
                y[ch * ho * wo + i * wo + j] = s / (f * f) as f64;
            }
        }
    }
    y
}

#[test]
fn avg_pool_mask_and_adjoints() {
    let ctx = ctx();
    let op = Operator::avg_pool(2, 4, 6, 2);
    assert_eq!(op.dims(&ctx).unwrap(), (48, 12));
    let x = values(2 * 48, 1);
    let y = op.apply_slice(&ctx, false, &x).unwrap();
    assert_eq!(y.len(), 24);
    for r in 0..2 {
        let want = avg_pool(&x[r * 48..(r + 1) * 48], 2, 4, 6, 2);
        for (k, w) in want.iter().enumerate() {
            assert!(close(y[r * 12 + k], *w, 1e-6), "row {r} value {k}");
        }
    }
    // <H x, v> = <x, H^T v> for pooling, bicubic, blur and mask
    let mask = values(48, 9).iter().map(|v| if *v > 0.0 { 1.0 } else { 0.5 }).collect::<Vec<f32>>();
    for op in [
        Operator::avg_pool(2, 4, 6, 2),
        Operator::bicubic_down(2, 4, 6, 2),
        Operator::blur(2, 4, 6, 1.2).blur_radius(3),
        Operator::mask(2, 4, 6, &mask),
    ] {
        let (dim, m) = op.dims(&ctx).unwrap();
        let x = values(dim as usize, 2);
        let v = values(m as usize, 3);
        let hx = op.apply_slice(&ctx, false, &x).unwrap();
        let htv = op.apply_slice(&ctx, true, &v).unwrap();
        let lhs: f64 = hx.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
        let rhs: f64 = x.iter().zip(&htv).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!((lhs - rhs).abs() < 1e-5 * lhs.abs().max(1.0), "{:?}: {lhs} vs {rhs}", op.kind);
    }
    // the mask multiplies elementwise
    let y = Operator::mask(2, 4, 6, &mask).apply_slice(&ctx, false, &x[..48]).unwrap();
    for k in 0..48 {
        assert_eq!(y[k], x[k] * mask[k]);
    }
}

#[test]
fn operator_loss_value_gradient_and_errors() {
    let ctx = ctx();
    let op = Operator::avg_pool(1, 4, 4, 2);
    let s2 = 0.0625f32;
    let y = values(4, 4);
    let loss = Loss::operator(&ctx, &op, &y, s2).unwrap();
    assert_eq!(loss.dim(), 16);
    let x = values(3 * 16, 5);
    let (v, g) = loss.eval_slice(&x).unwrap();
    let reference = |xr: &[f64]| -> f64 {
        // H x in f64 (the block means of the 4x4 image)
        let mut l = 0.0;
        for i in 0..2 {
            for j in 0..2 {
                let mut s = 0.0;
                for a in 0..2 {
                    for b in 0..2 {
                        s += xr[(2 * i + a) * 4 + 2 * j + b];
                    }
                }
                let r = s / 4.0 - y[i * 2 + j] as f64;
                l += r * r;
            }
        }
        l / (2.0 * s2 as f64)
    };
    for r in 0..3 {
        let xr: Vec<f64> = x[r * 16..(r + 1) * 16].iter().map(|&a| a as f64).collect();
        assert!(close(v[r], reference(&xr), 1e-5), "value {r}");
        for j in 0..16 {
            let h = 1e-6;
            let (mut p, mut m) = (xr.clone(), xr.clone());
            p[j] += h;
            m[j] -= h;
            let fd = (reference(&p) - reference(&m)) / (2.0 * h);
            assert!(close(g[r * 16 + j], fd, 1e-4), "grad {r} {j}: {} vs {fd}", g[r * 16 + j]);
        }
    }
    // errors: the library's statuses and messages
    let e = Operator::avg_pool(1, 5, 4, 2).dims(&ctx).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("lgd_operator_dims"), "{e}");
    let e = Operator::blur(1, 4, 4, -1.0).dims(&ctx).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    let e = op.apply_slice(&ctx, false, &[0.0; 7]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    let e = Loss::operator(&ctx, &op, &y, 0.0).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("lgd_loss_create_operator"), "{e}");
    assert_eq!(Loss::operator(&ctx, &op, &[0.0; 5], 1.0).unwrap_err().status(), Status::ShapeMismatch);
    assert_eq!(Operator::mask(1, 2, 2, &[1.0; 3]).dims(&ctx).unwrap_err().status(), Status::ShapeMismatch);
}

/// The `linear` fixture: weight [5][6], bias [5].
fn linear_fixture() -> (Vec<f64>, Vec<f64>) {
    let p = fixture("linear.safetensors");
    let (ws, w) = safetensors_f32(&p, "weight");
    let (_, b) = safetensors_f32(&p, "bias");
    assert_eq!(ws, vec![5, 6]);
    (w.iter().map(|&a| a as f64).collect(), b.iter().map(|&a| a as f64).collect())
}

fn logits(w: &[f64], b: &[f64], x: &[f32], c: f64) -> Vec<f64> {
    (0..5).map(|k| b[k] + (0..6).map(|j| w[k * 6 + j] * c * x[j] as f64).sum::<f64>()).collect()
}

#[test]
fn network_cross_entropy_and_squared_error() {
    let ctx = ctx();
    let net = Network::load(&ctx, fixture("linear.safetensors")).unwrap();
    let (w, b) = linear_fixture();
    let x = values(2 * 6, 6);
    // a cross-entropy of the clean input, labels per sample
    let o = NetworkLossOptions { scale: 0.5, ..NetworkLossOptions::new(NetworkLossKind::CrossEntropy) };
    let loss = Loss::network(&net, &o).unwrap();
    assert_eq!(loss.dim(), 6);
    assert_eq!(loss.eval_slice(&x).unwrap_err().status(), Status::State); // no labels
    let labels = [3, 0];
    loss.set_labels(&labels).unwrap();
    let (v, g) = loss.eval_slice(&x).unwrap();
    for r in 0..2 {
        let f = logits(&w, &b, &x[r * 6..(r + 1) * 6], 1.0);
        let mx = f.iter().cloned().fold(f64::MIN, f64::max);
        let se: f64 = f.iter().map(|a| (a - mx).exp()).sum();
        assert!(close(v[r], 0.5 * (mx + se.ln() - f[labels[r] as usize]), 1e-5), "value {r}");
        for j in 0..6 {
            let gj: f64 = (0..5)
                .map(|k| {
                    ((f[k] - mx).exp() / se - if k == labels[r] as usize { 1.0 } else { 0.0 }) * w[k * 6 + j]
                })
                .sum();
            assert!(close(g[r * 6 + j], 0.5 * gj, 1e-5), "grad {r} {j}");
        }
    }
    let e = loss.set_labels(&[5]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("labels[0] = 5"), "{e}");
    // noisy input: eps adapter, c_in = 1 / sqrt(1 + sigma^2); eval_sigma
    let on = NetworkLossOptions { input: NetworkLossInput::Noisy, ..NetworkLossOptions::default() };
    let noisy = Loss::network(&net, &on).unwrap();
    noisy.set_labels(&[1]).unwrap();
    let (vn, _) = noisy.eval_sigma_slice(&x, 2.0).unwrap();
    let f = logits(&w, &b, &x[..6], 1.0 / 5f64.sqrt());
    let mx = f.iter().cloned().fold(f64::MIN, f64::max);
    let lse = mx + f.iter().map(|a| (a - mx).exp()).sum::<f64>().ln();
    assert!(close(vn[0], lse - f[1], 1e-5));
    assert_eq!(loss.eval_sigma_slice(&x, 2.0).unwrap_err().status(), Status::Unsupported);
    // a squared error with a shared target
    let se = Loss::network(&net, &NetworkLossOptions::new(NetworkLossKind::SquaredError)).unwrap();
    let t = [0.5f32, -1.0, 0.0, 2.0, 1.0];
    se.set_targets(&t, 5).unwrap();
    let (v, g) = se.eval_slice(&x).unwrap();
    let f = logits(&w, &b, &x[6..], 1.0);
    let want: f64 = f.iter().zip(&t).map(|(a, y)| (a - *y as f64).powi(2)).sum::<f64>() / 2.0;
    assert!(close(v[1], want, 1e-5));
    for j in 0..6 {
        let gj: f64 = (0..5).map(|k| (f[k] - t[k] as f64) * w[k * 6 + j]).sum();
        assert!(close(g[6 + j], gj, 1e-5), "grad {j}");
    }
    se.clear_targets().unwrap();
    let want0: f64 = f.iter().map(|a| a * a).sum::<f64>() / 2.0;
    assert!(close(se.eval_slice(&x).unwrap().0[1], want0, 1e-5));
    assert_eq!(se.set_targets(&t[..4], 4).unwrap_err().status(), Status::ShapeMismatch);
    assert_eq!(se.set_labels(&[0]).unwrap_err().status(), Status::Unsupported);
    let e = Loss::network(&net, &NetworkLossOptions::new(NetworkLossKind::Scalar)).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("out_dim 1"), "{e}");
}

#[test]
fn classifier_guided_model() {
    let ctx = ctx();
    let net = Network::load(&ctx, fixture("linear.safetensors")).unwrap();
    let o = NetworkLossOptions { input: NetworkLossInput::Noisy, ..NetworkLossOptions::default() };
    let loss = Loss::network(&net, &o).unwrap();
    loss.set_labels(&[2]).unwrap();
    let means = values(12, 7);
    let prior =
        Model::gaussian_mixture(&ctx, 6, &[0.4, 0.6], &means, Covariance::Isotropic(&[0.3, 0.5])).unwrap();
    let cg = Model::classifier_guided(&prior, &loss, 2.0).unwrap();
    assert_eq!(cg.dim(), 6);
    let x = values(3 * 6, 8);
    for sigma in [0.2f32, 1.5] {
        let d = prior.denoise_slice(&x, sigma).unwrap();
        let (_, g) = loss.eval_sigma_slice(&x, sigma).unwrap();
        let got = cg.denoise_slice(&x, sigma).unwrap();
        for k in 0..x.len() {
            let want = d[k] as f64 - 2.0 * (sigma as f64).powi(2) * g[k] as f64;
            assert!(close(got[k], want, 1e-5), "sigma {sigma} value {k}: {} vs {want}", got[k]);
        }
    }
    let small = Model::gaussian_mixture(&ctx, 2, &[1.0], &[0.0, 0.0], Covariance::Isotropic(&[1.0])).unwrap();
    let e = Model::classifier_guided(&small, &loss, 1.0).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("lgd_model_create_classifier_guided"), "{e}");
}
