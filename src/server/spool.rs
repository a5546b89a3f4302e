//! Where request bodies wait before the app runs: in memory, within a
//! per-worker budget, or in an unlinked temporary file.
//!
//! A body is read whole before the app is called (uWSGI's
//! `post-buffering`), so a client that sends slowly holds a connection,
//! never a Python thread. Small bodies stay in memory; a body larger than
//! `--post-buffering`, or one the worker's memory budget cannot take, is
//! written to a temporary file as it arrives and fed to `wsgi.input` from
//! there. The file is written on the I/O thread, as nginx writes its
//! client-body temp files from its event loop: writes go to the page
//! cache and return at once.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};

/// Most bytes handed to the app in one piece of a spooled body.
const PIECE: usize = 64 * 1024;

/// The bytes of request bodies a worker holds in memory at once, across
/// all its connections (`--body-memory`). A body is charged its declared
/// length before it is read (so 10,000 connections each declaring a
/// megabyte cannot reserve ten gigabytes) and released when its request
/// ends; a body that does not fit goes to a temporary file instead.
#[derive(Debug)]
pub struct BodyBudget {
    /// Bytes charged now.
    used: AtomicUsize,
    /// Most bytes that may be charged at once.
    cap: usize,
}

impl BodyBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        BodyBudget {
            used: AtomicUsize::new(0),
            cap,
        }
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A charge of nothing yet, to [`Charge::grow`] as bytes arrive.
    pub fn nothing(&self) -> Charge<'_> {
        Charge {
            budget: self,
            bytes: 0,
        }
    }

    /// Charges `bytes`, or `None` when they would take the budget over.
    pub fn charge(&self, bytes: usize) -> Option<Charge<'_>> {
        let mut charge = self.nothing();
        charge.grow(bytes).then_some(charge)
    }
}

/// Bytes charged to a [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a BodyBudget,
    bytes: usize,
}

impl Charge<'_> {
    /// Charges `more` bytes on top; false (and nothing charged) when they
    /// would take the budget over.
    pub fn grow(&mut self, more: usize) -> bool {
        let budget = self.budget;
        let taken = budget
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(more).filter(|&total| total <= budget.cap)
            });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        if self.bytes != 0 {
            self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

/// A request body in an unlinked temporary file: written as it arrives,
/// then read back in pieces for the app.
#[derive(Debug)]
pub struct Spool {
    file: File,
    /// Bytes written.
    len: u64,
    /// Bytes not yet read back.
    left: u64,
}

impl Spool {
    /// A new, empty spool file in `dir` (the system's temporary directory
    /// when `None`), never visible by name.
    pub fn create(dir: Option<&Path>) -> io::Result<Spool> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let file = anonymous_file(&dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot make a temporary file in {}: {e}", dir.display()),
            )
        })?;
        Ok(Spool {
            file,
            len: 0,
            left: 0,
        })
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends writing: reading starts from the first byte.
    pub fn rewind(&mut self) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.left = self.len;
        Ok(())
    }

    /// The next piece read back, `None` at the end.
    pub fn next_piece(&mut self) -> io::Result<Option<Bytes>> {
        if self.left == 0 {
            return Ok(None);
        }
        let want = (self.left as usize).min(PIECE);
        let mut piece = BytesMut::zeroed(want);
        self.file.read_exact(&mut piece)?;
        self.left -= want as u64;
        Ok(Some(piece.freeze()))
    }
}

/// An open file in `dir` that no name leads to: `O_TMPFILE` where the
/// file system has it, else a fresh name removed at once.
fn anonymous_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::ffi::OsStrExt;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: a valid C string; the descriptor returned is owned below.
    let fd = unsafe {
        libc::open(
            c_dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd >= 0 {
        // SAFETY: a descriptor just opened and owned by nothing else.
        return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let err = io::Error::last_os_error();
    if !matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::ENOENT | libc::EINVAL)
    ) || !dir.is_dir()
    {
        return Err(err);
    }
    named_then_removed(dir)
}

/// The fallback of [`anonymous_file`]: a new file with an unused name,
/// unlinked as soon as it is open.
fn named_then_removed(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path: PathBuf = dir.join(format!("rwsgi-body-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_charges_up_to_its_cap_and_takes_back_what_drops() {
        let budget = BodyBudget::new(100);
        let a = budget.charge(60).unwrap();
        assert!(budget.charge(41).is_none(), "over the cap");
        let mut b = budget.charge(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(!b.grow(1));
        drop(a);
        assert!(b.grow(60));
        assert_eq!(budget.used(), 100);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_spool_gives_back_what_was_written_in_pieces_and_has_no_name() {
        let dir = std::env::temp_dir().join(format!("rwsgi-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spool = Spool::create(Some(&dir)).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(7_000) {
            spool.write(part).unwrap();
        }
        assert_eq!(spool.len(), data.len() as u64);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "a visible file"
        );
        spool.rewind().unwrap();
        let mut back = Vec::new();
        while let Some(piece) = spool.next_piece().unwrap() {
            assert!(piece.len() <= PIECE);
            back.extend_from_slice(&piece);
        }
        assert_eq!(back, data);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn the_fallback_file_is_removed_at_once() {
        let dir = std::env::temp_dir().join(format!("rwsgi-spool-named-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = named_then_removed(&dir).unwrap();
        file.write_all(b"body").unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }
}
