//! Guidance (none, DPS, MC, exact; step rules; radius closures; reports with ESS) and
//! samplers (all four; schedules; step by step; progress closures; start / run_from;
//! cancellation from another thread).
mod common;

use std::rc::Rc;

use common::{bits, ctx, logistic_closure_loss, mixture};
use lgd::{
    schedule, Guidance, GuidanceKind, GuidanceOptions, Loss, RowReport, Sampler, SamplerKind, SamplerOptions,
    ScheduleKind, Start, Status, StepRule, Tensor,
};

fn xs(ctx: &lgd::Context, v: &[f32]) -> Tensor<'static> {
    Tensor::from_slice(ctx, &[v.len() as i64, 1], v).unwrap()
}

#[test]
fn exact_guidance_matches_the_target_score() {
    // For the mixture and the logistic loss from its log-odds, the exact g is the score
    // of the target N(-1, 0.2^2) at sigma minus the mixture's (mixture.c): the library's
    // exact importance sampling converges to it as n grows.
    let ctx = ctx();
    let m = mixture(&ctx);
    let loss = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let sigma = 1.0f32;
    let grid: Vec<f32> = (0..21).map(|i| -2.0 + i as f32 * 0.2).collect();
    let x = xs(&ctx, &grid);
    let mut s0 = Tensor::new(&ctx, &[21, 1]).unwrap();
    let mut s1 = Tensor::new(&ctx, &[21, 1]).unwrap();
    m.target.score(&x, sigma, None, &mut s0).unwrap();
    m.prior.score(&x, sigma, None, &mut s1).unwrap();
    let exact: Vec<f32> = s0.to_vec().unwrap().iter().zip(s1.to_vec().unwrap()).map(|(a, b)| a - b).collect();
    let g = Guidance::exact(&m.prior, &loss, 20000).unwrap();
    let mut out = Tensor::new(&ctx, &[21, 1]).unwrap();
    let rep = g.term(&x, sigma, 0, 0, &mut out, None).unwrap();
    let est = out.to_vec().unwrap();
    let err = common::rel_err(&est, &exact);
    assert!(err < 0.05, "exact-IS vs exact: relative error {err}");
    assert!(rep.active && rep.mean_ess >= 1.0 && rep.min_ess <= rep.mean_ess);
    // none: g = 0, and the guided denoiser is the model's own
    let none = Guidance::none(&m.prior).unwrap();
    let rep = none.term(&x, sigma, 0, 0, &mut out, None).unwrap();
    assert!(out.to_vec().unwrap().iter().all(|&v| v == 0.0));
    // (lgd_guidance_term reports active = 1 for every kind: the window does not apply
    // to it; the means of a NONE guidance are 0)
    assert!(rep.mean_loss == 0.0 && rep.mean_ess == 0.0 && rep.mean_grad_norm == 0.0, "{rep:?}");
    let mut d1 = Tensor::new(&ctx, &[21, 1]).unwrap();
    let rep = none.denoise(&x, sigma, 0, 0, &mut d1).unwrap();
    assert!(!rep.active && rep.mean_lambda == 0.0, "{rep:?}");
    assert_eq!(d1.to_vec().unwrap(), m.prior.denoise_slice(&grid, sigma).unwrap());
}

#[test]
fn closure_loss_guidance_is_bitwise_the_builtin() {
    let ctx = ctx();
    let m = mixture(&ctx);
    let builtin = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let rust = logistic_closure_loss(&ctx, m.a, m.b);
    let x = xs(&ctx, &[-1.5, -0.3, 0.0, 0.4, 1.2, 2.5]);
    for (kind, n) in
        [(GuidanceKind::Dps, 1), (GuidanceKind::Mc, 10), (GuidanceKind::Mc, 100), (GuidanceKind::Exact, 50)]
    {
        let mut o = GuidanceOptions::new(kind, n);
        o.seed = 7;
        let gb = Guidance::new(&m.prior, Some(&builtin), &o).unwrap();
        let gr = Guidance::new(&m.prior, Some(&rust), &o).unwrap();
        let (mut ob, mut or) = (Tensor::new(&ctx, &[6, 1]).unwrap(), Tensor::new(&ctx, &[6, 1]).unwrap());
        let (mut rb, mut rr) = (RowReport::new(6), RowReport::new(6));
        let repb = gb.term_rows(&x, 0.7, 3, 0, &mut ob, None, Some(&mut rb)).unwrap();
        let repr = gr.term_rows(&x, 0.7, 3, 0, &mut or, None, Some(&mut rr)).unwrap();
        assert_eq!(bits(&ob.to_vec().unwrap()), bits(&or.to_vec().unwrap()), "{kind:?} n={n}");
        assert_eq!(repb, repr);
        assert_eq!(rb, rr);
        // the report's batch means are the means of the rows
        let mean_ess = rb.ess.iter().map(|&v| v as f64).sum::<f64>() / 6.0;
        assert!((repb.mean_ess as f64 - mean_ess).abs() < 1e-5 * mean_ess);
        assert!(rb.ess.iter().all(|&e| (1.0..=n as f32 + 1e-3).contains(&e)), "{:?}", rb.ess);
    }
}

