//! Models: Gaussian mixtures against their closed forms, closures (denoiser, network),
//! networks from the fixture files against their PyTorch references, errors.
mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{ctx, fixture, rel_err, safetensors_f32};
use lgd::{
    AdapterOptions, Covariance, DenoiserClosures, Model, Network, NetworkClosures, Prediction, Status,
    Tensor, TimeInput, TrajectoryPriorOptions,
};

const M: f64 = 0.7;
const S: f64 = 0.3;

/// D(x, sigma), J and log p_sigma(x) of N(M, S^2) in double.
fn gauss(x: f64, sigma: f64) -> (f64, f64, f64) {
    let (s2, v) = (S * S, S * S + sigma * sigma);
    let d = (s2 * x + sigma * sigma * M) / v;
    let lp = -0.5 * (2.0 * std::f64::consts::PI * v).ln() - (x - M) * (x - M) / (2.0 * v);
    (d, s2 / v, lp)
}

#[test]
fn gaussian_denoiser_vjp_score_density_are_exact() {
    let ctx = ctx();
    let m = Model::gaussian_mixture(&ctx, 1, &[1.0], &[M as f32], Covariance::Isotropic(&[(S * S) as f32]))
        .unwrap();
    assert_eq!((m.dim(), m.cond_dim(), m.has_exact_posterior()), (1, 0, true));
    let xs = [-2.0f32, -0.5, 0.0, 0.7, 3.0];
    let sigma = 0.8f32;
    let x = Tensor::from_slice(&ctx, &[5, 1], &xs).unwrap();
    let mut out = Tensor::new(&ctx, &[5, 1]).unwrap();
    let v = Tensor::from_slice(&ctx, &[5, 1], &[1.0, 2.0, -1.0, 0.5, 3.0]).unwrap();
    m.denoise(&x, sigma, None, &mut out).unwrap();
    let d = out.to_vec().unwrap();
    m.vjp(&x, sigma, None, &v, &mut out).unwrap();
    let j = out.to_vec().unwrap();
    m.score(&x, sigma, None, &mut out).unwrap();
    let sc = out.to_vec().unwrap();
    let mut lp = Tensor::new(&ctx, &[5]).unwrap();
    m.log_density(&x, sigma, &mut lp).unwrap();
    let lp = lp.to_vec().unwrap();
    let vv = v.to_vec().unwrap();
    for i in 0..5 {
        let (rd, rj, rlp) = gauss(xs[i] as f64, sigma as f64);
        assert!((d[i] as f64 - rd).abs() < 1e-6, "D({}) = {} vs {rd}", xs[i], d[i]);
        assert!((j[i] as f64 - rj * vv[i] as f64).abs() < 1e-6);
        let rs = (rd - xs[i] as f64) / (sigma as f64 * sigma as f64);
        assert!((sc[i] as f64 - rs).abs() < 1e-5 * rs.abs().max(1.0));
        assert!((lp[i] as f64 - rlp).abs() < 1e-5, "log p = {} vs {rlp}", lp[i]);
    }
    assert_eq!(m.denoise_slice(&xs, sigma).unwrap(), d);
    // posterior draws: [batch][n][dim]; at sigma = 0 they are x itself
    let mut draws = Tensor::new(&ctx, &[5, 3, 1]).unwrap();
    m.sample_posterior(&x, 0.0, 1, 0, &mut draws).unwrap();
    let dv = draws.to_vec().unwrap();
    for i in 0..5 {
        assert!(dv[i * 3..i * 3 + 3].iter().all(|&y| y == xs[i]));
    }
}

#[test]
fn mixture_covariance_layouts_agree() {
    let ctx = ctx();
    let w = [0.3f32, 0.7];
    let mu = [0.0f32, 1.0, -1.0, 2.0];
    let full = Model::gaussian_mixture(
        &ctx,
        2,
        &w,
        &mu,
        Covariance::Full(&[0.5, 0.0, 0.0, 0.5, 0.2, 0.0, 0.0, 0.2]),
    )
    .unwrap();
    let diag =
        Model::gaussian_mixture(&ctx, 2, &w, &mu, Covariance::Diagonal(&[0.5, 0.5, 0.2, 0.2])).unwrap();
    let iso = Model::gaussian_mixture(&ctx, 2, &w, &mu, Covariance::Isotropic(&[0.5, 0.2])).unwrap();
    let x = [0.3f32, -0.2, 1.5, 0.7, -2.0, 2.5];
    let a = full.denoise_slice(&x, 0.6).unwrap();
    let b = diag.denoise_slice(&x, 0.6).unwrap();
    let c = iso.denoise_slice(&x, 0.6).unwrap();
    assert!(rel_err(&a, &c) < 1e-5 && rel_err(&b, &c) < 1e-6, "{a:?} {b:?} {c:?}");
}

