//! Evaluation: variables, API Gateway's `$input` / `$util` / `$context` / `$stageVariables`, and
//! Java's methods on strings, lists and maps.

use std::collections::HashMap;

use base64::Engine;

use crate::VtlError;
use crate::parse::{Access, BinOp, Expr, Node, Reference, parse};
use crate::value::Value;

/// Iterations one `#foreach` may run (API Gateway's limit).
const MAX_ITERATIONS: usize = 1000;
/// Largest output a template may produce, and largest string any step may build.
const MAX_OUTPUT: usize = 10 * 1024 * 1024;
/// Evaluation steps (nodes, expressions, loop iterations) one rendering may take.
pub const MAX_STEPS: u64 = 1_000_000;
/// Bytes one rendering may produce in values over its whole run (every string built, every
/// value copied out of a variable), so repeated copying is bounded as well as size.
pub const MAX_VALUE_BYTES: u64 = 64 * 1024 * 1024;
/// How deeply lists and maps may nest inside each other.
const MAX_VALUE_DEPTH: usize = 64;
/// How long one rendering may run.
const MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest regular expression a template method may use.
const MAX_PATTERN: usize = 1024;
/// Items a list built in one step (`split`) may hold.
const MAX_ITEMS: usize = 100_000;

/// What a mapping template sees of the request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The raw request body: `$input.body`, and parsed as JSON for `$input.json()` and
    /// `$input.path()`.
    pub body: String,
    /// Path parameters, in order (`$input.params().path`).
    pub path_params: Vec<(String, String)>,
    /// Query string parameters, in order (`$input.params().querystring`).
    pub query_params: Vec<(String, String)>,
    /// Request headers, in order (`$input.params().header`); `$input.params(name)` matches their
    /// names case-insensitively.
    pub headers: Vec<(String, String)>,
    /// `$context` (requestId, stage, httpMethod, identity, …).
    pub context: serde_json::Value,
    /// The stage's variables (`$stageVariables`).
    pub stage_variables: Vec<(String, String)>,
}

/// A parsed template, to be rendered any number of times.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a template (nesting bounded by [`crate::parse::MAX_DEPTH`]).
    pub fn parse(template: &str) -> Result<Template, VtlError> {
        Ok(Template {
            nodes: parse(template)?,
        })
    }

    /// Renders the template against a request, within the step, output and value budgets.
    pub fn render(&self, req: &Request) -> Result<String, VtlError> {
        let mut ev = Eval {
            req,
            vars: HashMap::new(),
            loops: Vec::new(),
            out: String::new(),
            body_json: serde_json::from_str(&req.body).ok(),
            steps: 0,
            bytes: 0,
            started: std::time::Instant::now(),
        };
        ev.nodes(&self.nodes)?;
        Ok(ev.out)
    }
}

/// Renders a template against a request (parsing it first; see [`Template`] to parse once).
pub fn render(template: &str, req: &Request) -> Result<String, VtlError> {
    Template::parse(template)?.render(req)
}

/// The bytes a value holds (strings and keys, plus a word per item) and how deeply it nests,
/// measured without recursion.
fn measure(v: &Value) -> (u64, usize) {
    let mut bytes = 0u64;
    let mut depth = 0usize;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        depth = depth.max(d);
        bytes += std::mem::size_of::<Value>() as u64;
        match v {
            Value::Str(s) => bytes += s.len() as u64,
            Value::List(l) => stack.extend(l.iter().map(|x| (x, d + 1))),
            Value::Map(m) => {
                for (k, x) in m {
                    bytes += k.len() as u64;
                    stack.push((x, d + 1));
                }
            }
            _ => {}
        }
    }
    (bytes, depth)
}

struct Loop {
    index: usize,
    has_next: bool,
}

struct Eval<'a> {
    req: &'a Request,
    vars: HashMap<String, Value>,
    loops: Vec<Loop>,
    out: String,
    body_json: Option<serde_json::Value>,
    /// Steps taken so far (bounded by `MAX_STEPS`).
    steps: u64,
    /// Value bytes produced so far (bounded by `MAX_VALUE_BYTES`).
    bytes: u64,
    started: std::time::Instant,
}

enum Flow {
    Normal,
    Break,
}

fn err(msg: impl Into<String>) -> VtlError {
    VtlError::Eval(msg.into())
}

