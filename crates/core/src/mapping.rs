//! Mapping: what `ferry transform` does to each record.
//!
//! 1. [`apply_format_response`]: the source's `formatResponse` rules copy a field under a new
//!    name, converted (`dateField_lgkieplu` -> `datetime_new` as a date). The old field stays.
//! 2. [`Mapper::map`]: the target's `request` tree is rendered against the record: each leaf's
//!    `value` template renders and converts to the leaf's `type`; `object` fields nest their
//!    children; `array` fields with children map each element of their value.
//!
//! Array fields: an `array` field with children renders its `value` (which must give an array,
//! or JSON text of one; null gives `[]`) and renders the children once per element, with the
//! element as the record (`{sku}`) and the record around it as `{{$parent.x}}`. Without a
//! `value` it renders the children once against the current record, giving a one-element array
//! (a "details" list built from header fields, as vendor APIs often want).
//!
//! Templates are parsed once, when the [`Mapper`] is built; `Mapper::new` reports every bad
//! template with its JSON path (`request[0].children[2].value`), which is what `ferry lint`
//! prints. Rendering errors are record errors whose path is the dotted field path
//! (`main_params.datetime_new`) and whose message names the value.

use std::collections::HashSet;

use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::convert::{self, convert, parse_type_name, quote_value};
use crate::error::FerryError;
use crate::record::{Record, value_text};
use crate::scheme::{Field, FieldType, FormatRule, Metadata};
use crate::template::{Context, Reads, Template, lookup};

/// Copy each rule's `old` field to `new`, converted with `format`: a type name (`date`,
/// `string`, ...) or a MySQL `DATE_FORMAT` pattern (`%Y-%m-%d`) applied to the value read as a
/// datetime. No format copies as is; a missing `old` field is skipped.
pub fn apply_format_response(
    rules: &[FormatRule],
    data: &mut Value,
    tz: Tz,
) -> Result<(), FerryError> {
    for rule in rules {
        let Some(old) = lookup(data, &rule.old).cloned() else {
            continue;
        };
        let new = format_one(&old, rule.format.as_deref(), tz).map_err(|e| e.under(&rule.new))?;
        let Some(map) = data.as_object_mut() else {
            return Err(FerryError::record("the record is not a JSON object"));
        };
        map.insert(rule.new.clone(), new);
    }
    Ok(())
}

fn format_one(value: &Value, format: Option<&str>, tz: Tz) -> Result<Value, FerryError> {
    let format = format.map(str::trim).unwrap_or_default();
    if format.is_empty() {
        return Ok(value.clone());
    }
    if let Some(kind) = parse_type_name(format) {
        return convert(value, kind, tz).map_err(FerryError::record);
    }
    if !format.contains('%') {
        return Err(FerryError::config(format!(
            "unknown format {format:?} (a type name or a %-pattern)"
        )));
    }
    if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(Value::Null);
    }
    match convert::to_naive_datetime(value, tz) {
        Some(local) => Ok(Value::String(crate::expr::date_format(local, format))),
        None => Err(FerryError::record(format!(
            "cannot convert {} to datetime",
            quote_value(value)
        ))),
    }
}

/// Problems in `formatResponse` rules, as (JSON path, message), for `ferry lint`.
pub fn check_format_rules(rules: &[FormatRule]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("formatResponse[{i}]");
        if rule.old.trim().is_empty() {
            problems.push((format!("{path}.old"), "empty field name".to_string()));
        }
        if rule.new.trim().is_empty() {
            problems.push((format!("{path}.new"), "empty field name".to_string()));
        }
        if let Some(f) = rule.format.as_deref().map(str::trim)
            && !f.is_empty()
            && parse_type_name(f).is_none()
            && !f.contains('%')
        {
            problems.push((
                format!("{path}.format"),
                format!("unknown format {f:?} (a type name or a %-pattern)"),
            ));
        }
    }
    problems
}

/// A field value, parsed: templates inside JSON literals too.
#[derive(Clone, Debug)]
enum Compiled {
    Template(Template),
    Literal(Value),
    Array(Vec<Compiled>),
    Object(Vec<(String, Compiled)>),
}

