//! The declarations of lgd-sys against the C headers they were written from.
//!
//! The headers (`lgd/*.h` under the directories of LGD_SYS_INCLUDE_DIRS, which build.rs
//! takes from LGD_INCLUDE_DIR or pkg-config) are parsed here for their structs and
//! fields, enums and enumerators, numeric macros, callback types and LGD_API functions.
//! A C probe generated from that parse is compiled with the system C compiler ($CC, else
//! cc) and prints sizeof, _Alignof, offsetof and the values as the C compiler sees them.
//! Checked, in both directions (a declaration missing on either side fails):
//!  - every struct: size, alignment, the fields in order with their offsets and sizes
//!    (core::mem::offset_of! / size_of on the Rust side) and their types, the C type
//!    mapped to the Rust spelling (`const float *` -> `*const f32`);
//!  - every enum type: 4 bytes; every enumerator's value (status codes included);
//!  - every numeric macro's value (LGD_VERSION_*, LGD_TENSOR_MAX_DIMS, ...);
//!  - every callback type's and every function's parameter and return types;
//!  - the opaque handle types.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use lgd_sys::meta;

// ---------------------------------------------------------------- the headers

/// The text of every lgd/*.h under the include directories (the first of a name wins).
fn read_headers() -> BTreeMap<String, String> {
    let dirs = include_dirs();
    let mut files = BTreeMap::new();
    for d in &dirs {
        let Ok(rd) = std::fs::read_dir(d.join("lgd")) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".h") && !files.contains_key(&name) {
                files.insert(name, std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    for needed in ["lgd.h", "common.h", "version.h"] {
        assert!(
            files.contains_key(needed),
            "lgd/{needed} not found under LGD_SYS_INCLUDE_DIRS = {dirs:?} (set LGD_INCLUDE_DIR \
             to the source tree's include/ and, for a meson build dir, BUILD/include, where \
             version.h is generated)"
        );
    }
    files
}

fn include_dirs() -> Vec<PathBuf> {
    std::env::split_paths(env!("LGD_SYS_INCLUDE_DIRS")).filter(|p| !p.as_os_str().is_empty()).collect()
}

fn strip_comments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            let end = s[i + 2..].find("*/").expect("unterminated comment");
            i += 2 + end + 2;
            out.push(' ');
        } else if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[derive(Default, Debug)]
struct Parsed {
    /// struct name -> fields (name, Rust spelling of the C type)
    structs: BTreeMap<String, Vec<(String, String)>>,
    opaque: BTreeSet<String>,
    /// enum name -> enumerators
    enums: BTreeMap<String, Vec<String>>,
    macros: BTreeSet<String>,
    /// object-like macros whose value is a string literal
    string_macros: BTreeSet<String>,
    /// the header files, for the probe's #include lines
    files: Vec<String>,
    /// name -> (params, ret), Rust spellings
    callbacks: BTreeMap<String, (Vec<String>, String)>,
    functions: BTreeMap<String, (Vec<String>, String)>,
}

/// Tokens of a C declaration: identifiers and '*' (parentheses and commas are handled
/// by the callers).
fn tokens(decl: &str) -> Vec<String> {
    decl.replace('*', " * ").split_whitespace().map(str::to_owned).collect()
}

/// The Rust spelling of a C type (tokens without the declared name).
fn rust_type(toks: &[String]) -> String {
    let mut base_const = false;
    let mut base: Option<&str> = None;
    let mut ptrs: Vec<bool> = Vec::new(); // const after each '*'
    for t in toks {
        match t.as_str() {
            "const" => match ptrs.last_mut() {
                Some(p) => *p = true,
                None => base_const = true,
            },
            "*" => ptrs.push(false),
            "struct" | "enum" => {}
            other => {
                assert!(base.is_none(), "two base types in {toks:?}");
                base = Some(other);
            }
        }
    }
    let base = base.unwrap_or_else(|| panic!("no base type in {toks:?}"));
    let mut t = match base {
        "void" if ptrs.is_empty() => return String::new(),
        "void" => "c_void",
        "char" => "c_char",
        "int" => "c_int",
        "uint32_t" => "u32",
        "int32_t" => "i32",
        "uint64_t" => "u64",
        "int64_t" => "i64",
        "size_t" => "usize",
        "float" => "f32",
        "double" => "f64",
        other => other,
    }
    .to_owned();
    let mut pointee_const = base_const;
    for p in ptrs {
        t = format!("*{} {}", if pointee_const { "const" } else { "mut" }, t);
        pointee_const = p;
    }
    t
}

/// "const float *x, int64_t n" -> Rust spellings of the parameter types.
fn param_types(params: &str) -> Vec<String> {
    let params = params.trim();
    if params.is_empty() || params == "void" {
        return Vec::new();
    }
    params
        .split(',')
        .map(|p| {
            let mut t = tokens(p);
            let last = t.last().expect("empty parameter");
            assert!(t.len() >= 2 && last != "*", "unnamed parameter `{p}`");
            t.pop(); // the name
            rust_type(&t)
        })
        .collect()
}

/// "RET NAME(PARAMS)" -> (NAME, params, ret)
fn prototype(decl: &str) -> (String, Vec<String>, String) {
    let open = decl.find('(').unwrap_or_else(|| panic!("no '(' in `{decl}`"));
    let close = decl.rfind(')').unwrap();
    let mut head = tokens(&decl[..open]);
    let name = head.pop().unwrap();
    (name, param_types(&decl[open + 1..close]), rust_type(&head))
}

/// "RET (*NAME)(PARAMS)" -> (NAME, params, ret)
fn fn_pointer(decl: &str) -> (String, Vec<String>, String) {
    let star = decl.find("(*").unwrap();
    let name_end = star + decl[star..].find(')').unwrap();
    let name = decl[star + 2..name_end].trim().to_owned();
    let rest = &decl[name_end + 1..];
    let open = rest.find('(').unwrap();
    let close = rest.rfind(')').unwrap();
    (name, param_types(&rest[open + 1..close]), rust_type(&tokens(&decl[..star])))
}

fn fn_pointer_rust(params: &[String], ret: &str) -> String {
    let ret = if ret.is_empty() { String::new() } else { format!(" -> {ret}") };
    format!("Option<unsafe extern \"C\" fn({}){ret}>", params.join(", "))
}

fn parse(headers: &BTreeMap<String, String>) -> Parsed {
    let mut p = Parsed { files: headers.keys().cloned().collect(), ..Parsed::default() };
    for text in headers.values() {
        let text = strip_comments(text).replace("\\\n", " ");
        let mut code = String::new();
        for line in text.lines() {
            let l = line.trim();
            if let Some(def) = l.strip_prefix('#') {
                let def = def.trim_start();
                if let Some(rest) = def.strip_prefix("define") {
                    let rest = rest.trim_start();
                    let name: String =
                        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    let after = &rest[name.len()..];
                    let object_like = after.starts_with(char::is_whitespace);
                    let value = after.trim();
                    if object_like
                        && !value.is_empty()
                        && name.starts_with("LGD_")
                        && !name.ends_with('_')
                        && !name.ends_with("_H")
                        && !name.ends_with("_INIT")
                        && name != "LGD_API"
                    {
                        if value.starts_with('"') {
                            p.string_macros.insert(name);
                        } else if !value.contains('"') && !value.contains("__") {
                            p.macros.insert(name);
                        } // else an attribute (LGD_PLUGIN_EXPORT): no value to check
                    }
                }
                continue;
            }
            code.push_str(line);
            code.push('\n');
        }
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        parse_code(&code, &mut p);
    }
    p
}

fn parse_code(code: &str, p: &mut Parsed) {
    // typedefs: structs, opaque structs, enums, function pointers
    let mut rest = code;
    while let Some(i) = rest.find("typedef ") {
        let s = &rest[i + "typedef ".len()..];
        if let Some(s) = s.strip_prefix("struct ") {
            let name: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let after = s[name.len()..].trim_start();
            if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').unwrap();
                let mut fields = Vec::new();
                for decl in body[..end].split(';').map(str::trim).filter(|d| !d.is_empty()) {
                    if decl.contains("(*") {
                        let (fname, params, ret) = fn_pointer(decl);
                        fields.push((fname, fn_pointer_rust(&params, &ret)));
                    } else {
                        let mut t = tokens(decl);
                        let fname = t.pop().unwrap();
                        fields.push((fname, rust_type(&t)));
                    }
                }
                p.structs.insert(name, fields);
                rest = &body[end..];
            } else {
                p.opaque.insert(name);
                rest = after;
            }
        } else if let Some(s) = s.strip_prefix("enum ") {
            let name: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let body = &s[s.find('{').unwrap() + 1..];
            let end = body.find('}').unwrap();
            let values = body[..end]
                .split(',')
                .map(|e| e.split('=').next().unwrap().trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect();
            p.enums.insert(name, values);
            rest = &body[end..];
        } else {
            let end = s.find(';').unwrap();
            let decl = &s[..end];
            assert!(decl.contains("(*"), "unexpected typedef `{decl}`");
            let (name, params, ret) = fn_pointer(decl);
            p.callbacks.insert(name, (params, ret));
            rest = &s[end..];
        }
    }
    // functions
    let mut rest = code;
    while let Some(i) = rest.find("LGD_API ") {
        let s = &rest[i + "LGD_API ".len()..];
        let end = s.find(';').unwrap();
        let (name, params, ret) = prototype(&s[..end]);
        p.functions.insert(name, (params, ret));
        rest = &s[end..];
    }
}

// ---------------------------------------------------------------- the C probe

/// What the C compiler says: "size T" -> (size, align), "field S f" -> (offset, size),
/// "const NAME" -> value.
#[derive(Default)]
struct Probe {
    sizes: BTreeMap<String, (usize, usize)>,
    fields: BTreeMap<(String, String), (usize, usize)>,
    consts: BTreeMap<String, i64>,
    strings: BTreeMap<String, String>,
}

fn run_probe(p: &Parsed) -> Probe {
    let mut c = String::from("#include <stddef.h>\n#include <stdio.h>\n");
    for f in &p.files {
        c += &format!("#include <lgd/{f}>\n");
    }
    c += "\nint main(void)\n{\n";
    for (s, fields) in &p.structs {
        c += &format!("    printf(\"size {s} %zu %zu\\n\", sizeof({s}), _Alignof({s}));\n");
        for (f, _) in fields {
            c += &format!(
                "    printf(\"field {s} {f} %zu %zu\\n\", offsetof({s}, {f}), sizeof((({s} *)0)->{f}));\n"
            );
        }
    }
    for (e, values) in &p.enums {
        c += &format!("    printf(\"size {e} %zu %zu\\n\", sizeof({e}), _Alignof({e}));\n");
        for v in values {
            c += &format!("    printf(\"const {v} %lld\\n\", (long long)({v}));\n");
        }
    }
    for m in &p.macros {
        c += &format!("    printf(\"const {m} %lld\\n\", (long long)({m}));\n");
    }
    for m in &p.string_macros {
        c += &format!("    printf(\"string {m} %s\\n\", {m});\n");
    }
    c += "    return 0;\n}\n";

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lgd-sys-header-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    let exe = dir.join("probe");
    std::fs::write(&src, &c).unwrap();
    let cc = std::env::var("CC").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(cc.split_whitespace().next().unwrap());
    cmd.args(cc.split_whitespace().skip(1));
    cmd.args(["-std=c11", "-Wall", "-Werror", "-o"]).arg(&exe).arg(&src);
    for d in include_dirs() {
        cmd.arg(format!("-I{}", d.display()));
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "compiling the probe {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success(), "the probe failed");
    let mut probe = Probe::default();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w[0] {
            "size" => {
                probe.sizes.insert(w[1].into(), (w[2].parse().unwrap(), w[3].parse().unwrap()));
            }
            "field" => {
                probe
                    .fields
                    .insert((w[1].into(), w[2].into()), (w[3].parse().unwrap(), w[4].parse().unwrap()));
            }
            "const" => {
                probe.consts.insert(w[1].into(), w[2].parse().unwrap());
            }
            "string" => {
                probe.strings.insert(w[1].into(), w[2..].join(" "));
            }
            _ => panic!("probe line `{line}`"),
        }
    }
    probe
}

// ---------------------------------------------------------------- the checks

fn norm(s: &str) -> String {
    s.split_whitespace().collect()
}

fn same_names<'a>(
    what: &str,
    c: impl Iterator<Item = &'a String>,
    rust: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let c: BTreeSet<&str> = c.map(String::as_str).collect();
    let r: BTreeSet<&str> = rust.collect();
    let mut errors = Vec::new();
    for n in c.difference(&r) {
        errors.push(format!("{what} {n}: in the headers, not in lgd-sys"));
    }
    for n in r.difference(&c) {
        errors.push(format!("{what} {n}: in lgd-sys, not in the headers"));
    }
    errors
}

