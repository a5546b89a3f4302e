//! Dropping root after the sockets are bound (`--uid`, `--gid`), and name
//! lookups for users and groups.
//!
//! Names resolve through NSS (`getpwnam_r` / `getgrnam_r`), so users from
//! LDAP or sssd work as they do for every other tool. A dropped process
//! keeps none of root's groups: it takes the user's primary group (unless
//! `--gid` names one) and the user's own supplementary groups, and the drop
//! is checked before anything else runs.

use std::ffi::{CStr, CString};
use std::io;

/// A user from the passwd database (or a bare numeric uid).
struct User {
    uid: libc::uid_t,
    /// The primary group; None for a numeric uid with no passwd entry.
    gid: Option<libc::gid_t>,
    /// The login name `initgroups` reads the supplementary groups of.
    name: Option<CString>,
}

/// A user name or numeric uid to a uid.
pub fn lookup_user(user: &str) -> Result<u32, String> {
    resolve_user(user).map(|u| u.uid)
}

/// A group name or numeric gid to a gid.
pub fn lookup_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = CString::new(group).map_err(|_| format!("bad group name {group:?}"))?;
    let found = with_buffer(|buf| {
        // SAFETY: group is plain data; getgrnam_r writes the entry's
        // strings into buf (at most buf.len() bytes) and the result pointer.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(entry.gr_gid))
    })
    .map_err(|e| format!("cannot look up group {group:?}: {e}"))?;
    found.ok_or_else(|| format!("no such group {group:?}"))
}

/// Finds `user` (a name, or a uid that may or may not have an entry).
fn resolve_user(user: &str) -> Result<User, String> {
    let by_uid: Option<libc::uid_t> = user.parse().ok();
    let name = CString::new(user).map_err(|_| format!("bad user name {user:?}"))?;
    let found = with_buffer(|buf| {
        // SAFETY: as in lookup_group, with getpwnam_r / getpwuid_r.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            match by_uid {
                Some(uid) => {
                    libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut result)
                }
                None => libc::getpwnam_r(
                    name.as_ptr(),
                    &mut entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                ),
            }
        };
        let user = (!result.is_null()).then(|| User {
            uid: entry.pw_uid,
            gid: Some(entry.pw_gid),
            // SAFETY: pw_name points into buf, NUL-terminated.
            name: Some(unsafe { CStr::from_ptr(entry.pw_name) }.to_owned()),
        });
        (rc, user)
    })
    .map_err(|e| format!("cannot look up user {user:?}: {e}"))?;
    match (found, by_uid) {
        (Some(u), _) => Ok(u),
        (None, Some(uid)) => Ok(User {
            uid,
            gid: None,
            name: None,
        }),
        (None, None) => Err(format!("no such user {user:?}")),
    }
}

/// Runs a `get*_r` lookup with a buffer that grows while it reports ERANGE.
fn with_buffer<T>(mut lookup: impl FnMut(&mut [libc::c_char]) -> (i32, T)) -> io::Result<T> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match lookup(&mut buf) {
            (0, found) => return Ok(found),
            // Not found is reported as one of these by some NSS modules.
            (libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM, found) => return Ok(found),
            (libc::ERANGE, _) if size < 1 << 20 => size *= 2,
            (rc, _) => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// Switches to `gid` then `uid` (group first: after setuid we could not).
///
/// With `--uid` alone the group is the user's primary group; the
/// supplementary groups are the user's own (`initgroups`), never root's.
/// Refuses to go on if root could be taken back afterwards.
pub fn drop_to(uid: Option<&str>, gid: Option<&str>) -> Result<(), String> {
    let user = uid.map(resolve_user).transpose()?;
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return already_there(user.as_ref().map(|u| u.uid), gid);
    }
    let group = match (gid, &user) {
        (Some(group), _) => Some((group.to_string(), lookup_group(group)?)),
        (None, Some(u)) => {
            let gid = u.gid.ok_or_else(|| {
                format!(
                    "--uid {} has no passwd entry, so no primary group: pass --gid too",
                    u.uid
                )
            })?;
            Some((gid.to_string(), gid))
        }
        (None, None) => None,
    };
    if let Some((label, gid)) = &group {
        set_groups(user.as_ref().and_then(|u| u.name.as_deref()), *gid)
            .map_err(|e| format!("cannot switch to group {label}: {e}"))?;
    }
    if let Some(u) = &user {
        // SAFETY: plain syscall.
        if unsafe { libc::setuid(u.uid) } != 0 {
            return Err(format!(
                "cannot switch to user {}: {}",
                uid.unwrap_or_default(),
                io::Error::last_os_error()
            ));
        }
    }
    check_dropped(user.map(|u| u.uid), group.map(|(_, g)| g))
}

