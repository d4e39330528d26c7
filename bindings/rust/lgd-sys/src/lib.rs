//! Raw declarations of liblgd's public C API (`include/lgd/*.h`, version 0.5.0).
//!
//! Everything here mirrors the headers one to one: the opaque handles, the enums (as
//! `i32` type aliases with one constant per value, as `<lgd/common.h>` allows: "every enum
//! is 32 bits wide ... a binding may declare enum-typed fields and parameters as
//! int32_t"), the option and callback structs (`#[repr(C)]`), the callback types and every
//! `LGD_API` function. The headers are the contract: read a function's comment there for
//! its rules and statuses. The safe API is the `lgd` crate.
//!
//! The declarations are written by hand through the macros below, which also record
//! each declaration in the tables of [`meta`] (names, Rust types as written, sizes and
//! offsets). `tests/header.rs` parses the headers, compiles a C probe with the system C
//! compiler and checks every struct's size, alignment and field offsets, every
//! enumerator and numeric macro (status codes, `LGD_VERSION_*`), and every function's and
//! callback type's signature against these tables, in both directions: a declaration
//! missing on either side fails the test.
//!
//! Linking: `build.rs` finds liblgd through `LGD_LIB_DIR` (and `LGD_INCLUDE_DIR`) or
//! pkg-config (`lgd`; static with `LGD_STATIC=1`); see docs/rust.md.
//!
//! The `*_INIT` macros of the headers have no Rust counterpart: call the matching
//! `*_init` function (`lgd_sampler_options_init(&mut o, size_of::<lgd_sampler_options>()
//! as u32)`), which writes the library's defaults.
#![no_std]
#![allow(non_camel_case_types)]
#![allow(non_upper_case_globals)]
#![allow(non_snake_case)] // the headers' parameter names (H in lgd_loss_create_linear)

pub use core::ffi::{c_char, c_int, c_void};

/// What the macros record of a declaration; see [`meta`].
pub mod meta {
    /// A `#[repr(C)]` struct: its size, alignment and fields.
    #[derive(Debug, Clone, Copy)]
    pub struct StructInfo {
        pub name: &'static str,
        pub size: usize,
        pub align: usize,
        pub fields: &'static [FieldInfo],
    }
    /// A field: its name, its Rust type as written (`stringify!`), offset and size.
    #[derive(Debug, Clone, Copy)]
    pub struct FieldInfo {
        pub name: &'static str,
        pub ty: &'static str,
        pub offset: usize,
        pub size: usize,
    }
    /// A function or a callback type: parameter types and return type as written ("" for
    /// none).
    #[derive(Debug, Clone, Copy)]
    pub struct FnInfo {
        pub name: &'static str,
        pub params: &'static [&'static str],
        pub ret: &'static str,
    }
    /// A type alias (the enums) or an opaque handle with its size (0 for an opaque one).
    #[derive(Debug, Clone, Copy)]
    pub struct TypeInfo {
        pub name: &'static str,
        pub size: usize,
        pub align: usize,
    }
    pub use super::{
        CALLBACK_TYPES, CONSTANTS, ENUM_TYPES, FUNCTIONS, MACROS, OPAQUE_TYPES, STRING_MACROS, STRUCTS,
    };
}

macro_rules! ret_str {
    () => {
        ""
    };
    ($t:ty) => {
        stringify!($t)
    };
}

