//! The evaluator: walks an [`Expr`] tree to a value.
//!
//! Runtime values are NULL, exact decimals, text, booleans, dates, datetimes (wall-clock in the
//! context's zone) and intervals (only meaningful next to a date). Conversions between them
//! follow MySQL where that is safe and fail loudly where MySQL would warn and guess.

use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

use super::functions;
use super::lexer::StrPart;
use super::parser::{BinOp, Kind, Unit};
use super::{Expr, ExprError};
use crate::convert;
use crate::placeholder::Context;
use crate::record::value_text;

/// Extra digits of scale a division adds, as MySQL's `div_precision_increment` default.
const DIV_SCALE_INCREMENT: u32 = 4;
/// MySQL computes decimals in groups of this many digits.
const DIGITS_PER_GROUP: u32 = 9;
/// Most digits after the point a decimal can hold.
const MAX_SCALE: u32 = 28;

/// A runtime value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Num(Decimal),
    /// A quotient (or a value computed from one): the value with MySQL's internal precision
    /// (whole groups of 9 digits, truncated) and the scale it is shown with. MySQL computes
    /// `10 / 3 * 3` from `3.333333333` and shows `10.0000`; we do the same.
    Approx(Decimal, u32),
    Str(String),
    Bool(bool),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Interval(i64, Unit),
}

