//! Recursive-descent parser: tokens to an [`Expr`] tree.
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, comparisons, `+ -`, `* / %`, unary `- +`,
//! then literals, placeholders, `INTERVAL n UNIT`, calls and parentheses. Function names and
//! arities are checked here, so a scheme with `FOO()` or `ROUND()` fails `ferry lint`, not
//! its first record.

use rust_decimal::Decimal;

use super::lexer::{StrPart, Tok, Token};
use super::{Expr, ExprError, MAX_DEPTH};
use crate::placeholder::Placeholder;

/// Node kinds of an expression tree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Num(Decimal),
    Str(Vec<StrPart>),
    Hole(Placeholder),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Interval(Box<Expr>, Unit),
    Call(Func, Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// `INTERVAL` units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    fn parse(name: &str) -> Option<Unit> {
        Some(match name.to_ascii_uppercase().as_str() {
            "SECOND" => Unit::Second,
            "MINUTE" => Unit::Minute,
            "HOUR" => Unit::Hour,
            "DAY" => Unit::Day,
            "WEEK" => Unit::Week,
            "MONTH" => Unit::Month,
            "QUARTER" => Unit::Quarter,
            "YEAR" => Unit::Year,
            _ => return None,
        })
    }
}

macro_rules! functions {
    ($($variant:ident $name:literal $min:literal $max:expr;)*) => {
        /// The functions an expression may call.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Func { $($variant),* }

        impl Func {
            /// Look a function up by name (case-insensitive).
            pub(crate) fn lookup(name: &str) -> Option<Func> {
                match name.to_ascii_uppercase().as_str() {
                    $($name => Some(Func::$variant),)*
                    _ => None,
                }
            }

            /// The upper-case name, for messages.
            pub(crate) fn name(self) -> &'static str {
                match self { $(Func::$variant => $name),* }
            }

            /// Least and most arguments (None: any number).
            fn arity(self) -> (usize, Option<usize>) {
                match self { $(Func::$variant => ($min, $max)),* }
            }
        }
    };
}

functions! {
    Now "NOW" 0 Some(0);
    Sysdate "SYSDATE" 0 Some(0);
    CurrentTimestamp "CURRENT_TIMESTAMP" 0 Some(0);
    Curdate "CURDATE" 0 Some(0);
    CurrentDate "CURRENT_DATE" 0 Some(0);
    Date "DATE" 1 Some(1);
    DateAdd "DATE_ADD" 2 Some(2);
    AddDate "ADDDATE" 2 Some(2);
    DateSub "DATE_SUB" 2 Some(2);
    SubDate "SUBDATE" 2 Some(2);
    DateFormat "DATE_FORMAT" 2 Some(2);
    DateDiff "DATEDIFF" 2 Some(2);
    UnixTimestamp "UNIX_TIMESTAMP" 0 Some(1);
    FromUnixtime "FROM_UNIXTIME" 1 Some(2);
    Concat "CONCAT" 1 None;
    ConcatWs "CONCAT_WS" 2 None;
    Ifnull "IFNULL" 2 Some(2);
    Coalesce "COALESCE" 1 None;
    If "IF" 3 Some(3);
    Nullif "NULLIF" 2 Some(2);
    Round "ROUND" 1 Some(2);
    Floor "FLOOR" 1 Some(1);
    Ceil "CEIL" 1 Some(1);
    Ceiling "CEILING" 1 Some(1);
    Abs "ABS" 1 Some(1);
    Replace "REPLACE" 3 Some(3);
    Substring "SUBSTRING" 2 Some(3);
    Substr "SUBSTR" 2 Some(3);
    Left "LEFT" 2 Some(2);
    Right "RIGHT" 2 Some(2);
    Lpad "LPAD" 3 Some(3);
    Rpad "RPAD" 3 Some(3);
    Upper "UPPER" 1 Some(1);
    Ucase "UCASE" 1 Some(1);
    Lower "LOWER" 1 Some(1);
    Lcase "LCASE" 1 Some(1);
    Trim "TRIM" 1 Some(1);
    Ltrim "LTRIM" 1 Some(1);
    Rtrim "RTRIM" 1 Some(1);
    Length "LENGTH" 1 Some(1);
    CharLength "CHAR_LENGTH" 1 Some(1);
    CharacterLength "CHARACTER_LENGTH" 1 Some(1);
}

