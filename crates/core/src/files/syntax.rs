//! Where a JSON syntax error sits, as a JSON path.
//!
//! serde_json reports a syntax error by line and column only. To name the key being written
//! when the text broke off (`source.metadata.pagination`), this module re-reads the text up to
//! the error with a forgiving scanner that tracks the open objects and arrays and the current
//! key or index in each.

use serde_json::Error;

enum Frame {
    Object {
        key: Option<String>,
        expecting_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The problem path and message for a JSON syntax error in `text`:
/// (`source.metadata`, `invalid JSON at line 9, column 7: expected `,` or `}``).
pub(crate) fn describe(text: &str, err: &Error) -> (String, String) {
    let offset = byte_offset(text, err.line(), err.column());
    let (line, column) = crate::config::line_column(text, offset);
    let full = err.to_string();
    // serde_json appends " at line L column C"; we print our own (character-based) position.
    let message = match full.rfind(" at line ") {
        Some(at) => &full[..at],
        None => full.as_str(),
    };
    (
        path_at(&text[..offset]),
        format!("invalid JSON at line {line}, column {column}: {message}"),
    )
}

/// Byte offset of serde_json's 1-based line and (byte) column; column 0 means the line's start.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let mut offset = (start + column.saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The JSON path of the innermost key or element open at the end of `prefix`.
fn path_at(prefix: &str) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            '[' => stack.push(Frame::Array { index: 0 }),
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            ':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            '"' => {
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                text.push(escaped);
                            }
                        }
                        other => text.push(other),
                    }
                }
                if let Some(Frame::Object {
                    key,
                    expecting_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(text);
                }
            }
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => break,
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax_error(text: &str) -> (String, String) {
        let err = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
        describe(text, &err)
    }

    #[test]
    fn names_the_key_being_written() {
        let text = "{\n  \"name\": \"x\",\n  \"source\": {\n    \"metadata\": {\n      \"pagination\": {\"pageSize\": 100 \"mode\": \"page\"}\n";
        assert_eq!(
            syntax_error(text),
            (
                "source.metadata.pagination.pageSize".to_string(),
                "invalid JSON at line 5, column 38: expected `,` or `}`".to_string()
            )
        );
    }

    #[test]
    fn counts_array_elements_and_characters() {
        let text = "{\"request\": [{\"label\": \"留言\"}, {\"label\": \"电话\",}]}";
        let (path, message) = syntax_error(text);
        assert_eq!(path, "request[1]");
        assert_eq!(message, "invalid JSON at line 1, column 46: trailing comma");
    }

    #[test]
    fn top_level_errors_have_no_path() {
        assert_eq!(
            syntax_error(""),
            (
                String::new(),
                "invalid JSON at line 1, column 1: EOF while parsing a value".to_string()
            )
        );
    }
}