#[test]
fn mixture_wrong_sizes_are_errors() {
    let ctx = ctx();
    let e =
        Model::gaussian_mixture(&ctx, 2, &[0.5, 0.5], &[0.0, 1.0, 2.0], Covariance::Isotropic(&[1.0, 1.0]))
            .unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("means has 3 values") && e.message().contains("need 4"), "{e}");
    let e = Model::gaussian_mixture(&ctx, 2, &[1.0], &[0.0, 1.0], Covariance::Full(&[1.0, 0.0, 0.0]))
        .unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    let e = Model::gaussian_mixture(&ctx, 1, &[1.0], &[0.0], Covariance::Isotropic(&[-1.0])).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument); // the library's own check
    assert!(e.message().contains("lgd_model_create_gmm"), "{e}");
    let m = Model::gaussian_mixture(&ctx, 2, &[1.0], &[0.0, 0.0], Covariance::Isotropic(&[1.0])).unwrap();
    let x = Tensor::new(&ctx, &[4, 3]).unwrap();
    let mut out = Tensor::new(&ctx, &[4, 2]).unwrap();
    let e = m.denoise(&x, 1.0, None, &mut out).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(!e.message().is_empty(), "{e}");
    let x = Tensor::new(&ctx, &[4, 2]).unwrap();
    assert_eq!(m.denoise(&x, -1.0, None, &mut out).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(m.denoise_slice(&[1.0, 2.0, 3.0], 1.0).unwrap_err().status(), Status::ShapeMismatch);
}

fn gauss_closures() -> DenoiserClosures {
    DenoiserClosures::new(1, |inp, xhat| {
        for (o, &x) in xhat.iter_mut().zip(inp.x) {
            *o = gauss(x as f64, inp.sigma as f64).0 as f32;
        }
        Ok(())
    })
    .vjp(|inp, v, out| {
        for (o, &vi) in out.iter_mut().zip(v) {
            *o = (gauss(0.0, inp.sigma as f64).1 * vi as f64) as f32;
        }
        Ok(())
    })
}

#[test]
fn closure_denoiser_matches_the_mixture() {
    let ctx = ctx();
    let gmm = Model::gaussian_mixture(&ctx, 1, &[1.0], &[M as f32], Covariance::Isotropic(&[(S * S) as f32]))
        .unwrap();
    let m = Model::from_closures(&ctx, gauss_closures()).unwrap();
    assert!(!m.has_exact_posterior());
    let xs = [-1.0f32, 0.2, 2.0];
    assert!(rel_err(&m.denoise_slice(&xs, 0.5).unwrap(), &gmm.denoise_slice(&xs, 0.5).unwrap()) < 1e-6);
    let x = Tensor::from_slice(&ctx, &[3, 1], &xs).unwrap();
    let v = Tensor::from_slice(&ctx, &[3, 1], &[1.0, 1.0, 1.0]).unwrap();
    let (mut a, mut b) = (Tensor::new(&ctx, &[3, 1]).unwrap(), Tensor::new(&ctx, &[3, 1]).unwrap());
    m.vjp(&x, 0.5, None, &v, &mut a).unwrap();
    gmm.vjp(&x, 0.5, None, &v, &mut b).unwrap();
    assert!(rel_err(&a.to_vec().unwrap(), &b.to_vec().unwrap()) < 1e-6);
    // without a VJP: the library says unsupported
    let nov = Model::from_closures(
        &ctx,
        DenoiserClosures::new(1, |_, o| {
            o.fill(0.0);
            Ok(())
        }),
    )
    .unwrap();
    assert_eq!(nov.vjp(&x, 0.5, None, &v, &mut a).unwrap_err().status(), Status::Unsupported);
}

#[test]
fn closure_condition_rows_arrive() {
    let ctx = ctx();
    let m = Model::from_closures(
        &ctx,
        DenoiserClosures::new(2, |inp, xhat| {
            let c = inp.cond.ok_or("no condition")?;
            for b in 0..inp.batch {
                for j in 0..inp.dim {
                    xhat[b * 2 + j] = inp.x[b * 2 + j] + c[b];
                }
            }
            Ok(())
        })
        .cond_dim(1),
    )
    .unwrap();
    assert_eq!(m.cond_dim(), 1);
    let x = Tensor::from_slice(&ctx, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let c = Tensor::from_slice(&ctx, &[2, 1], &[10.0, 20.0]).unwrap();
    let mut out = Tensor::new(&ctx, &[2, 2]).unwrap();
    m.denoise(&x, 1.0, Some(&c), &mut out).unwrap();
    assert_eq!(out.to_vec().unwrap(), vec![11.0, 12.0, 23.0, 24.0]);
    let e = m.denoise(&x, 1.0, None, &mut out).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("no condition"), "{e}");
}

