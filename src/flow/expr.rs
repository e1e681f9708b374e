//! The small expression language of `set`, `branch` and templates: literals, variables,
//! comparisons, `and`/`or`/`not`, `+`/`-`, and a few functions. Parsed once at load time;
//! evaluating never fails (an unset variable is the empty string), so a flow cannot crash a
//! call with a bad value.

use std::fmt;

/// Values are text or numbers; a variable holds text and is read as a number when it looks
/// like one, the way callers' digits and back-end fields arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Num(f64),
    Bool(bool),
}

impl Value {
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0,
            Value::Text(s) => !s.is_empty() && s != "false" && s != "0",
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Text(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            Value::Bool(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Value::Num(n) => write!(f, "{n}"),
        }
    }
}

/// Names the interpreter answers itself; everything else is a flow variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Caller,
    Dialled,
    Language,
    /// Wall-clock parts in the server's time zone.
    Hour,
    Minute,
    Weekday,
    Date,
    Time,
}

impl Builtin {
    pub const ALL: [(&'static str, Builtin); 8] = [
        ("caller", Builtin::Caller),
        ("dialled", Builtin::Dialled),
        ("language", Builtin::Language),
        ("hour", Builtin::Hour),
        ("minute", Builtin::Minute),
        ("weekday", Builtin::Weekday),
        ("date", Builtin::Date),
        ("time", Builtin::Time),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    StartsWith,
    EndsWith,
    Contains,
    Len,
    /// `substr(s, start, count)`: characters from `start` (0-based), at most `count`.
    Substr,
    /// `right(s, n)`: the last `n` characters (a card's last four).
    Right,
    /// `trim_prefix(s, p)`: `s` without `p` in front, if it is there (+86, 0).
    TrimPrefix,
    /// `is_digits(s)`: non-empty and nothing but 0-9.
    IsDigits,
    /// `mod(a, b)`: the remainder of whole numbers; empty when either is not one or b is 0.
    Mod,
    /// `luhn(s)`: the Luhn check digit of a card number is right.
    Luhn,
}

const FUNCS: [(&str, Func, usize); 10] = [
    ("starts_with", Func::StartsWith, 2),
    ("ends_with", Func::EndsWith, 2),
    ("contains", Func::Contains, 2),
    ("len", Func::Len, 1),
    ("substr", Func::Substr, 3),
    ("right", Func::Right, 2),
    ("trim_prefix", Func::TrimPrefix, 2),
    ("is_digits", Func::IsDigits, 1),
    ("mod", Func::Mod, 2),
    ("luhn", Func::Luhn, 1),
];

/// A count or position from an argument: whole, not negative, and bounded, else None.
fn whole(text: &str) -> Option<usize> {
    let n = text.trim().parse::<f64>().ok()?;
    (n.fract() == 0.0 && (0.0..=1e9).contains(&n)).then_some(n as usize)
}

/// The Luhn check (ISO/IEC 7812): from the right, every second digit doubled.
fn luhn_ok(s: &str) -> bool {
    if s.len() < 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Add,
    Sub,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Builtin(Builtin),
    Var(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// What an expression reads while it is evaluated.
pub trait Scope {
    fn builtin(&self, b: Builtin) -> Value;
    fn var(&self, name: &str) -> Option<&str>;
}

impl Expr {
    pub fn eval(&self, scope: &dyn Scope) -> Value {
        match self {
            Expr::Lit(v) => v.clone(),
            Expr::Builtin(b) => scope.builtin(*b),
            Expr::Var(name) => Value::Text(scope.var(name).unwrap_or("").to_string()),
            Expr::Not(e) => Value::Bool(!e.eval(scope).truthy()),
            Expr::Neg(e) => match e.eval(scope).number() {
                Some(n) => Value::Num(-n),
                None => Value::Text(String::new()),
            },
            Expr::Bin(Op::And, a, b) => {
                Value::Bool(a.eval(scope).truthy() && b.eval(scope).truthy())
            }
            Expr::Bin(Op::Or, a, b) => {
                Value::Bool(a.eval(scope).truthy() || b.eval(scope).truthy())
            }
            Expr::Bin(op, a, b) => binary(*op, a.eval(scope), b.eval(scope)),
            Expr::Call(f, args) => {
                let text: Vec<String> = args.iter().map(|a| a.eval(scope).to_string()).collect();
                match f {
                    Func::StartsWith => Value::Bool(text[0].starts_with(&text[1])),
                    Func::EndsWith => Value::Bool(text[0].ends_with(&text[1])),
                    Func::Contains => Value::Bool(text[0].contains(&text[1])),
                    Func::Len => Value::Num(text[0].chars().count() as f64),
                    Func::Substr => {
                        let (start, count) = (whole(&text[1]), whole(&text[2]));
                        Value::Text(match (start, count) {
                            (Some(start), Some(count)) => {
                                text[0].chars().skip(start).take(count).collect()
                            }
                            _ => String::new(),
                        })
                    }
                    Func::Right => Value::Text(match whole(&text[1]) {
                        Some(n) => {
                            let len = text[0].chars().count();
                            text[0].chars().skip(len.saturating_sub(n)).collect()
                        }
                        None => String::new(),
                    }),
                    Func::TrimPrefix => Value::Text(
                        text[0]
                            .strip_prefix(text[1].as_str())
                            .unwrap_or(&text[0])
                            .to_string(),
                    ),
                    Func::IsDigits => Value::Bool(
                        !text[0].is_empty() && text[0].bytes().all(|b| b.is_ascii_digit()),
                    ),
                    Func::Mod => {
                        let parse = |t: &str| t.trim().parse::<i64>().ok();
                        match (parse(&text[0]), parse(&text[1])) {
                            (Some(a), Some(b)) if b != 0 => Value::Num(a.rem_euclid(b) as f64),
                            _ => Value::Text(String::new()),
                        }
                    }
                    Func::Luhn => Value::Bool(luhn_ok(&text[0])),
                }
            }
        }
    }

    /// Flow variables this expression reads, for the "never set" check.
    pub fn variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Var(v) => out.push(v),
            Expr::Not(e) | Expr::Neg(e) => e.variables(out),
            Expr::Bin(_, a, b) => {
                a.variables(out);
                b.variables(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.variables(out)),
            Expr::Lit(_) | Expr::Builtin(_) => {}
        }
    }
}

fn binary(op: Op, a: Value, b: Value) -> Value {
    let nums = a.number().zip(b.number());
    let ord = || match nums {
        Some((x, y)) => x.partial_cmp(&y),
        None => Some(a.to_string().cmp(&b.to_string())),
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => Value::Bool(match nums {
            Some((x, y)) => x == y,
            None => a.to_string() == b.to_string(),
        }),
        Op::Ne => Value::Bool(match nums {
            Some((x, y)) => x != y,
            None => a.to_string() != b.to_string(),
        }),
        Op::Lt => Value::Bool(ord() == Some(Less)),
        Op::Le => Value::Bool(matches!(ord(), Some(Less | Equal))),
        Op::Gt => Value::Bool(ord() == Some(Greater)),
        Op::Ge => Value::Bool(matches!(ord(), Some(Greater | Equal))),
        Op::Add => match nums {
            Some((x, y)) => Value::Num(x + y),
            None => Value::Text(format!("{a}{b}")),
        },
        Op::Sub => match nums {
            Some((x, y)) => Value::Num(x - y),
            None => Value::Text(String::new()),
        },
        Op::And | Op::Or => unreachable!("handled lazily by eval"),
    }
}

/// A parse error, with the character offset in the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

const MAX_DEPTH: usize = 32;

/// Longer expressions are refused: evaluating and dropping a tree recurse, and a flow file
/// must never be able to exhaust a thread's stack.
const MAX_TOKENS: usize = 256;

pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let tokens = lex(text)?;
    if tokens.len() > MAX_TOKENS {
        return Err(ExprError {
            offset: tokens[MAX_TOKENS].0,
            message: format!(
                "expression is too long (more than {MAX_TOKENS} parts); split it over set nodes"
            ),
        });
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: text.chars().count(),
    };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some((at, t)) => Err(ExprError {
            offset: *at,
            message: format!("unexpected {t} after a complete expression"),
        }),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Sym(&'static str),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "number {n}"),
            Tok::Str(s) => write!(f, "text {s:?}"),
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Sym(s) => write!(f, "`{s}`"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset, message: &str| ExprError {
        offset,
        message: message.to_string(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| err(start, "malformed number"))?;
            out.push((start, Tok::Num(n)));
        } else if c == '\'' || c == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(err(start, "text is not closed with its quote")),
                    Some(&q) if q == c => break,
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            out.push((start, Tok::Str(s)));
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((start, Tok::Ident(chars[start..i].iter().collect())));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = ["==", "!=", "<=", ">=", "&&", "||"]
                .into_iter()
                .find(|s| *s == two);
            let sym = match sym {
                Some(s) => {
                    i += 2;
                    s
                }
                None => {
                    i += 1;
                    match c {
                        '<' => "<",
                        '>' => ">",
                        '+' => "+",
                        '-' => "-",
                        '(' => "(",
                        ')' => ")",
                        ',' => ",",
                        '!' => "!",
                        '=' => return Err(err(start, "use `==` to compare")),
                        _ => return Err(err(start, &format!("unexpected character {c:?}"))),
                    }
                }
            };
            out.push((start, Tok::Sym(sym)));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.pos)
    }

    fn at(&self) -> usize {
        self.peek().map_or(self.end, |(at, _)| *at)
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some((_, Tok::Sym(s))) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some((_, Tok::Ident(s))) if s == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            offset: self.at(),
            message: message.into(),
        })
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.eat_word("or") || self.eat_sym("||") {
            left = Expr::Bin(Op::Or, Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.eat_word("and") || self.eat_sym("&&") {
            left = Expr::Bin(Op::And, Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.eat_word("not") || self.eat_sym("!") {
            return self.nested(|p| p.not()).map(|e| Expr::Not(Box::new(e)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let left = self.sum()?;
        for (sym, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat_sym(sym) {
                return Ok(Expr::Bin(op, Box::new(left), Box::new(self.sum()?)));
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_sym("+") {
                Op::Add
            } else if self.eat_sym("-") {
                Op::Sub
            } else {
                return Ok(left);
            };
            left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat_sym("-") {
            return self.nested(|p| p.unary()).map(|e| Expr::Neg(Box::new(e)));
        }
        self.atom()
    }

    fn nested(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<Expr, ExprError>,
    ) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("expression is nested too deeply");
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let Some((at, tok)) = self.peek().cloned() else {
            return self.fail("expression ends where a value was expected");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Lit(Value::Num(n))),
            Tok::Str(s) => Ok(Expr::Lit(Value::Text(s))),
            Tok::Sym("(") => {
                let e = self.nested(|p| p.or())?;
                if !self.eat_sym(")") {
                    return self.fail("missing `)`");
                }
                Ok(e)
            }
            Tok::Ident(name) => {
                if self.eat_sym("(") {
                    return self.call(at, &name);
                }
                match name.as_str() {
                    "true" => return Ok(Expr::Lit(Value::Bool(true))),
                    "false" => return Ok(Expr::Lit(Value::Bool(false))),
                    "and" | "or" | "not" => {
                        return Err(ExprError {
                            offset: at,
                            message: format!("`{name}` needs a value before it"),
                        });
                    }
                    _ => {}
                }
                Ok(Builtin::ALL
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(Expr::Var(name), |(_, b)| Expr::Builtin(*b)))
            }
            Tok::Sym(s) => Err(ExprError {
                offset: at,
                message: format!("unexpected `{s}`"),
            }),
        }
    }

    fn call(&mut self, at: usize, name: &str) -> Result<Expr, ExprError> {
        let Some((_, func, arity)) = FUNCS.iter().find(|(n, _, _)| *n == name) else {
            let known = FUNCS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ");
            return Err(ExprError {
                offset: at,
                message: format!("unknown function `{name}` (known: {known})"),
            });
        };
        let mut args = Vec::new();
        if !self.eat_sym(")") {
            loop {
                args.push(self.nested(|p| p.or())?);
                if self.eat_sym(")") {
                    break;
                }
                if !self.eat_sym(",") {
                    return self.fail("expected `,` or `)` in the argument list");
                }
            }
        }
        if args.len() != *arity {
            return Err(ExprError {
                offset: at,
                message: format!("`{name}` takes {arity} argument(s), not {}", args.len()),
            });
        }
        Ok(Expr::Call(*func, args))
    }
}

/// Text with `{expression}` holes, for URLs and dialled numbers. `{{` and `}}` are braces.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Hole(Expr),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    lit.push(chars[i]);
                    i += 2;
                }
                ('{', _) => {
                    let close = chars[i..].iter().position(|c| *c == '}').ok_or(ExprError {
                        offset: i,
                        message: "`{` is not closed with `}`".into(),
                    })?;
                    let inner: String = chars[i + 1..i + close].iter().collect();
                    let expr = parse(&inner).map_err(|e| ExprError {
                        offset: i + 1 + e.offset,
                        message: e.message,
                    })?;
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Hole(expr));
                    i += close + 1;
                }
                ('}', _) => {
                    return Err(ExprError {
                        offset: i,
                        message: "a lone `}` (write `}}` for a brace)".into(),
                    });
                }
                (c, _) => {
                    lit.push(c);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// Fill the holes, passing each value through `escape` (URL encoding, for one).
    pub fn render(&self, scope: &dyn Scope, escape: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(e) => out.push_str(&escape(&e.eval(scope).to_string())),
            }
        }
        out
    }

    /// Like [`Template::render`] without escaping, but None when a hole comes out empty:
    /// a name made from an unknown value names nothing.
    pub fn render_filled(&self, scope: &dyn Scope) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(e) => {
                    let value = e.eval(scope).to_string();
                    if value.is_empty() {
                        return None;
                    }
                    out.push_str(&value);
                }
            }
        }
        Some(out)
    }

