//! Shared by the integration tests: contexts, the paper's 1-D mixture problem, a
//! logistic loss written in Rust, the network fixtures and a C compiler driver.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use lgd::{CallbackResult, Context, ContextOptions, Covariance, Loss, Model};

/// A CPU context with 2 threads and the callback output check on.
pub fn ctx() -> Context {
    let mut o = ContextOptions::default();
    o.num_threads = 2;
    o.check_callback_outputs = true;
    Context::with_options(&o).expect("CPU context")
}

/// The paper's mixture (examples/lgd/mixture_problem.c): prior 0.5 N(-1, 0.2^2) +
/// 0.5 N(1, 0.2^2), target N(-1, 0.2^2), the logistic loss's a and b from the log-odds.
pub struct Mixture {
    pub prior: Model,
    pub target: Model,
    pub a: f32,
    pub b: f32,
}

pub fn mixture(ctx: &Context) -> Mixture {
    let (w, m, s) = ([0.5f32, 0.5], [-1.0f32, 1.0], 0.2f32);
    let var = [s * s, s * s];
    let prior = Model::gaussian_mixture(ctx, 1, &w, &m, Covariance::Isotropic(&var)).unwrap();
    let target = Model::gaussian_mixture(ctx, 1, &[1.0], &m[..1], Covariance::Isotropic(&var[..1])).unwrap();
    let s2 = s as f64 * s as f64;
    let a = ((m[0] as f64 - m[1] as f64) / s2) as f32;
    let b = ((m[1] as f64 * m[1] as f64 - m[0] as f64 * m[0] as f64) / (2.0 * s2)
        + (w[0] as f64 / w[1] as f64).ln()) as f32;
    Mixture { prior, target, a, b }
}

// ---- liblgd's softplus and sigmoid, ported from src/core/hd_math.h ----
//
// The built-in logistic loss computes softplus and sigmoid with the branch-free
// polynomials of src/core/hd_math.h (lgd_exp_neg, lgd_log_pos, lgd_softplus_sigmoid),
// not with libm. These are line-by-line ports: the same f32 operations in the same order
// (Rust never contracts a * b + c into an FMA, and liblgd is compiled as ISO C11, which
// does not either), the same constants (f32 literals round like C's `f` suffix), bit
// casts with to_bits / from_bits as C's memcpy, and i32 division truncating as C's, so
// the results are the C functions' to the bit. Keep them in step with hd_math.h.

/// exp(-a) for a in [0, 104]: lgd_exp_neg (Cody-Waite reduction, Taylor polynomial of
/// degree 7, 2^n from the exponent bits in two factors).
pub fn exp_neg(a: f32) -> f32 {
    let x = -a;
    let t = x * 1.442_695_040_888_963_41_f32;
    let n = (t + 12_582_912.0) - 12_582_912.0; // round to nearest (|t| < 2^22)
    let r = (x - n * 0.693_359_375) + n * 2.121_944_40e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.666_666_72e-1
                    + r * (4.166_666_79e-2
                        + r * (8.333_333_77e-3 + r * (1.388_888_92e-3 + r * 1.984_127_01e-4))))));
    let ni = n as i32;
    let n1 = ni / 2; // truncates toward zero, as C
    let n2 = ni - n1;
    let f1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let f2 = f32::from_bits(((n2 + 127) as u32) << 23);
    p * f1 * f2
}

/// log(x) for finite normal x > 0: lgd_log_pos (x = 2^e m, m in [sqrt(1/2), sqrt(2)),
/// log m = 2 atanh(s) by its odd series to s^9, plus e ln 2 in two parts).
pub fn log_pos(x: f32) -> f32 {
    let b = x.to_bits();
    let mant = b & 0x007f_ffff;
    let big = (mant >= 0x0035_04f3) as u32; // m >= sqrt(2): use m / 2, e + 1
    let e = (b >> 23) as i32 - 127 + big as i32;
    let m = f32::from_bits((mant | 0x3f80_0000) - (big << 23));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = s2 * (0.333_333_333 + s2 * (0.2 + s2 * (0.142_857_143 + s2 * 0.111_111_111)));
    let ef = e as f32;
    ef * 0.693_145_752 + (2.0 * s + (2.0 * s * p + ef * 1.428_606_77e-6))
}

