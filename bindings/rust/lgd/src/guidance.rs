//! `Guidance`: estimators of g = grad_x log p_sigma(y | x), and their step rules.
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::rc::Rc;

use lgd_sys as sys;

use crate::context::Context;
use crate::error::{invalid, Result, Status};
use crate::loss::Loss;
use crate::model::Model;
use crate::tensor::{opt_raw, opt_raw_mut, Tensor};

/// The estimator of the guidance term (see `<lgd/guidance.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuidanceKind {
    /// No guidance (unguided sampling).
    None,
    /// DPS: the point estimate at xhat = D(x, sigma).
    Dps,
    /// LGD-MC: `n_samples` draws around xhat, softmax(-loss) weights (the paper's Eq. 9).
    Mc,
    /// Self-normalised importance sampling from the exact posterior (Gaussian mixtures).
    Exact,
    /// LGD-MC from loss values only (the score-function identity; liblgd >= 0.5).
    McGradientFree,
}

impl GuidanceKind {
    fn raw(self) -> sys::lgd_guidance_kind {
        match self {
            GuidanceKind::None => sys::LGD_GUIDANCE_NONE,
            GuidanceKind::Dps => sys::LGD_GUIDANCE_DPS,
            GuidanceKind::Mc => sys::LGD_GUIDANCE_MC,
            GuidanceKind::Exact => sys::LGD_GUIDANCE_EXACT,
            GuidanceKind::McGradientFree => sys::LGD_GUIDANCE_MC_GRADIENT_FREE,
        }
    }
    fn from_raw(k: sys::lgd_guidance_kind) -> Self {
        match k {
            sys::LGD_GUIDANCE_NONE => GuidanceKind::None,
            sys::LGD_GUIDANCE_DPS => GuidanceKind::Dps,
            sys::LGD_GUIDANCE_EXACT => GuidanceKind::Exact,
            sys::LGD_GUIDANCE_MC_GRADIENT_FREE => GuidanceKind::McGradientFree,
            _ => GuidanceKind::Mc,
        }
    }
}

/// How the step weight lambda(sigma) is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepRule {
    /// lambda = scale * sigma^2 (guided score = score + scale g).
    Score,
    /// lambda = scale.
    X0,
    /// lambda = scale / sqrt(l), l the loss at the estimate.
    Normalized,
}

impl StepRule {
    fn raw(self) -> sys::lgd_step_rule {
        match self {
            StepRule::Score => sys::LGD_STEP_SCORE,
            StepRule::X0 => sys::LGD_STEP_X0,
            StepRule::Normalized => sys::LGD_STEP_NORMALIZED,
        }
    }
    fn from_raw(r: sys::lgd_step_rule) -> Self {
        match r {
            sys::LGD_STEP_X0 => StepRule::X0,
            sys::LGD_STEP_NORMALIZED => StepRule::Normalized,
            _ => StepRule::Score,
        }
    }
}

/// The radius closure r(sigma) of LGD-MC (see [`GuidanceOptions::radius`]).
pub type RadiusFn = dyn Fn(f32) -> f32;

/// Options of [`Guidance::new`]. `Default` is the library's (LGD-MC with 10 draws, score
/// step rule at scale 1, no window, seed 0).
#[derive(Clone)]
pub struct GuidanceOptions {
    pub kind: GuidanceKind,
    /// MC / exact draws, 1 to `LGD_GUIDANCE_MAX_SAMPLES`.
    pub n_samples: i32,
    /// Draws per chunk (0: min(n, 16)).
    pub chunk_size: i32,
    /// r(sigma) = sigma s_d / sqrt(sigma^2 + s_d^2) with s_d = sigma_data.
    pub sigma_data: f32,
    /// Overrides sigma_data (LGD-MC only): r(sigma) >= 0 and finite, or the guidance call
    /// fails (a panic gives NaN, which fails it too).
    pub radius: Option<Rc<RadiusFn>>,
    pub step_rule: StepRule,
    pub scale: f32,
    /// The guidance window [sigma_min_active, sigma_max_active].
    pub sigma_min_active: f32,
    pub sigma_max_active: f32,
    /// Seed of the MC / exact draws (samplers set it to their own seed).
    pub seed: u64,
}

