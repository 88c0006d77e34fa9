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
        covered |= meta::inspect(root, h, other)?.is_some();
    }
    if !covered {
        return Base::read(root);
    }
    namespace::in_private_namespace(|| {
        let root = Root::open(&s.root)?;
        for h in &s.other_hierarchies {
            while let Some(m) = meta::inspect(&root, h, other)? {
                crate::kernel::mounts::detach_fd(std::os::fd::AsFd::as_fd(&m.top.fd), &m.shown)?;
            }
        }
        Base::read(&root)
    })
}
