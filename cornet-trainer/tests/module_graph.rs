//! The shape of the crate, held by a test: no two modules import each other, directly or in a
//! loop, and `score/` (neural similarity) needs nothing of training, configs or extraction.
//!
//! A module is a source file. Its imports are every `crate::`, `super::` and `self::` path in
//! its code (`use` trees expanded; comments and `#[cfg(test)]` items left out), resolved to
//! the file that defines the item: a name that a `mod.rs` re-exports (`pub use run::Trainer`)
//! leads to the file it comes from, so a folder's front door is not taken for a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What `score/` may import from outside itself: error plumbing, file writing and numpy's
/// files.
const SCORE_MAY_IMPORT: &[&str] = &["arrays", "error", "files"];

#[test]
fn no_module_imports_another_that_imports_it_back() {
    for root in ["lib.rs", "main.rs"] {
        let graph = Graph::of_crate(&src().join(root));
        let loops = graph.loops();
        assert!(
            loops.is_empty(),
            "modules of the crate at {root} that import each other:\n{}",
            loops
                .iter()
                .map(|members| format!("  {}", members.join(" -> ")))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn scoring_imports_only_itself_and_plumbing() {
    let graph = Graph::of_crate(&src().join("lib.rs"));
    let score = ["score".to_string()];
    let mut wrong = Vec::new();
    for (module, imports) in &graph.edges {
        if !module.starts_with(&score) {
            continue;
        }
        for import in imports {
            let allowed = import.starts_with(&score)
                || SCORE_MAY_IMPORT.contains(&import.first().map_or("", String::as_str));
            if !allowed {
                wrong.push(format!(
                    "{} imports {}",
                    module.join("::"),
                    import.join("::")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "score/ reaches outside itself:\n{}",
        wrong.join("\n")
    );
}

/// The checker itself, on a crate made for it: a loop through a child's `super::` import is
/// found, and a name re-exported by a folder's `mod.rs` is not taken for one.
#[test]
fn the_checker_finds_a_loop_and_sees_through_re_exports() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\n");
    write(
        "a/mod.rs",
        "mod x;\nmod y;\npub use x::X;\npub fn f() { y::g(); }\n",
    );
    write("a/x.rs", "pub struct X;\n");
    write(
        "a/y.rs",
        "// super::f() in a comment is no import\npub fn g() -> super::X { super::X }\n",
    );
    write(
        "b.rs",
        "use crate::a::X;\npub struct B(X);\n#[cfg(test)]\nmod tests {\n    use crate::a::f;\n}\n",
    );
    let graph = Graph::of_crate(&dir.path().join("lib.rs"));
    assert!(graph.loops().is_empty(), "{:?}", graph.loops());
    assert!(graph.edges[&path("a::y")].contains(&path("a::x")));

    write("a/y.rs", "pub fn g() { super::f() }\n");
    let loops = Graph::of_crate(&dir.path().join("lib.rs")).loops();
    assert_eq!(loops, [vec!["a".to_string(), "a::y/".to_string()]]);
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn path(text: &str) -> Vec<String> {
    text.split("::").map(str::to_owned).collect()
}

/// Module paths (`train::run`) of a crate's files and what each imports.
struct Graph {
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

/// One source file: its module path, its children and its code without comments and tests.
struct Module {
    path: Vec<String>,
    /// The modules it declares (`mod x;`), which its code may name without `self::`.
    children: Vec<String>,
    code: String,
}

impl Graph {
    fn of_crate(root: &Path) -> Graph {
        let mut modules = Vec::new();
        collect(root, Vec::new(), true, &mut modules);
        let by_path: BTreeMap<Vec<String>, &Module> =
            modules.iter().map(|m| (m.path.clone(), m)).collect();
        let mut edges = BTreeMap::new();
        for module in &modules {
            let mut imports = BTreeSet::new();
            for used in paths_in(&module.code, &module.children) {
                let Some(absolute) = absolute(module, &used) else {
                    continue;
                };
                let target = resolve(&by_path, absolute, 0);
                if target != module.path {
                    imports.insert(target);
                }
            }
            edges.insert(module.path.clone(), imports);
        }
        Graph { edges }
    }

    /// Every set of modules that reach each other, each sorted. Modules are compared at
    /// every level of the tree: two folders import each other when any file of one imports
    /// any file of the other (`train/` and `evaluate/`), and a folder's `mod.rs` counts apart
    /// from its children (`curves` and `curves/draw`).
    fn loops(&self) -> Vec<Vec<String>> {
        // Between the modules under a common parent: `a/` for a child's whole subtree, `a`
        // for the parent's own file.
        let mut level_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, imports) in &self.edges {
            for to in imports {
                let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
                let node = |module: &Vec<String>| match module.len() == common {
                    true => module.join("::"),
                    false => format!("{}/", module[..=common].join("::")),
                };
                let (a, b) = (node(from), node(to));
                level_edges.entry(b.clone()).or_default();
                level_edges.entry(a).or_default().insert(b);
            }
        }
        let nodes: Vec<&String> = level_edges.keys().collect();
        let index_of: BTreeMap<&String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let successors: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| level_edges[*n].iter().map(|m| index_of[m]).collect())
            .collect();
        let mut tarjan = Tarjan {
            successors: &successors,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for v in 0..nodes.len() {
            if tarjan.index[v].is_none() {
                tarjan.visit(v);
            }
        }
        let mut loops: Vec<Vec<String>> = tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<String> = c.iter().map(|&i| nodes[i].clone()).collect();
                names.sort();
                names
            })
            .collect();
        loops.sort();
        loops
    }
}

struct Tarjan<'a> {
    successors: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.successors[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// The file at `file` as module `path`, then the files of the modules it declares (`mod x;`).
fn collect(file: &Path, path: Vec<String>, is_folder: bool, out: &mut Vec<Module>) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code = without_tests(&without_comments(&text));
    let dir = match is_folder {
        true => file.parent().unwrap().to_owned(),
        false => file.with_extension(""),
    };
    let children = declared_modules(&code);
    for name in &children {
        let mut child = path.clone();
        child.push(name.clone());
        let (flat, folder) = (
            dir.join(format!("{name}.rs")),
            dir.join(name).join("mod.rs"),
        );
        match (flat.is_file(), folder.is_file()) {
            (true, _) => collect(&flat, child, false, out),
            (false, true) => collect(&folder, child, true, out),
            (false, false) => panic!("{}: no file for `mod {name};`", file.display()),
        }
    }
    out.push(Module {
        path,
        children,
        code,
    });
}

/// Names of the `mod x;` declarations (not inline `mod x { ... }`).
fn declared_modules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// `text` without `//` comments (doc comments included) and `/* */` blocks, strings kept.
fn without_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        } else {
            in_string = c == '"' && !(i > 0 && chars[i - 1] == '\'');
            out.push(c);
        }
        i += 1;
    }
    out
}

/// `code` without the items marked `#[cfg(test)]`: a test's imports are not the module's.
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(start) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..start]);
        let item = &rest[start..];
        let end = match (item.find('{'), item.find(';')) {
            (Some(open), semicolon) if semicolon.is_none_or(|s| open < s) => {
                let mut depth = 0;
                let mut close = item.len();
                for (i, c) in item.char_indices().skip(open) {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                close
            }
            (_, Some(semicolon)) => semicolon + 1,
            _ => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Every path that starts with `crate`, `super`, `self` or a child module's name (as `self::`),
/// `use` groups expanded: `use crate::a::{b, c::D}` gives `crate::a::b` and `crate::a::c::D`.
fn paths_in(code: &str, children: &[String]) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let heads: Vec<String> = ["crate", "super", "self"]
        .iter()
        .map(|s| s.to_string())
        .chain(children.iter().cloned())
        .map(|head| format!("{head}::"))
        .collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let before = |k: usize| i.checked_sub(k).map(|j| chars[j]);
        let starts_path = !before(1).is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let head = heads
            .iter()
            .position(|head| starts_path && code_at(&chars, i, head));
        match head {
            Some(k) => {
                let (paths, end) = tree(&chars, i);
                for mut path in paths {
                    if k >= 3 {
                        path.insert(0, "self".into());
                    }
                    found.push(path);
                }
                i = end;
            }
            None => i += 1,
        }
    }
    found
}