#[test]
fn step_rules_window_radius_and_seed() {
    let ctx = ctx();
    let m = mixture(&ctx);
    let loss = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let x = xs(&ctx, &[0.2, -0.4]);
    let mut g = Tensor::new(&ctx, &[2, 1]).unwrap();
    let mut d = Tensor::new(&ctx, &[2, 1]).unwrap();
    let dps = Guidance::dps(&m.prior, &loss).unwrap();
    dps.term(&x, 0.5, 0, 0, &mut g, None).unwrap();
    let gv = g.to_vec().unwrap();
    let xhat = m.prior.denoise_slice(&[0.2, -0.4], 0.5).unwrap();
    // x0 step rule at scale 3: xhat_g = xhat + 3 g
    let mut o = GuidanceOptions::new(GuidanceKind::Dps, 1);
    o.step_rule = StepRule::X0;
    o.scale = 3.0;
    let x0 = Guidance::new(&m.prior, Some(&loss), &o).unwrap();
    let rep = x0.denoise(&x, 0.5, 0, 0, &mut d).unwrap();
    let dv = d.to_vec().unwrap();
    for i in 0..2 {
        assert!((dv[i] - (xhat[i] + 3.0 * gv[i])).abs() <= 1e-5 * dv[i].abs().max(1.0));
    }
    assert_eq!(rep.mean_lambda, 3.0);
    // outside the window: no guidance
    o.sigma_max_active = 0.1;
    let win = Guidance::new(&m.prior, Some(&loss), &o).unwrap();
    let rep = win.denoise(&x, 0.5, 0, 0, &mut d).unwrap();
    assert!(!rep.active);
    assert_eq!(d.to_vec().unwrap(), xhat);
    // the radius: default sigma / sqrt(1 + sigma^2), a closure, a panicking closure
    let mc = Guidance::mc(&m.prior, &loss, 10).unwrap();
    assert!((mc.radius(1.0) - 0.5f32.sqrt()).abs() < 1e-6);
    let mut o = GuidanceOptions::new(GuidanceKind::Mc, 10);
    o.radius = Some(Rc::new(|s| 0.25 * s));
    let r = Guidance::new(&m.prior, Some(&loss), &o).unwrap();
    assert_eq!(r.radius(2.0), 0.5);
    r.term(&x, 0.5, 0, 0, &mut g, None).unwrap();
    o.radius = Some(Rc::new(|_| panic!("no radius today")));
    let bad = Guidance::new(&m.prior, Some(&loss), &o).unwrap();
    let e = bad.term(&x, 0.5, 0, 0, &mut g, None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("radius"), "{e}");
    assert!(bad.radius(1.0).is_nan());
    // seeds: the same seed the same draws, another seed others
    let a = Guidance::mc(&m.prior, &loss, 10).unwrap();
    a.set_seed(5).unwrap();
    a.term(&x, 0.5, 1, 0, &mut g, None).unwrap();
    let first = g.to_vec().unwrap();
    a.term(&x, 0.5, 1, 0, &mut g, None).unwrap();
    assert_eq!(g.to_vec().unwrap(), first);
    a.set_seed(6).unwrap();
    a.term(&x, 0.5, 1, 0, &mut g, None).unwrap();
    assert_ne!(g.to_vec().unwrap(), first);
    // bad options
    let e = Guidance::new(&m.prior, Some(&loss), &GuidanceOptions::new(GuidanceKind::Mc, 0)).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("n_samples"), "{e}");
    let e = Guidance::new(&m.prior, None, &GuidanceOptions::new(GuidanceKind::Dps, 1)).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    let l2 = Loss::squared_error(&ctx, 2, &[0.0, 0.0], None).unwrap();
    assert_eq!(Guidance::dps(&m.prior, &l2).unwrap_err().status(), Status::ShapeMismatch);
    let short = RowReport::new(1);
    let mut short2 = short.clone();
    let e = a.term_rows(&x, 0.5, 0, 0, &mut g, None, Some(&mut short2)).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
}

