//! Fails on any import cycle between the source files of a crate of the workspace.
//!
//! The crates are those rooted at `src/lib.rs`, `cached-macros/src/lib.rs`,
//! `cached-runtime/src/lib.rs`, and, when `tools/src/` exists, its `lib.rs`, `main.rs` and
//! `bin/*.rs`. `MODULE_CYCLES_ROOT` points the check at another checkout of the workspace.
//!
//! Each crate is read from its root through its `mod name;` declarations (`name.rs`, whose
//! children live in `name/`, or `name/mod.rs`) into a graph file -> file. Its edges:
//! - a `mod name;` declaration, from the declaring file to the module's file (the name it
//!   takes reads `mod name`);
//! - every `use` whose path starts at `crate`, `self`, `super`, a child module or a name
//!   the module imports (grouped and nested trees, any visibility);
//! - every such path in code (`crate::store::lease::Lease::new()`, `$crate::...` in macros).
//!
//! A module declared with `#[path = "..."]` is another crate's file (the load tools include
//! the test harness so) and is left out. Any other module whose file is not where Rust
//! looks fails the test, naming it.
//!
//! A path resolves to the deepest module it names. A name that a module imports (a `pub
//! use` re-export in `lib.rs` or a `mod.rs`, or any other `use`, or a glob) resolves through
//! that import to the module that defines it.
//!
//! Rules:
//! - A file's inline modules (`mod tests { ... }`) belong to the file.
//! - `#[cfg(...)]` code counts like any other: a test's imports are imports.
//! - An edge from a module to one of its ancestors is not counted: a child uses the
//!   vocabulary its parent defines, as Rust's privacy model intends. Parent -> child edges
//!   are counted.
//! - Comments, string and character literals are dropped before scanning.
//!
//! The cycles are the strongly connected components of more than one file (Tarjan). The
//! test fails with each: its files, then every edge inside it with the names it takes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[test]
fn no_import_cycles_between_modules() {
    let workspace = std::env::var_os("MODULE_CYCLES_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let mut report = String::new();
    for (src, root) in crate_roots(&workspace) {
        let dir = workspace.join(&src);
        let krate = Crate::read(&root, &|file| std::fs::read_to_string(dir.join(file)).ok())
            .unwrap_or_else(|error| panic!("{src}/{root}: {error}"));
        for cycle in krate.cycles() {
            writeln!(report, "\n{src}: {} files", cycle.files.len()).unwrap();
            for file in &cycle.files {
                writeln!(report, "  {file}").unwrap();
            }
            for (from, to, names) in &cycle.edges {
                writeln!(report, "    {}", edge(from, to, names)).unwrap();
            }
        }
    }
    assert!(
        report.is_empty(),
        "import cycles between modules:\n{report}"
    );
}

/// (source directory, root file inside it) of each crate.
fn crate_roots(workspace: &Path) -> Vec<(String, String)> {
    let mut roots = vec![
        ("src".to_owned(), "lib.rs".to_owned()),
        ("cached-macros/src".to_owned(), "lib.rs".to_owned()),
        ("cached-runtime/src".to_owned(), "lib.rs".to_owned()),
    ];
    let tools = workspace.join("tools/src");
    for root in ["lib.rs", "main.rs"] {
        if tools.join(root).is_file() {
            roots.push(("tools/src".to_owned(), root.to_owned()));
        }
    }
    if let Ok(bins) = std::fs::read_dir(tools.join("bin")) {
        let mut bins: Vec<String> = bins
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                if name.ends_with(".rs") {
                    Some(format!("bin/{name}"))
                } else if tools.join("bin").join(&name).join("main.rs").is_file() {
                    Some(format!("bin/{name}/main.rs"))
                } else {
                    None
                }
            })
            .collect();
        bins.sort();
        roots.extend(bins.into_iter().map(|bin| ("tools/src".to_owned(), bin)));
    }
    roots
}