fn check_signatures(
    what: &str,
    c: &BTreeMap<String, (Vec<String>, String)>,
    rust: &[meta::FnInfo],
    errors: &mut Vec<String>,
) {
    errors.extend(same_names(what, c.keys(), rust.iter().map(|f| f.name)));
    for f in rust {
        let Some((params, ret)) = c.get(f.name) else { continue };
        let cp: Vec<String> = params.iter().map(|t| norm(t)).collect();
        let rp: Vec<String> = f.params.iter().map(|t| norm(t)).collect();
        if cp != rp || norm(ret) != norm(f.ret) {
            errors.push(format!(
                "{what} {}: header ({}) -> {:?}, lgd-sys ({}) -> {:?}",
                f.name,
                params.join(", "),
                ret,
                f.params.join(", "),
                f.ret
            ));
        }
    }
}

#[test]
fn declarations_match_the_headers() {
    let headers = read_headers();
    let parsed = parse(&headers);
    // the parse itself must have found the API, or the comparisons below prove nothing
    assert!(parsed.functions.len() >= 100, "only {} functions parsed", parsed.functions.len());
    assert!(parsed.structs.len() >= 10 && parsed.enums.len() >= 12 && parsed.callbacks.len() >= 10);
    let probe = run_probe(&parsed);
    let mut errors = Vec::new();

    // structs: names, size, alignment, fields (order, type, offset, size)
    errors.extend(same_names("struct", parsed.structs.keys(), meta::STRUCTS.iter().map(|s| s.name)));
    let mut fields_checked = 0;
    for s in meta::STRUCTS {
        let Some(cfields) = parsed.structs.get(s.name) else { continue };
        let (size, align) = probe.sizes[s.name];
        if (size, align) != (s.size, s.align) {
            errors.push(format!(
                "struct {}: C size {size} align {align}, Rust size {} align {}",
                s.name, s.size, s.align
            ));
        }
        let cnames: Vec<&str> = cfields.iter().map(|(n, _)| n.as_str()).collect();
        let rnames: Vec<&str> = s.fields.iter().map(|f| f.name).collect();
        if cnames != rnames {
            errors.push(format!("struct {}: C fields {cnames:?}, Rust fields {rnames:?}", s.name));
            continue;
        }
        for (f, (_, cty)) in s.fields.iter().zip(cfields) {
            let (off, fsize) = probe.fields[&(s.name.to_owned(), f.name.to_owned())];
            if (off, fsize) != (f.offset, f.size) {
                errors.push(format!(
                    "{}.{}: C offset {off} size {fsize}, Rust offset {} size {}",
                    s.name, f.name, f.offset, f.size
                ));
            }
            if norm(cty) != norm(f.ty) {
                errors.push(format!("{}.{}: C type maps to `{cty}`, Rust has `{}`", s.name, f.name, f.ty));
            }
            fields_checked += 1;
        }
    }

    // opaque handles
    errors.extend(same_names("opaque type", parsed.opaque.iter(), meta::OPAQUE_TYPES.iter().map(|t| t.name)));

    // enums: 4 bytes each, every enumerator's value
    errors.extend(same_names("enum", parsed.enums.keys(), meta::ENUM_TYPES.iter().map(|t| t.name)));
    for e in meta::ENUM_TYPES {
        if let Some(&(size, align)) = probe.sizes.get(e.name) {
            if (size, align) != (e.size, e.align) {
                errors.push(format!(
                    "enum {}: C size {size} align {align}, Rust {} {}",
                    e.name, e.size, e.align
                ));
            }
        }
    }
    let enumerators: Vec<String> = parsed.enums.values().flatten().cloned().collect();
    errors.extend(same_names("enumerator", enumerators.iter(), meta::CONSTANTS.iter().map(|c| c.0)));
    errors.extend(same_names("macro", parsed.macros.iter(), meta::MACROS.iter().map(|c| c.0)));
    let mut values_checked = 0;
    for (name, value) in meta::CONSTANTS.iter().chain(meta::MACROS) {
        if let Some(&cv) = probe.consts.get(*name) {
            if cv != *value {
                errors.push(format!("{name}: C value {cv}, Rust value {value}"));
            }
            values_checked += 1;
        }
    }

    errors.extend(same_names(
        "string macro",
        parsed.string_macros.iter(),
        meta::STRING_MACROS.iter().map(|c| c.0),
    ));
    for (name, value) in meta::STRING_MACROS {
        if let Some(cv) = probe.strings.get(*name) {
            if cv.as_str() != value.to_str().unwrap() {
                errors.push(format!("{name}: C value {cv:?}, Rust value {value:?}"));
            }
            values_checked += 1;
        }
    }

    // callback types and functions
    check_signatures("callback type", &parsed.callbacks, meta::CALLBACK_TYPES, &mut errors);
    check_signatures("function", &parsed.functions, meta::FUNCTIONS, &mut errors);

    assert!(errors.is_empty(), "lgd-sys does not match the headers:\n  {}", errors.join("\n  "));
    println!(
        "checked {} structs ({fields_checked} fields), {} enums, {values_checked} values, {} callback \
         types, {} functions against {} headers in {:?}",
        meta::STRUCTS.len(),
        meta::ENUM_TYPES.len(),
        meta::CALLBACK_TYPES.len(),
        meta::FUNCTIONS.len(),
        headers.len(),
        include_dirs()
    );
}

