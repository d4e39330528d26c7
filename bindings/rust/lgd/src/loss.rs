//! `Loss`: differentiable losses l(x0) that guidance steers samples to minimise.
use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::{self, NonNull};

use lgd_sys as sys;

use crate::callback::{drop_box, refuse_aliasing, run_closure, CallbackResult};
use crate::context::Context;
use crate::error::{invalid, Result, Status};
use crate::network::{AdapterOptions, Network};
use crate::operator::Operator;
use crate::tensor::{opt_raw_mut, Tensor};
use crate::trajectory::{ObstacleOptions, TrajectoryLayout};
use crate::util::{cstring, len_i64, overlap, path_cstring, positive, rows_of, slice, slice_mut};

/// What a loss closure made with [`Loss::from_draws_fn`] receives: x [batch][n][dim] and
/// which draws they are (row b * n + i is draw first_draw + i of the total_draws that
/// sample b's guidance call folds together; outside guidance first_draw = 0, total_draws
/// = n).
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    pub x: &'a [f32],
    pub batch: usize,
    pub n: usize,
    pub dim: usize,
    pub first_draw: usize,
    pub total_draws: usize,
}

/// How a network loss reduces the network's output row f (`lgd_network_loss_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkLossKind {
    /// -log softmax(f)[y] with y the row's label ([`Loss::set_labels`]): a classifier's
    /// -log p(y | x); out_dim >= 2.
    CrossEntropy,
    /// f_0 of a network with out_dim 1 (a learned energy).
    Scalar,
    /// |f - y|^2 / 2 with y the row's target ([`Loss::set_targets`]; zero until set).
    SquaredError,
}

/// What a network loss's network receives (`lgd_network_input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkLossInput {
    /// x_in = x, with the time input [`NetworkLossOptions::t`].
    Clean,
    /// x_in = c_in(sigma) x and t = t(sigma) by the adapter, as a denoiser network
    /// receives them (a noise-aware classifier).
    Noisy,
}

/// Options of [`Loss::network`] (`lgd_network_loss_options`); `Default` is the
/// library's (a cross-entropy of the clean input at t = 0, scale 1, sigma 0.002,
/// max_rows 256).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkLossOptions {
    pub kind: NetworkLossKind,
    /// Multiplies the loss and its gradient (finite).
    pub scale: f32,
    pub input: NetworkLossInput,
    /// Clean input: the network's time input.
    pub t: f32,
    /// Noisy input: the noise level of [`Loss::eval`] and guidance (> 0);
    /// [`Loss::eval_sigma`] and [`crate::Model::classifier_guided`] give their own.
    pub sigma: f32,
    /// Noisy input: the adapter mapping sigma to c_in and t (`None`: the file's).
    pub adapter: Option<AdapterOptions>,
    /// Rows per network call (>= 1): bounds the activation memory.
    pub max_rows: i64,
}

impl Default for NetworkLossOptions {
    fn default() -> Self {
        let mut o: sys::lgd_network_loss_options = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_network_loss_options_init(&mut o, sys::struct_size_of::<sys::lgd_network_loss_options>())
        };
        assert_eq!(st, sys::LGD_OK);
        NetworkLossOptions {
            kind: match o.kind {
                sys::LGD_NETWORK_LOSS_SCALAR => NetworkLossKind::Scalar,
                sys::LGD_NETWORK_LOSS_SQUARED_ERROR => NetworkLossKind::SquaredError,
                _ => NetworkLossKind::CrossEntropy,
            },
            scale: o.scale,
            input: if o.input == sys::LGD_NETWORK_INPUT_NOISY {
                NetworkLossInput::Noisy
            } else {
                NetworkLossInput::Clean
            },
            t: o.t,
            sigma: o.sigma,
            adapter: None,
            max_rows: o.max_rows,
        }
    }
}

impl NetworkLossOptions {
    /// The default options with this kind.
    pub fn new(kind: NetworkLossKind) -> Self {
        NetworkLossOptions { kind, ..NetworkLossOptions::default() }
    }
}