#[test]
fn every_sampler_and_schedule_runs() {
    let ctx = ctx();
    let m = mixture(&ctx);
    let loss = logistic_closure_loss(&ctx, m.a, m.b);
    let g = Guidance::mc(&m.prior, &loss, 8).unwrap();
    for kind in [SamplerKind::Euler, SamplerKind::Ddim, SamplerKind::Heun, SamplerKind::DpmPp2M] {
        let mut o = SamplerOptions::new(kind, 12);
        if kind == SamplerKind::Ddim {
            o.eta = 0.5;
        }
        if kind == SamplerKind::Heun {
            o.s_churn = 1.0;
        }
        let mut s = Sampler::new(&g, &o).unwrap();
        let v = s.sample(256, 1).unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / 256.0;
        assert!(mean < -0.5, "{kind:?}: the guided mean {mean} is not near the target's -1");
        assert!(s.is_done() && s.sigma() == 0.0 && s.step_index() == 12);
    }
    // the grid is lgd_schedule_karras's
    let s = Sampler::new(&g, &SamplerOptions::default()).unwrap();
    assert_eq!(s.sigmas().unwrap(), schedule::karras(20, 0.002, 80.0, 7.0).unwrap());
    // VP and user grids
    let mut o = SamplerOptions::new(SamplerKind::Euler, 10);
    o.schedule = ScheduleKind::VpCosine;
    let s = Sampler::new(&g, &o).unwrap();
    assert_eq!(
        s.sigmas().unwrap(),
        schedule::vp(schedule::VpSchedule::Cosine, 1000, 1e-4, 0.02, 10).unwrap()
    );
    o.schedule = ScheduleKind::User;
    o.sigmas = Some(vec![10.0, 3.0, 1.0, 0.1]);
    let s = Sampler::new(&g, &o).unwrap();
    assert_eq!(s.sigmas().unwrap(), vec![10.0, 3.0, 1.0, 0.1, 0.0]);
    o.sigmas = Some(vec![1.0, 3.0]);
    let e = Sampler::new(&g, &o).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(!e.message().is_empty());
    assert_eq!(schedule::karras(0, 0.1, 1.0, 7.0).unwrap_err().status(), Status::InvalidArgument);
    let e = schedule::karras(5, 2.0, 1.0, 7.0).unwrap_err();
    assert!(e.message().contains("lgd_schedule_karras"), "{e}");
    let ac = schedule::vp_alphas_cumprod(schedule::VpSchedule::Linear, 1000, 1e-4, 0.02).unwrap();
    assert!((ac[0] - (1.0 - 1e-4)).abs() < 1e-7 && ac.windows(2).all(|w| w[1] < w[0]));
}

#[test]
fn step_by_step_equals_run_and_batches_split() {
    let ctx = ctx();
    let m = mixture(&ctx);
    let loss = logistic_closure_loss(&ctx, m.a, m.b);
    let g = Guidance::mc(&m.prior, &loss, 10).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Ddim, 20)).unwrap();
    let whole = s.sample(64, 9).unwrap();
    let mut x = Tensor::new(&ctx, &[64, 1]).unwrap();
    s.init(&mut x, 9, 0).unwrap();
    let mut rows = RowReport::new(64);
    let mut steps = 0;
    while !s.is_done() {
        let rep = s.step_rows(&mut x, Some(&mut rows)).unwrap();
        assert!(rep.mean_ess >= 1.0 && rep.mean_ess <= 10.0 + 1e-3);
        assert!(rows.ess.iter().all(|&e| e >= 1.0 - 1e-6));
        steps += 1;
    }
    assert_eq!(steps, 20);
    assert_eq!(bits(&x.to_vec().unwrap()), bits(&whole));
    // rows 32..64 alone, numbered from 32, are the same samples
    let mut half = Tensor::new(&ctx, &[32, 1]).unwrap();
    s.run(&mut half, 9, 32).unwrap();
    assert_eq!(bits(&half.to_vec().unwrap()), bits(&whole[32..]));
    // a finished run refuses more steps
    assert_eq!(s.step(&mut half).unwrap_err().status(), Status::State);
    // start from the x of step k: the rest of the run, the same bytes
    s.init(&mut x, 9, 0).unwrap();
    for _ in 0..7 {
        s.step(&mut x).unwrap();
    }
    let mut y = x.try_clone().unwrap();
    s.run_from(&mut y, 7, Start::Noisy, 9, 0).unwrap();
    assert_eq!(bits(&y.to_vec().unwrap()), bits(&whole));
    // SDEdit from clean data
    let mut z = Tensor::from_slice(&ctx, &[4, 1], &[1.0, 1.0, 1.0, 1.0]).unwrap();
    s.run_from(&mut z, 15, Start::AddNoise, 1, 0).unwrap();
    assert!(z.to_vec().unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(s.start(&mut z, 99, Start::Noisy, 1, 0).unwrap_err().status(), Status::InvalidArgument);
    // wrong x
    let mut wrong = Tensor::new(&ctx, &[4, 2]).unwrap();
    assert_eq!(s.init(&mut wrong, 1, 0).unwrap_err().status(), Status::ShapeMismatch);
}

