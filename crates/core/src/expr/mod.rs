//! `_function` expressions: a small MySQL-style expression language evaluated by Ferry itself.
//!
//! A value such as `_function DATE_FORMAT(DATE_ADD(NOW(),INTERVAL - 25 DAY),'%Y-%m-%d 00:00:00')`
//! (seed 001) is tokenized (`lexer.rs`), parsed by recursive descent into an [`Expr`] once per
//! scheme (`parser.rs`), and evaluated per record or page (`eval.rs`, `functions.rs`).
//!
//! What it supports: string literals (`'..'`, `".."`), exact numbers (`rust_decimal`, never
//! f64; `1.5`, `.5`, `1e3`), `NULL`, `TRUE`, `FALSE`, `+ - * / %` with the usual precedence,
//! unary minus, comparisons (`= != <> < <= > >=`), `AND`, `OR`, `NOT`, parentheses,
//! `INTERVAL n UNIT` (SECOND MINUTE HOUR DAY WEEK MONTH QUARTER YEAR), record placeholders
//! (`{field}`, see [`crate::template`]), and these functions (names are case-insensitive):
//!
//! - dates: `NOW()`, `SYSDATE()`, `CURRENT_TIMESTAMP[()]`, `CURDATE()`, `CURRENT_DATE[()]`,
//!   `DATE(x)`, `DATE_ADD(d, INTERVAL n UNIT)`, `DATE_SUB`, `ADDDATE`, `SUBDATE` (also with a
//!   number of days), `DATE_FORMAT(d, pattern)` (every MySQL specifier: `%Y %y %m %c %d %e %H
//!   %k %h %I %l %i %s %S %f %p %W %a %M %b %j %T %r %D %U %u %V %v %X %x %w %%`),
//!   `UNIX_TIMESTAMP([d])`, `FROM_UNIXTIME(n[, pattern])`, `DATEDIFF(a, b)`;
//! - NULL and conditions: `IFNULL`, `COALESCE`, `IF(cond, a, b)`, `NULLIF`;
//! - numbers: `ROUND(x[, d])`, `FLOOR`, `CEIL`, `CEILING`, `ABS`;
//! - text: `CONCAT` (NULL if any argument is NULL), `CONCAT_WS`, `REPLACE`,
//!   `SUBSTRING`/`SUBSTR` (1-based, negative start counts from the end), `LEFT`, `RIGHT`,
//!   `LPAD`, `RPAD`, `UPPER`/`UCASE`, `LOWER`/`LCASE`, `TRIM`, `LTRIM`, `RTRIM`, `LENGTH`
//!   (bytes, as MySQL), `CHAR_LENGTH`/`CHARACTER_LENGTH`.
//!
//! Times are wall-clock times in the context's zone: `NOW()` is the run's now in that zone,
//! `UNIX_TIMESTAMP` and `FROM_UNIXTIME` convert through it.
//!
//! Differences from MySQL, on purpose: a value that does not convert (`1 + 'abc'`, a date that
//! does not parse) is an error instead of a warning and a silent 0 or NULL, because a wrong
//! number written to a finance table is worse than a dead letter; a number used as a date is
//! epoch seconds or milliseconds (as DingTalk sends them), except that 8- and 14-digit whole
//! numbers are `YYYYMMDD[HHMMSS]` as in MySQL; string comparison is binary
//! (case-sensitive); `UPPER`/`LOWER` map character by character as MySQL does.
//!
//! Numbers follow MySQL's decimal arithmetic, checked against MariaDB 10.11 on thousands of
//! generated expressions: sums keep the larger scale, products add scales, `/` shows four more
//! digits than its dividend (`10 / 4` is `2.5000`) while carrying nine-digit groups inside the
//! expression (`10 / 3 * 3` is `10.0000`), division by zero is NULL, `ROUND` rounds half away
//! from zero. Results: a whole number (scale 0) becomes a JSON integer, any other decimal a
//! JSON string with its exact digits (`"1.50"`: a JSON number would go through f64), booleans
//! JSON booleans, dates `YYYY-MM-DD`, datetimes `YYYY-MM-DD HH:MM:SS`.

mod eval;
mod functions;
mod lexer;
mod parser;

use std::fmt;

use serde_json::Value;

use crate::placeholder::Context;

pub(crate) use crate::date_format::date_format;

/// Deepest nesting of parentheses, calls and unary operators accepted, so that hostile input
/// cannot overflow the stack.
const MAX_DEPTH: usize = 64;

/// A parse or evaluation failure: what, and at which character of the expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ExprError {
    /// What went wrong (`unknown function FOO`).
    pub message: String,
    /// Character offset in the expression text.
    pub offset: usize,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.message, self.offset)
    }
}

impl ExprError {
    pub(crate) fn new(message: impl Into<String>, offset: usize) -> Self {
        ExprError {
            message: message.into(),
            offset,
        }
    }
}

/// A parsed expression; evaluate it many times with [`Expr::eval`].
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub(crate) kind: parser::Kind,
    /// Character offset of this node in the source text.
    pub(crate) offset: usize,
}

impl Expr {
    /// Evaluate against `ctx` (the record for placeholders, the clock and zone for times).
    pub fn eval(&self, ctx: &Context<'_>) -> Result<Value, ExprError> {
        let val = eval::eval(self, ctx)?;
        eval::to_json(val, self.offset)
    }
}

/// Parse an expression. A leading `_function` keyword is accepted and skipped (offsets stay
/// relative to `src`).
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let trimmed = src.trim_start();
    let body = match trimmed.strip_prefix("_function") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            let skipped = src.len() - rest.len();
            // Blank the keyword out so that offsets still count from the start of `src`.
            let mut blanked = " ".repeat(src[..skipped].chars().count());
            blanked.push_str(rest);
            blanked
        }
        _ => src.to_string(),
    };
    let tokens = lexer::tokenize(&body)?;
    parser::Parser::new(tokens).parse_all()
}

/// Parse and evaluate in one step.
pub fn eval(src: &str, ctx: &Context<'_>) -> Result<Value, ExprError> {
    parse(src)?.eval(ctx)
}

#[cfg(test)]
mod tests;
