//! Path resolution inside a root directory, the way systemd's `chase()` does it:
//! absolute symlink targets are taken relative to the root and `..` never leaves it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// systemd's CHASE_MAX: more links than this on one walk is treated as a loop.
pub const MAX_SYMLINKS: usize = 32;

/// A path resolved inside a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The path as seen from inside the root, always absolute (`/usr/lib/foo`).
    pub in_root: PathBuf,
    /// The same path on the running system (root prefix + `in_root`).
    pub host: PathBuf,
}

/// Why a path could not be resolved.
#[derive(Debug)]
pub enum ChaseError {
    /// A component does not exist (or a symlink dangles).
    NotFound { path: PathBuf },
    /// More than [`MAX_SYMLINKS`] links were followed.
    TooManyLinks { path: PathBuf },
    /// A non-final component is not a directory.
    NotADirectory { path: PathBuf },
    /// Any other I/O error while inspecting a component.
    Io { path: PathBuf, source: io::Error },
}

impl ChaseError {
    /// True for the "does not exist" case, which callers usually treat as "absent".
    pub fn is_not_found(&self) -> bool {
        matches!(self, ChaseError::NotFound { .. })
    }
}

impl fmt::Display for ChaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaseError::NotFound { path } => {
                write!(f, "{}: no such file or directory", path.display())
            }
            ChaseError::TooManyLinks { path } => {
                write!(f, "{}: too many levels of symbolic links", path.display())
            }
            ChaseError::NotADirectory { path } => write!(f, "{}: not a directory", path.display()),
            ChaseError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ChaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChaseError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Join a root and an in-root absolute path without letting the latter replace the former.
pub fn host_path(root: &Path, in_root: &Path) -> PathBuf {
    let rel = in_root.strip_prefix("/").unwrap_or(in_root);
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn components(p: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    p.as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
}

fn to_path(parts: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in parts {
        p.push(c);
    }
    p
}

/// Resolve `path` inside `root`, following every symlink (also the last one).
///
/// `root` should already be canonical (no symlinks in it); `path` is taken relative to it
/// whether or not it starts with `/`.
pub fn chase(root: &Path, path: &Path) -> Result<Resolved, ChaseError> {
    match walk(root, path, false)? {
        (resolved, true) => Ok(resolved),
        // unreachable with allow_missing=false, but keep the contract explicit
        (resolved, false) => Err(ChaseError::NotFound {
            path: resolved.host,
        }),
    }
}

/// Like [`chase`] but a missing tail is fine: returns the path it would have and whether it exists.
/// Symlinks in the existing prefix are resolved; missing components are appended verbatim.
pub fn chase_allow_missing(root: &Path, path: &Path) -> Result<(Resolved, bool), ChaseError> {
    walk(root, path, true)
}

fn walk(root: &Path, path: &Path, allow_missing: bool) -> Result<(Resolved, bool), ChaseError> {
    let mut todo: VecDeque<OsString> = components(path.as_os_str()).collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0usize;

    while let Some(c) = todo.pop_front() {
        if c.as_bytes() == b".." {
            done.pop();
            continue;
        }
        let mut next = done.clone();
        next.push(c.clone());
        let host = host_path(root, &to_path(&next));
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !allow_missing {
                    return Err(ChaseError::NotFound { path: host });
                }
                // Keep the rest verbatim, but `..` after a missing component still cannot escape.
                done.push(c);
                for rest in todo {
                    if rest.as_bytes() == b".." {
                        done.pop();
                    } else {
                        done.push(rest);
                    }
                }
                let in_root = to_path(&done);
                let host = host_path(root, &in_root);
                return Ok((Resolved { in_root, host }, false));
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                return Err(ChaseError::NotADirectory {
                    path: host_path(root, &to_path(&done)),
                });
            }
            Err(e) => {
                return Err(ChaseError::Io {
                    path: host,
                    source: e,
                })
            }
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ChaseError::TooManyLinks { path: host });
            }
            let target = std::fs::read_link(&host).map_err(|e| ChaseError::Io {
                path: host.clone(),
                source: e,
            })?;
            if target.as_os_str().as_bytes().first() == Some(&b'/') {
                done.clear();
            }
            for t in components(target.as_os_str())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                todo.push_front(t);
            }
            continue;
        }
        if !todo.is_empty() && !meta.is_dir() {
            return Err(ChaseError::NotADirectory { path: host });
        }
        done.push(c);
    }
    let in_root = to_path(&done);
    let host = host_path(root, &in_root);
    Ok((Resolved { in_root, host }, true))
}