#[test]
fn progress_closures_report_stop_and_panic() {
    let ctx = ctx();
    let m = mixture(&ctx);
    let loss = logistic_closure_loss(&ctx, m.a, m.b);
    let g = Guidance::dps(&m.prior, &loss).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Euler, 10)).unwrap();
    let mut x = Tensor::new(&ctx, &[16, 1]).unwrap();
    let mut seen = Vec::new();
    s.run_with_progress(&mut x, 3, 0, |p| {
        seen.push((p.step, p.num_steps, p.sigma, p.report.active));
        true
    })
    .unwrap();
    assert_eq!(seen.len(), 10);
    assert_eq!(seen.iter().map(|p| p.0).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(seen.last().unwrap().2, 0.0);
    let done = x.to_vec().unwrap();
    // stop after 4 steps: Aborted, then the run goes on step by step to the same bytes
    let e = s.run_with_progress(&mut x, 3, 0, |p| p.step < 4).unwrap_err();
    assert_eq!(e.status(), Status::Aborted);
    assert_eq!(s.step_index(), 4);
    while !s.is_done() {
        s.step(&mut x).unwrap();
    }
    assert_eq!(bits(&x.to_vec().unwrap()), bits(&done));
    // a panic stops the run and becomes an error
    let e = s
        .run_with_progress(&mut x, 3, 0, |p| {
            if p.step == 2 {
                panic!("progress bar broke");
            }
            true
        })
        .unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("progress bar broke"), "{e}");
    // inside the progress closure the context refuses work
    let probe = Loss::squared_error(&ctx, 1, &[0.0], None).unwrap();
    let mut inner = None;
    s.run_with_progress(&mut x, 3, 0, |_| {
        inner = Some(probe.eval_slice(&[1.0]));
        true
    })
    .unwrap();
    assert_eq!(inner.unwrap().unwrap_err().status(), Status::State);
    // run_from with progress counts grid indices
    let mut idx = Vec::new();
    s.init(&mut x, 3, 0).unwrap();
    s.run_from_with_progress(&mut x, 6, Start::Noisy, 3, 0, |p| {
        idx.push(p.step);
        true
    })
    .unwrap();
    assert_eq!(idx, vec![7, 8, 9, 10]);
}

#[test]
fn cancel_from_another_thread() {
    let ctx = ctx();
    let m = mixture(&ctx);
    let loss = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let g = Guidance::mc(&m.prior, &loss, 4).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Euler, 50)).unwrap();
    let mut x = Tensor::new(&ctx, &[8, 1]).unwrap();
    let handle = ctx.cancel_handle();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let canceller = std::thread::spawn(move || {
        rx.recv().unwrap(); // after the third step
        handle.cancel();
        done_tx.send(()).unwrap();
        handle // dropped on the main thread after the join, or here: both allowed
    });
    let e = s
        .run_with_progress(&mut x, 1, 0, |p| {
            if p.step == 3 {
                tx.send(()).unwrap();
                done_rx.recv().unwrap(); // the cancel request is in before the next step
            }
            true
        })
        .unwrap_err();
    assert_eq!(e.status(), Status::Aborted);
    assert!(e.message().contains("cancel"), "{e}");
    assert_eq!(s.step_index(), 3);
    let handle = canceller.join().unwrap();
    handle.reset();
    while !s.is_done() {
        s.step(&mut x).unwrap(); // the run goes on once the request is withdrawn
    }
    // the same bytes as an uninterrupted run
    let mut y = Tensor::new(&ctx, &[8, 1]).unwrap();
    s.run(&mut y, 1, 0).unwrap();
    assert_eq!(bits(&x.to_vec().unwrap()), bits(&y.to_vec().unwrap()));
    drop(ctx);
    std::thread::spawn(move || drop(handle)).join().unwrap();
}

