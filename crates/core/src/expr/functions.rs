//! The functions an expression may call, and MySQL's `DATE_FORMAT`.
//!
//! Dates and times: `NOW()`, `SYSDATE()`, `CURRENT_TIMESTAMP[()]`, `CURDATE()`,
//! `CURRENT_DATE[()]`, `DATE(x)`, `DATE_ADD(d, INTERVAL n UNIT)`, `DATE_SUB(..)`, `ADDDATE`,
//! `SUBDATE` (also with a plain number of days), `DATE_FORMAT(d, pattern)`,
//! `UNIX_TIMESTAMP([d])`, `FROM_UNIXTIME(n[, pattern])`, `DATEDIFF(a, b)` (days).
//! Null handling: `IFNULL(a, b)`, `COALESCE(a, ...)`, `IF(cond, a, b)`, `NULLIF(a, b)`.
//! Numbers: `ROUND(x[, d])` (half away from zero, as MySQL does for exact numbers),
//! `FLOOR`, `CEIL`, `CEILING`, `ABS`.
//! Text (counted in characters unless said): `CONCAT` (NULL if any argument is NULL),
//! `CONCAT_WS(sep, ...)` (skips NULLs), `REPLACE`, `SUBSTRING`/`SUBSTR(s, pos[, len])` (1-based,
//! negative `pos` counts from the end), `LEFT`, `RIGHT`, `LPAD`, `RPAD`, `UPPER`/`UCASE`,
//! `LOWER`/`LCASE`,
//! `TRIM`, `LTRIM`, `RTRIM` (spaces only, as MySQL), `LENGTH` (UTF-8 bytes, as MySQL),
//! `CHAR_LENGTH`/`CHARACTER_LENGTH`.

use chrono::{DateTime, Months, TimeDelta, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};

use super::eval::{Val, compare, eval, interval_misplaced};
use super::parser::{Func, Unit};
use super::{Expr, ExprError};
use crate::convert;
use crate::date_format::date_format;
use crate::placeholder::Context;

/// Most digits a decimal can carry after the point (and the largest power of ten it holds).
const MAX_DECIMAL_DIGITS: u32 = 28;
const MICROS_PER_SECOND: i64 = 1_000_000;

/// A function argument, evaluated, with its offset for messages.
struct Arg {
    val: Val,
    offset: usize,
}

