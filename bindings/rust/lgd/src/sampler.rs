//! `Sampler`: Euler/DDIM, Heun and DPM-Solver++(2M) from sigma_max to 0 with the guided
//! denoiser.
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::rc::Rc;

use lgd_sys as sys;

use crate::context::Context;
use crate::error::{invalid, Error, Result, Status};
use crate::guidance::{raw_report, report_of, Guidance, RadiusBox, Report, RowReport};
use crate::tensor::Tensor;
use crate::util::{len_i64, panic_message};

/// The integrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplerKind {
    /// Euler (DDIM with eta = 0).
    Euler,
    /// DDIM with `eta` (1: DDPM ancestral sampling).
    Ddim,
    /// EDM's Heun (Algorithm 2) with optional churn.
    Heun,
    /// DPM-Solver++(2M).
    DpmPp2M,
}

/// The noise levels of the sampler's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleKind {
    /// EDM's (sigma_min, sigma_max, rho).
    Karras,
    /// Discrete DDPM timesteps, linear betas (vp_timesteps, vp_beta_start, vp_beta_end).
    VpLinear,
    /// Discrete timesteps, cosine alphas_cumprod.
    VpCosine,
    /// The caller's levels (`sigmas`).
    User,
}

impl SamplerKind {
    fn raw(self) -> sys::lgd_sampler_kind {
        match self {
            SamplerKind::Euler => sys::LGD_SAMPLER_EULER,
            SamplerKind::Ddim => sys::LGD_SAMPLER_DDIM,
            SamplerKind::Heun => sys::LGD_SAMPLER_HEUN,
            SamplerKind::DpmPp2M => sys::LGD_SAMPLER_DPMPP_2M,
        }
    }
    fn from_raw(k: sys::lgd_sampler_kind) -> Self {
        match k {
            sys::LGD_SAMPLER_DDIM => SamplerKind::Ddim,
            sys::LGD_SAMPLER_HEUN => SamplerKind::Heun,
            sys::LGD_SAMPLER_DPMPP_2M => SamplerKind::DpmPp2M,
            _ => SamplerKind::Euler,
        }
    }
}

impl ScheduleKind {
    pub(crate) fn raw(self) -> sys::lgd_schedule_kind {
        match self {
            ScheduleKind::Karras => sys::LGD_SCHEDULE_KARRAS,
            ScheduleKind::VpLinear => sys::LGD_SCHEDULE_VP_LINEAR,
            ScheduleKind::VpCosine => sys::LGD_SCHEDULE_VP_COSINE,
            ScheduleKind::User => sys::LGD_SCHEDULE_USER,
        }
    }
    fn from_raw(k: sys::lgd_schedule_kind) -> Self {
        match k {
            sys::LGD_SCHEDULE_VP_LINEAR => ScheduleKind::VpLinear,
            sys::LGD_SCHEDULE_VP_COSINE => ScheduleKind::VpCosine,
            sys::LGD_SCHEDULE_USER => ScheduleKind::User,
            _ => ScheduleKind::Karras,
        }
    }
}

/// Options of [`Sampler::new`]. `Default` is the library's (Euler, 20 Karras steps from
/// 80 to 0.002, rho 7).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    pub kind: SamplerKind,
    pub steps: i32,
    pub schedule: ScheduleKind,
    pub sigma_min: f32,
    pub sigma_max: f32,
    pub rho: f32,
    /// DDIM stochasticity in [0, 1].
    pub eta: f32,
    /// Heun churn (EDM).
    pub s_churn: f32,
    pub s_tmin: f32,
    pub s_tmax: f32,
    pub s_noise: f32,
    pub vp_timesteps: i32,
    pub vp_beta_start: f32,
    pub vp_beta_end: f32,
    /// The levels of a [`ScheduleKind::User`] grid (strictly decreasing, > 0, optionally
    /// ending in 0).
    pub sigmas: Option<Vec<f32>>,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        let mut o: sys::lgd_sampler_options = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_sampler_options_init(&mut o, sys::struct_size_of::<sys::lgd_sampler_options>())
        };
        assert_eq!(st, sys::LGD_OK);
        SamplerOptions {
            kind: SamplerKind::from_raw(o.kind),
            steps: o.steps,
            schedule: ScheduleKind::from_raw(o.schedule),
            sigma_min: o.sigma_min,
            sigma_max: o.sigma_max,
            rho: o.rho,
            eta: o.eta,
            s_churn: o.s_churn,
            s_tmin: o.s_tmin,
            s_tmax: o.s_tmax,
            s_noise: o.s_noise,
            vp_timesteps: o.vp_timesteps,
            vp_beta_start: o.vp_beta_start,
            vp_beta_end: o.vp_beta_end,
            sigmas: None,
        }
    }
}

impl SamplerOptions {
    /// The defaults with this integrator and number of steps.
    pub fn new(kind: SamplerKind, steps: i32) -> Self {
        SamplerOptions { kind, steps, ..SamplerOptions::default() }
    }