/// Without root nothing can be switched: fine if the asked ids are the
/// ones this process has (a unit that starts rwsgi as that user already).
fn already_there(uid: Option<libc::uid_t>, gid: Option<&str>) -> Result<(), String> {
    let gid = gid.map(lookup_group).transpose()?;
    // SAFETY: plain syscalls without pointers.
    let (ruid, rgid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid.is_some_and(|u| u != ruid) || gid.is_some_and(|g| g != rgid) {
        return Err(format!(
            "--uid/--gid need root to switch (running as uid {ruid}, gid {rgid})"
        ));
    }
    Ok(())
}

/// Supplementary groups (the user's, or just `gid`), then the group itself.
fn set_groups(user: Option<&CStr>, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: plain syscalls; name is a valid C string.
    let rc = unsafe {
        match user {
            Some(name) => libc::initgroups(name.as_ptr(), gid),
            None => libc::setgroups(1, &gid),
        }
    };
    // SAFETY: plain syscall.
    if rc != 0 || unsafe { libc::setgid(gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Verifies the drop took: the ids are the asked ones, and root's cannot be
/// taken back (a saved set-user-ID of 0 would allow it).
fn check_dropped(uid: Option<libc::uid_t>, gid: Option<libc::gid_t>) -> Result<(), String> {
    // SAFETY: plain syscalls without pointers.
    let (ruid, euid, rgid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if let Some(uid) = uid {
        if ruid != uid || euid != uid {
            return Err(format!("dropping to uid {uid} left uid {ruid}/{euid}"));
        }
        // SAFETY: plain syscall; it must fail.
        if uid != 0 && unsafe { libc::setuid(0) } == 0 {
            return Err(format!(
                "after dropping to uid {uid}, setuid(0) still succeeds: refusing to run"
            ));
        }
    }
    if let Some(gid) = gid {
        if rgid != gid || egid != gid {
            return Err(format!("dropping to gid {gid} left gid {rgid}/{egid}"));
        }
        // SAFETY: plain syscall; once uid is not root it must fail.
        if gid != 0 && uid.is_some_and(|u| u != 0) && unsafe { libc::setgid(0) } == 0 {
            return Err(format!(
                "after dropping to gid {gid}, setgid(0) still succeeds: refusing to run"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_by_name_and_number() {
        assert_eq!(lookup_user("root").unwrap(), 0);
        assert_eq!(lookup_user("4242").unwrap(), 4242);
        assert_eq!(lookup_group("0").unwrap(), 0);
        assert_eq!(lookup_group("root").unwrap(), 0);
        let root = resolve_user("0").unwrap();
        assert_eq!(root.gid, Some(0));
        assert_eq!(root.name.as_deref(), Some(c"root"));
    }

    #[test]
    fn unknown_names_are_errors_that_name_them() {
        let e = lookup_user("no-such-user-rwsgi").unwrap_err();
        assert!(e.contains("no-such-user-rwsgi"), "{e}");
        let e = lookup_group("no-such-group-rwsgi").unwrap_err();
        assert!(e.contains("no-such-group-rwsgi"), "{e}");
    }

    #[test]
    fn a_numeric_uid_without_an_entry_has_no_primary_group() {
        let u = resolve_user("3999999").unwrap();
        assert_eq!((u.uid, u.gid), (3_999_999, None));
        assert!(u.name.is_none());
    }
}