/// (softplus(t), sigmoid(t)) as lgd_softplus_sigmoid: e = exp(-|t|) (|t| clamped at
/// 104), softplus = max(t, 0) + log1p(e) with log1p from log_pos(1 + e) and the rounding
/// of 1 + e corrected, sigmoid = 1 / (1 + e) or e / (1 + e) by t's sign, selected on bits.
pub fn softplus_sigmoid(t: f32) -> (f32, f32) {
    let tb = t.to_bits();
    let ab = tb & 0x7fff_ffff;
    let nan = 0u32.wrapping_sub((ab > 0x7f80_0000) as u32);
    let cb = if ab > 0x42d0_0000 { 0x42d0_0000 } else { ab }; // 104.0
    let e = exp_neg(f32::from_bits(cb));
    let w = 1.0 + e;
    let log1p_e = log_pos(w) + (e - (w - 1.0)) / w;
    let neg = 0u32.wrapping_sub(tb >> 31); // all ones when the sign bit is set
    let pos = f32::from_bits(tb & !neg); // max(t, 0)
    let softplus = f32::from_bits((pos + log1p_e).to_bits() | nan);
    let v = 1.0 / w;
    let ev = e * v;
    let sigmoid = f32::from_bits((v.to_bits() & !neg) | (ev.to_bits() & neg));
    (softplus, sigmoid)
}

/// softplus(t) = log(1 + e^t) as liblgd computes it (softplus_sigmoid).
pub fn softplus(t: f32) -> f32 {
    softplus_sigmoid(t).0
}

/// sigmoid(t) as liblgd computes it (softplus_sigmoid).
pub fn sigmoid(t: f32) -> f32 {
    softplus_sigmoid(t).1
}

/// The logistic loss -log sigmoid(a . x + b) in Rust, computed as the built-in's CPU
/// kernel does (logistic_rows in src/losses/loss_kernels_cpu.c): z = a . x + b in double
/// (for dim > 1 with eight partial sums, element j to sum j % 8, added in a fixed tree,
/// then b + the tree; for dim 1 b + a[0] x), t = -(f32)z, then softplus_sigmoid(t):
/// loss softplus(t), gradient -sigmoid(t) a.
pub fn logistic_fn(
    a: Vec<f32>,
    b: f32,
) -> impl FnMut(&[f32], &mut [f32], Option<&mut [f32]>) -> CallbackResult {
    move |x, loss, mut grad| {
        let dim = a.len();
        for (r, l) in loss.iter_mut().enumerate() {
            let xr = &x[r * dim..(r + 1) * dim];
            let z = if dim == 1 {
                b as f64 + a[0] as f64 * xr[0] as f64
            } else {
                let mut acc = [0.0f64; 8];
                for j in 0..dim {
                    acc[j % 8] += a[j] as f64 * xr[j] as f64;
                }
                let tree = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
                b as f64 + tree
            };
            let (sp, sg) = softplus_sigmoid(-(z as f32));
            *l = sp;
            if let Some(g) = grad.as_deref_mut() {
                let s = -sg;
                for j in 0..dim {
                    g[r * dim + j] = s * a[j];
                }
            }
        }
        Ok(())
    }
}

pub fn logistic_closure_loss(ctx: &Context, a: f32, b: f32) -> Loss {
    Loss::from_fn(ctx, 1, logistic_fn(vec![a], b)).unwrap()
}

/// The repository's root (bindings/rust/lgd/../../..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join("nn").join(name)
}

/// A tensor of a safetensors file (F32 only): its shape and values.
pub fn safetensors_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let key = format!("\"{name}\":");
    let start =
        header.find(&key).unwrap_or_else(|| panic!("{}: no tensor {name}", path.display())) + key.len();
    let obj = &header[start..start + header[start..].find('}').unwrap()];
    let field = |f: &str| -> &str {
        let i = obj.find(&format!("\"{f}\"")).unwrap() + f.len() + 2;
        obj[i..].trim_start_matches([':', ' '])
    };
    assert!(field("dtype").starts_with("\"F32\""), "{name} is not F32");
    let list = |s: &str| -> Vec<usize> {
        let s = &s[1..s.find(']').unwrap()];
        s.split(',').filter(|v| !v.trim().is_empty()).map(|v| v.trim().parse().unwrap()).collect()
    };
    let shape = list(field("shape"));
    let off = list(field("data_offsets"));
    let data = &bytes[8 + n + off[0]..8 + n + off[1]];
    let values = data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    (shape, values)
}

/// Compiles a C program against the same liblgd (headers and link flags from lgd-sys)
/// and returns its executable.
pub fn compile_c(src: &Path, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lgd-c");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join(name);
    let cc = std::env::var("CC").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(cc.split_whitespace().next().unwrap());
    cmd.args(cc.split_whitespace().skip(1));
    cmd.args(["-std=c11", "-Wall", "-Werror", "-o"]).arg(&exe).arg(src);
    for d in std::env::split_paths(env!("LGD_INCLUDE_DIRS")).filter(|d| !d.as_os_str().is_empty()) {
        cmd.arg(format!("-I{}", d.display()));
    }
    cmd.args(env!("LGD_C_LINK").split('\u{1f}').filter(|a| !a.is_empty()));
    cmd.arg("-lm");
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed ({:?}):\n{}",
        src.display(),
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// max |a - b| / max |b|
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max);
    let den = b.iter().map(|y| (*y as f64).abs()).fold(0.0, f64::max);
    num / den
}
