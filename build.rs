//! Build script: embeds the SQL migrations and the static assets into the binary.
//!
//! It writes two generated files into `OUT_DIR`:
//! - `migrations.rs`: one `&[(version, description, sql)]` slice per database backend,
//!   read from `migrations/{sqlite,postgres}/<version>_<description>.sql`;
//! - `static_assets.rs`: every file under `static/` with a content hash, so URLs
//!   can carry cache-busting names (`app.<hash>.css`) and be cached forever.
//!
//! It must stay dependency-free and fast: it runs on every clean build.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=static");

    let mut code = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = root.join("migrations").join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let _ = writeln!(code, "pub const {}: &[(i64, &str, &str)] = &[", backend.to_uppercase());
        for path in sorted_files(&dir) {
            let name = file_name(&path);
            let Some(stem) = name.strip_suffix(".sql") else {
                continue;
            };
            let (version, description) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("migration {name} must be named <version>_<description>.sql"));
            let version: i64 =
                version.parse().unwrap_or_else(|_| panic!("migration {name}: version must be an integer"));
            let _ = writeln!(code, "    ({version}, {description:?}, include_str!({:?})),", path.display().to_string());
        }
        code.push_str("];\n");
    }
    write(&out.join("migrations.rs"), &code);

    let mut assets = String::from("pub const ASSETS: &[StaticAsset] = &[\n");
    let static_dir = root.join("static");
    for path in sorted_files(&static_dir) {
        let name = file_name(&path);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let hash = format!("{:016x}", fnv1a(&bytes));
        let hashed = match name.split_once('.') {
            Some((stem, ext)) => format!("{stem}.{}.{ext}", &hash[..10]),
            None => format!("{name}.{}", &hash[..10]),
        };
        let _ = writeln!(
            assets,
            "    StaticAsset {{ name: {name:?}, hashed_name: {hashed:?}, bytes: include_bytes!({:?}) }},",
            path.display().to_string()
        );
    }
    assets.push_str("];\n");
    write(&out.join("static_assets.rs"), &assets);
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn write(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// FNV-1a, 64-bit: a stable content hash with no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}
