//! Schedule specs: 5-field (`min hour dom month dow`) or 6-field (with seconds first)
//! cron, or readable forms: `every 30 seconds`, `every 5 minutes`, `every hour`,
//! `every day at 14:30`, `every Monday at 9am`, `every weekday at 8:00`. All times are
//! UTC. Errors point at the bad part.
//!
//! ```
//! use do_modules::schedule::spec::Spec;
//! let s = Spec::parse("every day at 14:30").unwrap();
//! // 2024-01-01T00:00:00Z -> 2024-01-01T14:30:00Z
//! assert_eq!(s.next_after(1_704_067_200_000), Some(1_704_067_200_000 + (14 * 3600 + 30 * 60) * 1000));
//! ```

use rpc_core::{Code, RpcError};

fn bad(msg: impl Into<String>) -> RpcError {
    RpcError::new(Code::InvalidArgument, msg)
}

/// The longest period `every N units` may have: ten years.
pub const MAX_PERIOD_MS: i64 = 10 * 366 * 86_400_000;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A fixed period, counted from the previous run.
    Every {
        /// The period in milliseconds.
        period_ms: i64,
    },
    /// A cron schedule.
    Cron(Cron),
}

/// The allowed values of each cron field, as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Both day fields were restricted: a day matches either (classic cron).
    day_or: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, name: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, RpcError> {
    let value = |s: &str| -> Result<u32, RpcError> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| lower.starts_with(n) && lower.len() >= 3) {
            return Ok(i as u32 + if name == "month" { 1 } else { 0 });
        }
        s.parse::<u32>().map_err(|_| bad(format!("cron {name} field: {s:?} is not a number")))
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                (r, s.parse::<u32>().map_err(|_| bad(format!("cron {name} field: step {s:?} is not a number")))?)
            }
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad(format!("cron {name} field: a step of 0 in {part:?}")));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        // Sunday may be written 7.
        let hi_ok = if name == "day-of-week" { 7 } else { hi };
        if a < lo || b > hi_ok || a > b {
            return Err(bad(format!("cron {name} field: {part:?} is outside {lo}-{hi}")));
        }
        let mut v = a;
        while v <= b {
            set |= 1 << (if name == "day-of-week" && v == 7 { 0 } else { v });
            v = match v.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(set)
}

impl Cron {
    /// Parses 5 fields (`min hour dom month dow`) or 6 (seconds first).
    pub fn parse(text: &str) -> Result<Cron, RpcError> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match f.len() {
            5 => ("0", &f[..]),
            6 => (f[0], &f[1..]),
            n => return Err(bad(format!("cron needs 5 or 6 fields, {text:?} has {n}"))),
        };
        Ok(Cron {
            seconds: field(sec, "second", 0, 59, &[])?,
            minutes: field(rest[0], "minute", 0, 59, &[])?,
            hours: field(rest[1], "hour", 0, 23, &[])?,
            days: field(rest[2], "day-of-month", 1, 31, &[])?,
            months: field(rest[3], "month", 1, 12, &MONTHS)?,
            weekdays: field(rest[4], "day-of-week", 0, 6, &DAYS)?,
            day_or: rest[2] != "*" && rest[4] != "*",
        })
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let d = self.days & (1 << day) != 0;
        let w = self.weekdays & (1 << weekday) != 0;
        if self.day_or {
            d || w
        } else {
            d && w
        }
    }

    /// The first time strictly after `after_ms` that matches, within about five years.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let mut t = after_ms.div_euclid(1000) + 1;
        let limit = t + 5 * 366 * 86_400;
        while t < limit {
            let c = Civil::from_unix(t);
            if self.months & (1 << c.month) == 0 {
                t = Civil::days_from_civil(
                    c.year + i64::from(c.month == 12),
                    if c.month == 12 { 1 } else { c.month + 1 },
                    1,
                ) * 86_400;
            } else if !self.day_matches(c.day, c.weekday) {
                t = (t.div_euclid(86_400) + 1) * 86_400;
            } else if self.hours & (1 << c.hour) == 0 {
                t = (t.div_euclid(3600) + 1) * 3600;
            } else if self.minutes & (1 << c.minute) == 0 {
                t = (t.div_euclid(60) + 1) * 60;
            } else if self.seconds & (1 << c.second) == 0 {
                t += 1;
            } else {
                return Some(t * 1000);
            }
        }
        None
    }
}