/// The mapper itself, on the shapes the headers use (so that a mapping bug cannot make
/// both sides agree by accident).
#[test]
fn c_type_spellings() {
    let t = |s: &str| rust_type(&tokens(s));
    assert_eq!(t("const float *"), "*const f32");
    assert_eq!(t("float *"), "*mut f32");
    assert_eq!(t("lgd_loss *const *"), "*const *mut lgd_loss");
    assert_eq!(t("const char **"), "*mut *const c_char");
    assert_eq!(t("lgd_context **"), "*mut *mut lgd_context");
    assert_eq!(t("void *"), "*mut c_void");
    assert_eq!(t("const void *"), "*const c_void");
    assert_eq!(t("void"), "");
    assert_eq!(t("size_t"), "usize");
    assert_eq!(
        prototype("const char *lgd_network_metadata(const lgd_network *network, const char *key)"),
        (
            "lgd_network_metadata".to_owned(),
            vec!["*const lgd_network".to_owned(), "*const c_char".to_owned()],
            "*const c_char".to_owned()
        )
    );
    let (name, params, ret) = fn_pointer("void (*destroy)(void *user)");
    assert_eq!((name.as_str(), params, ret.as_str()), ("destroy", vec!["*mut c_void".to_owned()], ""));
    assert_eq!(
        norm(&fn_pointer_rust(&["*mut c_void".into()], "")),
        norm("Option<unsafe extern \"C\" fn(*mut c_void)>")
    );
    // a header mismatch is reported: a struct with a field the Rust side lacks
    let mut p = Parsed::default();
    parse_code("typedef struct lgd_obstacle_options { uint32_t struct_size; float sharpness; } lgd_obstacle_options;", &mut p);
    assert_eq!(p.structs["lgd_obstacle_options"].len(), 2);
    let rust = meta::STRUCTS.iter().find(|s| s.name == "lgd_obstacle_options").unwrap();
    assert_ne!(p.structs["lgd_obstacle_options"].len(), rust.fields.len());
}

#[test]
fn include_dirs_hold_the_headers() {
    let dirs = include_dirs();
    assert!(
        dirs.iter().any(|d| Path::new(d).join("lgd").join("lgd.h").exists()),
        "no lgd/lgd.h under {dirs:?}"
    );
}