    fn to_raw(&self) -> Result<sys::lgd_sampler_options> {
        let mut o: sys::lgd_sampler_options = unsafe { std::mem::zeroed() };
        unsafe { sys::lgd_sampler_options_init(&mut o, sys::struct_size_of::<sys::lgd_sampler_options>()) };
        o.kind = self.kind.raw();
        o.steps = self.steps;
        o.schedule = self.schedule.raw();
        o.sigma_min = self.sigma_min;
        o.sigma_max = self.sigma_max;
        o.rho = self.rho;
        o.eta = self.eta;
        o.s_churn = self.s_churn;
        o.s_tmin = self.s_tmin;
        o.s_tmax = self.s_tmax;
        o.s_noise = self.s_noise;
        o.vp_timesteps = self.vp_timesteps;
        o.vp_beta_start = self.vp_beta_start;
        o.vp_beta_end = self.vp_beta_end;
        if let Some(s) = &self.sigmas {
            o.sigmas = s.as_ptr();
            o.n_sigmas = i32::try_from(s.len())
                .map_err(|_| invalid(Status::InvalidArgument, "Sampler::new: too many sigmas"))?;
        }
        Ok(o)
    }
}

/// How [`Sampler::start`] takes the caller's x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Start {
    /// x is already at the start level (the caller's noise).
    Noisy,
    /// x is clean data x0: the sampler adds the start level's noise (SDEdit).
    AddNoise,
}

impl Start {
    fn raw(self) -> i32 {
        match self {
            Start::Noisy => sys::LGD_START_NOISY,
            Start::AddNoise => sys::LGD_START_ADD_NOISE,
        }
    }
}

/// What the progress closure of a run sees after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Steps done (run), or the grid index x is now at (run_from).
    pub step: i32,
    pub num_steps: i32,
    /// The sigma x is now at.
    pub sigma: f32,
    /// The step's guidance diagnostics.
    pub report: Report,
}

struct ProgressState<'f> {
    ctx: Context,
    f: &'f mut dyn FnMut(&Progress) -> bool,
    panic: Option<String>,
}

