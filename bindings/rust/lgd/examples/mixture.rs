//! The KL table of `lgd mixture` (the LGD paper's 1-D Gaussian mixture, Sec. 6.1 and
//! App. B.1), with the loss written in Rust.
//!
//! Prior  p0(x0) = 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), an exact Gaussian mixture.
//! Loss   l(x0) = -log p(y = 0 | x0) = softplus(-(a x0 + b)) with a, b from the mixture's
//!        log-odds (a = -50, b = 0), here a Rust closure; the guided target
//!        p0(x0) exp(-l(x0)) / Z is exactly N(-1, 0.2^2).
//! Every method (unguided, exact, exact importance sampling with 100 draws, DPS, LGD-MC
//! for each n of --n) samples --samples rows per seed with DDIM (eta 0), 20 Karras steps
//! from 80 to 0.002 (rho 7) and the score step rule at scale 1, as examples/lgd does;
//! the table gives each method's mean, std and KL(N(-1, 0.2^2) || N(mean, std^2)) over
//! the seeds, then the paper's protocol (the consecutive blocks of --paper-samples rows
//! of every run). Noise and Monte Carlo draws are keyed by (seed, step, row), so the
//! numbers equal `lgd mixture`'s for the same options (docs/rust.md), except the timing
//! column; --builtin-loss uses liblgd's built-in logistic loss instead of the closure.
//!
//! usage: cargo run --release --example mixture -- [--samples N] [--paper-samples N]
//!        [--steps N] [--sampler ddim|euler|heun|dpmpp2m] [--eta E] [--seed S]
//!        [--seeds K] [--n LIST] [--threads N] [--builtin-loss]
use std::process::ExitCode;
use std::time::Instant;

use lgd::{
    CallbackResult, Context, ContextOptions, Covariance, Guidance, GuidanceKind, GuidanceOptions, Loss,
    Model, Sampler, SamplerKind, SamplerOptions, ScheduleKind, StepRule,
};

// ---- the experiment's fixed data (examples/lgd/mixture_problem.c) ----

const WEIGHTS: [f32; 2] = [0.5, 0.5];
const MEANS: [f32; 2] = [-1.0, 1.0];
const STD: f32 = 0.2;
const EXACT_IS_DRAWS: i32 = 100;

struct Config {
    samples: usize,
    paper_samples: usize,
    steps: i32,
    sampler: SamplerKind,
    sampler_name: String,
    eta: f32,
    seed: u64,
    seeds: usize,
    mc: Vec<i32>,
    threads: i32,
    builtin_loss: bool,
}