impl Val {
    /// A placeholder's JSON value as a SQL literal would read: numbers stay numbers, objects and
    /// arrays become their JSON text.
    pub(crate) fn from_json(value: &Value) -> Val {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => {
                let text = n.to_string();
                Decimal::from_str_exact(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map(Val::Num)
                    .unwrap_or(Val::Str(text))
            }
            Value::String(s) => Val::Str(s.clone()),
            other => Val::Str(other.to_string()),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// Text as MySQL would show it; None for NULL.
    pub(crate) fn text(&self) -> Option<String> {
        Some(match self {
            Val::Null => return None,
            Val::Num(n) => n.to_string(),
            Val::Approx(n, scale) => shown(*n, *scale).to_string(),
            Val::Str(s) => s.clone(),
            Val::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Val::Date(d) => d.format(convert::DATE_FORMAT).to_string(),
            Val::DateTime(dt) => datetime_text(*dt),
            Val::Interval(n, unit) => format!("INTERVAL {n} {unit:?}").to_uppercase(),
        })
    }

    /// The value as a number; None for NULL; an error for text that is not a number.
    pub(crate) fn num(&self, offset: usize) -> Result<Option<Decimal>, ExprError> {
        match self {
            Val::Null => Ok(None),
            Val::Num(n) | Val::Approx(n, _) => Ok(Some(*n)),
            Val::Bool(b) => Ok(Some(Decimal::from(u8::from(*b)))),
            Val::Str(s) => convert::parse_decimal_text(s.trim())
                .map(Some)
                .ok_or_else(|| ExprError::new(format!("{} is not a number", quote(s)), offset)),
            Val::Date(_) | Val::DateTime(_) => Err(ExprError::new(
                "a date is not a number (use UNIX_TIMESTAMP or DATE_FORMAT)",
                offset,
            )),
            Val::Interval(..) => Err(interval_misplaced(offset)),
        }
    }

    /// The value as a whole number (rounded half away from zero, saturating); None for NULL.
    pub(crate) fn int(&self, offset: usize) -> Result<Option<i64>, ExprError> {
        Ok(self.num(offset)?.map(round_to_i64))
    }

    /// The value as a wall-clock datetime, and whether it is a bare date; None for NULL.
    /// Text is read as a date or datetime; numbers as epoch seconds or milliseconds.
    pub(crate) fn datetime(
        &self,
        ctx: &Context<'_>,
        offset: usize,
    ) -> Result<Option<(NaiveDateTime, bool)>, ExprError> {
        let unreadable =
            |shown: String| ExprError::new(format!("cannot read {shown} as a date"), offset);
        match self {
            Val::Null => Ok(None),
            Val::Date(d) => Ok(Some((d.and_time(NaiveTime::MIN), true))),
            Val::DateTime(dt) => Ok(Some((*dt, false))),
            Val::Str(s) => {
                let t = s.trim();
                let parsed = convert::to_naive_datetime(&Value::String(t.to_string()), ctx.tz)
                    .ok_or_else(|| unreadable(quote(s)))?;
                let epoch_digits =
                    t.chars().all(|c| c.is_ascii_digit()) && matches!(t.len(), 10 | 13);
                let is_date = !t.contains(':') && !epoch_digits;
                Ok(Some((parsed, is_date)))
            }
            Val::Num(n) | Val::Approx(n, _) => convert::number_to_naive(*n, ctx.tz)
                .map(|dt| Some((dt, false)))
                .ok_or_else(|| unreadable(n.to_string())),
            Val::Bool(b) => Err(unreadable(b.to_string())),
            Val::Interval(..) => Err(interval_misplaced(offset)),
        }
    }

    /// The value and the scale it shows with, for arithmetic; None for NULL.
    fn scaled(&self, offset: usize) -> Result<Option<(Decimal, u32)>, ExprError> {
        match self {
            Val::Approx(n, scale) => Ok(Some((*n, *scale))),
            other => Ok(other.num(offset)?.map(|n| (n, n.scale()))),
        }
    }

    /// The value as compared: a quotient as shown (MySQL finds `1/3*3 = 1` true).
    fn compared(&self, offset: usize) -> Result<Option<Decimal>, ExprError> {
        match self {
            Val::Approx(n, scale) => Ok(Some(shown(*n, *scale))),
            other => other.num(offset),
        }
    }

    /// MySQL truthiness: NULL is unknown, zero and non-numeric text are false.
    pub(crate) fn truthy(&self) -> Option<bool> {
        match self {
            Val::Null => None,
            Val::Bool(b) => Some(*b),
            Val::Num(n) => Some(!n.is_zero()),
            // MySQL tests the unrounded quotient: IF(1/3*3 - 1, ..) is true.
            Val::Approx(n, _) => Some(!n.is_zero()),
            Val::Str(s) => {
                Some(convert::parse_decimal_text(s.trim()).is_some_and(|n| !n.is_zero()))
            }
            Val::Date(_) | Val::DateTime(_) | Val::Interval(..) => Some(true),
        }
    }
}

/// `'text'` as shown in messages.
pub(crate) fn quote(s: &str) -> String {
    let shown: String = s.chars().take(60).collect();
    if shown.len() < s.len() {
        format!("'{shown}...'")
    } else {
        format!("'{shown}'")
    }
}

pub(crate) fn interval_misplaced(offset: usize) -> ExprError {
    ExprError::new(
        "INTERVAL only goes with a date: DATE_ADD(date, INTERVAL n UNIT) or date + INTERVAL n UNIT",
        offset,
    )
}

/// `YYYY-MM-DD HH:MM:SS`, with the fraction of a second only when there is one (trailing
/// zeros dropped: `12.25`, as MySQL shows a value with two fractional digits).
pub(crate) fn datetime_text(dt: NaiveDateTime) -> String {
    if dt.and_utc().timestamp_subsec_nanos() == 0 {
        dt.format(convert::DATETIME_FORMAT).to_string()
    } else {
        let text = dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        text.trim_end_matches('0').to_string()
    }
}

/// `n` rounded (half away from zero) to exactly `scale` digits after the point.
pub(crate) fn shown(n: Decimal, scale: u32) -> Decimal {
    let mut r = n.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(scale);
    r
}

/// A computed number: exact when its scale is the one it shows with, else a quotient.
fn number(value: Decimal, scale: u32) -> Val {
    if value.scale() == scale {
        Val::Num(value)
    } else {
        Val::Approx(value, scale)
    }
}

/// Round half away from zero to an i64, saturating at the ends.
pub(crate) fn round_to_i64(n: Decimal) -> i64 {
    let rounded = n.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).unwrap_or(if n.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The JSON result of an expression (see the module documentation for the shapes).
pub(crate) fn to_json(val: Val, offset: usize) -> Result<Value, ExprError> {
    let json_number = |n: Decimal| {
        if n.scale() == 0
            && let Ok(i) = i64::try_from(n)
        {
            return Value::from(i);
        }
        Value::String(n.to_string())
    };
    Ok(match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Num(n) => json_number(n),
        Val::Approx(n, scale) => json_number(shown(n, scale)),
        Val::Str(s) => Value::String(s),
        Val::Date(d) => Value::String(d.format(convert::DATE_FORMAT).to_string()),
        Val::DateTime(dt) => Value::String(datetime_text(dt)),
        Val::Interval(..) => return Err(interval_misplaced(offset)),
    })
}

/// Evaluate one node.
pub(crate) fn eval(expr: &Expr, ctx: &Context<'_>) -> Result<Val, ExprError> {
    let offset = expr.offset;
    match &expr.kind {
        Kind::Null => Ok(Val::Null),
        Kind::Bool(b) => Ok(Val::Bool(*b)),
        Kind::Num(n) => Ok(Val::Num(*n)),
        Kind::Str(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    StrPart::Text(t) => out.push_str(t),
                    StrPart::Hole(hole) => {
                        let value = hole
                            .resolve(ctx)
                            .map_err(|e| ExprError::new(e.message(), offset))?;
                        out.push_str(&value_text(&value));
                    }
                }
            }
            Ok(Val::Str(out))
        }
        Kind::Hole(hole) => hole
            .resolve(ctx)
            .map(|v| Val::from_json(&v))
            .map_err(|e| ExprError::new(e.message(), offset)),
        Kind::Neg(inner) => {
            let v = eval(inner, ctx)?;
            match v {
                Val::Interval(n, unit) => Ok(Val::Interval(n.saturating_neg(), unit)),
                Val::Approx(n, scale) => Ok(Val::Approx(-n, scale)),
                other => Ok(other.num(inner.offset)?.map_or(Val::Null, |n| Val::Num(-n))),
            }
        }
        Kind::Not(inner) => Ok(eval(inner, ctx)?
            .truthy()
            .map_or(Val::Null, |b| Val::Bool(!b))),
        Kind::Interval(amount, unit) => {
            let n = eval(amount, ctx)?;
            Ok(n.int(amount.offset)?
                .map_or(Val::Null, |n| Val::Interval(n, *unit)))
        }
        Kind::Binary(op, left, right) => {
            let l = eval(left, ctx)?;
            let r = eval(right, ctx)?;
            binary(*op, (l, left.offset), (r, right.offset), ctx, offset)
        }
        Kind::Call(func, args) => functions::call(*func, args, ctx, offset),
    }
}

