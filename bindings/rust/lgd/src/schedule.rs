//! Noise-level grids and VP (DDPM) schedules, without a context.
use lgd_sys as sys;

use crate::error::{check_free, invalid, Result, Status};

/// A discrete VP schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VpSchedule {
    /// Linear betas from beta_start to beta_end (DDPM: 1e-4, 0.02).
    Linear,
    /// Nichol & Dhariwal's cosine alphas_cumprod (the betas are ignored).
    Cosine,
}

impl VpSchedule {
    fn raw(self) -> sys::lgd_schedule_kind {
        match self {
            VpSchedule::Linear => sys::LGD_SCHEDULE_VP_LINEAR,
            VpSchedule::Cosine => sys::LGD_SCHEDULE_VP_COSINE,
        }
    }
}

fn at_least_one(what: &str, name: &str, n: i32) -> Result<usize> {
    if n < 1 {
        return Err(invalid(Status::InvalidArgument, format!("{what}: {name} = {n} must be at least 1")));
    }
    Ok(n as usize)
}

/// The Karras grid: steps + 1 levels, sigma_max first, sigma_min at steps - 1, 0 last.
pub fn karras(steps: i32, sigma_min: f32, sigma_max: f32, rho: f32) -> Result<Vec<f32>> {
    let n = at_least_one("schedule::karras", "steps", steps)?;
    let mut out = vec![0.0f32; n + 1];
    check_free("lgd_schedule_karras", unsafe {
        sys::lgd_schedule_karras(steps, sigma_min, sigma_max, rho, out.as_mut_ptr())
    })?;
    Ok(out)
}

/// A VP grid: `steps` timesteps evenly spaced over `num_timesteps`, their sigmas, then 0.
pub fn vp(
    kind: VpSchedule,
    num_timesteps: i32,
    beta_start: f32,
    beta_end: f32,
    steps: i32,
) -> Result<Vec<f32>> {
    let n = at_least_one("schedule::vp", "steps", steps)?;
    let mut out = vec![0.0f32; n + 1];
    check_free("lgd_schedule_vp", unsafe {
        sys::lgd_schedule_vp(kind.raw(), num_timesteps, beta_start, beta_end, steps, out.as_mut_ptr())
    })?;
    Ok(out)
}

/// alphas_cumprod of a VP schedule (for [`crate::AdapterOptions::alphas_cumprod`]).
pub fn vp_alphas_cumprod(
    kind: VpSchedule,
    num_timesteps: i32,
    beta_start: f32,
    beta_end: f32,
) -> Result<Vec<f32>> {
    let n = at_least_one("schedule::vp_alphas_cumprod", "num_timesteps", num_timesteps)?;
    let mut out = vec![0.0f32; n];
    check_free("lgd_vp_alphas_cumprod", unsafe {
        sys::lgd_vp_alphas_cumprod(kind.raw(), num_timesteps, beta_start, beta_end, out.as_mut_ptr())
    })?;
    Ok(out)
}