fn parse_args() -> Result<Config, String> {
    let mut c = Config {
        samples: 10000,
        paper_samples: 100,
        steps: 20,
        sampler: SamplerKind::Ddim,
        sampler_name: "ddim".into(),
        eta: 0.0,
        seed: 0,
        seeds: 5,
        mc: vec![10, 100],
        threads: 0,
        builtin_loss: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        if name == "--builtin-loss" {
            c.builtin_loss = true;
            continue;
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        let bad = |what: &str| format!("{name} needs {what}, not {value:?}");
        match name.as_str() {
            "--samples" => {
                c.samples = value.parse().ok().filter(|&n| n >= 2).ok_or_else(|| bad("an integer >= 2"))?
            }
            "--paper-samples" => {
                c.paper_samples =
                    value.parse().ok().filter(|&n| n >= 2).ok_or_else(|| bad("an integer >= 2"))?
            }
            "--steps" => {
                c.steps = value.parse().ok().filter(|&n| n >= 1).ok_or_else(|| bad("an integer >= 1"))?
            }
            "--seed" => c.seed = value.parse().map_err(|_| bad("an integer"))?,
            "--seeds" => {
                c.seeds = value.parse().ok().filter(|&n| n >= 1).ok_or_else(|| bad("an integer >= 1"))?
            }
            "--threads" => {
                c.threads = value.parse().ok().filter(|&n| n >= 0).ok_or_else(|| bad("an integer >= 0"))?
            }
            "--eta" => {
                c.eta = value
                    .parse()
                    .ok()
                    .filter(|e| (0.0..=1.0).contains(e))
                    .ok_or_else(|| bad("a number in [0, 1]"))?
            }
            "--n" => {
                c.mc = value
                    .split(',')
                    .map(|v| v.trim().parse().ok().filter(|&n| n >= 1))
                    .collect::<Option<Vec<i32>>>()
                    .filter(|v| !v.is_empty() && v.len() <= 8)
                    .ok_or_else(|| bad("positive integers, comma-separated"))?
            }
            "--sampler" => {
                c.sampler = match value.as_str() {
                    "ddim" => SamplerKind::Ddim,
                    "euler" => SamplerKind::Euler,
                    "heun" => SamplerKind::Heun,
                    "dpmpp2m" => SamplerKind::DpmPp2M,
                    _ => return Err(bad("ddim, euler, heun or dpmpp2m")),
                };
                c.sampler_name = value.clone();
            }
            _ => return Err(format!("unknown option {name}")),
        }
    }
    if c.eta != 0.0 && c.sampler != SamplerKind::Ddim {
        return Err("--eta applies to the ddim sampler only".into());
    }
    Ok(c)
}

// ---- the loss, in Rust ----

// liblgd's built-in logistic loss computes softplus and sigmoid with the branch-free
// polynomials of src/core/hd_math.h (lgd_exp_neg, lgd_log_pos, lgd_softplus_sigmoid),
// not with libm. The three functions below are line-by-line ports: the same f32
// operations in the same order (Rust never contracts a * b + c into an FMA; liblgd is
// ISO C11, which does not either), the same constants, bit casts with to_bits /
// from_bits, i32 division truncating as C's, so the loss is the built-in's to the bit.

/// exp(-a) for a in [0, 104], as lgd_exp_neg: -a = n ln2 + r (Cody-Waite), exp(r) by
/// its Taylor polynomial of degree 7, times 2^n built from exponent bits in two factors.
fn exp_neg(a: f32) -> f32 {
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

/// log(x) for finite normal x > 0, as lgd_log_pos: x = 2^e m with m in [sqrt(1/2),
/// sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) by its odd series, plus e ln 2 in two parts.
fn log_pos(x: f32) -> f32 {
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

/// (softplus(t), sigmoid(t)) = (log(1 + e^t), 1 / (1 + e^-t)) without overflow or
/// cancellation, as lgd_softplus_sigmoid: e = exp(-|t|) (|t| clamped at 104), softplus =
/// max(t, 0) + log1p(e) with log1p from log_pos(1 + e) and the rounding of 1 + e
/// corrected, sigmoid = 1 / (1 + e) or e / (1 + e) by t's sign, selected on bits.
fn softplus_sigmoid(t: f32) -> (f32, f32) {
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

/// l(x) = -log sigmoid(a x + b) = softplus(-(a x + b)), d l / dx = -sigmoid(-(a x + b)) a,
/// with a x + b in double as liblgd's CPU kernel does for dim 1 (logistic_rows in
/// src/losses/loss_kernels_cpu.c), so that the values are the built-in's to the bit.
fn logistic_loss(a: f32, b: f32) -> impl FnMut(&[f32], &mut [f32], Option<&mut [f32]>) -> CallbackResult {
    move |x, loss, mut grad| {
        for (i, l) in loss.iter_mut().enumerate() {
            let z = b as f64 + a as f64 * x[i] as f64;
            let (sp, sg) = softplus_sigmoid(-(z as f32));
            *l = sp;
            if let Some(g) = grad.as_deref_mut() {
                g[i] = -sg * a;
            }
        }
        Ok(())
    }
}

// ---- the statistics (examples/lgd/sample_stats.c) ----

/// KL(N(m1, s1^2) || N(m2, s2^2)).
fn kl_gauss(m1: f64, s1: f64, m2: f64, s2: f64) -> f64 {
    if s2.is_nan() || s2 <= 0.0 {
        return f64::INFINITY;
    }
    (s2 / s1).ln() + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2.0 * s2 * s2) - 0.5
}

/// Mean and sample standard deviation (n - 1) of floats, in double.
fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let s2: f64 = v.iter().map(|&x| (x as f64 - m) * (x as f64 - m)).sum();
    (m, (s2 / (n - 1.0)).sqrt())
}

/// Mean and standard deviation (n - 1; 0 for n = 1) of doubles.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s2: f64 = v.iter().map(|&x| (x - m) * (x - m)).sum();
    (m, if v.len() > 1 { (s2 / (n - 1.0)).sqrt() } else { 0.0 })
}

/// Quantiles by linear interpolation between order statistics (v is sorted).
fn quantiles(v: &mut [f64], q: &[f64]) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    q.iter()
        .map(|&qj| {
            let pos = qj * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = if lo + 1 < n { lo + 1 } else { lo };
            v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
        })
        .collect()
}

