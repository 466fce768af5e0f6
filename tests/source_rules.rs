//! Rules the source keeps, checked on the source text:
//!
//! - the modules of the library depend on each other one way only (no
//!   cycles among `crate::x` references; the order is printed);
//! - no function in `src/` is longer than 60 lines (test code excepted);
//! - `src/main.rs` only parses and dispatches: under 120 lines.
//!
//! `cargo test --test source_rules -- --nocapture` prints the module order
//! and the longest functions.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 60;
const MAX_MAIN_LINES: usize = 120;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// The source without comments and with string and char literals blanked,
/// line structure kept, so braces can be counted.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            out.extend(rest[..end].chars().filter(|&c| c == '\n'));
            i += end;
        } else if let Some(len) = raw_string_len(rest) {
            out.extend(rest[..len].chars().filter(|&c| c == '\n'));
            out.push_str("\"\"");
            i += len;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.extend(text[i..=j.min(b.len() - 1)].chars().filter(|&c| c == '\n'));
            out.push_str("\"\"");
            i = j + 1;
        } else if let Some(len) = char_literal_len(rest) {
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn raw_string_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix('r')?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let body = body[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    Some(1 + hashes + 1 + body.find(&close)? + close.len())
}

fn char_literal_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix('\'')?;
    if let Some(esc) = body.strip_prefix('\\') {
        let end = esc.find('\'')?;
        return (end <= 10).then_some(end + 3);
    }
    let c = body.chars().next()?;
    body[c.len_utf8()..]
        .starts_with('\'')
        .then_some(c.len_utf8() + 2)
}

/// (name, first line, length in lines) of every fn with a body.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(pos) = line.find("fn ") else {
            continue;
        };
        if pos > 0 && !line[..pos].ends_with([' ', '(']) {
            continue;
        }
        let name: String = line[pos + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        if let Some(len) = body_lines(&lines[n..]) {
            found.push((name, n + 1, len));
        }
    }
    found
}

fn body_lines(lines: &[&str]) -> Option<usize> {
    let mut depth = 0i32;
    let mut opened = false;
    for (k, line) in lines.iter().enumerate() {
        for c in line.chars() {
            match c {
                ';' if !opened && depth == 0 => return None,
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => {
                    depth -= 1;
                    if opened && depth == 0 {
                        return Some(k + 1);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// The code of a file that is not test code.
fn non_test_code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let code = code_only(&fs::read_to_string(path).unwrap());
    match code.find("#[cfg(test)]") {
        Some(at) => code[..at].to_string(),
        None => code,
    }
}

#[test]
fn no_function_in_src_is_longer_than_60_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut all = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(src()).unwrap().display().to_string();
        for (name, line, len) in functions(&non_test_code(path)) {
            all.push((len, format!("src/{rel}:{line} {name}")));
        }
    }
    all.sort_by(|a, b| b.cmp(a));
    println!("longest functions:");
    for (len, at) in all.iter().take(5) {
        println!("  {len:3} lines  {at}");
    }
    let long: Vec<_> = all.iter().filter(|(len, _)| *len > MAX_FN_LINES).collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:?}"
    );
}

#[test]
fn main_rs_only_parses_and_dispatches() {
    let lines = fs::read_to_string(src().join("main.rs"))
        .unwrap()
        .lines()
        .count();
    println!("src/main.rs: {lines} lines");
    assert!(lines < MAX_MAIN_LINES, "src/main.rs has {lines} lines");
}

/// Top-level module of a file under src/ (`election/phase.rs` -> `election`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Library modules each file refers to through `crate::`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let module = module_of(path.strip_prefix(src()).unwrap());
        if module == "main" || module == "cli" || module == "lib" {
            continue; // the binary and the root sit on top of everything
        }
        let code = non_test_code(path);
        let entry = deps.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let target: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !target.is_empty() && target != module {
                entry.insert(target);
            }
        }
    }
    deps
}

/// Modules in the order they can be built, each after those it uses;
/// panics on a cycle.
fn one_way_order(mut deps: BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut order = Vec::new();
    while !deps.is_empty() {
        let ready: Vec<String> = deps
            .iter()
            .filter(|(_, d)| d.iter().all(|t| !deps.contains_key(t)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!ready.is_empty(), "import cycle among {deps:?}");
        for m in ready {
            let d = deps.remove(&m).unwrap();
            order.push(format!(
                "{m} -> {{{}}}",
                d.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    order
}

#[test]
fn library_modules_depend_on_each_other_one_way() {
    println!("modules, each using only those above it:");
    for line in one_way_order(dependencies()) {
        println!("  {line}");
    }
}

/// Within each directory module, which sibling files each file uses through
/// `super::` (the parent `mod.rs`, which declares and re-exports them, and
/// the tests stay out).
fn sibling_dependencies(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    let mut deps = BTreeMap::new();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "mod" || name == "tests" || path.parent() != Some(dir) {
            continue;
        }
        let code = non_test_code(path);
        let mut uses = BTreeSet::new();
        for (at, _) in code.match_indices("super::") {
            let target: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if names.contains(&target) && target != name && target != "mod" {
                uses.insert(target);
            }
        }
        deps.insert(name, uses);
    }
    deps
}

#[test]
fn the_files_of_each_module_depend_on_each_other_one_way() {
    for module in ["election", "config", "supervise", "backend", "cli"] {
        println!("src/{module}/, each file using only those above it:");
        for line in one_way_order(sibling_dependencies(&src().join(module))) {
            println!("  {line}");
        }
    }
}