impl std::fmt::Debug for GuidanceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuidanceOptions")
            .field("kind", &self.kind)
            .field("n_samples", &self.n_samples)
            .field("chunk_size", &self.chunk_size)
            .field("sigma_data", &self.sigma_data)
            .field("radius", &self.radius.is_some())
            .field("step_rule", &self.step_rule)
            .field("scale", &self.scale)
            .field("sigma_min_active", &self.sigma_min_active)
            .field("sigma_max_active", &self.sigma_max_active)
            .field("seed", &self.seed)
            .finish()
    }
}

fn raw_guidance_default() -> sys::lgd_guidance_options {
    let mut o: sys::lgd_guidance_options = unsafe { std::mem::zeroed() };
    let st =
        unsafe { sys::lgd_guidance_options_init(&mut o, sys::struct_size_of::<sys::lgd_guidance_options>()) };
    assert_eq!(st, sys::LGD_OK);
    o
}

impl Default for GuidanceOptions {
    fn default() -> Self {
        let o = raw_guidance_default();
        GuidanceOptions {
            kind: GuidanceKind::from_raw(o.kind),
            n_samples: o.n_samples,
            chunk_size: o.chunk_size,
            sigma_data: o.sigma_data,
            radius: None,
            step_rule: StepRule::from_raw(o.step_rule),
            scale: o.scale,
            sigma_min_active: o.sigma_min_active,
            sigma_max_active: o.sigma_max_active,
            seed: o.seed,
        }
    }
}

impl GuidanceOptions {
    /// The defaults with this estimator and number of draws.
    pub fn new(kind: GuidanceKind, n_samples: i32) -> Self {
        GuidanceOptions { kind, n_samples, ..GuidanceOptions::default() }
    }
}

/// The radius closure with the context it runs on (for the in-callback guard). liblgd
/// has no destroy callback for `radius_user`, so the guidance and every sampler made from
/// it hold an `Rc` of this: it outlives the C guidance.
pub(crate) struct RadiusBox {
    ctx: Context,
    f: Rc<RadiusFn>,
}

unsafe extern "C" fn radius_tramp(user: *mut c_void, sigma: f32) -> f32 {
    // SAFETY: user is the RadiusBox kept alive by the guidance's handles.
    let b = unsafe { &*(user as *const RadiusBox) };
    let _busy = b.ctx.enter_callback();
    // a panic gives NaN, which the library refuses (the call fails; nothing unwinds)
    catch_unwind(AssertUnwindSafe(|| (b.f)(sigma))).unwrap_or(f32::NAN)
}

/// Diagnostics of one guidance evaluation (batch averages).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Report {
    /// Noise level of the call.
    pub sigma: f32,
    /// Mean of the losses evaluated (over draws and batch).
    pub mean_loss: f32,
    /// Effective sample size 1 / sum_i w_i^2, batch mean.
    pub mean_ess: f32,
    /// Smallest effective sample size in the batch.
    pub min_ess: f32,
    /// Mean over the batch of |g|.
    pub mean_grad_norm: f32,
    /// Mean step weight lambda applied.
    pub mean_lambda: f32,
    /// Whether guidance was applied at this sigma.
    pub active: bool,
}

/// Per-row diagnostics, on request: vectors of at least the batch's length (rows past the
/// batch are left alone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowReport {
    /// The mean loss of each row's draws (DPS: the loss at xhat).
    pub loss: Vec<f32>,
    /// Each row's effective sample size, in [1, n].
    pub ess: Vec<f32>,
    /// Each row's |g|.
    pub grad_norm: Vec<f32>,
    /// Each row's step weight lambda.
    pub lambda: Vec<f32>,
}

impl RowReport {
    /// Room for `rows` rows.
    pub fn new(rows: usize) -> Self {
        RowReport {
            loss: vec![0.0; rows],
            ess: vec![0.0; rows],
            grad_norm: vec![0.0; rows],
            lambda: vec![0.0; rows],
        }
    }
}

