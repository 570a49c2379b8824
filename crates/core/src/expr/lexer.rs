//! The tokenizer: turns expression text into tokens, each with its character offset.
//!
//! String literals take `'..'` or `".."` with backslash escapes (`\n`, `\t`, `\0`, `\\`,
//! `\'`, ...; `\%` and `\_` keep their backslash, as in MySQL) and doubled quotes (`'it''s'`).
//! Placeholders (`{field}`, `{{a.b}}`) are tokens of their own outside strings and are spliced
//! as text inside them.

use rust_decimal::Decimal;

use super::ExprError;
use crate::placeholder::{Placeholder, scan_placeholder};

/// One piece of a string literal.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StrPart {
    Text(String),
    Hole(Placeholder),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Num(Decimal),
    Str(Vec<StrPart>),
    Ident(String),
    Hole(Placeholder),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

/// A token and the character offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub offset: usize,
}

/// Split `src` into tokens, ending with `Eof`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Character index of a byte position at or after `byte`.
    let char_at = |byte: usize, from: usize| {
        let mut j = from;
        while j < chars.len() && chars[j].0 < byte {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let (byte, c) = chars[i];
        let start = i;
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let simple = |tok| Token { tok, offset: start };
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => tokens.push(simple(Tok::LParen)),
            ')' => tokens.push(simple(Tok::RParen)),
            ',' => tokens.push(simple(Tok::Comma)),
            '+' => tokens.push(simple(Tok::Plus)),
            '-' => tokens.push(simple(Tok::Minus)),
            '*' => tokens.push(simple(Tok::Star)),
            '/' => tokens.push(simple(Tok::Slash)),
            '%' => tokens.push(simple(Tok::Percent)),
            '=' => tokens.push(simple(Tok::Eq)),
            '!' if next == Some('=') => {
                tokens.push(simple(Tok::Ne));
                i += 1;
            }
            '<' if next == Some('=') => {
                tokens.push(simple(Tok::Le));
                i += 1;
            }
            '<' if next == Some('>') => {
                tokens.push(simple(Tok::Ne));
                i += 1;
            }
            '<' => tokens.push(simple(Tok::Lt)),
            '>' if next == Some('=') => {
                tokens.push(simple(Tok::Ge));
                i += 1;
            }
            '>' => tokens.push(simple(Tok::Gt)),
            '{' => match scan_placeholder(&src[byte..]) {
                Some(Ok((hole, len))) => {
                    tokens.push(simple(Tok::Hole(hole)));
                    i = char_at(byte + len, i);
                    continue;
                }
                Some(Err(message)) => return Err(ExprError::new(message, start)),
                None => return Err(ExprError::new("unexpected character '{'", start)),
            },
            '\'' | '"' => {
                let (parts, end) = string_literal(src, &chars, i)?;
                tokens.push(simple(Tok::Str(parts)));
                i = end;
                continue;
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut j = i;
                let mut seen_dot = false;
                while j < chars.len() {
                    let d = chars[j].1;
                    if d.is_ascii_digit() {
                        j += 1;
                    } else if d == '.' && !seen_dot {
                        seen_dot = true;
                        j += 1;
                    } else {
                        break;
                    }
                }
                // An exponent: `1e3`, `2.5E-2`.
                let mut scientific = false;
                if matches!(chars.get(j), Some((_, 'e' | 'E'))) {
                    let mut k = j + 1;
                    if matches!(chars.get(k), Some((_, '+' | '-'))) {
                        k += 1;
                    }
                    if chars.get(k).is_some_and(|&(_, d)| d.is_ascii_digit()) {
                        while chars.get(k).is_some_and(|&(_, d)| d.is_ascii_digit()) {
                            k += 1;
                        }
                        scientific = true;
                        j = k;
                    }
                }
                if j < chars.len() && (chars[j].1.is_alphabetic() || chars[j].1 == '_') {
                    return Err(ExprError::new(
                        format!("unexpected character '{}' in a number", chars[j].1),
                        j,
                    ));
                }
                let end_byte = chars.get(j).map_or(src.len(), |&(b, _)| b);
                let text = &src[byte..end_byte];
                let parsed = if scientific {
                    Decimal::from_scientific(text)
                } else {
                    Decimal::from_str_exact(text)
                };
                let num = parsed
                    .map_err(|_| ExprError::new(format!("number {text} out of range"), start))?;
                tokens.push(simple(Tok::Num(num)));
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                    j += 1;
                }
                let end_byte = chars.get(j).map_or(src.len(), |&(b, _)| b);
                tokens.push(simple(Tok::Ident(src[byte..end_byte].to_string())));
                i = j;
                continue;
            }
            '`' => {
                return Err(ExprError::new(
                    "backquoted names are not supported (use {field} for a record field)",
                    start,
                ));
            }
            other => {
                return Err(ExprError::new(
                    format!("unexpected character '{other}'"),
                    start,
                ));
            }
        }
        i += 1;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        offset: chars.len(),
    });
    Ok(tokens)
}