fn edge(from: &str, to: &str, names: &BTreeSet<String>) -> String {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    format!("{from} -> {to}: {}", names.join(", "))
}

// ---------------------------------------------------------------------------------------
// Lexing: identifiers, `::` and single punctuation; comments and literals dropped.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
    /// A literal or lifetime: kept so that the tokens around it do not join.
    Lit,
}

/// Whether the `mod` at `at` follows a `#[path = "..."]` attribute.
fn has_path(toks: &[Tok], at: usize) -> bool {
    let path = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("path".to_owned()),
        Tok::Punct('='),
        Tok::Lit,
        Tok::Punct(']'),
    ];
    at >= path.len() && toks[at - path.len()..at] == path
}

fn lex(src: &str) -> Vec<Tok> {
    let s: Vec<char> = src.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let ident_char = |c: char| c == '_' || c.is_alphanumeric();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&s, i + 1);
            out.push(Tok::Lit);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // '\n', '\'', '\u{..}': the closing quote comes after the escaped character.
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime or a label.
                i += 1;
                while i < s.len() && ident_char(s[i]) {
                    i += 1;
                }
            }
            out.push(Tok::Lit);
        } else if c.is_ascii_digit() {
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            out.push(Tok::Lit);
        } else if ident_char(c) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
            match word.as_str() {
                "r" | "br" | "cr" if at(i + hashes) == '"' => {
                    // A raw string ends at a quote followed by as many hashes.
                    i += hashes + 1;
                    while i < s.len()
                        && !(s[i] == '"'
                            && s[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes)
                    {
                        i += 1;
                    }
                    i += hashes + 1;
                    out.push(Tok::Lit);
                }
                "r" if hashes == 1 && ident_char(at(i + 1)) => {
                    // A raw identifier: `r#type`.
                    let start = i + 1;
                    i = start;
                    while i < s.len() && ident_char(s[i]) {
                        i += 1;
                    }
                    out.push(Tok::Ident(s[start..i].iter().collect()));
                }
                "b" | "c" if at(i) == '"' => {
                    i = skip_string(&s, i + 1);
                    out.push(Tok::Lit);
                }
                _ => out.push(Tok::Ident(word)),
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// The index after the closing quote of a string whose contents start at `i`.
fn skip_string(s: &[char], mut i: usize) -> usize {
    while i < s.len() && s[i] != '"' {
        i += if s[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

// ---------------------------------------------------------------------------------------
// Parsing: the module tree, and per module its imports, its paths and the items it defines.

/// An import: the path as written, and the name it binds (`None` for a glob).
struct Import {
    path: Vec<String>,
    name: Option<String>,
}

struct Module {
    /// Path from the crate root, inline modules included.
    path: Vec<String>,
    parent: Option<usize>,
    /// Index into `Crate::files`.
    file: usize,
    children: BTreeMap<String, usize>,
    imports: Vec<Import>,
    /// Paths as written that may name a module of the crate: imports, and paths in code.
    paths: Vec<Vec<String>>,
    /// Names of items defined here, where a glob import may find them.
    items: BTreeSet<String>,
}

struct Crate {
    files: Vec<String>,
    modules: Vec<Module>,
    /// `mod name;`: (declaring file, declared file, name).
    declarations: Vec<(usize, usize, String)>,
}

const ROOT: usize = 0;

impl Crate {
    /// Reads the crate whose root file is `root`; `read` gives a file's text by its path
    /// relative to the source directory.
    fn read(root: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Crate, String> {
        let mut krate = Crate {
            files: Vec::new(),
            modules: Vec::new(),
            declarations: Vec::new(),
        };
        let dir = match root.rfind('/') {
            Some(slash) => &root[..=slash],
            None => "",
        };
        krate.add_module(Vec::new(), None, root);
        let mut queue = vec![(ROOT, dir.to_owned())];
        while let Some((module, dir)) = queue.pop() {
            let file = krate.modules[module].file;
            let text = read(&krate.files[file])
                .ok_or_else(|| format!("cannot read {}", krate.files[file]))?;
            krate.parse(module, &dir, &lex(&text), read, &mut queue)?;
        }
        Ok(krate)
    }

    fn add_module(&mut self, path: Vec<String>, parent: Option<usize>, file: &str) -> usize {
        let file = match self.files.iter().position(|known| known == file) {
            Some(index) => index,
            None => {
                self.files.push(file.to_owned());
                self.files.len() - 1
            }
        };
        let id = self.modules.len();
        if let (Some(parent), Some(name)) = (parent, path.last()) {
            self.modules[parent].children.insert(name.clone(), id);
        }
        self.modules.push(Module {
            path,
            parent,
            file,
            children: BTreeMap::new(),
            imports: Vec::new(),
            paths: Vec::new(),
            items: BTreeSet::new(),
        });
        id
    }

    /// Reads one file's tokens into `module` and the inline modules it holds; file modules
    /// it declares go to `queue` with the directory of their children.
    fn parse(
        &mut self,
        module: usize,
        dir: &str,
        toks: &[Tok],
        read: &dyn Fn(&str) -> Option<String>,
        queue: &mut Vec<(usize, String)>,
    ) -> Result<(), String> {
        let ident = |i: usize| match toks.get(i) {
            Some(Tok::Ident(name)) => Some(name.as_str()),
            _ => None,
        };
        // (module, brace depth inside it, directory of its children)
        let mut scopes = vec![(module, 0usize, dir.to_owned())];
        let mut depth = 0;
        let mut i = 0;
        while i < toks.len() {
            let (current, current_depth, current_dir) = scopes.last().cloned().unwrap_or_default();
            let after_path_sep = i > 0 && toks[i - 1] == Tok::PathSep;
            match &toks[i] {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    if depth == current_depth && scopes.len() > 1 {
                        scopes.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                Tok::Ident(word) if word == "use" && !after_path_sep => {
                    i += 1;
                    let mut imports = Vec::new();
                    use_tree(toks, &mut i, Vec::new(), &mut imports);
                    while i < toks.len() && toks[i] != Tok::Punct(';') {
                        i += 1;
                    }
                    let current = &mut self.modules[current];
                    // A glob's path ends in `*`, the name it takes.
                    current.paths.extend(imports.iter().map(|import| {
                        let glob = import.name.is_none().then(|| "*".to_owned());
                        import.path.iter().cloned().chain(glob).collect()
                    }));
                    current.imports.extend(imports);
                }
                Tok::Ident(word)
                    if word == "mod" && ident(i + 1).is_some() && has_path(toks, i) =>
                {
                    i += 1;
                }
                Tok::Ident(word) if word == "mod" && ident(i + 1).is_some() => {
                    let name = ident(i + 1).unwrap_or_default().to_owned();
                    let mut path = self.modules[current].path.clone();
                    path.push(name.clone());
                    let child_dir = format!("{current_dir}{name}/");
                    if toks.get(i + 2) == Some(&Tok::Punct('{')) {
                        let child = self.add_module(
                            path,
                            Some(current),
                            &self.files[self.modules[current].file].clone(),
                        );
                        depth += 1;
                        scopes.push((child, depth, child_dir));
                        i += 2;
                    } else {
                        let flat = format!("{current_dir}{name}.rs");
                        let nested = format!("{current_dir}{name}/mod.rs");
                        let file = [flat, nested]
                            .into_iter()
                            .find(|file| read(file).is_some())
                            .ok_or_else(|| format!("no file for `mod {name};` in {current_dir}"))?;
                        let child = self.add_module(path, Some(current), &file);
                        let from = self.modules[current].file;
                        self.declarations
                            .push((from, self.modules[child].file, name));
                        queue.push((child, child_dir));
                        i += 1;
                    }
                }
                Tok::Ident(word) if depth == current_depth && ident(i + 1).is_some() => {
                    let defines = [
                        "fn", "struct", "enum", "union", "trait", "type", "const", "static",
                    ];
                    if defines.contains(&word.as_str()) {
                        let name = ident(i + 1).unwrap_or_default().to_owned();
                        self.modules[current].items.insert(name);
                    }
                }
                Tok::Ident(first) if toks.get(i + 1) == Some(&Tok::PathSep) && !after_path_sep => {
                    let mut path = vec![first.clone()];
                    while toks.get(i + 1) == Some(&Tok::PathSep) {
                        let Some(next) = ident(i + 2) else { break };
                        path.push(next.to_owned());
                        i += 2;
                    }
                    self.modules[current].paths.push(path);
                }
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    /// `path`, written in `module`, from the crate root; `None` outside the crate.
    fn absolute(&self, module: usize, path: &[String], hops: u32) -> Option<Vec<String>> {
        let (first, rest) = path.split_first()?;
        let mut base = self.modules[module].path.clone();
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some([base, rest.to_vec()].concat()),
            "super" => {
                let supers = path
                    .iter()
                    .take_while(|segment| *segment == "super")
                    .count();
                base.truncate(base.len().checked_sub(supers)?);
                Some([base, path[supers..].to_vec()].concat())
            }
            _ if self.modules[module].children.contains_key(first) => {
                Some([base, path.to_vec()].concat())
            }
            _ if hops < 16 => {
                // A name the module imports: `use crate::store; store::lease::Lease`.
                let import = self.modules[module]
                    .imports
                    .iter()
                    .find(|import| import.name.as_deref() == Some(first) && import.path != path)?;
                let target = self.absolute(module, &import.path, hops + 1)?;
                Some([target, rest.to_vec()].concat())
            }
            _ => None,
        }
    }

    /// The deepest module an absolute path names, and the segments after it.
    fn resolve(&self, path: &[String], hops: u32) -> (usize, Vec<String>) {
        let mut module = ROOT;
        for (k, segment) in path.iter().enumerate() {
            let here = &self.modules[module];
            if let Some(&child) = here.children.get(segment) {
                module = child;
                continue;
            }
            if here.items.contains(segment) || hops >= 16 {
                return (module, path[k..].to_vec());
            }
            let named = here
                .imports
                .iter()
                .find(|import| import.name.as_ref() == Some(segment));
            if let Some(import) = named {
                return match self.absolute(module, &import.path, hops + 1) {
                    Some(target) => {
                        self.resolve(&[target, path[k + 1..].to_vec()].concat(), hops + 1)
                    }
                    None => (module, path[k..].to_vec()),
                };
            }
            for glob in here.imports.iter().filter(|import| import.name.is_none()) {
                let Some(source) = self.absolute(module, &glob.path, hops + 1) else {
                    continue;
                };
                let (found, rest) = self.resolve(&source, hops + 1);
                let found = &self.modules[found];
                let defines = found.children.contains_key(segment)
                    || found.items.contains(segment)
                    || found
                        .imports
                        .iter()
                        .any(|import| import.name.as_ref() == Some(segment));
                if rest.is_empty() && defines {
                    return self.resolve(&[source, path[k..].to_vec()].concat(), hops + 1);
                }
            }
            return (module, path[k..].to_vec());
        }
        (module, Vec::new())
    }

    fn is_ancestor(&self, ancestor: usize, mut module: usize) -> bool {
        loop {
            if module == ancestor {
                return true;
            }
            match self.modules[module].parent {
                Some(parent) => module = parent,
                None => return false,
            }
        }
    }

    /// file -> file -> names taken.
    fn edges(&self) -> BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>> {
        let mut edges: BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>> = BTreeMap::new();
        for (from, to, name) in &self.declarations {
            edges
                .entry(*from)
                .or_default()
                .entry(*to)
                .or_default()
                .insert(format!("mod {name}"));
        }
        for (id, module) in self.modules.iter().enumerate() {
            for written in &module.paths {
                let Some(path) = self.absolute(id, written, 0) else {
                    continue;
                };
                let (target, rest) = self.resolve(&path, 0);
                let to = self.modules[target].file;
                if to == module.file || self.is_ancestor(target, id) {
                    continue;
                }
                let name = match rest.first() {
                    Some(name) => name.clone(),
                    None => self.modules[target]
                        .path
                        .last()
                        .cloned()
                        .unwrap_or_default(),
                };
                edges
                    .entry(module.file)
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(name);
            }
        }
        edges
    }

    /// Every strongly connected component of more than one file.
    fn cycles(&self) -> Vec<Cycle> {
        let edges = self.edges();
        let mut tarjan = Tarjan {
            edges: &edges,
            index: vec![None; self.files.len()],
            low: vec![0; self.files.len()],
            on_stack: vec![false; self.files.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for file in 0..self.files.len() {
            if tarjan.index[file].is_none() {
                tarjan.visit(file);
            }
        }
        let mut cycles: Vec<Cycle> = tarjan
            .components
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let inside: BTreeSet<usize> = component.iter().copied().collect();
                let mut edges_inside = Vec::new();
                for &from in &inside {
                    for (to, names) in edges.get(&from).into_iter().flatten() {
                        if inside.contains(to) {
                            edges_inside.push((
                                self.files[from].clone(),
                                self.files[*to].clone(),
                                names.clone(),
                            ));
                        }
                    }
                }
                edges_inside.sort();
                let mut files: Vec<String> = inside
                    .iter()
                    .map(|&file| self.files[file].clone())
                    .collect();
                files.sort();
                Cycle {
                    files,
                    edges: edges_inside,
                }
            })
            .collect();
        cycles.sort_by(|a, b| a.files.cmp(&b.files));
        cycles
    }
}

/// Reads one `use` tree from `toks[*i]` on, with `prefix` the path above it.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Import>) {
    let mut path = prefix;
    if toks.get(*i) == Some(&Tok::PathSep) {
        // `use ::name`: outside the crate.
        path.push("::".to_owned());
        *i += 1;
    }
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(segment)) => {
                path.push(segment.clone());
                *i += 1;
                if toks.get(*i) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                if path.last().map(String::as_str) == Some("self") && path.len() > 1 {
                    path.pop();
                }
                let mut name = path.last().cloned();
                if toks.get(*i) == Some(&Tok::Ident("as".to_owned())) {
                    name = match toks.get(*i + 1) {
                        Some(Tok::Ident(alias)) if alias != "_" => Some(alias.clone()),
                        // `as _` binds no name, which `None` would take for a glob.
                        _ => Some(String::new()),
                    };
                    *i += 2;
                }
                out.push(Import { path, name });
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(Import { path, name: None });
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                while *i < toks.len() && toks[*i] != Tok::Punct('}') {
                    let before = *i;
                    use_tree(toks, i, path.clone(), out);
                    if toks.get(*i) == Some(&Tok::Punct(',')) || *i == before {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
}

struct Cycle {
    files: Vec<String>,
    edges: Vec<(String, String, BTreeSet<String>)>,
}

struct Tarjan<'a> {
    edges: &'a BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>>,
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, node: usize) {
        self.index[node] = Some(self.next);
        self.low[node] = self.next;
        self.next += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        let edges = self.edges;
        for &to in edges.get(&node).map(BTreeMap::keys).into_iter().flatten() {
            match self.index[to] {
                None => {
                    self.visit(to);
                    self.low[node] = self.low[node].min(self.low[to]);
                }
                Some(index) if self.on_stack[to] => self.low[node] = self.low[node].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[node]) == self.index[node] {
            let mut component = Vec::new();
            while let Some(top) = self.stack.pop() {
                self.on_stack[top] = false;
                component.push(top);
                if top == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scanner on small crates.

/// The crate of `files` (path, text; the first is the root).
fn crate_of(files: &[(&str, &str)]) -> Crate {
    let read = |path: &str| {
        let file = files.iter().find(|(name, _)| *name == path);
        file.map(|(_, text)| text.to_string())
    };
    Crate::read(files[0].0, &read).unwrap()
}

/// Its edges as lines `from -> to: names`, those of `mod` declarations included or not.
fn edges_of(files: &[(&str, &str)], declarations: bool) -> Vec<String> {
    let krate = crate_of(files);
    let mut lines = Vec::new();
    for (from, tos) in krate.edges() {
        for (to, mut names) in tos {
            names.retain(|name| declarations || !name.starts_with("mod "));
            if !names.is_empty() {
                let (from, to) = (&krate.files[from], &krate.files[to]);
                lines.push(edge(from, to, &names));
            }
        }
    }
    lines.sort();
    lines
}

#[test]
fn scanner_reads_grouped_and_nested_imports() {
    let uses = edges_of(
        &[
            ("lib.rs", "mod a; mod b; mod c; mod d; mod e;"),
            (
                "a.rs",
                "use crate::{b::{X, Y as Z}, c::*, d::{self}};\n\
             pub(crate) use super::e::{W, V};\n\
             use std::collections::HashMap;",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
            ("d.rs", ""),
            ("e.rs", ""),
        ],
        false,
    );
    assert_eq!(
        uses,
        [
            "a.rs -> b.rs: X, Y",
            "a.rs -> c.rs: *",
            "a.rs -> d.rs: d",
            "a.rs -> e.rs: V, W"
        ]
    );
}

#[test]
fn scanner_leaves_out_modules_of_another_crate_included_by_path() {
    let edges = edges_of(
        &[
            (
                "lib.rs",
                "mod a;\n#[path = \"../../tests/harness/mod.rs\"]\nmod harness;",
            ),
            ("a.rs", ""),
        ],
        true,
    );
    assert_eq!(edges, ["lib.rs -> a.rs: mod a"]);
}

#[test]
fn scanner_follows_paths_in_code_and_module_files() {
    let edges = edges_of(
        &[
            ("lib.rs", "mod a; mod store; mod c;\nfn f() { c::g(); }"),
            (
                "a.rs",
                "use crate::store;\n\
             fn f() -> Option<crate::store::Thing> {\n\
                 let lease = crate::store::lease::Lease::new();\n\
                 store::memory::Memory::<u8>::open(super::c::g(), lease)\n\
             }",
            ),
            ("store/mod.rs", "mod lease; mod memory;\npub struct Thing;"),
            ("store/lease.rs", ""),
            ("store/memory.rs", ""),
            ("c.rs", ""),
        ],
        true,
    );
    assert_eq!(
        edges,
        [
            "a.rs -> c.rs: g",
            "a.rs -> store/lease.rs: Lease",
            "a.rs -> store/memory.rs: Memory",
            "a.rs -> store/mod.rs: Thing, store",
            "lib.rs -> a.rs: mod a",
            "lib.rs -> c.rs: g, mod c",
            "lib.rs -> store/mod.rs: mod store",
            "store/mod.rs -> store/lease.rs: mod lease",
            "store/mod.rs -> store/memory.rs: mod memory",
        ]
    );
}

#[test]
fn scanner_ignores_comments_and_literals() {
    let a = r##"
        //! See [`crate::b::Doc`].
        // crate::b::Line
        /* crate::b::Block /* nested */ crate::b::AfterNested */
        /// crate::b::Outer
        fn f<'a>(x: &'a str) -> (char, char, char, u8, &'static str, &'static [u8]) {
            let _ = ("crate::b::S \" crate::b::Escaped", r#"crate::b::"Raw"#);
            ('"', '\'', '{', b'\'', "crate::b::AfterChars", b"crate::b::Bytes")
        }
        fn g() -> crate::b::Real {}
    "##;
    let uses = edges_of(
        &[("lib.rs", "mod a; mod b;"), ("a.rs", a), ("b.rs", "")],
        false,
    );
    assert_eq!(uses, ["a.rs -> b.rs: Real"]);
}

#[test]
fn scanner_resolves_names_through_reexports() {
    let uses = edges_of(
        &[
            (
                "lib.rs",
                "mod a; mod b; mod store; mod private;\npub use crate::b::Thing;",
            ),
            (
                "a.rs",
                "use crate::Thing;\nfn f() { crate::store::Lease::new(); crate::private::Call::run(); }",
            ),
            ("b.rs", "pub struct Thing;"),
            (
                "store/mod.rs",
                // The re-export after an inline module still belongs to `store`.
                "mod lease;\n#[cfg(test)]\nmod tests {}\npub(crate) use self::lease::Lease;",
            ),
            ("store/lease.rs", "pub struct Lease;"),
            ("private/mod.rs", "mod call;\npub use self::call::*;"),
            ("private/call.rs", "pub struct Call;"),
        ],
        false,
    );
    assert_eq!(
        uses,
        [
            "a.rs -> b.rs: Thing",
            "a.rs -> private/call.rs: Call",
            "a.rs -> store/lease.rs: Lease",
            "lib.rs -> b.rs: Thing",
            "private/mod.rs -> private/call.rs: *",
            "store/mod.rs -> store/lease.rs: Lease",
        ]
    );
}

#[test]
fn scanner_leaves_out_edges_to_ancestors() {
    let uses = edges_of(
        &[
            (
                "lib.rs",
                "mod store; mod b;\npub struct Error;\npub use crate::b::Shared;",
            ),
            (
                "store/mod.rs",
                "mod lease;\npub struct Store;\npub(crate) use crate::b::Other;",
            ),
            // Its parent's and the root's own items are its vocabulary; names they import are not.
            (
                "store/lease.rs",
                "use super::{Store, Other};\nuse crate::{Error, Shared};\nfn f() -> crate::store::Store {}",
            ),
            ("b.rs", "pub struct Shared; pub struct Other;"),
        ],
        false,
    );
    assert_eq!(
        uses,
        [
            "lib.rs -> b.rs: Shared",
            "store/lease.rs -> b.rs: Other, Shared",
            "store/mod.rs -> b.rs: Other",
        ]
    );
}

#[test]
fn scanner_finds_cycles_through_inline_test_modules() {
    let files = [
        ("lib.rs", "mod a; mod b; mod c;"),
        (
            "a.rs",
            "pub struct A;\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}",
        ),
        (
            "b.rs",
            "pub struct B;\nfn f() -> crate::a::A { crate::c::C }",
        ),
        ("c.rs", "pub struct C;"),
    ];
    let cycles = crate_of(&files).cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].files, ["a.rs", "b.rs"]);
    let edges: Vec<String> = cycles[0]
        .edges
        .iter()
        .map(|(from, to, names)| edge(from, to, names))
        .collect();
    assert_eq!(edges, ["a.rs -> b.rs: B", "b.rs -> a.rs: A"]);
}

#[test]
fn scanner_counts_edges_from_parent_to_child() {
    // The parent's `mod` line and import are edges; the child's use of the parent is not.
    let cycles = crate_of(&[
        ("lib.rs", "mod store; mod builder;"),
        (
            "store/mod.rs",
            "mod cluster;\npub struct Store;\nuse self::cluster::slot;",
        ),
        (
            "store/cluster.rs",
            "use super::Store;\nfn f(_: crate::builder::Certificates) {}",
        ),
        (
            "builder.rs",
            "pub struct Certificates;\nfn g(_: crate::store::Store) {}",
        ),
    ])
    .cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(
        cycles[0].files,
        ["builder.rs", "store/cluster.rs", "store/mod.rs"]
    );
    let edges: Vec<String> = cycles[0]
        .edges
        .iter()
        .map(|(from, to, names)| edge(from, to, names))
        .collect();
    assert_eq!(
        edges,
        [
            "builder.rs -> store/mod.rs: Store",
            "store/cluster.rs -> builder.rs: Certificates",
            "store/mod.rs -> store/cluster.rs: mod cluster, slot",
        ]
    );
}
