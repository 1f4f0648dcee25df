//! The template parser: text, references (`$a.b(…)[i]`, `${a}`, `$!a`), directives (`#set`,
//! `#if`/`#elseif`/`#else`, `#foreach`, `#end`, `#break`), comments (`##`, `#* *#`) and the
//! expression language inside directives. Hand-written recursive descent over bytes: the
//! grammar is small and context-sensitive (a `$` or `#` is text unless a valid construct
//! follows), which suits a direct scanner better than a combinator setup.

use crate::VtlError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    /// A reference; `source` is its text, printed as-is when it is null and not quiet.
    Ref {
        r: Reference,
        quiet: bool,
        source: String,
    },
    Set(Reference, Expr),
    If(Vec<(Expr, Vec<Node>)>, Option<Vec<Node>>),
    Foreach(String, Expr, Vec<Node>),
    Break,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reference {
    pub root: String,
    pub chain: Vec<Access>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Access {
    Prop(String),
    Call(String, Vec<Expr>),
    Index(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A double-quoted string: interpolated.
    Interp(Vec<Node>),
    /// A single-quoted string: literal.
    Str(String),
    Ref(Reference),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Range(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

struct P<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
    /// Nesting of blocks, expressions and interpolated strings so far (bounded by `MAX_DEPTH`).
    depth: usize,
}

/// How deeply blocks, parentheses, calls, operators and interpolated strings may nest. The parser, the
/// evaluator and dropping the tree all recurse on this, so it bounds their stacks.
pub const MAX_DEPTH: usize = 100;

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Which block a nested parse stops at.
#[derive(PartialEq, Clone, Copy)]
enum Stop {
    Top,
    Block,
}

enum Ended {
    Eof,
    End,
    Else,
    ElseIf(Expr),
}

impl<'a> P<'a> {
    fn enter(&mut self) -> Result<(), VtlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!(
                "the template nests more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    fn err(&self, msg: impl Into<String>) -> VtlError {
        let before = &self.src[..self.i.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(str::len).unwrap_or(0) + 1;
        VtlError::Parse {
            line,
            column: col,
            message: msg.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self, lit: &str) -> bool {
        self.s[self.i..].starts_with(lit.as_bytes())
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.i;
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        while self.peek().is_some_and(is_ident) {
            self.i += 1;
        }
        // A trailing '-' belongs to the text, not the name (`$a-` in `$a-$b`).
        while self.i > start + 1 && self.s[self.i - 1] == b'-' {
            self.i -= 1;
        }
        Some(self.src[start..self.i].to_string())
    }

    /// Whether the directive starting at `start` sits alone on its line: then the indentation
    /// before it and the line break after it are not output (Velocity's line gobbling).
    fn gobble(&mut self, out: &mut [Node], start: usize) {
        let line_start = self.src[..start].rfind('\n').map(|p| p + 1).unwrap_or(0);
        let indent_only = self.src[line_start..start]
            .bytes()
            .all(|b| b == b' ' || b == b'\t');
        if !indent_only {
            return;
        }
        let mut j = self.i;
        while self.s.get(j).is_some_and(|b| *b == b' ' || *b == b'\t') {
            j += 1;
        }
        let eol = match self.s.get(j) {
            Some(b'\n') => Some(j + 1),
            Some(b'\r') if self.s.get(j + 1) == Some(&b'\n') => Some(j + 2),
            None => Some(j),
            _ => None,
        };
        if let Some(e) = eol {
            self.i = e;
            if let Some(Node::Text(t)) = out.last_mut() {
                let trimmed = t.trim_end_matches([' ', '\t']).len();
                if t[trimmed..].len() == start - line_start {
                    t.truncate(trimmed);
                }
            }
        }
    }

    fn nodes(&mut self, stop: Stop) -> Result<(Vec<Node>, Ended), VtlError> {
        self.enter()?;
        let r = self.nodes_inner(stop);
        self.depth -= 1;
        r
    }

    fn nodes_inner(&mut self, stop: Stop) -> Result<(Vec<Node>, Ended), VtlError> {
        let mut out: Vec<Node> = Vec::new();
        let mut text = String::new();
        let flush = |text: &mut String, out: &mut Vec<Node>| {
            if !text.is_empty() {
                match out.last_mut() {
                    Some(Node::Text(t)) => t.push_str(text),
                    _ => out.push(Node::Text(std::mem::take(text))),
                }
                text.clear();
            }
        };
        while let Some(b) = self.peek() {
            match b {
                b'\\' if matches!(self.s.get(self.i + 1), Some(b'$') | Some(b'#')) => {
                    // An escaped reference or directive is printed without the backslash.
                    text.push(self.s[self.i + 1] as char);
                    self.i += 2;
                }
                b'$' => {
                    let start = self.i;
                    match self.reference_node()? {
                        Some(n) => {
                            flush(&mut text, &mut out);
                            out.push(n);
                        }
                        None => {
                            self.i = start + 1;
                            text.push('$');
                        }
                    }
                }
                b'#' => {
                    let start = self.i;
                    if self.at("##") {
                        while self.peek().is_some_and(|b| b != b'\n') {
                            self.i += 1;
                        }
                        continue;
                    }
                    if self.at("#*") {
                        match self.src[self.i + 2..].find("*#") {
                            Some(p) => self.i += 2 + p + 2,
                            None => return Err(self.err("unterminated comment #*")),
                        }
                        continue;
                    }
                    self.i += 1;
                    let braced = self.peek() == Some(b'{');
                    if braced {
                        self.i += 1;
                    }
                    let Some(name) = self.ident() else {
                        self.i = start + 1;
                        text.push('#');
                        continue;
                    };
                    if braced {
                        if self.peek() != Some(b'}') {
                            self.i = start + 1;
                            text.push('#');
                            continue;
                        }
                        self.i += 1;
                    }
                    flush(&mut text, &mut out);
                    match name.as_str() {
                        "set" => {
                            self.ws();
                            self.expect(b'(')?;
                            self.ws();
                            if self.peek() != Some(b'$') {
                                return Err(self.err("#set needs a reference: #set($name = …)"));
                            }
                            self.i += 1;
                            if self.peek() == Some(b'{') {
                                self.i += 1;
                            }
                            let r = self.reference_body()?;
                            if self.peek() == Some(b'}') {
                                self.i += 1;
                            }
                            self.ws();
                            self.expect(b'=')?;
                            let e = self.expr()?;
                            self.ws();
                            self.expect(b')')?;
                            self.gobble(&mut out, start);
                            out.push(Node::Set(r, e));
                        }
                        "if" => {
                            let cond = self.paren_expr()?;
                            self.gobble(&mut out, start);
                            let mut branches = Vec::new();
                            let mut otherwise = None;
                            let mut current = cond;
                            loop {
                                let (body, end) = self.nodes(Stop::Block)?;
                                match end {
                                    Ended::End => {
                                        branches.push((current, body));
                                        break;
                                    }
                                    Ended::ElseIf(c) => {
                                        branches.push((current, body));
                                        current = c;
                                    }
                                    Ended::Else => {
                                        branches.push((current, body));
                                        let (body, end) = self.nodes(Stop::Block)?;
                                        if !matches!(end, Ended::End) {
                                            return Err(self.err("#else must be closed by #end"));
                                        }
                                        otherwise = Some(body);
                                        break;
                                    }
                                    Ended::Eof => return Err(self.err("#if without #end")),
                                }
                            }
                            out.push(Node::If(branches, otherwise));
                        }
                        "elseif" if stop == Stop::Block => {
                            let c = self.paren_expr()?;
                            self.gobble(&mut out, start);
                            return Ok((out, Ended::ElseIf(c)));
                        }
                        "else" if stop == Stop::Block => {
                            self.gobble(&mut out, start);
                            return Ok((out, Ended::Else));
                        }
                        "end" if stop == Stop::Block => {
                            self.gobble(&mut out, start);
                            return Ok((out, Ended::End));
                        }
                        "foreach" => {
                            self.ws();
                            self.expect(b'(')?;
                            self.ws();
                            self.expect(b'$')?;
                            let var = self
                                .ident()
                                .ok_or_else(|| self.err("#foreach needs a variable"))?;
                            self.ws();
                            if !self.at("in") {
                                return Err(self.err("#foreach needs `in`: #foreach($x in $list)"));
                            }
                            self.i += 2;
                            let e = self.expr()?;
                            self.ws();
                            self.expect(b')')?;
                            self.gobble(&mut out, start);
                            let (body, end) = self.nodes(Stop::Block)?;
                            if !matches!(end, Ended::End) {
                                return Err(self.err("#foreach without #end"));
                            }
                            out.push(Node::Foreach(var, e, body));
                        }
                        "break" => {
                            self.gobble(&mut out, start);
                            out.push(Node::Break);
                        }
                        "stop" => {
                            self.i = self.s.len();
                        }
                        "elseif" | "else" | "end" => {
                            return Err(
                                self.err(format!("#{name} without a matching #if or #foreach"))
                            );
                        }
                        _ => {
                            // Not a directive we know: literal text, as Velocity prints it.
                            self.i = start + 1;
                            text.push('#');
                        }
                    }
                }
                _ => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|b| b != b'$' && b != b'#' && b != b'\\')
                    {
                        self.i += 1;
                    }
                    if self.i == start {
                        text.push(b as char);
                        self.i += 1;
                    } else {
                        text.push_str(&self.src[start..self.i]);
                    }
                }
            }
        }
        flush(&mut text, &mut out);
        Ok((out, Ended::Eof))
    }

    fn expect(&mut self, b: u8) -> Result<(), VtlError> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected '{}'", b as char)))
        }
    }

    fn paren_expr(&mut self) -> Result<Expr, VtlError> {
        self.ws();
        self.expect(b'(')?;
        let e = self.expr()?;
        self.ws();
        self.expect(b')')?;
        Ok(e)
    }

    /// `$name…`, `$!name…`, `${name…}`, `$!{name…}`; `None` when no reference follows.
    fn reference_node(&mut self) -> Result<Option<Node>, VtlError> {
        let start = self.i;
        self.i += 1;
        let quiet = self.peek() == Some(b'!');
        if quiet {
            self.i += 1;
        }
        let braced = self.peek() == Some(b'{');
        if braced {
            self.i += 1;
        }
        if !self.peek().is_some_and(is_ident_start) {
            return Ok(None);
        }
        let r = self.reference_body()?;
        if braced {
            if self.peek() != Some(b'}') {
                return Ok(None);
            }
            self.i += 1;
        }
        Ok(Some(Node::Ref {
            r,
            quiet,
            source: self.src[start..self.i].to_string(),
        }))
    }

    fn reference_body(&mut self) -> Result<Reference, VtlError> {
        let root = self
            .ident()
            .ok_or_else(|| self.err("expected a reference name"))?;
        let mut chain = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') if self.s.get(self.i + 1).is_some_and(|b| is_ident_start(*b)) => {
                    self.i += 1;
                    let name = self.ident().ok_or_else(|| self.err("expected a name"))?;
                    if self.peek() == Some(b'(') {
                        self.i += 1;
                        let args = self.args(b')')?;
                        chain.push(Access::Call(name, args));
                    } else {
                        chain.push(Access::Prop(name));
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let e = self.expr()?;
                    self.ws();
                    self.expect(b']')?;
                    chain.push(Access::Index(e));
                }
                _ => break,
            }
        }
        Ok(Reference { root, chain })
    }

    fn args(&mut self, close: u8) -> Result<Vec<Expr>, VtlError> {
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => return Err(self.err(format!("expected ',' or '{}'", close as char))),
            }
        }
    }

    fn expr(&mut self) -> Result<Expr, VtlError> {
        self.or()
    }

    fn word(&mut self, w: &str) -> bool {
        if self.at(w) && !self.s.get(self.i + w.len()).is_some_and(|b| is_ident(*b)) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, VtlError> {
        // Each operator nests the tree one level deeper (chains are left-nested): count them
        // against the depth limit, for as long as this expression is being parsed.
        let depth = self.depth;
        let r = self.or_chain();
        self.depth = depth;
        r
    }

    fn or_chain(&mut self) -> Result<Expr, VtlError> {
        let mut l = self.and()?;
        loop {
            self.ws();
            if self.at("||") {
                self.i += 2;
            } else if !self.word("or") {
                return Ok(l);
            }
            self.enter()?;
            let r = self.and()?;
            l = Expr::Bin(BinOp::Or, Box::new(l), Box::new(r));
        }
    }

    fn and(&mut self) -> Result<Expr, VtlError> {
        // Each operator nests the tree one level deeper (chains are left-nested): count them
        // against the depth limit, for as long as this expression is being parsed.
        let depth = self.depth;
        let r = self.and_chain();
        self.depth = depth;
        r
    }

    fn and_chain(&mut self) -> Result<Expr, VtlError> {
        let mut l = self.cmp()?;
        loop {
            self.ws();
            if self.at("&&") {
                self.i += 2;
            } else if !self.word("and") {
                return Ok(l);
            }
            self.enter()?;
            let r = self.cmp()?;
            l = Expr::Bin(BinOp::And, Box::new(l), Box::new(r));
        }
    }

    fn cmp(&mut self) -> Result<Expr, VtlError> {
        let l = self.add()?;
        self.ws();
        let op = if self.at("==") {
            self.i += 2;
            BinOp::Eq
        } else if self.at("!=") {
            self.i += 2;
            BinOp::Ne
        } else if self.at("<=") {
            self.i += 2;
            BinOp::Le
        } else if self.at(">=") {
            self.i += 2;
            BinOp::Ge
        } else if self.at("<") {
            self.i += 1;
            BinOp::Lt
        } else if self.at(">") {
            self.i += 1;
            BinOp::Gt
        } else if self.word("eq") {
            BinOp::Eq
        } else if self.word("ne") {
            BinOp::Ne
        } else if self.word("lt") {
            BinOp::Lt
        } else if self.word("le") {
            BinOp::Le
        } else if self.word("gt") {
            BinOp::Gt
        } else if self.word("ge") {
            BinOp::Ge
        } else {
            return Ok(l);
        };
        let r = self.add()?;
        Ok(Expr::Bin(op, Box::new(l), Box::new(r)))
    }

    fn add(&mut self) -> Result<Expr, VtlError> {
        // Each operator nests the tree one level deeper (chains are left-nested): count them
        // against the depth limit, for as long as this expression is being parsed.
        let depth = self.depth;
        let r = self.add_chain();
        self.depth = depth;
        r
    }

    fn add_chain(&mut self) -> Result<Expr, VtlError> {
        let mut l = self.mul()?;
        loop {
            self.ws();
            let op = match self.peek() {
                Some(b'+') => BinOp::Add,
                Some(b'-') => BinOp::Sub,
                _ => return Ok(l),
            };
            self.i += 1;
            self.enter()?;
            let r = self.mul()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }

    fn mul(&mut self) -> Result<Expr, VtlError> {
        // Each operator nests the tree one level deeper (chains are left-nested): count them
        // against the depth limit, for as long as this expression is being parsed.
        let depth = self.depth;
        let r = self.mul_chain();
        self.depth = depth;
        r
    }

    fn mul_chain(&mut self) -> Result<Expr, VtlError> {
        let mut l = self.unary()?;
        loop {
            self.ws();
            let op = match self.peek() {
                Some(b'*') => BinOp::Mul,
                Some(b'/') => BinOp::Div,
                Some(b'%') => BinOp::Mod,
                _ => return Ok(l),
            };
            self.i += 1;
            self.enter()?;
            let r = self.unary()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, VtlError> {
        self.enter()?;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Expr, VtlError> {
        self.ws();
        if self.peek() == Some(b'!') && self.s.get(self.i + 1) != Some(&b'=') {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.word("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(b'-') && !self.s.get(self.i + 1).is_some_and(|b| b.is_ascii_digit())
        {
            self.i += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, VtlError> {
        self.ws();
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let e = self.expr()?;
                self.ws();
                self.expect(b')')?;
                Ok(e)
            }
            Some(b'$') => {
                self.i += 1;
                if self.peek() == Some(b'!') {
                    self.i += 1;
                }
                let braced = self.peek() == Some(b'{');
                if braced {
                    self.i += 1;
                }
                let r = self.reference_body()?;
                if braced {
                    self.expect(b'}')?;
                }
                Ok(Expr::Ref(r))
            }
            Some(b'"') => {
                self.i += 1;
                let start = self.i;
                let mut depth_end = None;
                let mut j = self.i;
                while let Some(&b) = self.s.get(j) {
                    if b == b'\\' {
                        j += 2;
                        continue;
                    }
                    if b == b'"' {
                        depth_end = Some(j);
                        break;
                    }
                    j += 1;
                }
                let end = depth_end.ok_or_else(|| self.err("unterminated string"))?;
                let inner = self.src[start..end].replace("\\\"", "\"");
                self.i = end + 1;
                let mut p = P {
                    s: inner.as_bytes(),
                    src: &inner,
                    i: 0,
                    depth: self.depth,
                };
                let (nodes, _) = p.nodes(Stop::Top)?;
                Ok(Expr::Interp(nodes))
            }
            Some(b'\'') => {
                self.i += 1;
                let start = self.i;
                while self.peek().is_some_and(|b| b != b'\'') {
                    self.i += 1;
                }
                if self.peek().is_none() {
                    return Err(self.err("unterminated string"));
                }
                let s = self.src[start..self.i].to_string();
                self.i += 1;
                Ok(Expr::Str(s))
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.expr()?;
                self.ws();
                if self.at("..") {
                    self.i += 2;
                    let last = self.expr()?;
                    self.ws();
                    self.expect(b']')?;
                    return Ok(Expr::Range(Box::new(first), Box::new(last)));
                }
                let mut items = vec![first];
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            items.push(self.expr()?);
                        }
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Expr::List(items));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut pairs = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Expr::Map(pairs));
                }
                loop {
                    let k = self.expr()?;
                    self.ws();
                    self.expect(b':')?;
                    let v = self.expr()?;
                    pairs.push((k, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Expr::Map(pairs));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(b) if b.is_ascii_digit() || b == b'-' => {
                let start = self.i;
                self.i += 1;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.i += 1;
                }
                let float = self.peek() == Some(b'.')
                    && self.s.get(self.i + 1).is_some_and(|b| b.is_ascii_digit());
                if float {
                    self.i += 1;
                    while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                        self.i += 1;
                    }
                }
                let t = &self.src[start..self.i];
                if float {
                    t.parse()
                        .map(Expr::Float)
                        .map_err(|_| self.err("bad number"))
                } else {
                    t.parse().map(Expr::Int).map_err(|_| self.err("bad number"))
                }
            }
            _ => {
                if self.word("true") {
                    Ok(Expr::Bool(true))
                } else if self.word("false") {
                    Ok(Expr::Bool(false))
                } else if self.word("null") {
                    Ok(Expr::Null)
                } else {
                    Err(self.err("expected an expression"))
                }
            }
        }
    }
}

/// Parses a template.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, VtlError> {
    let mut p = P {
        s: src.as_bytes(),
        src,
        i: 0,
        depth: 0,
    };
    let (nodes, _) = p.nodes(Stop::Top)?;
    Ok(nodes)
}