impl Compiled {
    fn new(value: &Value, path: &str, problems: &mut Vec<(String, String)>) -> Compiled {
        match value {
            Value::String(s) => match Template::parse(s) {
                Ok(t) => Compiled::Template(t),
                Err(e) => {
                    problems.push((path.to_string(), e.to_string()));
                    Compiled::Literal(Value::Null)
                }
            },
            Value::Array(items) => Compiled::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Compiled::new(item, &format!("{path}[{i}]"), problems))
                    .collect(),
            ),
            Value::Object(map) => Compiled::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Compiled::new(v, &format!("{path}.{k}"), problems),
                        )
                    })
                    .collect(),
            ),
            other => Compiled::Literal(other.clone()),
        }
    }

    fn render(&self, ctx: &Context<'_>) -> Result<Value, FerryError> {
        match self {
            Compiled::Template(t) => t.render(ctx),
            Compiled::Literal(v) => Ok(v.clone()),
            Compiled::Array(items) => items
                .iter()
                .map(|item| item.render(ctx))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Compiled::Object(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), v.render(ctx)?);
                }
                Ok(Value::Object(out))
            }
        }
    }
}

/// One field of a request tree, ready to render.
#[derive(Clone, Debug)]
struct Node {
    key: String,
    kind: FieldType,
    value: Option<Compiled>,
    children: Vec<Node>,
}

fn compile(fields: &[Field], path: &str, problems: &mut Vec<(String, String)>) -> Vec<Node> {
    let mut seen = HashSet::new();
    let mut nodes = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let key = match field.key() {
            Some(k) if !k.trim().is_empty() => k.to_string(),
            _ => {
                problems.push((format!("{here}.field"), "missing field name".to_string()));
                continue;
            }
        };
        if !seen.insert(key.clone()) {
            problems.push((
                format!("{here}.field"),
                format!("duplicate field name {key:?}"),
            ));
        }
        let value = field
            .value
            .as_ref()
            .map(|v| Compiled::new(v, &format!("{here}.value"), problems));
        let children = compile(&field.children, &format!("{here}.children"), problems);
        nodes.push(Node {
            key,
            kind: field.kind,
            value,
            children,
        });
    }
    nodes
}

fn render_nodes(nodes: &[Node], ctx: &Context<'_>) -> Result<Map<String, Value>, FerryError> {
    let mut out = Map::new();
    for node in nodes {
        let value = render_node(node, ctx).map_err(|e| e.under(&node.key))?;
        out.insert(node.key.clone(), value);
    }
    Ok(out)
}

fn render_node(node: &Node, ctx: &Context<'_>) -> Result<Value, FerryError> {
    if node.children.is_empty() {
        let value = match &node.value {
            Some(v) => v.render(ctx)?,
            None => Value::Null,
        };
        return convert(&value, node.kind, ctx.tz).map_err(FerryError::record);
    }
    match node.kind {
        FieldType::Array => {
            let Some(source) = &node.value else {
                return Ok(Value::Array(vec![Value::Object(render_nodes(
                    &node.children,
                    ctx,
                )?)]));
            };
            let items = match source.render(ctx)? {
                Value::Null => Vec::new(),
                Value::Array(items) => items,
                Value::String(s) if s.trim().is_empty() => Vec::new(),
                other => match convert(&other, FieldType::Array, ctx.tz) {
                    Ok(Value::Array(items)) => items,
                    _ => {
                        return Err(FerryError::record(format!(
                            "cannot map {} as an array",
                            quote_value(&other)
                        )));
                    }
                },
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let element_ctx = Context {
                    record: Some(item),
                    parent: ctx.record,
                    ..*ctx
                };
                let rendered = render_nodes(&node.children, &element_ctx)
                    .map_err(|e| e.under(&i.to_string()))?;
                out.push(Value::Object(rendered));
            }
            Ok(Value::Array(out))
        }
        // An object (or any other type given children) nests its children.
        _ => Ok(Value::Object(render_nodes(&node.children, ctx)?)),
    }
}

