//! Process titles (`rwsgi master`, `rwsgi worker 3`) so `ps` shows the tree.
//! Sets the thread name (`comm`, shown by top) and rewrites the argv area
//! the kernel reports as `/proc/self/cmdline` (shown by `ps aux`).

use std::sync::OnceLock;

/// What the operator asked process titles to be (uWSGI's `procname`
/// options): [`set`] applies it to every title.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Before every title (`--procname-prefix`, with its space for
    /// `--procname-prefix-spaced`).
    pub prefix: String,
    /// After every title (`--procname-append`).
    pub append: String,
    /// Instead of every title (`--procname`).
    pub all: Option<String>,
    /// Instead of the master's title (`--procname-master`).
    pub master: Option<String>,
}

static NAMES: OnceLock<Names> = OnceLock::new();

/// Sets how titles are named; call once, before the first [`set`].
pub fn configure(names: Names) {
    let _ = NAMES.set(names);
}

/// `title` as the operator's names decorate it. The master is the title
/// `rwsgi master`; as in uWSGI, `procname-master` wins over `procname`.
fn decorate(title: &str) -> String {
    let Some(names) = NAMES.get() else {
        return title.to_string();
    };
    let master = names.master.as_deref().filter(|_| title == "rwsgi master");
    let base = master.or(names.all.as_deref()).unwrap_or(title);
    format!("{}{base}{}", names.prefix, names.append)
}

/// Sets this process's title to `title` (decorated as [`configure`] says).
pub fn set(title: &str) {
    let title = &decorate(title);
    let comm =
        std::ffi::CString::new(title.chars().take(15).collect::<String>()).unwrap_or_default();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
    if let Some((start, end)) = argv_area() {
        let len = end - start;
        if len < 2 {
            return;
        }
        let bytes = title.as_bytes();
        let n = bytes.len().min(len - 1);
        // SAFETY: [start, end) is this process's own argv block (from
        // /proc/self/stat), mapped and writable; we stay inside it. The
        // program no longer reads argv (clap parsed it at startup).
        unsafe {
            let area = std::slice::from_raw_parts_mut(start as *mut u8, len);
            area[..n].copy_from_slice(&bytes[..n]);
            area[n..].fill(0);
        }
    }
}

/// The argv block's bounds, fields 48 and 49 of `/proc/self/stat`.
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // `after` starts at field 3.
    let start: usize = fields.get(48 - 3)?.parse().ok()?;
    let end: usize = fields.get(49 - 3)?.parse().ok()?;
    (end > start).then_some((start, end))
}
