//! Build script: the version `importfs --version` prints, the crate's
//! version plus the git commit it was built from when built from a git
//! checkout of this crate (`0.1.0 (git 1a2b3c4)`), the crate's version alone
//! otherwise (a crates.io download, a tarball, no git installed).
//!
//! Only release builds (and the profiles inheriting from release) carry the
//! commit: a new commit changes this script's output, and that makes Cargo
//! rebuild the whole crate and every test binary; debug builds, which every
//! commit is followed by in development, would pay that for nothing.
//!
//! Subtle: the commit is only taken when the checkout's top level is this
//! crate's directory, so a crate vendored inside another repository does not
//! print that repository's commit. Cargo reruns this script when HEAD moves
//! (a checkout, a commit on the branch): it watches HEAD, the branch's ref
//! file and packed-refs, as git itself names them (`git rev-parse --git-path`
//! gives the right files in a linked worktree too). A watched path that does
//! not exist would make Cargo rerun the script on every build, so only the
//! existing ones are named.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// The files whose change means HEAD may name another commit.
fn watched(dir: &Path) -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        names.push(branch);
    }
    names
        .iter()
        .filter_map(|n| {
            git(
                dir,
                &["rev-parse", "--path-format=absolute", "--git-path", n],
            )
        })
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

/// The short commit of this crate's own checkout, if it is one.
fn commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    for path in watched(dir) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(dir, &["rev-parse", "--short", "HEAD"])
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("set by cargo");
    // "release" for release and the profiles inheriting from it (Cargo's docs).
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    // Not even asked in a debug build: the files it watches would rerun this.
    let full = match release.then(|| commit(&dir)).flatten() {
        Some(c) => format!("{version} (git {c})"),
        None => version,
    };
    println!("cargo:rustc-env=IMPORTFS_VERSION={full}");
}
