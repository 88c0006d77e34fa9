//! The base OS as judging needs it: below every merge of either class. A confext shipping
//! `etc/os-release` or a `verity.d` certificate, or a sysext shipping a certificate under
//! `/usr/lib/verity.d`, must not change which extensions are accepted or trusted.

use crate::gather::snapshot::Base;
use crate::kernel::namespace;
use crate::kernel::root::Root;
use crate::meta;
use crate::settings::ClassSettings;
use anyhow::Result;

/// Read the base with `root` opened in the (private) namespace where this class's merges are
/// already peeled. When the other class has a merge too, it is read on a throwaway namespace
/// of its own where that merge is peeled as well (the assembling namespace keeps it: extensions
/// may be stored below it).
pub fn read(s: &ClassSettings, root: &Root) -> Result<Base> {
    read_shared(s, root, &Shared::default())
}

/// The base as one process run reads it for every class: it is the same below every merge of
/// either class, so the first class to read it keeps it for the next, which then needs no
/// namespace of its own to peel the first class's merges.
#[derive(Debug, Default)]
pub struct Shared(std::sync::Mutex<Option<((u64, u64), Base)>>);

impl Shared {
    fn get(&self, root: (u64, u64)) -> Option<Base> {
        let kept = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.as_ref().filter(|(k, _)| *k == root).map(|(_, b)| b.clone())
    }

    fn keep(&self, root: (u64, u64), base: &Base) {
        let mut kept = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *kept = Some((root, base.clone()));
    }
}

/// [`read`], or the base `shared` already holds for this root.
pub fn read_shared(s: &ClassSettings, root: &Root, shared: &Shared) -> Result<Base> {
    if let Some(base) = shared.get(root.inode()) {
        tracing::debug!("Using the base OS as read for the previous class.");
        return Ok(base);
    }
    let base = read_below_all(s, root)?;
    shared.keep(root.inode(), &base);
    Ok(base)
}

fn read_below_all(s: &ClassSettings, root: &Root) -> Result<Base> {
    let other = s.class.other();
    let mut covered = false;
    for h in &s.other_hierarchies {
        covered |= meta::probe(root, h, other)?.is_some();
    }
    if !covered {
        return Base::read(root);
    }
    namespace::in_private_namespace(|| {
        let root = Root::open(&s.root)?;
        for h in &s.other_hierarchies {
            while let Some(top) = meta::probe(&root, h, other)? {
                let shown = root.show(&top.in_root);
                crate::kernel::mounts::detach_fd(std::os::fd::AsFd::as_fd(&top.fd), &shown)?;
            }
        }
        Base::read(&root)
    })
}