    /// The text, when the template has no holes.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(_) => return None,
            }
        }
        Some(out)
    }

    /// Whether some values of the holes could make `text`: it starts with the text before the
    /// first hole and ends with the text after the last one.
    pub fn could_render(&self, text: &str) -> bool {
        if let Some(literal) = self.literal() {
            return literal == text;
        }
        let prefix = match self.parts.first() {
            Some(Part::Text(t)) => t.as_str(),
            _ => "",
        };
        let suffix = match self.parts.last() {
            Some(Part::Text(t)) => t.as_str(),
            _ => "",
        };
        text.len() >= prefix.len() + suffix.len()
            && text.starts_with(prefix)
            && text.ends_with(suffix)
    }

    pub fn variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        for part in &self.parts {
            if let Part::Hole(e) = part {
                e.variables(out);
            }
        }
    }
}

/// Percent-encoding for a value placed in a URL path or query (RFC 3986 unreserved kept).
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, &'static str>);
    impl Scope for Vars {
        fn builtin(&self, b: Builtin) -> Value {
            match b {
                Builtin::Caller => Value::Text("8613800000001".into()),
                Builtin::Hour => Value::Num(14.0),
                _ => Value::Text(String::new()),
            }
        }
        fn var(&self, name: &str) -> Option<&str> {
            self.0.get(name).copied()
        }
    }

    fn eval(text: &str) -> Value {
        let vars = Vars(HashMap::from([
            ("tier", "gold"),
            ("balance", "12.50"),
            ("n", "2"),
        ]));
        parse(text).unwrap().eval(&vars)
    }

    #[test]
    fn comparisons_read_numbers_as_numbers_and_text_as_text() {
        assert_eq!(eval("tier == 'gold'"), Value::Bool(true));
        assert_eq!(
            eval("balance > 9"),
            Value::Bool(true),
            "12.50 > 9 numerically"
        );
        assert_eq!(eval("'10' < '9'"), Value::Bool(false), "both numeric");
        assert_eq!(eval("'b' > 'a'"), Value::Bool(true));
        assert_eq!(eval("n + 1"), Value::Num(3.0));
        assert_eq!(eval("n + 1").to_string(), "3");
        assert_eq!(eval("tier + '!'"), Value::Text("gold!".into()));
        assert_eq!(eval("missing == ''"), Value::Bool(true), "unset is empty");
    }

    #[test]
    fn logic_builtins_and_functions() {
        assert_eq!(
            eval("starts_with(caller, '86') and hour >= 9 and not (tier == 'basic')"),
            Value::Bool(true)
        );
        assert_eq!(eval("len(caller) == 13 || false"), Value::Bool(true));
        assert_eq!(eval("-n"), Value::Num(-2.0));
        assert_eq!(eval("contains(tier, 'ol')"), Value::Bool(true));
    }

    /// What a card or a caller number needs without a back end (issue 10).
    #[test]
    fn text_and_number_functions_for_cards_and_numbers() {
        let t = |e: &str| eval(e).to_string();
        assert_eq!(t("substr('4111222233334444', 0, 6)"), "411122", "a BIN");
        assert_eq!(t("substr('abc', 1, 99)"), "bc");
        assert_eq!(t("substr('abc', 5, 2)"), "");
        assert_eq!(t("substr('abc', -1, 2)"), "", "no negative positions");
        assert_eq!(t("substr('abc', 0.5, 2)"), "");
        assert_eq!(t("right('4111222233334444', 4)"), "4444");
        assert_eq!(t("right('12', 4)"), "12");
        assert_eq!(t("trim_prefix('+8613800000001', '+86')"), "13800000001");
        assert_eq!(t("trim_prefix('013800000001', '+86')"), "013800000001");
        assert_eq!(
            t("trim_prefix(trim_prefix('008613800000001', '00'), '86')"),
            "13800000001"
        );
        assert_eq!(eval("is_digits('0123')"), Value::Bool(true));
        assert_eq!(eval("is_digits('12a')"), Value::Bool(false));
        assert_eq!(eval("is_digits('')"), Value::Bool(false));
        assert_eq!(t("mod(17, 5)"), "2");
        assert_eq!(t("mod(-1, 5)"), "4", "a remainder is never negative");
        assert_eq!(t("mod(n, 0)"), "");
        assert_eq!(t("mod('x', 3)"), "");
        assert_eq!(eval("luhn('4111111111111111')"), Value::Bool(true));
        assert_eq!(eval("luhn('79927398713')"), Value::Bool(true));
        assert_eq!(eval("luhn('4111111111111112')"), Value::Bool(false));
        assert_eq!(eval("luhn('41111111111a1111')"), Value::Bool(false));
        assert_eq!(eval("luhn('0')"), Value::Bool(false));
        assert!(
            parse("substr('a', 1)")
                .unwrap_err()
                .message
                .contains("takes 3")
        );
    }

    #[test]
    fn errors_point_at_the_offending_character() {
        assert_eq!(parse("tier = 'x'").unwrap_err().offset, 5);
        assert_eq!(parse("(a == b").unwrap_err().message, "missing `)`");
        assert!(
            parse("foo(1)")
                .unwrap_err()
                .message
                .contains("unknown function")
        );
        assert!(parse("len(1, 2)").unwrap_err().message.contains("takes 1"));
        assert!(parse("'open").is_err());
        assert!(parse("a b").unwrap_err().message.contains("unexpected"));
        assert!(parse("").is_err());
        assert!(parse(&"(".repeat(100)).is_err(), "deep nesting is refused");
        assert!(parse(&"not ".repeat(100)).is_err());
        assert!(
            parse(&vec!["a"; 20_000].join(" + ")).is_err(),
            "long chains are refused"
        );
    }

    #[test]
    fn templates_fill_and_escape_holes() {
        let vars = Vars(HashMap::from([("account", "12 34")]));
        let t = Template::parse("http://crm/accounts/{account}?from={caller}&x={{y}}").unwrap();
        assert_eq!(
            t.render(&vars, url_escape),
            "http://crm/accounts/12%2034?from=8613800000001&x={y}"
        );
        assert!(Template::parse("a{b").is_err());
        assert!(Template::parse("a}b").is_err());
        assert_eq!(Template::parse("x{1 +}").unwrap_err().offset, 5);
    }

    #[test]
    fn random_text_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "ab1 ()'\"=<>!+-,.&|_x{}主".chars().collect();
        for _ in 0..5000 {
            let s: String = (0..rng.usize(0..24))
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            if let Ok(e) = parse(&s) {
                let _ = e.eval(&Vars(HashMap::new()));
            }
            let _ = Template::parse(&s);
        }
    }
}
