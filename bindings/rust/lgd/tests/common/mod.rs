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

/// softplus(t) as liblgd's lgd_softplus (src/core/hd_math.h): libm's expf and log1pf.
pub fn softplus(t: f32) -> f32 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

/// sigmoid(t) as liblgd's lgd_sigmoid.
pub fn sigmoid(t: f32) -> f32 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        t.exp() / (1.0 + t.exp())
    }
}

/// The logistic loss -log sigmoid(a . x + b) in Rust, computed as the built-in's CPU
/// kernel does (src/losses/loss_kernels_cpu.c): z in double, then float softplus and
/// sigmoid.
pub fn logistic_fn(
    a: Vec<f32>,
    b: f32,
) -> impl FnMut(&[f32], &mut [f32], Option<&mut [f32]>) -> CallbackResult {
    move |x, loss, mut grad| {
        let dim = a.len();
        for (r, l) in loss.iter_mut().enumerate() {
            let mut z = b as f64;
            for j in 0..dim {
                z += a[j] as f64 * x[r * dim + j] as f64;
            }
            *l = softplus(-(z as f32));
            if let Some(g) = grad.as_deref_mut() {
                let s = -sigmoid(-(z as f32));
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
