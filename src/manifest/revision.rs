//! The git commit the manifests were loaded from, recorded with each run.
//!
//! Read from the repository's own files rather than by running `git`: container images carry no
//! `git`, and a daemon should not fork a process per reconcile. Understands plain checkouts,
//! linked worktrees (git-sync keeps its checkouts as `.worktrees/<commit>` with a `.git` file
//! pointing into the main repository), branches, detached heads and packed refs.

use std::path::{Path, PathBuf};

/// The commit checked out where the first of `paths` lives, if it is in a git checkout.
pub(crate) fn git_revision(paths: &[PathBuf]) -> Option<String> {
    let first = paths.first()?;
    let dir = if first.is_dir() {
        first.as_path()
    } else {
        first
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.ancestors().find_map(|d| {
        let dotgit = d.join(".git");
        if dotgit.is_dir() {
            head(&dotgit)
        } else if dotgit.is_file() {
            // A linked worktree: `gitdir: <path>`, relative to the worktree when not absolute.
            let text = std::fs::read_to_string(&dotgit).ok()?;
            let gitdir = text.trim().strip_prefix("gitdir:")?.trim();
            head(&d.join(gitdir))
        } else {
            None
        }
    })
}

fn head(gitdir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_commit_id(head).then(|| head.to_owned());
    };
    if !reference.starts_with("refs/") || reference.split('/').any(|part| part == "..") {
        return None;
    }
    // Branches live in the common directory, which a linked worktree names in `commondir`.
    let common = match std::fs::read_to_string(gitdir.join("commondir")) {
        Ok(rel) => gitdir.join(rel.trim()),
        Err(_) => gitdir.to_owned(),
    };
    for dir in [gitdir, common.as_path()] {
        if let Ok(text) = std::fs::read_to_string(dir.join(reference)) {
            let commit = text.trim();
            return is_commit_id(commit).then(|| commit.to_owned());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (commit, name) = line.split_once(' ')?;
        (name == reference && is_commit_id(commit)).then(|| commit.to_owned())
    })
}

/// A git commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits, the only revisions a
/// commit status can be posted for.
pub(crate) fn is_commit_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn branches_packed_refs_and_worktrees_give_the_commit_git_gives() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("manifests")).unwrap();
        git(
            dir.path(),
            &["init", "-q", "-b", "main", repo.to_str().unwrap()],
        );
        std::fs::write(repo.join("manifests/a.yaml"), "a").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "one"]);
        let head = git(&repo, &["rev-parse", "HEAD"]);
        assert_eq!(git_revision(&[repo.join("manifests")]), Some(head.clone()));

        git(&repo, &["pack-refs", "--all"]);
        assert_eq!(
            git_revision(&[repo.join("manifests/a.yaml")]),
            Some(head.clone())
        );

        // git-sync's layout: a detached worktree per commit.
        let worktree = dir.path().join("worktrees").join(&head);
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                worktree.to_str().unwrap(),
                &head,
            ],
        );
        assert_eq!(git_revision(&[worktree.join("manifests")]), Some(head));

        assert_eq!(git_revision(&[dir.path().to_owned()]), None);
    }
}
