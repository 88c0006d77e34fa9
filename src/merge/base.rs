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

/// The base as one process run reads it for every class: it is the same below every merge of
/// either class, so the first class to read it keeps it for the next, which then needs no
/// namespace of its own to peel the first class's merges.
#[derive(Debug, Default)]
pub struct Shared(std::sync::Mutex<Option<((u64, u64), Base)>>);

impl Shared {
    fn get(&self, root: (u64, u64)) -> Option<Base> {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.as_ref()
            .filter(|(k, _)| *k == root)
            .map(|(_, b)| b.clone())
    }

    fn keep(&self, root: (u64, u64), base: &Base) {
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *kept = Some((root, base.clone()));
    }
}

/// [`read`], or the base `shared` already holds for this root.
pub fn read_shared(s: &ClassSettings, root: &Root, shared: &Shared) -> Result<Base> {
    if let Some(base) = shared.get(root.inode()) {
        tracing::debug!("Using the base OS as read for the previous class.");
        return Ok(base);
    }
    let base = read(s, root)?;
    shared.keep(root.inode(), &base);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one class read is what the next class of the same run gets, and only for the same
    /// root: another root (another inode) reads its own.
    #[test]
    fn the_shared_base_is_the_first_read_and_only_for_its_root() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("etc")).unwrap();
        std::fs::write(a.path().join("etc/os-release"), "ID=alpha\n").unwrap();
        std::fs::create_dir_all(b.path().join("etc")).unwrap();
        std::fs::write(b.path().join("etc/os-release"), "ID=beta\n").unwrap();
        let id = |base: &Base| base.host.as_ref().map(|h| h.id.clone()).unwrap();
        let (ra, rb) = (Root::open(a.path()).unwrap(), Root::open(b.path()).unwrap());
        let shared = Shared::default();
        assert!(
            shared.get(ra.inode()).is_none(),
            "nothing kept before a read"
        );
        let first = Base::read(&ra).unwrap();
        shared.keep(ra.inode(), &first);
        // The file changes after the first class read it: the run keeps judging by one base.
        std::fs::write(a.path().join("etc/os-release"), "ID=changed\n").unwrap();
        assert_eq!(
            shared.get(ra.inode()).map(|b| id(&b)).as_deref(),
            Some("alpha")
        );
        assert!(
            shared.get(rb.inode()).is_none(),
            "another root reads its own"
        );
        assert_eq!(id(&Base::read(&rb).unwrap()), "beta");
    }
}
