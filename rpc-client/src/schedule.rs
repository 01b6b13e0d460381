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
///
/// ```
/// let spec = rpc_client::schedule::every_n(2).hours();
/// assert_eq!(format!("{spec}"), "every 2 hours");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec(String);

impl ScheduleSpec {
    /// A spec from a cron string (5 or 6 fields), checked by the server.
    ///
    /// ```
    /// let spec = rpc_client::schedule::ScheduleSpec::cron("*/15 * * * *");
    /// assert_eq!(spec.as_str(), "*/15 * * * *");
    /// ```
    pub fn cron(expr: &str) -> ScheduleSpec {
        ScheduleSpec(expr.to_string())
    }

    /// The spec text.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every().minute().as_str(), "every minute");
    /// ```
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
///
/// ```
/// let spec = rpc_client::schedule::every().day().at(14, 30);
/// assert_eq!(spec.as_str(), "every day at 14:30");
/// ```
pub fn every() -> Every {
    Every
}

/// Starts a spec that runs every `n` units.
///
/// ```
/// assert_eq!(rpc_client::schedule::every_n(5).minutes().as_str(), "every 5 minutes");
/// ```
pub fn every_n(n: u32) -> EveryN {
    EveryN(n)
}

/// See [`every`].
///
/// ```
/// let every: rpc_client::schedule::Every = rpc_client::schedule::every();
/// assert_eq!(every.hour().as_str(), "every hour");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Every;

/// See [`every_n`].
///
/// ```
/// let every: rpc_client::schedule::Every = rpc_client::schedule::every();
/// assert_eq!(every.hour().as_str(), "every hour");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EveryN(u32);

/// Days, waiting for a time of day.
///
/// ```
/// let days: rpc_client::schedule::OnDays = rpc_client::schedule::every().friday();
/// assert_eq!(days.at(17, 0).as_str(), "every friday at 17:00");
/// ```
#[derive(Debug, Clone)]
pub struct OnDays(&'static str);

impl OnDays {
    /// At `hour:minute` UTC.
    ///
    /// ```
    /// let spec = rpc_client::schedule::every().weekend().at(10, 0);
    /// assert_eq!(spec.to_string(), "every weekend at 10:00");
    /// ```
    pub fn at(self, hour: u32, minute: u32) -> ScheduleSpec {
        ScheduleSpec(format!("every {} at {hour}:{minute:02}", self.0))
    }
}

impl Every {
    /// Every second.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every().second().as_str(), "every second");
    /// ```
    pub fn second(self) -> ScheduleSpec {
        ScheduleSpec("every second".into())
    }
    /// Every minute.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every().minute().as_str(), "every minute");
    /// ```
    pub fn minute(self) -> ScheduleSpec {
        ScheduleSpec("every minute".into())
    }
    /// Every hour.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every().hour().as_str(), "every hour");
    /// ```
    pub fn hour(self) -> ScheduleSpec {
        ScheduleSpec("every hour".into())
    }
    /// Every day (then `.at(h, m)`).
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().day().at(9, 5).as_str(), "every day at 9:05");
    /// ```
    pub fn day(self) -> OnDays {
        OnDays("day")
    }
    /// Monday to Friday (then `.at(h, m)`).
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().weekday().at(9, 5).as_str(), "every weekday at 9:05");
    /// ```
    pub fn weekday(self) -> OnDays {
        OnDays("weekday")
    }
    /// Saturday and Sunday (then `.at(h, m)`).
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().weekend().at(9, 5).as_str(), "every weekend at 9:05");
    /// ```
    pub fn weekend(self) -> OnDays {
        OnDays("weekend")
    }
    /// Mondays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().monday().at(9, 5).as_str(), "every monday at 9:05");
    /// ```
    pub fn monday(self) -> OnDays {
        OnDays("monday")
    }
    /// Tuesdays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().tuesday().at(9, 5).as_str(), "every tuesday at 9:05");
    /// ```
    pub fn tuesday(self) -> OnDays {
        OnDays("tuesday")
    }
    /// Wednesdays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().wednesday().at(9, 5).as_str(), "every wednesday at 9:05");
    /// ```
    pub fn wednesday(self) -> OnDays {
        OnDays("wednesday")
    }
    /// Thursdays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().thursday().at(9, 5).as_str(), "every thursday at 9:05");
    /// ```
    pub fn thursday(self) -> OnDays {
        OnDays("thursday")
    }
    /// Fridays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().friday().at(9, 5).as_str(), "every friday at 9:05");
    /// ```
    pub fn friday(self) -> OnDays {
        OnDays("friday")
    }
    /// Saturdays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().saturday().at(9, 5).as_str(), "every saturday at 9:05");
    /// ```
    pub fn saturday(self) -> OnDays {
        OnDays("saturday")
    }
    /// Sundays.
    ///
    /// ```
    /// use rpc_client::schedule::every;
    /// assert_eq!(every().sunday().at(9, 5).as_str(), "every sunday at 9:05");
    /// ```
    pub fn sunday(self) -> OnDays {
        OnDays("sunday")
    }
}

impl EveryN {
    /// Every n seconds.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every_n(3).seconds().as_str(), "every 3 seconds");
    /// ```
    pub fn seconds(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} seconds", self.0))
    }
    /// Every n minutes.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every_n(3).minutes().as_str(), "every 3 minutes");
    /// ```
    pub fn minutes(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} minutes", self.0))
    }
    /// Every n hours.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every_n(3).hours().as_str(), "every 3 hours");
    /// ```
    pub fn hours(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} hours", self.0))
    }
    /// Every n days.
    ///
    /// ```
    /// assert_eq!(rpc_client::schedule::every_n(3).days().as_str(), "every 3 days");
    /// ```
    pub fn days(self) -> ScheduleSpec {
        ScheduleSpec(format!("every {} days", self.0))
    }
}
