//! The shape of a scheme file, checked on the raw JSON before serde sees it.
//!
//! Serde stops at the first error and does not say where it was; this walk reports every
//! unknown, missing and mistyped key with its JSON path (`target.metadata.request[0].type`).
//! The tables below mirror `crate::scheme`; a unit test compares them with what serde writes
//! for the model, so a field added there without a line here fails the build's tests.
//! Open shapes (metadata, fields) accept keys they do not know: pasted seeds carry platform
//! keys, which serde keeps in `extra` and `ferry lint` mentions.

use serde_json::Value;

use crate::connector::did_you_mean;
use crate::template::closest;

/// What a key's value must be.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Bool,
    UInt,
    /// Any JSON (a field's `value`: a template or a literal).
    Any,
    Obj(&'static Shape),
    /// An array of objects of one shape.
    Arr(&'static Shape),
    /// A field type name (`string`, `int`, ...).
    FieldType,
}

pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) required: bool,
    /// `null` is accepted and means absent (the model's `Option`s).
    pub(crate) nullable: bool,
}

pub(crate) struct Shape {
    pub(crate) keys: &'static [Key],
    /// Unknown keys are kept (and linted) rather than refused.
    pub(crate) open: bool,
    /// An unknown key close to a known one is refused with the known one ("did you mean"),
    /// here. Off for metadata and pagination, whose known keys depend on the connection's kind:
    /// [`crate::connector::misspelt_keys`] checks them once the kind is known.
    pub(crate) suggest: bool,
}

/// The names of `shape`'s keys.
pub(crate) fn keys(shape: &Shape) -> Vec<&'static str> {
    shape.keys.iter().map(|k| k.name).collect()
}

const fn req(name: &'static str, ty: Ty) -> Key {
    Key {
        name,
        ty,
        required: true,
        nullable: false,
    }
}

/// Has a default in the model, but `null` is not accepted.
const fn dflt(name: &'static str, ty: Ty) -> Key {
    Key {
        name,
        ty,
        required: false,
        nullable: false,
    }
}

/// An `Option` in the model.
const fn opt(name: &'static str, ty: Ty) -> Key {
    Key {
        name,
        ty,
        required: false,
        nullable: true,
    }
}

/// The type names a field's `type` accepts, as `FieldType` serialises them.
pub(crate) const FIELD_TYPES: [&str; 9] = [
    "string", "int", "float", "decimal", "date", "datetime", "bool", "object", "array",
];

pub(crate) static SCHEME: Shape = Shape {
    keys: &[
        req("name", Ty::Str),
        opt("description", Ty::Str),
        opt("schedule", Ty::Str),
        dflt("timezone", Ty::Str),
        req("source", Ty::Obj(&ENDPOINT)),
        req("target", Ty::Obj(&ENDPOINT)),
    ],
    open: false,
    suggest: false,
};

pub(crate) static ENDPOINT: Shape = Shape {
    keys: &[
        req("connection", Ty::Str),
        req("metadata", Ty::Obj(&METADATA)),
    ],
    open: false,
    suggest: false,
};

pub(crate) static METADATA: Shape = Shape {
    keys: &[
        dflt("api", Ty::Str),
        opt("effect", Ty::Str),
        opt("method", Ty::Str),
        opt("id", Ty::Str),
        opt("number", Ty::Str),
        dflt("idCheck", Ty::Bool),
        opt("pagination", Ty::Obj(&PAGINATION)),
        dflt("request", Ty::Arr(&FIELD)),
        dflt("otherRequest", Ty::Arr(&FIELD)),
        dflt("formatResponse", Ty::Arr(&FORMAT_RULE)),
        opt("records_at", Ty::Str),
        opt("batch_size", Ty::UInt),
        opt("write_mode", Ty::Str),
    ],
    open: true,
    suggest: false,
};

pub(crate) static PAGINATION: Shape = Shape {
    keys: &[
        opt("pageSize", Ty::UInt),
        opt("mode", Ty::Str),
        opt("keyset_field", Ty::Str),
        opt("max_pages", Ty::UInt),
    ],
    open: true,
    suggest: false,
};

pub(crate) static FIELD: Shape = Shape {
    keys: &[
        opt("field", Ty::Str),
        opt("label", Ty::Str),
        dflt("type", Ty::FieldType),
        opt("value", Ty::Any),
        dflt("children", Ty::Arr(&FIELD)),
    ],
    open: true,
    suggest: true,
};

pub(crate) static FORMAT_RULE: Shape = Shape {
    keys: &[
        req("old", Ty::Str),
        req("new", Ty::Str),
        opt("format", Ty::Str),
    ],
    open: true,
    suggest: true,
};

