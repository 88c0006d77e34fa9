//! Reaching PID 1 as systemd's `bus_connect_system_systemd()` does: as root, its private socket
//! `/run/systemd/private` (a direct connection that works before dbus-daemon runs, and
//! systemd-sysext.service runs before sysinit.target), whose peer must be root; otherwise, or
//! when that socket cannot be used, the system bus.

use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use zbus::connection::Builder;
use zbus::Connection;

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

/// A connection to the service manager.
pub struct Manager {
    conn: Connection,
    /// How it was reached, for messages.
    pub via: &'static str,
}

impl Manager {
    /// Call `method` of `org.freedesktop.systemd1.Manager` with `body`.
    pub async fn call<B>(&self, method: &str, body: &B) -> zbus::Result<zbus::Message>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        self.conn
            .call_method(Some(DESTINATION), PATH, Some(MANAGER), method, body)
            .await
    }

    /// The connection, for signal streams.
    pub fn connection(&self) -> &Connection {
        &self.conn
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
async fn direct(timeout: Duration) -> Result<Connection, Direct> {
    let stream = UnixStream::connect(PRIVATE_SOCKET)
        .with_context(|| format!("connecting to {PRIVATE_SOCKET}"))
        .map_err(Direct::Unreachable)?;
    let cred = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(std::io::Error::from)
        .with_context(|| format!("reading the peer credentials of {PRIVATE_SOCKET}"))
        .map_err(Direct::Untrusted)?;
    if !cred.uid.is_root() && cred.uid != rustix::process::geteuid() {
        return Err(Direct::Untrusted(anyhow!(
            "the peer of {PRIVATE_SOCKET} runs as uid {}, not root",
            cred.uid.as_raw()
        )));
    }
    Builder::unix_stream(stream)
        .p2p()
        .method_timeout(timeout)
        .build()
        .await
        .with_context(|| format!("authenticating on {PRIVATE_SOCKET}"))
        .map_err(Direct::Unreachable)
}

/// Connect to PID 1 to ask for `what`; method calls time out after `timeout`.
pub async fn connect(what: &str, timeout: Duration) -> Result<Manager> {
    let mut tried = String::new();
    if rustix::process::geteuid().is_root() {
        match direct(timeout).await {
            Ok(conn) => {
                return Ok(Manager {
                    conn,
                    via: "PID 1's private socket",
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
    match Builder::system().method_timeout(timeout).build().await {
        Ok(conn) => Ok(Manager {
            conn,
            via: "the system bus",
        }),
        Err(e) => bail!(
            "cannot reach the service manager (PID 1) to ask for {what}: {tried}connecting to the \
             system bus: {e}; is this system running systemd? (--no-reload leaves the service \
             manager alone)"
        ),
    }
}
