//! `Network`: a trained network loaded from a weights file, and the adapters that make a
//! network a denoiser.
use std::ffi::c_void;
use std::path::Path;
use std::ptr::{self, NonNull};

use lgd_sys as sys;

use crate::context::Context;
use crate::error::Result;
use crate::tensor::{opt_raw, opt_raw_mut, Tensor};
use crate::util::{cstr_lossy, cstring, path_cstring};

/// What a network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prediction {
    /// eps: xhat = x - sigma F(c_in x, t)
    Eps,
    /// x0: xhat = F(c_in x, t)
    X0,
    /// v = alpha eps - beta x0 (VP)
    V,
    /// EDM's F: xhat = c_skip x + c_out F(c_in x, c_noise)
    Edm,
}

/// What a network receives as its time input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeInput {
    /// Fractional discrete timestep (log-sigma interpolation in alphas_cumprod's sigmas).
    Discrete,
    /// The same, rounded to the nearest timestep.
    DiscreteRound,
    /// EDM's c_noise = ln(sigma) / 4.
    LogSigma,
    /// sigma itself.
    Sigma,
}

impl Prediction {
    fn raw(self) -> sys::lgd_prediction {
        match self {
            Prediction::Eps => sys::LGD_PREDICT_EPS,
            Prediction::X0 => sys::LGD_PREDICT_X0,
            Prediction::V => sys::LGD_PREDICT_V,
            Prediction::Edm => sys::LGD_PREDICT_EDM,
        }
    }
    fn from_raw(p: sys::lgd_prediction) -> Self {
        match p {
            sys::LGD_PREDICT_X0 => Prediction::X0,
            sys::LGD_PREDICT_V => Prediction::V,
            sys::LGD_PREDICT_EDM => Prediction::Edm,
            _ => Prediction::Eps,
        }
    }
}

impl TimeInput {
    fn raw(self) -> sys::lgd_time_input {
        match self {
            TimeInput::Discrete => sys::LGD_TIME_DISCRETE,
            TimeInput::DiscreteRound => sys::LGD_TIME_DISCRETE_ROUND,
            TimeInput::LogSigma => sys::LGD_TIME_LOG_SIGMA,
            TimeInput::Sigma => sys::LGD_TIME_SIGMA,
        }
    }
    fn from_raw(t: sys::lgd_time_input) -> Self {
        match t {
            sys::LGD_TIME_DISCRETE_ROUND => TimeInput::DiscreteRound,
            sys::LGD_TIME_LOG_SIGMA => TimeInput::LogSigma,
            sys::LGD_TIME_SIGMA => TimeInput::Sigma,
            _ => TimeInput::Discrete,
        }
    }
}

/// How a network becomes a denoiser D(x, sigma). `Default` is the library's
/// (`lgd_adapter_options_init()`: eps prediction, discrete time, sigma_data 0.5, no
/// schedule — which a discrete time input needs).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterOptions {
    pub prediction: Prediction,
    pub time_input: TimeInput,
    /// alphas_cumprod of the discrete VP schedule the network was trained with
    /// ([`crate::schedule::vp_alphas_cumprod`] makes the usual ones).
    pub alphas_cumprod: Option<Vec<f32>>,
    /// EDM only.
    pub sigma_data: f32,
}

impl Default for AdapterOptions {
    fn default() -> Self {
        let mut o: sys::lgd_adapter_options = unsafe { std::mem::zeroed() };
        let st = unsafe {
            sys::lgd_adapter_options_init(&mut o, sys::struct_size_of::<sys::lgd_adapter_options>())
        };
        assert_eq!(st, sys::LGD_OK);
        AdapterOptions::from_raw(&o)
    }
}

impl AdapterOptions {
    /// The C struct; its alphas_cumprod points into `self`.
    pub(crate) fn to_raw(&self) -> sys::lgd_adapter_options {
        let mut o: sys::lgd_adapter_options = unsafe { std::mem::zeroed() };
        unsafe { sys::lgd_adapter_options_init(&mut o, sys::struct_size_of::<sys::lgd_adapter_options>()) };
        o.prediction = self.prediction.raw();
        o.time_input = self.time_input.raw();
        if let Some(a) = &self.alphas_cumprod {
            o.alphas_cumprod = a.as_ptr();
            o.num_timesteps = a.len().min(i32::MAX as usize) as i32;
        }
        o.sigma_data = self.sigma_data;
        o
    }

    fn from_raw(o: &sys::lgd_adapter_options) -> Self {
        let alphas = if o.alphas_cumprod.is_null() || o.num_timesteps <= 0 {
            None
        } else {
            // SAFETY: the library's struct: num_timesteps floats at alphas_cumprod
            Some(unsafe { std::slice::from_raw_parts(o.alphas_cumprod, o.num_timesteps as usize) }.to_vec())
        };
        AdapterOptions {
            prediction: Prediction::from_raw(o.prediction),
            time_input: TimeInput::from_raw(o.time_input),
            alphas_cumprod: alphas,
            sigma_data: o.sigma_data,
        }
    }
}