unsafe extern "C" fn progress_tramp(
    user: *mut c_void,
    step: i32,
    num_steps: i32,
    sigma: f32,
    report: *const sys::lgd_guidance_report,
) -> i32 {
    // SAFETY: user is the ProgressState on the stack of Sampler::run_impl, alive during
    // the run; report is valid during the call (or NULL).
    let st = unsafe { &mut *(user as *mut ProgressState<'_>) };
    let _busy = st.ctx.enter_callback();
    let p = Progress {
        step,
        num_steps,
        sigma,
        report: if report.is_null() { Report::default() } else { report_of(unsafe { &*report }) },
    };
    let f = &mut st.f;
    match catch_unwind(AssertUnwindSafe(|| f(&p))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(payload) => {
            st.panic = Some(panic_message(&*payload));
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            1
        }
    }
}

/// A sampler of a guidance. x ([batch][dim]) belongs to the caller: `init` / `start`
/// begin a run on it, `step` advances it in place, `run` does all the steps.
pub struct Sampler {
    raw: NonNull<sys::lgd_sampler>,
    ctx: Context,
    dim: i64,
    _radius: Option<Rc<RadiusBox>>,
}

impl Sampler {
    /// A sampler that uses `guidance` (kept alive by the sampler).
    pub fn new(guidance: &Guidance, options: &SamplerOptions) -> Result<Sampler> {
        let ctx = guidance.context();
        let o = options.to_raw()?;
        let mut raw = ptr::null_mut();
        ctx.call("Sampler::new", || unsafe { sys::lgd_sampler_create(guidance.as_raw(), &o, &mut raw) })?;
        Ok(Sampler {
            raw: NonNull::new(raw).expect("no sampler"),
            ctx: ctx.clone(),
            dim: guidance.dim(),
            _radius: guidance.radius_box(),
        })
    }

    /// The C handle (borrowed).
    pub fn as_raw(&self) -> *mut sys::lgd_sampler {
        self.raw.as_ptr()
    }

    /// The context of the sampler.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Number of steps.
    pub fn num_steps(&self) -> i32 {
        unsafe { sys::lgd_sampler_num_steps(self.raw.as_ptr()) }
    }

    /// The grid: num_steps + 1 levels from sigma_max down to 0.
    pub fn sigmas(&self) -> Result<Vec<f32>> {
        let mut v = vec![0.0f32; self.num_steps().max(0) as usize + 1];
        self.ctx.call("Sampler::sigmas", || unsafe {
            sys::lgd_sampler_sigmas(self.raw.as_ptr(), v.as_mut_ptr(), len_i64(v.len()))
        })?;
        Ok(v)
    }

    /// Index of the next step (num_steps when done).
    pub fn step_index(&self) -> i32 {
        unsafe { sys::lgd_sampler_step_index(self.raw.as_ptr()) }
    }

    /// The sigma x is at (0 when done).
    pub fn sigma(&self) -> f32 {
        unsafe { sys::lgd_sampler_sigma(self.raw.as_ptr()) }
    }

    /// Whether the run is finished.
    pub fn is_done(&self) -> bool {
        unsafe { sys::lgd_sampler_done(self.raw.as_ptr()) != 0 }
    }

    /// Starts a run: x = sigma_max z, z from `seed`, rows numbered from `first_row`.
    pub fn init(&mut self, x: &mut Tensor<'_>, seed: u64, first_row: u64) -> Result<()> {
        self.ctx.call("Sampler::init", || unsafe {
            sys::lgd_sampler_init(self.raw.as_ptr(), x.as_raw(), seed, first_row)
        })
    }

    /// Starts a run from the caller's x at grid index `start_step`.
    pub fn start(
        &mut self,
        x: &mut Tensor<'_>,
        start_step: i32,
        start: Start,
        seed: u64,
        first_row: u64,
    ) -> Result<()> {
        self.ctx.call("Sampler::start", || unsafe {
            sys::lgd_sampler_start(self.raw.as_ptr(), x.as_raw(), start_step, start.raw(), seed, first_row)
        })
    }

    /// Advances x one step in place; the step's guidance diagnostics.
    pub fn step(&mut self, x: &mut Tensor<'_>) -> Result<Report> {
        self.step_rows(x, None)
    }

    /// As [`Sampler::step`], with per-row diagnostics into `rows` when given.
    pub fn step_rows(&mut self, x: &mut Tensor<'_>, rows: Option<&mut RowReport>) -> Result<Report> {
        let mut r = raw_report("Sampler::step", rows)?;
        self.ctx.call("Sampler::step", || unsafe {
            sys::lgd_sampler_step(self.raw.as_ptr(), x.as_raw(), &mut r)
        })?;
        Ok(report_of(&r))
    }

    /// init + every step: x ends at sigma 0.
    pub fn run(&mut self, x: &mut Tensor<'_>, seed: u64, first_row: u64) -> Result<()> {
        self.run_impl("Sampler::run", x, None, seed, first_row, None)
    }

    /// As [`Sampler::run`], calling `progress` after each step; returning `false` stops
    /// the run with [`Status::Aborted`] (x holds the last completed step and the run can
    /// go on with [`Sampler::step`]). A panic in `progress` stops it too, with
    /// [`Status::Callback`] and the panic's message.
    pub fn run_with_progress(
        &mut self,
        x: &mut Tensor<'_>,
        seed: u64,
        first_row: u64,
        mut progress: impl FnMut(&Progress) -> bool,
    ) -> Result<()> {
        self.run_impl("Sampler::run_with_progress", x, None, seed, first_row, Some(&mut progress))
    }

    /// start + every remaining step.
    pub fn run_from(
        &mut self,
        x: &mut Tensor<'_>,
        start_step: i32,
        start: Start,
        seed: u64,
        first_row: u64,
    ) -> Result<()> {
        self.run_impl("Sampler::run_from", x, Some((start_step, start)), seed, first_row, None)
    }

    /// As [`Sampler::run_from`] with a progress closure (see
    /// [`Sampler::run_with_progress`]).
    pub fn run_from_with_progress(
        &mut self,
        x: &mut Tensor<'_>,
        start_step: i32,
        start: Start,
        seed: u64,
        first_row: u64,
        mut progress: impl FnMut(&Progress) -> bool,
    ) -> Result<()> {
        self.run_impl(
            "Sampler::run_from_with_progress",
            x,
            Some((start_step, start)),
            seed,
            first_row,
            Some(&mut progress),
        )
    }

    fn run_impl(
        &mut self,
        what: &str,
        x: &mut Tensor<'_>,
        from: Option<(i32, Start)>,
        seed: u64,
        first_row: u64,
        progress: Option<&mut dyn FnMut(&Progress) -> bool>,
    ) -> Result<()> {
        let mut state = progress.map(|f| ProgressState { ctx: self.ctx.clone(), f, panic: None });
        let (cb, user): (sys::lgd_progress_fn, *mut c_void) = match &mut state {
            Some(s) => (Some(progress_tramp), s as *mut ProgressState<'_> as *mut c_void),
            None => (None, ptr::null_mut()),
        };
        let r = self.ctx.call(what, || unsafe {
            match from {
                None => sys::lgd_sampler_run(self.raw.as_ptr(), x.as_raw(), seed, first_row, cb, user),
                Some((step, start)) => sys::lgd_sampler_run_from(
                    self.raw.as_ptr(),
                    x.as_raw(),
                    step,
                    start.raw(),
                    seed,
                    first_row,
                    cb,
                    user,
                ),
            }
        });
        if let Some(msg) = state.and_then(|s| s.panic) {
            return Err(Error::new(
                Status::Callback,
                format!("{what}: the progress closure panicked: {msg}"),
            ));
        }
        r
    }

    /// A whole run of `batch` samples from `seed` (rows from 0): the samples, [batch][dim]
    /// flattened.
    pub fn sample(&mut self, batch: usize, seed: u64) -> Result<Vec<f32>> {
        let mut x = Tensor::new(&self.ctx, &[len_i64(batch), self.dim])?;
        self.run(&mut x, seed, 0)?;
        x.to_vec()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        unsafe { sys::lgd_sampler_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("num_steps", &self.num_steps())
            .field("step_index", &self.step_index())
            .finish()
    }
}