fn pairs(v: &[(String, String)]) -> Value {
    Value::Map(
        v.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

/// The part of API Gateway's JSONPath that templates use: `$`, `.name`, `['name']`, `[n]`, `[*]`.
fn json_path<'v>(
    root: &'v serde_json::Value,
    path: &str,
) -> Result<Vec<&'v serde_json::Value>, VtlError> {
    let p = path.trim();
    let rest = p
        .strip_prefix('$')
        .ok_or_else(|| err(format!("JSONPath must start with $: {path}")))?;
    let mut current = vec![root];
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                let start = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                let key = &rest[start..i];
                current = if key == "*" {
                    current
                        .into_iter()
                        .flat_map(|v| match v {
                            serde_json::Value::Object(o) => o.values().collect::<Vec<_>>(),
                            serde_json::Value::Array(a) => a.iter().collect(),
                            _ => Vec::new(),
                        })
                        .collect()
                } else {
                    current.into_iter().filter_map(|v| v.get(key)).collect()
                };
            }
            b'[' => {
                let end = rest[i..]
                    .find(']')
                    .map(|e| i + e)
                    .ok_or_else(|| err(format!("unclosed [ in JSONPath {path}")))?;
                let inner = rest[i + 1..end].trim();
                i = end + 1;
                if inner == "*" {
                    current = current
                        .into_iter()
                        .flat_map(|v| match v {
                            serde_json::Value::Array(a) => a.iter().collect::<Vec<_>>(),
                            serde_json::Value::Object(o) => o.values().collect(),
                            _ => Vec::new(),
                        })
                        .collect();
                } else if let Ok(n) = inner.parse::<i64>() {
                    current = current
                        .into_iter()
                        .filter_map(|v| {
                            let a = v.as_array()?;
                            let idx = if n < 0 { a.len() as i64 + n } else { n };
                            a.get(usize::try_from(idx).ok()?)
                        })
                        .collect();
                } else {
                    let key = inner.trim_matches(|c| c == '\'' || c == '"');
                    current = current.into_iter().filter_map(|v| v.get(key)).collect();
                }
            }
            _ => return Err(err(format!("unsupported JSONPath {path}"))),
        }
    }
    Ok(current)
}

fn select(root: &serde_json::Value, path: &str) -> Result<serde_json::Value, VtlError> {
    let wildcard = path.contains('*');
    let found = json_path(root, path)?;
    Ok(if wildcard {
        serde_json::Value::Array(found.into_iter().cloned().collect())
    } else {
        found
            .first()
            .map(|v| (*v).clone())
            .unwrap_or(serde_json::Value::Null)
    })
}

/// `$util.escapeJavaScript`: backslash escapes as Java's StringEscapeUtils (single quotes too).
fn escape_js(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            '/' => o.push_str("\\/"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    o.push_str(&format!("\\u{u:04X}"));
                }
            }
            c => o.push(c),
        }
    }
    o
}

/// `$util.urlEncode`: Java's URLEncoder (spaces as `+`).
fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'-')
        .remove(b'*')
        .remove(b'_')
        .remove(b' ');
    percent_encoding::utf8_percent_encode(s, SET)
        .to_string()
        .replace(' ', "+")
}

fn url_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn regex(pattern: &str) -> Result<regex_lite::Regex, VtlError> {
    if pattern.len() > MAX_PATTERN {
        return Err(err(format!(
            "regular expressions in templates may be at most {MAX_PATTERN} bytes long"
        )));
    }
    regex_lite::Regex::new(pattern)
        .map_err(|e| err(format!("bad regular expression {pattern:?}: {e}")))
}

fn num_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) if !matches!(a, Value::Str(_)) && !matches!(b, Value::Str(_)) => {
                x == y
            }
            _ => a.render() == b.render(),
        },
    }
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, VtlError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(match op {
            BinOp::Add => Value::Int(x.wrapping_add(*y)),
            BinOp::Sub => Value::Int(x.wrapping_sub(*y)),
            BinOp::Mul => Value::Int(x.wrapping_mul(*y)),
            BinOp::Div if *y == 0 => Value::Null,
            BinOp::Div => Value::Int(x.wrapping_div(*y)),
            BinOp::Mod if *y == 0 => Value::Null,
            BinOp::Mod => Value::Int(x.wrapping_rem(*y)),
            _ => Value::Null,
        }),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Ok(Value::Float(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Mod => x % y,
                _ => return Ok(Value::Null),
            })),
            _ => Ok(Value::Null),
        },
    }
}

