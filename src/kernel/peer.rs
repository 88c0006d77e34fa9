//! The credentials of a connected Unix socket's peer, for a socket a library owns and only
//! lends as a raw fd.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// The uid of the process at the other end of the connected Unix socket `fd` (`SO_PEERCRED`).
pub fn peer_uid(fd: RawFd) -> io::Result<u32> {
    // SAFETY: the caller's connection owns `fd` and keeps it open for the duration of this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(rustix::net::sockopt::socket_peercred(fd)?.uid.as_raw())
}