/// Check `value` against `shape`; push `(path, message)` for every problem.
pub(crate) fn check(value: &Value, shape: &Shape, path: &str, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = value else {
        out.push((
            path.to_string(),
            format!("expected an object, found {}", type_name(value)),
        ));
        return;
    };
    for (name, item) in map {
        let item_path = join(path, name);
        match shape.keys.iter().find(|k| k.name == name) {
            Some(key) => check_value(item, key, &item_path, out),
            None if shape.open => {
                if shape.suggest
                    && let Some(near) = closest(name, &keys(shape))
                {
                    out.push((item_path, did_you_mean(name, near)));
                }
            }
            None => {
                let expected = shape
                    .keys
                    .iter()
                    .map(|k| format!("`{}`", k.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push((
                    item_path,
                    format!("unknown field `{name}`, expected one of {expected}"),
                ));
            }
        }
    }
    for key in shape.keys.iter().filter(|k| k.required) {
        if !map.contains_key(key.name) {
            out.push((join(path, key.name), "missing required key".to_string()));
        }
    }
}

fn check_value(value: &Value, key: &Key, path: &str, out: &mut Vec<(String, String)>) {
    if value.is_null() && key.nullable {
        return;
    }
    let mut mistyped = |expected: &str| {
        out.push((
            path.to_string(),
            format!("expected {expected}, found {}", type_name(value)),
        ));
    };
    match key.ty {
        Ty::Any => {}
        Ty::Str if !value.is_string() => mistyped("a string"),
        Ty::Bool if !value.is_boolean() => mistyped("true or false"),
        Ty::UInt if !value.is_u64() => mistyped("a non-negative integer"),
        Ty::FieldType => match value.as_str() {
            None => mistyped("a type name"),
            Some(name) if !FIELD_TYPES.contains(&name) => {
                let list = FIELD_TYPES
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push((
                    path.to_string(),
                    format!("unknown type `{name}`, expected one of {list}"),
                ));
            }
            Some(_) => {}
        },
        Ty::Obj(shape) => check(value, shape, path, out),
        Ty::Arr(shape) => match value.as_array() {
            None => mistyped("an array"),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, shape, &format!("{path}[{i}]"), out);
                }
            }
        },
        Ty::Str | Ty::Bool | Ty::UInt => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// JSON's name for the type of `value`, for messages (never the value: it may be a token).
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "an integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number with a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::{Endpoint, Field, FieldType, FormatRule, Metadata, Pagination, Scheme};
    use serde_json::json;

    fn keys_of(value: Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn keys_of_shape(shape: &Shape) -> Vec<String> {
        let mut keys: Vec<String> = shape.keys.iter().map(|k| k.name.to_string()).collect();
        keys.sort();
        keys
    }

    /// The shapes list exactly the keys the serde model knows.
    #[test]
    fn shapes_match_the_scheme_model() {
        let metadata = Metadata::default();
        let endpoint = Endpoint {
            connection: String::new(),
            metadata: metadata.clone(),
        };
        let scheme = Scheme {
            name: String::new(),
            description: None,
            schedule: None,
            timezone: String::new(),
            source: endpoint.clone(),
            target: endpoint.clone(),
        };
        let rule = FormatRule {
            old: String::new(),
            new: String::new(),
            format: None,
            extra: Default::default(),
        };
        let pairs = [
            (serde_json::to_value(scheme).unwrap(), &SCHEME),
            (serde_json::to_value(endpoint).unwrap(), &ENDPOINT),
            (serde_json::to_value(metadata).unwrap(), &METADATA),
            (
                serde_json::to_value(Pagination::default()).unwrap(),
                &PAGINATION,
            ),
            (serde_json::to_value(Field::default()).unwrap(), &FIELD),
            (serde_json::to_value(rule).unwrap(), &FORMAT_RULE),
        ];
        for (value, shape) in pairs {
            assert_eq!(keys_of(value), keys_of_shape(shape));
        }
        let types: Vec<String> = FIELD_TYPES
            .iter()
            .map(|t| {
                serde_json::from_value::<FieldType>(json!(t))
                    .map(|_| t.to_string())
                    .unwrap()
            })
            .collect();
        assert_eq!(types.len(), 9);
    }

    #[test]
    fn a_misspelt_key_of_a_request_node_is_named_with_the_right_one() {
        let value = json!({"feild": "order_no", "label": "单号 📦", "parent": "main_params"});
        let mut out = Vec::new();
        check(&value, &FIELD, "target.metadata.request[0]", &mut out);
        assert_eq!(
            out,
            [(
                "target.metadata.request[0].feild".to_string(),
                "unknown key `feild`, did you mean `field`?".to_string()
            )]
        );
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let value = json!({
            "name": 1,
            "sorce": {},
            "target": {
                "connection": "x",
                "metadata": {
                    "api": "execute",
                    "idCheck": "yes",
                    "effect": "EXECUTE",
                    "pagination": {"pageSize": -1},
                    "request": [{"field": "a", "type": "strng", "children": [{"type": 3}]}],
                    "formatResponse": [{"old": "a"}]
                }
            }
        });
        let mut out = Vec::new();
        check(&value, &SCHEME, "", &mut out);
        let lines: Vec<String> = out.iter().map(|(p, m)| format!("{p}: {m}")).collect();
        assert_eq!(
            lines,
            [
                "name: expected a string, found an integer",
                "sorce: unknown field `sorce`, expected one of `name`, `description`, `schedule`, `timezone`, `source`, `target`",
                "target.metadata.idCheck: expected true or false, found a string",
                "target.metadata.pagination.pageSize: expected a non-negative integer, found a negative integer",
                "target.metadata.request[0].type: unknown type `strng`, expected one of `string`, `int`, `float`, `decimal`, `date`, `datetime`, `bool`, `object`, `array`",
                "target.metadata.request[0].children[0].type: expected a type name, found an integer",
                "target.metadata.formatResponse[0].new: missing required key",
                "source: missing required key",
            ]
        );
    }
}