impl Eval<'_> {
    fn step(&mut self, n: u64) -> Result<(), VtlError> {
        let before = self.steps;
        self.steps += n;
        // The clock is read once per 4,096 steps.
        if before >> 12 != self.steps >> 12 && self.started.elapsed() > MAX_TIME {
            return Err(err(format!(
                "the template ran for more than {} ms",
                MAX_TIME.as_millis()
            )));
        }
        if self.steps > MAX_STEPS {
            return Err(err(format!(
                "the template took more than {MAX_STEPS} evaluation steps"
            )));
        }
        Ok(())
    }

    /// Charges a value just produced against the byte budget and the nesting limit.
    fn charge(&mut self, v: Value) -> Result<Value, VtlError> {
        let (bytes, depth) = measure(&v);
        if depth > MAX_VALUE_DEPTH {
            return Err(err(format!(
                "a value nests more than {MAX_VALUE_DEPTH} lists or maps deep"
            )));
        }
        if let Value::Str(s) = &v
            && s.len() > MAX_OUTPUT
        {
            return Err(err("a string in the template is larger than 10 MB"));
        }
        self.bytes += bytes;
        if self.bytes > MAX_VALUE_BYTES {
            return Err(err(format!(
                "the template built more than {} MB of values",
                MAX_VALUE_BYTES / (1024 * 1024)
            )));
        }
        Ok(v)
    }

    fn emit(&mut self, s: &str) -> Result<(), VtlError> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return Err(err("the template's output is larger than 10 MB"));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node]) -> Result<Flow, VtlError> {
        for n in nodes {
            self.step(1)?;
            match n {
                Node::Text(t) => self.emit(t)?,
                Node::Ref { r, quiet, source } => {
                    let v = self.reference(r)?;
                    match v {
                        Value::Null if *quiet => {}
                        Value::Null => {
                            let s = source.clone();
                            self.emit(&s)?;
                        }
                        v => {
                            let s = v.render();
                            self.emit(&s)?;
                        }
                    }
                }
                Node::Set(target, e) => {
                    let v = self.expr(e)?;
                    self.assign(target, v)?;
                }
                Node::If(branches, otherwise) => {
                    let mut taken = false;
                    for (cond, body) in branches {
                        if self.expr(cond)?.truthy() {
                            taken = true;
                            if let Flow::Break = self.nodes(body)? {
                                return Ok(Flow::Break);
                            }
                            break;
                        }
                    }
                    if !taken
                        && let Some(body) = otherwise
                        && let Flow::Break = self.nodes(body)?
                    {
                        return Ok(Flow::Break);
                    }
                }
                Node::Foreach(var, e, body) => {
                    let items = match self.expr(e)? {
                        Value::List(l) => l,
                        Value::Map(m) => m.into_iter().map(|(_, v)| v).collect(),
                        Value::Null => Vec::new(),
                        other => vec![other],
                    };
                    if items.len() > MAX_ITERATIONS {
                        return Err(err(format!(
                            "#foreach over {} items: at most {MAX_ITERATIONS} iterations are allowed",
                            items.len()
                        )));
                    }
                    let saved = self.vars.get(var).cloned();
                    let n = items.len();
                    for (i, item) in items.into_iter().enumerate() {
                        self.step(1)?;
                        self.vars.insert(var.clone(), item);
                        self.loops.push(Loop {
                            index: i,
                            has_next: i + 1 < n,
                        });
                        let flow = self.nodes(body);
                        self.loops.pop();
                        if let Flow::Break = flow? {
                            break;
                        }
                    }
                    match saved {
                        Some(v) => {
                            self.vars.insert(var.clone(), v);
                        }
                        None => {
                            self.vars.remove(var);
                        }
                    }
                }
                Node::Break => return Ok(Flow::Break),
            }
        }
        Ok(Flow::Normal)
    }

    /// `#set`: a variable, or a key of a map variable (`#set($m.k = …)`).
    fn assign(&mut self, target: &Reference, v: Value) -> Result<(), VtlError> {
        match target.chain.as_slice() {
            [] => {
                self.vars.insert(target.root.clone(), v);
                Ok(())
            }
            [Access::Prop(k)] => {
                if let Some(Value::Map(m)) = self.vars.get_mut(&target.root) {
                    match m.iter_mut().find(|(kk, _)| kk == k) {
                        Some(slot) => slot.1 = v,
                        None => m.push((k.clone(), v)),
                    }
                }
                Ok(())
            }
            _ => Err(err(
                "#set can only assign a variable or a key of a map variable",
            )),
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<Value, VtlError> {
        self.step(1)?;
        let v = self.expr_inner(e)?;
        match (e, &v) {
            // References are charged where they copy out of a variable or call a method.
            (Expr::Ref(_), _) => Ok(v),
            (_, Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_)) => Ok(v),
            _ => self.charge(v),
        }
    }

    fn expr_inner(&mut self, e: &Expr) -> Result<Value, VtlError> {
        Ok(match e {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(i) => Value::Int(*i),
            Expr::Float(f) => Value::Float(*f),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Interp(nodes) => {
                let saved = std::mem::take(&mut self.out);
                let r = self.nodes(nodes);
                let s = std::mem::replace(&mut self.out, saved);
                r?;
                Value::Str(s)
            }
            Expr::Ref(r) => self.reference(r)?,
            Expr::List(items) => Value::List(
                items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Map(pairs) => {
                let mut m = Vec::new();
                for (k, v) in pairs {
                    let k = self.expr(k)?.render();
                    let v = self.expr(v)?;
                    m.push((k, v));
                }
                Value::Map(m)
            }
            Expr::Range(a, b) => {
                let (Some(a), Some(b)) = (self.expr(a)?.as_i64(), self.expr(b)?.as_i64()) else {
                    return Ok(Value::Null);
                };
                if a.abs_diff(b) >= (MAX_ITERATIONS * 10) as u64 {
                    return Err(err("range too large"));
                }
                self.step(a.abs_diff(b))?;
                Value::List(if a <= b {
                    (a..=b).map(Value::Int).collect()
                } else {
                    (b..=a).rev().map(Value::Int).collect()
                })
            }
            Expr::Not(e) => Value::Bool(!self.expr(e)?.truthy()),
            Expr::Neg(e) => match self.expr(e)? {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Expr::Bin(op, a, b) => match op {
                BinOp::Or => Value::Bool(self.expr(a)?.truthy() || self.expr(b)?.truthy()),
                BinOp::And => Value::Bool(self.expr(a)?.truthy() && self.expr(b)?.truthy()),
                BinOp::Eq => Value::Bool(equal(&self.expr(a)?, &self.expr(b)?)),
                BinOp::Ne => Value::Bool(!equal(&self.expr(a)?, &self.expr(b)?)),
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    let (x, y) = (self.expr(a)?, self.expr(b)?);
                    let o = num_cmp(&x, &y);
                    Value::Bool(match (op, o) {
                        (_, None) => false,
                        (BinOp::Lt, Some(o)) => o.is_lt(),
                        (BinOp::Le, Some(o)) => o.is_le(),
                        (BinOp::Gt, Some(o)) => o.is_gt(),
                        (_, Some(o)) => o.is_ge(),
                    })
                }
                _ => {
                    let (x, y) = (self.expr(a)?, self.expr(b)?);
                    arith(*op, &x, &y)?
                }
            },
        })
    }

    fn reference(&mut self, r: &Reference) -> Result<Value, VtlError> {
        let mut chain = r.chain.as_slice();
        let mut current = match r.root.as_str() {
            "input" => match chain.first() {
                Some(first) => {
                    chain = &chain[1..];
                    let v = self.input(first)?;
                    self.charge(v)?
                }
                None => Value::Null,
            },
            "util" => match chain.first() {
                Some(Access::Call(name, args)) => {
                    chain = &chain[1..];
                    let args = self.args(args)?;
                    let v = self.util(name, &args)?;
                    self.charge(v)?
                }
                _ => Value::Null,
            },
            "context" => {
                let v = Value::from_json(&self.req.context);
                self.charge(v)?
            }
            "stageVariables" => pairs(&self.req.stage_variables),
            "foreach" if !self.loops.is_empty() && !self.vars.contains_key("foreach") => {
                let l = self
                    .loops
                    .last()
                    .map(|l| (l.index, l.has_next))
                    .unwrap_or((0, false));
                Value::Map(vec![
                    ("index".into(), Value::Int(l.0 as i64)),
                    ("count".into(), Value::Int(l.0 as i64 + 1)),
                    ("hasNext".into(), Value::Bool(l.1)),
                    ("first".into(), Value::Bool(l.0 == 0)),
                    ("last".into(), Value::Bool(!l.1)),
                ])
            }
            "velocityCount" if !self.vars.contains_key("velocityCount") => self
                .loops
                .last()
                .map(|l| Value::Int(l.index as i64 + 1))
                .unwrap_or(Value::Null),
            name => {
                // Mutating calls on a variable (`$list.add(…)`, `$map.put(…)`) change it.
                if let [Access::Call(m, args), ..] = chain
                    && matches!(
                        m.as_str(),
                        "add" | "put" | "remove" | "clear" | "addAll" | "putAll"
                    )
                {
                    let args = self.args(args)?;
                    let result = match self.vars.get_mut(name) {
                        Some(v) => mutate(v, m, &args),
                        None => Value::Null,
                    };
                    chain = &chain[1..];
                    if chain.is_empty() {
                        return Ok(result);
                    }
                    result
                } else {
                    let v = self.vars.get(name).cloned().unwrap_or(Value::Null);
                    self.charge(v)?
                }
            }
        };
        for a in chain {
            current = match a {
                Access::Prop(p) => prop(&current, p),
                Access::Index(e) => {
                    let k = self.expr(e)?;
                    index(&current, &k)
                }
                Access::Call(m, args) => {
                    let args = self.args(args)?;
                    if let Value::Str(s) = &current {
                        // String methods look at the string's characters one by one.
                        self.step(1 + s.len() as u64 / 64)?;
                    }
                    let v = call(&current, m, &args)?;
                    self.charge(v)?
                }
            };
        }
        Ok(current)
    }

    fn args(&mut self, args: &[Expr]) -> Result<Vec<Value>, VtlError> {
        args.iter().map(|a| self.expr(a)).collect()
    }

    fn input(&mut self, first: &Access) -> Result<Value, VtlError> {
        let req = self.req;
        match first {
            Access::Prop(p) if p == "body" => Ok(Value::Str(req.body.clone())),
            Access::Call(name, args) => {
                let args = self.args(args)?;
                let arg = args.first().map(Value::render);
                match (name.as_str(), arg) {
                    ("json", Some(path)) => Ok(Value::Str(match &self.body_json {
                        Some(j) => select(j, &path)?.to_string(),
                        None if path.trim() == "$" => req.body.clone(),
                        None => "null".into(),
                    })),
                    ("path", Some(path)) => Ok(match &self.body_json {
                        Some(j) => Value::from_json(&select(j, &path)?),
                        None if path.trim() == "$" => Value::Str(req.body.clone()),
                        None => Value::Null,
                    }),
                    ("params", None) => Ok(Value::Map(vec![
                        ("path".into(), pairs(&req.path_params)),
                        ("querystring".into(), pairs(&req.query_params)),
                        ("header".into(), pairs(&req.headers)),
                    ])),
                    ("params", Some(n)) => Ok(req
                        .path_params
                        .iter()
                        .chain(req.query_params.iter())
                        .find(|(k, _)| *k == n)
                        .or_else(|| req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(&n)))
                        .map(|(_, v)| Value::Str(v.clone()))
                        .unwrap_or(Value::Null)),
                    (other, _) => Err(err(format!("$input has no method {other}"))),
                }
            }
            _ => Ok(Value::Null),
        }
    }

    fn util(&self, name: &str, args: &[Value]) -> Result<Value, VtlError> {
        let s = args.first().map(Value::render).unwrap_or_default();
        if s.len() > MAX_OUTPUT {
            return Err(err(format!(
                "$util.{name}: the argument is larger than 10 MB"
            )));
        }
        Ok(match name {
            "escapeJavaScript" => Value::Str(escape_js(&s)),
            "urlEncode" => Value::Str(url_encode(&s)),
            "urlDecode" => Value::Str(url_decode(&s)),
            "base64Encode" => {
                Value::Str(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
            }
            "base64Decode" => Value::Str(
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|e| err(format!("$util.base64Decode: {e}")))?,
            ),
            "parseJson" => Value::from_json(
                &serde_json::from_str::<serde_json::Value>(&s)
                    .map_err(|e| err(format!("$util.parseJson: {e}")))?,
            ),
            "toJson" => Value::Str(
                args.first()
                    .map(Value::to_json)
                    .unwrap_or_default()
                    .to_string(),
            ),
            other => return Err(err(format!("$util has no method {other}"))),
        })
    }
}

