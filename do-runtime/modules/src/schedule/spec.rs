//! Schedule specs: 5-field (`min hour dom month dow`) or 6-field (with seconds first)
//! cron, or readable forms: `every 30 seconds`, `every 5 minutes`, `every hour`,
//! `every day at 14:30`, `every Monday at 9am`, `every weekday at 8:00`. All times are
//! UTC. Cron patterns are parsed and evaluated by `croner`; the readable forms map onto
//! them. Errors point at the bad part.
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

/// A cron schedule (evaluated in UTC by `croner`), kept with the 6-field pattern it
/// was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    pattern: String,
    inner: Box<croner::Cron>,
}

// `croner::Cron` compares its parsed pattern, which is `Eq`.
impl Eq for Cron {}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The names of the six fields, seconds first, as errors name them.
const FIELDS: [&str; 6] = ["second", "minute", "hour", "day-of-month", "month", "day-of-week"];

/// How far ahead `next_after` looks: about five years.
const HORIZON_MS: i64 = 5 * 366 * 86_400_000;

/// The parser every spec goes through: seconds always given (a 5-field spec gets `0`
/// in front), no year field, the two day fields OR-ed when both are restricted.
fn parser() -> croner::parser::CronParser {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder().seconds(Seconds::Required).year(Year::Disallowed).build()
}

/// Finds which field of a pattern croner refused, by parsing each field alone.
fn blame(fields: &[&str], whole: croner::errors::CronError) -> RpcError {
    let p = parser();
    for (i, name) in FIELDS.iter().enumerate() {
        let probe: Vec<&str> = (0..FIELDS.len()).map(|j| if i == j { fields[i] } else { "*" }).collect();
        if let Err(e) = p.parse(&probe.join(" ")) {
            return bad(format!("cron {name} field: {:?} is not valid ({})", fields[i], reason(&e)));
        }
    }
    bad(format!("cron {:?} is not valid ({})", fields.join(" "), reason(&whole)))
}

/// croner's message without its prefix, lower-cased (`step cannot be zero.`).
fn reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    match e {
        CronError::ComponentError(m) | CronError::InvalidPattern(m) | CronError::IllegalCharacters(m) => {
            m.trim_end_matches('.').to_lowercase()
        }
        other => other.to_string(),
    }
}

impl Cron {
    /// Parses 5 fields (`min hour dom month dow`) or 6 (seconds first).
    pub fn parse(text: &str) -> Result<Cron, RpcError> {
        let mut fields: Vec<&str> = text.split_whitespace().collect();
        match fields.len() {
            5 => fields.insert(0, "0"),
            6 => {}
            n => return Err(bad(format!("cron needs 5 or 6 fields, {text:?} has {n}"))),
        }
        let pattern = fields.join(" ");
        match parser().parse(&pattern) {
            Ok(inner) if !ever_fires(&inner) => Err(bad(format!("cron {pattern:?} never fires"))),
            Ok(inner) => Ok(Cron { pattern, inner: Box::new(inner) }),
            Err(e) => Err(blame(&fields, e)),
        }
    }

    /// The 6-field pattern (seconds first).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The first time strictly after `after_ms` that matches, within about five years.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(after_ms.div_euclid(1000), 0)?;
        let next = self.inner.find_next_occurrence(&start, false).ok()?.timestamp_millis();
        (next > after_ms && next - after_ms <= HORIZON_MS).then_some(next)
    }
}

/// Whether a parsed pattern matches any time at all. croner looks for the next match
/// up to the year 5000, a second at a time when a time field matches nothing (`0 , * * *
/// *`: seconds of CPU per lookup) and a day at a time when no date does (`0 0 30 2 *`),
/// so a pattern that never fires is refused when it is parsed. 28 years from 2024 hold
/// every date on every weekday, leap days included.
fn ever_fires(c: &croner::Cron) -> bool {
    use chrono::Datelike;
    let p = &c.pattern;
    let any = |n: u32, matches: &dyn Fn(u32) -> Result<bool, croner::errors::CronError>| {
        (0..n).any(|v| matches(v).unwrap_or(false))
    };
    if !(any(60, &|s| p.second_match(s)) && any(60, &|m| p.minute_match(m)) && any(24, &|h| p.hour_match(h))) {
        return false;
    }
    let Some(start) = chrono::NaiveDate::from_ymd_opt(2024, 1, 1) else { return false };
    start.iter_days().take(28 * 366).any(|d| {
        p.month_match(d.month()).unwrap_or(false) && p.day_match(d.year(), d.month(), d.day()).unwrap_or(false)
    })
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
        // Seconds given: fires on the listed seconds only.
        let c = Spec::parse("5,35 * * * * *").unwrap();
        assert_eq!(c.next_after(ms(0, 0, 0, 5)), Some(ms(0, 0, 0, 35)));
        // Sub-second starts still give the next whole matching second.
        assert_eq!(Spec::parse("* * * * * *").unwrap().next_after(JAN1_2024 + 500), Some(ms(0, 0, 0, 1)));
    }

    #[test]
    fn a_cron_that_never_fires_is_refused_when_parsed() {
        // croner would search for each of these until the year 5000: seconds of CPU for
        // the empty minute list (found by the `schedule` fuzz target), and every lookup.
        for spec in ["0 , * 9 * *", "0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let e = Spec::parse(spec).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{spec}");
            assert!(e.message.contains("never fires"), "{spec}: {}", e.message);
        }
        // Rare ones still parse: a leap day, the fifth Monday, the last day of February.
        for spec in ["0 0 29 2 *", "0 0 * * 1#5", "0 0 L 2 *"] {
            assert!(Spec::parse(spec).is_ok_and(|s| s.next_after(JAN1_2024).is_some()), "{spec}");
        }
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let cases = [
            ("* * *", "5 or 6 fields"),
            ("61 * * * *", "minute field: \"61\""),
            ("* 24 * * *", "hour field"),
            ("* * * 13 *", "month field"),
            ("*/0 * * * *", "minute field: \"*/0\""),
            ("*/0 * * * *", "zero"),
            ("1/4294967295 * * * *", "minute field"),
            ("0 0 * * funday", "day-of-week field"),
            ("0 0 32 * *", "day-of-month field: \"32\""),
            ("61 * * * * *", "second field: \"61\""),
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
}
