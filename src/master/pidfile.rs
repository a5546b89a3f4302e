//! `--pidfile`: written once by the master as root, before it drops
//! privileges, so it must never be a way to write elsewhere. A symlink at
//! the path is refused (`O_NOFOLLOW`), and so is anything but a regular
//! file; an existing file is emptied only after that check.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Writes this process's pid to `path`.
pub fn write(path: &Path) -> Result<(), String> {
    let refuse = |why: &str| format!("refusing to write pidfile {}: {why}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        // O_NONBLOCK: opening a FIFO planted at the path must not hang.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse("it is a symbolic link"),
            _ => format!("cannot write pidfile {}: {e}", path.display()),
        })?;
    let kind = file
        .metadata()
        .map_err(|e| format!("cannot write pidfile {}: {e}", path.display()))?
        .file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else {
            "not a regular file"
        };
        return Err(refuse(what));
    }
    let written: io::Result<()> = file
        .set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
    written.map_err(|e| format!("cannot write pidfile {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rwsgi-pidfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_existing_pidfile_is_replaced_by_this_pid() {
        let dir = temp("replace");
        let path = dir.join("x.pid");
        std::fs::write(&path, "123456789 and more\n").unwrap();
        write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_at_the_pidfile_path_is_refused() {
        let dir = temp("dir");
        let e = write(&dir).unwrap_err();
        assert!(e.contains(dir.to_str().unwrap()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
