//! Times in words, in this device's own time zone: "today at 14:05", "yesterday at 09:10", "on
//! Tuesday at 14:05", "on 3 December 2026 at 14:05".
//!
//! The page is served by the member's own device, so its zone is the member's. Entries carry UTC
//! milliseconds; only the words change with the zone. A zone the system cannot tell is UTC, said so.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

static SYSTEM: OnceLock<TimeZone> = OnceLock::new();
static UTC: TimeZone = TimeZone::UTC;
static FORCE_UTC: AtomicBool = AtomicBool::new(false);

/// Shows every time on the page in UTC from now on, in this process (for tests, whose expected
/// words must not depend on the machine's zone).
pub fn show_times_in_utc() {
    FORCE_UTC.store(true, Ordering::Relaxed);
}

fn zone() -> &'static TimeZone {
    if FORCE_UTC.load(Ordering::Relaxed) {
        return &UTC;
    }
    SYSTEM.get_or_init(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
}

/// " UTC" when the zone shown is UTC, so a reader elsewhere is not misled; else nothing.
fn zone_note(tz: &TimeZone) -> &'static str {
    let utc = [
        "UTC",
        "Etc/UTC",
        "UCT",
        "Etc/UCT",
        "Zulu",
        "Etc/Zulu",
        "Universal",
        "Etc/Universal",
    ];
    if tz == &TimeZone::UTC || tz.iana_name().is_some_and(|n| utc.contains(&n)) {
        " UTC"
    } else {
        ""
    }
}

pub(crate) fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

