//! Runs uWSGI's hooks (see `config::hooks`) at their phase, in order,
//! logging each as uWSGI does (`running "exec:..." (pre app)...`). A hook
//! that fails is fatal, as in uWSGI: the caller stops the server.

use std::io::Write;
use std::process::Command;

use crate::config::{Hook, HookAction, HookPhase};

/// Runs `hooks` of `phase`; the first failure, described.
pub fn run(hooks: &[Hook], phase: HookPhase) -> Result<(), String> {
    for hook in hooks {
        tracing::info!("running {:?} ({})", describe(hook), phase.name());
        if hook.action == HookAction::PyCall && !phase.has_python() {
            return Err(format!(
                "hook {}: pycall runs only in the pre-app, post-app and post-fork phases, where Python is up",
                describe(hook)
            ));
        }
        one(hook).map_err(|e| format!("hook {} ({}) failed: {e}", describe(hook), phase.name()))?;
    }
    Ok(())
}

fn describe(hook: &Hook) -> String {
    format!("{:?}:{}", hook.action, hook.arg).to_lowercase()
}

fn one(hook: &Hook) -> Result<(), String> {
    let arg = hook.arg.as_str();
    let io = |e: std::io::Error| e.to_string();
    match hook.action {
        HookAction::Exec | HookAction::SafeExec => {
            let status = Command::new("/bin/sh")
                .arg("-c")
                .arg(arg)
                .stdin(std::process::Stdio::null())
                .status()
                .map_err(io)?;
            if !status.success() {
                let why = format!("command {arg:?} exited with {status}");
                if hook.action == HookAction::Exec {
                    return Err(why);
                }
                tracing::warn!("{why} (safeexec: going on)");
            }
            Ok(())
        }
        HookAction::Chdir => std::env::set_current_dir(arg).map_err(io),
        HookAction::Mkdir => std::fs::create_dir(arg).map_err(io),
        HookAction::Putenv => {
            let (key, value) = arg.split_once('=').ok_or("expected KEY=VALUE")?;
            // Hooks run while the process has one thread (or under the GIL
            // before Python starts any).
            std::env::set_var(key, value);
            Ok(())
        }
        HookAction::Unlink => std::fs::remove_file(arg).map_err(io),
        HookAction::Create => std::fs::File::create(arg).map(drop).map_err(io),
        HookAction::Write | HookAction::WriteLine | HookAction::Append | HookAction::AppendLine => {
            let (path, text) = arg.split_once(' ').unwrap_or((arg, ""));
            let append = matches!(hook.action, HookAction::Append | HookAction::AppendLine);
            let newline = matches!(hook.action, HookAction::WriteLine | HookAction::AppendLine);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(path)
                .map_err(io)?;
            // One write: hooks of several workers may append to one file.
            let line = if newline {
                format!("{text}\n")
            } else {
                text.to_string()
            };
            file.write_all(line.as_bytes()).map_err(io)
        }
        HookAction::Print => {
            tracing::info!("{arg}");
            Ok(())
        }
        HookAction::Exit => {
            let code = arg.trim().parse().unwrap_or(0);
            tracing::info!("exit hook: leaving with code {code}");
            std::process::exit(code)
        }
        HookAction::PyCall => crate::wsgi::interpreter::call_hook(arg),
    }
}
