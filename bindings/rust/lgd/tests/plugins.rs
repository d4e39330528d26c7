//! Losses and models from plugins (<lgd/plugin.h>), with the build's C++ example plugin
//! (plugins/cxx_example: a Huber loss and a Gaussian model). tests/check_rust.sh sets
//! LGD_REQUIRE_PLUGINS=1 when the build has it; elsewhere the test says it is skipped.
mod common;

use std::path::PathBuf;

use common::ctx;
use lgd::{Loss, Model, Status};

fn cxx_plugin() -> Option<PathBuf> {
    let dir = env!("LGD_PLUGIN_DIR");
    let p = PathBuf::from(dir).join("cxx_example").join("cxx_example.so");
    if !dir.is_empty() && p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("LGD_REQUIRE_PLUGINS").map_or(true, |v| v != "1"),
        "LGD_REQUIRE_PLUGINS=1 but {} does not exist",
        p.display()
    );
    eprintln!("skipped: no example plugin (LGD_PLUGIN_DIR = {dir:?})");
    None
}

#[test]
fn plugin_loss_and_model() {
    let Some(path) = cxx_plugin() else { return };
    let ctx = ctx();
    let loaded = Loss::load_plugin(&ctx, &path, "huber", 3, "target=1,delta=0.5");
    if env!("LGD_LINKED_STATIC") == "1" {
        // the plugin binds the shared liblgd: a second copy, which the loader refuses
        let e = loaded.unwrap_err();
        assert_eq!(e.status(), Status::Unsupported, "{e}");
        assert!(e.message().contains("copy"), "{e}");
        eprintln!("static liblgd: the plugin is refused, as it must be: {e}");
        return;
    }
    let huber = loaded.unwrap();
    assert_eq!(huber.dim(), 3);
    // h(r) = r^2 / 2 for |r| <= 0.5, 0.5 (|r| - 0.25) beyond; the gradient r clipped
    let (v, g) = huber.eval_slice(&[1.2, 0.0, 3.0]).unwrap();
    let want = 0.5 * 0.2f64 * 0.2 + 0.5 * (1.0 - 0.25) + 0.5 * (2.0 - 0.25);
    assert!((v[0] as f64 - want).abs() < 1e-6, "{} vs {want}", v[0]);
    assert!((g[0] - 0.2).abs() < 1e-6 && g[1] == -0.5 && g[2] == 0.5, "{g:?}");
    // the Gaussian N(1, I): D(x, sigma) = (x + sigma^2) / (1 + sigma^2)
    let m = Model::load_plugin(&ctx, &path, "gaussian", "dim=2,mean=1,var=1").unwrap();
    assert_eq!(m.dim(), 2);
    let d = m.denoise_slice(&[0.0, 3.0], 2.0).unwrap();
    assert!((d[0] - 0.8).abs() < 1e-6 && (d[1] - 1.4).abs() < 1e-6, "{d:?}");
    // the plugin's own errors (a C++ exception caught at its boundary), and the loader's
    let e = Loss::load_plugin(&ctx, &path, "huber", 3, "delta=-1").unwrap_err();
    assert_eq!(e.status(), Status::Callback);
    assert!(e.message().contains("delta must be > 0"), "{e}");
    let e = Loss::load_plugin(&ctx, &path, "no_such_loss", 3, "").unwrap_err();
    assert_eq!(e.status(), Status::Unsupported);
    assert!(e.message().contains("huber"), "the message lists the plugin's losses: {e}");
    let e = Model::load_plugin(&ctx, "/nonexistent/plugin.so", "gaussian", "").unwrap_err();
    assert_eq!(e.status(), Status::Io);
    // the objects keep the plugin loaded after the handles that made them are gone
    drop(ctx);
    assert_eq!(huber.eval_slice(&[1.0, 1.0, 1.0]).unwrap().0, vec![0.0]);
    assert_eq!(m.denoise_slice(&[1.0, 1.0], 0.5).unwrap(), vec![1.0, 1.0]);
}
