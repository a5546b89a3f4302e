//! Settings the whole process takes before anything is bound or started:
//! `--umask` and `--max-fd` (uWSGI's `umask`, applied as the option is
//! read, and `max-fd`, applied before the sockets are bound). They are
//! applied here, while the process has one thread, so the master, the
//! sockets it creates and every worker it forks inherit them.

use super::Cli;

/// Applies `--umask` and `--max-fd`; returns warnings for what could not
/// be applied (uWSGI logs a failed `setrlimit` and goes on, and so does
/// rwsgi).
pub(crate) fn apply(cli: &Cli) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(mask) = cli.umask.as_deref() {
        // Checked by the option's parser.
        if let Ok(mask) = u32::from_str_radix(mask, 8) {
            // SAFETY: umask only swaps the process's mask.
            unsafe { libc::umask(mask as libc::mode_t) };
        }
    }
    if let Some(n) = cli.max_fd {
        let limit = libc::rlimit {
            rlim_cur: n as libc::rlim_t,
            rlim_max: n as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            let e = std::io::Error::last_os_error();
            warnings.push(format!(
                "--max-fd {n}: cannot set the open-file limit ({e}); it stays {}",
                open_file_limit().map_or("unknown".into(), |l| l.to_string())
            ));
        }
    }
    warnings
}

/// The current soft open-file limit.
pub(crate) fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
}
