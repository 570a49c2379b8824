//! MySQL's `DATE_FORMAT`, for `{{CURRENT_TIME|format:%Y%m}}` placeholders, the `DATE_FORMAT()`
//! expression function and `formatResponse` patterns alike.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

const WEEKDAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTH_NAMES: [&str; 12] = [
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

/// MySQL `DATE_FORMAT`: `%Y %y %m %c %d %e %H %k %h %I %l %i %s %S %f %p %W %a %M %b %j %T %r
/// %D %U %u %V %v %X %x %w %%`; any other `%c` gives `c`, as MySQL does.
pub(crate) fn date_format(dt: NaiveDateTime, pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let hour12 = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    let weekday = dt.weekday().num_days_from_monday() as usize;
    let month0 = dt.month0() as usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        match spec {
            'Y' => out.push_str(&format!("{:04}", dt.year())),
            'y' => out.push_str(&format!("{:02}", dt.year().rem_euclid(100))),
            'm' => out.push_str(&format!("{:02}", dt.month())),
            'c' => out.push_str(&dt.month().to_string()),
            'd' => out.push_str(&format!("{:02}", dt.day())),
            'e' => out.push_str(&dt.day().to_string()),
            'D' => {
                let day = dt.day();
                let suffix = match (day % 10, day % 100) {
                    (_, 11..=13) => "th",
                    (1, _) => "st",
                    (2, _) => "nd",
                    (3, _) => "rd",
                    _ => "th",
                };
                out.push_str(&format!("{day}{suffix}"));
            }
            'H' => out.push_str(&format!("{:02}", dt.hour())),
            'k' => out.push_str(&dt.hour().to_string()),
            'h' | 'I' => out.push_str(&format!("{hour12:02}")),
            'l' => out.push_str(&hour12.to_string()),
            'i' => out.push_str(&format!("{:02}", dt.minute())),
            's' | 'S' => out.push_str(&format!("{:02}", dt.second())),
            'f' => out.push_str(&format!("{:06}", dt.nanosecond() / 1000 % 1_000_000)),
            'p' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
            'T' => out.push_str(&format!(
                "{:02}:{:02}:{:02}",
                dt.hour(),
                dt.minute(),
                dt.second()
            )),
            'r' => out.push_str(&format!(
                "{hour12:02}:{:02}:{:02} {}",
                dt.minute(),
                dt.second(),
                if dt.hour() < 12 { "AM" } else { "PM" }
            )),
            'W' => out.push_str(WEEKDAY_NAMES[weekday]),
            'a' => out.push_str(&WEEKDAY_NAMES[weekday][..3]),
            'M' => out.push_str(MONTH_NAMES[month0]),
            'b' => out.push_str(&MONTH_NAMES[month0][..3]),
            'j' => out.push_str(&format!("{:03}", dt.ordinal())),
            'w' => out.push_str(&dt.weekday().num_days_from_sunday().to_string()),
            'U' => out.push_str(&format!(
                "{:02}",
                calc_week(dt.date(), false, false, true).0
            )),
            'u' => out.push_str(&format!(
                "{:02}",
                calc_week(dt.date(), true, false, false).0
            )),
            'V' => out.push_str(&format!("{:02}", calc_week(dt.date(), false, true, true).0)),
            'v' => out.push_str(&format!("{:02}", calc_week(dt.date(), true, true, false).0)),
            'X' => out.push_str(&format!("{:04}", calc_week(dt.date(), false, true, true).1)),
            'x' => out.push_str(&format!("{:04}", calc_week(dt.date(), true, true, false).1)),
            other => out.push(other),
        }
    }
    out
}

fn days_in_year(year: i32) -> i64 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// MySQL's `calc_week` (sql-common/my_time.c), ported literally: week number and its year.
/// `monday_first`: weeks start on Monday; `week_year`: the week belongs to the year of its
/// majority (modes 2, 3); `first_weekday`: week 1 starts on the first Monday/Sunday instead of
/// being the first week with 4 or more days in the year.
fn calc_week(
    date: NaiveDate,
    monday_first: bool,
    mut week_year: bool,
    first_weekday: bool,
) -> (i64, i32) {
    let mut year = date.year();
    let Some(jan1) = NaiveDate::from_ymd_opt(year, 1, 1) else {
        return (0, year);
    };
    let daynr = i64::from(date.num_days_from_ce());
    let mut first_daynr = i64::from(jan1.num_days_from_ce());
    let mut weekday = i64::from(if monday_first {
        jan1.weekday().num_days_from_monday()
    } else {
        jan1.weekday().num_days_from_sunday()
    });
    let counts_first =
        |weekday: i64| (first_weekday && weekday != 0) || (!first_weekday && weekday >= 4);
    if date.month() == 1 && i64::from(date.day()) <= 7 - weekday {
        if !week_year && counts_first(weekday) {
            return (0, year);
        }
        week_year = true;
        year -= 1;
        let days = days_in_year(year);
        first_daynr -= days;
        weekday = (weekday + 53 * 7 - days).rem_euclid(7);
    }
    let days = if counts_first(weekday) {
        daynr - (first_daynr + (7 - weekday))
    } else {
        daynr - (first_daynr - weekday)
    };
    if week_year && days >= 52 * 7 {
        weekday = (weekday + days_in_year(year)).rem_euclid(7);
        if (!first_weekday && weekday < 4) || (first_weekday && weekday == 0) {
            return (1, year + 1);
        }
    }
    (days / 7 + 1, year)
}