/// Call `func` on `args` (already checked for arity by the parser).
pub(crate) fn call(
    func: Func,
    args: &[Expr],
    ctx: &Context<'_>,
    offset: usize,
) -> Result<Val, ExprError> {
    // Lazy functions evaluate only what they return, as MySQL does.
    match func {
        Func::If => {
            let cond = eval(first(args, offset)?, ctx)?;
            let branch = if cond.truthy() == Some(true) { 1 } else { 2 };
            return eval(nth(args, branch, offset)?, ctx);
        }
        Func::Ifnull | Func::Coalesce => {
            for arg in args {
                let v = eval(arg, ctx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            return Ok(Val::Null);
        }
        _ => {}
    }
    let args = args
        .iter()
        .map(|a| {
            eval(a, ctx).map(|val| Arg {
                val,
                offset: a.offset,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let arg = |i: usize| {
        args.get(i).ok_or_else(|| {
            ExprError::new(
                format!("{} is missing argument {}", func.name(), i + 1),
                offset,
            )
        })
    };
    let now = || {
        let now = ctx.now_local();
        now.with_nanosecond(0).unwrap_or(now)
    };
    Ok(match func {
        Func::Now | Func::Sysdate | Func::CurrentTimestamp => Val::DateTime(now()),
        Func::Curdate | Func::CurrentDate => Val::Date(now().date()),
        Func::Date => {
            let a = arg(0)?;
            match a.val.datetime(ctx, a.offset)? {
                Some((dt, _)) => Val::Date(dt.date()),
                None => Val::Null,
            }
        }
        Func::DateAdd | Func::AddDate | Func::DateSub | Func::SubDate => {
            let (date, amount) = (arg(0)?, arg(1)?);
            let negate = matches!(func, Func::DateSub | Func::SubDate);
            let (n, unit) = match &amount.val {
                Val::Null => return Ok(Val::Null),
                Val::Interval(n, unit) => (*n, *unit),
                other if matches!(func, Func::AddDate | Func::SubDate) => {
                    match other.int(amount.offset)? {
                        Some(n) => (n, Unit::Day),
                        None => return Ok(Val::Null),
                    }
                }
                _ => {
                    return Err(ExprError::new(
                        format!(
                            "{} needs INTERVAL n UNIT as its second argument",
                            func.name()
                        ),
                        amount.offset,
                    ));
                }
            };
            let n = if negate { n.saturating_neg() } else { n };
            add_interval(&date.val, date.offset, n, unit, ctx)?
        }
        Func::DateFormat => {
            let (date, pattern) = (arg(0)?, arg(1)?);
            match (date.val.datetime(ctx, date.offset)?, pattern.val.text()) {
                (Some((dt, _)), Some(p)) => Val::Str(date_format(dt, &p)),
                _ => Val::Null,
            }
        }
        Func::DateDiff => {
            let (a, b) = (arg(0)?, arg(1)?);
            match (
                a.val.datetime(ctx, a.offset)?,
                b.val.datetime(ctx, b.offset)?,
            ) {
                (Some((a, _)), Some((b, _))) => {
                    Val::Num(Decimal::from((a.date() - b.date()).num_days()))
                }
                _ => Val::Null,
            }
        }
        Func::Nullif => {
            let (a, b) = (arg(0)?, arg(1)?);
            let equal = compare((&a.val, a.offset), (&b.val, b.offset), ctx)?
                == Some(std::cmp::Ordering::Equal);
            if equal { Val::Null } else { a.val.clone() }
        }
        Func::Lpad | Func::Rpad => {
            let (s, n, pad) = (arg(0)?, arg(1)?, arg(2)?);
            let (Some(text), Some(len), Some(pad)) =
                (s.val.text(), n.val.int(n.offset)?, pad.val.text())
            else {
                return Ok(Val::Null);
            };
            match pad_text(&text, len, &pad, func == Func::Lpad) {
                Some(padded) => Val::Str(padded),
                None => Val::Null,
            }
        }
        Func::UnixTimestamp => {
            let local = match args.first() {
                None => now(),
                Some(a) => match a.val.datetime(ctx, a.offset)? {
                    Some((dt, _)) => dt,
                    None => return Ok(Val::Null),
                },
            };
            let instant = convert::resolve_local(local, ctx.tz)
                .ok_or_else(|| ExprError::new("date out of range", offset))?;
            let micros = i64::from(instant.timestamp_subsec_micros());
            let seconds = Decimal::from(instant.timestamp());
            if micros == 0 {
                Val::Num(seconds)
            } else {
                Val::Num((seconds + Decimal::new(micros, 6)).normalize())
            }
        }
        Func::FromUnixtime => {
            let a = arg(0)?;
            let Some(epoch) = a.val.num(a.offset)? else {
                return Ok(Val::Null);
            };
            let secs = i64::try_from(epoch.trunc()).ok();
            let micros = (epoch.fract() * Decimal::from(MICROS_PER_SECOND)).trunc();
            let instant = secs.and_then(|s| {
                let micros = u32::try_from(i64::try_from(micros).ok()?).ok()?;
                DateTime::from_timestamp(s, micros * 1000)
            });
            let Some(instant) = instant.filter(|_| !epoch.is_sign_negative()) else {
                return Err(ExprError::new(
                    format!("FROM_UNIXTIME: {epoch} is not a Unix time in seconds"),
                    a.offset,
                ));
            };
            let local = convert::local_time(instant.naive_utc(), ctx.tz)
                .ok_or_else(|| ExprError::new("date out of range", offset))?;
            match args.get(1) {
                None => Val::DateTime(local),
                Some(p) => match p.val.text() {
                    Some(p) => Val::Str(date_format(local, &p)),
                    None => Val::Null,
                },
            }
        }
        Func::Concat => {
            let mut out = String::new();
            for a in &args {
                match a.val.text() {
                    Some(t) => out.push_str(&t),
                    None => return Ok(Val::Null),
                }
            }
            Val::Str(out)
        }
        Func::ConcatWs => {
            let Some(sep) = arg(0)?.val.text() else {
                return Ok(Val::Null);
            };
            let parts: Vec<String> = args[1..].iter().filter_map(|a| a.val.text()).collect();
            Val::Str(parts.join(&sep))
        }
        Func::Round => {
            let x = arg(0)?;
            let Some(n) = x.val.num(x.offset)? else {
                return Ok(Val::Null);
            };
            let digits = match args.get(1) {
                None => 0,
                Some(d) => match d.val.int(d.offset)? {
                    Some(d) => d,
                    None => return Ok(Val::Null),
                },
            };
            Val::Num(round(n, digits).ok_or_else(|| ExprError::new("number out of range", offset))?)
        }
        Func::Floor | Func::Ceil | Func::Ceiling | Func::Abs => {
            let x = arg(0)?;
            let Some(n) = x.val.num(x.offset)? else {
                return Ok(Val::Null);
            };
            if let (Func::Abs, Val::Approx(_, scale)) = (func, &x.val) {
                return Ok(Val::Approx(n.abs(), *scale));
            }
            Val::Num(match func {
                Func::Floor => n.round_dp_with_strategy(0, RoundingStrategy::ToNegativeInfinity),
                Func::Abs => n.abs(),
                _ => n.round_dp_with_strategy(0, RoundingStrategy::ToPositiveInfinity),
            })
        }
        Func::Replace => {
            let (Some(s), Some(from), Some(to)) =
                (arg(0)?.val.text(), arg(1)?.val.text(), arg(2)?.val.text())
            else {
                return Ok(Val::Null);
            };
            if from.is_empty() {
                Val::Str(s)
            } else {
                Val::Str(s.replace(&from, &to))
            }
        }
        Func::Substring | Func::Substr => {
            let (s, pos) = (arg(0)?, arg(1)?);
            let (Some(text), Some(pos)) = (s.val.text(), pos.val.int(pos.offset)?) else {
                return Ok(Val::Null);
            };
            let len = match args.get(2) {
                None => None,
                Some(l) => match l.val.int(l.offset)? {
                    Some(l) => Some(l),
                    None => return Ok(Val::Null),
                },
            };
            Val::Str(substring(&text, pos, len))
        }
        Func::Left | Func::Right => {
            let (s, n) = (arg(0)?, arg(1)?);
            let (Some(text), Some(n)) = (s.val.text(), n.val.int(n.offset)?) else {
                return Ok(Val::Null);
            };
            let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            let count = text.chars().count();
            Val::Str(if func == Func::Left {
                text.chars().take(n).collect()
            } else {
                text.chars().skip(count.saturating_sub(n)).collect()
            })
        }
        Func::Upper
        | Func::Ucase
        | Func::Lower
        | Func::Lcase
        | Func::Trim
        | Func::Ltrim
        | Func::Rtrim
        | Func::Length
        | Func::CharLength
        | Func::CharacterLength => {
            let Some(text) = arg(0)?.val.text() else {
                return Ok(Val::Null);
            };
            match func {
                Func::Upper | Func::Ucase => Val::Str(map_case(&text, char::to_uppercase)),
                Func::Lower | Func::Lcase => Val::Str(map_case(&text, char::to_lowercase)),
                Func::Trim => Val::Str(text.trim_matches(' ').to_string()),
                Func::Ltrim => Val::Str(text.trim_start_matches(' ').to_string()),
                Func::Rtrim => Val::Str(text.trim_end_matches(' ').to_string()),
                Func::Length => Val::Num(Decimal::from(text.len())),
                _ => Val::Num(Decimal::from(text.chars().count())),
            }
        }
        Func::If | Func::Ifnull | Func::Coalesce => Val::Null, // handled above
    })
}

/// Change case character by character, as MySQL does: a character whose other case is
/// several characters (`ß` -> `SS`) stays as it is.
fn map_case<I: Iterator<Item = char>>(text: &str, change: fn(char) -> I) -> String {
    text.chars()
        .map(|c| {
            let mut changed = change(c);
            match (changed.next(), changed.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        })
        .collect()
}

fn first(args: &[Expr], offset: usize) -> Result<&Expr, ExprError> {
    nth(args, 0, offset)
}

fn nth(args: &[Expr], i: usize, offset: usize) -> Result<&Expr, ExprError> {
    args.get(i)
        .ok_or_else(|| ExprError::new(format!("missing argument {}", i + 1), offset))
}

/// `date + INTERVAL n unit`. A bare date stays a date for DAY and larger units; months clamp
/// to the month's last day (`2024-01-31 + INTERVAL 1 MONTH` is `2024-02-29`), as MySQL does.
pub(crate) fn add_interval(
    date: &Val,
    offset: usize,
    n: i64,
    unit: Unit,
    ctx: &Context<'_>,
) -> Result<Val, ExprError> {
    if matches!(date, Val::Interval(..)) {
        return Err(interval_misplaced(offset));
    }
    let Some((dt, is_date)) = date.datetime(ctx, offset)? else {
        return Ok(Val::Null);
    };
    let out_of_range = || ExprError::new("date out of range", offset);
    let shift = |delta: Option<TimeDelta>| delta.and_then(|d| dt.checked_add_signed(d));
    let months = |m: Option<i64>| {
        let m = m?;
        let count = Months::new(u32::try_from(m.unsigned_abs()).ok()?);
        if m >= 0 {
            dt.checked_add_months(count)
        } else {
            dt.checked_sub_months(count)
        }
    };
    let result = match unit {
        Unit::Second => shift(TimeDelta::try_seconds(n)),
        Unit::Minute => shift(TimeDelta::try_minutes(n)),
        Unit::Hour => shift(TimeDelta::try_hours(n)),
        Unit::Day => shift(TimeDelta::try_days(n)),
        Unit::Week => shift(TimeDelta::try_weeks(n)),
        Unit::Month => months(Some(n)),
        Unit::Quarter => months(n.checked_mul(3)),
        Unit::Year => months(n.checked_mul(12)),
    }
    .ok_or_else(out_of_range)?;
    let keeps_date = !matches!(unit, Unit::Second | Unit::Minute | Unit::Hour);
    Ok(if is_date && keeps_date {
        Val::Date(result.date())
    } else {
        Val::DateTime(result)
    })
}

/// MySQL `ROUND(n, digits)`: half away from zero; a positive `digits` sets the scale of a
/// decimal (`ROUND(1.2, 3)` is `1.200`) and leaves a whole number alone (`ROUND(12, 2)` is
/// `12`); a negative one rounds left of the point.
fn round(n: Decimal, digits: i64) -> Option<Decimal> {
    if digits >= 0 && n.scale() == 0 {
        return Some(n);
    }
    if digits >= 0 {
        let scale = u32::try_from(digits.min(i64::from(MAX_DECIMAL_DIGITS))).ok()?;
        let mut rounded = n.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
        if rounded.scale() < scale {
            rounded.rescale(scale);
        }
        return Some(rounded);
    }
    let places = u32::try_from(digits.unsigned_abs()).ok()?;
    if places > MAX_DECIMAL_DIGITS {
        return Some(Decimal::ZERO);
    }
    let mut power = Decimal::ONE;
    for _ in 0..places {
        power = power.checked_mul(Decimal::TEN)?;
    }
    let scaled = n
        .checked_div(power)?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    let mut out = scaled.checked_mul(power)?;
    out.rescale(0);
    Some(out)
}

/// Longest padded text accepted, so that `LPAD('', 1e12, 'x')` cannot exhaust memory.
const MAX_PAD_CHARS: i64 = 1 << 20;

/// MySQL `LPAD`/`RPAD`: pad (or cut) `text` to `len` characters; NULL for a negative length,
/// an empty pad that would be needed, or a length past [`MAX_PAD_CHARS`].
fn pad_text(text: &str, len: i64, pad: &str, left: bool) -> Option<String> {
    if !(0..=MAX_PAD_CHARS).contains(&len) {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    let count = text.chars().count();
    if len <= count {
        return Some(text.chars().take(len).collect());
    }
    if pad.is_empty() {
        return None;
    }
    let filler: String = pad.chars().cycle().take(len - count).collect();
    Some(if left {
        format!("{filler}{text}")
    } else {
        format!("{text}{filler}")
    })
}

/// MySQL `SUBSTRING(s, pos[, len])` over characters.
fn substring(text: &str, pos: i64, len: Option<i64>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let count = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let start = match pos {
        0 => return String::new(),
        p if p > 0 => p - 1,
        p => count + p,
    };
    if start < 0 || start >= count {
        return String::new();
    }
    let end = match len {
        None => count,
        Some(l) if l <= 0 => return String::new(),
        Some(l) => start.saturating_add(l).min(count),
    };
    let (start, end) = (start as usize, end as usize);
    chars[start..end].iter().collect()
}