/// The C report for a call: rows requested when `rows` is given.
pub(crate) fn raw_report(what: &str, rows: Option<&mut RowReport>) -> Result<sys::lgd_guidance_report> {
    let mut r: sys::lgd_guidance_report = unsafe { std::mem::zeroed() };
    let st =
        unsafe { sys::lgd_guidance_report_init(&mut r, sys::struct_size_of::<sys::lgd_guidance_report>()) };
    assert_eq!(st, sys::LGD_OK);
    if let Some(rr) = rows {
        let n = rr.loss.len();
        if rr.ess.len() != n || rr.grad_norm.len() != n || rr.lambda.len() != n {
            return Err(invalid(
                Status::ShapeMismatch,
                format!("{what}: the RowReport's vectors differ in length"),
            ));
        }
        r.rows = n as i64;
        r.row_loss = rr.loss.as_mut_ptr();
        r.row_ess = rr.ess.as_mut_ptr();
        r.row_grad_norm = rr.grad_norm.as_mut_ptr();
        r.row_lambda = rr.lambda.as_mut_ptr();
    }
    Ok(r)
}

pub(crate) fn report_of(r: &sys::lgd_guidance_report) -> Report {
    Report {
        sigma: r.sigma,
        mean_loss: r.mean_loss,
        mean_ess: r.mean_ess,
        min_ess: r.min_ess,
        mean_grad_norm: r.mean_grad_norm,
        mean_lambda: r.mean_lambda,
        active: r.active != 0,
    }
}

/// A guidance estimator for a model and a loss. `Clone` takes another reference.
pub struct Guidance {
    raw: NonNull<sys::lgd_guidance>,
    ctx: Context,
    dim: i64,
    radius: Option<Rc<RadiusBox>>,
}

impl Guidance {
    /// A guidance of `model` and `loss` (of the model's context, with its dim; `None` only
    /// for [`GuidanceKind::None`]).
    pub fn new(model: &Model, loss: Option<&Loss>, options: &GuidanceOptions) -> Result<Guidance> {
        let ctx = model.context();
        let o = raw_guidance_default();
        let mut o = sys::lgd_guidance_options {
            kind: options.kind.raw(),
            n_samples: options.n_samples,
            chunk_size: options.chunk_size,
            sigma_data: options.sigma_data,
            step_rule: options.step_rule.raw(),
            scale: options.scale,
            sigma_min_active: options.sigma_min_active,
            sigma_max_active: options.sigma_max_active,
            seed: options.seed,
            ..o
        };
        let radius = options.radius.as_ref().map(|f| Rc::new(RadiusBox { ctx: ctx.clone(), f: f.clone() }));
        if let Some(rb) = &radius {
            o.radius = Some(radius_tramp);
            o.radius_user = Rc::as_ptr(rb) as *mut c_void;
        }
        let mut raw = ptr::null_mut();
        ctx.call("Guidance::new", || unsafe {
            sys::lgd_guidance_create(
                ctx.as_raw(),
                model.as_raw(),
                loss.map_or(ptr::null_mut(), |l| l.as_raw()),
                &o,
                &mut raw,
            )
        })?;
        Ok(Guidance {
            raw: NonNull::new(raw).expect("no guidance"),
            ctx: ctx.clone(),
            dim: model.dim(),
            radius,
        })
    }

    /// No guidance: unguided sampling of the model.
    pub fn none(model: &Model) -> Result<Guidance> {
        Guidance::new(model, None, &GuidanceOptions::new(GuidanceKind::None, 1))
    }

    /// DPS.
    pub fn dps(model: &Model, loss: &Loss) -> Result<Guidance> {
        Guidance::new(model, Some(loss), &GuidanceOptions::new(GuidanceKind::Dps, 1))
    }

    /// LGD-MC with `n` draws, every other option at its default (`lgd_guidance_mc()`).
    pub fn mc(model: &Model, loss: &Loss, n: i32) -> Result<Guidance> {
        let ctx = model.context();
        let mut raw = ptr::null_mut();
        ctx.call("Guidance::mc", || unsafe {
            sys::lgd_guidance_mc(ctx.as_raw(), model.as_raw(), loss.as_raw(), n, &mut raw)
        })?;
        Ok(Guidance {
            raw: NonNull::new(raw).expect("no guidance"),
            ctx: ctx.clone(),
            dim: model.dim(),
            radius: None,
        })
    }

    /// Exact importance sampling with `n` draws from the model's exact posterior.
    pub fn exact(model: &Model, loss: &Loss, n: i32) -> Result<Guidance> {
        Guidance::new(model, Some(loss), &GuidanceOptions::new(GuidanceKind::Exact, n))
    }

