//! The typed AMQP headers of a Ferry message, so that no caller touches `AMQPValue`.
//!
//! Writing uses one AMQP type per header (long strings for text, signed 64-bit integers for
//! counters); reading is lenient, because a message may have been published by an older Ferry, by
//! hand from the management UI, or dead-lettered by the broker: a header of an unexpected type is
//! ignored rather than failing the message. Header names come from [`crate::names`].

use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::ErrorClass;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::names::{self, Stage};

/// The headers Ferry reads and writes on its messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    /// `x-ferry-scheme`: the scheme the message belongs to.
    pub scheme: Option<String>,
    /// `x-ferry-run`: the run it was extracted in.
    pub run: Option<String>,
    /// `x-ferry-stage`: the stage whose queue it is for (or, on a dead letter, that failed it).
    pub stage: Option<Stage>,
    /// `x-ferry-attempt`: retries made so far, 0 on the first delivery.
    pub attempt: u32,
    /// `x-ferry-replays`: how many times `ferry replay` moved it back from a dead-letter queue.
    pub replays: u32,
    /// `traceparent`: W3C trace context of the span that published it.
    pub traceparent: Option<String>,
    /// `tracestate`: W3C vendor trace state.
    pub tracestate: Option<String>,
    /// `x-ferry-error-class`: on retries and dead letters, the class of the last failure.
    pub error_class: Option<ErrorClass>,
    /// `x-ferry-error`: on retries and dead letters, the last error message.
    pub error: Option<String>,
    /// `x-ferry-error-path`: the field path of the last error, where there is one.
    pub error_path: Option<String>,
    /// `x-ferry-first-failed-at`: when the message failed for the first time.
    pub first_failed_at: Option<DateTime<Utc>>,
    /// `x-ferry-failed-at`: when it failed last.
    pub failed_at: Option<DateTime<Utc>>,
    /// `x-ferry-record-id`: on a dead letter, the id of the record it holds.
    pub record_id: Option<String>,
    /// `x-ferry-rerender-of`: on a load dead letter sent back through the transform
    /// (`ferry replay --rerender`), the stage it was dead-lettered in.
    pub rerender_of: Option<Stage>,
}

impl Headers {
    /// Headers for a fresh message of `scheme`'s run `run` bound for `stage`'s work queue.
    pub fn new(scheme: &str, run: &str, stage: Stage) -> Headers {
        Headers {
            scheme: Some(scheme.to_string()),
            run: Some(run.to_string()),
            stage: Some(stage),
            ..Headers::default()
        }
    }

    /// These headers without the failure fields (class, message, path, failure times).
    pub fn without_error(&self) -> Headers {
        Headers {
            error_class: None,
            error: None,
            error_path: None,
            first_failed_at: None,
            failed_at: None,
            ..self.clone()
        }
    }

    /// The AMQP header table. Absent fields are left out; counters are always written.
    pub fn to_field_table(&self) -> FieldTable {
        let mut table = FieldTable::default();
        let mut text = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                table.insert(
                    ShortString::from(key),
                    AMQPValue::LongString(LongString::from(value)),
                );
            }
        };
        text(names::SCHEME, self.scheme.as_deref());
        text(names::RUN, self.run.as_deref());
        text(names::STAGE, self.stage.map(Stage::as_str));
        text(names::TRACEPARENT, self.traceparent.as_deref());
        text(names::TRACESTATE, self.tracestate.as_deref());
        text(names::ERROR_CLASS, self.error_class.map(ErrorClass::as_str));
        text(names::ERROR, self.error.as_deref());
        text(names::ERROR_PATH, self.error_path.as_deref());
        text(
            names::FIRST_FAILED_AT,
            self.first_failed_at.map(rfc3339).as_deref(),
        );
        text(names::FAILED_AT, self.failed_at.map(rfc3339).as_deref());
        text(names::RECORD_ID, self.record_id.as_deref());
        text(names::RERENDER_OF, self.rerender_of.map(Stage::as_str));
        table.insert(
            ShortString::from(names::ATTEMPT),
            AMQPValue::LongLongInt(i64::from(self.attempt)),
        );
        table.insert(
            ShortString::from(names::REPLAYS),
            AMQPValue::LongLongInt(i64::from(self.replays)),
        );
        table
    }

    /// Read the Ferry headers from an AMQP header table, ignoring anything else in it and any
    /// value of an unexpected type.
    pub fn from_field_table(table: &FieldTable) -> Headers {
        let text = |key: &str| table.inner().get(key).and_then(value_text);
        let count = |key: &str| {
            table
                .inner()
                .get(key)
                .and_then(value_count)
                .unwrap_or_default()
        };
        let time = |key: &str| {
            text(key)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Headers {
            scheme: text(names::SCHEME),
            run: text(names::RUN),
            stage: text(names::STAGE).and_then(|s| s.parse().ok()),
            attempt: count(names::ATTEMPT),
            replays: count(names::REPLAYS),
            traceparent: text(names::TRACEPARENT),
            tracestate: text(names::TRACESTATE),
            error_class: text(names::ERROR_CLASS).and_then(|c| parse_class(&c)),
            error: text(names::ERROR),
            error_path: text(names::ERROR_PATH),
            first_failed_at: time(names::FIRST_FAILED_AT),
            failed_at: time(names::FAILED_AT),
            record_id: text(names::RECORD_ID),
            rerender_of: text(names::RERENDER_OF).and_then(|s| s.parse().ok()),
        }
    }
}

