//! The master's signals and process-status plumbing: signals are blocked
//! and taken synchronously with `sigtimedwait` (no handler, no thread), and
//! systemd is told about state changes (`sd_notify`).

use std::path::PathBuf;
use std::time::Duration;

/// The signals the master takes synchronously.
pub(super) fn master_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGCHLD,
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGUSR1,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

pub(super) fn block_signals() {
    let set = master_signals();
    // SAFETY: blocking signals in a single-threaded process.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Unblocks every signal on this thread (a worker's, once its handlers are
/// installed: signals sent meanwhile are delivered now).
pub(in crate::master) fn unblock_signals() {
    // SAFETY: an empty mask; the worker installs its own handlers.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Waits up to `timeout` for one of the master's signals.
pub(super) fn wait_signal(timeout: Duration) -> Option<i32> {
    let set = master_signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; the info pointer may be null.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

pub(super) fn signal(pid: libc::pid_t, sig: i32) {
    // SAFETY: signalling one of our own children by pid.
    unsafe { libc::kill(pid, sig) };
}

/// "exited with code N" / "was killed by signal SIGKILL".
pub(super) fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = match sig {
            libc::SIGKILL => "SIGKILL (out of memory, or killed)".to_string(),
            libc::SIGSEGV => "SIGSEGV (a crash in native code)".to_string(),
            libc::SIGABRT => "SIGABRT".to_string(),
            libc::SIGBUS => "SIGBUS".to_string(),
            libc::SIGTERM => "SIGTERM".to_string(),
            other => format!("signal {other}"),
        };
        format!("was killed by {name}")
    } else {
        format!("ended with status {status}")
    }
}

/// Tells systemd about state changes when it asked (`NOTIFY_SOCKET`).
pub(super) fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let bytes = path.as_encoded_bytes();
    let result = if bytes.first() == Some(&b'@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), PathBuf::from(path))
    };
    if let Err(e) = result {
        tracing::debug!("sd_notify {state}: {e}");
    }
}
