//! The one way to touch a tree: an `O_PATH` handle on its root and every path below it
//! resolved fd-relative, one component at a time, the way systemd's `chaseat()` does it (a
//! run of plain directory names, no link and no `..`, in one `openat2()` that refuses both).
//!
//! Why a walk of our own rather than string joins or `openat2(RESOLVE_IN_ROOT)` alone: the walk
//! never asks the kernel to follow a symlink or `..`, so a symlink (absolute or with `..`)
//! can only ever restart at the root fd or pop a directory fd we hold — nothing outside the root
//! is reachable, whatever is renamed meanwhile — and it yields the in-root path of what it found
//! (systemd records those paths, and discovery needs them). Every result is an fd; callers hand
//! the kernel that fd (`*at()` calls, or [`proc_fd_path`] for mount options), never a joined path.
//!
//! A [`Root`] is valid in the mount namespace it was opened in: a private namespace thread opens
//! its own (mount tables differ), see `kernel::namespace`.

use std::collections::VecDeque;
use std::ffi::{CStr, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;

mod write;

/// systemd's CHASE_MAX: more links than this on one walk is treated as a loop.
pub const MAX_SYMLINKS: usize = 32;

/// Why a path could not be resolved inside a root.
#[derive(Debug)]
pub enum ChaseError {
    /// A component does not exist (or a symlink dangles). `path` is shown root-prefixed.
    NotFound {
        /// Where the walk stopped.
        path: PathBuf,
    },
    /// More than [`MAX_SYMLINKS`] links were followed.
    TooManyLinks {
        /// Where the walk stopped.
        path: PathBuf,
    },
    /// A non-final component is not a directory.
    NotADirectory {
        /// The component that is not a directory.
        path: PathBuf,
    },
    /// Any other error of the kernel while inspecting a component.
    Io {
        /// The component being inspected.
        path: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
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

/// Something found inside a root: an `O_PATH` fd of it, where it is, and what it is.
#[derive(Debug)]
pub struct Found {
    /// `O_PATH` fd of the inode (of the link itself only when the final link was not followed).
    pub fd: OwnedFd,
    /// Its path as seen from inside the root, absolute (`/usr/lib/foo`).
    pub in_root: PathBuf,
    /// `fstat` of the fd.
    pub stat: Stat,
}

impl Found {
    /// Whether this directory surely has no entry `name`: one lookup of that name, nothing
    /// followed; `false` when it has one or the lookup fails for another reason.
    pub fn surely_lacks(&self, name: &OsStr) -> bool {
        matches!(
            rustix::fs::openat(&self.fd, name, path_flags(), Mode::empty()),
            Err(Errno::NOENT)
        )
    }

    /// The inode's file type.
    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    /// Permission bits (`st_mode & 0o7777`).
    pub fn mode(&self) -> u32 {
        self.stat.st_mode & 0o7777
    }

    /// `(dev, ino)`: the inode's identity.
    pub fn inode(&self) -> (u64, u64) {
        (self.stat.st_dev, self.stat.st_ino)
    }

    /// A path the kernel resolves to exactly this inode (for mount options).
    pub fn proc_path(&self) -> PathBuf {
        proc_fd_path(self.fd.as_fd())
    }

    /// Open the directory for reading its entries (or `fchmod`, `fsync`).
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        reopen_dir(self.fd.as_fd())
    }
}

/// Where a walk that allows a missing tail ended.
#[derive(Debug)]
pub enum Lookup {
    /// Everything exists.
    Found(Found),
    /// `dir` exists; `missing` (never empty, no `.` or `..`) does not exist below it.
    Missing {
        /// The deepest existing directory.
        dir: Found,
        /// The components still to create, in order.
        missing: Vec<OsString>,
        /// The would-be in-root path.
        in_root: PathBuf,
    },
}

impl Lookup {
    /// The (would-be) in-root path.
    pub fn in_root(&self) -> &Path {
        match self {
            Lookup::Found(f) => &f.in_root,
            Lookup::Missing { in_root, .. } => in_root,
        }
    }
}

/// A path the kernel resolves to the very file `fd` refers to (`/proc/thread-self/fd/N`).
///
/// Used where the kernel takes a path string (overlayfs layers, loop backing files): the magic
/// link jumps to the fd's inode without any lookup by name, so a rename or a symlink swapped in
/// meanwhile cannot redirect it. `thread-self`, because a private mount namespace thread and the
/// main thread may see different mount tables and the link must be read by the calling thread.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/thread-self/fd/{}", fd.as_raw_fd()))
}

/// Open a directory fd (readable) from an `O_PATH` fd of it.
pub fn reopen_dir(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(super::root_walk::open_noatime(
        fd,
        OsStr::new("."),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
    )?)
}

fn components(p: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    p.as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
}

fn to_path(parts: &[(OwnedFd, OsString, Stat)]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for (_, c, _) in parts {
        p.push(c);
    }
    p
}

/// Whether the kernel has `openat2()` (Linux 5.6): cleared on the first `ENOSYS`.
static OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Open the directory `path` (several names, none `..`) below `dir` as the walk would, in one
/// call: no symlink followed, never out of `dir`; with its stat.
fn open_beneath(dir: BorrowedFd<'_>, path: &OsStr) -> Result<(OwnedFd, Stat), Errno> {
    use rustix::fs::ResolveFlags;
    let fd = rustix::fs::openat2(
        dir,
        path,
        path_flags() | OFlags::DIRECTORY,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((fd, stat))
}

/// The open flags for one step of a walk: never follow, never block, never become a tty.
fn path_flags() -> OFlags {
    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The directories a walk went through, root first (empty: the root itself), or where it stopped.
enum Walked {
    Found(Vec<(OwnedFd, OsString, Stat)>),
    Missing(Lookup),
}

/// A read-only handle on the root of a tree: `--root`, a directory extension, a mounted image.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    shown: PathBuf,
    stat: Stat,
}

impl Root {
    /// Open the root at `path` (resolved normally: the root itself is what the caller chose).
    pub fn open(path: &Path) -> anyhow::Result<Root> {
        use anyhow::Context;
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("opening root directory {}", path.display()))?;
        Root::from_fd(fd, path.to_path_buf())
            .with_context(|| format!("opening root directory {}", path.display()))
    }

    /// A root from an fd already open on a directory (e.g. a detached image mount); `shown` is
    /// how messages name it.
    pub fn from_fd(fd: OwnedFd, shown: PathBuf) -> io::Result<Root> {
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return Err(io::Error::from(Errno::NOTDIR));
        }
        Ok(Root { fd, shown, stat })
    }

    /// The same root, named `shown` in messages (e.g. an image mounted in a workspace).
    pub fn renamed(mut self, shown: PathBuf) -> Root {
        self.shown = shown;
        self
    }

    /// A second handle on the same root (for another thread).
    pub fn try_clone(&self) -> io::Result<Root> {
        Ok(Root {
            fd: self.fd.try_clone()?,
            shown: self.shown.clone(),
            stat: self.stat,
        })
    }

    /// The root's fd (`O_PATH`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// How the root is named in messages.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// `(dev, ino)` of the root directory.
    pub fn inode(&self) -> (u64, u64) {
        (self.stat.st_dev, self.stat.st_ino)
    }

    /// How an in-root path is named in messages: root-prefixed (`/sysroot/etc/extensions/x`).
    pub fn show(&self, in_root: &Path) -> PathBuf {
        let rel = in_root.strip_prefix("/").unwrap_or(in_root);
        if rel.as_os_str().is_empty() {
            self.shown.clone()
        } else {
            self.shown.join(rel)
        }
    }

    /// The root itself as a [`Found`].
    pub fn top(&self) -> io::Result<Found> {
        Ok(Found {
            fd: self.fd.try_clone()?,
            in_root: PathBuf::from("/"),
            stat: self.stat,
        })
    }

    /// Resolve `path` (absolute or not, always taken from the root), following every symlink.
    pub fn resolve(&self, path: &Path) -> Result<Found, ChaseError> {
        match self.walk(path, true, false)? {
            Lookup::Found(f) => Ok(f),
            Lookup::Missing { in_root, .. } => Err(ChaseError::NotFound {
                path: self.show(&in_root),
            }),
        }
    }

    /// Resolve `path` without following a final symlink (`lstat` semantics).
    pub fn resolve_nofollow(&self, path: &Path) -> Result<Found, ChaseError> {
        match self.walk(path, false, false)? {
            Lookup::Found(f) => Ok(f),
            Lookup::Missing { in_root, .. } => Err(ChaseError::NotFound {
                path: self.show(&in_root),
            }),
        }
    }

    /// Resolve `path`, a missing tail allowed: what exists and what would have to be created.
    pub fn lookup(&self, path: &Path) -> Result<Lookup, ChaseError> {
        self.walk(path, true, true)
    }

    /// Resolve `path` to `Some`, or `None` when it (or a link on the way) does not exist.
    pub fn resolve_optional(&self, path: &Path) -> Result<Option<Found>, ChaseError> {
        match self.resolve(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn io_err(&self, in_root: &Path, e: Errno) -> ChaseError {
        let path = self.show(in_root);
        match e {
            Errno::NOENT => ChaseError::NotFound { path },
            Errno::NOTDIR => ChaseError::NotADirectory { path },
            Errno::LOOP => ChaseError::TooManyLinks { path },
            e => ChaseError::Io {
                path,
                source: e.into(),
            },
        }
    }

    fn walk(
        &self,
        path: &Path,
        follow_last: bool,
        allow_missing: bool,
    ) -> Result<Lookup, ChaseError> {
        match self.walk_stack(path, follow_last, allow_missing)? {
            Walked::Missing(l) => Ok(l),
            Walked::Found(mut done) => {
                let in_root = to_path(&done);
                Ok(Lookup::Found(match done.pop() {
                    Some((fd, _, stat)) => Found { fd, in_root, stat },
                    None => self.top().map_err(|e| ChaseError::Io {
                        path: self.shown.clone(),
                        source: e,
                    })?,
                }))
            }
        }
    }

    fn walk_stack(
        &self,
        path: &Path,
        follow_last: bool,
        allow_missing: bool,
    ) -> Result<Walked, ChaseError> {
        let mut todo: VecDeque<OsString> = components(path.as_os_str()).collect();
        let mut done: Vec<(OwnedFd, OsString, Stat)> = Vec::new();
        self.plain_prefix(&mut todo, &mut done);
        let mut links = 0usize;
        while let Some(c) = todo.pop_front() {
            if c.as_bytes() == b".." {
                // The parent is the fd below on our own stack: `..` can never leave the root.
                self.pop_dir(&mut done)?;
                continue;
            }
            let dir = done.last().map_or(self.fd.as_fd(), |(fd, _, _)| fd.as_fd());
            let fd = match rustix::fs::openat(dir, c.as_os_str(), path_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if allow_missing => {
                    return self.missing(done, c, todo).map(Walked::Missing);
                }
                Err(e) => {
                    let mut p = to_path(&done);
                    p.push(&c);
                    return Err(self.io_err(&p, e));
                }
            };
            let stat = rustix::fs::fstat(&fd).map_err(|e| {
                let mut p = to_path(&done);
                p.push(&c);
                self.io_err(&p, e)
            })?;
            let ft = FileType::from_raw_mode(stat.st_mode);
            if ft == FileType::Symlink && (follow_last || !todo.is_empty()) {
                links += 1;
                self.follow_link(&fd, &c, links, &mut done, &mut todo)?;
                continue;
            }
            if !todo.is_empty() && ft != FileType::Directory {
                let mut p = to_path(&done);
                p.push(&c);
                return Err(ChaseError::NotADirectory {
                    path: self.show(&p),
                });
            }
            done.push((fd, c, stat));
        }
        Ok(Walked::Found(done))
    }

    /// Resolve the directories before the last component of `todo` in one `openat2()` when
    /// none of them is `..`: `RESOLVE_NO_SYMLINKS` makes the kernel refuse any symlink on the
    /// way and `RESOLVE_BENEATH` any step out of the root fd, so what it finds is exactly what
    /// the walk would find one name at a time, for one syscall pair instead of one per name.
    /// Anything else — a link, a missing or unreadable directory, a kernel without `openat2`
    /// — leaves `todo` as it was for the walk, which follows links and names what is wrong.
    fn plain_prefix(
        &self,
        todo: &mut VecDeque<OsString>,
        done: &mut Vec<(OwnedFd, OsString, Stat)>,
    ) {
        let n = todo
            .iter()
            .take(todo.len().saturating_sub(1))
            .take_while(|c| c.as_bytes() != b"..")
            .count();
        if n < 2 || !OPENAT2.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut joined = OsString::new();
        for (i, c) in todo.iter().take(n).enumerate() {
            if i > 0 {
                joined.push("/");
            }
            joined.push(c);
        }
        match open_beneath(self.fd.as_fd(), &joined) {
            Ok((fd, stat)) => {
                todo.drain(..n);
                done.push((fd, joined, stat));
            }
            Err(Errno::NOSYS) => OPENAT2.store(false, std::sync::atomic::Ordering::Relaxed),
            Err(_) => {}
        }
    }

    /// Go up one directory on the walk's stack. An entry [`Root::plain_prefix`] resolved as
    /// several names at once is replaced by its parent, resolved the same way (it held no link).
    fn pop_dir(&self, done: &mut Vec<(OwnedFd, OsString, Stat)>) -> Result<(), ChaseError> {
        let Some((_, name, _)) = done.pop() else {
            return Ok(());
        };
        let bytes = name.as_bytes();
        let Some(slash) = bytes.iter().rposition(|b| *b == b'/') else {
            return Ok(());
        };
        let parent = OsStr::from_bytes(&bytes[..slash]);
        let base = done.last().map_or(self.fd.as_fd(), |(fd, _, _)| fd.as_fd());
        let (fd, stat) = open_beneath(base, parent).map_err(|e| {
            let mut p = to_path(done);
            p.push(parent);
            self.io_err(&p, e)
        })?;
        done.push((fd, parent.to_os_string(), stat));
        Ok(())
    }

    /// The lookup of a path whose component `c` does not exist: the deepest existing directory
    /// (`done`'s last) and the names still to create, `..` applied lexically and never above
    /// the root.
    fn missing(
        &self,
        mut done: Vec<(OwnedFd, OsString, Stat)>,
        c: OsString,
        todo: VecDeque<OsString>,
    ) -> Result<Lookup, ChaseError> {
        let mut missing = vec![c];
        for rest in todo {
            if rest.as_bytes() == b".." {
                // Lexically, as the directories do not exist yet; still never above the root.
                if missing.pop().is_none() {
                    self.pop_dir(&mut done)?;
                }
            } else {
                missing.push(rest);
            }
        }
        let mut in_root = to_path(&done);
        missing.iter().for_each(|m| in_root.push(m));
        let dir = match done.pop() {
            Some((fd, c, stat)) => {
                let mut p = to_path(&done);
                p.push(c);
                Found {
                    fd,
                    in_root: p,
                    stat,
                }
            }
            None => self.top().map_err(|e| ChaseError::Io {
                path: self.shown.clone(),
                source: e,
            })?,
        };
        if missing.is_empty() {
            return Ok(Lookup::Found(dir));
        }
        Ok(Lookup::Missing {
            dir,
            missing,
            in_root,
        })
    }

    /// Replace the symlink `c` (open as `fd`, the `links`th one followed) by its target's
    /// components: an absolute target restarts at the root, never above it.
    fn follow_link(
        &self,
        fd: &OwnedFd,
        c: &OsStr,
        links: usize,
        done: &mut Vec<(OwnedFd, OsString, Stat)>,
        todo: &mut VecDeque<OsString>,
    ) -> Result<(), ChaseError> {
        let mut here = to_path(done);
        here.push(c);
        if links > MAX_SYMLINKS {
            return Err(ChaseError::TooManyLinks {
                path: self.show(&here),
            });
        }
        let target =
            rustix::fs::readlinkat(fd, "", Vec::new()).map_err(|e| self.io_err(&here, e))?;
        let target = target.as_bytes();
        if target.is_empty() {
            return Err(ChaseError::NotFound {
                path: self.show(&here),
            });
        }
        if target.first() == Some(&b'/') {
            done.clear();
        }
        let parts: Vec<OsString> = components(OsStr::from_bytes(target)).collect();
        for t in parts.into_iter().rev() {
            todo.push_front(t);
        }
        Ok(())
    }

    /// Open `path` for reading (following links inside the root). Refuses anything but a regular
    /// file or a block device (a FIFO would block, a character device could be anything).
    pub fn open_read(&self, path: &Path) -> anyhow::Result<(File, Found)> {
        match self.open_read_optional(path)? {
            Some(r) => Ok(r),
            None => Err(anyhow::Error::new(ChaseError::NotFound {
                path: self.show(path),
            })),
        }
    }

    /// [`Root::open_read`], `Ok(None)` when it does not exist.
    pub fn open_read_optional(&self, path: &Path) -> anyhow::Result<Option<(File, Found)>> {
        use anyhow::Context;
        let mut done = match self.walk_stack(path, true, false) {
            Ok(Walked::Found(done)) => done,
            Ok(Walked::Missing(_)) => return Ok(None),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e)),
        };
        let in_root = to_path(&done);
        let Some((fd, name, stat)) = done.pop() else {
            anyhow::bail!("{}: not a regular file (directory)", self.shown.display());
        };
        let parent = done.last().map_or(self.fd.as_fd(), |(fd, _, _)| fd.as_fd());
        let found = Found { fd, in_root, stat };
        let file = reopen_read(parent, &name, &found)
            .with_context(|| format!("opening {}", self.show(&found.in_root).display()))?;
        Ok(Some((file, found)))
    }

    /// Read a whole file of at most `limit` bytes; `Ok(None)` when it does not exist.
    ///
    /// Untrusted inputs (release files, configuration, state) go through this, so a huge or
    /// endless file is a clear error rather than an out-of-memory kill.
    pub fn read_optional(&self, path: &Path, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
        use anyhow::Context;
        let Some((file, found)) = self.open_read_optional(path)? else {
            return Ok(None);
        };
        // Sized from the stat so a small file takes one read (and the one that sees its end).
        let size = u64::try_from(found.stat.st_size).unwrap_or(0);
        read_bounded_sized(file, limit, size)
            .with_context(|| format!("reading {}", self.show(&found.in_root).display()))
            .map(Some)
    }
}