/// A network loaded from a safetensors file (docs/network-format.md), run with its VJP on
/// the context's backend. `Clone` takes another reference.
pub struct Network {
    raw: NonNull<sys::lgd_network>,
    ctx: Context,
}

impl Network {
    fn adopt(ctx: &Context, raw: *mut sys::lgd_network) -> Network {
        Network {
            raw: NonNull::new(raw).expect("liblgd returned LGD_OK without a network"),
            ctx: ctx.clone(),
        }
    }

    /// Loads a network file.
    pub fn load(ctx: &Context, path: impl AsRef<Path>) -> Result<Network> {
        let p = path_cstring("Network::load", path.as_ref())?;
        let mut raw = ptr::null_mut();
        ctx.call("Network::load", || unsafe { sys::lgd_network_load(ctx.as_raw(), p.as_ptr(), &mut raw) })?;
        Ok(Network::adopt(ctx, raw))
    }

    /// Loads a network from the bytes of a file.
    pub fn load_memory(ctx: &Context, bytes: &[u8]) -> Result<Network> {
        let mut raw = ptr::null_mut();
        ctx.call("Network::load_memory", || unsafe {
            sys::lgd_network_load_memory(ctx.as_raw(), bytes.as_ptr() as *const c_void, bytes.len(), &mut raw)
        })?;
        Ok(Network::adopt(ctx, raw))
    }

    /// The C handle (borrowed).
    pub fn as_raw(&self) -> *mut sys::lgd_network {
        self.raw.as_ptr()
    }

    /// The context of the network.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Floats per input row.
    pub fn dim(&self) -> i64 {
        unsafe { sys::lgd_network_dim(self.raw.as_ptr()) }
    }
    /// Floats per output row.
    pub fn out_dim(&self) -> i64 {
        unsafe { sys::lgd_network_out_dim(self.raw.as_ptr()) }
    }
    /// Floats per condition row (0 if unconditional).
    pub fn cond_dim(&self) -> i64 {
        unsafe { sys::lgd_network_cond_dim(self.raw.as_ptr()) }
    }
    /// Number of weight values.
    pub fn parameter_count(&self) -> i64 {
        unsafe { sys::lgd_network_parameter_count(self.raw.as_ptr()) }
    }

    /// The file's metadata value for `key` (e.g. "lgd.architecture").
    pub fn metadata(&self, key: &str) -> Option<String> {
        let k = cstring("Network::metadata", key).ok()?;
        let p = unsafe { sys::lgd_network_metadata(self.raw.as_ptr(), k.as_ptr()) };
        (!p.is_null()).then(|| unsafe { cstr_lossy(p) })
    }

    /// The adapter the file asks for (defaults where absent).
    pub fn adapter_options(&self) -> Result<AdapterOptions> {
        // the library writes only as far as the caller's struct_size (src/nn/network.c),
        // so the struct is initialised first
        let mut o: sys::lgd_adapter_options = unsafe { std::mem::zeroed() };
        unsafe { sys::lgd_adapter_options_init(&mut o, sys::struct_size_of::<sys::lgd_adapter_options>()) };
        self.ctx.call("Network::adapter_options", || unsafe {
            sys::lgd_network_adapter_options(self.raw.as_ptr(), &mut o)
        })?;
        Ok(AdapterOptions::from_raw(&o))
    }

    /// out [B][out_dim] = F(x_in, t) for x_in [B][dim] (cond [B][cond_dim] when conditional).
    pub fn forward(
        &self,
        x_in: &Tensor<'_>,
        t: f32,
        cond: Option<&Tensor<'_>>,
        out: &mut Tensor<'_>,
    ) -> Result<()> {
        self.ctx.call("Network::forward", || unsafe {
            sys::lgd_network_forward(self.raw.as_ptr(), x_in.as_raw(), t, opt_raw(cond), out.as_raw())
        })
    }

    /// out [B][dim] = (dF/dx_in)^T v, and F(x_in, t) into `out_forward` when given.
    pub fn vjp(
        &self,
        x_in: &Tensor<'_>,
        t: f32,
        cond: Option<&Tensor<'_>>,
        v: &Tensor<'_>,
        out: &mut Tensor<'_>,
        out_forward: Option<&mut Tensor<'_>>,
    ) -> Result<()> {
        self.ctx.call("Network::vjp", || unsafe {
            sys::lgd_network_vjp(
                self.raw.as_ptr(),
                x_in.as_raw(),
                t,
                opt_raw(cond),
                v.as_raw(),
                out.as_raw(),
                opt_raw_mut(out_forward),
            )
        })
    }
}

impl Clone for Network {
    fn clone(&self) -> Self {
        unsafe { sys::lgd_network_retain(self.raw.as_ptr()) };
        Network { raw: self.raw, ctx: self.ctx.clone() }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        unsafe { sys::lgd_network_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("dim", &self.dim())
            .field("out_dim", &self.out_dim())
            .field("cond_dim", &self.cond_dim())
            .finish()
    }
}