/// Read the string literal whose opening quote is at char index `start`; returns its parts
/// and the char index after the closing quote.
fn string_literal(
    src: &str,
    chars: &[(usize, char)],
    start: usize,
) -> Result<(Vec<StrPart>, usize), ExprError> {
    let quote = chars[start].1;
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        let Some(&(byte, c)) = chars.get(i) else {
            return Err(ExprError::new("unterminated string", start));
        };
        if c == quote {
            if chars.get(i + 1).map(|&(_, c)| c) == Some(quote) {
                text.push(quote);
                i += 2;
                continue;
            }
            i += 1;
            break;
        }
        if c == '\\' {
            let Some(&(_, escaped)) = chars.get(i + 1) else {
                return Err(ExprError::new("unterminated string", start));
            };
            match escaped {
                'n' => text.push('\n'),
                't' => text.push('\t'),
                'r' => text.push('\r'),
                '0' => text.push('\0'),
                'b' => text.push('\u{8}'),
                'Z' => text.push('\u{1a}'),
                '%' | '_' => {
                    text.push('\\');
                    text.push(escaped);
                }
                other => text.push(other),
            }
            i += 2;
            continue;
        }
        if c == '{'
            && let Some(found) = scan_placeholder(&src[byte..])
        {
            let (hole, len) = found.map_err(|message| ExprError::new(message, i))?;
            if !text.is_empty() {
                parts.push(StrPart::Text(std::mem::take(&mut text)));
            }
            parts.push(StrPart::Hole(hole));
            let end = byte + len;
            while i < chars.len() && chars[i].0 < end {
                i += 1;
            }
            continue;
        }
        text.push(c);
        i += 1;
    }
    if !text.is_empty() || parts.is_empty() {
        parts.push(StrPart::Text(text));
    }
    Ok((parts, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn text(s: &str) -> Tok {
        Tok::Str(vec![StrPart::Text(s.to_string())])
    }

    #[test]
    fn operators_numbers_and_names() {
        assert_eq!(
            toks("a(1.50, -2)<>=<=!=>= >"),
            vec![
                Tok::Ident("a".into()),
                Tok::LParen,
                Tok::Num(Decimal::new(150, 2)),
                Tok::Comma,
                Tok::Minus,
                Tok::Num(Decimal::from(2)),
                Tok::RParen,
                Tok::Ne,
                Tok::Eq,
                Tok::Le,
                Tok::Ne,
                Tok::Ge,
                Tok::Gt,
                Tok::Eof
            ]
        );
        assert_eq!(toks(".5"), vec![Tok::Num(Decimal::new(5, 1)), Tok::Eof]);
        assert_eq!(toks("1e3"), vec![Tok::Num(Decimal::from(1000)), Tok::Eof]);
        assert_eq!(
            toks("2.5E-2"),
            vec![Tok::Num(Decimal::new(25, 3)), Tok::Eof]
        );
        assert_eq!(
            tokenize("1e").unwrap_err().to_string(),
            "unexpected character 'e' in a number at 1"
        );
    }

    #[test]
    fn string_escapes_and_doubled_quotes() {
        assert_eq!(toks(r"'it''s'"), vec![text("it's"), Tok::Eof]);
        assert_eq!(toks(r#""say ""hi""""#), vec![text("say \"hi\""), Tok::Eof]);
        assert_eq!(toks(r"'a\'b\\c\nd'"), vec![text("a'b\\c\nd"), Tok::Eof]);
        assert_eq!(toks(r"'50\%'"), vec![text("50\\%"), Tok::Eof]);
        assert_eq!(toks("''"), vec![text(""), Tok::Eof]);
        assert_eq!(toks("'中文😀'"), vec![text("中文😀"), Tok::Eof]);
    }

    #[test]
    fn errors_point_at_characters() {
        assert_eq!(
            tokenize("'abc").unwrap_err().to_string(),
            "unterminated string at 0"
        );
        assert_eq!(
            tokenize("1 + ~").unwrap_err().to_string(),
            "unexpected character '~' at 4"
        );
        assert_eq!(tokenize("中 ~").unwrap_err().offset, 2);
        assert_eq!(
            tokenize("12abc").unwrap_err().to_string(),
            "unexpected character 'a' in a number at 2"
        );
        assert_eq!(
            tokenize("{ x").unwrap_err().to_string(),
            "unexpected character '{' at 0"
        );
        assert_eq!(
            tokenize("99999999999999999999999999999999")
                .unwrap_err()
                .to_string(),
            "number 99999999999999999999999999999999 out of range at 0"
        );
    }

    #[test]
    fn placeholders_are_tokens_outside_strings_and_text_inside() {
        let t = tokenize("{a} + '{{b.c}}x'").unwrap();
        assert!(matches!(t[0].tok, Tok::Hole(_)));
        assert_eq!(t[1].tok, Tok::Plus);
        assert_eq!(t[1].offset, 4);
        match &t[2].tok {
            Tok::Str(parts) => {
                assert_eq!(parts.len(), 2);
                assert!(matches!(parts[0], StrPart::Hole(_)));
                assert_eq!(parts[1], StrPart::Text("x".into()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t[3].offset, 16);
    }
}
