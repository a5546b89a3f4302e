//! uWSGI's cron entries (`cron`, `unique-cron`, `cron2`), read into one
//! [`CronSpec`], and when an entry is due.
//!
//! - `cron = MINUTE HOUR DAY MONTH WEEKDAY COMMAND`: `-1` is any; `-N` is
//!   every N (the field's value divisible by N, as `*/N` in crontab);
//!   other values must be equal. Weekday 0 and 7 are Sunday. When both day
//!   and weekday are set, either may match, as in crontab.
//! - `unique-cron`: the same, never two runs of the entry at once.
//! - `cron2 = key=value,... COMMAND`: keys `minute`, `hour`, `day`,
//!   `month`, `week`, `unique`, `harakiri` (seconds a run may take before
//!   it is killed; 0 turns `--cron-harakiri` off for the entry).

/// One cron entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    /// Minute, hour, day of month, month, weekday (uWSGI's numbers).
    pub minute: i32,
    pub hour: i32,
    pub day: i32,
    pub month: i32,
    pub week: i32,
    /// The command, run by `/bin/sh -c`.
    pub command: String,
    /// Skip a run while the last one is still going.
    pub unique: bool,
    /// Seconds a run may take (None: `--cron-harakiri`; Some(0): never
    /// killed).
    pub harakiri: Option<u64>,
}

/// The local time fields an entry is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronTime {
    pub minute: i32,
    pub hour: i32,
    /// 1..=31.
    pub day: i32,
    /// 1..=12.
    pub month: i32,
    /// 0 (Sunday)..=6.
    pub week: i32,
}

impl CronSpec {
    /// `cron = M H D MON W COMMAND`.
    pub fn classic(value: &str) -> Result<CronSpec, String> {
        let mut rest = value.trim_start();
        let mut fields = [0i32; 5];
        for (i, field) in fields.iter_mut().enumerate() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            *field = word.parse().map_err(|_| {
                format!("expected 5 numbers then a command (-1 for any), got {value:?} (field {} is {word:?})", i + 1)
            })?;
            rest = rest[end..].trim_start();
        }
        if rest.is_empty() {
            return Err(format!("no command after the five fields in {value:?}"));
        }
        let [minute, hour, day, month, week] = fields;
        Ok(CronSpec {
            minute,
            hour,
            day,
            month,
            week,
            command: rest.to_string(),
            unique: false,
            harakiri: None,
        })
    }

    /// `unique-cron = M H D MON W COMMAND`.
    pub fn unique(value: &str) -> Result<CronSpec, String> {
        let mut spec = CronSpec::classic(value)?;
        spec.unique = true;
        Ok(spec)
    }

    /// `cron2 = key=value,... COMMAND` (every field defaults to any).
    pub fn keyval(value: &str) -> Result<CronSpec, String> {
        let value = value.trim();
        let (keys, command) = match value.split_once(' ') {
            Some((keys, command)) if keys.contains('=') => (keys, command.trim()),
            _ if value
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('=')) =>
            {
                return Err(format!("no command after the keys in {value:?}"))
            }
            _ => ("", value),
        };
        let mut spec = CronSpec {
            minute: -1,
            hour: -1,
            day: -1,
            month: -1,
            week: -1,
            command: command.to_string(),
            unique: false,
            harakiri: None,
        };
        for item in keys.split(',').filter(|i| !i.is_empty()) {
            let (key, val) = item
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {item:?}"))?;
            let number = || {
                val.parse::<i32>()
                    .map_err(|_| format!("{key}: {val:?} is not a number"))
            };
            match key {
                "minute" => spec.minute = number()?,
                "hour" => spec.hour = number()?,
                "day" => spec.day = number()?,
                "month" => spec.month = number()?,
                "week" => spec.week = number()?,
                "unique" => spec.unique = number()? != 0,
                "harakiri" => spec.harakiri = Some(number()?.max(0) as u64),
                "legion" => return Err("legion crons are not supported by rwsgi".into()),
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        if spec.command.is_empty() {
            return Err("a command is needed".into());
        }
        Ok(spec)
    }

    /// Whether the entry is due at `t` (uWSGI's rule, see the module doc).
    pub fn due(&self, t: CronTime) -> bool {
        let field = |want: i32, now: i32| {
            if want < 0 {
                now % want.abs() == 0
            } else {
                want == now
            }
        };
        let week = if self.week == 7 { 0 } else { self.week };
        let (day, weekday) = (field(self.day, t.day), field(week, t.week));
        let calendar = if self.day >= 0 && week >= 0 {
            day || weekday
        } else {
            day && weekday
        };
        field(self.minute, t.minute)
            && field(self.hour, t.hour)
            && field(self.month, t.month)
            && calendar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i32, hour: i32, day: i32, month: i32, week: i32) -> CronTime {
        CronTime {
            minute,
            hour,
            day,
            month,
            week,
        }
    }

    #[test]
    fn minus_one_is_any_and_minus_n_is_every_n() {
        let every = CronSpec::classic("-1 -1 -1 -1 -1 echo hi").unwrap();
        assert_eq!(every.command, "echo hi");
        assert!(every.due(at(37, 13, 8, 12, 2)));
        let five = CronSpec::classic("-5 -1 -1 -1 -1 x").unwrap();
        assert!(five.due(at(35, 1, 1, 1, 1)));
        assert!(!five.due(at(36, 1, 1, 1, 1)));
        let nightly = CronSpec::classic("30 2 -1 -1 -1 backup --all").unwrap();
        assert!(nightly.due(at(30, 2, 17, 6, 4)));
        assert!(!nightly.due(at(30, 3, 17, 6, 4)));
        assert_eq!(nightly.command, "backup --all");
    }

    #[test]
    fn day_and_weekday_both_set_match_either_and_seven_is_sunday() {
        let spec = CronSpec::classic("0 0 1 -1 7 x").unwrap();
        assert!(spec.due(at(0, 0, 1, 5, 3)), "the 1st");
        assert!(spec.due(at(0, 0, 14, 5, 0)), "a Sunday");
        assert!(!spec.due(at(0, 0, 14, 5, 3)));
        let sundays = CronSpec::classic("0 0 -1 -1 0 x").unwrap();
        assert!(!sundays.due(at(0, 0, 1, 5, 3)), "one set: both must match");
    }

    #[test]
    fn cron2_keys_default_to_any() {
        let spec =
            CronSpec::keyval("minute=-10,unique=1,harakiri=30 ./manage.py clearsessions").unwrap();
        assert_eq!((spec.minute, spec.hour), (-10, -1));
        assert!(spec.unique);
        assert_eq!(spec.harakiri, Some(30));
        assert_eq!(spec.command, "./manage.py clearsessions");
        assert_eq!(
            CronSpec::keyval("echo plain").unwrap().command,
            "echo plain"
        );
        assert!(CronSpec::keyval("minute=1").is_err());
        assert!(CronSpec::keyval("legion=x echo").is_err());
        assert!(CronSpec::classic("1 2 3 echo").is_err());
        assert!(CronSpec::classic("1 2 3 4 5").is_err());
    }
}
