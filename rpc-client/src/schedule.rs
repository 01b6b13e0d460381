//! A typed builder for schedule specs, producing the readable forms the schedule module
//! parses: `every().monday().at(9, 0)` is `every monday at 9:00`,
//! `every_n(5).minutes()` is `every 5 minutes`.
//!
//! ```
//! use rpc_client::schedule::{every, every_n};
//! assert_eq!(every().monday().at(9, 0).as_str(), "every monday at 9:00");
//! assert_eq!(every().weekday().at(8, 30).as_str(), "every weekday at 8:30");
//! assert_eq!(every_n(5).minutes().as_str(), "every 5 minutes");
//! assert_eq!(every().hour().as_str(), "every hour");
//! ```

use std::fmt;

/// A schedule spec, ready to pass to `schedule(spec, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec(String);

impl ScheduleSpec {
    /// A spec from a cron string (5 or 6 fields), checked by the server.
    pub fn cron(expr: &str) -> ScheduleSpec {
        ScheduleSpec(expr.to_string())
    }

    /// The spec text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Starts a spec that runs once per unit or on given days.
pub fn every() -> Every {
    Every
}

/// Starts a spec that runs every `n` units.
pub fn every_n(n: u32) -> EveryN {
    EveryN(n)
}

/// See [`every`].
#[derive(Debug, Clone, Copy)]
pub struct Every;

/// See [`every_n`].
#[derive(Debug, Clone, Copy)]
pub struct EveryN(u32);

/// Days, waiting for a time of day.
#[derive(Debug, Clone)]
pub struct OnDays(&'static str);

impl OnDays {
    /// At `hour:minute` UTC.
    pub fn at(self, hour: u32, minute: u32) -> ScheduleSpec {
        ScheduleSpec(format!("every {} at {hour}:{minute:02}", self.0))
    }
}

impl Every {
    /// Every second.
    pub fn second(self) -> ScheduleSpec {
        ScheduleSpec("every second".into())
    }
    /// Every minute.
    pub fn minute(self) -> ScheduleSpec {
        ScheduleSpec("every minute".into())
    }
    /// Every hour.
    pub fn hour(self) -> ScheduleSpec {
        ScheduleSpec("every hour".into())
    }
    /// Every day (then `.at(h, m)`).
    pub fn day(self) -> OnDays {
        OnDays("day")
    }
    /// Monday to Friday (then `.at(h, m)`).
    pub fn weekday(self) -> OnDays {
        OnDays("weekday")
    }
    /// Saturday and Sunday (then `.at(h, m)`).
    pub fn weekend(self) -> OnDays {
        OnDays("weekend")
    }
    /// Mondays.
    pub fn monday(self) -> OnDays {
        OnDays("monday")
    }
    /// Tuesdays.
    pub fn tuesday(self) -> OnDays {
        OnDays("tuesday")
    }
    /// Wednesdays.
    pub fn wednesday(self) -> OnDays {
        OnDays("wednesday")
    }
    /// Thursdays.
    pub fn thursday(self) -> OnDays {
        OnDays("thursday")
    }
    /// Fridays.
    pub fn friday(self) -> OnDays {
        OnDays("friday")
    }
    /// Saturdays.
    pub fn saturday(self) -> OnDays {
        OnDays("saturday")
    }
    /// Sundays.
    pub fn sunday(self) -> OnDays {
        OnDays("sunday")
    }
}

impl EveryN {
    /// Every n seconds.
    pub fn seconds(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} seconds", self.0))
    }
    /// Every n minutes.
    pub fn minutes(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} minutes", self.0))
    }
    /// Every n hours.
    pub fn hours(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} hours", self.0))
    }
    /// Every n days.
    pub fn days(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} days", self.0))
    }
}
