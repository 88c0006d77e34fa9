//! The one way extmerge walks a tree (a directory extension, a mounted image, a hierarchy of
//! the root): from a directory fd, one name at a time (`statx`/`openat(O_NOFOLLOW)` relative to
//! the directory holding it, see `kernel::root_walk`), never through a joined path, never
//! following a symlink. Trees deeper than `PATH_MAX` walk like any other; names are bytes.
//!
//! Work is bounded by [`Limits`]: a tree deeper or larger than they allow is an error naming
//! where it stopped, so the caller refuses that one extension with a reason. Open fds are
//! bounded too: a [`Chain`] keeps only the deepest directories of the current path open and
//! reopens the others by name when the walk returns to them (checking each is still the
//! directory it was).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::kernel::root::Root;
use crate::kernel::root_walk::{self, DirEntryKind, EntryStat};

/// How deep a walk descends before it refuses the tree: far beyond any real extension (and
/// beyond `PATH_MAX` with long names), small enough that a hostile tree costs little.
pub const MAX_DEPTH: usize = 256;

/// How many entries one walk reads before it refuses the tree.
pub const MAX_ENTRIES: u64 = 2_000_000;

/// Directories of the current path a walk keeps open besides the tree's root.
const KEEP_OPEN: usize = 128;

/// Bounds of one walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest entry allowed (the root is at depth 0, its entries at 1).
    pub max_depth: usize,
    /// Most entries read in the whole walk.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: MAX_DEPTH,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkErrorKind {
    /// A directory holds entries deeper than the limit.
    TooDeep(usize),
    /// The tree has more entries than the limit.
    TooManyEntries(u64),
    /// The kernel refused an operation (the first field says which).
    Io(&'static str, io::Error),
}

/// Why a walk stopped, and where.
#[derive(Debug)]
pub struct WalkError {
    /// The entry (root-prefixed, as messages show it).
    pub path: PathBuf,
    /// What went wrong.
    pub kind: WalkErrorKind,
}

impl WalkError {
    /// The kernel's error, for an I/O failure.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.kind {
            WalkErrorKind::Io(_, e) => Some(e),
            _ => None,
        }
    }

    fn io(path: PathBuf, what: &'static str, e: io::Error) -> WalkError {
        WalkError {
            path,
            kind: WalkErrorKind::Io(what, e),
        }
    }
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.kind {
            WalkErrorKind::TooDeep(n) => write!(f, "{p}: more than {n} directory levels deep"),
            WalkErrorKind::TooManyEntries(n) => {
                write!(f, "{p}: the tree has more than {n} entries")
            }
            WalkErrorKind::Io(what, e) => write!(f, "{what} {p}: {e}"),
        }
    }
}

/// The kernel's error is part of the message (so `{e}` alone says why), hence not also a
/// `source()`, which would print it twice in a `{e:#}` chain; [`WalkError::io_error`] has it.
impl std::error::Error for WalkError {}

struct Level {
    name: OsString,
    stat: EntryStat,
    fd: Option<OwnedFd>,
}

/// The open directories of the path a walk is at, from the tree's root down to the current
/// directory (the top, always open). At most `keep` directories between root and top stay
/// open; the others are reopened by name when the walk pops back to them.
pub struct Chain {
    shown: PathBuf,
    rel: PathBuf,
    above: Vec<Level>,
    top: OwnedFd,
    top_name: OsString,
    top_stat: EntryStat,
    keep: usize,
}

impl Chain {
    /// A chain at the root of a tree: `fd` is its directory opened for reading, `shown` how
    /// messages name it.
    pub fn new(shown: PathBuf, fd: OwnedFd, keep: usize) -> Result<Chain, WalkError> {
        let stat = root_walk::stat_fd(fd.as_fd())
            .map_err(|e| WalkError::io(shown.clone(), "inspecting", e))?;
        Ok(Chain {
            shown,
            rel: PathBuf::new(),
            above: Vec::new(),
            top: fd,
            top_name: OsString::new(),
            top_stat: stat,
            keep: keep.max(1),
        })
    }

    /// A chain at the root of `root`.
    pub fn at_root(root: &Root, keep: usize) -> Result<Chain, WalkError> {
        let fd = root
            .open_walk_dir()
            .map_err(|e| WalkError::io(root.path().to_path_buf(), "opening directory", e))?;
        Chain::new(root.path().to_path_buf(), fd, keep)
    }

