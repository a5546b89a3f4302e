//! What the command line accepts, read from clap's own `Command`, so that
//! configuration files, `RWSGI_*` variables and the command line share one
//! list of options, one set of value parsers and one set of defaults.

use std::collections::HashMap;

use clap::{ArgAction, Command, CommandFactory};

use super::Cli;

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--vacuum`: on or off.
    Flag,
    /// `--processes 4`: one value; the last one given wins.
    Value,
    /// `--chmod-socket [MODE]`: one value, which may be left out.
    OptionalValue,
    /// `--pythonpath DIR`: repeatable; every value counts.
    Multi,
}

/// One rwsgi option.
#[derive(Debug, Clone)]
pub(crate) struct OptSpec {
    /// clap's id (the `Cli` field name).
    pub id: String,
    /// The long name, without dashes.
    pub long: String,
    pub kind: Kind,
    /// The default, as `--help` shows it.
    pub default: Option<String>,
    /// Ids of the options it cannot be combined with.
    pub conflicts: Vec<String>,
}

/// Options only the command line (or `RWSGI_*`) may give: they say which
/// files to read and how, so a file cannot set them.
pub(crate) const LOADER_OPTIONS: [&str; 3] = ["ini", "config", "check-config"];

/// Every option of [`Cli`], by long name and alias.
pub(crate) struct OptionTable {
    cmd: Command,
    specs: Vec<OptSpec>,
    by_name: HashMap<String, usize>,
}

impl OptionTable {
    /// Reads the options from the `Cli` definition.
    pub fn new() -> OptionTable {
        let mut cmd = Cli::command().args_override_self(true);
        cmd.build();
        let mut specs = Vec::new();
        let mut by_name = HashMap::new();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let kind = match arg.get_action() {
                ArgAction::SetTrue => Kind::Flag,
                ArgAction::Append => Kind::Multi,
                ArgAction::Set if arg.get_num_args().is_some_and(|n| n.min_values() == 0) => {
                    Kind::OptionalValue
                }
                ArgAction::Set => Kind::Value,
                _ => continue, // --help, --version
            };
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            let conflicts = cmd
                .get_arg_conflicts_with(arg)
                .iter()
                .map(|a| a.get_id().to_string())
                .collect();
            let index = specs.len();
            specs.push(OptSpec {
                id: arg.get_id().to_string(),
                long: long.to_string(),
                kind,
                default,
                conflicts,
            });
            by_name.insert(long.to_string(), index);
            for alias in arg.get_all_aliases().unwrap_or_default() {
                by_name.insert(alias.to_string(), index);
            }
        }
        // clap records a conflict on the side that declared it; both ways
        // count here.
        let pairs: Vec<(usize, String)> = specs
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.conflicts.iter().map(move |c| (i, c.clone())))
            .collect();
        for (i, other) in pairs {
            let id = specs[i].id.clone();
            if let Some(spec) = specs.iter_mut().find(|s| s.id == other) {
                if !spec.conflicts.contains(&id) {
                    spec.conflicts.push(id);
                }
            }
        }
        OptionTable {
            cmd,
            specs,
            by_name,
        }
    }

    /// The option called `name` (long name or alias, `_` read as `-`).
    pub fn lookup(&self, name: &str) -> Option<&OptSpec> {
        let name = name.replace('_', "-");
        self.by_name.get(&name).map(|&i| &self.specs[i])
    }

    /// Every option.
    pub fn specs(&self) -> &[OptSpec] {
        &self.specs
    }

    /// The clap command the final arguments are parsed with (a repeated
    /// single-valued option overrides itself: the last one wins).
    pub fn command(&self) -> Command {
        self.cmd.clone()
    }

    /// Checks `value` with the option's own value parser; the error is
    /// clap's message ("invalid digit found in string"...).
    pub fn check_value(&self, spec: &OptSpec, value: &str) -> Result<(), String> {
        // Its parser takes any string (the sockets code reads the mode);
        // a config file deserves the check before anything starts.
        if spec.long == "chmod-socket"
            && !u32::from_str_radix(value, 8).is_ok_and(|mode| mode <= 0o7777)
        {
            return Err(format!("{value:?} is not an octal mode like 660"));
        }
        self.cmd
            .clone()
            .try_get_matches_from(["rwsgi".to_string(), format!("--{}={value}", spec.long)])
            .map(|_| ())
            .map_err(|e| clap_message(&e))
    }
}

/// The first line of a clap error, without its `error: ` prefix.
pub(crate) fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// A uWSGI-style boolean: `true/false`, `yes/no`, `on/off`, `1/0`; an
/// empty value means true. `None` for anything else.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_cli_definition() {
        let table = OptionTable::new();
        assert_eq!(table.lookup("processes").unwrap().kind, Kind::Value);
        assert_eq!(table.lookup("workers").unwrap().long, "processes");
        assert_eq!(table.lookup("vacuum").unwrap().kind, Kind::Flag);
        assert_eq!(table.lookup("pythonpath").unwrap().kind, Kind::Multi);
        assert_eq!(
            table.lookup("chmod_socket").unwrap().kind,
            Kind::OptionalValue
        );
        assert_eq!(table.lookup("socket").unwrap().long, "uwsgi-socket");
        assert!(table.lookup("help").is_none());
        let module = table.lookup("module").unwrap();
        assert!(module.conflicts.contains(&"wsgi_file".to_string()));
    }

    #[test]
    fn values_are_checked_by_the_option_parser() {
        let table = OptionTable::new();
        let processes = table.lookup("processes").unwrap();
        assert!(table.check_value(processes, "4").is_ok());
        let err = table.check_value(processes, "four").unwrap_err();
        assert!(err.contains("invalid value 'four'"), "{err}");
        assert!(table.check_value(processes, "0").is_err());
        let chmod = table.lookup("chmod-socket").unwrap();
        assert!(table.check_value(chmod, "664").is_ok());
        assert!(table.check_value(chmod, "rw-rw-r--").is_err());
    }

    #[test]
    fn booleans_read_like_uwsgi() {
        for yes in ["true", "True", "yes", "on", "1", ""] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "no", "OFF", "0"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
