//! The crate's layering, checked: `src/lib.rs` lists its modules bottom to top, and every
//! module may use only itself and the modules listed before it (`docs/architecture.md` draws
//! the layers). A use of a later module is a back-edge, the start of an import cycle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules of `src/lib.rs`, in the order it declares them.
fn layers(lib: &str) -> Vec<String> {
    lib.lines()
        .map(str::trim)
        .filter_map(|line| {
            let line = line.strip_prefix("pub ").unwrap_or(line);
            line.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// The source files of module `name`: `src/name.rs`, or everything under `src/name/`.
fn files_of(src: &Path, name: &str) -> Vec<PathBuf> {
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut files = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The crate's top-level modules that `code` names as `crate::<module>`, comments left out
/// (a doc link to a later module is documentation, not a dependency).
fn used_modules(code: &str, modules: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(name.as_str()) {
                used.insert(name);
            }
        }
        // `use crate::{a, b::c}`.
        if let Some(rest) = line.strip_prefix("use crate::{") {
            for part in rest.split([',', '}']) {
                let name = part.trim().split("::").next().unwrap_or("");
                if modules.contains(name) {
                    used.insert(name.to_owned());
                }
            }
        }
    }
    used
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(order.len() > 10, "read the module list of src/lib.rs: {order:?}");
    let modules: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let mut back_edges = Vec::new();
    for (rank, module) in order.iter().enumerate() {
        for file in files_of(&src, module) {
            let code = std::fs::read_to_string(&file).unwrap();
            for used in used_modules(&code, &modules) {
                let used_rank = order.iter().position(|m| *m == used).unwrap();
                if used_rank > rank {
                    back_edges.push(format!("{} uses {used}", file.display()));
                }
            }
        }
    }
    assert!(back_edges.is_empty(), "back-edges:\n{}", back_edges.join("\n"));
}

#[test]
fn the_checker_sees_uses_and_ignores_comments() {
    let modules: BTreeSet<&str> = ["sync", "ring", "table"].into_iter().collect();
    let code = "use crate::sync::Arc;\n// see crate::ring\nlet x = crate::table::find();\nuse crate::{ring, other};\n";
    let used: Vec<String> = used_modules(code, &modules).into_iter().collect();
    assert_eq!(used, ["ring", "sync", "table"]);
    assert_eq!(layers("mod a;\n#[cfg(x)]\npub mod b;\nmod c;\n"), ["a", "b", "c"]);
}
