//! Safe Rust API of liblgd: loss-guided diffusion (Song et al., "Loss-Guided Diffusion
//! Models for Plug-and-Play Controllable Generation", ICML 2023).
//!
//! Sample from p0(x0) exp(-l(x0)) / Z with a pretrained denoiser (a [`Model`]) and a
//! differentiable loss of your own (a [`Loss`], built in or a Rust closure), without
//! retraining: a [`Guidance`] estimates the guidance term, a [`Sampler`] integrates.
//!
//! ```no_run
//! use lgd::{Context, Covariance, Guidance, Loss, Model, Sampler, SamplerKind, SamplerOptions};
//!
//! # fn main() -> lgd::Result<()> {
//! let ctx = Context::cpu()?;
//! // prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)
//! let prior = Model::gaussian_mixture(&ctx, 1, &[0.5, 0.5], &[-1.0, 1.0],
//!                                     Covariance::Isotropic(&[0.04, 0.04]))?;
//! // a loss written in Rust: l(x) = softplus(50 x) = -log sigmoid(-50 x), which keeps
//! // the component at -1
//! let loss = Loss::from_fn(&ctx, 1, |x, loss, mut grad| {
//!     for (i, &xi) in x.iter().enumerate() {
//!         let t = 50.0 * xi;
//!         loss[i] = t.max(0.0) + (-t.abs()).exp().ln_1p();
//!         if let Some(g) = grad.as_deref_mut() {
//!             g[i] = 50.0 / (1.0 + (-t).exp()); // 50 sigmoid(t)
//!         }
//!     }
//!     Ok(())
//! })?;
//! let guidance = Guidance::mc(&prior, &loss, 100)?;
//! let mut sampler = Sampler::new(&guidance, &SamplerOptions::new(SamplerKind::Ddim, 20))?;
//! let samples = sampler.sample(1000, 0)?;
//! # Ok(()) }
//! ```
//!
//! # Errors
//! Every fallible call returns [`Result<T>`](Result) with an [`Error`]: the [`Status`]
//! and the context's message (`lgd_context_last_error()`), e.g. "lgd_loss_eval: x's
//! last dimension is 3 but the loss has dim 2". Slices whose lengths do not fit are
//! refused before the library is called ([`Status::ShapeMismatch`]).
//!
//! # Closures
//! Losses ([`Loss::from_fn`], [`Loss::from_draws_fn`]), denoisers
//! ([`Model::from_closures`]), networks ([`Model::from_network_closures`]), the MC
//! radius ([`GuidanceOptions::radius`]), progress ([`Sampler::run_with_progress`]) and
//! log sinks ([`ContextOptions::log`]) are Rust closures. A closure returns
//! [`CallbackResult`]; an `Err` or a panic is caught (nothing unwinds into C), reported
//! with `lgd_context_set_callback_error()`, and the library call that ran it fails with
//! [`Status::Callback`] and the closure's message. Closures given to objects are freed
//! by the object's destroy callback, when the library drops its last reference. While a
//! closure runs, the library is in the middle of a call on its context: this crate then
//! refuses every call on that context's objects except getters ([`Status::State`]), which
//! would be undefined behaviour in C; other contexts may be used freely.
//!
//! # Ownership and lifetimes
//! Handles are reference counted: every object holds its context (and a guidance its
//! model and loss, a sampler its guidance), so they may be dropped in any order, the
//! [`Context`] first included. [`Model`], [`Loss`], [`Guidance`], [`Network`] and
//! [`Context`] are `Clone` through the retain functions (another handle to the same
//! object); [`Tensor`] and [`Sampler`] are not. A [`Tensor<'a>`](Tensor) made with
//! [`Tensor::wrap`] borrows the caller's slice for `'a`.
//!
//! # Threads
//! liblgd's thread contract (`<lgd/lgd.h>`): different contexts are independent; a
//! context and everything made from it are used by one thread at a time; retain and
//! destroy work from any thread; `lgd_context_cancel()` from any thread. So the handles
//! here are neither `Send` nor `Sync` (one object moving to another thread while its
//! context stays would break the contract): for parallel work create one [`Context`]
//! per thread, inside the thread, with its own objects; the same seed gives the same
//! bytes on every thread. The exception is [`CancelHandle`] (`Send + Sync`), which
//! stops a context's calls from any thread. Closures need not be `Send`: they run, and
//! are freed, on the thread that owns their context; log closures are `Send + Sync`
//! because a `CancelHandle` may free the context (and log) on its own thread.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

mod callback;
mod context;
mod error;
mod guidance;
mod loss;
mod model;
mod network;
mod operator;
mod sampler;
pub mod schedule;
mod tensor;
mod trajectory;
mod util;

pub use callback::CallbackResult;
pub use context::{version, version_string, Backend, CancelHandle, Context, ContextOptions, LogLevel};
pub use error::{Error, Result, Status};
pub use guidance::{Guidance, GuidanceKind, GuidanceOptions, RadiusFn, Report, RowReport, StepRule};
pub use loss::{Loss, LossInput, NetworkLossInput, NetworkLossKind, NetworkLossOptions};
pub use model::{Covariance, DenoiserClosures, Model, ModelInput, NetworkClosures, NetworkInput};
pub use network::{AdapterOptions, Network, Prediction, TimeInput};
pub use operator::{Operator, OperatorKind};
pub use sampler::{Progress, Sampler, SamplerKind, SamplerOptions, ScheduleKind, Start};
pub use tensor::Tensor;
pub use trajectory::{ObstacleOptions, TrajectoryLayout, TrajectoryPriorOptions};

/// The raw declarations (the `lgd-sys` crate).
pub use lgd_sys as sys;

/// docs/rust.md's Rust examples, compiled as doc tests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/rust.md")]
pub struct DocsRustMd;