    /// How deep the current directory is (the root: 0).
    pub fn depth(&self) -> usize {
        self.above.len()
    }

    /// The current directory (open for reading).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.top.as_fd()
    }

    /// `statx` of the current directory.
    pub fn stat(&self) -> &EntryStat {
        &self.top_stat
    }

    /// The current directory's path below the root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// How messages name the current directory, or `name` in it.
    pub fn shown(&self, name: Option<&OsStr>) -> PathBuf {
        let mut p = self.shown.clone();
        if !self.rel.as_os_str().is_empty() {
            p.push(&self.rel);
        }
        if let Some(n) = name {
            p.push(n);
        }
        p
    }

    /// Inspect `name` in the current directory (not followed).
    pub fn stat_at(&self, name: &OsStr) -> Result<EntryStat, WalkError> {
        root_walk::stat_at(self.fd(), name)
            .map_err(|e| WalkError::io(self.shown(Some(name)), "inspecting", e))
    }

    /// Open the subdirectory `name` (inspected as `stat`) for reading, not yet descending.
    pub fn open_dir(&self, name: &OsStr, stat: &EntryStat) -> Result<OwnedFd, WalkError> {
        root_walk::open_dir_at(self.fd(), name, stat)
            .map_err(|e| WalkError::io(self.shown(Some(name)), "opening directory", e))
    }

    /// The names in the current directory, sorted bytewise; `budget` is how many more entries
    /// the walk may read, and is charged for them.
    pub fn read_names(&self, budget: &mut Budget) -> Result<Vec<OsString>, WalkError> {
        Ok(self
            .read_entries(budget)?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// [`Chain::read_names`] with what each entry's `d_type` says it is.
    pub fn read_entries(
        &self,
        budget: &mut Budget,
    ) -> Result<Vec<(OsString, DirEntryKind)>, WalkError> {
        let left = budget.limit.saturating_sub(budget.used);
        let max = usize::try_from(left).unwrap_or(usize::MAX);
        let mut entries = root_walk::read_dir_entries(self.fd(), max)
            .map_err(|e| WalkError::io(self.shown(None), "reading directory", e))?;
        if entries.len() > max {
            return Err(WalkError {
                path: self.shown(None),
                kind: WalkErrorKind::TooManyEntries(budget.limit),
            });
        }
        budget.used += entries.len() as u64;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Descend into `name`, opened as `fd` (see [`Chain::open_dir`]).
    pub fn push(&mut self, name: &OsStr, stat: EntryStat, fd: OwnedFd) {
        let parent = Level {
            name: std::mem::replace(&mut self.top_name, name.to_os_string()),
            stat: std::mem::replace(&mut self.top_stat, stat),
            fd: Some(std::mem::replace(&mut self.top, fd)),
        };
        self.above.push(parent);
        self.rel.push(name);
        self.trim();
    }

    /// Return to the parent directory (reopening it if it was closed). At the root: nothing.
    pub fn pop(&mut self) -> Result<(), WalkError> {
        let Some(parent) = self.above.pop() else {
            return Ok(());
        };
        self.rel.pop();
        self.top_name = parent.name;
        self.top_stat = parent.stat;
        self.top = match parent.fd {
            Some(fd) => fd,
            None => self.reopen_top()?,
        };
        Ok(())
    }

    /// Reopen the directories from the deepest open ancestor down to the new top (whose name
    /// and stat are already in place), checking each is the directory it was. The root is
    /// never closed, so there is always an open ancestor.
    fn reopen_top(&mut self) -> Result<OwnedFd, WalkError> {
        let start = self.above.iter().rposition(|l| l.fd.is_some()).unwrap_or(0);
        for k in start + 1..self.above.len() {
            let fd = self.reopen(k - 1, &self.above[k].name, &self.above[k].stat)?;
            self.above[k].fd = Some(fd);
        }
        let fd = self.reopen(
            self.above.len().wrapping_sub(1),
            &self.top_name,
            &self.top_stat,
        )?;
        self.trim();
        Ok(fd)
    }

    /// Open `name` (once inspected as `stat`) in the open ancestor `at`.
    fn reopen(&self, at: usize, name: &OsStr, stat: &EntryStat) -> Result<OwnedFd, WalkError> {
        let mut shown = self.shown.clone();
        self.above
            .iter()
            .take(at + 1)
            .skip(1)
            .for_each(|l| shown.push(&l.name));
        shown.push(name);
        let what = "reopening directory";
        let Some(base) = self.above.get(at).and_then(|l| l.fd.as_ref()) else {
            return Err(WalkError::io(
                shown,
                what,
                io::Error::other("no open directory above it"),
            ));
        };
        root_walk::open_dir_at(base.as_fd(), name, stat).map_err(|e| WalkError::io(shown, what, e))
    }

    /// Close the shallowest open directories between root and top beyond `keep`.
    fn trim(&mut self) {
        let mut open = self.above.iter().skip(1).filter(|l| l.fd.is_some()).count();
        for l in self.above.iter_mut().skip(1) {
            if open <= self.keep {
                break;
            }
            if l.fd.take().is_some() {
                open -= 1;
            }
        }
    }
}

/// How many entries a walk may still read.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    /// A budget of `limit` entries.
    pub fn new(limit: u64) -> Budget {
        Budget { limit, used: 0 }
    }
}

/// One entry met by [`walk`], with ways to look inside it by fd.
pub struct Entry<'a> {
    /// 0 for the root, 1 for its entries, …
    pub depth: usize,
    /// Its name (empty for the root).
    pub name: &'a OsStr,
    /// `statx` of it (not followed).
    pub stat: &'a EntryStat,
    /// A directory something else is mounted on: the walk does not descend into it.
    pub mount_point: bool,
    chain: &'a Chain,
}