/// Timestamps in headers: RFC 3339 in UTC with milliseconds, readable in the management UI.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_class(text: &str) -> Option<ErrorClass> {
    match text {
        "transient" => Some(ErrorClass::Transient),
        "record" => Some(ErrorClass::Record),
        "config" => Some(ErrorClass::Config),
        _ => None,
    }
}

/// A header value as text, if it is a string (long or short) of valid UTF-8.
fn value_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A header value as a non-negative count, whatever integer type (or decimal text) carries it.
pub(crate) fn value_count(value: &AMQPValue) -> Option<u32> {
    let wide: i128 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => (*v).into(),
        AMQPValue::Timestamp(v) => (*v).into(),
        other => value_text(other)?.trim().parse().ok()?,
    };
    u32::try_from(wide).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn full() -> Headers {
        Headers {
            scheme: Some("退款-refunds".into()),
            run: Some("run-1".into()),
            stage: Some(Stage::Load),
            attempt: 2,
            replays: 1,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: Some("vendor=1".into()),
            error_class: Some(ErrorClass::Record),
            error: Some("不是日期 😀".into()),
            error_path: Some("main_params.datetime_new".into()),
            first_failed_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()),
            failed_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 5, 6).unwrap()),
            record_id: Some("张三🚀".into()),
            rerender_of: Some(Stage::Load),
        }
    }

    #[test]
    fn headers_round_trip_through_a_field_table() {
        let headers = full();
        assert_eq!(
            Headers::from_field_table(&headers.to_field_table()),
            headers
        );
        let empty = Headers::default();
        assert_eq!(Headers::from_field_table(&empty.to_field_table()), empty);
    }

    #[test]
    fn reading_is_lenient_about_types() {
        let mut table = FieldTable::default();
        table.insert(names::ATTEMPT.into(), AMQPValue::LongUInt(3));
        table.insert(names::REPLAYS.into(), AMQPValue::LongString("4".into()));
        table.insert(
            names::STAGE.into(),
            AMQPValue::ShortString("transform".into()),
        );
        table.insert(names::SCHEME.into(), AMQPValue::Boolean(true));
        table.insert(
            names::ERROR_CLASS.into(),
            AMQPValue::LongString("weird".into()),
        );
        table.insert(
            names::FAILED_AT.into(),
            AMQPValue::LongString("yesterday".into()),
        );
        table.insert("x-death".into(), AMQPValue::Void);
        let headers = Headers::from_field_table(&table);
        assert_eq!(headers.attempt, 3);
        assert_eq!(headers.replays, 4);
        assert_eq!(headers.stage, Some(Stage::Transform));
        assert_eq!(headers.scheme, None);
        assert_eq!(headers.error_class, None);
        assert_eq!(headers.failed_at, None);
        assert_eq!(value_count(&AMQPValue::LongLongInt(-1)), None);
    }

    #[test]
    fn without_error_keeps_identity_and_trace() {
        let clean = full().without_error();
        assert_eq!(clean.error, None);
        assert_eq!(clean.error_class, None);
        assert_eq!(clean.error_path, None);
        assert_eq!(clean.first_failed_at, None);
        assert_eq!(clean.failed_at, None);
        assert_eq!(clean.record_id.as_deref(), Some("张三🚀"));
        assert_eq!(clean.traceparent, full().traceparent);
    }

    #[test]
    fn timestamps_are_written_as_rfc3339_utc() {
        let table = full().to_field_table();
        assert_eq!(
            table.inner().get(names::FAILED_AT),
            Some(&AMQPValue::LongString("2026-01-02T03:05:06.000Z".into()))
        );
    }

    /// What a header may hold when it comes from outside (another client, a shovel, an
    /// operator's management-UI publish): any type, long strings of any bytes.
    fn any_value() -> impl proptest::strategy::Strategy<Value = AMQPValue> {
        use proptest::prelude::*;
        prop_oneof![
            any::<bool>().prop_map(AMQPValue::Boolean),
            any::<i8>().prop_map(AMQPValue::ShortShortInt),
            any::<u8>().prop_map(AMQPValue::ShortShortUInt),
            any::<i16>().prop_map(AMQPValue::ShortInt),
            any::<u16>().prop_map(AMQPValue::ShortUInt),
            any::<i32>().prop_map(AMQPValue::LongInt),
            any::<u32>().prop_map(AMQPValue::LongUInt),
            any::<i64>().prop_map(AMQPValue::LongLongInt),
            any::<f64>().prop_map(AMQPValue::Double),
            any::<u64>().prop_map(AMQPValue::Timestamp),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
            "\\PC{0,30}".prop_map(|s| AMQPValue::ShortString(ShortString::from(s))),
            "[ +-]{0,2}[0-9]{1,25}[ ]{0,2}"
                .prop_map(|s| AMQPValue::LongString(LongString::from(s))),
            "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
                .prop_map(|s| AMQPValue::LongString(LongString::from(s))),
            Just(AMQPValue::Void),
            Just(AMQPValue::FieldTable(FieldTable::default())),
        ]
    }

    /// 1000 cases, unless `PROPTEST_CASES` asks for another number; no file of seeds (a failure
    /// becomes a named test).
    fn cases() -> proptest::prelude::ProptestConfig {
        let mut config = proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        };
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = 1000;
        }
        config
    }

    /// A time Ferry writes: milliseconds, years 1970 to 9999.
    fn any_time() -> impl proptest::strategy::Strategy<Value = Option<DateTime<Utc>>> {
        use proptest::prelude::*;
        proptest::option::of(
            (0_i64..253_402_300_799_999)
                .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap_or_default()),
        )
    }

    proptest::proptest! {
        #![proptest_config(cases())]

        #[test]
        fn any_header_table_reads_without_panic(
            entries in proptest::collection::vec(
                (
                    proptest::sample::select(&[
                        names::SCHEME, names::RUN, names::STAGE, names::ATTEMPT,
                        names::REPLAYS, names::TRACEPARENT, names::ERROR_CLASS,
                        names::ERROR, names::ERROR_PATH, names::FIRST_FAILED_AT,
                        names::FAILED_AT, names::RECORD_ID, names::RERENDER_OF,
                        names::DELIVERY_COUNT,
                        "x-death", "其他 😀",
                    ][..]),
                    any_value(),
                ),
                0..16,
            )
        ) {
            let mut table = FieldTable::default();
            for (key, value) in entries {
                let _ = value_count(&value);
                table.insert(key.into(), value);
            }
            let headers = Headers::from_field_table(&table);
            // What was read writes back and reads again as itself.
            proptest::prop_assert_eq!(
                Headers::from_field_table(&headers.to_field_table()),
                headers
            );
        }

        #[test]
        fn any_headers_round_trip(
            texts in proptest::collection::vec(proptest::option::of("\\PC{0,40}"), 8),
            stage in proptest::option::of(proptest::sample::select(&Stage::ALL[..])),
            rerender_of in proptest::option::of(proptest::sample::select(&Stage::ALL[..])),
            class in proptest::option::of(proptest::sample::select(&[
                ErrorClass::Transient, ErrorClass::Record, ErrorClass::Config,
            ][..])),
            attempt in proptest::prelude::any::<u32>(),
            replays in proptest::prelude::any::<u32>(),
            first_failed_at in any_time(),
            failed_at in any_time(),
        ) {
            let mut texts = texts.into_iter();
            let mut next = || texts.next().flatten();
            let headers = Headers {
                scheme: next(),
                run: next(),
                stage,
                attempt,
                replays,
                traceparent: next(),
                tracestate: next(),
                error_class: class,
                error: next(),
                error_path: next(),
                first_failed_at,
                failed_at,
                record_id: next(),
                rerender_of,
            };
            proptest::prop_assert_eq!(
                Headers::from_field_table(&headers.to_field_table()),
                headers
            );
        }
    }
}
