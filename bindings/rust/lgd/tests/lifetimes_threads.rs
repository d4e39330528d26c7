//! Ownership: the context dropped before its objects, closures freed exactly when the
//! library drops the last reference (and on a failed create), clones, wrapped slices.
//! Threads: one context per thread gives the single-thread bytes; what is Send.
mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{bits, logistic_fn, mixture};
use lgd::{
    AdapterOptions, CancelHandle, Context, DenoiserClosures, Guidance, GuidanceKind, GuidanceOptions, Loss,
    Model, NetworkClosures, Sampler, SamplerKind, SamplerOptions, Status, Tensor,
};

/// Sets its flag when dropped: tells when a closure that owns it was freed.
struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn flag() -> (Rc<Cell<bool>>, DropFlag) {
    let f = Rc::new(Cell::new(false));
    (f.clone(), DropFlag(f))
}

fn reference_samples() -> Vec<f32> {
    let ctx = Context::cpu().unwrap();
    let m = mixture(&ctx);
    let loss = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let g = Guidance::mc(&m.prior, &loss, 10).unwrap();
    Sampler::new(&g, &SamplerOptions::new(SamplerKind::Ddim, 20)).unwrap().sample(64, 5).unwrap()
}

#[test]
fn context_and_objects_dropped_before_the_sampler() {
    let want = reference_samples();
    let ctx = Context::cpu().unwrap();
    let m = mixture(&ctx);
    let (freed, f) = flag();
    let mut inner = logistic_fn(vec![m.a], m.b);
    let loss = Loss::from_fn(&ctx, 1, move |x, l, g| {
        let _keep = &f;
        inner(x, l, g)
    })
    .unwrap();
    let g = Guidance::mc(&m.prior, &loss, 10).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Ddim, 20)).unwrap();
    drop(ctx);
    drop(m);
    drop(loss);
    assert!(!freed.get(), "the guidance still holds the loss");
    drop(g);
    assert!(!freed.get(), "the sampler still holds the guidance");
    assert_eq!(bits(&s.sample(64, 5).unwrap()), bits(&want));
    drop(s);
    assert!(freed.get(), "the closure is freed with the last reference");
}

#[test]
fn closures_are_freed_on_a_failed_create() {
    let ctx = Context::cpu().unwrap();
    let (freed, f) = flag();
    // a discrete time input without alphas_cumprod: the library refuses the create, does
    // not call the destroy callback, and the binding frees the closure itself
    let net = NetworkClosures::new(2, move |_, out| {
        let _keep = &f;
        out.fill(0.0);
        Ok(())
    });
    let e = Model::from_network_closures(&ctx, net, &AdapterOptions::default()).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(freed.get());
    // and a denoiser's closures when the model goes
    let (freed, f) = flag();
    let model = Model::from_closures(
        &ctx,
        DenoiserClosures::new(1, move |inp, out| {
            let _keep = &f;
            out.copy_from_slice(inp.x);
            Ok(())
        }),
    )
    .unwrap();
    let clone = model.clone();
    drop(model);
    assert_eq!(clone.denoise_slice(&[1.5], 1.0).unwrap(), vec![1.5]);
    assert!(!freed.get());
    drop(clone);
    assert!(freed.get());
}

#[test]
fn radius_closure_lives_as_long_as_the_sampler() {
    let ctx = Context::cpu().unwrap();
    let m = mixture(&ctx);
    let loss = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let (freed, f) = flag();
    // the closure returns the default radius, as a default guidance on a context of its
    // own computes it (another context may be used from inside a closure)
    let other = Context::cpu().unwrap();
    let om = mixture(&other);
    let ol = Loss::logistic(&other, &[om.a], om.b).unwrap();
    let default = Guidance::mc(&om.prior, &ol, 10).unwrap();
    let mut o = GuidanceOptions::new(GuidanceKind::Mc, 10);
    o.radius = Some(Rc::new(move |s: f32| {
        let _keep = &f;
        default.radius(s)
    }));
    let g = Guidance::new(&m.prior, Some(&loss), &o).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Ddim, 20)).unwrap();
    drop(o);
    drop(g);
    assert!(!freed.get());
    // the closure computes the default radius: the default's samples
    assert_eq!(bits(&s.sample(64, 5).unwrap()), bits(&reference_samples()));
    drop(s);
    assert!(freed.get());
}

