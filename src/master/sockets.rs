//! The master's listening sockets: bound from the command line, or
//! inherited from systemd socket activation (`LISTEN_FDS`), then given their
//! mode and owner (`--chmod-socket`, `--chown-socket`). Workers inherit
//! them through fork.

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::config::Cli;
use crate::protocol::Protocol;
use crate::server::listener::{bind, BoundSocket, ListenAddr, ListenSpec};

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The listeners and what to clean up on exit.
pub struct Sockets {
    /// Each listener with its bound socket.
    pub listeners: Vec<(ListenSpec, BoundSocket)>,
    /// Unix socket files this process created (removed by `--vacuum`).
    pub created_files: Vec<PathBuf>,
}

/// Opens every listener: the inherited ones if systemd passed any, else
/// the ones the command line names.
pub fn open(cli: &Cli) -> Result<Sockets, String> {
    if let Some(inherited) = inherited_from_systemd(cli)? {
        return Ok(Sockets {
            listeners: inherited,
            created_files: Vec::new(),
        });
    }
    let mut listeners = Vec::new();
    let mut created_files = Vec::new();
    for spec in cli.listeners() {
        let socket = bind(&spec, cli.listen, !cli.no_defer_accept)
            .map_err(|e| format!("cannot bind {spec}: {e}"))?;
        if let ListenAddr::Unix(path) = &spec.addr {
            apply_mode_and_owner(path, cli)?;
            created_files.push(path.clone());
        }
        listeners.push((spec, socket));
    }
    Ok(Sockets {
        listeners,
        created_files,
    })
}

/// `--chmod-socket` and `--chown-socket` on a Unix socket file.
fn apply_mode_and_owner(path: &std::path::Path, cli: &Cli) -> Result<(), String> {
    if let Some(mode) = &cli.chmod_socket {
        let bits = u32::from_str_radix(mode, 8)
            .map_err(|_| format!("--chmod-socket {mode:?} is not an octal mode like 660"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    }
    if let Some(owner) = &cli.chown_socket {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        let uid = super::privileges::lookup_user(user)?;
        let gid = group.map(super::privileges::lookup_group).transpose()?;
        std::os::unix::fs::chown(path, Some(uid), gid)
            .map_err(|e| format!("cannot chown {} to {owner}: {e}", path.display()))?;
    }
    Ok(())
}

/// Sockets passed by systemd: `LISTEN_PID` must be this process and
/// `LISTEN_FDS` says how many fds from 3 on. Each one's protocol comes from
/// its name (`LISTEN_FDNAMES`, e.g. `http`, `app-uwsgi`) or `--protocol`.
fn inherited_from_systemd(cli: &Cli) -> Result<Option<Vec<(ListenSpec, BoundSocket)>>, String> {
    let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={count:?} is not a number"))?;
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    // Children must not take the variables as theirs.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let mut listeners = Vec::with_capacity(count);
    for i in 0..count {
        let fd = LISTEN_FDS_START + i as RawFd;
        let protocol = protocol_for(i, names.get(i).map(String::as_str), &cli.protocol)?;
        listeners.push(adopt(fd, protocol)?);
    }
    Ok(Some(listeners))
}

/// Decides the protocol of inherited socket number `index`.
fn protocol_for(index: usize, name: Option<&str>, flags: &[String]) -> Result<Protocol, String> {
    let by_name = |text: &str| {
        let text = text.to_ascii_lowercase();
        if text.contains("uwsgi") {
            Some(Protocol::Uwsgi)
        } else if text.contains("scgi") {
            Some(Protocol::Scgi)
        } else if text.contains("http") {
            Some(Protocol::Http)
        } else {
            None
        }
    };
    if let Some(p) = name.and_then(by_name) {
        return Ok(p);
    }
    let flag = match flags {
        [] => None,
        [one] => Some(one),
        many => many.get(index),
    };
    match flag {
        Some(f) => by_name(f).ok_or_else(|| format!("--protocol {f:?}: use http, uwsgi or scgi")),
        None => Err(format!(
            "inherited socket {} (fd {}) has no protocol: name it in the socket unit \
             (FileDescriptorName=http|uwsgi|scgi) or pass --protocol",
            index,
            LISTEN_FDS_START + index as RawFd
        )),
    }
}

/// Wraps a listening fd handed over by a previous master image, whose
/// protocol is given by name.
pub fn adopt_named(fd: RawFd, protocol: &str) -> Result<(ListenSpec, BoundSocket), String> {
    let protocol = protocol_for(0, Some(protocol), &[])?;
    adopt(fd, protocol)
}

/// Wraps an inherited listening fd, finding out whether it is TCP or Unix.
///
/// The fd is made close-on-exec: systemd and a reload's re-exec pass it
/// without, and a program the app runs must not get the listening socket
/// (only a reload's re-exec passes it on, and clears the flag itself).
fn adopt(fd: RawFd, protocol: Protocol) -> Result<(ListenSpec, BoundSocket), String> {
    // SAFETY: fcntl on an fd handed to us.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(format!("inherited fd {fd}: {}", io::Error::last_os_error()));
    }
    // SAFETY: sockaddr_storage is plain data; getsockname fills at most len.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: fd is ours (passed by systemd); storage and len are valid.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!(
            "inherited fd {fd} is not a socket: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is an open socket handed to us; we take ownership once.
    match i32::from(storage.ss_family) {
        libc::AF_UNIX => {
            let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            let path = listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(format!("fd{fd}")));
            let spec = ListenSpec {
                protocol,
                addr: ListenAddr::Unix(path.clone()),
            };
            Ok((spec, BoundSocket::Unix(listener, path)))
        }
        libc::AF_INET | libc::AF_INET6 => {
            let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            let addr = listener
                .local_addr()
                .map_err(|e| format!("inherited fd {fd}: {e}"))?;
            let spec = ListenSpec {
                protocol,
                addr: ListenAddr::Tcp(addr),
            };
            Ok((spec, BoundSocket::Tcp(listener)))
        }
        family => Err(format!(
            "inherited fd {fd} has unsupported address family {family}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_socket_protocol_comes_from_its_name_then_the_flag() {
        assert_eq!(
            protocol_for(0, Some("app-uwsgi"), &[]).unwrap(),
            Protocol::Uwsgi
        );
        assert_eq!(
            protocol_for(0, Some("http"), &["scgi".into()]).unwrap(),
            Protocol::Http
        );
        assert_eq!(
            protocol_for(1, Some("x"), &["scgi".into()]).unwrap(),
            Protocol::Scgi
        );
        assert_eq!(
            protocol_for(1, None, &["http".into(), "uwsgi".into()]).unwrap(),
            Protocol::Uwsgi
        );
        assert!(protocol_for(0, None, &[])
            .unwrap_err()
            .contains("FileDescriptorName"));
    }
}