#[test]
fn closure_errors_and_panics_become_errors() {
    let ctx = ctx();
    let calls = Rc::new(Cell::new(0));
    let c2 = calls.clone();
    let m = Model::from_closures(
        &ctx,
        DenoiserClosures::new(1, move |inp, _| {
            c2.set(c2.get() + 1);
            if inp.sigma > 1.0 {
                panic!("sigma {} is too large for this model", inp.sigma);
            }
            Err(format!("refusing batch {}", inp.batch).into())
        }),
    )
    .unwrap();
    let e = m.denoise_slice(&[0.0, 1.0], 0.5).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("refusing batch 2") && e.message().contains("callback"), "{e}");
    let e = m.denoise_slice(&[0.0], 2.0).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("panicked") && e.message().contains("sigma 2 is too large"), "{e}");
    assert_eq!(calls.get(), 2);
    // the model still works after a panic (nothing was left borrowed)
    assert!(m.denoise_slice(&[0.0], 0.1).is_err());
    assert_eq!(calls.get(), 3);
}

#[test]
fn network_closures_with_an_adapter() {
    let ctx = ctx();
    let k = 0.25f32;
    let seen_t = Rc::new(Cell::new(f32::NAN));
    let st = seen_t.clone();
    let net = NetworkClosures::new(3, move |inp, out| {
        st.set(inp.t);
        for (o, &x) in out.iter_mut().zip(inp.x_in) {
            *o = k * x;
        }
        Ok(())
    })
    .vjp(move |_, v, out| {
        for (o, &vi) in out.iter_mut().zip(v) {
            *o = k * vi;
        }
        Ok(())
    });
    let adapter = AdapterOptions {
        prediction: Prediction::Eps,
        time_input: TimeInput::Sigma,
        ..AdapterOptions::default()
    };
    let m = Model::from_network_closures(&ctx, net, &adapter).unwrap();
    let sigma = 2.0f32;
    assert_eq!(m.network_time(sigma).unwrap(), sigma);
    let xs = [1.0f32, -2.0, 0.5];
    let d = m.denoise_slice(&xs, sigma).unwrap();
    assert_eq!(seen_t.get(), sigma);
    let c_in = 1.0 / (1.0 + (sigma as f64).powi(2)).sqrt();
    for i in 0..3 {
        let want = xs[i] as f64 - sigma as f64 * k as f64 * c_in * xs[i] as f64;
        assert!((d[i] as f64 - want).abs() < 1e-6, "{} vs {want}", d[i]);
    }
    let x = Tensor::from_slice(&ctx, &[1, 3], &xs).unwrap();
    let v = Tensor::from_slice(&ctx, &[1, 3], &[1.0, 1.0, 1.0]).unwrap();
    let mut out = Tensor::new(&ctx, &[1, 3]).unwrap();
    m.vjp(&x, sigma, None, &v, &mut out).unwrap();
    let want = 1.0 - sigma as f64 * c_in * k as f64;
    assert!(out.to_vec().unwrap().iter().all(|&o| (o as f64 - want).abs() < 1e-6));
    // a discrete time input without a schedule is refused by the library
    let e = Model::from_network_closures(
        &ctx,
        NetworkClosures::new(3, |_, _| Ok(())),
        &AdapterOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("alphas_cumprod"), "{e}");
    // with one, EDM's log-sigma time
    let edm = AdapterOptions {
        prediction: Prediction::Edm,
        time_input: TimeInput::LogSigma,
        ..AdapterOptions::default()
    };
    let m = Model::from_network_closures(
        &ctx,
        NetworkClosures::new(3, |_, o| {
            o.fill(0.0);
            Ok(())
        }),
        &edm,
    )
    .unwrap();
    assert!((m.network_time(sigma).unwrap() - (sigma.ln() / 4.0)).abs() < 1e-7);
}

