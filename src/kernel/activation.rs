//! Socket activation as systemd's `sd_listen_fds_with_names()` and `sd_varlink_invocation()`
//! see it: `$LISTEN_PID` names this process, `$LISTEN_FDS` counts the fds passed from fd 3 on,
//! `$LISTEN_FDNAMES` names them. Varlink mode is exactly one fd, named `varlink`: a listening
//! socket (a socket unit without `Accept=`) or a connection (`Accept=yes`, `varlinkctl
//! exec:`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `SD_LISTEN_FDS_START`.
const LISTEN_FDS_START: i32 = 3;

/// What the activation environment passed.
#[derive(Debug, PartialEq, Eq)]
pub enum Passed {
    /// No fds for this process (no `$LISTEN_PID`/`$LISTEN_FDS`, or they are another process's).
    Nothing,
    /// Fds, but not exactly one named `varlink`: not a Varlink invocation.
    NotVarlink,
    /// More than one fd (systemd: `ETOOMANYREFS`).
    TooMany(usize),
    /// One fd named `varlink` at fd 3.
    Varlink,
}

/// Judge the activation variables (`env` looks them up) for process `pid`.
pub fn judge(env: &dyn Fn(&str) -> Option<String>, pid: u32) -> Passed {
    let mine = env("LISTEN_PID").and_then(|p| p.trim().parse::<u32>().ok()) == Some(pid);
    let count = env("LISTEN_FDS").and_then(|n| n.trim().parse::<usize>().ok());
    match (mine, count) {
        (true, Some(0)) | (false, _) | (_, None) => Passed::Nothing,
        (true, Some(1)) => {
            if env("LISTEN_FDNAMES").as_deref() == Some("varlink") {
                Passed::Varlink
            } else {
                Passed::NotVarlink
            }
        }
        (true, Some(n)) => Passed::TooMany(n),
    }
}

/// Take ownership of the passed fd 3 (once, after [`judge`] said [`Passed::Varlink`]); the
/// activation variables are removed so that children do not inherit them.
pub fn take_varlink_fd() -> io::Result<OwnedFd> {
    let fd = LISTEN_FDS_START;
    // Check that fd 3 is open and a socket before anything owns it.
    let st = rustix::fs::fstat(
        // SAFETY: fd 3 is only borrowed for this fstat; ownership is taken below, once.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
    )?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fd 3, passed as 'varlink', is not a socket",
        ));
    }
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    // SAFETY: systemd (or varlinkctl) passed fd 3 to this process for the Varlink service; nothing
    // else in extmerge uses it, and this is called once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` is a listening socket (`SO_ACCEPTCONN`).
pub fn is_listening(fd: &OwnedFd) -> io::Result<bool> {
    Ok(rustix::net::sockopt::socket_acceptconn(fd)?)
}

/// The uid of the peer of a connected Unix socket.
pub fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(fd)?.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn one_fd_named_varlink_for_this_process_is_varlink_mode() {
        let vars = [
            ("LISTEN_PID", "42"),
            ("LISTEN_FDS", "1"),
            ("LISTEN_FDNAMES", "varlink"),
        ];
        assert_eq!(judge(&env(&vars), 42), Passed::Varlink);
        assert_eq!(judge(&env(&vars), 43), Passed::Nothing);
        let unnamed = [("LISTEN_PID", "42"), ("LISTEN_FDS", "1")];
        assert_eq!(judge(&env(&unnamed), 42), Passed::NotVarlink);
        let two = [
            ("LISTEN_PID", "42"),
            ("LISTEN_FDS", "2"),
            ("LISTEN_FDNAMES", "varlink:varlink"),
        ];
        assert_eq!(judge(&env(&two), 42), Passed::TooMany(2));
        assert_eq!(judge(&env(&[]), 42), Passed::Nothing);
    }
}
