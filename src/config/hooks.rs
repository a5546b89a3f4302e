//! uWSGI's hooks (`hook-asap = exec:...`, `exec-pre-app = CMD`...): an
//! action run at a point of the server's start, read into one [`Hook`].
//! Running them is `master::hooks`.
//!
//! The actions are uWSGI's base ones: `exec:CMD` (fails on a non-zero
//! exit), `safeexec:CMD` (never fails), `cd:` / `chdir:DIR`, `mkdir:DIR`,
//! `putenv:KEY=VALUE`, `unlink:FILE`, `create:FILE` / `creat:`,
//! `write:FILE TEXT`, `writen:` (with a newline), `append:`, `appendn:`,
//! `print:` / `log:TEXT`, `exit:[CODE]`; and `pycall:module.function`
//! (uWSGI's python plugin), which `call:` means too here: uWSGI's `call:`
//! calls a C symbol, which a Python server has no use for.

/// What a hook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    /// Run a command through `/bin/sh -c`; a non-zero exit fails.
    Exec,
    /// The same, never failing.
    SafeExec,
    Chdir,
    Mkdir,
    Putenv,
    Unlink,
    Create,
    /// `FILE TEXT`: truncate and write.
    Write,
    /// `FILE TEXT`: truncate and write, with a newline.
    WriteLine,
    /// `FILE TEXT`: append.
    Append,
    /// `FILE TEXT`: append, with a newline.
    AppendLine,
    /// Log the text.
    Print,
    /// Exit the process with the code.
    Exit,
    /// Call a Python callable, `module.function` (Python phases only).
    PyCall,
}

/// One hook: its action and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub action: HookAction,
    pub arg: String,
}

impl Hook {
    /// `action:argument`, as uWSGI writes hooks.
    pub fn parse(value: &str) -> Result<Hook, String> {
        let (name, arg) = value
            .split_once(':')
            .ok_or_else(|| format!("{value:?} is not ACTION:ARGUMENT (exec:CMD, mkdir:DIR...)"))?;
        let action = match name.trim().trim_start_matches('!') {
            "exec" => HookAction::Exec,
            "safeexec" => HookAction::SafeExec,
            "cd" | "chdir" => HookAction::Chdir,
            "mkdir" => HookAction::Mkdir,
            "putenv" => HookAction::Putenv,
            "unlink" => HookAction::Unlink,
            "create" | "creat" => HookAction::Create,
            "write" => HookAction::Write,
            "writen" => HookAction::WriteLine,
            "append" => HookAction::Append,
            "appendn" => HookAction::AppendLine,
            "print" | "log" => HookAction::Print,
            "exit" => HookAction::Exit,
            "pycall" | "call" => HookAction::PyCall,
            other => {
                return Err(format!(
                    "the hook action {other:?} is not supported (exec, safeexec, chdir, mkdir, putenv, unlink, create, write, writen, append, appendn, print, exit, pycall are)"
                ))
            }
        };
        let arg = arg.to_string();
        let needs_text = matches!(
            action,
            HookAction::Write | HookAction::WriteLine | HookAction::Append
        );
        if needs_text && !arg.contains(' ') {
            return Err(format!("{name}: expected 'FILE TEXT', got {arg:?}"));
        }
        if action == HookAction::Putenv && !arg.contains('=') {
            return Err(format!("putenv: expected KEY=VALUE, got {arg:?}"));
        }
        Ok(Hook { action, arg })
    }

    /// `exec-*` options: the value is the command.
    pub fn exec(command: &str) -> Result<Hook, String> {
        if command.trim().is_empty() {
            return Err("the command is empty".into());
        }
        Ok(Hook {
            action: HookAction::Exec,
            arg: command.to_string(),
        })
    }
}

/// The points of the server's start at which hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    /// First of all, before the sockets are bound.
    Asap,
    /// After binding, before privileges are dropped.
    AsRoot,
    /// Right after privileges are dropped.
    AsUser,
    /// Before the app is loaded (in the master, or each worker with
    /// --lazy-apps).
    PreApp,
    /// After the app is loaded, where it was loaded.
    PostApp,
    /// In each worker, right after it is forked.
    PostFork,
    /// When the master's loop starts.
    MasterStart,
}

impl HookPhase {
    /// uWSGI's name of the phase, for logs.
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::Asap => "asap",
            HookPhase::AsRoot => "as root",
            HookPhase::AsUser => "as user",
            HookPhase::PreApp => "pre app",
            HookPhase::PostApp => "post app",
            HookPhase::PostFork => "post fork",
            HookPhase::MasterStart => "master start",
        }
    }

    /// Whether Python is up in the process that runs the phase.
    pub fn has_python(self) -> bool {
        matches!(
            self,
            HookPhase::PreApp | HookPhase::PostApp | HookPhase::PostFork
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_action_colon_argument() {
        let hook = Hook::parse("exec:./manage.py migrate --noinput").unwrap();
        assert_eq!(hook.action, HookAction::Exec);
        assert_eq!(hook.arg, "./manage.py migrate --noinput");
        assert_eq!(Hook::parse("cd:/srv").unwrap().action, HookAction::Chdir);
        assert_eq!(
            Hook::parse("write:/tmp/x hello world").unwrap().arg,
            "/tmp/x hello world"
        );
        assert_eq!(
            Hook::parse("call:app.warm").unwrap().action,
            HookAction::PyCall
        );
        assert!(Hook::parse("no colon").is_err());
        assert!(Hook::parse("mount:/proc").is_err());
        assert!(Hook::parse("write:/tmp/x").is_err());
        assert!(Hook::parse("putenv:NOEQUALS").is_err());
        assert_eq!(Hook::exec("true").unwrap().action, HookAction::Exec);
    }
}