#[test]
fn network_from_a_file_matches_its_reference() {
    let ctx = ctx();
    let path = fixture("mlp.safetensors");
    let net = Network::load(&ctx, &path).unwrap();
    assert_eq!((net.dim(), net.out_dim(), net.cond_dim(), net.parameter_count()), (8, 8, 0, 6568));
    assert_eq!(net.metadata("lgd.architecture").as_deref(), Some("mlp"));
    assert_eq!(net.metadata("no such key"), None);
    let ad = net.adapter_options().unwrap();
    assert_eq!((ad.prediction, ad.time_input), (Prediction::Eps, TimeInput::Discrete));
    assert_eq!(ad.alphas_cumprod.as_ref().map(Vec::len), Some(1000));
    let refp = fixture("mlp.ref.safetensors");
    let (xs, x) = safetensors_f32(&refp, "x_in");
    let (_, t) = safetensors_f32(&refp, "t");
    let (_, want_out) = safetensors_f32(&refp, "out");
    let (_, cot) = safetensors_f32(&refp, "cotangent");
    let (_, want_vjp) = safetensors_f32(&refp, "vjp");
    let b = xs[0] as i64;
    let xt = Tensor::from_slice(&ctx, &[b, 8], &x).unwrap();
    let mut out = Tensor::new(&ctx, &[b, 8]).unwrap();
    net.forward(&xt, t[0], None, &mut out).unwrap();
    let got = out.to_vec().unwrap();
    assert!(rel_err(&got, &want_out) < 1e-4, "forward error {}", rel_err(&got, &want_out));
    let v = Tensor::from_slice(&ctx, &[b, 8], &cot).unwrap();
    let mut g = Tensor::new(&ctx, &[b, 8]).unwrap();
    let mut fwd = Tensor::new(&ctx, &[b, 8]).unwrap();
    net.vjp(&xt, t[0], None, &v, &mut g, Some(&mut fwd)).unwrap();
    assert!(rel_err(&g.to_vec().unwrap(), &want_vjp) < 1e-4);
    assert_eq!(fwd.to_vec().unwrap(), got);
    // from memory: the same network, the same bytes
    let mem = Network::load_memory(&ctx, &std::fs::read(&path).unwrap()).unwrap();
    let mut out2 = Tensor::new(&ctx, &[b, 8]).unwrap();
    mem.forward(&xt, t[0], None, &mut out2).unwrap();
    assert_eq!(out2.to_vec().unwrap(), got);
    // as a denoiser: lgd_model_load and lgd_model_create_from_network agree
    let m1 = Model::load(&ctx, &path).unwrap();
    let m2 = Model::from_network(&net, None).unwrap();
    let m3 = Model::from_network(&net, Some(&ad)).unwrap();
    let d1 = m1.denoise_slice(&x, 3.0).unwrap();
    assert_eq!(m2.denoise_slice(&x, 3.0).unwrap(), d1);
    assert_eq!(m3.denoise_slice(&x, 3.0).unwrap(), d1);
    assert!(m1.network_time(3.0).unwrap() > 0.0);
}

#[test]
fn conditional_network_and_file_errors() {
    let ctx = ctx();
    let net = Network::load(&ctx, fixture("mlp_cond.safetensors")).unwrap();
    assert_eq!(net.cond_dim(), 3);
    let refp = fixture("mlp_cond.ref.safetensors");
    let (xs, x) = safetensors_f32(&refp, "x_in");
    let (_, t) = safetensors_f32(&refp, "t");
    let (_, c) = safetensors_f32(&refp, "cond");
    let (_, want) = safetensors_f32(&refp, "out");
    let b = xs[0] as i64;
    let xt = Tensor::from_slice(&ctx, &[b, 8], &x).unwrap();
    let ct = Tensor::from_slice(&ctx, &[b, 3], &c).unwrap();
    let mut out = Tensor::new(&ctx, &[b, 8]).unwrap();
    net.forward(&xt, t[0], Some(&ct), &mut out).unwrap();
    assert!(rel_err(&out.to_vec().unwrap(), &want) < 1e-4);
    let e = net.forward(&xt, t[0], None, &mut out).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("cond"), "{e}");
    let e = Network::load(&ctx, "/nonexistent/net.safetensors").unwrap_err();
    assert_eq!(e.status(), Status::Io);
    assert!(e.message().contains("/nonexistent/net.safetensors"), "{e}");
    let e = Network::load_memory(&ctx, b"not a safetensors file at all").unwrap_err();
    assert_eq!(e.status(), Status::Format, "{e}");
    let e = Model::load(&ctx, "bad\0path").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
}

#[test]
fn trajectory_prior() {
    let ctx = ctx();
    let o = TrajectoryPriorOptions { frames: 16, headings: 4, turns: 1, ..TrajectoryPriorOptions::default() };
    let m = Model::trajectory_prior(&ctx, &o).unwrap();
    assert_eq!(m.dim(), 32);
    assert!(m.has_exact_posterior());
    let bad = TrajectoryPriorOptions { frames: 0, ..o };
    assert_eq!(Model::trajectory_prior(&ctx, &bad).unwrap_err().status(), Status::InvalidArgument);
}
