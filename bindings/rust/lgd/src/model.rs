//! `Model`: denoisers D(x, sigma) ~ E[x0 | x] and their vector-Jacobian products.
use std::cell::RefCell;
use std::ffi::c_void;
use std::path::Path;
use std::ptr::{self, NonNull};

use lgd_sys as sys;

use crate::callback::{drop_box, refuse_aliasing, run_closure, CallbackResult};
use crate::context::Context;
use crate::error::{invalid, Result, Status};
use crate::loss::Loss;
use crate::network::{AdapterOptions, Network};
use crate::tensor::{opt_raw, Tensor};
use crate::trajectory::TrajectoryPriorOptions;
use crate::util::{cstring, len_i64, overlap, path_cstring, positive, rows_of, slice, slice_mut};

/// Covariances of a Gaussian mixture of K components in `dim` dimensions.
#[derive(Debug, Clone, Copy)]
pub enum Covariance<'a> {
    /// K x dim x dim symmetric positive semi-definite matrices.
    Full(&'a [f32]),
    /// K x dim variances >= 0.
    Diagonal(&'a [f32]),
    /// K variances, one per component.
    Isotropic(&'a [f32]),
}

/// What a denoiser closure receives: x [batch][dim] at noise level sigma, and the
/// condition rows [batch][cond_dim] when the call has them.
#[derive(Debug, Clone, Copy)]
pub struct ModelInput<'a> {
    pub x: &'a [f32],
    pub sigma: f32,
    pub cond: Option<&'a [f32]>,
    pub batch: usize,
    pub dim: usize,
}

/// What a network closure receives: x_in = c_in(sigma) x [batch][dim], the time input t,
/// and the condition rows when given.
#[derive(Debug, Clone, Copy)]
pub struct NetworkInput<'a> {
    pub x_in: &'a [f32],
    pub t: f32,
    pub cond: Option<&'a [f32]>,
    pub batch: usize,
    pub dim: usize,
}

