//! The house rules, read from the source: layers point one way (`domain` ← `db` ← `billing`,
//! `services` ← `gateway`, `console`, `api` ← `app`), SQL lives in `src/db/`, and nothing is spawned
//! fire-and-forget. A reference that points up a layer fails the test, naming the file, the line
//! and the module it reaches for.
//!
//! Console and API handlers call services, never the database. `KNOWN` lists upward references
//! allowed for now (none since issue 15); a listed reference that is gone fails too, so the list
//! is kept true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A top-level module's layer: it may use its own layer and those below, never above.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "domain" | "i18n" => 0,
        "config" | "secret_key" | "crypto" | "db" | "providers" => 1,
        "billing" | "services" | "mail" | "payments" | "state" => 2,
        "gateway" | "console" | "api" | "metrics" | "ops" | "routes" | "client_ip" | "telemetry" => 3,
        "app" | "cli" | "main" | "lib" => 4,
        _ => return None,
    })
}

/// `(file, module it reaches up for)`: upward references still to be removed (issue 15: none left).
const KNOWN: &[(&str, &str)] = &[];

/// Handler files that use the database handle on purpose: the readiness probe pings it.
const DB_HANDLE_USERS: &[&str] = &["ops.rs"];

/// Files outside `src/db/` that still run SQL themselves (issue 15: none left).
const KNOWN_SQL: &[&str] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each source file (path under `src/`, with `/`) and its code: comments and `mod tests` blocks
/// left out (tests may reach anywhere).
fn code_files() -> Vec<(String, Vec<(usize, String)>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap();
            let text = &text[..test_module_start(&text).unwrap_or(text.len())];
            let lines = text
                .lines()
                .enumerate()
                .map(|(i, line)| (i + 1, line.split("//").next().unwrap_or_default().to_string()))
                .filter(|(_, line)| !line.trim().is_empty())
                .collect();
            (name, lines)
        })
        .collect()
}

/// Where a file's `#[cfg(test)] mod tests` begins (attributes between the two allowed).
fn test_module_start(text: &str) -> Option<usize> {
    text.match_indices("#[cfg(test)]").map(|(at, _)| at).find(|&at| {
        text[at..]
            .lines()
            .skip(1)
            .find(|l| !l.trim_start().starts_with("#["))
            .is_some_and(|l| l.starts_with("mod tests"))
    })
}

fn top_module(file: &str) -> &str {
    let first = file.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The top-level modules a line names as `crate::<module>`.
fn crate_paths(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &line[at + "crate::".len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Every upward reference: `(file, line, module reached for)`.
fn upward_references() -> Vec<(String, usize, String)> {
    let mut found = Vec::new();
    for (file, lines) in code_files() {
        let Some(own) = layer(top_module(&file)) else {
            panic!("src/{file}: its top-level module has no layer in tests/api/architecture.rs");
        };
        for (number, line) in &lines {
            for module in crate_paths(line) {
                if layer(module).is_some_and(|target| target > own) {
                    found.push((file.clone(), *number, module.to_string()));
                }
            }
        }
    }
    found
}

#[test]
fn layers_point_one_way() {
    let found = upward_references();
    let mut by_pair: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (file, line, module) in &found {
        by_pair.entry((file.clone(), module.clone())).or_default().push(*line);
    }
    let new: Vec<String> = by_pair
        .iter()
        .filter(|((file, module), _)| !KNOWN.contains(&(file.as_str(), module.as_str())))
        .map(|((file, module), lines)| format!("src/{file}:{lines:?} uses crate::{module}, a layer above it"))
        .collect();
    assert!(
        new.is_empty(),
        "layers point one way (domain <- db <- services <- gateway/console/api <- app):\n{}",
        new.join("\n")
    );
    let gone: Vec<String> = KNOWN
        .iter()
        .filter(|(file, module)| !by_pair.contains_key(&(file.to_string(), module.to_string())))
        .map(|(file, module)| format!("({file:?}, {module:?})"))
        .collect();
    assert!(
        gone.is_empty(),
        "these are fixed: take them out of KNOWN in tests/api/architecture.rs: {}",
        gone.join(", ")
    );
}

#[test]
fn sql_lives_in_db() {
    let mut outside: Vec<String> = Vec::new();
    for (file, lines) in code_files() {
        if file.starts_with("db/") {
            continue;
        }
        if lines.iter().any(|(_, l)| l.contains("sqlx::query") || l.contains("QueryBuilder")) {
            outside.push(file);
        }
    }
    let new: Vec<&String> = outside.iter().filter(|f| !KNOWN_SQL.contains(&f.as_str())).collect();
    assert!(new.is_empty(), "SQL outside src/db/: {new:?}");
    let gone: Vec<&&str> = KNOWN_SQL.iter().filter(|f| !outside.iter().any(|o| o == *f)).collect();
    assert!(gone.is_empty(), "these no longer run SQL: take them out of KNOWN_SQL: {gone:?}");
}

#[test]
fn handlers_call_services_not_the_database() {
    let handler = |file: &str| {
        ["console/", "api/"].iter().any(|dir| file.starts_with(dir)) || ["metrics.rs", "ops.rs"].contains(&file)
    };
    let mut reaching: Vec<String> = Vec::new();
    for (file, lines) in code_files() {
        if handler(&file) && lines.iter().any(|(_, l)| l.contains(".db()")) {
            reaching.push(file);
        }
    }
    let new: Vec<&String> = reaching.iter().filter(|f| !DB_HANDLE_USERS.contains(&f.as_str())).collect();
    assert!(new.is_empty(), "handlers reaching into the database (call a service instead): {new:?}");
}

#[test]
fn a_wrong_use_is_caught() {
    // The checker itself: a services file reaching for the console is named.
    let line = "use crate::console::Layout; let x = crate::domain::money::Money(1);";
    assert_eq!(crate_paths(line), ["console", "domain"]);
    assert!(layer("console") > layer("services"));
    assert!(layer("domain") < layer("db") && layer("db") < layer("services") && layer("services") < layer("gateway"));
}
