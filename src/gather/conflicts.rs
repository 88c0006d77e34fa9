//! The conflict walk: all layers of a hierarchy at once (the base tree below, the extensions
//! above it in overlay order), path by path, with the fd-relative walker's [`Chain`]s; at every
//! path it gathers what each layer has there as plain data and asks the judge
//! (`decide::conflicts::judge`) what conflicts and which directories overlayfs merges, and goes
//! on into those.
//!
//! One bad extension stays one bad extension: an extension the walk cannot judge (unreadable,
//! deeper or larger than the [`Limits`]) is left out with the reason and the walk starts over
//! without it, so the others are still judged ([`Scanned::unjudged`]); the caller refuses it
//! (`refuse`) or warns (`warn`). Trouble reading the base only narrows what is compared with
//! the base, with a warning.

use std::path::PathBuf;

use crate::decide::conflicts::{self, Refusal, Scanned};
use crate::gather::walk::{Limits, WalkError};
use crate::kernel::root::Root;

mod merged;

/// An extension's tree as the walk sees it.
#[derive(Clone, Copy, Debug)]
pub struct LayerTree<'a> {
    /// The tree (an image mounted, or a directory).
    pub root: &'a Root,
    /// Its file system holds no extended attributes at all (a squashfs without an xattr
    /// table), so nothing in it can be an opaque directory or an xattr whiteout: the walk
    /// reads no xattrs there, and does not look up a file or link that no other layer (base
    /// included) has at its path, since nothing can be reported of it.
    pub no_xattrs: bool,
}

impl<'a> LayerTree<'a> {
    /// A tree whose file system may hold extended attributes (every entry is looked at).
    pub fn new(root: &'a Root) -> LayerTree<'a> {
        LayerTree {
            root,
            no_xattrs: false,
        }
    }
}

/// Scan `hierarchies` of the extension trees `layers` (bottom first, top = winner) over the
/// base tree `base` (the host root, or `None` where the hierarchy is its own upper dir).
///
/// Symlinks below a hierarchy are never followed and no layer root is ever left; a directory
/// that a higher layer replaces with a non-directory (or hides by opacity) is not descended
/// into; the base is only looked up by the names the extensions have. Conflicts come sorted by
/// path, then kind.
pub fn scan(
    layers: &[(String, LayerTree<'_>)],
    base: Option<&Root>,
    hierarchies: &[PathBuf],
    limits: &Limits,
) -> Scanned {
    let mut active: Vec<usize> = (0..layers.len()).collect();
    let mut unjudged: Vec<(String, String)> = Vec::new();
    let mut looked_up = 0;
    // Every failed round leaves out at least one layer.
    loop {
        let round = merged::scan_once(layers, &active, base, hierarchies, limits, &mut looked_up);
        match round {
            Ok(mut found) => {
                conflicts::sort_conflicts(&mut found);
                return Scanned {
                    conflicts: found,
                    unjudged,
                    looked_up,
                };
            }
            Err(f) => {
                let reason = f.error.to_string();
                for i in f.layers {
                    if let Some(pos) = active.iter().position(|a| *a == i) {
                        active.remove(pos);
                        unjudged.push((layers[i].0.clone(), reason.clone()));
                    }
                }
            }
        }
    }
}

/// Apply the refuse policy: drop what cannot be judged, then the later extension of every
/// conflict but base shadowing, rescanning until nothing more is dropped.
pub fn refuse(
    layers: &[(String, LayerTree<'_>)],
    base: Option<&Root>,
    hierarchies: &[PathBuf],
    limits: &Limits,
) -> Refusal {
    let r = conflicts::refuse_scanned(layers, |l| {
        Ok::<_, std::convert::Infallible>(scan(l, base, hierarchies, limits))
    });
    match r {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Layers (indices into the caller's list) the walk could not judge, and why.
pub(crate) struct Failure {
    layers: Vec<usize>,
    error: WalkError,
}

#[cfg(test)]
mod tests;