const SUMMARY_Q: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

struct Summary {
    mean: (f64, f64),
    std: (f64, f64),
    kl: (f64, f64),
    kl_q: Vec<f64>,
}

fn summarize(mean: &[f64], std: &[f64], kl: &[f64]) -> Summary {
    Summary {
        mean: mean_sd(mean),
        std: mean_sd(std),
        kl: mean_sd(kl),
        kl_q: quantiles(&mut kl.to_vec(), &SUMMARY_Q),
    }
}

// ---- the methods (examples/lgd/mixture_sampling.c) ----

struct Method {
    name: String,
    kind: GuidanceKind,
    n: i32,
    on_target: bool,
    sampler: Sampler,
    guidance: Guidance,
    run_mean: Vec<f64>,
    run_std: Vec<f64>,
    run_kl: Vec<f64>,
    run_sec: Vec<f64>,
    blk_mean: Vec<f64>,
    blk_std: Vec<f64>,
    blk_kl: Vec<f64>,
}

/// The problem: the prior, the target (component 0 alone) and the loss.
struct Problem {
    prior: Model,
    target: Model,
    loss: Loss,
}

/// A method's guidance and sampler (mix_method_setup): `on_target` samples the target
/// model unguided (exact guidance, whose guided score is the target's score).
fn method(
    cfg: &Config,
    pb: &Problem,
    name: String,
    kind: GuidanceKind,
    n: i32,
    on_target: bool,
) -> lgd::Result<Method> {
    let mut go = GuidanceOptions {
        kind,
        step_rule: StepRule::Score,
        scale: 1.0,
        seed: cfg.seed,
        ..GuidanceOptions::default()
    };
    if n > 0 {
        go.n_samples = n;
    }
    let model = if on_target { &pb.target } else { &pb.prior };
    let guidance = Guidance::new(model, (kind != GuidanceKind::None).then_some(&pb.loss), &go)?;
    let so = SamplerOptions {
        kind: cfg.sampler,
        steps: cfg.steps,
        schedule: ScheduleKind::Karras,
        sigma_max: 80.0,
        sigma_min: 0.002,
        rho: 7.0,
        eta: cfg.eta,
        ..SamplerOptions::default()
    };
    let sampler = Sampler::new(&guidance, &so)?;
    Ok(Method {
        name,
        kind,
        n,
        on_target,
        sampler,
        guidance,
        run_mean: vec![],
        run_std: vec![],
        run_kl: vec![],
        run_sec: vec![],
        blk_mean: vec![],
        blk_std: vec![],
        blk_kl: vec![],
    })
}