impl Entry<'_> {
    /// Its path below the tree's root (empty for the root).
    pub fn rel(&self) -> PathBuf {
        self.chain.rel().join(self.name)
    }

    /// How messages name it.
    pub fn shown(&self) -> PathBuf {
        if self.depth == 0 {
            self.chain.shown(None)
        } else {
            self.chain.shown(Some(self.name))
        }
    }

    /// An error about this entry.
    pub fn error(&self, what: &'static str, e: io::Error) -> WalkError {
        WalkError::io(self.shown(), what, e)
    }
}

/// What [`walk`] calls for every entry, the root first, then depth first with the names of
/// each directory in bytewise order.
pub trait Visitor {
    /// Look at one entry; an error ends the walk.
    fn visit(&mut self, entry: &Entry<'_>) -> Result<(), WalkError>;
}

/// Walk the whole tree of `root` within `limits`, calling `visitor` for every entry. Never
/// follows a symlink and never descends into a mount point.
pub fn walk(root: &Root, limits: &Limits, visitor: &mut impl Visitor) -> Result<(), WalkError> {
    let mut chain = Chain::at_root(root, KEEP_OPEN)?;
    let stat = *chain.stat();
    visitor.visit(&Entry {
        depth: 0,
        name: OsStr::new(""),
        stat: &stat,
        mount_point: false,
        chain: &chain,
    })?;
    let mut budget = Budget::new(limits.max_entries);
    let first = chain.read_names(&mut budget)?;
    if !first.is_empty() && limits.max_depth == 0 {
        return Err(WalkError {
            path: chain.shown(None),
            kind: WalkErrorKind::TooDeep(0),
        });
    }
    let mut stack = vec![first.into_iter()];
    while let Some(names) = stack.last_mut() {
        let Some(name) = names.next() else {
            stack.pop();
            if !stack.is_empty() {
                chain.pop()?;
            }
            continue;
        };
        let depth = chain.depth() + 1;
        let st = chain.stat_at(&name)?;
        let mount_point = st.is_dir() && st.is_mount_root_below(chain.stat());
        if !st.is_dir() || mount_point {
            visitor.visit(&Entry {
                depth,
                name: &name,
                stat: &st,
                mount_point,
                chain: &chain,
            })?;
            continue;
        }
        let fd = chain.open_dir(&name, &st)?;
        visitor.visit(&Entry {
            depth,
            name: &name,
            stat: &st,
            mount_point,
            chain: &chain,
        })?;
        chain.push(&name, st, fd);
        let children = chain.read_names(&mut budget)?;
        if !children.is_empty() && depth >= limits.max_depth {
            return Err(WalkError {
                path: chain.shown(None),
                kind: WalkErrorKind::TooDeep(limits.max_depth),
            });
        }
        stack.push(children.into_iter());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// Create `levels` nested directories named `name` below `dir` (fd-relative: the path
    /// gets longer than `PATH_MAX`), with a file `leaf` at the bottom; returns nothing.
    pub(crate) fn deep_tree(dir: &Path, name: &str, levels: usize) {
        use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = openat(CWD, dir, flags, Mode::empty()).unwrap();
        for _ in 0..levels {
            mkdirat(&fd, name, Mode::from_raw_mode(0o755)).unwrap();
            fd = openat(&fd, name, flags, Mode::empty()).unwrap();
        }
        let f = openat(
            &fd,
            "leaf",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, b"leaf").unwrap();
    }

    /// Records (depth, name) of every entry.
    struct Names(Vec<(usize, Vec<u8>)>);

    impl Visitor for Names {
        fn visit(&mut self, e: &Entry<'_>) -> Result<(), WalkError> {
            self.0.push((e.depth, e.name.as_bytes().to_vec()));
            Ok(())
        }
    }

    fn names(root: &Root, limits: &Limits) -> Result<Vec<(usize, Vec<u8>)>, WalkError> {
        let mut v = Names(Vec::new());
        walk(root, limits, &mut v)?;
        Ok(v.0)
    }

    #[test]
    fn depth_first_sorted_bytes_no_links_followed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("b/c")).unwrap();
        std::fs::write(d.join("b/c/f"), "").unwrap();
        std::fs::write(d.join("a"), "").unwrap();
        std::fs::write(d.join(OsStr::from_bytes(b"\xff")), "").unwrap();
        std::os::unix::fs::symlink("/", d.join("b/root-link")).unwrap();
        let got = names(&Root::open(d).unwrap(), &Limits::default()).unwrap();
        let want: Vec<(usize, Vec<u8>)> = vec![
            (0, b"".to_vec()),
            (1, b"a".to_vec()),
            (1, b"b".to_vec()),
            (2, b"c".to_vec()),
            (3, b"f".to_vec()),
            (2, b"root-link".to_vec()),
            (1, b"\xff".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn deeper_than_path_max_with_few_open_fds() {
        let t = tempfile::tempdir().unwrap();
        let name = "n".repeat(50);
        deep_tree(t.path(), &name, 100);
        let root = Root::open(t.path()).unwrap();
        let got = names(&root, &Limits::default()).unwrap();
        assert_eq!(got.len(), 102, "root, 100 directories, the leaf");
        assert_eq!(got[101], (101, b"leaf".to_vec()));

        // A chain keeping 2 levels open still gets back up through 100 closed ones.
        let mut chain = Chain::at_root(&root, 2).unwrap();
        let mut budget = Budget::new(1000);
        for _ in 0..100 {
            let n = chain.read_names(&mut budget).unwrap();
            let st = chain.stat_at(&n[0]).unwrap();
            let fd = chain.open_dir(&n[0], &st).unwrap();
            chain.push(&n[0], st, fd);
        }
        assert!(chain.shown(None).as_os_str().len() > 5000);
        let open = chain.above.iter().filter(|l| l.fd.is_some()).count();
        assert_eq!(open, 3, "root and two levels");
        for _ in 0..100 {
            chain.pop().unwrap();
        }
        assert_eq!(chain.depth(), 0);
        assert_eq!(chain.stat().inode(), root.inode());
        assert_eq!(chain.read_names(&mut budget).unwrap()[0], name.as_str());
    }

    #[test]
    fn limits_refuse_with_the_place_and_the_reason() {
        let t = tempfile::tempdir().unwrap();
        deep_tree(t.path(), "d", 5);
        let root = Root::open(t.path()).unwrap();
        let deep = Limits {
            max_depth: 5,
            max_entries: 100,
        };
        let e = names(&root, &deep).unwrap_err();
        assert!(matches!(e.kind, WalkErrorKind::TooDeep(5)), "{e}");
        assert_eq!(e.path, t.path().join("d/d/d/d/d"));
        assert_eq!(
            e.to_string(),
            format!(
                "{}/d/d/d/d/d: more than 5 directory levels deep",
                t.path().display()
            )
        );
        // Exactly at the limit is fine.
        let ok = Limits {
            max_depth: 6,
            max_entries: 100,
        };
        assert_eq!(names(&root, &ok).unwrap().len(), 7);
        let few = Limits {
            max_depth: 10,
            max_entries: 5,
        };
        let e = names(&root, &few).unwrap_err();
        assert!(matches!(e.kind, WalkErrorKind::TooManyEntries(5)), "{e}");
        assert!(
            e.to_string().ends_with("the tree has more than 5 entries"),
            "{e}"
        );
    }
}