fn code_at(chars: &[char], i: usize, text: &str) -> bool {
    text.chars()
        .enumerate()
        .all(|(k, c)| chars.get(i + k) == Some(&c))
}

/// The use tree at `i`: a path of identifiers, perhaps ending in a `{...}` group of trees.
/// Returns the paths it names and where it ends.
fn tree(chars: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let mut prefix = Vec::new();
    loop {
        i = skip_space(i);
        if chars.get(i) == Some(&'{') {
            let mut paths = Vec::new();
            i += 1;
            loop {
                i = skip_space(i);
                match chars.get(i) {
                    Some('}') => return (paths, i + 1),
                    Some(',') => i += 1,
                    None => return (paths, i),
                    Some(_) => {
                        let (inner, end) = tree(chars, i);
                        for path in inner {
                            let mut full = prefix.clone();
                            full.extend(path);
                            paths.push(full);
                        }
                        // `as name` and anything else up to the next `,` or `}`.
                        i = end;
                        while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                            i += 1;
                        }
                    }
                }
            }
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i == start {
            // `*` or the end of the path.
            return (vec![prefix], i);
        }
        prefix.push(chars[start..i].iter().collect());
        if code_at(chars, i, "::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// `used`, written in `module`, as a path from the crate's root.
fn absolute(module: &Module, used: &[String]) -> Option<Vec<String>> {
    let mut segments = used.iter().peekable();
    let mut path = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        _ => {
            // `self` is this module; each `super` its parent (a file `a/b.rs` is `a::b`).
            let mut path = module.path.clone();
            while let Some(s) = segments.peek() {
                match s.as_str() {
                    "self" => {}
                    "super" => {
                        path.pop()?;
                    }
                    _ => break,
                }
                segments.next();
            }
            path
        }
    };
    path.extend(segments.filter(|s| *s != "self").cloned());
    Some(path)
}

/// The file module that defines what `path` names: its longest prefix that is a module, or,
/// for a name that a folder's `mod.rs` re-exports, the module the name comes from.
fn resolve(
    modules: &BTreeMap<Vec<String>, &Module>,
    path: Vec<String>,
    depth: usize,
) -> Vec<String> {
    let mut prefix = path.clone();
    while !modules.contains_key(&prefix) {
        if prefix.pop().is_none() {
            return path;
        }
    }
    let module = modules[&prefix];
    let Some(name) = path.get(prefix.len()) else {
        return prefix;
    };
    if depth < 8 {
        if let Some(source) = re_exports(module).remove(name) {
            if let Some(absolute) = absolute(module, &source) {
                return resolve(modules, absolute, depth + 1);
            }
        }
    }
    prefix
}

/// The names a module re-exports (`pub use x::{A, B as C}`), each with the path it names.
fn re_exports(module: &Module) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeMap::new();
    let mut rest = module.code.as_str();
    while let Some(start) = rest.find("pub use ") {
        let after = &rest[start + "pub use ".len()..];
        let end = after.find(';').unwrap_or(after.len());
        let statement: Vec<char> = after[..end].chars().collect();
        let mut relative: Vec<char> = "self::".chars().collect();
        if after.starts_with("crate::")
            || after.starts_with("super::")
            || after.starts_with("self::")
        {
            relative.clear();
        }
        relative.extend(statement);
        for path in tree(&relative, 0).0 {
            if let Some(last) = path.last() {
                names.insert(last.clone(), path);
            }
        }
        // `as` renames: `B as C` is exported as C.
        for part in after[..end].split([',', '{', '}']) {
            if let Some((original, renamed)) = part.split_once(" as ") {
                let original = original.trim().rsplit("::").next().unwrap_or("");
                if let Some(source) = names.remove(original) {
                    names.insert(renamed.trim().to_owned(), source);
                }
            }
        }
        rest = &after[end..];
    }
    names
}