fn binary(
    op: BinOp,
    (l, lo): (Val, usize),
    (r, ro): (Val, usize),
    ctx: &Context<'_>,
    offset: usize,
) -> Result<Val, ExprError> {
    match op {
        BinOp::And => {
            return Ok(match (l.truthy(), r.truthy()) {
                (Some(false), _) | (_, Some(false)) => Val::Bool(false),
                (Some(true), Some(true)) => Val::Bool(true),
                _ => Val::Null,
            });
        }
        BinOp::Or => {
            return Ok(match (l.truthy(), r.truthy()) {
                (Some(true), _) | (_, Some(true)) => Val::Bool(true),
                (Some(false), Some(false)) => Val::Bool(false),
                _ => Val::Null,
            });
        }
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let Some(ord) = compare((&l, lo), (&r, ro), ctx)? else {
                return Ok(Val::Null);
            };
            let result = match op {
                BinOp::Eq => ord == Ordering::Equal,
                BinOp::Ne => ord != Ordering::Equal,
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            };
            return Ok(Val::Bool(result));
        }
        _ => {}
    }
    // Date arithmetic: date + INTERVAL, INTERVAL + date, date - INTERVAL.
    match (&l, &r, op) {
        (_, Val::Interval(n, unit), BinOp::Add | BinOp::Sub) => {
            let n = if op == BinOp::Sub {
                n.saturating_neg()
            } else {
                *n
            };
            return functions::add_interval(&l, lo, n, *unit, ctx);
        }
        (Val::Interval(n, unit), _, BinOp::Add) => {
            return functions::add_interval(&r, ro, *n, *unit, ctx);
        }
        (Val::Interval(..), _, _) => return Err(interval_misplaced(lo)),
        (_, Val::Interval(..), _) => return Err(interval_misplaced(ro)),
        _ => {}
    }
    let (Some((a, sa)), Some((b, sb))) = (l.scaled(lo)?, r.scaled(ro)?) else {
        return Ok(Val::Null);
    };
    let overflow = || ExprError::new("number out of range", offset);
    let (value, scale) = match op {
        BinOp::Add => (a.checked_add(b).ok_or_else(overflow)?, sa.max(sb)),
        BinOp::Sub => (a.checked_sub(b).ok_or_else(overflow)?, sa.max(sb)),
        BinOp::Mul => (
            a.checked_mul(b).ok_or_else(overflow)?,
            (sa + sb).min(MAX_SCALE),
        ),
        BinOp::Div => {
            if b.is_zero() {
                return Ok(Val::Null); // MySQL: division by zero is NULL
            }
            // MySQL stores decimals in groups of nine digits: a quotient gets the operands'
            // groups after the point, plus one more group if their padding is shorter than
            // the increment, and is truncated there (strings/decimal.cc, do_div_mod).
            let groups = |digits: u32| digits.div_ceil(DIGITS_PER_GROUP);
            let padding = |digits: u32| groups(digits) * DIGITS_PER_GROUP - digits;
            let extra = DIV_SCALE_INCREMENT.saturating_sub(padding(a.scale()) + padding(b.scale()));
            let internal = ((groups(a.scale()) + groups(b.scale()) + groups(extra))
                * DIGITS_PER_GROUP)
                .min(MAX_SCALE);
            let mut q = a
                .checked_div(b)
                .ok_or_else(overflow)?
                .round_dp_with_strategy(internal, RoundingStrategy::ToZero);
            q.rescale(internal);
            (q, (sa + DIV_SCALE_INCREMENT).min(MAX_SCALE))
        }
        BinOp::Mod => {
            if b.is_zero() {
                return Ok(Val::Null);
            }
            let mut r = a.checked_rem(b).ok_or_else(overflow)?;
            r.rescale(a.scale().max(b.scale()));
            (r, sa.max(sb))
        }
        _ => return Err(ExprError::new("unsupported operator", offset)),
    };
    Ok(number(value, scale))
}

