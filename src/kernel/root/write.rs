//! Writes below a [`Root`]: directories created, files replaced atomically, trees removed, each
//! through the fds the resolution walk returns (never a joined path).

use super::*;

/// How deep a recursive removal descends before it refuses (each level holds an fd).
const MAX_REMOVE_DEPTH: usize = 256;

impl Root {
    /// Create `path` and every missing parent (mode `mode`), following links inside the root
    /// (systemd's `CHASE_MKDIR_0755`); returns the directory.
    pub fn mkdir_all(&self, path: &Path, mode: u32) -> anyhow::Result<Found> {
        // A concurrent creator may win a race for a component: retry the walk a few times.
        for _ in 0..8 {
            let (mut dir, missing) = match self.lookup(path).map_err(anyhow::Error::new)? {
                Lookup::Found(f) if f.is_dir() => return Ok(f),
                Lookup::Found(f) => anyhow::bail!(
                    "{} exists and is not a directory",
                    self.show(&f.in_root).display()
                ),
                Lookup::Missing { dir, missing, .. } => (dir, missing),
            };
            let mut raced = false;
            for m in missing {
                match rustix::fs::mkdirat(&dir.fd, m.as_os_str(), Mode::from_raw_mode(mode)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        raced = true;
                        break;
                    }
                    Err(e) => {
                        let mut p = dir.in_root.clone();
                        p.push(&m);
                        return Err(io::Error::from(e)).map_err(|e| {
                            anyhow::Error::new(e)
                                .context(format!("creating directory {}", self.show(&p).display()))
                        });
                    }
                }
                let fd = rustix::fs::openat(&dir.fd, m.as_os_str(), path_flags(), Mode::empty())
                    .map_err(io::Error::from)?;
                let stat = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
                let mut in_root = dir.in_root.clone();
                in_root.push(&m);
                if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
                    raced = true;
                    break;
                }
                dir = Found { fd, in_root, stat };
            }
            if !raced {
                return Ok(dir);
            }
        }
        anyhow::bail!(
            "creating directory {}: it keeps changing while being created",
            self.show(path).display()
        )
    }

    /// Write `bytes` to `path` atomically (a temporary file in the same directory, renamed over
    /// the old one), creating missing parents 0755. `sync` also flushes file and directory.
    pub fn write_atomic(
        &self,
        path: &Path,
        bytes: &[u8],
        mode: u32,
        sync: bool,
    ) -> anyhow::Result<()> {
        use anyhow::Context;
        let name = path
            .file_name()
            .with_context(|| format!("{}: no file name", path.display()))?;
        let parent = path.parent().unwrap_or(Path::new("/"));
        let dir = self.mkdir_all(parent, 0o755)?;
        let dirfd = dir
            .open_dir()
            .with_context(|| format!("opening directory {}", self.show(&dir.in_root).display()))?;
        let target = self.show(&dir.in_root.join(name));
        let tmp = temp_name(name);
        let fd = rustix::fs::openat(
            &dirfd,
            tmp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("creating a temporary file for {}", target.display()))?;
        let mut file = File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
            .and_then(|()| {
                rustix::fs::renameat(&dirfd, tmp.as_os_str(), &dirfd, name).map_err(io::Error::from)
            });
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dirfd, tmp.as_os_str(), AtFlags::empty());
            return Err(e).with_context(|| format!("writing {}", target.display()));
        }
        if sync {
            rustix::fs::fsync(&dirfd)
                .map_err(io::Error::from)
                .with_context(|| format!("syncing the directory of {}", target.display()))?;
        }
        Ok(())
    }

    /// Remove the entry `name` of the directory at `dir` and, if it is a directory, everything
    /// in it. Never follows a symlink: a link is removed, not what it points to. `Ok(false)`
    /// when there was nothing to remove.
    pub fn remove_tree(&self, dir: &Path, name: &OsStr) -> anyhow::Result<bool> {
        use anyhow::Context;
        if name.is_empty() || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
            anyhow::bail!("refusing to remove {:?}: not a single file name", name);
        }
        let parent = match self.resolve(dir) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(anyhow::Error::new(e)),
        };
        let shown = self.show(&parent.in_root.join(name));
        let dirfd = parent
            .open_dir()
            .with_context(|| format!("opening {}", self.show(&parent.in_root).display()))?;
        remove_entry(dirfd.as_fd(), name, 0)
            .with_context(|| format!("removing {}", shown.display()))
    }
}

/// `.#NAME.XXXXXXXXXXXXXXXX`: hidden, marked temporary (systemd and discovery skip `.#`), unique.
fn temp_name(name: &OsStr) -> OsString {
    // Uniqueness, not secrecy: O_EXCL catches any collision.
    let bytes = crate::kernel::unique::unique_bytes();
    let mut t = OsString::from(".#");
    t.push(name);
    t.push(format!(".{}", crate::ondisk::bytes::hex(&bytes)));
    t
}

/// Remove `name` below `dir` recursively without following links.
fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> anyhow::Result<bool> {
    use anyhow::Context;
    let sub = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false),
        // Not a directory (ENOTDIR), or a symlink (ELOOP with O_NOFOLLOW): unlink the entry itself.
        Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
            return match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) => Ok(true),
                Err(Errno::NOENT) => Ok(false),
                Err(e) => Err(io::Error::from(e)).context("unlinking"),
            };
        }
        Err(e) => return Err(io::Error::from(e)).context("opening the directory"),
    };
    if depth >= MAX_REMOVE_DEPTH {
        anyhow::bail!("more than {MAX_REMOVE_DEPTH} directory levels deep: not removing it");
    }
    let mut names: Vec<OsString> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub).context("reading the directory")? {
        let entry = entry.context("reading the directory")?;
        let n: &CStr = entry.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(OsStr::from_bytes(n.to_bytes()).to_os_string());
        }
    }
    for n in names {
        remove_entry(sub.as_fd(), &n, depth + 1)
            .with_context(|| format!("in {}", Path::new(&n).display()))?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(io::Error::from(e)).context("removing the directory"),
    }
}
