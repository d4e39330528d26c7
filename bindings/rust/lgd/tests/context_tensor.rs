//! Contexts (options, errors, logging, memory, versions) and tensors (owned, from a
//! vector, over a slice; shapes; copies; wrong sizes).
mod common;

use std::sync::{Arc, Mutex};

use lgd::{Backend, Context, ContextOptions, LogLevel, Status, Tensor};

#[test]
fn version_matches_the_declarations() {
    let (maj, min, pat) = lgd::version();
    assert_eq!(maj, lgd::sys::LGD_VERSION_MAJOR);
    assert!(maj * 10000 + min * 100 + pat >= lgd::sys::LGD_VERSION_NUMBER);
    assert_eq!(lgd::version_string(), format!("{maj}.{min}.{pat}"));
}

#[test]
fn cpu_context_and_defaults() {
    let ctx = Context::cpu().unwrap();
    assert_eq!(ctx.backend(), Backend::Cpu);
    assert!(ctx.backend_name().starts_with("cpu"), "{}", ctx.backend_name());
    assert_eq!(ctx.last_error(), "");
    assert!(ctx.native_stream().is_null());
    ctx.synchronize().unwrap();
    let o = ContextOptions::default();
    assert_eq!(
        (o.backend, o.num_threads, o.log_level, o.check_callback_outputs),
        (Backend::Cpu, 0, LogLevel::Warning, false)
    );
}

#[test]
fn bad_options_give_the_library_message() {
    let mut o = ContextOptions::default();
    o.num_threads = -1;
    let e = Context::with_options(&o).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("num_threads"), "{e}");
    assert_eq!(e.code(), lgd::sys::LGD_ERR_INVALID_ARGUMENT);
}

#[test]
fn cuda_is_either_there_or_a_clear_error() {
    let mut o = ContextOptions::new(Backend::Cuda);
    o.cuda_module_path = Some("/nonexistent/liblgd-cuda.so".into());
    let e = Context::with_options(&o).unwrap_err();
    assert_eq!(e.status(), Status::BackendUnavailable, "{e}");
    assert!(e.message().len() > "lgd_context_create: ".len(), "{e}");
    // AUTO falls back to the CPU when the module cannot be loaded
    let mut o = ContextOptions::new(Backend::Auto);
    o.cuda_module_path = Some("/nonexistent/liblgd-cuda.so".into());
    assert_eq!(Context::with_options(&o).unwrap().backend(), Backend::Cpu);
}