/// Compare two values the way MySQL does: dates as dates, numbers as numbers, text as
/// (binary) text. None when either is NULL.
pub(crate) fn compare(
    (l, lo): (&Val, usize),
    (r, ro): (&Val, usize),
    ctx: &Context<'_>,
) -> Result<Option<Ordering>, ExprError> {
    if l.is_null() || r.is_null() {
        return Ok(None);
    }
    let is_time = |v: &Val| matches!(v, Val::Date(_) | Val::DateTime(_));
    if is_time(l) || is_time(r) {
        let (Some((a, _)), Some((b, _))) = (l.datetime(ctx, lo)?, r.datetime(ctx, ro)?) else {
            return Ok(None);
        };
        return Ok(Some(a.cmp(&b)));
    }
    let is_num = |v: &Val| matches!(v, Val::Num(_) | Val::Approx(..) | Val::Bool(_));
    if is_num(l) || is_num(r) {
        let (Some(a), Some(b)) = (l.compared(lo)?, r.compared(ro)?) else {
            return Ok(None);
        };
        return Ok(Some(a.cmp(&b)));
    }
    match (l, r) {
        (Val::Str(a), Val::Str(b)) => Ok(Some(a.cmp(b))),
        (Val::Interval(..), _) => Err(interval_misplaced(lo)),
        _ => Err(interval_misplaced(ro)),
    }
}
