//! Expression tests: every function, every `DATE_FORMAT` specifier, the errors, and a
//! property test that nothing panics.

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::placeholder::Context;

const SH: Tz = chrono_tz::Asia::Shanghai;

/// 2024-05-29 10:11:12 (a Wednesday) in Shanghai.
fn now() -> DateTime<Tz> {
    SH.with_ymd_and_hms(2024, 5, 29, 10, 11, 12).unwrap()
}

fn ev(src: &str) -> Value {
    let rec = json!({"name": "O'Brien", "qty": 3, "price": "12.50", "none": null, "ms": 1717000000000_i64});
    let ctx = Context::new(now(), SH).with_record(&rec);
    match eval(src, &ctx) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e}"),
    }
}

fn err(src: &str) -> String {
    let rec = json!({"name": "x"});
    let ctx = Context::new(now(), SH).with_record(&rec);
    match eval(src, &ctx) {
        Ok(v) => panic!("{src} gave {v}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn seed_001_time_window() {
    assert_eq!(
        ev("DATE_FORMAT(DATE_ADD(NOW(),INTERVAL - 25 DAY),'%Y-%m-%d 00:00:00')"),
        json!("2024-05-04 00:00:00")
    );
    assert_eq!(
        ev("_function DATE_FORMAT(DATE_ADD(NOW(),INTERVAL - 25 DAY),'%Y-%m-%d 00:00:00')"),
        json!("2024-05-04 00:00:00")
    );
}

#[test]
fn literals() {
    assert_eq!(ev("1"), json!(1));
    assert_eq!(ev("-1"), json!(-1));
    assert_eq!(ev("1.50"), json!("1.50"));
    assert_eq!(ev("'a''b'"), json!("a'b"));
    assert_eq!(ev(r#""a\"b""#), json!("a\"b"));
    assert_eq!(ev("NULL"), Value::Null);
    assert_eq!(ev("true"), json!(true));
    assert_eq!(ev("FALSE"), json!(false));
    assert_eq!(ev("'中文😀'"), json!("中文😀"));
}

#[test]
fn arithmetic_is_exact_with_precedence() {
    assert_eq!(ev("1 + 2 * 3"), json!(7));
    assert_eq!(ev("(1 + 2) * 3"), json!(9));
    assert_eq!(ev("0.1 + 0.2"), json!("0.3"));
    assert_eq!(ev("10 - 2 - 3"), json!(5));
    assert_eq!(ev("1 / 3"), json!("0.3333"));
    assert_eq!(ev("10 / 4"), json!("2.5000"));
    assert_eq!(ev("1.5 / 2"), json!("0.75000"));
    // MySQL keeps quotients to nine digits inside an expression and rounds when showing.
    assert_eq!(ev("10 / 3 * 3"), json!("10.0000"));
    assert_eq!(ev("2 / 3 * 1000000000"), json!("666666666.0000"));
    assert_eq!(ev("1.0 / 3 / 3"), json!("0.111111111"));
    assert_eq!(
        ev("-97513 - -1516.4 / 326.90 * 643.40"),
        json!("-94528.4427654")
    );
    assert_eq!(ev("1 / 3 * 3 = 1"), json!(true));
    assert_eq!(ev("FLOOR(2 / 3 * 3)"), json!(1));
    assert_eq!(ev("ROUND(1 / 3 * 3, 6)"), json!("1.000000"));
    assert_eq!(ev("CONCAT(1 / 3)"), json!("0.3333"));
    assert_eq!(ev("ABS(-1 / 3)"), json!("0.3333"));
    assert_eq!(ev("IF(1 / 3 * 3 - 1, 'a', 'b')"), json!("a"));
    assert_eq!(ev("1 / 0"), Value::Null);
    assert_eq!(ev("7 % 3"), json!(1));
    assert_eq!(ev("7 % 0"), Value::Null);
    assert_eq!(ev("173.4 % -413.89"), json!("173.40"));
    assert_eq!(ev("-7 % 3"), json!(-1));
    assert_eq!(ev("- (2 + 3)"), json!(-5));
    assert_eq!(ev("--2"), json!(2));
    assert_eq!(ev("+2"), json!(2));
    assert_eq!(ev("1 + NULL"), Value::Null);
    assert_eq!(ev("'12.5' * 2"), json!("25.0"));
    assert_eq!(ev("{price} * {qty}"), json!("37.50"));
    assert_eq!(
        err("99999999999999999999999999 * 99999999999999999999999999"),
        "number out of range at 27"
    );
}

#[test]
fn comparisons_and_logic() {
    assert_eq!(ev("1 = 1"), json!(true));
    assert_eq!(ev("1 != 2"), json!(true));
    assert_eq!(ev("1 <> 1"), json!(false));
    assert_eq!(ev("1 < 2"), json!(true));
    assert_eq!(ev("2 <= 2"), json!(true));
    assert_eq!(ev("3 > 2"), json!(true));
    assert_eq!(ev("2 >= 3"), json!(false));
    assert_eq!(ev("'10' = 10.0"), json!(true));
    assert_eq!(ev("'b' > 'a'"), json!(true));
    assert_eq!(ev("NULL = NULL"), Value::Null);
    assert_eq!(ev("NOW() > '2024-05-01'"), json!(true));
    assert_eq!(ev("1 = 1 AND 2 = 3"), json!(false));
    assert_eq!(ev("1 = 1 OR NULL"), json!(true));
    assert_eq!(ev("NULL AND TRUE"), Value::Null);
    assert_eq!(ev("NOT 1 = 2"), json!(true));
    assert_eq!(ev("1 + 1 = 2"), json!(true));
}

#[test]
fn placeholders_are_literals() {
    assert_eq!(ev("{name}"), json!("O'Brien"));
    assert_eq!(ev("{qty} + 1"), json!(4));
    assert_eq!(ev("{none}"), Value::Null);
    assert_eq!(ev("'<{name}>'"), json!("<O'Brien>"));
    assert_eq!(
        ev("DATE_FORMAT({ms}, '%Y-%m-%d %H:%i')"),
        json!("2024-05-30 00:26")
    );
}

#[test]
fn now_and_today() {
    assert_eq!(ev("NOW()"), json!("2024-05-29 10:11:12"));
    assert_eq!(ev("now()"), json!("2024-05-29 10:11:12"));
    assert_eq!(ev("SYSDATE()"), json!("2024-05-29 10:11:12"));
    assert_eq!(ev("CURRENT_TIMESTAMP()"), json!("2024-05-29 10:11:12"));
    assert_eq!(ev("CURRENT_TIMESTAMP"), json!("2024-05-29 10:11:12"));
    assert_eq!(ev("CURDATE()"), json!("2024-05-29"));
    assert_eq!(ev("CURRENT_DATE()"), json!("2024-05-29"));
    assert_eq!(ev("CURRENT_DATE"), json!("2024-05-29"));
    assert_eq!(ev("DATE('2024-05-29 23:59:59')"), json!("2024-05-29"));
    // NOW() is wall-clock time in the context's zone, whatever zone `now` was taken in.
    let utc_now = chrono_tz::UTC
        .with_ymd_and_hms(2024, 5, 29, 20, 0, 0)
        .unwrap();
    let ctx = Context::new(utc_now, SH);
    assert_eq!(eval("NOW()", &ctx).unwrap(), json!("2024-05-30 04:00:00"));
    let ctx = Context::new(utc_now, chrono_tz::America::New_York);
    assert_eq!(eval("CURDATE()", &ctx).unwrap(), json!("2024-05-29"));
}

#[test]
fn date_add_and_sub_with_every_unit() {
    let base = "'2024-01-31 10:00:00'";
    for (n_unit, expected) in [
        ("1 SECOND", "2024-01-31 10:00:01"),
        ("90 MINUTE", "2024-01-31 11:30:00"),
        ("-3 HOUR", "2024-01-31 07:00:00"),
        ("1 DAY", "2024-02-01 10:00:00"),
        ("2 WEEK", "2024-02-14 10:00:00"),
        ("1 MONTH", "2024-02-29 10:00:00"),
        ("1 QUARTER", "2024-04-30 10:00:00"),
        ("1 YEAR", "2025-01-31 10:00:00"),
        ("1 + 1 DAY", "2024-02-02 10:00:00"),
        ("'2' day", "2024-02-02 10:00:00"),
    ] {
        assert_eq!(
            ev(&format!("DATE_ADD({base}, INTERVAL {n_unit})")),
            json!(expected),
            "{n_unit}"
        );
    }
    assert_eq!(
        ev("DATE_SUB('2024-03-31', INTERVAL 1 MONTH)"),
        json!("2024-02-29")
    );
    assert_eq!(
        ev("DATE_SUB('2024-03-01', INTERVAL 1 DAY)"),
        json!("2024-02-29")
    );
    assert_eq!(
        ev("DATE_ADD('2024-03-01', INTERVAL 1 HOUR)"),
        json!("2024-03-01 01:00:00")
    );
    assert_eq!(
        ev("DATE_SUB(NOW(), INTERVAL -1 DAY)"),
        json!("2024-05-30 10:11:12")
    );
    assert_eq!(ev("ADDDATE('2024-05-29', 3)"), json!("2024-06-01"));
    assert_eq!(
        ev("SUBDATE('2024-05-29', INTERVAL 1 YEAR)"),
        json!("2023-05-29")
    );
    assert_eq!(ev("NOW() + INTERVAL 1 DAY"), json!("2024-05-30 10:11:12"));
    assert_eq!(ev("INTERVAL 1 DAY + CURDATE()"), json!("2024-05-30"));
    assert_eq!(ev("CURDATE() - INTERVAL 1 WEEK"), json!("2024-05-22"));
    assert_eq!(ev("DATE_ADD(NULL, INTERVAL 1 DAY)"), Value::Null);
    assert_eq!(ev("DATE_ADD(NOW(), INTERVAL NULL DAY)"), Value::Null);
    assert_eq!(
        ev("DATE_ADD({ms}, INTERVAL 1 DAY)"),
        json!("2024-05-31 00:26:40")
    );
}

#[test]
fn every_date_format_specifier() {
    // 2024-05-09 08:07:06.123456, a Thursday.
    let d = "'2024-05-09 08:07:06.123456'";
    for (spec, expected) in [
        ("%Y", "2024"),
        ("%y", "24"),
        ("%m", "05"),
        ("%c", "5"),
        ("%d", "09"),
        ("%e", "9"),
        ("%H", "08"),
        ("%k", "8"),
        ("%h", "08"),
        ("%I", "08"),
        ("%l", "8"),
        ("%i", "07"),
        ("%s", "06"),
        ("%S", "06"),
        ("%f", "123456"),
        ("%p", "AM"),
        ("%W", "Thursday"),
        ("%a", "Thu"),
        ("%M", "May"),
        ("%b", "May"),
        ("%j", "130"),
        ("%T", "08:07:06"),
        ("%r", "08:07:06 AM"),
        ("%D", "9th"),
        ("%U", "18"),
        ("%u", "19"),
        ("%V", "18"),
        ("%v", "19"),
        ("%X", "2024"),
        ("%x", "2024"),
        ("%w", "4"),
        ("%%", "%"),
        ("%Q", "Q"),
        ("100%", "100%"),
    ] {
        assert_eq!(
            ev(&format!("DATE_FORMAT({d}, '{spec}')")),
            json!(expected),
            "{spec}"
        );
    }
    // Afternoon and midnight hours, day suffixes.
    assert_eq!(
        ev("DATE_FORMAT('2024-05-01 13:05:00', '%h %l %p %r %D')"),
        json!("01 1 PM 01:05:00 PM 1st")
    );
    assert_eq!(
        ev("DATE_FORMAT('2024-05-02 00:00:00', '%h %I %k %D')"),
        json!("12 12 0 2nd")
    );
    assert_eq!(ev("DATE_FORMAT('2024-05-03', '%D')"), json!("3rd"));
    assert_eq!(ev("DATE_FORMAT('2024-05-11', '%D')"), json!("11th"));
    assert_eq!(
        ev("DATE_FORMAT('2024-05-12', '%D %w %W')"),
        json!("12th 0 Sunday")
    );
    assert_eq!(ev("DATE_FORMAT('2024-05-22', '%D')"), json!("22nd"));
    assert_eq!(ev("DATE_FORMAT('2024-05-23', '%D')"), json!("23rd"));
    assert_eq!(ev("DATE_FORMAT('2005-01-05', '%y')"), json!("05"));
}

#[test]
fn week_numbers_match_mysql_at_year_edges() {
    // 2024-01-01 is a Monday; 2023-01-01 a Sunday; 2021-01-01 a Friday.
    assert_eq!(
        ev("DATE_FORMAT('2024-01-01', '%U %u %V %v %X %x')"),
        json!("00 01 53 01 2023 2024")
    );
    assert_eq!(
        ev("DATE_FORMAT('2023-01-01', '%U %u %V %v %X %x')"),
        json!("01 00 01 52 2023 2022")
    );
    assert_eq!(
        ev("DATE_FORMAT('2021-01-01', '%U %u %V %v %X %x')"),
        json!("00 00 52 53 2020 2020")
    );
    assert_eq!(
        ev("DATE_FORMAT('2024-12-31', '%U %u %V %v %X %x')"),
        json!("52 53 52 01 2024 2025")
    );
    assert_eq!(
        ev("DATE_FORMAT('2024-05-29', '%U %u %j')"),
        json!("21 22 150")
    );
}

#[test]
fn unix_time_both_ways() {
    assert_eq!(ev("UNIX_TIMESTAMP()"), json!(1716948672));
    assert_eq!(
        ev("UNIX_TIMESTAMP('2024-05-29 10:11:12')"),
        json!(1716948672)
    );
    assert_eq!(ev("UNIX_TIMESTAMP('1970-01-01 08:00:00')"), json!(0));
    assert_eq!(
        ev("UNIX_TIMESTAMP('2024-05-29 10:11:12.5')"),
        json!("1716948672.5")
    );
    assert_eq!(ev("UNIX_TIMESTAMP(NULL)"), Value::Null);
    assert_eq!(ev("FROM_UNIXTIME(0)"), json!("1970-01-01 08:00:00"));
    assert_eq!(
        ev("FROM_UNIXTIME(1716948672)"),
        json!("2024-05-29 10:11:12")
    );
    assert_eq!(
        ev("FROM_UNIXTIME(1716948672.25)"),
        json!("2024-05-29 10:11:12.25")
    );
    assert_eq!(ev("FROM_UNIXTIME(1716948672, '%Y%m%d')"), json!("20240529"));
    assert_eq!(ev("FROM_UNIXTIME(NULL)"), Value::Null);
    assert_eq!(
        err("FROM_UNIXTIME(-1)"),
        "FROM_UNIXTIME: -1 is not a Unix time in seconds at 14"
    );
}

#[test]
fn concat_and_null_handling() {
    assert_eq!(ev("CONCAT('a', 1, 1.50, TRUE)"), json!("a11.501"));
    assert_eq!(ev("CONCAT('a', NULL)"), Value::Null);
    assert_eq!(ev("CONCAT({name}, '-', {qty})"), json!("O'Brien-3"));
    assert_eq!(ev("CONCAT('d:', CURDATE())"), json!("d:2024-05-29"));
    assert_eq!(ev("CONCAT_WS('-', 'a', NULL, 'b')"), json!("a-b"));
    assert_eq!(ev("CONCAT_WS(NULL, 'a')"), Value::Null);
    assert_eq!(ev("IFNULL(NULL, 'x')"), json!("x"));
    assert_eq!(ev("IFNULL('a', 'x')"), json!("a"));
    assert_eq!(ev("COALESCE(NULL, NULL, 3)"), json!(3));
    assert_eq!(ev("COALESCE(NULL)"), Value::Null);
    assert_eq!(ev("IF(1 > 0, 'y', 'n')"), json!("y"));
    assert_eq!(ev("IF(NULL, 'y', 'n')"), json!("n"));
    assert_eq!(ev("IF('abc', 'y', 'n')"), json!("n"));
    assert_eq!(ev("IF('2', 'y', 'n')"), json!("y"));
    // IF is lazy: the branch not taken is not evaluated.
    assert_eq!(ev("IF(TRUE, 1, 1 + 'x')"), json!(1));
}

#[test]
fn datediff_nullif_and_padding() {
    assert_eq!(
        ev("DATEDIFF('2024-03-01 23:00:00', '2024-02-28 01:00:00')"),
        json!(2)
    );
    assert_eq!(ev("DATEDIFF('2024-01-01', '2024-01-31')"), json!(-30));
    assert_eq!(ev("DATEDIFF(NULL, '2024-01-31')"), Value::Null);
    assert_eq!(ev("DATEDIFF(20240301, '2024-01-01')"), json!(60));
    assert_eq!(ev("NULLIF(1, 1)"), Value::Null);
    assert_eq!(ev("NULLIF('a', 'b')"), json!("a"));
    assert_eq!(ev("NULLIF('', '')"), Value::Null);
    assert_eq!(ev("LPAD('7', 4, '0')"), json!("0007"));
    assert_eq!(ev("LPAD('hi', 5, 'ab')"), json!("abahi"));
    assert_eq!(ev("RPAD('付', 3, '款')"), json!("付款款"));
    assert_eq!(ev("LPAD('hello', 2, 'x')"), json!("he"));
    assert_eq!(ev("LPAD('a', 3, '')"), Value::Null);
    assert_eq!(ev("LPAD('a', -1, 'x')"), Value::Null);
    assert_eq!(ev("RPAD('a', 99999999999, 'x')"), Value::Null);
}

#[test]
fn numeric_functions() {
    assert_eq!(ev("ROUND(2.5)"), json!(3));
    assert_eq!(ev("ROUND(-2.5)"), json!(-3));
    assert_eq!(ev("ROUND(1.005, 2)"), json!("1.01"));
    assert_eq!(ev("ROUND(1.2, 3)"), json!("1.200"));
    assert_eq!(ev("ROUND(5191, 2)"), json!(5191));
    assert_eq!(ev("ROUND(1.5, -1)"), json!(0));
    assert_eq!(ev("ROUND(15.5, -1)"), json!(20));
    assert_eq!(ev("ROUND(1234.5, -2)"), json!(1200));
    assert_eq!(ev("ROUND(1250, -2)"), json!(1300));
    assert_eq!(ev("ROUND(5, -40)"), json!(0));
    assert_eq!(ev("ROUND('12.345', 1)"), json!("12.3"));
    assert_eq!(ev("ROUND(NULL)"), Value::Null);
    assert_eq!(ev("FLOOR(1.7)"), json!(1));
    assert_eq!(ev("FLOOR(-1.2)"), json!(-2));
    assert_eq!(ev("CEIL(1.2)"), json!(2));
    assert_eq!(ev("CEILING(-1.7)"), json!(-1));
    assert_eq!(ev("ABS(-3.50)"), json!("3.50"));
    assert_eq!(ev("ABS(NULL)"), Value::Null);
}

#[test]
fn string_functions() {
    assert_eq!(ev("REPLACE('a-b-c', '-', '/')"), json!("a/b/c"));
    assert_eq!(ev("REPLACE('abc', '', 'x')"), json!("abc"));
    assert_eq!(ev("REPLACE(NULL, 'a', 'b')"), Value::Null);
    assert_eq!(ev("SUBSTRING('Quadratically', 5)"), json!("ratically"));
    assert_eq!(ev("SUBSTRING('Quadratically', 5, 6)"), json!("ratica"));
    assert_eq!(ev("SUBSTRING('Sakila', -3)"), json!("ila"));
    assert_eq!(ev("SUBSTRING('Sakila', -5, 3)"), json!("aki"));
    assert_eq!(ev("SUBSTR('Sakila', 0)"), json!(""));
    assert_eq!(ev("SUBSTR('Sakila', 10)"), json!(""));
    assert_eq!(ev("SUBSTR('Sakila', -10)"), json!(""));
    assert_eq!(ev("SUBSTR('Sakila', 2, 0)"), json!(""));
    assert_eq!(ev("SUBSTRING('付款退款单', 3, 2)"), json!("退款"));
    assert_eq!(ev("LEFT('付款退款', 2)"), json!("付款"));
    assert_eq!(ev("LEFT('abc', -1)"), json!(""));
    assert_eq!(ev("RIGHT('付款退款', 2)"), json!("退款"));
    assert_eq!(ev("RIGHT('abc', 10)"), json!("abc"));
    assert_eq!(ev("UPPER('abc')"), json!("ABC"));
    assert_eq!(ev("UPPER('straße ä')"), json!("STRAßE Ä"));
    assert_eq!(ev("UCASE('abc')"), json!("ABC"));
    assert_eq!(ev("LOWER('ABC')"), json!("abc"));
    assert_eq!(ev("LCASE('ABC')"), json!("abc"));
    assert_eq!(ev("TRIM('  a b  ')"), json!("a b"));
    assert_eq!(ev("TRIM('\\ta ')"), json!("\ta"));
    assert_eq!(ev("LTRIM('  a ')"), json!("a "));
    assert_eq!(ev("RTRIM('  a ')"), json!("  a"));
    assert_eq!(ev("LENGTH('付款')"), json!(6));
    assert_eq!(ev("LENGTH('abc')"), json!(3));
    assert_eq!(ev("CHAR_LENGTH('付款😀')"), json!(3));
    assert_eq!(ev("CHARACTER_LENGTH('ab')"), json!(2));
    assert_eq!(ev("LENGTH(NULL)"), Value::Null);
}

#[test]
fn parse_errors_say_what_and_where() {
    assert_eq!(err("1 + FOO(2)"), "unknown function FOO at 4");
    assert_eq!(err("_function FOO(2)"), "unknown function FOO at 10");
    assert_eq!(err("ROUND()"), "ROUND takes 1 to 2 arguments, got 0 at 0");
    assert_eq!(err("NOW(1)"), "NOW takes 0 arguments, got 1 at 0");
    assert_eq!(err("IF(1, 2)"), "IF takes 3 arguments, got 2 at 0");
    assert_eq!(err("ABS(1, 2)"), "ABS takes 1 argument, got 2 at 0");
    assert_eq!(
        err("CONCAT()"),
        "CONCAT takes at least 1 argument, got 0 at 0"
    );
    assert_eq!(err(""), "empty expression at 0");
    assert_eq!(err("1 +"), "unexpected end of expression at 3");
    assert_eq!(err("(1 + 2"), "expected ')', found end of expression at 6");
    assert_eq!(err("1 2"), "unexpected number 2 at 2");
    assert_eq!(
        err("CONCAT('a' 'b')"),
        "expected ',' or ')', found string at 11"
    );
    assert_eq!(
        err("name"),
        "unknown name name (write {name} for a record field) at 0"
    );
    assert_eq!(
        err("INTERVAL 1 FORTNIGHT"),
        "unknown INTERVAL unit FORTNIGHT at 11"
    );
    assert_eq!(
        err("INTERVAL 1"),
        "expected an INTERVAL unit, found end of expression at 10"
    );
    assert_eq!(err(&"(".repeat(100)), "expression nested too deeply at 64");
}

#[test]
fn runtime_errors_say_what_and_where() {
    assert_eq!(err("1 + 'abc'"), "'abc' is not a number at 4");
    assert_eq!(
        err("DATE_FORMAT('soon', '%Y')"),
        "cannot read 'soon' as a date at 12"
    );
    assert_eq!(
        err("DATE_ADD(NOW(), 1)"),
        "DATE_ADD needs INTERVAL n UNIT as its second argument at 16"
    );
    assert_eq!(
        err("INTERVAL 1 DAY"),
        "INTERVAL only goes with a date: DATE_ADD(date, INTERVAL n UNIT) or date + INTERVAL n UNIT at 0"
    );
    assert_eq!(
        err("NOW() * 2"),
        "a date is not a number (use UNIX_TIMESTAMP or DATE_FORMAT) at 0"
    );
    assert_eq!(
        err("DATE_ADD(NOW(), INTERVAL 999999999999 YEAR)"),
        "date out of range at 9"
    );
}

#[test]
fn the_ends_of_time_do_not_panic() {
    let max = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp();
    let min = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp();
    let far = chrono_tz::Pacific::Kiritimati;
    let ctx = Context::new(now(), far);
    for src in [
        format!("FROM_UNIXTIME({max})"),
        format!("FROM_UNIXTIME({min})"),
        format!("DATE_FORMAT({max}000, '%U %u %V %v %X %x')"),
        "DATE_ADD('262142-12-31 23:59:59', INTERVAL 1 YEAR)".to_string(),
        "DATE_SUB('-262143-01-01', INTERVAL 1 DAY)".to_string(),
        "UNIX_TIMESTAMP('262142-12-31 23:59:59')".to_string(),
    ] {
        let _ = eval(&src, &ctx);
    }
}

#[test]
fn parsed_expressions_evaluate_many_times() {
    let expr = parse("CONCAT({a}, '!')").unwrap();
    for (a, out) in [
        (json!("x"), json!("x!")),
        (json!(5), json!("5!")),
        (Value::Null, Value::Null),
    ] {
        let rec = json!({ "a": a });
        let ctx = Context::new(now(), SH).with_record(&rec);
        assert_eq!(expr.eval(&ctx).unwrap(), out);
    }
}

/// Tokens of the grammar, for the token-soup property.
const TOKENS: &[&str] = &[
    "(",
    ")",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "1",
    "0",
    "2.5",
    "-7",
    "99999999999999999999999999",
    "'a'",
    "'%Y-%m-%d %U %x'",
    "\"b\"",
    "''",
    "NULL",
    "TRUE",
    "FALSE",
    "AND",
    "OR",
    "NOT",
    "INTERVAL",
    "DAY",
    "MONTH",
    "YEAR",
    "SECOND",
    "NOW",
    "DATE_ADD",
    "DATE_SUB",
    "DATE_FORMAT",
    "CONCAT",
    "IF",
    "IFNULL",
    "COALESCE",
    "ROUND",
    "SUBSTRING",
    "LEFT",
    "RIGHT",
    "FROM_UNIXTIME",
    "UNIX_TIMESTAMP",
    "CURDATE",
    "REPLACE",
    "{a}",
    "{{b.c}}",
    "{ms|date}",
    "'{a}'",
    "CURRENT_DATE",
    "LENGTH",
    "TRIM",
    "ABS",
    "FLOOR",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,60}") {
        let rec = json!({"a": "x", "b": {"c": 2}, "ms": 1717000000000_i64});
        let ctx = Context::new(now(), SH).with_record(&rec);
        let _ = eval(&src, &ctx);
    }

    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..40)) {
        let src: Vec<&str> = picks.iter().map(|&i| TOKENS[i]).collect();
        let src = src.join(" ");
        let rec = json!({"a": "x", "b": {"c": 2}, "ms": 1717000000000_i64});
        let ctx = Context::new(now(), SH).with_record(&rec);
        let _ = eval(&src, &ctx);
    }

    #[test]
    fn well_formed_calls_evaluate_or_fail_cleanly(
        n in -1_000_000_000_000_i64..1_000_000_000_000,
        d in -40_i64..40,
        s in "\\PC{0,12}",
        big in proptest::num::i64::ANY,
    ) {
        let rec = json!({"s": s});
        let ctx = Context::new(now(), SH).with_record(&rec);
        for src in [
            format!("ROUND({n}.5, {d})"),
            format!("DATE_ADD(NOW(), INTERVAL {n} SECOND)"),
            format!("DATE_ADD(NOW(), INTERVAL {n} MONTH)"),
            format!("FROM_UNIXTIME({n})"),
            format!("SUBSTRING({{s}}, {d}, {d})"),
            format!("LEFT({{s}}, {d})"),
            format!("RIGHT({{s}}, {d})"),
            format!("FROM_UNIXTIME({big})"),
            format!("DATE_FORMAT({big}, '%U %u %V %v %X %x')"),
            format!("UNIX_TIMESTAMP({big})"),
            format!("DATE_ADD({big}, INTERVAL {big} SECOND)"),
            format!("DATE_ADD(NOW(), INTERVAL {big} YEAR)"),
        ] {
            let _ = eval(&src, &ctx);
        }
    }
}
