//! Records the git commit the binary is built from, for `--version`, by reading `.git` (no
//! git needed at build time; "unknown" outside a checkout, e.g. from a source tarball).

use std::fs::read_to_string;
use std::path::{Path, PathBuf};

fn main() {
    let revision = git_revision().unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SUBSYNC_GIT_REVISION={revision}");
}

fn watch(path: &Path) {
    // Only existing files: a missing one would make every build run this script again.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git_revision() -> Option<String> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
    let mut git = root.join(".git");
    // A worktree's .git is a file naming its directory.
    if git.is_file() {
        let text = read_to_string(&git).ok()?;
        git = root.join(text.strip_prefix("gitdir:")?.trim());
    }
    watch(&git.join("HEAD"));
    let head = read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let commit = match head.strip_prefix("ref: ") {
        None => head.to_owned(),
        Some(name) => {
            let common = read_to_string(git.join("commondir"))
                .map(|c| git.join(c.trim()))
                .unwrap_or_else(|_| git.clone());
            let loose = common.join(name);
            let packed = common.join("packed-refs");
            watch(&loose);
            watch(&packed);
            match read_to_string(&loose) {
                Ok(text) => text.trim().to_owned(),
                Err(_) => read_to_string(&packed)
                    .ok()?
                    .lines()
                    .find_map(|l| l.strip_suffix(name)?.strip_suffix(' ').map(str::to_owned))?,
            }
        }
    };
    let ok = commit.len() >= 12 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| commit[..12].to_owned())
}