type PlainFn = dyn FnMut(&[f32], &mut [f32], Option<&mut [f32]>) -> CallbackResult;
type DrawsFn = dyn FnMut(&LossInput<'_>, &mut [f32], Option<&mut [f32]>) -> CallbackResult;

struct PlainBox {
    ctx: Context,
    f: RefCell<Box<PlainFn>>,
}

struct DrawsBox {
    ctx: Context,
    f: RefCell<Box<DrawsFn>>,
}

fn dims(batch: i64, n: i64, dim: i64) -> (usize, usize) {
    let rows = batch.max(0) as usize * n.max(0) as usize;
    (rows, rows * dim.max(0) as usize)
}

/// Whether loss or grad overlaps x or each other.
fn outputs_alias(x: *const f32, len: usize, loss: *mut f32, rows: usize, grad: *mut f32) -> bool {
    overlap(loss, rows, x, len) || overlap(grad, len, x, len) || overlap(grad, len, loss, rows)
}

unsafe extern "C" fn plain_tramp(
    user: *mut c_void,
    x: *const f32,
    batch: i64,
    n: i64,
    dim: i64,
    loss: *mut f32,
    grad: *mut f32,
) -> i32 {
    // SAFETY: user is this loss's PlainBox (alive until the destroy callback); x and grad
    // hold batch * n * dim floats, loss batch * n, during the call.
    let b = unsafe { &*(user as *const PlainBox) };
    let (rows, len) = dims(batch, n, dim);
    if let Some(rc) = refuse_aliasing(&b.ctx, outputs_alias(x, len, loss, rows, grad)) {
        return rc;
    }
    let x = unsafe { slice(x, len) };
    let loss = unsafe { slice_mut(loss, rows) };
    let grad = (!grad.is_null()).then(|| unsafe { slice_mut(grad, len) });
    run_closure(&b.ctx, &b.f, |f| f(x, loss, grad))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn draws_tramp(
    user: *mut c_void,
    x: *const f32,
    batch: i64,
    n: i64,
    dim: i64,
    first_draw: i64,
    total_draws: i64,
    loss: *mut f32,
    grad: *mut f32,
) -> i32 {
    // SAFETY: as plain_tramp.
    let b = unsafe { &*(user as *const DrawsBox) };
    let (rows, len) = dims(batch, n, dim);
    if let Some(rc) = refuse_aliasing(&b.ctx, outputs_alias(x, len, loss, rows, grad)) {
        return rc;
    }
    let input = LossInput {
        x: unsafe { slice(x, len) },
        batch: batch.max(0) as usize,
        n: n.max(0) as usize,
        dim: dim.max(0) as usize,
        first_draw: first_draw.max(0) as usize,
        total_draws: total_draws.max(0) as usize,
    };
    let loss = unsafe { slice_mut(loss, rows) };
    let grad = (!grad.is_null()).then(|| unsafe { slice_mut(grad, len) });
    run_closure(&b.ctx, &b.f, |f| f(&input, loss, grad))
}

/// A differentiable loss l(x0): the built-ins (squared error, linear inverse problem,
/// logistic, weighted sums, the trajectory losses) or a Rust closure. `Clone` takes
/// another reference to the same loss.
pub struct Loss {
    raw: NonNull<sys::lgd_loss>,
    ctx: Context,
}

impl Loss {
    fn adopt(ctx: &Context, raw: *mut sys::lgd_loss) -> Loss {
        Loss { raw: NonNull::new(raw).expect("liblgd returned LGD_OK without a loss"), ctx: ctx.clone() }
    }

    /// Weighted squared error l(x) = sum_j w_j (x_j - y_j)^2. `target` holds one row of
    /// `dim` values (shared) or one per sample of the batch it will be evaluated on;
    /// `weights` (dim values >= 0) or `None` for all ones.
    pub fn squared_error(ctx: &Context, dim: i64, target: &[f32], weights: Option<&[f32]>) -> Result<Loss> {
        const W: &str = "Loss::squared_error";
        let d = positive(W, "dim", dim)?;
        let rows = rows_of(W, "target", target.len(), d, "rows of dim")?;
        if let Some(w) = weights {
            if w.len() != d {
                return Err(invalid(
                    Status::ShapeMismatch,
                    format!("{W}: weights has {} values, dim is {d}", w.len()),
                ));
            }
        }
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_squared_error(
                ctx.as_raw(),
                dim,
                target.as_ptr(),
                len_i64(rows),
                weights.map_or(ptr::null(), |w| w.as_ptr()),
                &mut raw,
            )
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// Linear inverse problem l(x) = |y - H x|^2 / (2 s^2): `h` is m x dim (row-major), `y`
    /// one row of m values (shared) or one per sample, s = `noise_sigma`.
    pub fn linear(ctx: &Context, dim: i64, h: &[f32], y: &[f32], noise_sigma: f32) -> Result<Loss> {
        const W: &str = "Loss::linear";
        let d = positive(W, "dim", dim)?;
        let m = rows_of(W, "H", h.len(), d, "rows of dim")?;
        let rows = rows_of(W, "y", y.len(), m, "rows of H's m")?;
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_linear(
                ctx.as_raw(),
                dim,
                len_i64(m),
                h.as_ptr(),
                y.as_ptr(),
                len_i64(rows),
                noise_sigma,
                &mut raw,
            )
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// Logistic loss l(x) = -log sigmoid(a . x + b) = softplus(-(a . x + b)), dim = a.len().
    pub fn logistic(ctx: &Context, a: &[f32], b: f32) -> Result<Loss> {
        const W: &str = "Loss::logistic";
        if a.is_empty() {
            return Err(invalid(Status::InvalidArgument, format!("{W}: a is empty (it has dim values)")));
        }
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_logistic(ctx.as_raw(), len_i64(a.len()), a.as_ptr(), b, &mut raw)
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// l(x) = sum_k weights[k] terms[k](x) (weights `None`: all ones). The terms belong to
    /// one context and have one dim; the sum keeps its own references to them.
    pub fn sum(terms: &[&Loss], weights: Option<&[f32]>) -> Result<Loss> {
        const W: &str = "Loss::sum";
        let Some(first) = terms.first() else {
            return Err(invalid(Status::InvalidArgument, format!("{W}: no terms")));
        };
        if let Some(w) = weights {
            if w.len() != terms.len() {
                return Err(invalid(
                    Status::ShapeMismatch,
                    format!("{W}: {} weights for {} terms", w.len(), terms.len()),
                ));
            }
        }
        let count = i32::try_from(terms.len())
            .map_err(|_| invalid(Status::InvalidArgument, format!("{W}: too many terms")))?;
        let raws: Vec<*mut sys::lgd_loss> = terms.iter().map(|t| t.raw.as_ptr()).collect();
        let ctx = &first.ctx;
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_sum(
                ctx.as_raw(),
                count,
                raws.as_ptr(),
                weights.map_or(ptr::null(), |w| w.as_ptr()),
                &mut raw,
            )
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// Path following (the paper's Eq. 14): l(x) = sum_t |y_t - p_t|^2 for the root
    /// positions p_t of `layout`; `path` is [frames][2] (shared) or one such path per sample.
    pub fn path(ctx: &Context, dim: i64, layout: &TrajectoryLayout, path: &[f32]) -> Result<Loss> {
        const W: &str = "Loss::path";
        let frames = positive(W, "layout.frames", layout.frames)?;
        let rows = rows_of(W, "path", path.len(), frames.saturating_mul(2), "paths of [frames][2]")?;
        let l = layout.to_raw();
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_path(ctx.as_raw(), dim, &l, path.as_ptr(), len_i64(rows), &mut raw)
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// Obstacle avoidance (the paper's Eq. 15 and 20): a goal term for the last frame
    /// (`goal`: [2] shared or one per sample; `None`: none) and a collision term for each
    /// obstacle (centre x, centre y, radius).
    pub fn obstacle_avoidance(
        ctx: &Context,
        dim: i64,
        layout: &TrajectoryLayout,
        goal: Option<&[f32]>,
        obstacles: &[[f32; 3]],
        options: &ObstacleOptions,
    ) -> Result<Loss> {
        const W: &str = "Loss::obstacle_avoidance";
        let rows = match goal {
            Some(g) => rows_of(W, "goal", g.len(), 2, "(x, y) pairs")?,
            None => 1,
        };
        let l = layout.to_raw();
        let o = options.to_raw();
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_obstacle_avoidance(
                ctx.as_raw(),
                dim,
                &l,
                goal.map_or(ptr::null(), |g| g.as_ptr()),
                len_i64(rows),
                if obstacles.is_empty() { ptr::null() } else { obstacles.as_ptr() as *const f32 },
                len_i64(obstacles.len()),
                &o,
                &mut raw,
            )
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// The loss `name` of the plugin at `path` (a shared object, docs/plugins.md; a path
    /// with a '/' is a file, without one the loader's search path), of dimension `dim`,
    /// made from `config` (the plugin's syntax; "" for none). The loss keeps the plugin
    /// loaded. A program linked with the static liblgd cannot load plugins
    /// ([`Status::Unsupported`]: the plugin would bind a second copy of liblgd).
    pub fn load_plugin(
        ctx: &Context,
        path: impl AsRef<std::path::Path>,
        name: &str,
        dim: i64,
        config: &str,
    ) -> Result<Loss> {
        const W: &str = "Loss::load_plugin";
        let p = path_cstring(W, path.as_ref())?;
        let n = cstring(W, name)?;
        let c = cstring(W, config)?;
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_load_plugin(ctx.as_raw(), p.as_ptr(), n.as_ptr(), dim, c.as_ptr(), &mut raw)
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// The inverse-problem loss l(x) = |y - H x|^2 / (2 s2) with H the matrix-free
    /// operator `op` (`lgd_loss_create_operator()`, liblgd >= 0.5); gradient
    /// H^T (H x - y) / s2; dim = channels * height * width. `y` holds one measurement of
    /// m values ([`Operator::dims`]; shared) or one per sample of the batch it will be
    /// evaluated on. `s2` is the noise variance s^2 (> 0), not s.
    pub fn operator(ctx: &Context, op: &Operator, y: &[f32], s2: f32) -> Result<Loss> {
        const W: &str = "Loss::operator";
        let (_, m) = op.dims(ctx)?;
        let rows = rows_of(W, "y", y.len(), m as usize, "rows of the operator's m")?;
        let o = op.to_raw(W)?;
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_operator(ctx.as_raw(), &o, y.as_ptr(), len_i64(rows), s2, &mut raw)
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// A loaded network as a loss, l(x) = scale * R(f(x_in, t))
    /// (`lgd_loss_create_network()`, liblgd >= 0.5; see `<lgd/network_loss.h>`): a
    /// classifier's cross-entropy (labels by [`Loss::set_labels`], needed before an
    /// evaluation), a scalar network, or a squared error of the output (targets by
    /// [`Loss::set_targets`]). The loss keeps a reference to the network; its dim is the
    /// network's.
    pub fn network(network: &Network, options: &NetworkLossOptions) -> Result<Loss> {
        const W: &str = "Loss::network";
        let ctx = network.context();
        let adapter = options.adapter.as_ref().map(|a| a.to_raw());
        let mut o: sys::lgd_network_loss_options = unsafe { std::mem::zeroed() };
        ctx.call(W, || unsafe {
            sys::lgd_network_loss_options_init(&mut o, sys::struct_size_of::<sys::lgd_network_loss_options>())
        })?;
        o.kind = match options.kind {
            NetworkLossKind::CrossEntropy => sys::LGD_NETWORK_LOSS_CROSS_ENTROPY,
            NetworkLossKind::Scalar => sys::LGD_NETWORK_LOSS_SCALAR,
            NetworkLossKind::SquaredError => sys::LGD_NETWORK_LOSS_SQUARED_ERROR,
        };
        o.scale = options.scale;
        o.input = match options.input {
            NetworkLossInput::Clean => sys::LGD_NETWORK_INPUT_CLEAN,
            NetworkLossInput::Noisy => sys::LGD_NETWORK_INPUT_NOISY,
        };
        o.t = options.t;
        o.sigma = options.sigma;
        o.adapter = adapter.as_ref().map_or(ptr::null(), |a| a as *const _);
        o.max_rows = options.max_rows;
        let mut raw = ptr::null_mut();
        ctx.call(W, || unsafe {
            sys::lgd_loss_create_network(ctx.as_raw(), network.as_raw(), &o, &mut raw)
        })?;
        Ok(Loss::adopt(ctx, raw))
    }

    /// The labels of a cross-entropy network loss (`lgd_loss_network_set_labels()`): one
    /// (every sample) or one per sample of each later evaluation, each in [0, out_dim).
    /// Replaces the labels set before; on failure they stay. [`Status::Unsupported`] for
    /// another loss.
    pub fn set_labels(&self, labels: &[i32]) -> Result<()> {
        const W: &str = "Loss::set_labels";
        if labels.is_empty() {
            return Err(invalid(Status::InvalidArgument, format!("{W}: no labels")));
        }
        self.ctx.call(W, || unsafe {
            sys::lgd_loss_network_set_labels(self.raw.as_ptr(), labels.as_ptr(), len_i64(labels.len()))
        })
    }

    /// The targets of a squared-error network loss (`lgd_loss_network_set_targets()`):
    /// rows of `cols` values (cols the network's out_dim, else [`Status::ShapeMismatch`]),
    /// one row (every sample) or one per sample of each later evaluation.
    pub fn set_targets(&self, targets: &[f32], cols: i64) -> Result<()> {
        const W: &str = "Loss::set_targets";
        let c = positive(W, "cols", cols)?;
        let rows = rows_of(W, "targets", targets.len(), c, "rows of cols")?;
        self.ctx.call(W, || unsafe {
            sys::lgd_loss_network_set_targets(self.raw.as_ptr(), targets.as_ptr(), len_i64(rows), cols)
        })
    }

    /// Back to the zero target of a squared-error network loss (R = |f|^2 / 2).
    pub fn clear_targets(&self) -> Result<()> {
        self.ctx.call("Loss::clear_targets", || unsafe {
            sys::lgd_loss_network_set_targets(self.raw.as_ptr(), ptr::null(), 0, 0)
        })
    }

    /// A noisy-input network loss at noise level `sigma` instead of its options' sigma
    /// (`lgd_loss_network_eval_sigma()`): shapes as [`Loss::eval`]. For classifier
    /// guidance by hand: grad log p(y | x_sigma) = -grad (a cross-entropy of scale 1).
    pub fn eval_sigma(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        out_loss: &mut Tensor<'_>,
        out_grad: Option<&mut Tensor<'_>>,
    ) -> Result<()> {
        self.ctx.call("Loss::eval_sigma", || unsafe {
            sys::lgd_loss_network_eval_sigma(
                self.raw.as_ptr(),
                x.as_raw(),
                sigma,
                out_loss.as_raw(),
                opt_raw_mut(out_grad),
            )
        })
    }

    /// [`Loss::eval_sigma`] of rows given as a slice: (values, gradients).
    pub fn eval_sigma_slice(&self, x: &[f32], sigma: f32) -> Result<(Vec<f32>, Vec<f32>)> {
        let dim = self.dim();
        let batch = rows_of("Loss::eval_sigma_slice", "x", x.len(), dim as usize, "rows of the loss's dim")?;
        let xt = Tensor::from_slice(&self.ctx, &[len_i64(batch), dim], x)?;
        let mut l = Tensor::new(&self.ctx, &[len_i64(batch)])?;
        let mut g = Tensor::new(&self.ctx, &[len_i64(batch), dim])?;
        self.eval_sigma(&xt, sigma, &mut l, Some(&mut g))?;
        Ok((l.to_vec()?, g.to_vec()?))
    }

    /// A loss written in Rust: `f(x, loss, grad)` gets x as rows of `dim` floats
    /// (`loss.len()` rows, [batch][n] flattened) and writes every loss value and, when
    /// `grad` is given, every gradient entry (d loss / d x, shaped like x). An `Err` or a
    /// panic fails the library call that ran it with [`Status::Callback`] and the
    /// closure's message. The closure is freed with the loss (its last reference, which
    /// may be a guidance's).
    pub fn from_fn(
        ctx: &Context,
        dim: i64,
        f: impl FnMut(&[f32], &mut [f32], Option<&mut [f32]>) -> CallbackResult + 'static,
    ) -> Result<Loss> {
        let b = Box::new(PlainBox { ctx: ctx.clone(), f: RefCell::new(Box::new(f)) });
        Loss::from_box(ctx, "Loss::from_fn", dim, b, |cb, user| {
            cb.eval = Some(plain_tramp);
            cb.destroy = Some(drop_box::<PlainBox>);
            cb.user = user;
        })
    }

    /// A loss written in Rust that is told which Monte Carlo draws it receives (see
    /// [`LossInput`]): for a loss that depends on the draw index, so that the result does
    /// not depend on the guidance's chunk size.
    pub fn from_draws_fn(
        ctx: &Context,
        dim: i64,
        f: impl FnMut(&LossInput<'_>, &mut [f32], Option<&mut [f32]>) -> CallbackResult + 'static,
    ) -> Result<Loss> {
        let b = Box::new(DrawsBox { ctx: ctx.clone(), f: RefCell::new(Box::new(f)) });
        Loss::from_box(ctx, "Loss::from_draws_fn", dim, b, |cb, user| {
            cb.eval_draws = Some(draws_tramp);
            cb.destroy = Some(drop_box::<DrawsBox>);
            cb.user = user;
        })
    }

    fn from_box<T>(
        ctx: &Context,
        what: &str,
        dim: i64,
        b: Box<T>,
        set: impl FnOnce(&mut sys::lgd_loss_callbacks, *mut c_void),
    ) -> Result<Loss> {
        positive(what, "dim", dim)?;
        let mut cb: sys::lgd_loss_callbacks = unsafe { std::mem::zeroed() };
        ctx.call(what, || unsafe {
            sys::lgd_loss_callbacks_init(&mut cb, sys::struct_size_of::<sys::lgd_loss_callbacks>())
        })?;
        cb.memory = sys::LGD_MEMORY_HOST;
        cb.dim = dim;
        let user = Box::into_raw(b);
        set(&mut cb, user as *mut c_void);
        let mut raw = ptr::null_mut();
        if let Err(e) =
            ctx.call(what, || unsafe { sys::lgd_loss_create_callbacks(ctx.as_raw(), &cb, &mut raw) })
        {
            // on failure the destroy callback is not called: the box is still ours
            drop(unsafe { Box::from_raw(user) });
            return Err(e);
        }
        Ok(Loss::adopt(ctx, raw))
    }

    /// The C handle (borrowed).
    pub fn as_raw(&self) -> *mut sys::lgd_loss {
        self.raw.as_ptr()
    }

    /// The context of the loss.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Length of one sample.
    pub fn dim(&self) -> i64 {
        unsafe { sys::lgd_loss_dim(self.raw.as_ptr()) }
    }

    /// Evaluates the loss: x [batch][dim] or [batch][n][dim], out_loss batch * n values,
    /// out_grad (shaped like x) when given.
    pub fn eval(
        &self,
        x: &Tensor<'_>,
        out_loss: &mut Tensor<'_>,
        out_grad: Option<&mut Tensor<'_>>,
    ) -> Result<()> {
        self.ctx.call("Loss::eval", || unsafe {
            sys::lgd_loss_eval(self.raw.as_ptr(), x.as_raw(), out_loss.as_raw(), opt_raw_mut(out_grad))
        })
    }

    /// The loss values and gradients of x given as rows of [`Loss::dim`] floats: slices
    /// in, vectors out.
    pub fn eval_slice(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let dim = self.dim();
        let batch = rows_of("Loss::eval_slice", "x", x.len(), dim as usize, "rows of the loss's dim")?;
        let xt = Tensor::from_slice(&self.ctx, &[len_i64(batch), dim], x)?;
        let mut l = Tensor::new(&self.ctx, &[len_i64(batch)])?;
        let mut g = Tensor::new(&self.ctx, &[len_i64(batch), dim])?;
        self.eval(&xt, &mut l, Some(&mut g))?;
        Ok((l.to_vec()?, g.to_vec()?))
    }
}

impl Clone for Loss {
    fn clone(&self) -> Self {
        unsafe { sys::lgd_loss_retain(self.raw.as_ptr()) };
        Loss { raw: self.raw, ctx: self.ctx.clone() }
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        unsafe { sys::lgd_loss_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loss").field("dim", &self.dim()).finish()
    }
}