    /// The C handle (borrowed).
    pub fn as_raw(&self) -> *mut sys::lgd_guidance {
        self.raw.as_ptr()
    }

    /// The context of the guidance.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The model's dim.
    pub fn dim(&self) -> i64 {
        self.dim
    }

    pub(crate) fn radius_box(&self) -> Option<Rc<RadiusBox>> {
        self.radius.clone()
    }

    /// Sets (`Some`, copied) or clears (`None`) the condition rows [rows][cond_dim]
    /// passed to the model; rows must be the batch of later calls.
    pub fn set_condition(&self, cond: Option<&Tensor<'_>>) -> Result<()> {
        self.ctx.call("Guidance::set_condition", || unsafe {
            sys::lgd_guidance_set_condition(self.raw.as_ptr(), opt_raw(cond))
        })
    }

    /// Sets the seed of the MC / exact draws.
    pub fn set_seed(&self, seed: u64) -> Result<()> {
        self.ctx.guard("Guidance::set_seed")?;
        unsafe { sys::lgd_guidance_set_seed(self.raw.as_ptr(), seed) };
        Ok(())
    }

    /// The radius r(sigma) that LGD-MC uses.
    pub fn radius(&self, sigma: f32) -> f32 {
        unsafe { sys::lgd_guidance_radius(self.raw.as_ptr(), sigma) }
    }

    /// g = grad_x log p_sigma(y | x) into out_g [batch][dim], and D(x, sigma) into
    /// out_xhat when given; step_index and first_row key the random draws.
    pub fn term(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        step_index: i32,
        first_row: u64,
        out_g: &mut Tensor<'_>,
        out_xhat: Option<&mut Tensor<'_>>,
    ) -> Result<Report> {
        self.term_rows(x, sigma, step_index, first_row, out_g, out_xhat, None)
    }

    /// As [`Guidance::term`], with per-row diagnostics into `rows` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn term_rows(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        step_index: i32,
        first_row: u64,
        out_g: &mut Tensor<'_>,
        out_xhat: Option<&mut Tensor<'_>>,
        rows: Option<&mut RowReport>,
    ) -> Result<Report> {
        let mut r = raw_report("Guidance::term", rows)?;
        self.ctx.call("Guidance::term", || unsafe {
            sys::lgd_guidance_term(
                self.raw.as_ptr(),
                x.as_raw(),
                sigma,
                step_index,
                first_row,
                out_g.as_raw(),
                opt_raw_mut(out_xhat),
                &mut r,
            )
        })?;
        Ok(report_of(&r))
    }

    /// The guided denoiser D(x, sigma) + lambda(sigma) g into out [batch][dim].
    pub fn denoise(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        step_index: i32,
        first_row: u64,
        out: &mut Tensor<'_>,
    ) -> Result<Report> {
        self.denoise_rows(x, sigma, step_index, first_row, out, None)
    }

    /// As [`Guidance::denoise`], with per-row diagnostics into `rows` when given.
    pub fn denoise_rows(
        &self,
        x: &Tensor<'_>,
        sigma: f32,
        step_index: i32,
        first_row: u64,
        out: &mut Tensor<'_>,
        rows: Option<&mut RowReport>,
    ) -> Result<Report> {
        let mut r = raw_report("Guidance::denoise", rows)?;
        self.ctx.call("Guidance::denoise", || unsafe {
            sys::lgd_guidance_denoise(
                self.raw.as_ptr(),
                x.as_raw(),
                sigma,
                step_index,
                first_row,
                out.as_raw(),
                &mut r,
            )
        })?;
        Ok(report_of(&r))
    }
}

impl Clone for Guidance {
    fn clone(&self) -> Self {
        unsafe { sys::lgd_guidance_retain(self.raw.as_ptr()) };
        Guidance { raw: self.raw, ctx: self.ctx.clone(), dim: self.dim, radius: self.radius.clone() }
    }
}

impl Drop for Guidance {
    fn drop(&mut self) {
        // the radius box (a field) is dropped after the C reference
        unsafe { sys::lgd_guidance_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Guidance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guidance").field("dim", &self.dim).finish()
    }
}