#[test]
fn conditional_guidance_and_context_cancel() {
    let ctx = ctx();
    // D(x, sigma | c) = x + c (a closure model with one condition value per row)
    let model = lgd::Model::from_closures(
        &ctx,
        lgd::DenoiserClosures::new(1, |inp, out| {
            let c = inp.cond.ok_or("no condition rows")?;
            for (i, o) in out.iter_mut().enumerate() {
                *o = inp.x[i] + c[i];
            }
            Ok(())
        })
        .cond_dim(1),
    )
    .unwrap();
    let g = Guidance::none(&model).unwrap();
    let x = xs(&ctx, &[1.0, 2.0]);
    let mut out = Tensor::new(&ctx, &[2, 1]).unwrap();
    let e = g.denoise(&x, 1.0, 0, 0, &mut out).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("no condition rows"), "{e}");
    let c = Tensor::from_slice(&ctx, &[2, 1], &[10.0, 20.0]).unwrap();
    g.set_condition(Some(&c)).unwrap();
    drop(c); // copied
    g.denoise(&x, 1.0, 0, 0, &mut out).unwrap();
    assert_eq!(out.to_vec().unwrap(), vec![11.0, 22.0]);
    // condition rows that are not the batch
    let x3 = xs(&ctx, &[1.0, 2.0, 3.0]);
    let mut out3 = Tensor::new(&ctx, &[3, 1]).unwrap();
    assert_eq!(g.denoise(&x3, 1.0, 0, 0, &mut out3).unwrap_err().status(), Status::ShapeMismatch);
    g.set_condition(None).unwrap();
    assert_eq!(g.denoise(&x, 1.0, 0, 0, &mut out).unwrap_err().status(), Status::Callback);
    // an unconditional model refuses a condition
    let m = mixture(&ctx);
    let c = Tensor::from_slice(&ctx, &[2, 1], &[1.0, 2.0]).unwrap();
    assert_eq!(
        Guidance::none(&m.prior).unwrap().set_condition(Some(&c)).unwrap_err().status(),
        Status::InvalidArgument
    );
    // Context::cancel on the owning thread: the next step is refused until the reset
    let g = Guidance::none(&m.prior).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Euler, 4)).unwrap();
    let mut x = Tensor::zeros_2d(&ctx, 3, 1).unwrap();
    s.init(&mut x, 0, 0).unwrap();
    ctx.cancel();
    assert_eq!(s.step(&mut x).unwrap_err().status(), Status::Aborted);
    ctx.reset_cancel();
    s.step(&mut x).unwrap();
    assert_eq!(s.step_index(), 1);
}

#[test]
fn posterior_draws_have_the_posterior_moments() {
    // N(M, S^2) observed at sigma: p(x0 | x) = N(D(x, sigma), S^2 sigma^2 / (S^2 + sigma^2))
    let ctx = ctx();
    let (mu, s, sigma, x0) = (0.5f64, 0.4f64, 0.3f64, 1.0f64);
    let m = lgd::Model::gaussian_mixture(
        &ctx,
        1,
        &[1.0],
        &[mu as f32],
        lgd::Covariance::Isotropic(&[(s * s) as f32]),
    )
    .unwrap();
    let x = xs(&ctx, &[x0 as f32]);
    let n = 20000;
    let mut draws = Tensor::new(&ctx, &[1, n, 1]).unwrap();
    m.sample_posterior(&x, sigma as f32, 42, 0, &mut draws).unwrap();
    let d = draws.to_vec().unwrap();
    let mean = d.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = d.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let (v2, s2) = (sigma * sigma, s * s);
    let want_mean = (s2 * x0 + v2 * mu) / (s2 + v2);
    let want_var = s2 * v2 / (s2 + v2);
    // 5 standard errors
    assert!((mean - want_mean).abs() < 5.0 * (want_var / n as f64).sqrt(), "mean {mean} vs {want_mean}");
    assert!((var - want_var).abs() < 5.0 * want_var * (2.0 / n as f64).sqrt(), "var {var} vs {want_var}");
    // the same seed, the same draws; the rows are keyed by first_row
    let mut again = Tensor::new(&ctx, &[1, n, 1]).unwrap();
    m.sample_posterior(&x, sigma as f32, 42, 0, &mut again).unwrap();
    assert_eq!(again.to_vec().unwrap(), d);
    m.sample_posterior(&x, sigma as f32, 42, 1, &mut again).unwrap();
    assert_ne!(again.to_vec().unwrap(), d);
}