type DenoiseFn = dyn FnMut(&ModelInput<'_>, &mut [f32]) -> CallbackResult;
type VjpFn = dyn FnMut(&ModelInput<'_>, &[f32], &mut [f32]) -> CallbackResult;
type ForwardFn = dyn FnMut(&NetworkInput<'_>, &mut [f32]) -> CallbackResult;
type NetVjpFn = dyn FnMut(&NetworkInput<'_>, &[f32], &mut [f32]) -> CallbackResult;

/// A denoiser written in Rust, for [`Model::from_closures`]:
/// `denoise(input, xhat)` writes every element of xhat [batch][dim] = D(x, sigma), and
/// the optional `vjp(input, v, out)` writes out = J^T v (needed by DPS and LGD-MC
/// guidance; liblgd calls it right after `denoise` on the same x and sigma).
pub struct DenoiserClosures {
    dim: i64,
    cond_dim: i64,
    denoise: Box<DenoiseFn>,
    vjp: Option<Box<VjpFn>>,
}

impl std::fmt::Debug for DenoiserClosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenoiserClosures")
            .field("dim", &self.dim)
            .field("cond_dim", &self.cond_dim)
            .field("vjp", &self.vjp.is_some())
            .finish()
    }
}

impl DenoiserClosures {
    /// A denoiser of samples of `dim` floats, unconditional, without a VJP.
    pub fn new(
        dim: i64,
        denoise: impl FnMut(&ModelInput<'_>, &mut [f32]) -> CallbackResult + 'static,
    ) -> Self {
        DenoiserClosures { dim, cond_dim: 0, denoise: Box::new(denoise), vjp: None }
    }
    /// Condition rows of `cond_dim` floats (0: unconditional).
    pub fn cond_dim(mut self, cond_dim: i64) -> Self {
        self.cond_dim = cond_dim;
        self
    }
    /// The vector-Jacobian product.
    pub fn vjp(
        mut self,
        vjp: impl FnMut(&ModelInput<'_>, &[f32], &mut [f32]) -> CallbackResult + 'static,
    ) -> Self {
        self.vjp = Some(Box::new(vjp));
        self
    }
}

/// A raw network F(x_in, t) written in Rust, for [`Model::from_network_closures`]:
/// `forward(input, out)` writes out [batch][dim] = F(x_in, t), the optional
/// `vjp(input, v, out)` out = (dF/dx_in)^T v.
pub struct NetworkClosures {
    dim: i64,
    cond_dim: i64,
    forward: Box<ForwardFn>,
    vjp: Option<Box<NetVjpFn>>,
}

impl std::fmt::Debug for NetworkClosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkClosures")
            .field("dim", &self.dim)
            .field("cond_dim", &self.cond_dim)
            .field("vjp", &self.vjp.is_some())
            .finish()
    }
}

impl NetworkClosures {
    /// A network of rows of `dim` floats, unconditional, without a VJP.
    pub fn new(
        dim: i64,
        forward: impl FnMut(&NetworkInput<'_>, &mut [f32]) -> CallbackResult + 'static,
    ) -> Self {
        NetworkClosures { dim, cond_dim: 0, forward: Box::new(forward), vjp: None }
    }
    /// Condition rows of `cond_dim` floats.
    pub fn cond_dim(mut self, cond_dim: i64) -> Self {
        self.cond_dim = cond_dim;
        self
    }
    /// The vector-Jacobian product.
    pub fn vjp(
        mut self,
        vjp: impl FnMut(&NetworkInput<'_>, &[f32], &mut [f32]) -> CallbackResult + 'static,
    ) -> Self {
        self.vjp = Some(Box::new(vjp));
        self
    }
}

struct DenoiserBox {
    ctx: Context,
    dim: usize,
    cond_dim: usize,
    denoise: RefCell<Box<DenoiseFn>>,
    vjp: Option<RefCell<Box<VjpFn>>>,
}

struct NetworkBox {
    ctx: Context,
    dim: usize,
    cond_dim: usize,
    forward: RefCell<Box<ForwardFn>>,
    vjp: Option<RefCell<Box<NetVjpFn>>>,
}

fn rows(batch: i64, dim: i64) -> (usize, usize) {
    let b = batch.max(0) as usize;
    (b, b * dim.max(0) as usize)
}

unsafe extern "C" fn denoise_tramp(
    user: *mut c_void,
    x: *const f32,
    sigma: f32,
    cond: *const f32,
    batch: i64,
    dim: i64,
    xhat: *mut f32,
) -> i32 {
    // SAFETY: user is the DenoiserBox of this model (alive until its destroy callback);
    // the buffers hold batch * dim (cond: batch * cond_dim) floats during the call.
    let b = unsafe { &*(user as *const DenoiserBox) };
    let (batch, n) = rows(batch, dim);
    let nc = batch * b.cond_dim;
    if let Some(rc) = refuse_aliasing(&b.ctx, overlap(xhat, n, x, n) || overlap(xhat, n, cond, nc)) {
        return rc;
    }
    let input = ModelInput {
        x: unsafe { slice(x, n) },
        sigma,
        cond: (!cond.is_null()).then(|| unsafe { slice(cond, nc) }),
        batch,
        dim: b.dim,
    };
    let out = unsafe { slice_mut(xhat, n) };
    run_closure(&b.ctx, &b.denoise, |f| f(&input, out))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn vjp_tramp(
    user: *mut c_void,
    x: *const f32,
    sigma: f32,
    cond: *const f32,
    batch: i64,
    dim: i64,
    v: *const f32,
    out: *mut f32,
) -> i32 {
    // SAFETY: as denoise_tramp; v and out hold batch * dim floats.
    let b = unsafe { &*(user as *const DenoiserBox) };
    let Some(cell) = &b.vjp else { return 1 };
    let (batch, n) = rows(batch, dim);
    let nc = batch * b.cond_dim;
    if let Some(rc) =
        refuse_aliasing(&b.ctx, overlap(out, n, x, n) || overlap(out, n, v, n) || overlap(out, n, cond, nc))
    {
        return rc;
    }
    let input = ModelInput {
        x: unsafe { slice(x, n) },
        sigma,
        cond: (!cond.is_null()).then(|| unsafe { slice(cond, nc) }),
        batch,
        dim: b.dim,
    };
    let v = unsafe { slice(v, n) };
    let out = unsafe { slice_mut(out, n) };
    run_closure(&b.ctx, cell, |f| f(&input, v, out))
}

unsafe extern "C" fn forward_tramp(
    user: *mut c_void,
    x_in: *const f32,
    t: f32,
    cond: *const f32,
    batch: i64,
    dim: i64,
    out: *mut f32,
) -> i32 {
    // SAFETY: as denoise_tramp, for the NetworkBox.
    let b = unsafe { &*(user as *const NetworkBox) };
    let (batch, n) = rows(batch, dim);
    let nc = batch * b.cond_dim;
    if let Some(rc) = refuse_aliasing(&b.ctx, overlap(out, n, x_in, n) || overlap(out, n, cond, nc)) {
        return rc;
    }
    let input = NetworkInput {
        x_in: unsafe { slice(x_in, n) },
        t,
        cond: (!cond.is_null()).then(|| unsafe { slice(cond, nc) }),
        batch,
        dim: b.dim,
    };
    let out = unsafe { slice_mut(out, n) };
    run_closure(&b.ctx, &b.forward, |f| f(&input, out))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn net_vjp_tramp(
    user: *mut c_void,
    x_in: *const f32,
    t: f32,
    cond: *const f32,
    batch: i64,
    dim: i64,
    v: *const f32,
    out: *mut f32,
) -> i32 {
    let b = unsafe { &*(user as *const NetworkBox) };
    let Some(cell) = &b.vjp else { return 1 };
    let (batch, n) = rows(batch, dim);
    let nc = batch * b.cond_dim;
    if let Some(rc) = refuse_aliasing(
        &b.ctx,
        overlap(out, n, x_in, n) || overlap(out, n, v, n) || overlap(out, n, cond, nc),
    ) {
        return rc;
    }
    let input = NetworkInput {
        x_in: unsafe { slice(x_in, n) },
        t,
        cond: (!cond.is_null()).then(|| unsafe { slice(cond, nc) }),
        batch,
        dim: b.dim,
    };
    let v = unsafe { slice(v, n) };
    let out = unsafe { slice_mut(out, n) };
    run_closure(&b.ctx, cell, |f| f(&input, v, out))
}

/// A denoiser D(x, sigma) with its VJP: a Gaussian mixture, a network from a file, the
/// trajectory prior or Rust closures. `Clone` takes another reference to the same model.
pub struct Model {
    raw: NonNull<sys::lgd_model>,
    ctx: Context,
}

impl Model {
    fn adopt(ctx: &Context, raw: *mut sys::lgd_model) -> Model {
        Model { raw: NonNull::new(raw).expect("liblgd returned LGD_OK without a model"), ctx: ctx.clone() }
    }

    /// An exact Gaussian-mixture prior sum_k w_k N(mu_k, Sigma_k) in `dim` dimensions:
    /// K = weights.len() components (weights > 0, normalised here), means K x dim, the
    /// covariances as [`Covariance`] says.
    pub fn gaussian_mixture(
        ctx: &Context,
        dim: i64,
        weights: &[f32],
        means: &[f32],
        covariances: Covariance<'_>,
    ) -> Result<Model> {
        const W: &str = "Model::gaussian_mixture";
        let d = positive(W, "dim", dim)?;
        let k = weights.len();
        if k == 0 {
            return Err(invalid(Status::InvalidArgument, format!("{W}: no weights (one per component)")));
        }
        let need = |name: &str, got: usize, want: usize| -> Result<()> {
            if got != want {
                return Err(invalid(
                    Status::ShapeMismatch,
                    format!("{W}: {name} has {got} values; {k} components in dim {d} need {want}"),
                ));
            }
            Ok(())
        };
        need("means", means.len(), k * d)?;
        let (cov, layout) = match covariances {
            Covariance::Full(c) => {
                need("the full covariances", c.len(), k * d * d)?;
                (c, sys::LGD_COVARIANCE_FULL)
            }
            Covariance::Diagonal(c) => {
                need("the diagonal covariances", c.len(), k * d)?;
                (c, sys::LGD_COVARIANCE_DIAGONAL)
            }
            Covariance::Isotropic(c) => {
                need("the isotropic variances", c.len(), k)?;
                (c, sys::LGD_COVARIANCE_ISOTROPIC)
            }
        };
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_model_create_gmm(
                ctx.as_raw(),
                dim,
                len_i64(k),
                weights.as_ptr(),
                means.as_ptr(),
                cov.as_ptr(),
                layout,
                &mut raw,
            )
        })?;
        Ok(Model::adopt(ctx, raw))
    }

    /// The paper's trajectory prior (a Gaussian mixture over 2-D root velocities).
    pub fn trajectory_prior(ctx: &Context, options: &TrajectoryPriorOptions) -> Result<Model> {
        let o = options.to_raw();
        let mut raw = ptr::null_mut();
        ctx.call("Model::trajectory_prior", || unsafe {
            sys::lgd_model_create_trajectory_prior(ctx.as_raw(), &o, &mut raw)
        })?;
        Ok(Model::adopt(ctx, raw))
    }

    /// A network file (docs/network-format.md) as a denoiser, with the adapter the file
    /// names (`lgd_model_load()`).
    pub fn load(ctx: &Context, path: impl AsRef<Path>) -> Result<Model> {
        let p = path_cstring("Model::load", path.as_ref())?;
        let mut raw = ptr::null_mut();
        ctx.call("Model::load", || unsafe { sys::lgd_model_load(ctx.as_raw(), p.as_ptr(), &mut raw) })?;
        Ok(Model::adopt(ctx, raw))
    }

    /// A loaded network as a denoiser, with this adapter (`None`: the file's).
    pub fn from_network(network: &Network, adapter: Option<&AdapterOptions>) -> Result<Model> {
        let ctx = network.context();
        let a = adapter.map(|a| a.to_raw());
        let mut raw = ptr::null_mut();
        ctx.call("Model::from_network", || unsafe {
            sys::lgd_model_create_from_network(
                ctx.as_raw(),
                network.as_raw(),
                a.as_ref().map_or(ptr::null(), |o| o as *const _),
                &mut raw,
            )
        })?;
        Ok(Model::adopt(ctx, raw))
    }

    /// Classifier guidance (CG) as a denoiser (`lgd_model_create_classifier_guided()`,
    /// liblgd >= 0.5): D_cg(x, sigma) = D(x, sigma) - scale * sigma^2 * grad_x l(x; sigma),
    /// with `loss` typically a noisy-input cross-entropy [`Loss::network`] (evaluated at
    /// each call's sigma; any other loss at x as it is) and `scale` CG's weight w. Use it
    /// with [`crate::GuidanceKind::None`]: it has no VJP. The model keeps both; the
    /// dims must agree ([`Status::ShapeMismatch`]).
    pub fn classifier_guided(model: &Model, loss: &Loss, scale: f32) -> Result<Model> {
        let ctx = &model.ctx;
        let mut raw = ptr::null_mut();
        ctx.call("Model::classifier_guided", || unsafe {
            sys::lgd_model_create_classifier_guided(
                ctx.as_raw(),
                model.raw.as_ptr(),
                loss.as_raw(),
                scale,
                &mut raw,
            )
        })?;
        Ok(Model::adopt(ctx, raw))
    }

    /// The model `name` of the plugin at `path` (docs/plugins.md), made from `config`;
    /// as [`crate::Loss::load_plugin`].
    pub fn load_plugin(ctx: &Context, path: impl AsRef<Path>, name: &str, config: &str) -> Result<Model> {
        const W: &str = "Model::load_plugin";
        let p = path_cstring(W, path.as_ref())?;
        let n = cstring(W, name)?;
        let c = cstring(W, config)?;
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_model_load_plugin(ctx.as_raw(), p.as_ptr(), n.as_ptr(), c.as_ptr(), &mut raw)
        })?;
        Ok(Model::adopt(ctx, raw))
    }

    /// A denoiser written in Rust. The closures are freed when the model is (the last
    /// reference, which may be a guidance's); an `Err` or a panic in them fails the
    /// library call that ran them with [`Status::Callback`] and their message.
    pub fn from_closures(ctx: &Context, closures: DenoiserClosures) -> Result<Model> {
        const W: &str = "Model::from_closures";
        let dim = positive(W, "dim", closures.dim)?;
        if closures.cond_dim < 0 {
            return Err(invalid(
                Status::InvalidArgument,
                format!("{W}: cond_dim = {} is negative", closures.cond_dim),
            ));
        }
        let has_vjp = closures.vjp.is_some();
        let b = Box::new(DenoiserBox {
            ctx: ctx.clone(),
            dim,
            cond_dim: closures.cond_dim as usize,
            denoise: RefCell::new(closures.denoise),
            vjp: closures.vjp.map(RefCell::new),
        });
        let mut cb: sys::lgd_model_callbacks = unsafe { std::mem::zeroed() };
        ctx.call(W, || unsafe {
            sys::lgd_model_callbacks_init(&mut cb, sys::struct_size_of::<sys::lgd_model_callbacks>())
        })?;
        cb.memory = sys::LGD_MEMORY_HOST;
        cb.dim = closures.dim;
        cb.cond_dim = closures.cond_dim;
        cb.denoise = Some(denoise_tramp);
        cb.vjp = if has_vjp { Some(vjp_tramp) } else { None };
        cb.destroy = Some(drop_box::<DenoiserBox>);
        let user = Box::into_raw(b);
        cb.user = user as *mut c_void;
        let mut raw = ptr::null_mut();
        if let Err(e) =
            ctx.call(W, || unsafe { sys::lgd_model_create_callbacks(ctx.as_raw(), &cb, &mut raw) })
        {
            // on failure the destroy callback is not called: the box is still ours
            drop(unsafe { Box::from_raw(user) });
            return Err(e);
        }
        Ok(Model::adopt(ctx, raw))
    }

    /// A raw network written in Rust, made a denoiser by the adapter (prediction, time
    /// input, VP schedule). As [`Model::from_closures`] for the closures' lifetime and
    /// errors.
    pub fn from_network_closures(
        ctx: &Context,
        closures: NetworkClosures,
        adapter: &AdapterOptions,
    ) -> Result<Model> {
        const W: &str = "Model::from_network_closures";
        let dim = positive(W, "dim", closures.dim)?;
        if closures.cond_dim < 0 {
            return Err(invalid(
                Status::InvalidArgument,
                format!("{W}: cond_dim = {} is negative", closures.cond_dim),
            ));
        }
        let has_vjp = closures.vjp.is_some();
        let b = Box::new(NetworkBox {
            ctx: ctx.clone(),
            dim,
            cond_dim: closures.cond_dim as usize,
            forward: RefCell::new(closures.forward),
            vjp: closures.vjp.map(RefCell::new),
        });
        let mut cb: sys::lgd_network_callbacks = unsafe { std::mem::zeroed() };
        ctx.call(W, || unsafe {
            sys::lgd_network_callbacks_init(&mut cb, sys::struct_size_of::<sys::lgd_network_callbacks>())
        })?;
        cb.memory = sys::LGD_MEMORY_HOST;
        cb.dim = closures.dim;
        cb.cond_dim = closures.cond_dim;
        cb.forward = Some(forward_tramp);
        cb.vjp = if has_vjp { Some(net_vjp_tramp) } else { None };
        cb.destroy = Some(drop_box::<NetworkBox>);
        let user = Box::into_raw(b);
        cb.user = user as *mut c_void;
        let a = adapter.to_raw();
        let mut raw = ptr::null_mut();
        if let Err(e) = ctx
            .call(W, || unsafe { sys::lgd_model_create_network_callbacks(ctx.as_raw(), &cb, &a, &mut raw) })
        {
            drop(unsafe { Box::from_raw(user) });
            return Err(e);
        }
        Ok(Model::adopt(ctx, raw))
    }

    /// The C handle (borrowed).
    pub fn as_raw(&self) -> *mut sys::lgd_model {
        self.raw.as_ptr()
    }

    /// The context of the model.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Length of one sample.
    pub fn dim(&self) -> i64 {
        unsafe { sys::lgd_model_dim(self.raw.as_ptr()) }
    }

    /// Length of one condition row (0 if unconditional).
    pub fn cond_dim(&self) -> i64 {
        unsafe { sys::lgd_model_cond_dim(self.raw.as_ptr()) }
    }

    /// Whether the model can draw from its exact posterior p(x0 | x).
    pub fn has_exact_posterior(&self) -> bool {
        unsafe { sys::lgd_model_has_exact_posterior(self.raw.as_ptr()) != 0 }
    }

    /// out = D(x, sigma); x, out [batch][dim], cond [batch][cond_dim] or `None`.
    pub fn denoise(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        cond: Option<&Tensor<'_>>,
        out: &mut Tensor<'_>,
    ) -> Result<()> {
        self.ctx.call("Model::denoise", || unsafe {
            sys::lgd_model_denoise(self.raw.as_ptr(), x.as_raw(), sigma, opt_raw(cond), out.as_raw())
        })
    }

    /// out = J^T v, J = dD(x, sigma)/dx row by row.
    pub fn vjp(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        cond: Option<&Tensor<'_>>,
        v: &Tensor<'_>,
        out: &mut Tensor<'_>,
    ) -> Result<()> {
        self.ctx.call("Model::vjp", || unsafe {
            sys::lgd_model_vjp(self.raw.as_ptr(), x.as_raw(), sigma, opt_raw(cond), v.as_raw(), out.as_raw())
        })
    }

    /// out = grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2.
    pub fn score(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        cond: Option<&Tensor<'_>>,
        out: &mut Tensor<'_>,
    ) -> Result<()> {
        self.ctx.call("Model::score", || unsafe {
            sys::lgd_model_score(self.raw.as_ptr(), x.as_raw(), sigma, opt_raw(cond), out.as_raw())
        })
    }

    /// log p_sigma(x) per row into out (batch elements); Gaussian mixtures only.
    pub fn log_density(&self, x: &Tensor<'_>, sigma: f32, out: &mut Tensor<'_>) -> Result<()> {
        self.ctx.call("Model::log_density", || unsafe {
            sys::lgd_model_log_density(self.raw.as_ptr(), x.as_raw(), sigma, out.as_raw())
        })
    }

    /// Draws out [batch][n][dim] from p(x0 | x) at sigma (exact; Gaussian mixtures).
    pub fn sample_posterior(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        seed: u64,
        first_row: u64,
        out: &mut Tensor<'_>,
    ) -> Result<()> {
        self.ctx.call("Model::sample_posterior", || unsafe {
            sys::lgd_model_sample_posterior(
                self.raw.as_ptr(),
                x.as_raw(),
                sigma,
                seed,
                first_row,
                out.as_raw(),
            )
        })
    }

    /// The network time input t an adapted network model uses at sigma.
    pub fn network_time(&self, sigma: f32) -> Result<f32> {
        let mut t = 0.0f32;
        self.ctx.call("Model::network_time", || unsafe {
            sys::lgd_model_network_time(self.raw.as_ptr(), sigma, &mut t)
        })?;
        Ok(t)
    }

    /// D(x, sigma) of an unconditional model for x given as rows of [`Model::dim`]
    /// floats: slices in, a vector out.
    pub fn denoise_slice(&self, x: &[f32], sigma: f32) -> Result<Vec<f32>> {
        let dim = self.dim();
        let batch = rows_of("Model::denoise_slice", "x", x.len(), dim as usize, "rows of the model's dim")?;
        let xt = Tensor::from_slice(&self.ctx, &[len_i64(batch), dim], x)?;
        let mut out = Tensor::new(&self.ctx, &[len_i64(batch), dim])?;
        self.denoise(&xt, sigma, None, &mut out)?;
        out.to_vec()
    }
}

impl Clone for Model {
    fn clone(&self) -> Self {
        unsafe { sys::lgd_model_retain(self.raw.as_ptr()) };
        Model { raw: self.raw, ctx: self.ctx.clone() }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::lgd_model_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("dim", &self.dim()).field("cond_dim", &self.cond_dim()).finish()
    }
}