#[test]
fn log_closure_receives_errors() {
    let seen = Arc::new(Mutex::new(Vec::<(LogLevel, String)>::new()));
    let s = seen.clone();
    let o =
        ContextOptions::default().log(LogLevel::Debug, move |l, m| s.lock().unwrap().push((l, m.to_owned())));
    let ctx = Context::with_options(&o).unwrap();
    // the library logs every error it reports at LGD_LOG_ERROR, with its message
    let e = Tensor::new(&ctx, &[2, 0]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(seen.lock().unwrap().iter().any(|(l, m)| *l == LogLevel::Error && m == e.message()));
    let t = Tensor::new(&ctx, &[2, 3]).unwrap();
    let e = t.download(&mut [0.0; 5]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    let log = seen.lock().unwrap();
    assert!(log.iter().any(|(l, m)| *l == LogLevel::Error && m == e.message()), "log {log:?}, error {e}");
    drop(log);
    drop(t);
    drop(ctx); // the sink outlives the context; nothing logs into freed memory
}

#[test]
fn tensor_owned_shapes_and_copies() {
    let ctx = Context::cpu().unwrap();
    let mut t = Tensor::new(&ctx, &[2, 3, 4]).unwrap();
    assert_eq!((t.ndim(), t.shape(), t.numel(), t.dim(1), t.dim(7)), (3, vec![2, 3, 4], 24, 3, 0));
    assert!(t.to_vec().unwrap().iter().all(|&v| v == 0.0));
    let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
    t.upload(&v).unwrap();
    assert_eq!(t.to_vec().unwrap(), v);
    assert_eq!(t.as_slice().unwrap(), &v[..]);
    t.as_mut_slice().unwrap()[5] = -1.0;
    assert_eq!(t.to_vec().unwrap()[5], -1.0);
    let c = t.try_clone().unwrap();
    assert_eq!(c.to_vec().unwrap(), t.to_vec().unwrap());
    let mut flat = Tensor::new(&ctx, &[24]).unwrap();
    flat.copy_from(&t).unwrap(); // shapes may differ, counts not
    assert_eq!(flat.to_vec().unwrap(), t.to_vec().unwrap());
    flat.fill(2.5).unwrap();
    assert!(flat.to_vec().unwrap().iter().all(|&x| x == 2.5));
    let s = Tensor::from_slice(&ctx, &[3], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(s.to_vec().unwrap(), vec![1.0, 2.0, 3.0]);
}

#[test]
fn tensor_wrong_sizes_are_errors_with_messages() {
    let ctx = Context::cpu().unwrap();
    let mut t = Tensor::new(&ctx, &[2, 3]).unwrap();
    let e = t.upload(&[1.0; 7]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("lgd_tensor_upload") && e.message().contains('7'), "{e}");
    let e = Tensor::new(&ctx, &[1, 1, 1, 1, 1]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    let e = Tensor::from_slice(&ctx, &[2], &[1.0]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    let mut short = [0.0f32; 5];
    let e = Tensor::wrap(&ctx, &[2, 3], &mut short).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    assert!(e.message().contains("Tensor::wrap"), "{e}");
    let e = Tensor::from_vec(&ctx, &[4], vec![0.0; 3]).unwrap_err();
    assert_eq!(e.status(), Status::ShapeMismatch);
    let e = Tensor::new(&ctx, &[i64::MAX, i64::MAX]).unwrap_err();
    assert_eq!(e.status(), Status::OutOfMemory, "{e}");
    let mut a = Tensor::new(&ctx, &[3]).unwrap();
    let b = Tensor::new(&ctx, &[4]).unwrap();
    assert_eq!(a.copy_from(&b).unwrap_err().status(), Status::ShapeMismatch);
}

#[test]
fn tensor_over_a_slice_and_a_vector() {
    let ctx = Context::cpu().unwrap();
    let mut data = vec![1.0f32; 6];
    {
        let mut t = Tensor::wrap(&ctx, &[2, 3], &mut data).unwrap();
        t.fill(4.0).unwrap(); // the library writes the slice in place
    }
    assert_eq!(data, vec![4.0; 6]);
    let v: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let p = v.as_ptr();
    let t = Tensor::from_vec(&ctx, &[3, 2], v).unwrap();
    assert_eq!(t.as_slice().unwrap().as_ptr(), p, "zero-copy on the CPU");
    assert_eq!(t.to_vec().unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    drop(ctx); // the tensor keeps its context; dropping it frees the vector (release)
    assert_eq!(t.context().backend(), Backend::Cpu);
}

#[test]
fn memory_usage_counts_owned_tensors() {
    let ctx = Context::cpu().unwrap();
    let (before, _) = ctx.memory_usage();
    let t = Tensor::new(&ctx, &[1000]).unwrap();
    let (during, peak) = ctx.memory_usage();
    assert!(during >= before + 4000 && peak >= during, "{before} {during} {peak}");
    drop(t);
    assert_eq!(ctx.memory_usage().0, before);
    ctx.reset_peak_memory();
    assert_eq!(ctx.memory_usage().1, before);
}

#[test]
fn clones_share_the_context() {
    let ctx = Context::cpu().unwrap();
    let c2 = ctx.clone();
    assert_eq!(c2.as_raw(), ctx.as_raw());
    let t = Tensor::new(&ctx, &[2]).unwrap();
    let e = t.download(&mut [0.0; 1]).unwrap_err();
    assert_eq!(c2.last_error(), e.message());
    c2.clear_error();
    assert_eq!(ctx.last_error(), "");
}
