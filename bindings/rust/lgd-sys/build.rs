//! Finds liblgd and tells cargo how to link it.
//!
//! 1. `LGD_LIB_DIR` (a directory holding liblgd.so / liblgd.a: an install's libdir or a
//!    meson build dir's `lib/`); `LGD_INCLUDE_DIR` (a list of directories, `:`-separated
//!    on Unix, each holding `lgd/*.h`: for a meson build dir both the source tree's
//!    `include` and the build dir's `include`, where `lgd/version.h` is generated).
//!    A shared liblgd gets a run path (`-Wl,-rpath,DIR`) in this crate's and the `lgd`
//!    crate's tests and examples, so that they run from a build dir without
//!    LD_LIBRARY_PATH (`LGD_NO_RPATH=1` leaves it out).
//! 2. Otherwise pkg-config (`$PKG_CONFIG`, default `pkg-config`) for the package `lgd`.
//!
//! Shared by default; `LGD_STATIC=1` links liblgd.a and its private dependencies, which
//! come from `pkg-config --static --libs` (of `lgd`, or of the lgd.pc beside
//! `LGD_LIB_DIR`: `DIR/pkgconfig/lgd.pc` or a meson build dir's `meson-private/lgd.pc`),
//! or, when no lgd.pc is at hand, from `LGD_STATIC_LIBS` (link flags, space-separated).
//!
//! Besides the link lines it exports, for the tests: `LGD_SYS_INCLUDE_DIRS` (the header
//! directories) and `LGD_SYS_C_LINK` (the C compiler's flags to link a C program against
//! the same liblgd), and, as `links = "lgd"` metadata for dependents' build scripts,
//! `DEP_LGD_RPATH`, `DEP_LGD_LINK_ARGS`, `DEP_LGD_INCLUDE`, `DEP_LGD_C_LINK`,
//! `DEP_LGD_STATIC` (1 when liblgd.a is linked) and `DEP_LGD_LIB_DIR`.
use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Separator of the list values passed through environment variables (never in a flag).
const SEP: char = '\u{1f}';

#[derive(Default)]
struct Link {
    /// how liblgd was found, for messages
    how: String,
    /// -L directories
    search: Vec<PathBuf>,
    /// (kind, name): kind "static" for liblgd.a, "dylib" otherwise
    libs: Vec<(&'static str, String)>,
    /// link arguments that are neither -L nor -l (e.g. -Wl,-rpath,... of a private dep)
    args: Vec<String>,
    /// run paths for the tests and examples of this crate and of lgd
    rpath: Vec<PathBuf>,
    /// directories holding lgd/*.h
    include: Vec<PathBuf>,
    /// files whose change must re-run this script (liblgd.a when linked statically)
    watch: Vec<PathBuf>,
}

fn env_os(name: &str) -> Option<OsString> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var_os(name).filter(|v| !v.is_empty())
}

fn env_flag(name: &str) -> bool {
    matches!(
        env_os(name).and_then(|v| v.into_string().ok()).as_deref(),
        Some("1") | Some("true") | Some("yes") | Some("on")
    )
}

fn pkg_config_program() -> OsString {
    env_os("PKG_CONFIG").unwrap_or_else(|| OsString::from("pkg-config"))
}

