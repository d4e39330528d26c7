//! Passes lgd-sys's link arguments that cargo does not propagate to dependents (the run
//! path to a build dir's liblgd, a static liblgd's private linker flags) to this crate's
//! tests and examples; lgd-sys exports them as `links` metadata (DEP_LGD_LINK_ARGS).
//! A binary crate of your own that links a build dir's liblgd gets no run path from
//! here: set LD_LIBRARY_PATH, or add `-Wl,-rpath,DIR` in its own build script
//! (docs/rust.md).
//!
//! For the tests that compile C against the same liblgd: LGD_INCLUDE_DIRS and LGD_C_LINK
//! (from lgd-sys), and LGD_TOOL, the `lgd` command-line tool of the same build when
//! there is one (LGD_TOOL in the environment, else LIBDIR/../examples/lgd/lgd of a meson
//! build dir; empty when none), LGD_PLUGIN_DIR (the example plugins: LGD_PLUGIN_DIR in
//! the environment, else LIBDIR/../plugins) and LGD_LINKED_STATIC (1 with liblgd.a).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for v in [
        "DEP_LGD_LINK_ARGS",
        "DEP_LGD_INCLUDE",
        "DEP_LGD_C_LINK",
        "DEP_LGD_LIB_DIR",
        "DEP_LGD_STATIC",
        "LGD_TOOL",
        "LGD_PLUGIN_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let dep = |k: &str| std::env::var(k).unwrap_or_default();
    for a in dep("DEP_LGD_LINK_ARGS").split('\u{1f}').filter(|a| !a.is_empty()) {
        println!("cargo:rustc-link-arg={a}");
    }
    println!("cargo:rustc-env=LGD_INCLUDE_DIRS={}", dep("DEP_LGD_INCLUDE"));
    println!("cargo:rustc-env=LGD_C_LINK={}", dep("DEP_LGD_C_LINK"));
    let tool = match std::env::var("LGD_TOOL") {
        Ok(t) if !t.is_empty() => t,
        _ => {
            let lib_dir = dep("DEP_LGD_LIB_DIR");
            let guess = PathBuf::from(&lib_dir).join("..").join("examples").join("lgd").join("lgd");
            if !lib_dir.is_empty() && guess.is_file() {
                guess.display().to_string()
            } else {
                String::new()
            }
        }
    };
    println!("cargo:rustc-env=LGD_TOOL={tool}");
    println!("cargo:rustc-env=LGD_LINKED_STATIC={}", dep("DEP_LGD_STATIC"));
    // the example plugins of a meson build dir (LIBDIR/../plugins), or LGD_PLUGIN_DIR
    let plugins = match std::env::var("LGD_PLUGIN_DIR") {
        Ok(d) if !d.is_empty() => d,
        _ => {
            let lib_dir = dep("DEP_LGD_LIB_DIR");
            let guess = PathBuf::from(&lib_dir).join("..").join("plugins");
            if !lib_dir.is_empty() && guess.is_dir() {
                guess.display().to_string()
            } else {
                String::new()
            }
        }
    };
    println!("cargo:rustc-env=LGD_PLUGIN_DIR={plugins}");
}