/// Render a request tree against `ctx` (parsing its templates on the way: build a [`Mapper`]
/// to parse once). A template that does not parse is a config error.
pub fn render_tree(fields: &[Field], ctx: &Context<'_>) -> Result<Map<String, Value>, FerryError> {
    let mut problems = Vec::new();
    let nodes = compile(fields, "request", &mut problems);
    if let Some((path, message)) = problems.into_iter().next() {
        return Err(FerryError::config(format!("{path}: {message}")));
    }
    render_nodes(&nodes, ctx)
}

/// A target's request tree, parsed once per scheme, applied to every record.
#[derive(Clone, Debug)]
pub struct Mapper {
    request: Vec<Node>,
    other: Vec<Node>,
}

impl Mapper {
    /// Parse every template of `target.request` and `target.otherRequest`. The error lists
    /// every problem as (JSON path like `request[0].children[2].value`, message).
    pub fn new(target: &Metadata) -> Result<Mapper, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let request = compile(&target.request, "request", &mut problems);
        let other = compile(&target.other_request, "otherRequest", &mut problems);
        if problems.is_empty() {
            Ok(Mapper { request, other })
        } else {
            Err(problems)
        }
    }

    /// Map one record: same id, data the rendered request tree. Record errors carry the record
    /// id and the field path.
    pub fn map(&self, record: &Record, ctx: &Context<'_>) -> Result<Record, FerryError> {
        self.map_noting_absent(record, ctx)
            .map(|(record, _)| record)
    }

    /// Map one record, and name the placeholders (`{nmae}`) that read a field the record does
    /// not have, each once, in the order met. A field present with a null value is not absent.
    pub fn map_noting_absent(
        &self,
        record: &Record,
        ctx: &Context<'_>,
    ) -> Result<(Record, Vec<String>), FerryError> {
        let absent = std::sync::Mutex::new(Vec::new());
        let ctx = Context {
            record: Some(&record.data),
            absent: Some(&absent),
            ..*ctx
        };
        let data = render_nodes(&self.request, &ctx).map_err(|e| e.with_record_id(&record.id))?;
        let mut names = absent.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        names.retain(|name| seen.insert(name.clone()));
        Ok((
            Record {
                id: record.id.clone(),
                data: Value::Object(data),
                source: None,
            },
            names,
        ))
    }

    /// Render the request tree against `ctx` alone (a source's page request).
    pub fn render(&self, ctx: &Context<'_>) -> Result<Map<String, Value>, FerryError> {
        render_nodes(&self.request, ctx)
    }

    /// Render the `otherRequest` entry `name` (e.g. `main_sql`) against `ctx`; None if the
    /// scheme has no such entry.
    pub fn render_other(&self, name: &str, ctx: &Context<'_>) -> Option<Result<Value, FerryError>> {
        let node = self.other.iter().find(|n| n.key == name)?;
        Some(render_node(node, ctx).map_err(|e| e.under(name)))
    }
}