/// Parser state: the tokens and a cursor.
pub(crate) struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    pub(crate) fn new(tokens: Vec<Token>) -> Self {
        Parser {
            tokens,
            pos: 0,
            depth: 0,
        }
    }

    /// Parse one expression that must use every token.
    pub(crate) fn parse_all(mut self) -> Result<Expr, ExprError> {
        if matches!(self.peek(), Tok::Eof) {
            return Err(ExprError::new("empty expression", self.offset()));
        }
        let expr = self.expr()?;
        match self.peek() {
            Tok::Eof => Ok(expr),
            other => Err(ExprError::new(
                format!("unexpected {}", describe(other)),
                self.offset(),
            )),
        }
    }

    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(0, |t| t.offset)
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens.get(self.pos).cloned().unwrap_or(Token {
            tok: Tok::Eof,
            offset: self.offset(),
        });
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn peek_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(name) if name.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ExprError> {
        if *self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(ExprError::new(
                format!("expected {what}, found {}", describe(self.peek())),
                self.offset(),
            ))
        }
    }

    /// Enter one level of nesting; fails past [`MAX_DEPTH`].
    fn descend(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::new(
                "expression nested too deeply",
                self.offset(),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.descend()?;
        let result = self.or();
        self.depth -= 1;
        result
    }

    fn binary_node(op: BinOp, left: Expr, right: Expr, offset: usize) -> Expr {
        Expr {
            kind: Kind::Binary(op, Box::new(left), Box::new(right)),
            offset,
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.peek_keyword("OR") {
            let offset = self.advance().offset;
            let right = self.and()?;
            left = Self::binary_node(BinOp::Or, left, right, offset);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.peek_keyword("AND") {
            let offset = self.advance().offset;
            let right = self.not()?;
            left = Self::binary_node(BinOp::And, left, right, offset);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.peek_keyword("NOT") {
            let offset = self.advance().offset;
            self.descend()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Expr {
                kind: Kind::Not(Box::new(inner?)),
                offset,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.additive()?;
        loop {
            let op = match self.peek() {
                Tok::Eq => BinOp::Eq,
                Tok::Ne => BinOp::Ne,
                Tok::Lt => BinOp::Lt,
                Tok::Le => BinOp::Le,
                Tok::Gt => BinOp::Gt,
                Tok::Ge => BinOp::Ge,
                _ => return Ok(left),
            };
            let offset = self.advance().offset;
            let right = self.additive()?;
            left = Self::binary_node(op, left, right, offset);
        }
    }

    fn additive(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(left),
            };
            let offset = self.advance().offset;
            let right = self.multiplicative()?;
            left = Self::binary_node(op, left, right, offset);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(left),
            };
            let offset = self.advance().offset;
            let right = self.unary()?;
            left = Self::binary_node(op, left, right, offset);
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            Tok::Minus | Tok::Plus => {
                let token = self.advance();
                self.descend()?;
                let inner = self.unary();
                self.depth -= 1;
                let inner = inner?;
                if token.tok == Tok::Plus {
                    return Ok(inner);
                }
                // Fold `-5` into a literal so that `-5` reads back as a number.
                if let Kind::Num(n) = inner.kind {
                    return Ok(Expr {
                        kind: Kind::Num(-n),
                        offset: token.offset,
                    });
                }
                Ok(Expr {
                    kind: Kind::Neg(Box::new(inner)),
                    offset: token.offset,
                })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let token = self.advance();
        let offset = token.offset;
        let node = |kind| Ok(Expr { kind, offset });
        match token.tok {
            Tok::Num(n) => node(Kind::Num(n)),
            Tok::Str(parts) => node(Kind::Str(parts)),
            Tok::Hole(hole) => node(Kind::Hole(hole)),
            Tok::LParen => {
                let inner = self.expr()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::Ident(name) => self.identifier(name, offset),
            other => Err(ExprError::new(
                format!("unexpected {}", describe(&other)),
                offset,
            )),
        }
    }

    fn identifier(&mut self, name: String, offset: usize) -> Result<Expr, ExprError> {
        let node = |kind| Ok(Expr { kind, offset });
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "NULL" => return node(Kind::Null),
            "TRUE" => return node(Kind::Bool(true)),
            "FALSE" => return node(Kind::Bool(false)),
            "INTERVAL" => {
                self.descend()?;
                let amount = self.additive();
                self.depth -= 1;
                let amount = amount?;
                let unit_offset = self.offset();
                return match self.advance().tok {
                    Tok::Ident(unit) => match Unit::parse(&unit) {
                        Some(unit) => node(Kind::Interval(Box::new(amount), unit)),
                        None => Err(ExprError::new(
                            format!("unknown INTERVAL unit {unit}"),
                            unit_offset,
                        )),
                    },
                    other => Err(ExprError::new(
                        format!("expected an INTERVAL unit, found {}", describe(&other)),
                        unit_offset,
                    )),
                };
            }
            _ => {}
        }
        if *self.peek() != Tok::LParen {
            // MySQL allows these without parentheses.
            return match upper.as_str() {
                "CURRENT_TIMESTAMP" => node(Kind::Call(Func::CurrentTimestamp, Vec::new())),
                "CURRENT_DATE" => node(Kind::Call(Func::CurrentDate, Vec::new())),
                _ => Err(ExprError::new(
                    format!("unknown name {name} (write {{{name}}} for a record field)"),
                    offset,
                )),
            };
        }
        let func = Func::lookup(&name)
            .ok_or_else(|| ExprError::new(format!("unknown function {upper}"), offset))?;
        self.advance(); // (
        self.descend()?;
        let args = self.arguments();
        self.depth -= 1;
        let args = args?;
        let (min, max) = func.arity();
        if args.len() < min || max.is_some_and(|max| args.len() > max) {
            let expected = match max {
                Some(max) if max == min => format!("{min}"),
                Some(max) => format!("{min} to {max}"),
                None => format!("at least {min}"),
            };
            return Err(ExprError::new(
                format!(
                    "{} takes {expected} argument{}, got {}",
                    func.name(),
                    if expected.ends_with(" 1") || expected == "1" {
                        ""
                    } else {
                        "s"
                    },
                    args.len()
                ),
                offset,
            ));
        }
        node(Kind::Call(func, args))
    }

    /// Arguments after `(`, through the closing `)`.
    fn arguments(&mut self) -> Result<Vec<Expr>, ExprError> {
        let mut args = Vec::new();
        if *self.peek() == Tok::RParen {
            self.advance();
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            match self.peek() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RParen => {
                    self.advance();
                    return Ok(args);
                }
                other => {
                    return Err(ExprError::new(
                        format!("expected ',' or ')', found {}", describe(other)),
                        self.offset(),
                    ));
                }
            }
        }
    }
}

/// A token as a message shows it.
fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Num(n) => format!("number {n}"),
        Tok::Str(_) => "string".to_string(),
        Tok::Ident(name) => format!("name {name}"),
        Tok::Hole(_) => "placeholder".to_string(),
        Tok::LParen => "'('".to_string(),
        Tok::RParen => "')'".to_string(),
        Tok::Comma => "','".to_string(),
        Tok::Plus => "'+'".to_string(),
        Tok::Minus => "'-'".to_string(),
        Tok::Star => "'*'".to_string(),
        Tok::Slash => "'/'".to_string(),
        Tok::Percent => "'%'".to_string(),
        Tok::Eq => "'='".to_string(),
        Tok::Ne => "'!='".to_string(),
        Tok::Lt => "'<'".to_string(),
        Tok::Le => "'<='".to_string(),
        Tok::Gt => "'>'".to_string(),
        Tok::Ge => "'>='".to_string(),
        Tok::Eof => "end of expression".to_string(),
    }
}