/// Opaque handles (`typedef struct lgd_x lgd_x;`): zero-sized, not constructible, not
/// `Send`, `Sync` or `Unpin` (the nomicon's pattern).
macro_rules! opaque_types {
    ($( $(#[$m:meta])* $name:ident ),* $(,)?) => {
        $(
            $(#[$m])*
            #[repr(C)]
            pub struct $name {
                _private: [u8; 0],
                _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
            }
        )*
        /// The opaque handle types.
        pub const OPAQUE_TYPES: &[meta::TypeInfo] = &[
            $( meta::TypeInfo { name: stringify!($name), size: 0, align: 0 } ),*
        ];
    };
}

/// Enums: `pub type lgd_x = i32;` and one constant per enumerator.
macro_rules! enums {
    ($(
        $(#[$m:meta])*
        enum $name:ident { $( $(#[$vm:meta])* $variant:ident = $value:expr ),* $(,)? }
    )*) => {
        $(
            $(#[$m])*
            pub type $name = i32;
            $( $(#[$vm])* pub const $variant: $name = $value; )*
        )*
        /// The enum types (each an `i32` alias).
        pub const ENUM_TYPES: &[meta::TypeInfo] = &[
            $( meta::TypeInfo { name: stringify!($name),
                                size: core::mem::size_of::<$name>(),
                                align: core::mem::align_of::<$name>() } ),*
        ];
        /// Every enumerator and its value.
        pub const CONSTANTS: &[(&str, i64)] = &[
            $( $( (stringify!($variant), $variant as i64), )* )*
        ];
    };
}

/// Numeric object-like macros of the headers, then those whose value is a string.
macro_rules! macros {
    ($( $(#[$m:meta])* $name:ident : $ty:ty = $value:expr; )*) => {
        $( $(#[$m])* pub const $name: $ty = $value; )*
        /// Every numeric macro and its value.
        pub const MACROS: &[(&str, i64)] = &[ $( (stringify!($name), $name as i64) ),* ];
    };
}

macro_rules! string_macros {
    ($( $(#[$m:meta])* $name:ident = $value:expr; )*) => {
        $( $(#[$m])* pub const $name: &core::ffi::CStr = $value; )*
        /// Every string macro and its value.
        pub const STRING_MACROS: &[(&str, &core::ffi::CStr)] =
            &[ $( (stringify!($name), $name) ),* ];
    };
}

/// Callback types: `pub type lgd_x_fn = Option<unsafe extern "C" fn(...) -> R>;`
macro_rules! callback_types {
    ($(
        $(#[$m:meta])*
        type $name:ident = fn( $( $arg:ident : $ty:ty ),* $(,)? ) $( -> $ret:ty )?;
    )*) => {
        $(
            $(#[$m])*
            pub type $name = Option<unsafe extern "C" fn( $( $arg: $ty ),* ) $( -> $ret )?>;
        )*
        /// The callback types' signatures.
        pub const CALLBACK_TYPES: &[meta::FnInfo] = &[
            $( meta::FnInfo { name: stringify!($name),
                              params: &[ $( stringify!($ty) ),* ],
                              ret: ret_str!($( $ret )?) } ),*
        ];
    };
}

/// `#[repr(C)]` structs, with their layout recorded.
macro_rules! structs {
    ($(
        $(#[$m:meta])*
        struct $name:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }
    )*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Debug, Clone, Copy)]
            pub struct $name { $( $(#[$fm])* pub $field: $ty ),* }
        )*
        /// The structs' sizes, alignments and fields.
        pub const STRUCTS: &[meta::StructInfo] = &[
            $( meta::StructInfo {
                name: stringify!($name),
                size: core::mem::size_of::<$name>(),
                align: core::mem::align_of::<$name>(),
                fields: &[ $( meta::FieldInfo {
                    name: stringify!($field),
                    ty: stringify!($ty),
                    offset: core::mem::offset_of!($name, $field),
                    size: core::mem::size_of::<$ty>(),
                } ),* ],
            } ),*
        ];
    };
}

/// The functions: one `extern "C"` block, with the signatures recorded.
macro_rules! functions {
    ($(
        $(#[$m:meta])*
        fn $name:ident ( $( $arg:ident : $ty:ty ),* $(,)? ) $( -> $ret:ty )?;
    )*) => {
        extern "C" {
            $( $(#[$m])* pub fn $name( $( $arg: $ty ),* ) $( -> $ret )?; )*
        }
        /// Every function's signature.
        pub const FUNCTIONS: &[meta::FnInfo] = &[
            $( meta::FnInfo { name: stringify!($name),
                              params: &[ $( stringify!($ty) ),* ],
                              ret: ret_str!($( $ret )?) } ),*
        ];
    };
}

// ---- <lgd/common.h>, <lgd/network.h>: handles ----

opaque_types! {
    /// A backend instance with its logging and last error (`<lgd/context.h>`).
    lgd_context,
    /// float32 data on a context's backend (`<lgd/tensor.h>`).
    lgd_tensor,
    /// A denoiser D(x, sigma) and its VJP (`<lgd/model.h>`).
    lgd_model,
    /// A loss l(x0) with its gradient (`<lgd/loss.h>`).
    lgd_loss,
    /// A guidance estimator (`<lgd/guidance.h>`).
    lgd_guidance,
    /// A sampler (`<lgd/sampler.h>`).
    lgd_sampler,
    /// A network loaded from a file (`<lgd/network.h>`).
    lgd_network,
}

// ---- enums ----

enums! {
    /// Status of every fallible call (`<lgd/common.h>`): 0 is success, errors are stable
    /// negative numbers.
    enum lgd_status {
        LGD_OK = 0,
        LGD_ERR_INVALID_ARGUMENT = -1,
        LGD_ERR_OUT_OF_MEMORY = -2,
        LGD_ERR_SHAPE_MISMATCH = -3,
        LGD_ERR_NON_FINITE = -4,
        LGD_ERR_CALLBACK = -5,
        LGD_ERR_UNSUPPORTED = -6,
        LGD_ERR_BACKEND_UNAVAILABLE = -7,
        LGD_ERR_ABORTED = -8,
        LGD_ERR_STATE = -9,
        LGD_ERR_IO = -10,
        LGD_ERR_FORMAT = -11,
        LGD_ERR_INTERNAL = -12,
    }
    /// Where a callback wants its buffers, or where a wrapped tensor's memory lives.
    enum lgd_memory {
        LGD_MEMORY_HOST = 0,
        LGD_MEMORY_DEVICE = 1,
    }
    /// Which tensor backend a context runs on (`<lgd/context.h>`).
    enum lgd_backend_kind {
        LGD_BACKEND_AUTO = 0,
        LGD_BACKEND_CPU = 1,
        LGD_BACKEND_CUDA = 2,
    }
    /// Severity of a log message.
    enum lgd_log_level {
        LGD_LOG_ERROR = 0,
        LGD_LOG_WARNING = 1,
        LGD_LOG_INFO = 2,
        LGD_LOG_DEBUG = 3,
    }
    /// Covariance layout of a Gaussian mixture (`<lgd/model.h>`).
    enum lgd_covariance {
        LGD_COVARIANCE_FULL = 0,
        LGD_COVARIANCE_DIAGONAL = 1,
        LGD_COVARIANCE_ISOTROPIC = 2,
    }
    /// The estimator of the guidance term (`<lgd/guidance.h>`).
    enum lgd_guidance_kind {
        LGD_GUIDANCE_NONE = 0,
        LGD_GUIDANCE_DPS = 1,
        LGD_GUIDANCE_MC = 2,
        LGD_GUIDANCE_EXACT = 3,
        LGD_GUIDANCE_MC_GRADIENT_FREE = 4,
    }
    /// How the step weight lambda(sigma) is computed.
    enum lgd_step_rule {
        LGD_STEP_SCORE = 0,
        LGD_STEP_X0 = 1,
        LGD_STEP_NORMALIZED = 2,
    }
    /// A noise schedule (`<lgd/schedule.h>`).
    enum lgd_schedule_kind {
        LGD_SCHEDULE_KARRAS = 0,
        LGD_SCHEDULE_VP_LINEAR = 1,
        LGD_SCHEDULE_VP_COSINE = 2,
        LGD_SCHEDULE_USER = 3,
    }
    /// The integrator (`<lgd/sampler.h>`).
    enum lgd_sampler_kind {
        LGD_SAMPLER_EULER = 0,
        LGD_SAMPLER_DDIM = 1,
        LGD_SAMPLER_HEUN = 2,
        LGD_SAMPLER_DPMPP_2M = 3,
    }
    /// Flags of lgd_sampler_start() (passed as int32_t).
    enum lgd_start_flags {
        LGD_START_NOISY = 0,
        LGD_START_ADD_NOISE = 1,
    }
    /// What a network predicts (`<lgd/network.h>`).
    enum lgd_prediction {
        LGD_PREDICT_EPS = 0,
        LGD_PREDICT_X0 = 1,
        LGD_PREDICT_V = 2,
        LGD_PREDICT_EDM = 3,
    }
    /// What a network receives as its time input.
    enum lgd_time_input {
        LGD_TIME_DISCRETE = 0,
        LGD_TIME_DISCRETE_ROUND = 1,
        LGD_TIME_LOG_SIGMA = 2,
        LGD_TIME_SIGMA = 3,
    }
    /// Which matrix-free linear operator (`<lgd/operator.h>`, 0.5.0).
    enum lgd_operator_kind {
        LGD_OPERATOR_AVG_POOL = 0,
        LGD_OPERATOR_BICUBIC_DOWN = 1,
        LGD_OPERATOR_MASK = 2,
        LGD_OPERATOR_BLUR = 3,
    }
    /// How a network's output row is reduced to a loss (`<lgd/network_loss.h>`, 0.5.0).
    enum lgd_network_loss_kind {
        LGD_NETWORK_LOSS_CROSS_ENTROPY = 0,
        LGD_NETWORK_LOSS_SCALAR = 1,
        LGD_NETWORK_LOSS_SQUARED_ERROR = 2,
    }
    /// What a network loss's network receives (`<lgd/network_loss.h>`, 0.5.0).
    enum lgd_network_input {
        LGD_NETWORK_INPUT_CLEAN = 0,
        LGD_NETWORK_INPUT_NOISY = 1,
    }
}

// ---- numeric macros ----

macros! {
    /// Major version of the headers these declarations follow (`<lgd/version.h>`).
    LGD_VERSION_MAJOR: u32 = 0;
    /// Minor version of the headers.
    LGD_VERSION_MINOR: u32 = 5;
    /// Patch version of the headers.
    LGD_VERSION_PATCH: u32 = 0;
    /// major * 10000 + minor * 100 + patch; compare with lgd_version() at run time.
    LGD_VERSION_NUMBER: u32 =
        LGD_VERSION_MAJOR * 10000 + LGD_VERSION_MINOR * 100 + LGD_VERSION_PATCH;
    /// The most dimensions a tensor has (`<lgd/tensor.h>`).
    LGD_TENSOR_MAX_DIMS: i32 = 4;
    /// The largest n_samples lgd_guidance_create() accepts (`<lgd/guidance.h>`, 0.4.0).
    LGD_GUIDANCE_MAX_SAMPLES: i32 = 1 << 24;
    /// The plugin ABI version `<lgd/plugin.h>` describes (0.4.0).
    LGD_PLUGIN_ABI_VERSION: u32 = 1;
}

string_macros! {
    /// The name of the function a plugin exports (`<lgd/plugin.h>`).
    LGD_PLUGIN_ENTRY_SYMBOL = c"lgd_plugin_entry";
}

// ---- callback types ----

callback_types! {
    /// Receives log messages (`<lgd/context.h>`); must not unwind.
    type lgd_log_fn = fn(user: *mut c_void, level: lgd_log_level, message: *const c_char);
    /// Called once when a wrapped tensor is freed (`<lgd/tensor.h>`).
    type lgd_tensor_release_fn = fn(user: *mut c_void);
    /// Denoiser callback: xhat = D(x, sigma) (`<lgd/model.h>`).
    type lgd_denoise_fn = fn(user: *mut c_void, x: *const f32, sigma: f32, cond: *const f32,
                             batch: i64, dim: i64, xhat: *mut f32) -> i32;
    /// VJP callback: out = J^T v (`<lgd/model.h>`).
    type lgd_vjp_fn = fn(user: *mut c_void, x: *const f32, sigma: f32, cond: *const f32,
                         batch: i64, dim: i64, v: *const f32, out: *mut f32) -> i32;
    /// Loss callback (`<lgd/loss.h>`).
    type lgd_loss_fn = fn(user: *mut c_void, x: *const f32, batch: i64, n: i64, dim: i64,
                          loss: *mut f32, grad: *mut f32) -> i32;
    /// Loss callback told which draws it receives (0.3.0).
    type lgd_loss_draws_fn = fn(user: *mut c_void, x: *const f32, batch: i64, n: i64,
                                dim: i64, first_draw: i64, total_draws: i64,
                                loss: *mut f32, grad: *mut f32) -> i32;
    /// A user schedule for the MC radius r(sigma) (`<lgd/guidance.h>`).
    type lgd_radius_fn = fn(user: *mut c_void, sigma: f32) -> f32;
    /// Progress callback of lgd_sampler_run() (`<lgd/sampler.h>`); non-zero stops the run.
    type lgd_progress_fn = fn(user: *mut c_void, step: i32, num_steps: i32, sigma: f32,
                              report: *const lgd_guidance_report) -> i32;
    /// A raw network F(x_in, t) (`<lgd/network.h>`).
    type lgd_network_forward_fn = fn(user: *mut c_void, x_in: *const f32, t: f32,
                                     cond: *const f32, batch: i64, dim: i64,
                                     out: *mut f32) -> i32;
    /// out = (dF/dx_in)^T v.
    type lgd_network_vjp_fn = fn(user: *mut c_void, x_in: *const f32, t: f32,
                                 cond: *const f32, batch: i64, dim: i64, v: *const f32,
                                 out: *mut f32) -> i32;
    /// A plugin's loss constructor (`<lgd/plugin.h>`, 0.4.0).
    type lgd_plugin_loss_create_fn = fn(context: *mut lgd_context, dim: i64,
                                        config: *const c_char, out_loss: *mut *mut lgd_loss)
                                        -> i32;
    /// A plugin's model constructor.
    type lgd_plugin_model_create_fn = fn(context: *mut lgd_context, config: *const c_char,
                                         out_model: *mut *mut lgd_model) -> i32;
    /// A plugin's entry point (exported as LGD_PLUGIN_ENTRY_SYMBOL).
    type lgd_plugin_entry_fn = fn() -> *const lgd_plugin_info;
}

// ---- structs ----

structs! {
    /// Options for lgd_context_create() (`<lgd/context.h>`).
    struct lgd_context_options {
        struct_size: u32,
        backend: lgd_backend_kind,
        device_index: i32,
        num_threads: i32,
        log: lgd_log_fn,
        log_user: *mut c_void,
        log_level: lgd_log_level,
        cuda_module_path: *const c_char,
        check_callback_outputs: i32,
    }
    /// A model from host callbacks (`<lgd/model.h>`).
    struct lgd_model_callbacks {
        struct_size: u32,
        memory: lgd_memory,
        dim: i64,
        cond_dim: i64,
        denoise: lgd_denoise_fn,
        vjp: lgd_vjp_fn,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
        user: *mut c_void,
    }
    /// A loss from a host callback (`<lgd/loss.h>`).
    struct lgd_loss_callbacks {
        struct_size: u32,
        memory: lgd_memory,
        dim: i64,
        eval: lgd_loss_fn,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
        user: *mut c_void,
        eval_draws: lgd_loss_draws_fn,
    }
    /// Options of lgd_guidance_create() (`<lgd/guidance.h>`).
    struct lgd_guidance_options {
        struct_size: u32,
        kind: lgd_guidance_kind,
        n_samples: i32,
        chunk_size: i32,
        sigma_data: f32,
        radius: lgd_radius_fn,
        radius_user: *mut c_void,
        step_rule: lgd_step_rule,
        scale: f32,
        sigma_min_active: f32,
        sigma_max_active: f32,
        seed: u64,
    }
    /// Per-call guidance diagnostics (`<lgd/guidance.h>`).
    struct lgd_guidance_report {
        struct_size: u32,
        sigma: f32,
        mean_loss: f32,
        mean_ess: f32,
        min_ess: f32,
        mean_grad_norm: f32,
        mean_lambda: f32,
        active: i32,
        rows: i64,
        row_loss: *mut f32,
        row_ess: *mut f32,
        row_grad_norm: *mut f32,
        row_lambda: *mut f32,
    }
    /// Options of lgd_sampler_create() (`<lgd/sampler.h>`).
    struct lgd_sampler_options {
        struct_size: u32,
        kind: lgd_sampler_kind,
        steps: i32,
        schedule: lgd_schedule_kind,
        sigma_min: f32,
        sigma_max: f32,
        rho: f32,
        eta: f32,
        s_churn: f32,
        s_tmin: f32,
        s_tmax: f32,
        s_noise: f32,
        vp_timesteps: i32,
        vp_beta_start: f32,
        vp_beta_end: f32,
        sigmas: *const f32,
        n_sigmas: i32,
    }
    /// A raw network from host callbacks (`<lgd/network.h>`).
    struct lgd_network_callbacks {
        struct_size: u32,
        memory: lgd_memory,
        dim: i64,
        cond_dim: i64,
        forward: lgd_network_forward_fn,
        vjp: lgd_network_vjp_fn,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
        user: *mut c_void,
    }
    /// How a network is turned into D(x, sigma) (`<lgd/network.h>`).
    struct lgd_adapter_options {
        struct_size: u32,
        prediction: lgd_prediction,
        time_input: lgd_time_input,
        alphas_cumprod: *const f32,
        num_timesteps: i32,
        sigma_data: f32,
    }
    /// Where a trajectory's root lives in a sample (`<lgd/trajectory.h>`).
    struct lgd_trajectory_layout {
        struct_size: u32,
        frames: i64,
        frame_stride: i64,
        root_offset: i64,
        velocities: i32,
        velocity_scale: f32,
    }
    /// Options of lgd_loss_create_obstacle_avoidance() (`<lgd/trajectory.h>`).
    struct lgd_obstacle_options {
        struct_size: u32,
        sharpness: f32,
        obstacle_weight: f32,
        goal_weight: f32,
    }
    /// Options of lgd_model_create_trajectory_prior() (`<lgd/trajectory.h>`).
    struct lgd_trajectory_prior_options {
        struct_size: u32,
        frames: i32,
        headings: i32,
        turns: i32,
        max_turn: f32,
        speed: f32,
        gp_std: f32,
        gp_length: f32,
        jitter: f32,
    }
    /// A linear operator on images [channels][height][width] (`<lgd/operator.h>`, 0.5.0).
    struct lgd_operator_options {
        struct_size: u32,
        kind: lgd_operator_kind,
        channels: i64,
        height: i64,
        width: i64,
        factor: i32,
        blur_sigma: f32,
        blur_radius: i32,
        mask: *const f32,
    }
    /// Options of lgd_loss_create_network() (`<lgd/network_loss.h>`, 0.5.0).
    struct lgd_network_loss_options {
        struct_size: u32,
        kind: lgd_network_loss_kind,
        scale: f32,
        input: lgd_network_input,
        t: f32,
        sigma: f32,
        adapter: *const lgd_adapter_options,
        max_rows: i64,
    }
    /// One loss a plugin provides (`<lgd/plugin.h>`, 0.4.0).
    struct lgd_plugin_loss {
        name: *const c_char,
        description: *const c_char,
        create: lgd_plugin_loss_create_fn,
    }
    /// One model a plugin provides.
    struct lgd_plugin_model {
        name: *const c_char,
        description: *const c_char,
        create: lgd_plugin_model_create_fn,
    }
    /// What a plugin's entry point returns.
    struct lgd_plugin_info {
        struct_size: u32,
        abi_version: u32,
        lgd_version: u32,
        name: *const c_char,
        n_losses: i32,
        losses: *const lgd_plugin_loss,
        n_models: i32,
        models: *const lgd_plugin_model,
        lgd_version_fn: Option<unsafe extern "C" fn() -> u32>,
    }
}

// ---- functions ----

functions! {
    // <lgd/common.h>
    fn lgd_version() -> u32;
    fn lgd_version_string() -> *const c_char;
    fn lgd_status_string(status: lgd_status) -> *const c_char;

    // <lgd/context.h>
    fn lgd_context_options_init(options: *mut lgd_context_options, struct_size: u32)
        -> lgd_status;
    fn lgd_context_create(options: *const lgd_context_options,
                          out_context: *mut *mut lgd_context,
                          out_error: *mut *const c_char) -> lgd_status;
    fn lgd_context_destroy(context: *mut lgd_context);
    fn lgd_context_last_error(context: *const lgd_context) -> *const c_char;
    fn lgd_context_clear_error(context: *mut lgd_context);
    fn lgd_context_set_callback_error(context: *mut lgd_context, message: *const c_char);
    fn lgd_context_backend(context: *const lgd_context) -> lgd_backend_kind;
    fn lgd_context_backend_name(context: *const lgd_context) -> *const c_char;
    fn lgd_context_native_stream(context: *const lgd_context) -> *mut c_void;
    fn lgd_context_synchronize(context: *mut lgd_context) -> lgd_status;
    fn lgd_context_memory_usage(context: *const lgd_context, current_bytes: *mut usize,
                                peak_bytes: *mut usize);
    fn lgd_context_reset_peak_memory(context: *mut lgd_context);
    fn lgd_context_cancel(context: *mut lgd_context);
    fn lgd_context_reset_cancel(context: *mut lgd_context);
    fn lgd_context_retain(context: *mut lgd_context) -> *mut lgd_context;

    // <lgd/tensor.h>
    fn lgd_tensor_create(context: *mut lgd_context, ndim: i32, shape: *const i64,
                         out_tensor: *mut *mut lgd_tensor) -> lgd_status;
    fn lgd_tensor_create_2d(context: *mut lgd_context, batch: i64, dim: i64,
                            out_tensor: *mut *mut lgd_tensor) -> lgd_status;
    fn lgd_tensor_wrap(context: *mut lgd_context, memory: lgd_memory, ndim: i32,
                       shape: *const i64, data: *mut f32, release: lgd_tensor_release_fn,
                       user: *mut c_void, out_tensor: *mut *mut lgd_tensor) -> lgd_status;
    fn lgd_tensor_retain(tensor: *mut lgd_tensor) -> *mut lgd_tensor;
    fn lgd_tensor_destroy(tensor: *mut lgd_tensor);
    fn lgd_tensor_context(tensor: *const lgd_tensor) -> *mut lgd_context;
    fn lgd_tensor_ndim(tensor: *const lgd_tensor) -> i32;
    fn lgd_tensor_dim(tensor: *const lgd_tensor, axis: i32) -> i64;
    fn lgd_tensor_numel(tensor: *const lgd_tensor) -> i64;
    fn lgd_tensor_upload(tensor: *mut lgd_tensor, host: *const f32, count: i64) -> lgd_status;
    fn lgd_tensor_download(tensor: *const lgd_tensor, host: *mut f32, count: i64)
        -> lgd_status;
    fn lgd_tensor_copy(dst: *mut lgd_tensor, src: *const lgd_tensor) -> lgd_status;
    fn lgd_tensor_fill(tensor: *mut lgd_tensor, value: f32) -> lgd_status;
    fn lgd_tensor_data(tensor: *mut lgd_tensor) -> *mut f32;

    // <lgd/model.h>
    fn lgd_model_callbacks_init(callbacks: *mut lgd_model_callbacks, struct_size: u32)
        -> lgd_status;
    fn lgd_model_create_callbacks(context: *mut lgd_context,
                                  callbacks: *const lgd_model_callbacks,
                                  out_model: *mut *mut lgd_model) -> lgd_status;
    fn lgd_model_create_gmm(context: *mut lgd_context, dim: i64, components: i64,
                            weights: *const f32, means: *const f32, covariances: *const f32,
                            layout: lgd_covariance, out_model: *mut *mut lgd_model)
        -> lgd_status;
    fn lgd_model_destroy(model: *mut lgd_model);
    fn lgd_model_dim(model: *const lgd_model) -> i64;
    fn lgd_model_cond_dim(model: *const lgd_model) -> i64;
    fn lgd_model_denoise(model: *mut lgd_model, x: *const lgd_tensor, sigma: f32,
                         cond: *const lgd_tensor, out: *mut lgd_tensor) -> lgd_status;
    fn lgd_model_vjp(model: *mut lgd_model, x: *const lgd_tensor, sigma: f32,
                     cond: *const lgd_tensor, v: *const lgd_tensor, out: *mut lgd_tensor)
        -> lgd_status;
    fn lgd_model_score(model: *mut lgd_model, x: *const lgd_tensor, sigma: f32,
                       cond: *const lgd_tensor, out: *mut lgd_tensor) -> lgd_status;
    fn lgd_model_log_density(model: *mut lgd_model, x: *const lgd_tensor, sigma: f32,
                             out: *mut lgd_tensor) -> lgd_status;
    fn lgd_model_has_exact_posterior(model: *const lgd_model) -> i32;
    fn lgd_model_sample_posterior(model: *mut lgd_model, x: *const lgd_tensor, sigma: f32,
                                  seed: u64, first_row: u64, out: *mut lgd_tensor)
        -> lgd_status;
    fn lgd_model_retain(model: *mut lgd_model) -> *mut lgd_model;
    fn lgd_model_context(model: *const lgd_model) -> *mut lgd_context;

    // <lgd/loss.h>
    fn lgd_loss_callbacks_init(callbacks: *mut lgd_loss_callbacks, struct_size: u32)
        -> lgd_status;
    fn lgd_loss_create_callbacks(context: *mut lgd_context,
                                 callbacks: *const lgd_loss_callbacks,
                                 out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_loss_create_squared_error(context: *mut lgd_context, dim: i64, target: *const f32,
                                     target_rows: i64, weights: *const f32,
                                     out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_loss_create_linear(context: *mut lgd_context, dim: i64, m: i64, H: *const f32,
                              y: *const f32, target_rows: i64, noise_sigma: f32,
                              out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_loss_create_logistic(context: *mut lgd_context, dim: i64, a: *const f32, b: f32,
                                out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_loss_create_sum(context: *mut lgd_context, count: i32, terms: *const *mut lgd_loss,
                           weights: *const f32, out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_loss_destroy(loss: *mut lgd_loss);
    fn lgd_loss_dim(loss: *const lgd_loss) -> i64;
    fn lgd_loss_eval(loss: *mut lgd_loss, x: *const lgd_tensor, out_loss: *mut lgd_tensor,
                     out_grad: *mut lgd_tensor) -> lgd_status;
    fn lgd_loss_retain(loss: *mut lgd_loss) -> *mut lgd_loss;
    fn lgd_loss_context(loss: *const lgd_loss) -> *mut lgd_context;

    // <lgd/guidance.h>
    fn lgd_guidance_options_init(options: *mut lgd_guidance_options, struct_size: u32)
        -> lgd_status;
    fn lgd_guidance_report_init(report: *mut lgd_guidance_report, struct_size: u32)
        -> lgd_status;
    fn lgd_guidance_create(context: *mut lgd_context, model: *mut lgd_model,
                           loss: *mut lgd_loss, options: *const lgd_guidance_options,
                           out_guidance: *mut *mut lgd_guidance) -> lgd_status;
    fn lgd_guidance_destroy(guidance: *mut lgd_guidance);
    fn lgd_guidance_mc(context: *mut lgd_context, model: *mut lgd_model, loss: *mut lgd_loss,
                       n_samples: i32, out_guidance: *mut *mut lgd_guidance) -> lgd_status;
    fn lgd_guidance_set_condition(guidance: *mut lgd_guidance, cond: *const lgd_tensor)
        -> lgd_status;
    fn lgd_guidance_set_seed(guidance: *mut lgd_guidance, seed: u64);
    fn lgd_guidance_radius(guidance: *const lgd_guidance, sigma: f32) -> f32;
    fn lgd_guidance_term(guidance: *mut lgd_guidance, x: *const lgd_tensor, sigma: f32,
                         step_index: i32, first_row: u64, out_g: *mut lgd_tensor,
                         out_xhat: *mut lgd_tensor, report: *mut lgd_guidance_report)
        -> lgd_status;
    fn lgd_guidance_denoise(guidance: *mut lgd_guidance, x: *const lgd_tensor, sigma: f32,
                            step_index: i32, first_row: u64, out: *mut lgd_tensor,
                            report: *mut lgd_guidance_report) -> lgd_status;
    fn lgd_guidance_retain(guidance: *mut lgd_guidance) -> *mut lgd_guidance;
    fn lgd_guidance_context(guidance: *const lgd_guidance) -> *mut lgd_context;

    // <lgd/schedule.h>
    fn lgd_vp_alphas_cumprod(kind: lgd_schedule_kind, num_timesteps: i32, beta_start: f32,
                             beta_end: f32, out: *mut f32) -> lgd_status;
    fn lgd_schedule_karras(steps: i32, sigma_min: f32, sigma_max: f32, rho: f32,
                           out: *mut f32) -> lgd_status;
    fn lgd_schedule_vp(kind: lgd_schedule_kind, num_timesteps: i32, beta_start: f32,
                       beta_end: f32, steps: i32, out: *mut f32) -> lgd_status;

    // <lgd/sampler.h>
    fn lgd_sampler_options_init(options: *mut lgd_sampler_options, struct_size: u32)
        -> lgd_status;
    fn lgd_sampler_create(guidance: *mut lgd_guidance, options: *const lgd_sampler_options,
                          out_sampler: *mut *mut lgd_sampler) -> lgd_status;
    fn lgd_sampler_destroy(sampler: *mut lgd_sampler);
    fn lgd_sampler_num_steps(sampler: *const lgd_sampler) -> i32;
    fn lgd_sampler_sigmas(sampler: *const lgd_sampler, out: *mut f32, count: i64)
        -> lgd_status;
    fn lgd_sampler_init(sampler: *mut lgd_sampler, x: *mut lgd_tensor, seed: u64,
                        first_row: u64) -> lgd_status;
    fn lgd_sampler_start(sampler: *mut lgd_sampler, x: *mut lgd_tensor, start_step: i32,
                         flags: i32, seed: u64, first_row: u64) -> lgd_status;
    fn lgd_sampler_step(sampler: *mut lgd_sampler, x: *mut lgd_tensor,
                        report: *mut lgd_guidance_report) -> lgd_status;
    fn lgd_sampler_step_index(sampler: *const lgd_sampler) -> i32;
    fn lgd_sampler_sigma(sampler: *const lgd_sampler) -> f32;
    fn lgd_sampler_done(sampler: *const lgd_sampler) -> i32;
    fn lgd_sampler_run(sampler: *mut lgd_sampler, x: *mut lgd_tensor, seed: u64,
                       first_row: u64, progress: lgd_progress_fn, user: *mut c_void)
        -> lgd_status;
    fn lgd_sampler_run_from(sampler: *mut lgd_sampler, x: *mut lgd_tensor, start_step: i32,
                            flags: i32, seed: u64, first_row: u64, progress: lgd_progress_fn,
                            user: *mut c_void) -> lgd_status;
    fn lgd_sampler_retain(sampler: *mut lgd_sampler) -> *mut lgd_sampler;
    fn lgd_sampler_context(sampler: *const lgd_sampler) -> *mut lgd_context;

    // <lgd/network.h>
    fn lgd_network_callbacks_init(callbacks: *mut lgd_network_callbacks, struct_size: u32)
        -> lgd_status;
    fn lgd_adapter_options_init(options: *mut lgd_adapter_options, struct_size: u32)
        -> lgd_status;
    fn lgd_model_create_network_callbacks(context: *mut lgd_context,
                                          network: *const lgd_network_callbacks,
                                          options: *const lgd_adapter_options,
                                          out_model: *mut *mut lgd_model) -> lgd_status;
    /// Deprecated since 0.3.0: the old name of lgd_model_create_network_callbacks().
    fn lgd_model_create_network(context: *mut lgd_context,
                                network: *const lgd_network_callbacks,
                                options: *const lgd_adapter_options,
                                out_model: *mut *mut lgd_model) -> lgd_status;
    fn lgd_model_network_time(model: *const lgd_model, sigma: f32, out_t: *mut f32)
        -> lgd_status;
    fn lgd_network_load(context: *mut lgd_context, path: *const c_char,
                        out_network: *mut *mut lgd_network) -> lgd_status;
    fn lgd_network_load_memory(context: *mut lgd_context, data: *const c_void, size: usize,
                               out_network: *mut *mut lgd_network) -> lgd_status;
    fn lgd_network_destroy(network: *mut lgd_network);
    fn lgd_network_dim(network: *const lgd_network) -> i64;
    fn lgd_network_out_dim(network: *const lgd_network) -> i64;
    fn lgd_network_cond_dim(network: *const lgd_network) -> i64;
    fn lgd_network_parameter_count(network: *const lgd_network) -> i64;
    fn lgd_network_metadata(network: *const lgd_network, key: *const c_char)
        -> *const c_char;
    fn lgd_network_adapter_options(network: *const lgd_network,
                                   out_options: *mut lgd_adapter_options) -> lgd_status;
    fn lgd_network_forward(network: *mut lgd_network, x_in: *const lgd_tensor, t: f32,
                           cond: *const lgd_tensor, out: *mut lgd_tensor) -> lgd_status;
    fn lgd_network_vjp(network: *mut lgd_network, x_in: *const lgd_tensor, t: f32,
                       cond: *const lgd_tensor, v: *const lgd_tensor, out: *mut lgd_tensor,
                       out_forward: *mut lgd_tensor) -> lgd_status;
    fn lgd_model_create_from_network(context: *mut lgd_context, network: *mut lgd_network,
                                     options: *const lgd_adapter_options,
                                     out_model: *mut *mut lgd_model) -> lgd_status;
    fn lgd_model_load(context: *mut lgd_context, path: *const c_char,
                      out_model: *mut *mut lgd_model) -> lgd_status;
    fn lgd_network_retain(network: *mut lgd_network) -> *mut lgd_network;
    fn lgd_network_context(network: *const lgd_network) -> *mut lgd_context;

    // <lgd/trajectory.h>
    fn lgd_trajectory_layout_init(layout: *mut lgd_trajectory_layout, struct_size: u32)
        -> lgd_status;
    fn lgd_loss_create_path(context: *mut lgd_context, dim: i64,
                            layout: *const lgd_trajectory_layout, path: *const f32,
                            target_rows: i64, out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_obstacle_options_init(options: *mut lgd_obstacle_options, struct_size: u32)
        -> lgd_status;
    fn lgd_loss_create_obstacle_avoidance(context: *mut lgd_context, dim: i64,
                                          layout: *const lgd_trajectory_layout,
                                          goal: *const f32, target_rows: i64,
                                          obstacles: *const f32, count: i64,
                                          options: *const lgd_obstacle_options,
                                          out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_trajectory_prior_options_init(options: *mut lgd_trajectory_prior_options,
                                         struct_size: u32) -> lgd_status;
    fn lgd_model_create_trajectory_prior(context: *mut lgd_context,
                                         options: *const lgd_trajectory_prior_options,
                                         out_model: *mut *mut lgd_model) -> lgd_status;

    // <lgd/plugin.h> (0.4.0)
    fn lgd_loss_load_plugin(context: *mut lgd_context, path: *const c_char,
                            name: *const c_char, dim: i64, config: *const c_char,
                            out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_model_load_plugin(context: *mut lgd_context, path: *const c_char,
                             name: *const c_char, config: *const c_char,
                             out_model: *mut *mut lgd_model) -> lgd_status;

    // <lgd/operator.h> (0.5.0)
    fn lgd_operator_options_init(options: *mut lgd_operator_options, struct_size: u32)
        -> lgd_status;
    fn lgd_operator_dims(context: *mut lgd_context, options: *const lgd_operator_options,
                         out_dim: *mut i64, out_m: *mut i64) -> lgd_status;
    fn lgd_operator_apply(context: *mut lgd_context, options: *const lgd_operator_options,
                          adjoint: i32, x: *const lgd_tensor, out: *mut lgd_tensor)
        -> lgd_status;
    fn lgd_loss_create_operator(context: *mut lgd_context,
                                options: *const lgd_operator_options, y: *const f32,
                                target_rows: i64, s2: f32, out_loss: *mut *mut lgd_loss)
        -> lgd_status;

    // <lgd/network_loss.h> (0.5.0)
    fn lgd_network_loss_options_init(options: *mut lgd_network_loss_options, struct_size: u32)
        -> lgd_status;
    fn lgd_loss_create_network(context: *mut lgd_context, network: *mut lgd_network,
                               options: *const lgd_network_loss_options,
                               out_loss: *mut *mut lgd_loss) -> lgd_status;
    fn lgd_loss_network_set_labels(loss: *mut lgd_loss, labels: *const i32, rows: i64)
        -> lgd_status;
    fn lgd_loss_network_set_targets(loss: *mut lgd_loss, targets: *const f32, rows: i64,
                                    cols: i64) -> lgd_status;
    fn lgd_loss_network_eval_sigma(loss: *mut lgd_loss, x: *const lgd_tensor, sigma: f32,
                                   out_loss: *mut lgd_tensor, out_grad: *mut lgd_tensor)
        -> lgd_status;
    fn lgd_model_create_classifier_guided(context: *mut lgd_context, model: *mut lgd_model,
                                          loss: *mut lgd_loss, scale: f32,
                                          out_model: *mut *mut lgd_model) -> lgd_status;
}

/// The size of an options struct as the `*_init` functions and `struct_size` want it.
pub const fn struct_size_of<T>() -> u32 {
    core::mem::size_of::<T>() as u32
}