fn run() -> Result<(), String> {
    let cfg = parse_args()?;
    let e = |e: lgd::Error| e.to_string();
    let mut o = ContextOptions::default();
    o.num_threads = cfg.threads;
    let ctx = Context::with_options(&o).map_err(e)?;
    let var = [STD * STD, STD * STD];
    let prior = Model::gaussian_mixture(&ctx, 1, &WEIGHTS, &MEANS, Covariance::Isotropic(&var)).map_err(e)?;
    let target =
        Model::gaussian_mixture(&ctx, 1, &[1.0], &MEANS[..1], Covariance::Isotropic(&var[..1])).map_err(e)?;
    // a = (m0 - m1) / s^2, b = (m1^2 - m0^2) / (2 s^2) + log(w0 / w1), in double, as
    // mixture_problem.c
    let s2 = STD as f64 * STD as f64;
    let a = ((MEANS[0] as f64 - MEANS[1] as f64) / s2) as f32;
    let b = ((MEANS[1] as f64 * MEANS[1] as f64 - MEANS[0] as f64 * MEANS[0] as f64) / (2.0 * s2)
        + (WEIGHTS[0] as f64 / WEIGHTS[1] as f64).ln()) as f32;
    let loss = if cfg.builtin_loss {
        Loss::logistic(&ctx, &[a], b).map_err(e)?
    } else {
        Loss::from_fn(&ctx, 1, logistic_loss(a, b)).map_err(e)?
    };
    let blocks = cfg.samples / cfg.paper_samples;

    println!(
        "lgd mixture (Rust example): the LGD paper's 1-D Gaussian mixture (Sec. 4.2, 6.1, App. A.4, B.1)"
    );
    println!("liblgd {}, backend {}", lgd::version_string(), ctx.backend_name());
    println!("prior  0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)");
    println!(
        "loss   -log p(y=0 | x0) = softplus(-({a} x0 + {b}))   target N(-1, 0.2^2); {}",
        if cfg.builtin_loss { "liblgd's built-in logistic loss" } else { "a Rust closure" }
    );
    print!("sampler {}", cfg.sampler_name);
    if cfg.sampler == SamplerKind::Ddim {
        print!(" (eta {})", cfg.eta);
    }
    println!(", {} steps, Karras sigmas 80 -> 0.002 (rho 7); score step rule, scale 1", cfg.steps);
    print!("seeds {}..{}; {} samples per run", cfg.seed, cfg.seed + cfg.seeds as u64 - 1, cfg.samples);
    if blocks > 0 {
        print!("; paper protocol: {} runs of {} samples", blocks * cfg.seeds, cfg.paper_samples);
    }
    println!("\n");

    let pb = Problem { prior, target, loss };
    let mut ms = vec![
        method(&cfg, &pb, "unguided".into(), GuidanceKind::None, 0, false).map_err(e)?,
        method(&cfg, &pb, "exact".into(), GuidanceKind::None, 0, true).map_err(e)?,
        method(&cfg, &pb, format!("exact-IS n={EXACT_IS_DRAWS}"), GuidanceKind::Exact, EXACT_IS_DRAWS, false)
            .map_err(e)?,
        method(&cfg, &pb, "DPS".into(), GuidanceKind::Dps, 1, false).map_err(e)?,
    ];
    const IDPS: usize = 3;
    for &n in &cfg.mc {
        ms.push(method(&cfg, &pb, format!("LGD-MC n={n}"), GuidanceKind::Mc, n, false).map_err(e)?);
    }
    debug_assert!(ms.iter().all(|m| m.on_target == (m.name == "exact")));

    // every seed, every method: rows 0.. from seed, the statistics of the run and its blocks
    let (m0, s0) = (MEANS[0] as f64, STD as f64);
    for si in 0..cfg.seeds {
        let seed = cfg.seed + si as u64;
        for m in ms.iter_mut() {
            m.guidance.set_seed(seed).map_err(e)?;
            let t0 = Instant::now();
            let x = m.sampler.sample(cfg.samples, seed).map_err(e)?;
            m.run_sec.push(t0.elapsed().as_secs_f64());
            let (mean, std) = mean_std(&x);
            m.run_mean.push(mean);
            m.run_std.push(std);
            m.run_kl.push(kl_gauss(m0, s0, mean, std));
            for blk in x.chunks_exact(cfg.paper_samples).take(blocks) {
                let (bm, bs) = mean_std(blk);
                m.blk_mean.push(bm);
                m.blk_std.push(bs);
                m.blk_kl.push(kl_gauss(m0, s0, bm, bs));
            }
        }
    }

    // the tables (mixture_kl.c)
    let large: Vec<Summary> = ms.iter().map(|m| summarize(&m.run_mean, &m.run_std, &m.run_kl)).collect();
    println!(
        "KL(N(-1, 0.2^2) || N(mean, std^2)), {} samples per run, mean +- sd over {} seed{}",
        cfg.samples,
        cfg.seeds,
        if cfg.seeds == 1 { "" } else { "s" }
    );
    println!("{:<15} {:>19} {:>19} {:>21} {:>10}", "method", "mean", "std", "KL", "s/run");
    println!("{:<15} {:>19.4} {:>19.4} {:>21} {:>10}", "target", MEANS[0], STD, "0", "-");
    for (m, s) in ms.iter().zip(&large) {
        let (t, _) = mean_sd(&m.run_sec);
        println!(
            "{:<15} {:>9.4} +- {:>6.4} {:>9.4} +- {:>6.4} {:>10.5} +- {:>7.5} {:>10.3}",
            m.name, s.mean.0, s.mean.1, s.std.0, s.std.1, s.kl.0, s.kl.1, t
        );
    }
    let imc = ms.len() - 1; // LGD-MC with the last n of --n
    let mut ratio: Vec<f64> = ms[IDPS].run_kl.iter().zip(&ms[imc].run_kl).map(|(d, m)| d / m).collect();
    let rq = quantiles(&mut ratio, &SUMMARY_Q);
    println!(
        "KL(DPS) / KL({}) = {:.1} (ratio of the means; per seed {:.1} to {:.1})\n",
        ms[imc].name,
        large[IDPS].kl.0 / large[imc].kl.0,
        rq[0],
        rq[4]
    );
    if blocks > 0 {
        let paper: Vec<Summary> = ms.iter().map(|m| summarize(&m.blk_mean, &m.blk_std, &m.blk_kl)).collect();
        println!(
            "Paper protocol (App. B.1): {} samples per run, {} runs ({} seeds x {} blocks)",
            cfg.paper_samples,
            blocks * cfg.seeds,
            cfg.seeds,
            blocks
        );
        println!(
            "{:<15} {:>10} {:>21} {:>10} {:>10} {:>10}",
            "method", "KL median", "[25%, 75%]", "min", "max", "mean std"
        );
        for (m, s) in ms.iter().zip(&paper) {
            println!(
                "{:<15} {:>10.4}   [{:>7.4}, {:>7.4}] {:>10.4} {:>10.4} {:>10.4}",
                m.name, s.kl_q[2], s.kl_q[1], s.kl_q[3], s.kl_q[0], s.kl_q[4], s.std.0
            );
        }
        let mut ratio: Vec<f64> = ms[IDPS].blk_kl.iter().zip(&ms[imc].blk_kl).map(|(d, m)| d / m).collect();
        let below = ratio.iter().filter(|&&r| r > 1.0).count();
        let nb = ratio.len();
        let rq = quantiles(&mut ratio, &SUMMARY_Q);
        println!(
            "KL(DPS) / KL({}) per run: median {:.1} [25%: {:.1}, 75%: {:.1}]; {} below DPS in {:.1} % of the runs\n",
            ms[imc].name,
            rq[2],
            rq[1],
            rq[3],
            ms[imc].name,
            100.0 * below as f64 / nb as f64
        );
    }
    for m in &ms {
        if m.kind == GuidanceKind::Mc && m.n == 100 {
            let (t, _) = mean_sd(&m.run_sec);
            println!(
                "speed: {}, {} samples x {} steps: {:.3} s per run (mean of {})",
                m.name, cfg.samples, cfg.steps, t, cfg.seeds
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("mixture: {msg}");
            ExitCode::FAILURE
        }
    }
}