/// Every placeholder in a request tree, with the JSON path of the `value` it sits in
/// (`request[0].children[2].value`), for checks that look at a scheme as a whole. Values that
/// do not parse are skipped (they are reported by [`Mapper::new`]).
pub fn placeholders_of(fields: &[Field], path: &str) -> Vec<(String, Reads)> {
    fn walk(value: &Value, path: &str, out: &mut Vec<(String, Reads)>) {
        match value {
            Value::String(s) => {
                if let Ok(t) = Template::parse(s) {
                    out.extend(t.placeholders().into_iter().map(|r| (path.to_string(), r)));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), out);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &format!("{path}.{k}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if let Some(value) = &field.value {
            walk(value, &format!("{here}.value"), &mut out);
        }
        out.extend(placeholders_of(
            &field.children,
            &format!("{here}.children"),
        ));
    }
    out
}

/// The id of a record: the text of `id_field` (a dotted path is allowed) in `data`. None when
/// there is no id field, or its value is missing, null or empty.
pub fn record_id(data: &Value, id_field: Option<&str>) -> Option<String> {
    let value = lookup(data, id_field?)?;
    let text = value_text(value);
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone};
    use serde_json::json;

    const SH: Tz = chrono_tz::Asia::Shanghai;

    fn now() -> DateTime<Tz> {
        SH.with_ymd_and_hms(2024, 5, 29, 10, 11, 12).unwrap()
    }

    fn fields(v: Value) -> Vec<Field> {
        serde_json::from_value(v).unwrap()
    }

    fn metadata(v: Value) -> Metadata {
        serde_json::from_value(v).unwrap()
    }

    /// Seed 001's target metadata, as the seed document shows it.
    fn seed_001_target() -> Metadata {
        metadata(json!({
          "api": "execute",
          "effect": "EXECUTE",
          "method": "POST",
          "idCheck": true,
          "request": [
            {
              "field": "main_params",
              "label": "main_params",
              "type": "object",
              "describe": "111",
              "children": [
                {"field": "extend_processInstanceId", "label": "明细id", "type": "string", "value": "{{extend.processInstanceId}}"},
                {"field": "order_no_new", "label": "单号", "type": "string", "value": "{order_no_new}(FKTK)"},
                {"field": "datetime_new", "label": "时间", "type": "date", "value": "{datetime_new}"},
                {"field": "qty_count", "label": "数量", "type": "string", "value":"1"},
                {"field":"sales_count","label":"金额","type":"string","value":"{numberField_lgkiepjv}"},
                {"field":"status","label":"状态","type":"string"},
                {"field":"Document_Type","label":"单据类型","type":"string","value":"付款退款"}
              ]
            }
          ],
          "otherRequest": [
            {"field": "main_sql", "label": "main_sql", "type": "string",
             "value": "INSERT INTO `hc_dd_fktk` (`extend_processInstanceId`,`order_no_new`,`datetime_new`,`qty_count`,`sales_count`,`status`,`Document_Type`) VALUES (:extend_processInstanceId,:order_no_new,:datetime_new,:qty_count,:sales_count,:status,:Document_Type)"}
          ]
        }))
    }

    /// Seed 001's formatResponse, as the document describes it.
    fn seed_001_format_response() -> Vec<FormatRule> {
        serde_json::from_value(json!([
            {"old": "dateField_lgkieplu", "new": "datetime_new", "format": "date"},
            {"old": "serialNumberField_lgk9jn2s", "new": "order_no_new", "format": "string"}
        ]))
        .unwrap()
    }

    fn yida_record() -> Value {
        json!({
            "serialNumberField_lgk9jn2s": "FKTK-2024-001",
            "dateField_lgkieplu": 1717000000000_i64,
            "numberField_lgkiepjv": "1234.50",
            "extend": {"processInstanceId": "abc-123"}
        })
    }

    #[test]
    fn seed_001_record_maps_to_the_insert_params() {
        let mut data = yida_record();
        apply_format_response(&seed_001_format_response(), &mut data, SH).unwrap();
        assert_eq!(data["datetime_new"], json!("2024-05-30"));
        assert_eq!(data["order_no_new"], json!("FKTK-2024-001"));
        // The old fields stay.
        assert_eq!(data["dateField_lgkieplu"], json!(1717000000000_i64));

        let mapper = Mapper::new(&seed_001_target()).unwrap();
        let record = Record {
            id: "abc-123".into(),
            data,
            source: None,
        };
        let out = mapper.map(&record, &Context::new(now(), SH)).unwrap();
        assert_eq!(out.id, "abc-123");
        assert_eq!(
            out.data,
            json!({"main_params": {
                "extend_processInstanceId": "abc-123",
                "order_no_new": "FKTK-2024-001(FKTK)",
                "datetime_new": "2024-05-30",
                "qty_count": "1",
                "sales_count": "1234.50",
                "status": null,
                "Document_Type": "付款退款"
            }})
        );
        let sql = mapper
            .render_other("main_sql", &Context::new(now(), SH))
            .unwrap()
            .unwrap();
        assert!(
            sql.as_str()
                .unwrap()
                .starts_with("INSERT INTO `hc_dd_fktk`")
        );
        assert!(
            mapper
                .render_other("nope", &Context::new(now(), SH))
                .is_none()
        );
    }

    #[test]
    fn seed_000_robot_fields_render() {
        let target = metadata(json!({
            "api": "DingTalkRoBotPush",
            "method": "POST",
            "idCheck": true,
            "request": [
                {"field": "access_token", "label": "钉钉机器人token", "type": "string", "value": "7ba55a29f8bc455edd40c6f5c2698dabb61263d0b776e284434432a144f3c155"},
                {"field": "title", "label": "首屏会话透出的展示内容", "type": "string", "value": "平台网站用户留言推送"},
                {"field": "header", "label": "标题", "type": "string", "value": "用户留言"},
                {"label": "留言用户姓名", "field": "name", "type": "string", "value": "{name}"},
                {"label": "留言用户电话", "field": "phone", "type": "string", "value": "{phone}"},
                {"label": "公司名称", "field": "company", "type": "string", "value": "{company}"},
                {"label": "留言时间", "field": ":created_at","type":"string","value":"{created_at}"}
            ]
        }));
        let mapper = Mapper::new(&target).unwrap();
        let record = Record {
            id: "张三".into(),
            data: json!({"id": 7, "name": "张三", "phone": 13800138000_i64, "company": "某某公司 😀", "created_at": "2023-10-01 12:00:00"}),
            source: None,
        };
        let out = mapper.map(&record, &Context::new(now(), SH)).unwrap();
        assert_eq!(
            out.data,
            json!({
                "access_token": "7ba55a29f8bc455edd40c6f5c2698dabb61263d0b776e284434432a144f3c155",
                "title": "平台网站用户留言推送",
                "header": "用户留言",
                "name": "张三",
                "phone": "13800138000",
                "company": "某某公司 😀",
                "created_at": "2023-10-01 12:00:00"
            })
        );
    }

    #[test]
    fn seed_000_and_001_source_requests_render_per_page() {
        let ctx = Context::new(now(), SH).with_page(crate::template::PageVars {
            page_size: 100,
            start_row: 200,
            start_page: 3,
        });
        let tree = fields(json!([
            {"field": "main_params", "type": "object", "children": [
                {"field": "limit", "type": "string", "value": "{PAGINATION_PAGE_SIZE}"},
                {"field": "offset", "type": "string", "value": "{PAGINATION_START_ROW}"}
            ]},
            {"field": "pageNumber", "type": "int", "value": "{PAGINATION_START_PAGE}"},
            {"field": "searchFieldJson", "type": "object", "value": {"selectField_lgkiepju": "是", "numberField_lgkiepjv": [0.0001]}},
            {"field": "createFromTimeGMT", "type": "string", "value": "_function DATE_FORMAT(DATE_ADD(NOW(),INTERVAL - 25 DAY),'%Y-%m-%d 00:00:00')"},
            {"field": "createToTimeGMT", "type": "string", "value": "{{CURRENT_TIME|datetime}}"}
        ]));
        let out = render_tree(&tree, &ctx).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "main_params": {"limit": "100", "offset": "200"},
                "pageNumber": 3,
                "searchFieldJson": {"selectField_lgkiepju": "是", "numberField_lgkiepjv": [0.0001]},
                "createFromTimeGMT": "2024-05-04 00:00:00",
                "createToTimeGMT": "2024-05-29 10:11:12"
            })
        );
    }

    #[test]
    fn conversion_errors_name_the_field_path_value_and_record() {
        let target = metadata(json!({"request": [
            {"field": "main_params", "type": "object", "children": [
                {"field": "datetime_new", "type": "date", "value": "{d}"}
            ]}
        ]}));
        let mapper = Mapper::new(&target).unwrap();
        let record = Record {
            id: "r-1".into(),
            data: json!({"d": "not a date"}),
            source: None,
        };
        let err = mapper.map(&record, &Context::new(now(), SH)).unwrap_err();
        assert_eq!(err.path(), Some("main_params.datetime_new"));
        assert_eq!(
            err.to_string(),
            "record r-1: main_params.datetime_new: cannot convert \"not a date\" to date"
        );
        assert_eq!(err.class(), crate::ErrorClass::Record);
    }

    #[test]
    fn arrays_map_each_element_with_parent_access() {
        let tree = fields(json!([
            {"field": "order", "type": "string", "value": "{no}"},
            {"field": "lines", "type": "array", "value": "{items}", "children": [
                {"field": "sku", "type": "string", "value": "{sku}"},
                {"field": "qty", "type": "int", "value": "{qty}"},
                {"field": "order_ref", "type": "string", "value": "{{$parent.no}}-{sku}"}
            ]},
            {"field": "header", "type": "array", "children": [
                {"field": "no", "type": "string", "value": "{no}"}
            ]},
            {"field": "empty", "type": "array", "value": "{missing}", "children": [
                {"field": "x", "type": "string", "value": "{x}"}
            ]}
        ]));
        let rec =
            json!({"no": "SO-1", "items": [{"sku": "A", "qty": "2"}, {"sku": "B", "qty": 3}]});
        let ctx = Context::new(now(), SH).with_record(&rec);
        let out = render_tree(&tree, &ctx).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "order": "SO-1",
                "lines": [
                    {"sku": "A", "qty": 2, "order_ref": "SO-1-A"},
                    {"sku": "B", "qty": 3, "order_ref": "SO-1-B"}
                ],
                "header": [{"no": "SO-1"}],
                "empty": []
            })
        );

        let bad =
            json!({"no": "SO-2", "items": [{"sku": "A", "qty": "2"}, {"sku": "B", "qty": "x"}]});
        let ctx = Context::new(now(), SH).with_record(&bad);
        let err = render_tree(&tree, &ctx).unwrap_err();
        assert_eq!(err.to_string(), "lines.1.qty: cannot convert \"x\" to int");

        let not_array = json!({"items": 5});
        let ctx = Context::new(now(), SH).with_record(&not_array);
        let err = render_tree(&tree, &ctx).unwrap_err();
        assert_eq!(err.to_string(), "lines: cannot map 5 as an array");
    }

    #[test]
    fn json_literals_and_array_text_values() {
        let tree = fields(json!([
            {"field": "ids", "type": "array", "value": "{ids}"},
            {"field": "tags", "type": "array", "value": ["{a}", "x"]},
            {"field": "meta", "type": "object", "value": "{\"k\": 1}"},
            {"field": "n", "type": "decimal", "value": 12.5},
            {"field": "flag", "type": "bool", "value": "是"}
        ]));
        let rec = json!({"ids": "[1,2]", "a": "A"});
        let ctx = Context::new(now(), SH).with_record(&rec);
        let out = render_tree(&tree, &ctx).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"ids": [1, 2], "tags": ["A", "x"], "meta": {"k": 1}, "n": "12.5", "flag": true})
        );
    }

    #[test]
    fn mapper_new_lists_every_problem_with_its_path() {
        let target = metadata(json!({
            "request": [
                {"field": "main_params", "type": "object", "children": [
                    {"field": "a", "value": "{x}"},
                    {"field": "b", "value": "{{CURRENT_TIME|soon}}"},
                    {"field": "c", "value": "_function FOO(1)"}
                ]},
                {"label": "no name", "value": "1"},
                {"field": "d", "value": {"nested": ["ok", "_function ROUND()"]}},
                {"field": "d", "value": "dup"}
            ],
            "otherRequest": [{"field": "main_sql", "value": "_function NOW("}]
        }));
        let problems = Mapper::new(&target).unwrap_err();
        assert_eq!(
            problems,
            vec![
                (
                    "request[0].children[1].value".to_string(),
                    "unknown formatter \"soon\" (known: datetime, date, timestamp, timestamp_ms, format:PATTERN) at 0"
                        .to_string()
                ),
                ("request[0].children[2].value".to_string(), "unknown function FOO at 10".to_string()),
                ("request[1].field".to_string(), "missing field name".to_string()),
                (
                    "request[2].value.nested[1]".to_string(),
                    "ROUND takes 1 to 2 arguments, got 0 at 10".to_string()
                ),
                ("request[3].field".to_string(), "duplicate field name \"d\"".to_string()),
                (
                    "otherRequest[0].value".to_string(),
                    "unexpected end of expression at 14".to_string()
                ),
            ]
        );
        let err = render_tree(&target.request, &Context::new(now(), SH)).unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Config);
    }

    #[test]
    fn format_response_types_patterns_and_errors() {
        let rules: Vec<FormatRule> = serde_json::from_value(json!([
            {"old": "ms", "new": "day", "format": "%Y年%m月%d日"},
            {"old": "ms", "new": "dt", "format": "datetime"},
            {"old": "amount", "new": "amount_dec", "format": "decimal"},
            {"old": "extend.id", "new": "ext_id"},
            {"old": "missing", "new": "never"},
            {"old": "empty", "new": "empty_day", "format": "%Y"}
        ]))
        .unwrap();
        let mut data =
            json!({"ms": 1717000000000_i64, "amount": "12.30", "extend": {"id": 9}, "empty": ""});
        apply_format_response(&rules, &mut data, SH).unwrap();
        assert_eq!(data["day"], json!("2024年05月30日"));
        assert_eq!(data["dt"], json!("2024-05-30 00:26:40"));
        assert_eq!(data["amount_dec"], json!("12.30"));
        assert_eq!(data["ext_id"], json!(9));
        assert_eq!(data["empty_day"], Value::Null);
        assert!(data.get("never").is_none());

        let bad: Vec<FormatRule> =
            serde_json::from_value(json!([{"old": "a", "new": "b", "format": "int"}])).unwrap();
        let err = apply_format_response(&bad, &mut json!({"a": "x1"}), SH).unwrap_err();
        assert_eq!(err.to_string(), "b: cannot convert \"x1\" to int");

        let unknown: Vec<FormatRule> =
            serde_json::from_value(json!([{"old": "a", "new": "b", "format": "money"}])).unwrap();
        let err = apply_format_response(&unknown, &mut json!({"a": 1}), SH).unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Config);
        assert_eq!(
            check_format_rules(&unknown),
            vec![(
                "formatResponse[0].format".to_string(),
                "unknown format \"money\" (a type name or a %-pattern)".to_string()
            )]
        );
        assert!(check_format_rules(&seed_001_format_response()).is_empty());
    }

    #[test]
    fn record_ids_from_paths() {
        let data = json!({"name": "张三", "extend": {"processInstanceId": "abc-123"}, "n": 7, "e": "", "z": null});
        assert_eq!(record_id(&data, Some("name")), Some("张三".to_string()));
        assert_eq!(
            record_id(&data, Some("extend.processInstanceId")),
            Some("abc-123".to_string())
        );
        assert_eq!(record_id(&data, Some("n")), Some("7".to_string()));
        assert_eq!(record_id(&data, Some("e")), None);
        assert_eq!(record_id(&data, Some("z")), None);
        assert_eq!(record_id(&data, Some("missing")), None);
        assert_eq!(record_id(&data, None), None);
    }

    #[test]
    fn absent_fields_are_named_once_per_record_and_null_values_are_not_absent() {
        let mapper = Mapper::new(&metadata(json!({
            "api": "execute",
            "request": [
                {"field": "name", "value": "{nmae}"},
                {"field": "again", "value": "{nmae}-{{extend.missing}}"},
                {"field": "phone", "value": "{phone}"},
                {"field": "when", "value": "_function IFNULL({created}, 'x')"},
                {"field": "items", "type": "array", "value": "{items}",
                 "children": [{"field": "sku", "value": "{sku}"}, {"field": "p", "value": "{{$parent.phone}}"}]}
            ]
        })))
        .unwrap();
        let record = Record {
            id: "1".into(),
            data: json!({"name": "张三🚀", "phone": null, "extend": {}, "items": [{"sku": "A"}, {}]}),
            source: None,
        };
        let (out, absent) = mapper
            .map_noting_absent(&record, &Context::new(now(), SH))
            .unwrap();
        assert_eq!(out.data["name"], Value::Null);
        assert_eq!(out.data["phone"], Value::Null);
        assert_eq!(
            absent,
            vec!["{nmae}", "{{extend.missing}}", "{created}", "{sku}"]
        );
    }
}
