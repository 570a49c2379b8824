//! `${VAR}` and `${VAR:-default}` substitution in configuration values.
//!
//! Every string value of `ferry.toml` goes through [`substitute`] before it is read, so any key
//! (a URL, a token, even a number written as `"${PREFETCH:-16}"`) can come from the environment.
//! The lookup is passed in rather than read from the process, so tests never touch the real
//! environment. `$${` writes a literal `${`. As in the shell, `:-` also replaces a variable that
//! is set but empty. A default runs to the first `}`, so it cannot itself contain `}`.

use std::fmt;

/// Why a value could not be substituted. Messages name variables, never their values or defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubstError {
    /// `${VAR}` without a default, and `VAR` is not set.
    Unset { var: String },
    /// `${` without a closing `}`.
    Unclosed,
    /// `${}` or `${:-x}`.
    EmptyName,
    /// `${not a name}`.
    BadName { name: String },
}

impl fmt::Display for SubstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubstError::Unset { var } => write!(
                f,
                "environment variable `{var}` is not set and has no default \
                 (set it, or write `${{{var}:-default}}`)"
            ),
            SubstError::Unclosed => {
                f.write_str("`${` is not closed by `}` (write `$${` for a literal `${`)")
            }
            SubstError::EmptyName => f.write_str("`${}` names no environment variable"),
            SubstError::BadName { name } => write!(
                f,
                "`{name}` is not an environment variable name (letters, digits and `_`, \
                 not starting with a digit; write `${{VAR:-default}}` for a default)"
            ),
        }
    }
}

/// Replace every `${VAR}` / `${VAR:-default}` in `text`, looking variables up with `env`.
pub fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let close = open.find('}').ok_or(SubstError::Unclosed)?;
            out.push_str(&expand(&open[..close], env)?);
            rest = &open[close + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` body: `VAR` or `VAR:-default`.
fn expand(body: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if name.is_empty() {
        return Err(SubstError::EmptyName);
    }
    if !is_var_name(name) {
        return Err(SubstError::BadName {
            name: name.to_string(),
        });
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(SubstError::Unset {
            var: name.to_string(),
        }),
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            "CN" => Some("张三🚀".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_variables_and_defaults() {
        assert_eq!(
            substitute("mysql://${HOST}:3306", &env).unwrap(),
            "mysql://db.local:3306"
        );
        assert_eq!(substitute("${NOPE:-x:y/z}", &env).unwrap(), "x:y/z");
        assert_eq!(substitute("${HOST:-other}", &env).unwrap(), "db.local");
        assert_eq!(substitute("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(substitute("[${EMPTY}]", &env).unwrap(), "[]");
        assert_eq!(substitute("${NOPE:-}", &env).unwrap(), "");
        assert_eq!(substitute("${CN} 😀", &env).unwrap(), "张三🚀 😀");
    }

    #[test]
    fn dollar_dollar_brace_escapes_and_lone_dollars_stay() {
        assert_eq!(substitute("$${HOST}", &env).unwrap(), "${HOST}");
        assert_eq!(substitute("a$b $$ $", &env).unwrap(), "a$b $$ $");
        // Read left to right: a `$` not followed by `${`, then the escape.
        assert_eq!(substitute("$$${HOST}", &env).unwrap(), "$${HOST}");
    }

    #[test]
    fn errors_name_the_variable_and_never_the_default() {
        assert_eq!(
            substitute("x${TOKEN}", &env),
            Err(SubstError::Unset {
                var: "TOKEN".into()
            })
        );
        assert_eq!(substitute("${HOST", &env), Err(SubstError::Unclosed));
        assert_eq!(substitute("${}", &env), Err(SubstError::EmptyName));
        assert_eq!(substitute("${:-x}", &env), Err(SubstError::EmptyName));
        assert_eq!(
            substitute("${1X}", &env),
            Err(SubstError::BadName { name: "1X".into() })
        );
        assert_eq!(
            SubstError::Unset { var: "T".into() }.to_string(),
            "environment variable `T` is not set and has no default (set it, or write `${T:-default}`)"
        );
    }
}
