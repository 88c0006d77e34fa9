//! Putting the assembled trees in place in the caller's namespace. A [`Placement`] owns what it
//! attached: dropped before [`Placement::commit`], it rolls back, so every hierarchy shows
//! exactly its old or its new merge, never none and never a stack.

use crate::class::ImageClass;
use crate::failpoint;
use crate::kernel::mounts::{self, AttachError};
use crate::kernel::root::{Lookup, Root};
use crate::merge::assemble::HierarchyTree;
use crate::merge::unmerge;
use anyhow::{Context, Result};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// How one tree was placed.
enum How {
    /// On a hierarchy that had no merge: attached plainly; rolled back by detaching it.
    Plain,
    /// Beneath the current merge, which is still on top: completed (the old top peeled) either
    /// by commit or by roll-back, since a tree beneath another cannot be taken out alone.
    Beneath,
}

struct Placed<'a> {
    tree: BorrowedFd<'a>,
    hierarchy: PathBuf,
    shown: PathBuf,
    how: How,
}

/// The trees placed so far; see the module documentation.
pub struct Placement<'a> {
    root: &'a Root,
    class: ImageClass,
    placed: Vec<Placed<'a>>,
}

impl<'a> Placement<'a> {
    /// An empty placement on `root`.
    pub fn new(root: &'a Root, class: ImageClass) -> Placement<'a> {
        Placement {
            root,
            class,
            placed: Vec::new(),
        }
    }

    /// Place `t`: beneath the current merge when `replace`, else plainly (creating a missing
    /// mount point inside the root).
    pub fn place(&mut self, t: &'a HierarchyTree, replace: bool) -> Result<()> {
        let h = t.hierarchy.display();
        let shown = self.root.show(&t.hierarchy);
        if replace {
            failpoint::hit_with("before-attach-beneath", &h)?;
            let target = self
                .root
                .resolve(&t.hierarchy)
                .map_err(anyhow::Error::new)?;
            match mounts::attach_beneath_at(t.tree.as_fd(), target.fd.as_fd(), &shown) {
                Ok(()) => self.placed.push(Placed {
                    tree: t.tree.as_fd(),
                    hierarchy: t.hierarchy.clone(),
                    shown,
                    how: How::Beneath,
                }),
                Err(AttachError::BeneathUnsupported) => {
                    tracing::warn!(
                        "The kernel lacks MOVE_MOUNT_BENEATH (Linux < 6.5): replacing {} non-atomically.",
                        shown.display()
                    );
                    unmerge::peel(self.root, &t.hierarchy, self.class)?;
                    let target = self
                        .root
                        .resolve(&t.hierarchy)
                        .map_err(anyhow::Error::new)?;
                    mounts::attach_at(t.tree.as_fd(), target.fd.as_fd(), &shown)?;
                    self.placed.push(Placed {
                        tree: t.tree.as_fd(),
                        hierarchy: t.hierarchy.clone(),
                        shown,
                        how: How::Plain,
                    });
                }
                Err(e) => return Err(anyhow::Error::new(e)),
            }
            return failpoint::hit_with("after-attach-beneath", h);
        }
        let target = match self.root.lookup(&t.hierarchy).map_err(anyhow::Error::new)? {
            Lookup::Found(f) => f,
            Lookup::Missing { .. } => self
                .root
                .mkdir_all(&t.hierarchy, 0o755)
                .with_context(|| format!("creating mount point {}", shown.display()))?,
        };
        failpoint::hit_with("before-attach", &h)?;
        mounts::attach_at(t.tree.as_fd(), target.fd.as_fd(), &shown)?;
        self.placed.push(Placed {
            tree: t.tree.as_fd(),
            hierarchy: t.hierarchy.clone(),
            shown,
            how: How::Plain,
        });
        failpoint::hit_with("after-attach", h)
    }

    /// Keep everything placed: peel the old tops off the trees placed beneath them. A failure
    /// there leaves that hierarchy's old merge on top and is reported; the others go on.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let placed = std::mem::take(&mut self.placed);
        let mut out = Vec::new();
        let mut failed = None;
        for p in placed {
            if let How::Beneath = p.how {
                let h = p.hierarchy.display();
                // The new overlay is already beneath: removing the old top never exposes the
                // bare hierarchy.
                let peeled = failpoint::hit_with("before-unmount-old", &h)
                    .and_then(|()| unmerge::peel_and_clean(self.root, &p.hierarchy, self.class))
                    .and_then(|_| failpoint::hit_with("after-unmount-old", &h));
                if let Err(e) = peeled {
                    let e = e.context(format!(
                        "removing the replaced merge from {}",
                        p.shown.display()
                    ));
                    tracing::error!("{e:#}");
                    failed.get_or_insert(e);
                    continue;
                }
            }
            out.push(p.shown);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        for p in self.placed.drain(..).rev() {
            match p.how {
                How::Plain => {
                    if let Err(e) = mounts::detach_fd(p.tree, &p.shown) {
                        tracing::error!("Rolling back a placed overlay failed: {e:#}");
                    }
                }
                How::Beneath => {
                    // An unmount through the tree's magic link would land on the old top: finish
                    // that hierarchy's replacement instead, so it shows the new merge.
                    if let Err(e) = unmerge::peel_and_clean(self.root, &p.hierarchy, self.class) {
                        tracing::error!(
                            "Completing the replacement of {}: {e:#}",
                            p.shown.display()
                        );
                    }
                }
            }
        }
    }
}

/// Log one placed tree the way a user wants to read it.
pub fn log_merged(t: &HierarchyTree, shown: &Path) {
    tracing::info!(
        HIERARCHY = %shown.display(),
        LAYERS = t.layers.join(" ").as_str(),
        "Merged extensions into '{}'{}.",
        shown.display(),
        if t.self_upper {
            " (writable, the hierarchy is its own upper dir)"
        } else if t.writable {
            " (writable)"
        } else {
            ""
        }
    );
}