#[test]
fn sampling_into_a_wrapped_slice() {
    let ctx = Context::cpu().unwrap();
    let m = mixture(&ctx);
    let loss = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let g = Guidance::mc(&m.prior, &loss, 10).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Ddim, 20)).unwrap();
    let mut buf = vec![0.0f32; 64];
    {
        let mut x = Tensor::wrap(&ctx, &[64, 1], &mut buf).unwrap();
        s.run(&mut x, 5, 0).unwrap();
    }
    assert_eq!(bits(&buf), bits(&reference_samples()));
    let mut x = Tensor::from_vec(&ctx, &[64, 1], vec![0.0; 64]).unwrap();
    s.run(&mut x, 5, 0).unwrap();
    assert_eq!(bits(x.as_slice().unwrap()), bits(&buf));
}

#[test]
fn one_context_per_thread_gives_the_same_bytes() {
    let want = reference_samples();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                // everything of this thread's context is made and dropped here
                let mut o = lgd::ContextOptions::default();
                o.num_threads = 1 + i % 2;
                let ctx = Context::with_options(&o).unwrap();
                let m = mixture(&ctx);
                let loss = Loss::from_fn(&ctx, 1, logistic_fn(vec![m.a], m.b)).unwrap();
                let g = Guidance::mc(&m.prior, &loss, 10).unwrap();
                let mut s = Sampler::new(&g, &SamplerOptions::new(SamplerKind::Ddim, 20)).unwrap();
                (0..3).map(|_| s.sample(64, 5).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for run in t.join().unwrap() {
            assert_eq!(bits(&run), bits(&want));
        }
    }
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn cancel_handles_cross_threads() {
    assert_send_sync::<CancelHandle>();
    assert_send_sync::<lgd::Error>();
    let ctx = Context::cpu().unwrap();
    let h = ctx.cancel_handle();
    let h2 = h.clone();
    std::thread::spawn(move || h2.cancel()).join().unwrap();
    let m = mixture(&ctx);
    let g = Guidance::none(&m.prior).unwrap();
    let mut s = Sampler::new(&g, &SamplerOptions::default()).unwrap();
    let e = s.sample(4, 0).unwrap_err();
    assert_eq!(e.status(), Status::Aborted);
    h.reset();
    s.sample(4, 0).unwrap();
    // the handle may hold the last reference to the context and free it on its thread
    drop((s, g, m, ctx));
    std::thread::spawn(move || drop(h)).join().unwrap();
}

/// Fails to compile when $t implements $trait (the static_assertions crate's trick: the
/// call is ambiguous between the two impls exactly when the bound holds).
macro_rules! assert_not_impl {
    ($t:ty, $trait:path) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            #[allow(dead_code)]
            struct Invalid;
            impl<T: ?Sized + $trait> AmbiguousIfImpl<Invalid> for T {}
            let _ = <$t as AmbiguousIfImpl<_>>::some_item;
        };
    };
}

// The thread contract: everything of one context on one thread at a time, so no handle
// but CancelHandle may cross threads on its own (checked when this file compiles).
assert_not_impl!(Context, Send);
assert_not_impl!(Context, Sync);
assert_not_impl!(Tensor<'static>, Send);
assert_not_impl!(Tensor<'static>, Sync);
assert_not_impl!(Model, Send);
assert_not_impl!(Model, Sync);
assert_not_impl!(Loss, Send);
assert_not_impl!(Loss, Sync);
assert_not_impl!(Guidance, Send);
assert_not_impl!(Guidance, Sync);
assert_not_impl!(Sampler, Send);
assert_not_impl!(Sampler, Sync);
assert_not_impl!(lgd::Network, Send);
assert_not_impl!(lgd::Network, Sync);
