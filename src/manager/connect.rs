//! Reaching PID 1 as systemd's `bus_connect_system_systemd()` does: as root, its private socket
//! `/run/systemd/private` (a direct connection that works before dbus-daemon runs, and
//! systemd-sysext.service runs before sysinit.target), whose peer must be root; otherwise, or
//! when that socket cannot be used, the system bus.

use anyhow::{anyhow, bail, Context, Result};
use rustbus::connection::ll_conn::{force_finish_on_error, DuplexConn};
use rustbus::connection::Timeout;
use rustbus::message_builder::MarshalledMessage;
use rustbus::wire::errors::MarshalError;
use rustbus::{MessageBuilder, MessageType, RpcConn};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// PID 1's private D-Bus socket.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The service manager's bus name.
pub const DESTINATION: &str = "org.freedesktop.systemd1";
/// The service manager's object.
pub const PATH: &str = "/org/freedesktop/systemd1";
/// The service manager's interface.
pub const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// sd-bus's default method call timeout (`BUS_DEFAULT_TIMEOUT`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// Why a method call failed.
#[derive(Debug)]
pub enum CallError {
    /// The manager answered with a D-Bus error.
    Method {
        /// The error name, e.g. `org.freedesktop.systemd1.NoSuchUnit`.
        name: String,
        /// Its message, if it has one.
        message: Option<String>,
    },
    /// The call did not get an answer (connection lost, timeout, a malformed reply).
    Transport(String),
}

impl CallError {
    /// The D-Bus error name, for a method error.
    pub fn name(&self) -> Option<&str> {
        match self {
            CallError::Method { name, .. } => Some(name),
            CallError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    /// systemd's `bus_error_message()`: the error's message, else its name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Method {
                message: Some(m), ..
            } => f.write_str(m),
            CallError::Method { name, .. } => f.write_str(name),
            CallError::Transport(e) => f.write_str(e),
        }
    }
}

/// A connection error in plain words (rustbus's own wrap the cause in "A nix error occured").
pub fn plain(e: rustbus::connection::Error) -> String {
    use rustbus::connection::Error;
    match e {
        Error::NixError(errno) => errno.desc().to_string(),
        Error::IoError(io) => io.to_string(),
        Error::PathDoesNotExist(p) => format!("{p} does not exist"),
        Error::TimedOut => "timed out".to_string(),
        other => other.to_string(),
    }
}

/// A connection to the service manager.
pub struct Manager {
    conn: RpcConn,
    /// How it was reached, for messages.
    pub via: &'static str,
    /// A bus connection (signals need a match rule there), not a direct one.
    pub bus: bool,
    timeout: Duration,
}

impl Manager {
    /// Send `msg` and wait for its reply; an error reply becomes [`CallError::Method`].
    pub fn send(&mut self, mut msg: MarshalledMessage) -> Result<MarshalledMessage, CallError> {
        tracing::debug!(
            "Calling {} over {}.",
            msg.dynheader.member.as_deref().unwrap_or("?"),
            self.via
        );
        let transport = |e| CallError::Transport(plain(e));
        let serial = self
            .conn
            .send_message(&mut msg)
            .map_err(transport)?
            .write_all()
            .map_err(force_finish_on_error)
            .map_err(transport)?;
        let reply = self
            .conn
            .wait_response(serial, Timeout::Duration(self.timeout))
            .map_err(transport)?;
        if reply.typ == MessageType::Error {
            return Err(CallError::Method {
                name: reply.dynheader.error_name.clone().unwrap_or_default(),
                message: reply.body.parser().get::<String>().ok(),
            });
        }
        Ok(reply)
    }

    /// Call `method` of `org.freedesktop.systemd1.Manager`, `args` adding its arguments.
    pub fn call(
        &mut self,
        method: &str,
        args: impl FnOnce(&mut MarshalledMessage) -> Result<(), MarshalError>,
    ) -> Result<MarshalledMessage, CallError> {
        let mut msg = MessageBuilder::new()
            .call(method)
            .with_interface(MANAGER)
            .on(PATH)
            .at(DESTINATION)
            .build();
        args(&mut msg).map_err(|e| CallError::Transport(format!("building {method}: {e}")))?;
        self.send(msg)
    }

    /// The connection, for waiting on signals.
    pub fn conn_mut(&mut self) -> &mut RpcConn {
        &mut self.conn
    }
}

/// Why the private socket was not used.
enum Direct {
    /// It cannot be reached: fall back to the system bus.
    Unreachable(anyhow::Error),
    /// Reached, but its peer is not root: systemd refuses such a manager, so do we.
    Untrusted(anyhow::Error),
}

