//! Losses: the built-ins against their formulas, Rust closures (bitwise the built-in
//! logistic, draws, errors, panics, NaN, unwritten outputs, re-entrancy), wrong sizes.
mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{ctx, logistic_fn, sigmoid, softplus};
use lgd::{
    Context, Guidance, GuidanceKind, GuidanceOptions, Loss, ObstacleOptions, Status, Tensor, TrajectoryLayout,
};

fn close(a: f32, b: f64, tol: f64) -> bool {
    (a as f64 - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn squared_error_shared_and_per_row_targets() {
    let ctx = ctx();
    let l = Loss::squared_error(&ctx, 2, &[1.0, 2.0], Some(&[1.0, 0.5])).unwrap();
    assert_eq!(l.dim(), 2);
    let x = [0.0f32, 0.0, 3.0, -1.0];
    let (v, g) = l.eval_slice(&x).unwrap();
    assert_eq!(v, vec![1.0 + 0.5 * 4.0, 4.0 + 0.5 * 9.0]);
    assert_eq!(g, vec![-2.0, -2.0, 4.0, -3.0]);
    let per_row = Loss::squared_error(&ctx, 2, &[0.0, 0.0, 3.0, -1.0], None).unwrap();
    assert_eq!(per_row.eval_slice(&x).unwrap().0, vec![0.0, 0.0]);
    // two target rows against a batch of three: the library refuses the evaluation
    let e = per_row.eval_slice(&[0.0; 6]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("target rows"), "{e}");
}

#[test]
fn linear_logistic_and_sum() {
    let ctx = ctx();
    let h = [1.0f32, 0.0, 2.0, -1.0, 1.0, 0.5];
    let y = [0.5f32, -1.0];
    let s = 0.5f32;
    let lin = Loss::linear(&ctx, 3, &h, &y, s).unwrap();
    let x = [0.3f32, -0.7, 1.1];
    let (v, g) = lin.eval_slice(&x).unwrap();
    let hx = [h[0] * x[0] + h[1] * x[1] + h[2] * x[2], h[3] * x[0] + h[4] * x[1] + h[5] * x[2]];
    let r = [hx[0] as f64 - y[0] as f64, hx[1] as f64 - y[1] as f64];
    let s2 = (s * s) as f64;
    assert!(close(v[0], (r[0] * r[0] + r[1] * r[1]) / (2.0 * s2), 1e-6));
    for j in 0..3 {
        assert!(close(g[j], (h[j] as f64 * r[0] + h[3 + j] as f64 * r[1]) / s2, 1e-5), "grad {j}");
    }
    let a = [1.0f32, -2.0];
    let lg = Loss::logistic(&ctx, &a, 0.5).unwrap();
    let (v, g) = lg.eval_slice(&[0.4, 0.9]).unwrap();
    let z = 0.5 + 0.4 - 1.8f64;
    assert!(close(v[0], (1.0 + (-z).exp()).ln(), 1e-6));
    let sg = -1.0 / (1.0 + z.exp());
    assert!(close(g[0], sg * 1.0, 1e-6) && close(g[1], sg * -2.0, 1e-6));
    let sq = Loss::squared_error(&ctx, 2, &[0.0, 0.0], None).unwrap();
    let sum = Loss::sum(&[&sq, &lg], Some(&[2.0, -1.0])).unwrap();
    let (sv, sgr) = sum.eval_slice(&[0.4, 0.9]).unwrap();
    let (qv, qg) = sq.eval_slice(&[0.4, 0.9]).unwrap();
    assert!(close(sv[0], 2.0 * qv[0] as f64 - v[0] as f64, 1e-6));
    assert!(close(sgr[1], 2.0 * qg[1] as f64 - g[1] as f64, 1e-6));
    drop(sq); // the sum keeps its own references
    assert_eq!(sum.eval_slice(&[0.4, 0.9]).unwrap().0, sv);
}

#[test]
fn path_and_obstacle_losses() {
    let ctx = ctx();
    let layout = TrajectoryLayout::new(3);
    assert!(layout.velocities && layout.frame_stride == 2 && layout.velocity_scale == 1.0);
    let path = [1.0f32, 0.0, 2.0, 0.0, 3.0, 1.0];
    let l = Loss::path(&ctx, 6, &layout, &path).unwrap();
    let v = [1.0f32, 0.5, 0.5, 0.0, 1.0, 0.0]; // positions (1, .5), (1.5, .5), (2.5, .5)
    let (val, g) = l.eval_slice(&v).unwrap();
    let pos = [(1.0, 0.5), (1.5, 0.5), (2.5, 0.5)];
    let want: f64 = (0..3)
        .map(|t| (path[2 * t] as f64 - pos[t].0).powi(2) + (path[2 * t + 1] as f64 - pos[t].1).powi(2))
        .sum();
    assert!(close(val[0], want, 1e-6), "{} vs {want}", val[0]);
    // d/dv_s = sum_{t >= s} -2 (y_t - p_t)
    for s in 0..3 {
        let gx: f64 = (s..3).map(|t| -2.0 * (path[2 * t] as f64 - pos[t].0)).sum();
        assert!(close(g[2 * s], gx, 1e-5), "grad {s}");
    }
    // obstacle: goal term and one obstacle at (0, 0), radius 1, with p_2 at distance 1.05
    let o = ObstacleOptions::default();
    assert_eq!((o.sharpness, o.obstacle_weight, o.goal_weight), (50.0, 100.0, 1.0));
    let positions = TrajectoryLayout { velocities: false, ..TrajectoryLayout::new(3) };
    let ob =
        Loss::obstacle_avoidance(&ctx, 6, &positions, Some(&[2.0, 2.0]), &[[0.0, 0.0, 1.0]], &o).unwrap();
    let x = [5.0f32, 5.0, 6.0, 6.0, 1.05, 0.0];
    let (val, _) = ob.eval_slice(&x).unwrap();
    let sig = |t: f64| 1.0 / (1.0 + (-t).exp());
    let coll: f64 = [(5.0f64, 5.0f64), (6.0, 6.0), (1.05, 0.0)]
        .iter()
        .map(|(px, py)| 100.0 * sig(-((px * px + py * py) - 1.0) * 50.0))
        .sum();
    let want = (2.0 - 1.05f64).powi(2) + 4.0 + coll;
    assert!(close(val[0], want, 1e-5), "{} vs {want}", val[0]);
    let e = Loss::obstacle_avoidance(&ctx, 6, &positions, None, &[], &o).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument); // neither goal nor obstacles
    let e = Loss::path(&ctx, 6, &layout, &path[..5]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    let e = Loss::path(&ctx, 4, &layout, &path).unwrap_err(); // 3 frames do not fit in 4
    assert_eq!(e.status(), Status::ShapeMismatch);
}

#[test]
fn closure_logistic_is_bitwise_the_builtin() {
    let ctx = ctx();
    let (a, b) = (-50.0f32, 0.0f32);
    let builtin = Loss::logistic(&ctx, &[a], b).unwrap();
    let rust = Loss::from_fn(&ctx, 1, logistic_fn(vec![a], b)).unwrap();
    let xs: Vec<f32> = (0..4001).map(|i| -4.0 + i as f32 * 0.002).collect();
    let (bv, bg) = builtin.eval_slice(&xs).unwrap();
    let (rv, rg) = rust.eval_slice(&xs).unwrap();
    assert_eq!(common::bits(&rv), common::bits(&bv));
    assert_eq!(common::bits(&rg), common::bits(&bg));
    // and in more dimensions
    let a3 = vec![0.5f32, -1.5, 2.0];
    let b3 = Loss::logistic(&ctx, &a3, 0.25).unwrap();
    let r3 = Loss::from_fn(&ctx, 3, logistic_fn(a3, 0.25)).unwrap();
    let x3: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let (rv3, rg3) = r3.eval_slice(&x3).unwrap();
    let (bv3, bg3) = b3.eval_slice(&x3).unwrap();
    assert_eq!(common::bits(&rv3), common::bits(&bv3));
    assert_eq!(common::bits(&rg3), common::bits(&bg3));
    // dim 11: a full block of eight partial sums and a remainder of three
    let a11: Vec<f32> = (0..11).map(|j| (j as f32 * 0.71 + 0.3).cos() * 1.7).collect();
    let b11 = Loss::logistic(&ctx, &a11, -0.375).unwrap();
    let r11 = Loss::from_fn(&ctx, 11, logistic_fn(a11, -0.375)).unwrap();
    let x11: Vec<f32> = (0..11 * 200).map(|i| (i as f32 * 0.113).sin() * 4.0).collect();
    let (rv11, rg11) = r11.eval_slice(&x11).unwrap();
    let (bv11, bg11) = b11.eval_slice(&x11).unwrap();
    assert_eq!(common::bits(&rv11), common::bits(&bv11));
    assert_eq!(common::bits(&rg11), common::bits(&bg11));
    // rows where the order of the double additions shows (1 + 2^60 = 2^60 in double):
    // the kernel's eight partial sums (element j to sum j % 8) added in its fixed tree
    // give a . x = 1 and 0, one running sum over j would give 0 and 1
    let p = 2f32.powi(60);
    let ones = vec![1.0f32; 11];
    let xo = [
        [1.0, 0.0, p, -p, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, -p, 0.0, 0.0, 0.0, 0.0, 0.0, p, 0.0, 1.0],
    ]
    .concat();
    let bo = Loss::logistic(&ctx, &ones, 0.0).unwrap();
    let ro = Loss::from_fn(&ctx, 11, logistic_fn(ones, 0.0)).unwrap();
    let (bvo, bgo) = bo.eval_slice(&xo).unwrap();
    assert_eq!(bvo, vec![softplus(-1.0), softplus(0.0)]);
    let (rvo, rgo) = ro.eval_slice(&xo).unwrap();
    assert_eq!(common::bits(&rvo), common::bits(&bvo));
    assert_eq!(common::bits(&rgo), common::bits(&bgo));
    // t = x (a = -1, b = 0) over both tails: underflow of exp(-|t|), the clamp at 104, +-0
    let mut xt: Vec<f32> = (0..2001).map(|i| -120.0 + i as f32 * 0.12).collect();
    xt.extend([0.0, -0.0, 1e-30, -1e-30, 103.99, 104.0, 104.01, -104.0, 1e30, -1e30]);
    let bt = Loss::logistic(&ctx, &[-1.0], 0.0).unwrap();
    let rt = Loss::from_fn(&ctx, 1, logistic_fn(vec![-1.0], 0.0)).unwrap();
    let (rvt, rgt) = rt.eval_slice(&xt).unwrap();
    let (bvt, bgt) = bt.eval_slice(&xt).unwrap();
    assert_eq!(common::bits(&rvt), common::bits(&bvt));
    assert_eq!(common::bits(&rgt), common::bits(&bgt));
    assert_eq!(softplus(0.0), std::f32::consts::LN_2);
    assert_eq!(sigmoid(0.0), 0.5);
}

#[test]
fn draws_closure_sees_every_draw_once() {
    let ctx = ctx();
    let m = common::mixture(&ctx);
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c2 = calls.clone();
    let mut inner = logistic_fn(vec![m.a], m.b);
    let l = Loss::from_draws_fn(&ctx, 1, move |inp, loss, grad| {
        c2.borrow_mut().push((inp.batch, inp.n, inp.first_draw, inp.total_draws));
        inner(inp.x, loss, grad)
    })
    .unwrap();
    l.eval_slice(&[0.1, 0.2, 0.3]).unwrap();
    assert_eq!(calls.borrow().as_slice(), &[(3, 1, 0, 1)]);
    calls.borrow_mut().clear();
    let mut o = GuidanceOptions::new(GuidanceKind::Mc, 40);
    o.chunk_size = 16;
    let g = Guidance::new(&m.prior, Some(&l), &o).unwrap();
    let x = Tensor::from_slice(&ctx, &[2, 1], &[0.5, -0.5]).unwrap();
    let mut out = Tensor::new(&ctx, &[2, 1]).unwrap();
    g.term(&x, 1.0, 0, 0, &mut out, None).unwrap();
    assert_eq!(calls.borrow().as_slice(), &[(2, 16, 0, 40), (2, 16, 16, 40), (2, 8, 32, 40)]);
}

#[test]
fn wrong_sizes_are_errors_not_crashes() {
    let ctx = ctx();
    let e = Loss::squared_error(&ctx, 2, &[1.0, 2.0, 3.0], None).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("target has 3 values"), "{e}");
    let e = Loss::squared_error(&ctx, 2, &[1.0, 2.0], Some(&[1.0])).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert_eq!(Loss::linear(&ctx, 3, &[1.0; 5], &[0.0], 1.0).unwrap_err().status(), Status::ShapeMismatch);
    assert_eq!(Loss::linear(&ctx, 3, &[1.0; 6], &[0.0; 3], 1.0).unwrap_err().status(), Status::ShapeMismatch);
    assert_eq!(Loss::logistic(&ctx, &[], 0.0).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(Loss::sum(&[], None).unwrap_err().status(), Status::InvalidArgument);
    let l = Loss::logistic(&ctx, &[1.0, 1.0], 0.0).unwrap();
    assert_eq!(Loss::sum(&[&l], Some(&[1.0, 2.0])).unwrap_err().status(), Status::ShapeMismatch);
    let x = Tensor::new(&ctx, &[4, 3]).unwrap();
    let mut out = Tensor::new(&ctx, &[4]).unwrap();
    let e = l.eval(&x, &mut out, None).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("last dimension is 3") && e.message().contains("dim 2"), "{e}");
    let x = Tensor::new(&ctx, &[4, 2]).unwrap();
    let mut short = Tensor::new(&ctx, &[3]).unwrap();
    assert_eq!(l.eval(&x, &mut short, None).unwrap_err().status(), Status::ShapeMismatch);
    let e = Loss::logistic(&ctx, &[f32::NAN], 0.0).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    let e = Loss::from_fn(&ctx, 0, |_, _, _| Ok(())).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
}

#[test]
fn closure_failures_become_errors() {
    let ctx = ctx();
    let err = Loss::from_fn(&ctx, 1, |x, _, _| Err(format!("cannot score {} rows", x.len()).into())).unwrap();
    let e = err.eval_slice(&[1.0, 2.0]).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(
        e.message().starts_with("callback loss: eval returned 1")
            && e.message().ends_with("cannot score 2 rows"),
        "{e}"
    );
    let panics = Loss::from_fn(&ctx, 1, |_, _, _| panic!("loss exploded")).unwrap();
    let e = panics.eval_slice(&[1.0]).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("the closure panicked: loss exploded"), "{e}");
    let nan = Loss::from_fn(&ctx, 1, |_, loss, grad| {
        loss.fill(f32::NAN);
        if let Some(g) = grad {
            g.fill(0.0);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(nan.eval_slice(&[1.0]).unwrap_err().status(), Status::NonFinite);
    // check_callback_outputs (on in common::ctx): an output left unwritten is named
    let lazy = Loss::from_fn(&ctx, 1, |_, loss, _| {
        loss[0] = 1.0; // forgets the rest and the gradient
        Ok(())
    })
    .unwrap();
    let e = lazy.eval_slice(&[1.0, 2.0]).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("unwritten"), "{e}");
    // a panic inside guidance, too
    let m = common::mixture(&ctx);
    let g = Guidance::mc(&m.prior, &panics, 4).unwrap();
    let x = Tensor::from_slice(&ctx, &[1, 1], &[0.0]).unwrap();
    let mut out = Tensor::new(&ctx, &[1, 1]).unwrap();
    let e = g.term(&x, 1.0, 0, 0, &mut out, None).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("loss exploded"), "{e}");
}

#[test]
fn closures_may_not_call_their_own_context_but_may_use_another() {
    let ctx = ctx();
    let same = Loss::squared_error(&ctx, 1, &[0.0], None).unwrap();
    let reentrant = Loss::from_fn(&ctx, 1, move |x, loss, grad| {
        let (v, g) = same.eval_slice(x)?; // refused: the library is mid-call on ctx
        loss.copy_from_slice(&v);
        if let Some(gr) = grad {
            gr.copy_from_slice(&g);
        }
        Ok(())
    })
    .unwrap();
    let e = reentrant.eval_slice(&[1.0]).unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("inside a closure"), "{e}");
    // a loss on a context of its own is fine
    let other = Context::cpu().unwrap();
    let theirs = Loss::squared_error(&other, 1, &[0.0], None).unwrap();
    let delegating = Loss::from_fn(&ctx, 1, move |x, loss, grad| {
        let (v, g) = theirs.eval_slice(x)?;
        loss.copy_from_slice(&v);
        if let Some(gr) = grad {
            gr.copy_from_slice(&g);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(delegating.eval_slice(&[3.0]).unwrap(), (vec![9.0], vec![6.0]));
    // after the refused call the context works again
    assert_eq!(Loss::squared_error(&ctx, 1, &[0.0], None).unwrap().eval_slice(&[2.0]).unwrap().0, vec![4.0]);
}

/// The closure of the crate documentation's example (src/lib.rs) is the logistic loss
/// with a = -50, b = 0, and keeps the component at -1.
#[test]
fn the_documented_example_loss() {
    let ctx = ctx();
    let doc = Loss::from_fn(&ctx, 1, |x, loss, mut grad| {
        for (i, &xi) in x.iter().enumerate() {
            let t = 50.0 * xi;
            loss[i] = t.max(0.0) + (-t.abs()).exp().ln_1p();
            if let Some(g) = grad.as_deref_mut() {
                g[i] = 50.0 / (1.0 + (-t).exp()); // 50 sigmoid(t)
            }
        }
        Ok(())
    })
    .unwrap();
    let builtin = Loss::logistic(&ctx, &[-50.0], 0.0).unwrap();
    let xs: Vec<f32> = (0..801).map(|i| -2.0 + i as f32 * 0.005).collect();
    let (dv, dg) = doc.eval_slice(&xs).unwrap();
    let (bv, bg) = builtin.eval_slice(&xs).unwrap();
    assert!(common::rel_err(&dv, &bv) < 1e-6 && common::rel_err(&dg, &bg) < 1e-6);
    let m = common::mixture(&ctx);
    let g = Guidance::mc(&m.prior, &doc, 100).unwrap();
    let mut s = lgd::Sampler::new(&g, &lgd::SamplerOptions::new(lgd::SamplerKind::Ddim, 20)).unwrap();
    let v = s.sample(1000, 0).unwrap();
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / 1000.0;
    assert!((mean + 1.0).abs() < 0.1, "mean {mean}");
}