/// A UTC calendar time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
}

impl Civil {
    fn from_unix(t: i64) -> Civil {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

fn time_of_day(s: &str) -> Result<(u32, u32), RpcError> {
    let lower = s.to_ascii_lowercase();
    let (body, pm) = if let Some(b) = lower.strip_suffix("am") {
        (b.trim(), Some(false))
    } else if let Some(b) = lower.strip_suffix("pm") {
        (b.trim(), Some(true))
    } else {
        (lower.as_str(), None)
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None => (body, "0"),
    };
    let mut h: u32 = h.parse().map_err(|_| bad(format!("time {s:?}: hour is not a number")))?;
    let m: u32 = m.parse().map_err(|_| bad(format!("time {s:?}: minute is not a number")))?;
    if let Some(pm) = pm {
        if !(1..=12).contains(&h) {
            return Err(bad(format!("time {s:?}: with am/pm the hour is 1-12")));
        }
        h = h % 12 + if pm { 12 } else { 0 };
    }
    if h > 23 || m > 59 {
        return Err(bad(format!("time {s:?} is not a time of day")));
    }
    Ok((h, m))
}

impl Spec {
    /// Parses a cron string or a readable form.
    pub fn parse(text: &str) -> Result<Spec, RpcError> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("every ") else {
            return Cron::parse(t).map(Spec::Cron);
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let unit_ms = |u: &str| -> Option<i64> {
            match u.trim_end_matches('s') {
                "second" | "sec" => Some(1000),
                "minute" | "min" => Some(60_000),
                "hour" => Some(3_600_000),
                "day" => Some(86_400_000),
                _ => None,
            }
        };
        match words.as_slice() {
            [n, unit] if n.parse::<i64>().is_ok() => {
                let n: i64 = n.parse().unwrap_or(0);
                let ms = unit_ms(unit)
                    .ok_or_else(|| bad(format!("{text:?}: unknown unit {unit:?} (seconds, minutes, hours, days)")))?;
                if n <= 0 {
                    return Err(bad(format!("{text:?}: the count must be at least 1")));
                }
                match n.checked_mul(ms).filter(|p| *p <= MAX_PERIOD_MS) {
                    Some(period_ms) => Ok(Spec::Every { period_ms }),
                    None => Err(bad(format!("{text:?}: the period is longer than ten years"))),
                }
            }
            [unit] if *unit != "day" && *unit != "weekday" && unit_ms(unit).is_some() => {
                Ok(Spec::Every { period_ms: unit_ms(unit).unwrap_or(60_000) })
            }
            [day, "at", time @ ..] if !time.is_empty() => {
                let (h, m) = time_of_day(&time.join(""))?;
                let dow = match *day {
                    "day" => "*".to_string(),
                    "weekday" => "1-5".to_string(),
                    "weekend" => "0,6".to_string(),
                    d => match DAYS.iter().position(|n| d.starts_with(n)) {
                        Some(i) => i.to_string(),
                        None => {
                            return Err(bad(format!("{text:?}: {day:?} is not day, weekday, weekend or a day name")))
                        }
                    },
                };
                Cron::parse(&format!("0 {m} {h} * * {dow}")).map(Spec::Cron)
            }
            [day] => Err(bad(format!("{text:?}: say when, e.g. \"every {day} at 9:00\""))),
            _ => Err(bad(format!("{text:?}: expected e.g. \"every 5 minutes\" or \"every Monday at 9am\""))),
        }
    }

    /// The next run strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Spec::Every { period_ms } => after_ms.checked_add(*period_ms),
            Spec::Cron(c) => c.next_after(after_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN1_2024: i64 = 1_704_067_200_000; // a Monday, 00:00 UTC

    fn ms(days: i64, h: i64, m: i64, s: i64) -> i64 {
        JAN1_2024 + ((days * 24 + h) * 3600 + m * 60 + s) * 1000
    }

    #[test]
    fn readable_forms() {
        assert_eq!(Spec::parse("every 30 seconds").unwrap(), Spec::Every { period_ms: 30_000 });
        assert_eq!(Spec::parse("every 5 minutes").unwrap(), Spec::Every { period_ms: 300_000 });
        assert_eq!(Spec::parse("every hour").unwrap(), Spec::Every { period_ms: 3_600_000 });
        assert_eq!(Spec::parse("every day at 14:30").unwrap().next_after(JAN1_2024), Some(ms(0, 14, 30, 0)));
        // From Monday noon, the next Monday 9am is a week on.
        assert_eq!(Spec::parse("every Monday at 9am").unwrap().next_after(ms(0, 12, 0, 0)), Some(ms(7, 9, 0, 0)));
        // Friday 9:00 -> Monday 8:00.
        assert_eq!(Spec::parse("every weekday at 8:00").unwrap().next_after(ms(4, 9, 0, 0)), Some(ms(7, 8, 0, 0)));
        assert_eq!(Spec::parse("every day at 12pm").unwrap().next_after(JAN1_2024), Some(ms(0, 12, 0, 0)));
        assert_eq!(Spec::parse("every day at 12am").unwrap().next_after(JAN1_2024), Some(ms(1, 0, 0, 0)));
    }

    #[test]
    fn cron_fields() {
        let c = Spec::parse("*/15 * * * *").unwrap();
        assert_eq!(c.next_after(ms(0, 0, 7, 0)), Some(ms(0, 0, 15, 0)));
        let c = Spec::parse("*/10 * * * * *").unwrap();
        assert_eq!(c.next_after(ms(0, 0, 0, 10)), Some(ms(0, 0, 0, 20)));
        let c = Spec::parse("0 9 * * mon-fri").unwrap();
        assert_eq!(c.next_after(ms(5, 0, 0, 0)), Some(ms(7, 9, 0, 0)), "Saturday -> Monday");
        let c = Spec::parse("0 0 29 feb *").unwrap();
        assert_eq!(c.next_after(JAN1_2024), Some(ms(59, 0, 0, 0)), "2024 is a leap year");
        let c = Spec::parse("0 0 1 1 7").unwrap();
        assert!(c.next_after(JAN1_2024).is_some(), "7 is Sunday; day fields OR together");
        assert_eq!(Spec::parse("0 0 31 2 *").unwrap().next_after(JAN1_2024), None, "never fires");
        // A huge step does not overflow: it is just the start value.
        assert_eq!(Spec::parse("1/4294967295 * * * *").unwrap().next_after(JAN1_2024), Some(ms(0, 0, 1, 0)));
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let cases = [
            ("* * *", "5 or 6 fields"),
            ("61 * * * *", "minute field"),
            ("* 24 * * *", "hour field"),
            ("* * * 13 *", "month field"),
            ("*/0 * * * *", "step of 0"),
            ("every 5 fortnights", "fortnights"),
            ("every Funday at 9", "Funday"),
            ("every day at 25:00", "25:00"),
            ("every 0 minutes", "at least 1"),
            ("every Monday", "say when"),
            ("every 100000000000 days", "ten years"),
        ];
        for (spec, hint) in cases {
            let e = Spec::parse(spec).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument);
            assert!(e.message.to_lowercase().contains(&hint.to_lowercase()), "{spec}: {}", e.message);
        }
    }

    #[test]
    fn civil_round_trips() {
        for days in [-1000i64, 0, 59, 365, 10_957, 19_723, 40_000] {
            let c = Civil::from_unix(days * 86_400 + 3661);
            assert_eq!(Civil::days_from_civil(c.year, c.month, c.day), days);
            assert_eq!((c.hour, c.minute, c.second), (1, 1, 1));
        }
    }
}