/// The private socket, if its peer is root (or ourselves).
fn direct() -> Result<RpcConn, Direct> {
    let addr = nix::sys::socket::UnixAddr::new(PRIVATE_SOCKET)
        .map_err(|e| Direct::Unreachable(anyhow!("{PRIVATE_SOCKET}: {e}")))?;
    // A direct connection: authenticated, no Hello (there is no bus to greet).
    let conn = DuplexConn::connect_to_bus(addr, false).map_err(|e| {
        Direct::Unreachable(anyhow!("connecting to {PRIVATE_SOCKET}: {}", plain(e)))
    })?;
    let uid = crate::kernel::peer::peer_uid(conn.as_raw_fd())
        .with_context(|| format!("reading the peer credentials of {PRIVATE_SOCKET}"))
        .map_err(Direct::Untrusted)?;
    let me = rustix::process::geteuid().as_raw();
    if uid != 0 && uid != me {
        return Err(Direct::Untrusted(anyhow!(
            "the peer of {PRIVATE_SOCKET} runs as uid {uid}, not root"
        )));
    }
    let mut conn = RpcConn::new(conn);
    settle(&mut conn).map_err(Direct::Unreachable)?;
    Ok(conn)
}

/// How long to wait for each `Ping` of [`settle`]: a few milliseconds first, doubling up to
/// 250 ms, about 5 s in all. A stuck first ping is the common case (one more byte unblocks it), so
/// the second follows soon; a PID 1 that is merely slow gets longer waits, never a flood.
fn ping_waits() -> impl Iterator<Item = Duration> {
    let mut total = Duration::ZERO;
    let mut next = Duration::from_millis(5);
    std::iter::from_fn(move || {
        if total >= Duration::from_secs(5) {
            return None;
        }
        let wait = next;
        total += wait;
        next = (next * 2).min(Duration::from_millis(250));
        Some(wait)
    })
}

/// Wait until PID 1 answers on a fresh direct connection. Its sd-bus server can leave a message
/// that arrived in the same read as the handshake's BEGIN unprocessed until more bytes arrive
/// (seen with systemd 262: a Reload answered only when the client hung up), so a cheap
/// `org.freedesktop.DBus.Peer.Ping` is repeated until one is answered; each one sent is the
/// "more bytes" that gets the earlier ones processed. The waits grow ([`ping_waits`]): with a
/// fixed 250 ms, a stuck first ping cost a quarter of a second (measured in the boot benchmark:
/// the initrd's OEM mount step took 83–91 ms or 346–361 ms, nothing between).
fn settle(conn: &mut RpcConn) -> Result<()> {
    for wait in ping_waits() {
        let mut ping = MessageBuilder::new()
            .call("Ping")
            .with_interface("org.freedesktop.DBus.Peer")
            .on(PATH)
            .at(DESTINATION)
            .build();
        let serial = conn
            .send_message(&mut ping)
            .map_err(|e| anyhow!("pinging PID 1: {}", plain(e)))?
            .write_all()
            .map_err(force_finish_on_error)
            .map_err(|e| anyhow!("pinging PID 1: {}", plain(e)))?;
        match conn.wait_response(serial, Timeout::Duration(wait)) {
            Ok(_) => return Ok(()),
            Err(rustbus::connection::Error::TimedOut) => continue,
            Err(e) => bail!("pinging PID 1 over {PRIVATE_SOCKET}: {}", plain(e)),
        }
    }
    bail!("PID 1 does not answer on {PRIVATE_SOCKET}")
}

/// Connect to PID 1 to ask for `what`; method calls time out after `timeout`.
pub fn connect(what: &str, timeout: Duration) -> Result<Manager> {
    let mut tried = String::new();
    if rustix::process::geteuid().is_root() {
        match direct() {
            Ok(conn) => {
                return Ok(Manager {
                    conn,
                    via: "PID 1's private socket",
                    bus: false,
                    timeout,
                })
            }
            Err(Direct::Untrusted(e)) => return Err(e),
            Err(Direct::Unreachable(e)) => {
                tracing::debug!(
                    "Cannot use PID 1's private socket ({e:#}), trying the system bus."
                );
                tried = format!("{e:#}; ");
            }
        }
    }
    match RpcConn::system_conn(Timeout::Duration(timeout)) {
        Ok(conn) => Ok(Manager {
            conn,
            via: "the system bus",
            bus: true,
            timeout,
        }),
        Err(e) => bail!(
            "cannot reach the service manager (PID 1) to ask for {what}: {tried}connecting to the \
             system bus: {}; is this system running systemd?",
            plain(e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5, 10, 20, 40, 80, 160 ms, then 250 ms each: about 5 s before PID 1 counts as not
    /// answering, as with the earlier 20 × 250 ms.
    #[test]
    fn pings_are_repeated_soon_then_less_often_for_about_five_seconds() {
        let waits: Vec<u64> = ping_waits().map(|d| d.as_millis() as u64).collect();
        assert_eq!(waits[..8], [5, 10, 20, 40, 80, 160, 250, 250]);
        assert!(waits[6..].iter().all(|w| *w == 250));
        let total: u64 = waits.iter().sum();
        assert!((5000..5250).contains(&total), "{total} ms");
    }
}