/// Open a found regular file or block device for reading by its name in `parent`, checking it is
/// still the inode the walk found (no `/proc` needed, nothing followed).
fn reopen_read(parent: BorrowedFd<'_>, name: &OsStr, found: &Found) -> io::Result<File> {
    let ft = found.file_type();
    if ft != FileType::RegularFile && ft != FileType::BlockDevice {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", file_type_name(ft)),
        ));
    }
    let fd = super::root_walk::open_noatime(
        parent,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NOFOLLOW,
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != found.inode() {
        return Err(io::Error::other("the file changed while being opened"));
    }
    Ok(File::from(fd))
}

/// Read at most `limit` bytes; more is an error naming the limit.
pub fn read_bounded(file: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    read_bounded_sized(file, limit, 0)
}

/// [`read_bounded`] with room for `size` bytes (what the file's stat says) made up front.
fn read_bounded_sized(file: impl Read, limit: u64, size: u64) -> io::Result<Vec<u8>> {
    let room = usize::try_from(size.min(limit).saturating_add(1)).unwrap_or(0);
    let mut buf = Vec::with_capacity(room);
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes allowed"),
        ));
    }
    Ok(buf)
}

/// A word for a file type in messages.
pub fn file_type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, tempfile::TempDir) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
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
        symlink(outside.path(), r.join("out")).unwrap();
        symlink(
            format!("../../../../../../../..{}", outside.path().display()),
            r.join("a/dotdot-out"),
        )
        .unwrap();
        (t, outside)
    }

    fn root(t: &tempfile::TempDir) -> Root {
        Root::open(t.path()).unwrap()
    }

    #[test]
    fn absolute_and_relative_symlinks_resolve_inside_root() {
        let (t, _o) = tree();
        let r = root(&t);
        assert_eq!(
            r.resolve(Path::new("/abs/file")).unwrap().in_root,
            Path::new("/a/b/file")
        );
        assert_eq!(
            r.resolve(Path::new("rel/file")).unwrap().in_root,
            Path::new("/a/b/file")
        );
        assert_eq!(
            r.resolve(Path::new("/a/b/up/b/file")).unwrap().in_root,
            Path::new("/a/b/file")
        );
        let top = r.resolve(Path::new("/../../..")).unwrap();
        assert_eq!(top.in_root, Path::new("/"));
        assert_eq!(top.inode(), r.inode());
    }

    /// Plain names before the last one are resolved in one call; a link at the end whose
    /// target climbs with `..` must still climb one name at a time, never past the root.
    #[test]
    fn a_climbing_link_after_plain_names_resolves_like_the_walk() {
        let (t, _o) = tree();
        std::fs::create_dir_all(t.path().join("a/b/c/d")).unwrap();
        symlink("../../file", t.path().join("a/b/c/d/two-up")).unwrap();
        symlink(
            "../../../../../../a/b/file",
            t.path().join("a/b/c/d/past-top"),
        )
        .unwrap();
        symlink("../..", t.path().join("a/b/c/d/up-dir")).unwrap();
        let r = root(&t);
        let file = r.resolve(Path::new("a/b/file")).unwrap();
        for link in ["a/b/c/d/two-up", "/a/b/c/d/past-top", "a/b/c/d/../d/two-up"] {
            let f = r.resolve(Path::new(link)).unwrap();
            assert_eq!(f.in_root, Path::new("/a/b/file"), "{link}");
            assert_eq!(f.inode(), file.inode(), "{link}");
        }
        let Lookup::Missing {
            in_root, missing, ..
        } = r.lookup(Path::new("a/b/c/d/up-dir/../new/x")).unwrap()
        else {
            panic!("a/b/c/d/up-dir/../new/x exists");
        };
        assert_eq!(in_root, Path::new("/a/new/x"));
        assert_eq!(missing, ["new", "x"]);
        // `..` after a file, and a plain run of names through a file: not a directory.
        for p in ["a/b/c/d/two-up/..", "a/b/file/x/y"] {
            let e = r.resolve(Path::new(p)).unwrap_err();
            assert!(matches!(e, ChaseError::NotADirectory { .. }), "{p}: {e}");
        }
    }

    /// A directory on the way swapped for a link out of the root while paths through it are
    /// resolved and read, many times over: whichever of the one-call resolution and the walk
    /// runs, nothing outside the root is ever read.
    #[test]
    fn a_directory_swapped_for_a_link_out_mid_walk_never_leads_outside() {
        let (t, o) = tree();
        std::fs::create_dir_all(o.path().join("c")).unwrap();
        std::fs::write(o.path().join("c/file"), "outside").unwrap();
        let r = t.path().to_path_buf();
        std::fs::create_dir_all(r.join("a/b/c")).unwrap();
        std::fs::write(r.join("a/b/c/file"), "inside").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, r, out) = (stop.clone(), r.clone(), o.path().to_path_buf());
            std::thread::spawn(move || {
                let (dir, link, real) = (r.join("a/b"), r.join("a/b-link"), r.join("a/b-real"));
                symlink(&out, &link).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&dir, &real).unwrap();
                    std::fs::rename(&link, &dir).unwrap();
                    std::fs::rename(&dir, &link).unwrap();
                    std::fs::rename(&real, &dir).unwrap();
                }
            })
        };
        let root = root(&t);
        let (mut inside, mut absent) = (0, 0);
        for _ in 0..20_000 {
            match root.read_optional(Path::new("a/b/c/file"), 100) {
                Ok(Some(bytes)) => {
                    assert_eq!(bytes, b"inside", "read through a link out of the root");
                    inside += 1;
                }
                // The link followed inside the root: there is no such path there.
                Ok(None) => absent += 1,
                Err(e) => panic!("{e:#}"),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(
            inside > 0,
            "never read while the directory was in place ({absent} absent)"
        );
    }

    #[test]
    fn links_out_of_the_root_stay_inside_it() {
        let (t, o) = tree();
        let r = root(&t);
        // An absolute link to the outside directory means that path inside the root: absent.
        let e = r.resolve(Path::new("out/secret")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = r.resolve(Path::new("a/dotdot-out/secret")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(
            e.to_string().starts_with(&t.path().display().to_string()),
            "{e}"
        );
        // Even when the same path exists inside, it is the inside one that is found.
        let inside = t.path().join(o.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("secret"), "inside").unwrap();
        let bytes = r
            .read_optional(Path::new("out/secret"), 100)
            .unwrap()
            .unwrap();
        assert_eq!(bytes, b"inside");
    }

    #[test]
    fn dangling_loop_and_notdir_are_errors() {
        let (t, _o) = tree();
        let r = root(&t);
        assert!(r.resolve(Path::new("dangling")).unwrap_err().is_not_found());
        assert!(matches!(
            r.resolve(Path::new("loop1")),
            Err(ChaseError::TooManyLinks { .. })
        ));
        assert!(matches!(
            r.resolve(Path::new("a/b/file/x")),
            Err(ChaseError::NotADirectory { .. })
        ));
        // Without following, the final link itself is found.
        let l = r.resolve_nofollow(Path::new("dangling")).unwrap();
        assert_eq!(l.file_type(), FileType::Symlink);
    }

    #[test]
    fn lookup_reports_the_would_be_path() {
        let (t, _o) = tree();
        let r = root(&t);
        match r.lookup(Path::new("abs/new/../new2/x")).unwrap() {
            Lookup::Missing {
                dir,
                missing,
                in_root,
            } => {
                assert_eq!(dir.in_root, Path::new("/a/b"));
                assert_eq!(missing, vec![OsString::from("new2"), OsString::from("x")]);
                assert_eq!(in_root, Path::new("/a/b/new2/x"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.lookup(Path::new("abs")).unwrap(),
            Lookup::Found(_)
        ));
    }

    #[test]
    fn mkdir_all_follows_links_inside_and_creates_there() {
        let (t, o) = tree();
        let r = root(&t);
        let d = r.mkdir_all(Path::new("out/new/deeper"), 0o755).unwrap();
        assert!(d.is_dir());
        assert!(!o.path().join("new").exists());
        let inside = t
            .path()
            .join(o.path().strip_prefix("/").unwrap())
            .join("new/deeper");
        assert!(inside.is_dir());
        let e = r.mkdir_all(Path::new("a/b/file/sub"), 0o755).unwrap_err();
        assert!(format!("{e:#}").contains("not a directory"), "{e:#}");
    }

    #[test]
    fn write_atomic_replaces_and_never_writes_outside() {
        let (t, o) = tree();
        let r = root(&t);
        r.write_atomic(Path::new("out/secret"), b"new", 0o644, true)
            .unwrap();
        assert_eq!(std::fs::read(o.path().join("secret")).unwrap(), b"outside");
        r.write_atomic(Path::new("/a/f"), b"one", 0o600, false)
            .unwrap();
        r.write_atomic(Path::new("/a/f"), b"two", 0o600, false)
            .unwrap();
        assert_eq!(std::fs::read(t.path().join("a/f")).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(t.path().join("a"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".#"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn remove_tree_never_follows_links() {
        let (t, o) = tree();
        let r = root(&t);
        std::fs::create_dir_all(t.path().join("w/x/y")).unwrap();
        std::fs::write(t.path().join("w/x/y/f"), "f").unwrap();
        symlink(o.path(), t.path().join("w/x/link")).unwrap();
        assert!(r.remove_tree(Path::new("/"), OsStr::new("w")).unwrap());
        assert!(!t.path().join("w").exists());
        assert!(o.path().join("secret").exists());
        // A link as the entry itself: the link goes, its target stays.
        assert!(r.remove_tree(Path::new("/"), OsStr::new("out")).unwrap());
        assert!(o.path().join("secret").exists());
        assert!(!r.remove_tree(Path::new("/"), OsStr::new("gone")).unwrap());
        assert!(r.remove_tree(Path::new("/"), OsStr::new("../x")).is_err());
    }

    #[test]
    fn reads_are_bounded_and_typed() {
        let (t, _o) = tree();
        let r = root(&t);
        std::fs::write(t.path().join("big"), vec![b'x'; 1000]).unwrap();
        let e = r.read_optional(Path::new("big"), 999).unwrap_err();
        assert!(
            format!("{e:#}").contains("larger than the 999 bytes"),
            "{e:#}"
        );
        assert_eq!(
            r.read_optional(Path::new("big"), 1000)
                .unwrap()
                .unwrap()
                .len(),
            1000
        );
        assert!(r.read_optional(Path::new("missing"), 10).unwrap().is_none());
        let e = r.read_optional(Path::new("a"), 10).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a regular file (directory)"),
            "{e:#}"
        );
    }
}