/// Strip `root` from a host path, giving the in-root absolute path; paths outside stay as they are.
pub fn strip_root(root: &Path, host: &Path) -> PathBuf {
    match host.strip_prefix(root) {
        Ok(rel) => Path::new("/").join(rel),
        Err(_) => host.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/file"), "x").unwrap();
        symlink("/a/b", r.join("abs")).unwrap();
        symlink("a/b", r.join("rel")).unwrap();
        symlink("../../../../a", r.join("a/b/up")).unwrap();
        symlink("/nonexistent", r.join("dangling")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        t
    }

    fn root(t: &tempfile::TempDir) -> PathBuf {
        std::fs::canonicalize(t.path()).unwrap()
    }

    #[test]
    fn absolute_symlink_resolves_inside_root() {
        let t = tree();
        let r = root(&t);
        let res = chase(&r, Path::new("/abs/file")).unwrap();
        assert_eq!(res.in_root, PathBuf::from("/a/b/file"));
        assert_eq!(res.host, r.join("a/b/file"));
    }

    #[test]
    fn relative_symlink_and_no_leading_slash() {
        let t = tree();
        let r = root(&t);
        assert_eq!(
            chase(&r, Path::new("rel/file")).unwrap().in_root,
            PathBuf::from("/a/b/file")
        );
    }

    #[test]
    fn dotdot_never_leaves_root() {
        let t = tree();
        let r = root(&t);
        assert_eq!(
            chase(&r, Path::new("/a/b/up/b/file")).unwrap().in_root,
            PathBuf::from("/a/b/file")
        );
        assert_eq!(
            chase(&r, Path::new("/../../..")).unwrap().in_root,
            PathBuf::from("/")
        );
        assert_eq!(chase(&r, Path::new("/../../..")).unwrap().host, r);
    }

    #[test]
    fn dangling_loop_and_notdir_are_errors() {
        let t = tree();
        let r = root(&t);
        assert!(chase(&r, Path::new("dangling")).unwrap_err().is_not_found());
        assert!(matches!(
            chase(&r, Path::new("loop1")),
            Err(ChaseError::TooManyLinks { .. })
        ));
        assert!(matches!(
            chase(&r, Path::new("a/b/file/x")),
            Err(ChaseError::NotADirectory { .. })
        ));
    }

    #[test]
    fn allow_missing_reports_the_would_be_path() {
        let t = tree();
        let r = root(&t);
        let (res, exists) = chase_allow_missing(&r, Path::new("abs/new/../new2")).unwrap();
        assert!(!exists);
        assert_eq!(res.in_root, PathBuf::from("/a/b/new2"));
        let (res, exists) = chase_allow_missing(&r, Path::new("abs")).unwrap();
        assert!(exists);
        assert_eq!(res.in_root, PathBuf::from("/a/b"));
    }

    #[test]
    fn strip_root_keeps_foreign_paths() {
        assert_eq!(
            strip_root(Path::new("/sysroot"), Path::new("/sysroot/etc")),
            PathBuf::from("/etc")
        );
        assert_eq!(
            strip_root(Path::new("/sysroot"), Path::new("/sysroot")),
            PathBuf::from("/")
        );
        assert_eq!(
            strip_root(Path::new("/sysroot"), Path::new("/other")),
            PathBuf::from("/other")
        );
    }
}