/// A property: a map key, or a Java bean getter (`$s.empty`, `$list.size`… as `isEmpty()`, …).
fn prop(v: &Value, p: &str) -> Value {
    match v {
        Value::Map(_) => v.get(p).cloned().unwrap_or(Value::Null),
        _ => match p {
            "empty" => call(v, "isEmpty", &[]).unwrap_or(Value::Null),
            "class" => Value::Null,
            other => call(v, &format!("get{}", capitalise(other)), &[]).unwrap_or(Value::Null),
        },
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn index(v: &Value, k: &Value) -> Value {
    match (v, k) {
        (Value::List(l), k) => k
            .as_i64()
            .and_then(|i| {
                let i = if i < 0 { l.len() as i64 + i } else { i };
                l.get(usize::try_from(i).ok()?)
            })
            .cloned()
            .unwrap_or(Value::Null),
        (Value::Map(_), k) => v.get(&k.render()).cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn mutate(v: &mut Value, m: &str, args: &[Value]) -> Value {
    match (v, m, args) {
        (Value::List(l), "add", [x]) => {
            l.push(x.clone());
            Value::Bool(true)
        }
        (Value::List(l), "add", [i, x]) => match i.as_i64().and_then(|i| usize::try_from(i).ok()) {
            Some(i) if i <= l.len() => {
                l.insert(i, x.clone());
                Value::Null
            }
            _ => Value::Null,
        },
        (Value::List(l), "addAll", [Value::List(xs)]) => {
            l.extend(xs.iter().cloned());
            Value::Bool(true)
        }
        (Value::List(l), "clear", []) | (Value::List(l), "removeAll", []) => {
            l.clear();
            Value::Null
        }
        (Value::List(l), "remove", [i]) => match i.as_i64().and_then(|i| usize::try_from(i).ok()) {
            Some(i) if i < l.len() => l.remove(i),
            _ => Value::Null,
        },
        (Value::Map(mm), "put", [k, x]) => {
            let k = k.render();
            match mm.iter_mut().find(|(kk, _)| *kk == k) {
                Some(slot) => std::mem::replace(&mut slot.1, x.clone()),
                None => {
                    mm.push((k, x.clone()));
                    Value::Null
                }
            }
        }
        (Value::Map(mm), "putAll", [Value::Map(other)]) => {
            for (k, x) in other {
                match mm.iter_mut().find(|(kk, _)| kk == k) {
                    Some(slot) => slot.1 = x.clone(),
                    None => mm.push((k.clone(), x.clone())),
                }
            }
            Value::Null
        }
        (Value::Map(mm), "remove", [k]) => {
            let k = k.render();
            match mm.iter().position(|(kk, _)| *kk == k) {
                Some(p) => mm.remove(p).1,
                None => Value::Null,
            }
        }
        (Value::Map(mm), "clear", []) => {
            mm.clear();
            Value::Null
        }
        _ => Value::Null,
    }
}

/// Refuses a string of `len` bytes over the size limit, before it is built.
fn fits(len: u64) -> Result<(), VtlError> {
    if len > MAX_OUTPUT as u64 {
        return Err(err("a string in the template would be larger than 10 MB"));
    }
    Ok(())
}

/// `replaceAll` / `replaceFirst`: regex replacement with `$n` groups, stopping as soon as the
/// result would pass the size limit.
fn replace_bounded(
    s: &str,
    re: &regex_lite::Regex,
    rep: &str,
    limit: usize,
) -> Result<String, VtlError> {
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s).take(limit) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        caps.expand(rep, &mut out);
        last = m.end();
        fits(out.len() as u64)?;
    }
    out.push_str(&s[last..]);
    fits(out.len() as u64)?;
    Ok(out)
}

/// Java's methods on strings, lists and maps.
fn call(v: &Value, m: &str, args: &[Value]) -> Result<Value, VtlError> {
    let int = |i: usize| args.get(i).and_then(Value::as_i64);
    let text = |i: usize| args.get(i).map(Value::render).unwrap_or_default();
    Ok(match v {
        Value::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            match m {
                "length" => Value::Int(chars.len() as i64),
                "isEmpty" => Value::Bool(s.is_empty()),
                "toLowerCase" => Value::Str(s.to_lowercase()),
                "toUpperCase" => Value::Str(s.to_uppercase()),
                "trim" => Value::Str(s.trim().to_string()),
                "toString" => Value::Str(s.clone()),
                "substring" => {
                    let (Some(a), b) = (int(0), int(1)) else {
                        return Ok(Value::Null);
                    };
                    let b = b.unwrap_or(chars.len() as i64);
                    if a < 0 || b < a || b as usize > chars.len() {
                        return Err(err(format!(
                            "substring({a}, {b}) is out of range for a string of length {}",
                            chars.len()
                        )));
                    }
                    Value::Str(chars[a as usize..b as usize].iter().collect())
                }
                "charAt" => int(0)
                    .and_then(|i| chars.get(usize::try_from(i).ok()?))
                    .map(|c| Value::Str(c.to_string()))
                    .unwrap_or(Value::Null),
                "indexOf" => Value::Int(
                    s.find(&text(0))
                        .map(|b| s[..b].chars().count() as i64)
                        .unwrap_or(-1),
                ),
                "lastIndexOf" => Value::Int(
                    s.rfind(&text(0))
                        .map(|b| s[..b].chars().count() as i64)
                        .unwrap_or(-1),
                ),
                "contains" => Value::Bool(s.contains(&text(0))),
                "startsWith" => Value::Bool(s.starts_with(&text(0))),
                "endsWith" => Value::Bool(s.ends_with(&text(0))),
                "equals" => Value::Bool(
                    args.first()
                        .is_some_and(|a| matches!(a, Value::Str(x) if x == s)),
                ),
                "equalsIgnoreCase" => Value::Bool(s.eq_ignore_ascii_case(&text(0))),
                "concat" => {
                    let t = text(0);
                    fits(s.len() as u64 + t.len() as u64)?;
                    Value::Str(format!("{s}{t}"))
                }
                "replace" => {
                    let (from, to) = (text(0), text(1));
                    let n = if from.is_empty() {
                        chars.len() as u64 + 1
                    } else {
                        s.matches(from.as_str()).count() as u64
                    };
                    fits(s.len() as u64 + n.saturating_mul(to.len() as u64))?;
                    Value::Str(s.replace(&from, &to))
                }
                "replaceAll" => {
                    Value::Str(replace_bounded(s, &regex(&text(0))?, &text(1), usize::MAX)?)
                }
                "replaceFirst" => Value::Str(replace_bounded(s, &regex(&text(0))?, &text(1), 1)?),
                "matches" => Value::Bool(regex(&format!("^(?:{})$", text(0)))?.is_match(s)),
                "split" => {
                    let re = regex(&text(0))?;
                    let mut parts: Vec<Value> = re
                        .split(s)
                        .take(MAX_ITEMS + 1)
                        .map(|p| Value::Str(p.to_string()))
                        .collect();
                    if parts.len() > MAX_ITEMS {
                        return Err(err(format!("split makes more than {MAX_ITEMS} parts")));
                    }
                    // Java drops trailing empty strings.
                    while matches!(parts.last(), Some(Value::Str(p)) if p.is_empty())
                        && parts.len() > 1
                    {
                        parts.pop();
                    }
                    Value::List(parts)
                }
                "size" => Value::Int(chars.len() as i64),
                "hashCode" => Value::Int(
                    s.bytes()
                        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)))
                        as i64,
                ),
                _ => Value::Null,
            }
        }
        Value::List(l) => match m {
            "size" => Value::Int(l.len() as i64),
            "isEmpty" => Value::Bool(l.is_empty()),
            "get" => index(v, args.first().unwrap_or(&Value::Null)),
            "contains" => Value::Bool(args.first().is_some_and(|a| l.iter().any(|x| equal(x, a)))),
            "indexOf" => Value::Int(
                args.first()
                    .and_then(|a| l.iter().position(|x| equal(x, a)))
                    .map(|p| p as i64)
                    .unwrap_or(-1),
            ),
            "toString" => Value::Str(v.render()),
            "subList" => match (int(0), int(1)) {
                (Some(a), Some(b)) if a >= 0 && b >= a && b as usize <= l.len() => {
                    Value::List(l[a as usize..b as usize].to_vec())
                }
                _ => Value::Null,
            },
            // Mutating calls on a value that is not a variable change only a copy.
            "add" | "addAll" => Value::Bool(true),
            _ => Value::Null,
        },
        Value::Map(mm) => match m {
            "get" => v.get(&text(0)).cloned().unwrap_or(Value::Null),
            "size" => Value::Int(mm.len() as i64),
            "isEmpty" => Value::Bool(mm.is_empty()),
            "containsKey" => Value::Bool(v.get(&text(0)).is_some()),
            "keySet" => Value::List(mm.iter().map(|(k, _)| Value::Str(k.clone())).collect()),
            "values" => Value::List(mm.iter().map(|(_, x)| x.clone()).collect()),
            "entrySet" => Value::List(
                mm.iter()
                    .map(|(k, x)| {
                        Value::Map(vec![
                            ("key".into(), Value::Str(k.clone())),
                            ("value".into(), x.clone()),
                        ])
                    })
                    .collect(),
            ),
            "toString" => Value::Str(v.render()),
            _ => Value::Null,
        },
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => match m {
            "toString" => Value::Str(v.render()),
            "intValue" => v.as_i64().map(Value::Int).unwrap_or(Value::Null),
            "doubleValue" => v.as_f64().map(Value::Float).unwrap_or(Value::Null),
            "equals" => Value::Bool(args.first().is_some_and(|a| equal(v, a))),
            _ => Value::Null,
        },
        Value::Null => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, body: &str) -> String {
        let req = Request {
            body: body.into(),
            path_params: vec![("id".into(), "42".into())],
            query_params: vec![("q".into(), "rust lang".into())],
            headers: vec![("Content-Type".into(), "application/json".into())],
            context: json!({"requestId": "req-1", "stage": "prod", "identity": {"sourceIp": "1.2.3.4"}}),
            stage_variables: vec![("env".into(), "test".into())],
        };
        match render(t, &req) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn references_and_quiet_references() {
        assert_eq!(r("a $x b $!x c ${x}d", ""), "a $x b  c ${x}d");
        assert_eq!(r("#set($x = 'v')$x-${x}s $x.length()", ""), "v-vs 1");
        assert_eq!(
            r("price: $5.00 #notadirective", ""),
            "price: $5.00 #notadirective"
        );
        assert_eq!(r("\\$x", ""), "$x");
    }

    #[test]
    fn aws_passthrough_template() {
        // From API Gateway's "method request passthrough" template.
        let t = r##"#set($allParams = $input.params())
{
"body-json" : $input.json('$'),
"params" : {
#foreach($type in $allParams.keySet())
    #set($params = $allParams.get($type))
"$type" : {
    #foreach($paramName in $params.keySet())
    "$paramName" : "$util.escapeJavaScript($params.get($paramName))"
        #if($foreach.hasNext),#end
    #end
}
    #if($foreach.hasNext),#end
#end
},
"stage-variables" : {
#foreach($key in $stageVariables.keySet())
"$key" : "$util.escapeJavaScript($stageVariables.get($key))"
    #if($foreach.hasNext),#end
#end
},
"context" : {
    "request-id" : "$context.requestId",
    "source-ip" : "$context.identity.sourceIp",
    "stage" : "$context.stage"
}
}
"##;
        let out = r(t, r#"{"a": [1, 2]}"#);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["body-json"], json!({"a": [1, 2]}));
        assert_eq!(v["params"]["path"]["id"], "42");
        assert_eq!(v["params"]["querystring"]["q"], "rust lang");
        assert_eq!(v["params"]["header"]["Content-Type"], "application/json");
        assert_eq!(v["stage-variables"]["env"], "test");
        assert_eq!(v["context"]["source-ip"], "1.2.3.4");
    }

    #[test]
    fn form_bodies_split_into_json() {
        // The seed scenario: a Twilio-style form body turned into JSON.
        let t = r##"{
#foreach($pair in $input.body.split('&'))
#set($kv = $pair.split('='))
"$util.urlDecode($kv[0])": "$util.escapeJavaScript($util.urlDecode($kv[1]))"#if($foreach.hasNext),#end
#end
}"##;
        let out = r(t, "From=%2B15551234&Body=Hello+world&NumMedia=1");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(
            v,
            json!({"From": "+15551234", "Body": "Hello world", "NumMedia": "1"})
        );
    }

    #[test]
    fn conditions_loops_and_methods() {
        assert_eq!(
            r(
                "#if(1 < 2 && 'a' == 'a')yes#elseif(true)no#else never#end",
                ""
            ),
            "yes"
        );
        assert_eq!(r("#if($missing)a#elseif(!$missing)b#end", ""), "b");
        assert_eq!(
            r(
                "#foreach($i in [1..3])$i$velocityCount$foreach.index #end",
                ""
            ),
            "110 221 332 "
        );
        assert_eq!(
            r("#foreach($i in [1, 2, 3])#if($i == 2)#break#end$i#end", ""),
            "1"
        );
        assert_eq!(
            r("#set($l = [])#set($d = $l.add('x'))$l.size() $l[0] $l", ""),
            "1 x [x]"
        );
        assert_eq!(
            r(
                "#set($m = {'a': 1})#set($m.b = 2)$m $m.a $m.get('b') $m.keySet()",
                ""
            ),
            "{a=1, b=2} 1 2 [a, b]"
        );
        assert_eq!(
            r(
                "$input.path('$.a[1]') $input.json('$.s') $input.path('$.s').toUpperCase()",
                r#"{"a": [5, 6], "s": "x"}"#
            ),
            "6 \"x\" X"
        );
        assert_eq!(
            r(
                "#set($s = 'Hello World')$s.substring(0, 5).toLowerCase() $s.replace('World', 'you') $s.indexOf('W')",
                ""
            ),
            "hello Hello you 6"
        );
        assert_eq!(
            r(
                "$util.base64Encode('hi') $util.base64Decode('aGk=') $util.urlEncode('a b&c')",
                ""
            ),
            "aGk= hi a+b%26c"
        );
        assert_eq!(
            r("$util.escapeJavaScript(\"it's \\\"q\\\"\")", ""),
            "it\\'s \\\"q\\\""
        );
        assert_eq!(
            r("#set($o = $util.parseJson('{\"k\": [1]}'))$o.k[0]", ""),
            "1"
        );
        assert_eq!(
            r(
                "$input.params('id') $input.params('q') $input.params('content-type')",
                ""
            ),
            "42 rust lang application/json"
        );
        assert_eq!(
            r("#set($n = 7)#set($m = $n * 2 + 1)$m $n / 2 $n % 4", ""),
            "15 $n / 2 $n % 4"
                .replace("$n / 2", "7 / 2")
                .replace("$n % 4", "7 % 4")
        );
        assert_eq!(r("## comment\nline #* block *#end", ""), "\nline end");
    }

    #[test]
    fn directives_alone_on_a_line_leave_no_blank_lines() {
        assert_eq!(
            r("a\n#set($x = 1)\nb\n  #if(true)\nc\n  #end\nd", ""),
            "a\nb\nc\nd"
        );
    }

    /// A fuzz test that runs in CI: many random templates built from VTL's tokens, each parsed
    /// and rendered; none may panic or run away.
    #[test]
    fn random_templates_never_panic() {
        const TOKENS: &[&str] = &[
            "#set(",
            "#if(",
            "#elseif(",
            "#else",
            "#end",
            "#foreach(",
            " in ",
            "#break",
            "$",
            "$!",
            "${",
            "}",
            "(",
            ")",
            "[",
            "]",
            "{",
            "'",
            "\"",
            "a",
            "b",
            ".",
            ",",
            ":",
            "=",
            "==",
            "!=",
            "<",
            "&&",
            "||",
            "!",
            "+",
            "-",
            "*",
            "/",
            "%",
            "1",
            "0",
            "2.5",
            "..",
            "true",
            "null",
            "$input.json('$.a')",
            "$input.path('$.b[0]')",
            "$input.params()",
            "$util.escapeJavaScript(",
            "$util.parseJson(",
            "$foreach.hasNext",
            "$velocityCount",
            "split(','",
            "substring(",
            "\n",
            " ",
            "##",
            "#*",
            "*#",
            "\\",
            ".size()",
            ".get(",
            ".add(",
            "$context.x",
            "$stageVariables.y",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let req = Request {
            body: r#"{"a": [1, 2], "b": ["x"]}"#.into(),
            ..Request::default()
        };
        for _ in 0..20_000 {
            let n = (next() % 24) as usize;
            let t: String = (0..n)
                .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
                .collect();
            let _ = render(&t, &req);
        }
    }

    /// The reported bombs: deep nesting overflowed the stack; nested loops and doubling
    /// strings ran for minutes. Each now ends in an error, quickly.
    #[test]
    fn template_bombs_are_refused() {
        let req = Request::default();
        let deep = format!("#set($x = {}1{})", "(".repeat(100_000), ")".repeat(100_000));
        assert!(matches!(render(&deep, &req), Err(VtlError::Parse { .. })));
        let deep_if = "#if(true)".repeat(10_000);
        assert!(render(&deep_if, &req).is_err());
        let deep_str = format!(
            "#set($x = {}{})",
            "\"$!{".repeat(5_000),
            "}\"".repeat(5_000)
        );
        assert!(render(&deep_str, &req).is_err());
        let loops =
            "#foreach($a in [1..999])#foreach($b in [1..999])#foreach($c in [1..999])x#end#end#end";
        let e = render(loops, &req).expect_err("nested loops");
        assert!(
            e.to_string().contains("steps") || e.to_string().contains("10 MB"),
            "{e}"
        );
        let doubling =
            "#set($s = \"ab\")#foreach($i in [1..60])#set($s = $s.concat($s))#end$s.length()";
        assert!(render(doubling, &req).is_err());
        let interp = "#set($s = \"ab\")#foreach($i in [1..60])#set($s = \"$s$s\")#end";
        assert!(render(interp, &req).is_err());
        let replace = "#set($s = \"aaaaaaaaaaaaaaaa\")#foreach($i in [1..30])#set($s = $s.replace(\"a\", \"aa\"))#end";
        assert!(render(replace, &req).is_err());
        let regex = "#set($s = \"aaaaaaaaaaaaaaaa\")#foreach($i in [1..30])#set($s = $s.replaceAll(\"a\", \"$0$0\"))#end";
        assert!(render(regex, &req).is_err());
        let nest = "#set($l = [])#foreach($i in [1..999])#set($l = [$l])#end";
        assert!(render(nest, &req).is_err());
        let copies = "#set($s = \"0123456789\")#foreach($i in [1..20])#set($s = \"$s$s\")#end#foreach($i in [1..999])#set($t = $s)#end";
        assert!(render(copies, &req).is_err());
        // A parsed template renders again with a fresh budget.
        let t = Template::parse("#foreach($i in [1..999])$i#end").expect("parse");
        for _ in 0..3 {
            assert!(t.render(&req).is_ok());
        }
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        assert!(r("#if(true)open", "").starts_with("ERR template syntax error"));
        assert!(r("#set($x = )", "").starts_with("ERR"));
        assert!(r("#end", "").starts_with("ERR"));
        assert!(
            r("$s.substring(5)", "").contains("$s"),
            "null reference stays literal"
        );
        assert!(
            r("#set($s = 'ab')$s.substring(1, 9)", "")
                .starts_with("ERR template evaluation failed")
        );
        assert!(r("#foreach($i in [1..5000])x#end", "").starts_with("ERR"));
        // Arbitrary bytes never panic.
        for t in [
            "#",
            "$",
            "#set(",
            "#if(",
            "${",
            "$!{a",
            "#foreach($x in",
            "\"",
            "#if('a' == )",
            "$a.b(",
            "$a[",
            "#*",
        ] {
            let _ = r(t, "");
        }
    }
}