/// Runs pkg-config with args; its stdout split into flags, or why it failed.
fn pkg_config(args: &[&str], target: &OsString) -> Result<Vec<String>, String> {
    let prog = pkg_config_program();
    let out = Command::new(&prog)
        .args(args)
        .arg(target)
        .output()
        .map_err(|e| format!("could not run {}: {e}", prog.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} {} {}` failed: {}",
            prog.to_string_lossy(),
            args.join(" "),
            target.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect())
}

fn shared_lib_in(dir: &Path) -> Option<PathBuf> {
    ["liblgd.so", "liblgd.dylib", "lgd.lib", "liblgd.dll.a"].iter().map(|n| dir.join(n)).find(|p| p.exists())
}

fn static_lib_in(dir: &Path) -> Option<PathBuf> {
    ["liblgd.a", "lgd.lib"].iter().map(|n| dir.join(n)).find(|p| p.exists())
}

/// Sorts pkg-config's link flags into the link description. The flags naming liblgd
/// itself (-llgd) are taken as `lgd_kind`; with `skip_lgd` they are dropped (the caller
/// has already added liblgd).
fn add_link_flags(link: &mut Link, flags: &[String], lgd_kind: &'static str, skip_lgd: bool) {
    for f in flags {
        if let Some(dir) = f.strip_prefix("-L") {
            let dir = PathBuf::from(dir);
            if !link.search.contains(&dir) {
                link.search.push(dir);
            }
        } else if let Some(name) = f.strip_prefix("-l") {
            if name == "lgd" {
                if !skip_lgd {
                    link.libs.push((lgd_kind, name.to_owned()));
                }
            } else if !link.libs.iter().any(|(_, n)| n == name) {
                link.libs.push(("dylib", name.to_owned()));
            }
        } else if f == "-pthread" {
            link.libs.push(("dylib", "pthread".to_owned()));
        } else if f == "-fopenmp" {
            // GCC's OpenMP run time (liblgd is built with GCC's -fopenmp on Debian); a
            // library, unlike the flag, reaches every crate that links lgd-sys
            link.libs.push(("dylib", "gomp".to_owned()));
        } else if !link.args.contains(f) {
            link.args.push(f.clone());
        }
    }
}

/// The private link flags of a static liblgd in `dir`: from an lgd.pc beside it, else
/// from LGD_STATIC_LIBS.
fn static_private_flags(dir: &Path) -> Result<(Vec<String>, String), String> {
    let candidates =
        [dir.join("pkgconfig").join("lgd.pc"), dir.join("..").join("meson-private").join("lgd.pc")];
    let mut tried = Vec::new();
    for pc in candidates.iter().filter(|p| p.exists()) {
        match pkg_config(&["--static", "--libs"], &pc.clone().into_os_string()) {
            Ok(flags) => return Ok((flags, format!("private libraries from {}", pc.display()))),
            Err(e) => tried.push(e),
        }
    }
    if let Some(libs) = env_os("LGD_STATIC_LIBS") {
        let flags = libs.to_string_lossy().split_whitespace().map(str::to_owned).collect();
        return Ok((flags, "private libraries from LGD_STATIC_LIBS".to_owned()));
    }
    Err(format!(
        "LGD_STATIC=1 with LGD_LIB_DIR={}: the static liblgd needs its private libraries \
         (BLAS, OpenMP, ...), and no lgd.pc was found beside it ({} or {}){}; set \
         LGD_STATIC_LIBS to its link flags (`pkg-config --static --libs lgd` without -llgd)",
        dir.display(),
        candidates[0].display(),
        candidates[1].display(),
        if tried.is_empty() { String::new() } else { format!(" ({})", tried.join("; ")) }
    ))
}

fn include_dirs_from_env() -> Option<Vec<PathBuf>> {
    env_os("LGD_INCLUDE_DIR").map(|v| env::split_paths(&v).collect())
}

fn from_lib_dir(dir: PathBuf, want_static: bool) -> Result<Link, String> {
    if !dir.is_dir() {
        return Err(format!("LGD_LIB_DIR={} is not a directory", dir.display()));
    }
    let mut link = Link { how: format!("LGD_LIB_DIR={}", dir.display()), ..Link::default() };
    link.search.push(dir.clone());
    if want_static {
        let lib = static_lib_in(&dir).ok_or_else(|| {
            format!(
                "LGD_STATIC=1 but LGD_LIB_DIR={} holds no liblgd.a (build it: meson's \
                 default_library=both or static)",
                dir.display()
            )
        })?;
        link.libs.push(("static", "lgd".to_owned()));
        link.watch.push(lib);
        let (flags, how) = static_private_flags(&dir)?;
        add_link_flags(&mut link, &flags, "static", true);
        link.how += &format!(", static, {how}");
    } else {
        shared_lib_in(&dir).ok_or_else(|| {
            format!(
                "LGD_LIB_DIR={} holds no liblgd.so: build liblgd (ninja -C BUILD) and point \
                 LGD_LIB_DIR at the directory holding it (BUILD/lib in a meson build dir, \
                 PREFIX/lib/... once installed)",
                dir.display()
            )
        })?;
        link.libs.push(("dylib", "lgd".to_owned()));
        if !env_flag("LGD_NO_RPATH") {
            link.rpath.push(dir.clone());
        }
        link.how += ", shared";
    }
    link.include = include_dirs_from_env().unwrap_or_default();
    Ok(link)
}

fn from_pkg_config(want_static: bool) -> Result<Link, String> {
    let pkg = OsString::from("lgd");
    let flags =
        if want_static { pkg_config(&["--static", "--libs"], &pkg)? } else { pkg_config(&["--libs"], &pkg)? };
    let mut link = Link {
        how: format!("pkg-config lgd, {}", if want_static { "static" } else { "shared" }),
        ..Link::default()
    };
    add_link_flags(&mut link, &flags, if want_static { "static" } else { "dylib" }, false);
    if !link.libs.iter().any(|(_, n)| n == "lgd") {
        return Err(format!("pkg-config's flags for lgd do not name -llgd: {}", flags.join(" ")));
    }
    if want_static {
        let lib = link.search.iter().find_map(|d| static_lib_in(d)).ok_or_else(|| {
            format!(
                "LGD_STATIC=1: none of pkg-config's library directories for lgd ({}) holds \
                 liblgd.a",
                link.search.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?;
        link.watch.push(lib);
    } else if !env_flag("LGD_NO_RPATH") {
        // a run path to the directory that holds liblgd.so (a build dir found through
        // its lgd-uninstalled.pc, or a prefix outside the loader's paths)
        link.rpath = link.search.iter().filter(|d| shared_lib_in(d).is_some()).cloned().collect();
    }
    link.include = match include_dirs_from_env() {
        Some(dirs) => dirs,
        None => pkg_config(&["--cflags-only-I"], &pkg)
            .map(|f| f.iter().filter_map(|s| s.strip_prefix("-I")).map(PathBuf::from).collect())
            .unwrap_or_default(),
    };
    Ok(link)
}

fn join_paths(paths: &[PathBuf]) -> String {
    env::join_paths(paths).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // pkg-config's own variables change what it finds
    for v in ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR", "CC"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let want_static = env_flag("LGD_STATIC");
    let found = match env_os("LGD_LIB_DIR") {
        Some(dir) => from_lib_dir(PathBuf::from(dir), want_static),
        None => from_pkg_config(want_static).map_err(|e| {
            format!(
                "{e}\nliblgd was not found: set LGD_LIB_DIR to the directory holding liblgd \
                 (and LGD_INCLUDE_DIR to its headers), or install liblgd so that pkg-config \
                 finds the package `lgd` (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig, or a meson \
                 build dir's meson-uninstalled/)"
            )
        }),
    };
    let link = match found {
        Ok(link) => link,
        Err(msg) => {
            eprintln!("error: lgd-sys: {msg}");
            std::process::exit(1);
        }
    };

    for d in &link.search {
        println!("cargo:rustc-link-search=native={}", d.display());
    }
    for (kind, name) in &link.libs {
        println!("cargo:rustc-link-lib={kind}={name}");
    }
    for w in &link.watch {
        println!("cargo:rerun-if-changed={}", w.display());
    }
    let mut args = link.args.clone();
    for r in &link.rpath {
        args.push(format!("-Wl,-rpath,{}", r.display()));
    }
    // this crate's tests; dependents re-emit them from DEP_LGD_LINK_ARGS (lgd/build.rs)
    for a in &args {
        println!("cargo:rustc-link-arg={a}");
    }

    // the same liblgd for a C program (the tests compile C against the headers)
    let mut c_link: Vec<String> = link.search.iter().map(|d| format!("-L{}", d.display())).collect();
    for (kind, name) in &link.libs {
        c_link.push(if *kind == "static" { format!("-l:lib{name}.a") } else { format!("-l{name}") });
    }
    c_link.extend(args.iter().cloned());
    let sep = SEP.to_string();
    println!("cargo:rustc-env=LGD_SYS_INCLUDE_DIRS={}", join_paths(&link.include));
    println!("cargo:rustc-env=LGD_SYS_C_LINK={}", c_link.join(&sep));
    println!("cargo:rustc-env=LGD_SYS_LINK_HOW={}", link.how);
    println!("cargo:rpath={}", join_paths(&link.rpath));
    println!("cargo:link_args={}", args.join(&sep));
    println!("cargo:include={}", join_paths(&link.include));
    println!("cargo:c_link={}", c_link.join(&sep));
    println!("cargo:static={}", if want_static { 1 } else { 0 });
    println!("cargo:lib_dir={}", link.search.first().map(|d| d.display().to_string()).unwrap_or_default());
}
