//! The same samples as the C API and as the `lgd` tool for the same seed.
//!
//!  - tests/c/mixture_samples.c, compiled here against the same liblgd, samples the
//!    paper's mixture with every method of `lgd mixture` through the C API with the
//!    built-in logistic loss; this crate must give the same bits with the built-in loss
//!    and with the loss written as a Rust closure.
//!  - The `lgd` tool of the same build (LGD_TOOL; tests/check_rust.sh sets it and
//!    LGD_REQUIRE_TOOL=1): `lgd mixture`'s samples.csv against the closure loss.
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{bits, ctx, logistic_closure_loss, mixture, Mixture};
use lgd::{
    Context, Guidance, GuidanceKind, GuidanceOptions, Loss, Sampler, SamplerKind, SamplerOptions, StepRule,
};

const METHODS: [(&str, GuidanceKind, i32, bool); 6] = [
    ("unguided", GuidanceKind::None, 0, false),
    ("exact", GuidanceKind::None, 0, true),
    ("exact_is_n100", GuidanceKind::Exact, 100, false),
    ("dps", GuidanceKind::Dps, 1, false),
    ("mc_n10", GuidanceKind::Mc, 10, false),
    ("mc_n100", GuidanceKind::Mc, 100, false),
];

/// One run of a method as mixture_sampling.c does it.
fn run(
    m: &Mixture,
    loss: &Loss,
    kind: GuidanceKind,
    n: i32,
    on_target: bool,
    samples: usize,
    seed: u64,
) -> Vec<f32> {
    let mut o =
        GuidanceOptions { kind, step_rule: StepRule::Score, scale: 1.0, seed, ..GuidanceOptions::default() };
    if n > 0 {
        o.n_samples = n;
    }
    let model = if on_target { &m.target } else { &m.prior };
    let g = Guidance::new(model, (kind != GuidanceKind::None).then_some(loss), &o).unwrap();
    let mut so = SamplerOptions::new(SamplerKind::Ddim, 20);
    so.sigma_max = 80.0;
    so.sigma_min = 0.002;
    so.rho = 7.0;
    so.eta = 0.0;
    let mut s = Sampler::new(&g, &so).unwrap();
    g.set_seed(seed).unwrap();
    s.sample(samples, seed).unwrap()
}

#[test]
fn same_samples_as_the_c_api() {
    let exe = common::compile_c(
        &common::repo_root().join("bindings/rust/lgd/tests/c/mixture_samples.c"),
        "mixture_samples",
    );
    let (samples, seed) = (257usize, 11u64);
    let out = Command::new(&exe).args([samples.to_string(), seed.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut c: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut w = line.split(' ');
        let name = w.next().unwrap().to_owned();
        c.insert(name, w.map(|h| u32::from_str_radix(h, 16).unwrap()).collect());
    }
    assert_eq!(c.len(), METHODS.len());
    let ctx = ctx();
    let m = mixture(&ctx);
    let builtin = Loss::logistic(&ctx, &[m.a], m.b).unwrap();
    let rust = logistic_closure_loss(&ctx, m.a, m.b);
    for (name, kind, n, on_target) in METHODS {
        let want = &c[name];
        assert_eq!(want.len(), samples);
        let b = run(&m, &builtin, kind, n, on_target, samples, seed);
        assert_eq!(&bits(&b), want, "{name}: built-in loss through the Rust API");
        let r = run(&m, &rust, kind, n, on_target, samples, seed);
        assert_eq!(&bits(&r), want, "{name}: Rust closure loss");
    }
}

#[test]
fn same_samples_as_the_lgd_tool() {
    let tool = env!("LGD_TOOL");
    if tool.is_empty() {
        assert!(
            std::env::var("LGD_REQUIRE_TOOL").map_or(true, |v| v != "1"),
            "LGD_REQUIRE_TOOL=1 but no lgd tool was found (set LGD_TOOL when building)"
        );
        eprintln!("skipped: no lgd tool beside the library (set LGD_TOOL)");
        return;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lgd-tool-mixture");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(tool)
        .args([
            "mixture",
            "--samples",
            "300",
            "--seeds",
            "2",
            "--n",
            "10",
            "--points",
            "11",
            "--quiet",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{tool} mixture failed: {}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    let mut runs: BTreeMap<(String, u64), Vec<f32>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        runs.entry((f[0].to_owned(), f[1].parse().unwrap())).or_default().push(f[2].parse().unwrap());
    }
    assert_eq!(runs.len(), 5 * 2, "methods x seeds in samples.csv");
    let ctx = Context::cpu().unwrap();
    let m = mixture(&ctx);
    let rust = logistic_closure_loss(&ctx, m.a, m.b);
    for ((name, seed), want) in &runs {
        let (_, kind, n, on_target) = METHODS.iter().find(|mm| mm.0 == name).unwrap();
        let got = run(&m, &rust, *kind, *n, *on_target, 300, *seed);
        // %.9g round-trips a float exactly
        assert_eq!(bits(&got), bits(want), "{name}, seed {seed}");
    }
}