fn weekday_words(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn date_words(d: Date) -> String {
    let month = MONTHS
        .get(usize::try_from(d.month() - 1).unwrap_or(0))
        .copied()
        .unwrap_or("");
    format!("{} {month} {}", d.day(), d.year())
}

/// The local date of `ms` and the days from `now`'s local date to it.
fn local(ms: i64, now: i64, tz: &TimeZone) -> Option<(jiff::Zoned, i64)> {
    let t = Timestamp::from_millisecond(ms).ok()?.to_zoned(tz.clone());
    let today = Timestamp::from_millisecond(now)
        .ok()?
        .to_zoned(tz.clone())
        .date();
    let days = t.date().since(today).ok()?.get_days();
    Some((t, i64::from(days)))
}

/// `ms` in words as seen at `now` in `tz`, with its preposition: "today at 14:05".
pub(crate) fn when_at(ms: i64, now: i64, tz: &TimeZone) -> String {
    let Some((t, days)) = local(ms, now, tz) else {
        return "at a time that cannot be shown".into();
    };
    let at = format!("at {:02}:{:02}{}", t.hour(), t.minute(), zone_note(tz));
    match days {
        0 => format!("today {at}"),
        -1 => format!("yesterday {at}"),
        1 => format!("tomorrow {at}"),
        -6..=-2 => format!("on {} {at}", weekday_words(t.weekday())),
        _ => format!("on {} {at}", date_words(t.date())),
    }
}

/// `ms` in words, now, in this device's zone: "today at 14:05", "on 3 December 2026 at 14:05".
pub(crate) fn when(ms: i64) -> String {
    when_at(ms, now_ms(), zone())
}

/// A past time relative to `now`, in words: "just now", "5 minutes ago", "yesterday", "on Tuesday".
pub(crate) fn ago(now: i64, t: i64) -> String {
    ago_in(now, t, zone())
}

fn ago_in(now: i64, t: i64, tz: &TimeZone) -> String {
    let mins = (now - t).max(0) / 60_000;
    match mins {
        0 => "just now".into(),
        1 => "1 minute ago".into(),
        2..=59 => format!("{mins} minutes ago"),
        60..=119 => "1 hour ago".into(),
        _ => match local(t, now, tz) {
            Some((_, 0)) => format!("{} hours ago", mins / 60),
            Some((_, -1)) => "yesterday".into(),
            Some((z, -6..=-2)) => format!("on {}", weekday_words(z.weekday())),
            Some((z, _)) => format!("on {}", date_words(z.date())),
            None => "a while ago".into(),
        },
    }
}

/// Today plus `days` in this device's zone, as `YYYY-MM-DD` (a proposal's closing day).
pub(crate) fn date_in_days(days: i64) -> String {
    let today = Timestamp::now().to_zoned(zone().clone()).date();
    let d = today
        .checked_add(jiff::Span::new().days(days))
        .unwrap_or(today);
    d.to_string()
}

/// When an open proposal is meant to close, in words: "It closes today.", "It closes on Friday.",
/// "It was meant to close yesterday." `None` when `date` is not `YYYY-MM-DD`.
pub(crate) fn closes_words(date: &str) -> Option<String> {
    closes_words_at(date, now_ms(), zone())
}

fn closes_words_at(date: &str, now: i64, tz: &TimeZone) -> Option<String> {
    let d = date.parse::<Date>().ok()?;
    let today = Timestamp::from_millisecond(now)
        .ok()?
        .to_zoned(tz.clone())
        .date();
    let days = d.since(today).ok()?.get_days();
    let day = weekday_words(d.weekday());
    Some(match days {
        0 => "It closes today.".into(),
        1 => "It closes tomorrow.".into(),
        2..=6 => format!("It closes on {day}."),
        7.. => format!("It closes on {day} {}.", date_words(d)),
        -1 => "It was meant to close yesterday.".into(),
        _ => format!("It was meant to close on {day} {}.", date_words(d)),
    })
}

/// A due date `YYYY-MM-DD` in words ("3 December 2026"); the text itself when it is not one.
pub(crate) fn due_words(date: &str) -> String {
    match date.parse::<Date>() {
        Ok(d) => date_words(d),
        Err(_) => date.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 3 December 2026, 14:05 UTC (a Thursday).
    const NOW: i64 = 1_796_306_700_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn times_are_said_relative_to_today_in_the_zone_given() {
        let utc = TimeZone::UTC;
        assert_eq!(when_at(NOW, NOW, &utc), "today at 14:05 UTC");
        assert_eq!(
            when_at(NOW - 24 * HOUR, NOW, &utc),
            "yesterday at 14:05 UTC"
        );
        assert_eq!(when_at(NOW + 24 * HOUR, NOW, &utc), "tomorrow at 14:05 UTC");
        assert_eq!(
            when_at(NOW - 2 * 24 * HOUR, NOW, &utc),
            "on Tuesday at 14:05 UTC"
        );
        assert_eq!(
            when_at(NOW - 7 * 24 * HOUR, NOW, &utc),
            "on 26 November 2026 at 14:05 UTC"
        );
        // The same moment at UTC+13 (Auckland in December) is already Friday morning.
        let akl = TimeZone::fixed(jiff::tz::offset(13));
        assert_eq!(when_at(NOW, NOW, &akl), "today at 03:05");
        assert_eq!(when_at(NOW - 12 * HOUR, NOW, &akl), "yesterday at 15:05");
        assert_eq!(
            when_at(i64::MAX, NOW, &utc),
            "at a time that cannot be shown"
        );
    }

    #[test]
    fn ago_counts_minutes_then_days() {
        let utc = TimeZone::UTC;
        assert_eq!(ago_in(NOW, NOW, &utc), "just now");
        assert_eq!(ago_in(NOW, NOW - 5 * 60_000, &utc), "5 minutes ago");
        assert_eq!(ago_in(NOW, NOW - 3 * HOUR, &utc), "3 hours ago");
        assert_eq!(ago_in(NOW, NOW - 15 * HOUR, &utc), "yesterday");
        assert_eq!(ago_in(NOW, NOW - 2 * 24 * HOUR, &utc), "on Tuesday");
        assert_eq!(
            ago_in(NOW, NOW - 30 * 24 * HOUR, &utc),
            "on 3 November 2026"
        );
        assert_eq!(due_words("2026-12-25"), "25 December 2026");
        assert_eq!(due_words("soon"), "soon");
    }

    #[test]
    fn a_closing_day_is_said_from_today() {
        let utc = TimeZone::UTC;
        let w = |d: &str| closes_words_at(d, NOW, &utc);
        assert_eq!(w("2026-12-03").as_deref(), Some("It closes today."));
        assert_eq!(w("2026-12-04").as_deref(), Some("It closes tomorrow."));
        assert_eq!(w("2026-12-07").as_deref(), Some("It closes on Monday."));
        assert_eq!(
            w("2026-12-17").as_deref(),
            Some("It closes on Thursday 17 December 2026.")
        );
        assert_eq!(
            w("2026-12-02").as_deref(),
            Some("It was meant to close yesterday.")
        );
        assert_eq!(
            w("2026-11-30").as_deref(),
            Some("It was meant to close on Monday 30 November 2026.")
        );
        assert_eq!(w("next week"), None);
    }
}
