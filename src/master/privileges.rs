//! Dropping root after the sockets are bound (`--uid`, `--gid`), and name
//! lookups for users and groups.

use std::ffi::CString;

/// A user name or numeric uid to a uid.
pub fn lookup_user(user: &str) -> Result<u32, String> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    let name = CString::new(user).map_err(|_| format!("bad user name {user:?}"))?;
    // SAFETY: getpwnam returns a pointer to static storage or NULL; we read
    // one field before any other call.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(format!("no such user {user:?}"));
    }
    // SAFETY: non-null pointer from getpwnam.
    Ok(unsafe { (*entry).pw_uid })
}

/// A group name or numeric gid to a gid.
pub fn lookup_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = CString::new(group).map_err(|_| format!("bad group name {group:?}"))?;
    // SAFETY: as in lookup_user.
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(format!("no such group {group:?}"));
    }
    // SAFETY: non-null pointer from getgrnam.
    Ok(unsafe { (*entry).gr_gid })
}

/// Switches to `gid` then `uid` (group first: after setuid we could not).
pub fn drop_to(uid: Option<&str>, gid: Option<&str>) -> Result<(), String> {
    if let Some(group) = gid {
        let gid = lookup_group(group)?;
        // SAFETY: plain syscalls with integer arguments.
        unsafe {
            if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 {
                return Err(format!(
                    "cannot switch to group {group}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    if let Some(user) = uid {
        let uid = lookup_user(user)?;
        // SAFETY: plain syscall.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(format!(
                "cannot switch to user {user}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
