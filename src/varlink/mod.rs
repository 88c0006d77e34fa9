//! extmerge as a Varlink service, started the way `systemd-sysext` is: by
//! `systemd-sysext.socket` (`Accept=yes`, a connection on fd 3), by
//! `systemd-sysupdate-notify-sysext.socket`, by `varlinkctl call exec:PATH …` (a connection on
//! fd 3), or with `$SYSTEMD_VARLINK_LISTEN` (a socket path to listen on, or `-` for standard
//! input and output). sd-varlink's `sd_varlink_invocation(SD_VARLINK_ALLOW_ACCEPT)` decides the
//! same way: the variable, or exactly one passed fd named `varlink` that is a connection.
//!
//! One connection is served at a time, calls in order; the service exits when no connection is
//! left (sd-varlink's exit-on-idle).
//!
//! Hand-written over serde_json, with a fuzzed parser ([`wire`]), because no crate serves what
//! systemd-sysext serves: the `varlink` crate (13) answers `org.varlink.service` itself, with its
//! own interface text and the interface list in hash order (so `varlinkctl introspect` and
//! GetInfo cannot match systemd's), and its socket activation takes fd 3 as a listening socket
//! only (an `Accept=yes` unit and `varlinkctl exec:` pass a connection); `zlink` (0.8) is
//! async-only (tokio or smol) for what is one blocking connection at a time here.

pub mod idl;
pub mod images;
pub mod params;
pub mod service;
pub mod wire;

use crate::kernel::activation::{self, Passed};
use anyhow::{bail, Context, Result};
use service::{Answer, Service};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

/// How extmerge was asked to serve Varlink, if it was.
pub enum Invocation {
    /// Not a Varlink invocation: run the command line verb.
    None,
    /// The connection or listening socket passed as fd 3.
    Fd(OwnedFd),
    /// `$SYSTEMD_VARLINK_LISTEN=PATH`: listen there.
    Listen(String),
    /// `$SYSTEMD_VARLINK_LISTEN=-`: one connection on standard input and output.
    Stdio,
}

/// Decide, as `sd_varlink_invocation()` does, whether this is a Varlink invocation.
pub fn invocation() -> Result<Invocation> {
    if let Some(v) = std::env::var_os("SYSTEMD_VARLINK_LISTEN") {
        let v = v.to_string_lossy().into_owned();
        return Ok(if v == "-" {
            Invocation::Stdio
        } else {
            Invocation::Listen(v)
        });
    }
    let env = |k: &str| std::env::var(k).ok();
    match activation::judge(&env, std::process::id()) {
        Passed::Nothing | Passed::NotVarlink => Ok(Invocation::None),
        Passed::TooMany(n) => bail!(
            "Failed to check if invoked in Varlink mode: {n} file descriptors passed, expected \
             one (Too many references: cannot splice)"
        ),
        Passed::Varlink => Ok(Invocation::Fd(
            activation::take_varlink_fd().context("taking the passed Varlink socket (fd 3)")?,
        )),
    }
}

/// Serve one connection until the peer hangs up or breaks the protocol.
fn serve_connection(svc: &Service, mut input: impl Read, mut output: impl Write, uid: u32) {
    let mut framer = wire::Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(msg) = framer.next_message() {
            let call = match wire::parse_call(&msg) {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("Varlink protocol error, disconnecting: {e}");
                    return;
                }
            };
            tracing::debug!("Varlink call {}.", call.method);
            let Answer::Replies(replies) = svc.handle(&call, uid) else {
                continue;
            };
            if call.oneway {
                continue;
            }
            for r in replies {
                if let Err(e) = output.write_all(&r.encode()).and_then(|()| output.flush()) {
                    tracing::debug!("Varlink peer went away while replying: {e}");
                    return;
                }
            }
        }
        match input.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Err(e) = framer.push(&buf[..n]) {
                    tracing::debug!("Varlink protocol error, disconnecting: {e}");
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!("Reading from the Varlink peer: {e}");
                return;
            }
        }
    }
}

fn serve_stream(svc: &Service, stream: UnixStream) -> Result<()> {
    let uid =
        activation::peer_uid(stream.as_fd()).context("reading the Varlink peer's credentials")?;
    let reader = stream
        .try_clone()
        .context("duplicating the Varlink connection")?;
    serve_connection(svc, reader, stream, uid);
    Ok(())
}

/// Accept connections one after the other; return when none is waiting after one ended.
fn serve_listener(svc: &Service, listener: UnixListener) -> Result<()> {
    let (first, _) = listener
        .accept()
        .context("accepting a Varlink connection")?;
    serve_stream(svc, first)?;
    listener
        .set_nonblocking(true)
        .context("making the Varlink socket non-blocking")?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)
                    .context("making a Varlink connection blocking")?;
                serve_stream(svc, s)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e).context("accepting a Varlink connection"),
        }
    }
}

/// Serve `how` with `svc` until no connection is left.
pub fn serve(svc: &Service, how: Invocation) -> Result<()> {
    match how {
        Invocation::None => Ok(()),
        Invocation::Stdio => {
            let uid = rustix::process::geteuid().as_raw();
            serve_connection(svc, std::io::stdin().lock(), std::io::stdout().lock(), uid);
            Ok(())
        }
        Invocation::Listen(path) => {
            // sd-varlink replaces a stale socket at the path.
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)
                .with_context(|| format!("listening on the Varlink socket {path}"))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                .with_context(|| format!("setting the mode of {path}"))?;
            serve_listener(svc, listener)
        }
        Invocation::Fd(fd) => {
            // systemd-sysext accepts only a connection here (SD_VARLINK_ALLOW_ACCEPT): a
            // listening socket is EISCONN.
            if activation::is_listening(&fd).context("SO_ACCEPTCONN of fd 3")? {
                bail!(
                    "Failed to check if invoked in Varlink mode: Transport endpoint is already \
                     connected (fd 3 is a listening socket; use Accept=yes)"
                );
            }
            serve_stream(svc, UnixStream::from(fd))
        }
    }
}
