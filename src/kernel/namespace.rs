//! Private mount namespaces: assembly runs on a helper thread with a namespace of its own, so
//! nothing it mounts reaches the caller's namespace or PID 1's mount table.

use anyhow::{anyhow, Context, Result};
use rustix::mount::MountPropagationFlags;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Move the calling thread into a new mount namespace whose mounts are all private.
///
/// Only this thread (and threads it spawns later) is affected. Making `/` recursively
/// private first means nothing mounted or unmounted here propagates to the old peers.
pub fn enter_private_namespace() -> Result<()> {
    // unshare(CLONE_NEWNS) implies CLONE_FS: this thread gets its own root and cwd, which now
    // name the copies of the old mounts in the new namespace.
    // SAFETY: only CLONE_NEWNS (+ the implied CLONE_FS) is asked for: the fd table stays shared,
    // so no fd this process holds changes meaning.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(io::Error::from)
        .context("unshare(CLONE_NEWNS) for a private mount namespace (needs CAP_SYS_ADMIN)")?;
    match rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    ) {
        Ok(()) => Ok(()),
        // In a chroot whose directory is not a mount point, "/" names no mount to change.
        Err(rustix::io::Errno::INVAL)
            if !super::mounts::is_mount_point(std::path::Path::new("/")).unwrap_or(true) =>
        {
            anyhow::bail!(
                "cannot keep extmerge's mounts private: / is not a mount point (running in a chroot? \
                 make the chroot's directory a mount point first, e.g. mount --bind DIR DIR)"
            )
        }
        Err(e) => Err(io::Error::from(e))
            .context("making / recursively private in the new mount namespace"),
    }
}

/// How long a private namespace took to set up and to tear down.
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceTimes {
    /// Spawning the thread, `unshare` and making its mounts private.
    pub enter: Duration,
    /// Dropping the namespace with every mount made in it (zero when it could not be held).
    pub teardown: Duration,
}

/// Run `f` on a new thread with its own private mount namespace and return its result.
///
/// When the thread ends its namespace is dropped and every mount made there goes away,
/// except what a returned detached fd (fsmount/open_tree) still references. The namespace is
/// held by an nsfs fd until the thread has been joined and then dropped here, so its teardown
/// (unmounting everything in it, an RCU grace period) is done when this returns, and timed.
pub fn in_private_namespace<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    in_private_namespace_timed(f).map(|(t, _)| t)
}

/// [`in_private_namespace`], also saying how long the namespace took to enter and to drop.
pub fn in_private_namespace_timed<T, F>(f: F) -> Result<(T, NamespaceTimes)>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    let spawned = Instant::now();
    let (result, held, enter) = std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("extmerge-mntns".into())
            .spawn_scoped(scope, || {
                enter_private_namespace()?;
                let held = hold_own_namespace();
                let enter = spawned.elapsed();
                Ok::<_, anyhow::Error>((f(), held, enter))
            })
            .context("spawning the private mount namespace thread")?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic payload".to_string());
                Err(anyhow!("private mount namespace thread panicked: {msg}"))
            }
        }
    })?;
    let dropping = Instant::now();
    let teardown = match held {
        Some(fd) => {
            drop(fd);
            dropping.elapsed()
        }
        None => Duration::ZERO,
    };
    result.map(|t| (t, NamespaceTimes { enter, teardown }))
}

/// An nsfs fd of the calling thread's mount namespace: while it is open the namespace outlives
/// the thread, and closing it (the last reference) unmounts everything in it before `close`
/// returns. `None` without /proc: the namespace then goes with the thread, in the background.
fn hold_own_namespace() -> Option<OwnedFd> {
    rustix::fs::open(
        "/proc/thread-self/ns/mnt",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}
