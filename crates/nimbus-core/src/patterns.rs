//! Event patterns, as Lambda event filtering (and EventBridge rules, and SNS filter policies
//! where their rules coincide) write them: a JSON object whose keys name fields of the event and
//! whose leaves are non-empty arrays of matchers — exact values (strings, numbers, `null`,
//! booleans; any one of them), `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values,
//! a `prefix` or a `suffix`), `numeric` comparisons and ranges, `exists`, `wildcard` — with
//! `$or` for alternatives. All fields must match (AND), any matcher of a leaf may (OR), and an
//! array in the event matches when any of its elements does. Patterns are checked and compiled
//! once ([`Pattern::parse`]); matching allocates nothing.

use serde_json::{Map, Value};

/// Why a pattern is not valid (for logs; APIs answer with their own fixed message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

fn bad<T>(why: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(why.into()))
}

/// Nesting a pattern may have.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Numeric(Vec<(Op, f64)>),
    Exists(bool),
    Wildcard(String),
}

#[derive(Debug, Clone)]
enum Node {
    /// Fields that must all match, and alternatives (`$or`) of which one must.
    Fields {
        fields: Vec<(String, Node)>,
        any_of: Vec<Vec<Node>>,
    },
    /// Matchers of which one must match.
    Leaf(Vec<Matcher>),
}

/// A checked, compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern(Node);

impl Pattern {
    /// Parses a pattern document.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| PatternError(format!("not JSON: {e}")))?;
        match &v {
            Value::Object(o) if !o.is_empty() => Ok(Pattern(fields(o, 0)?)),
            Value::Object(_) => bad("an empty pattern"),
            _ => bad("a pattern must be a JSON object"),
        }
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        node_matches(&self.0, Some(event))
    }
}

fn fields(o: &Map<String, Value>, depth: usize) -> Result<Node, PatternError> {
    if depth > MAX_DEPTH {
        return bad("the pattern is nested too deeply");
    }
    let mut out = Vec::new();
    let mut any_of = Vec::new();
    for (k, v) in o {
        if k == "$or" {
            let Value::Array(alts) = v else {
                return bad("$or takes an array of patterns");
            };
            if alts.len() < 2 {
                return bad("$or needs at least two alternatives");
            }
            let mut group = Vec::new();
            for a in alts {
                match a {
                    Value::Object(ao) if !ao.is_empty() => group.push(fields(ao, depth + 1)?),
                    _ => return bad("each $or alternative is a pattern object"),
                }
            }
            any_of.push(group);
            continue;
        }
        let node = match v {
            Value::Object(inner) if !inner.is_empty() => fields(inner, depth + 1)?,
            Value::Array(items) if !items.is_empty() => {
                Node::Leaf(items.iter().map(matcher).collect::<Result<Vec<_>, _>>()?)
            }
            Value::Array(_) => return bad(format!("{k}: an empty array matches nothing")),
            _ => return bad(format!("{k}: a leaf must be an array of matchers")),
        };
        out.push((k.clone(), node));
    }
    Ok(Node::Fields {
        fields: out,
        any_of,
    })
}

fn string_operand(v: &Value, what: &str) -> Result<String, PatternError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => bad(format!("{what} takes a string")),
    }
}

fn matcher(v: &Value) -> Result<Matcher, PatternError> {
    let o = match v {
        Value::Object(o) => o,
        Value::Array(_) => return bad("a matcher cannot be an array"),
        scalar => return Ok(Matcher::Exact(scalar.clone())),
    };
    if o.len() != 1 {
        return bad("a matcher object has exactly one key");
    }
    let Some((k, operand)) = o.iter().next() else {
        return bad("an empty matcher");
    };
    Ok(match k.as_str() {
        "prefix" => Matcher::Prefix(string_operand(operand, "prefix")?),
        "suffix" => Matcher::Suffix(string_operand(operand, "suffix")?),
        "equals-ignore-case" => {
            Matcher::EqualsIgnoreCase(string_operand(operand, "equals-ignore-case")?.to_lowercase())
        }
        "wildcard" => Matcher::Wildcard(string_operand(operand, "wildcard")?),
        "exists" => match operand {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => return bad("exists takes true or false"),
        },
        "anything-but" => match operand {
            Value::String(_) | Value::Number(_) => Matcher::AnythingBut(vec![operand.clone()]),
            Value::Array(vals)
                if !vals.is_empty() && vals.iter().all(|x| x.is_string() || x.is_number()) =>
            {
                Matcher::AnythingBut(vals.clone())
            }
            Value::Object(inner) if inner.len() == 1 => match inner.iter().next() {
                Some((p, Value::String(s))) if p == "prefix" => {
                    Matcher::AnythingButPrefix(s.clone())
                }
                Some((p, Value::String(s))) if p == "suffix" => {
                    Matcher::AnythingButSuffix(s.clone())
                }
                _ => {
                    return bad(
                        "anything-but takes a value, a list of values, a prefix or a suffix",
                    );
                }
            },
            _ => return bad("anything-but takes a value, a list of values, a prefix or a suffix"),
        },
        "numeric" => {
            let Value::Array(parts) = operand else {
                return bad("numeric takes [operator, number, …]");
            };
            if parts.is_empty() || parts.len() % 2 != 0 || parts.len() > 4 {
                return bad("numeric takes one or two [operator, number] pairs");
            }
            let mut conds = Vec::new();
            for pair in parts.chunks(2) {
                let op = match pair[0].as_str() {
                    Some("=") => Op::Eq,
                    Some("<") => Op::Lt,
                    Some("<=") => Op::Le,
                    Some(">") => Op::Gt,
                    Some(">=") => Op::Ge,
                    _ => return bad("numeric operators are =, <, <=, >, >="),
                };
                let Some(n) = pair[1].as_f64() else {
                    return bad("numeric compares with numbers");
                };
                conds.push((op, n));
            }
            if conds.len() == 2 {
                let lower = matches!(conds[0].0, Op::Gt | Op::Ge);
                let upper = matches!(conds[1].0, Op::Lt | Op::Le);
                if !(lower && upper && conds[0].1 <= conds[1].1) {
                    return bad("a numeric range is a lower bound, then a higher upper bound");
                }
            }
            Matcher::Numeric(conds)
        }
        other => return bad(format!("unknown matcher {other}")),
    })
}

fn node_matches(node: &Node, value: Option<&Value>) -> bool {
    match node {
        Node::Fields { fields, any_of } => {
            let obj = value.and_then(Value::as_object);
            fields
                .iter()
                .all(|(k, sub)| node_matches(sub, obj.and_then(|o| o.get(k))))
                && any_of
                    .iter()
                    .all(|alts| alts.iter().any(|a| node_matches(a, value)))
        }
        Node::Leaf(matchers) => matchers.iter().any(|m| leaf_matches(m, value)),
    }
}

fn leaf_matches(m: &Matcher, value: Option<&Value>) -> bool {
    match (m, value) {
        (Matcher::Exists(want), v) => *want == v.is_some(),
        (_, None) => false,
        (_, Some(Value::Array(items))) => items.iter().any(|i| scalar_matches(m, i)),
        (_, Some(v)) => scalar_matches(m, v),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn wildcard(pattern: &str, text: &str) -> bool {
    // `*` matches any run of characters; iterative with one backtrack point.
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn scalar_matches(m: &Matcher, v: &Value) -> bool {
    let s = v.as_str();
    match m {
        Matcher::Exact(want) => same(want, v),
        Matcher::Prefix(p) => s.is_some_and(|s| s.starts_with(p.as_str())),
        Matcher::Suffix(p) => s.is_some_and(|s| s.ends_with(p.as_str())),
        Matcher::EqualsIgnoreCase(p) => s.is_some_and(|s| s.to_lowercase() == *p),
        Matcher::Wildcard(p) => s.is_some_and(|s| wildcard(p, s)),
        Matcher::AnythingBut(vals) => {
            (v.is_string() || v.is_number()) && !vals.iter().any(|x| same(x, v))
        }
        Matcher::AnythingButPrefix(p) => s.is_some_and(|s| !s.starts_with(p.as_str())),
        Matcher::AnythingButSuffix(p) => s.is_some_and(|s| !s.ends_with(p.as_str())),
        Matcher::Numeric(conds) => v.as_f64().is_some_and(|n| {
            conds.iter().all(|(op, x)| match op {
                Op::Eq => n == *x,
                Op::Lt => n < *x,
                Op::Le => n <= *x,
                Op::Gt => n > *x,
                Op::Ge => n >= *x,
            })
        }),
        Matcher::Exists(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: Value) -> Pattern {
        Pattern::parse(&text.to_string()).expect("valid pattern")
    }

    /// The cases of the AWS-validated SQS filtering tests (LocalStack's
    /// test_lambda_integration_sqs.py::test_sqs_event_filter), on the record's parsed body.
    #[test]
    fn the_aws_validated_sqs_filter_cases() {
        let cases = [
            (
                json!({"body": {"my-key": ["my-value"]}}),
                json!({"my-key": "my-value"}),
                json!({"my-key": "other-value"}),
            ),
            (
                json!({"body": {"my-key": ["my-value-one", "my-value-two"]}}),
                json!({"my-key": "my-value-two"}),
                json!({"my-key": "other-value"}),
            ),
            (
                json!({"body": {"my-key-one": ["other-filter", "my-value-one"], "my-key-two": ["my-value-two"]}}),
                json!({"my-key-one": "my-value-one", "my-key-two": "my-value-two"}),
                json!({"my-key-one": "other-value-", "my-key-two": "my-value-two"}),
            ),
            (
                json!({"body": {"my-key": [{"exists": true}]}}),
                json!({"my-key": "any-value-one"}),
                json!({"other-key": "any-value-two"}),
            ),
            (
                json!({"body": {"my-number": [{"numeric": [">", 100]}]}}),
                json!({"my-number": 101}),
                json!({"my-number": 100}),
            ),
            (
                json!({"body": {"my-number": [{"numeric": ["<", 100]}]}}),
                json!({"my-number": 99}),
                json!({"my-number": 100}),
            ),
            (
                json!({"body": {"my-number": [{"numeric": [">=", 100, "<", 200]}]}}),
                json!({"my-number": 100}),
                json!({"my-number": 200}),
            ),
            (
                json!({"body": {"my-key": [{"prefix": "yes"}]}}),
                json!({"my-key": "yes-value"}),
                json!({"my-key": "no-value"}),
            ),
            // A JSON pattern for the body never matches a plain-string body.
            (
                json!({"body": {"my-key": ["my-value"]}}),
                json!({"my-key": "my-value"}),
                json!("plain-string"),
            ),
        ];
        for (pattern, yes, no) in cases {
            let pat = p(pattern.clone());
            assert!(
                pat.matches(&json!({"body": yes})),
                "{pattern} should match {yes}"
            );
            assert!(
                !pat.matches(&json!({"body": no})),
                "{pattern} should not match {no}"
            );
        }
    }

    #[test]
    fn the_aws_validated_invalid_patterns_are_refused() {
        for text in [
            "null",
            "\"simple string\"",
            r#"{"eventSource": "aws:sqs"}"#,
            r#"{"eventSource": []}"#,
        ] {
            assert!(Pattern::parse(text).is_err(), "{text}");
        }
        for bad in [
            json!({"a": [{"numeric": ["<", 1, ">", 2]}]}),
            json!({"a": [{"numeric": ["!", 1]}]}),
            json!({"a": [{"prefix": 1}]}),
            json!({"a": [{"nope": 1}]}),
            json!({"a": [{"prefix": "x", "suffix": "y"}]}),
            json!({"$or": [{"a": ["x"]}]}),
        ] {
            assert!(Pattern::parse(&bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn matchers_follow_the_pattern_rules() {
        let ev = json!({
            "source": "orders", "n": 5, "tags": ["a", "b"], "nothing": null,
            "detail": {"state": "Shipped", "file": "photo.jpg"}
        });
        let yes = [
            json!({"tags": ["b"]}),
            json!({"nothing": [null]}),
            json!({"n": [5.0]}),
            json!({"detail": {"state": [{"equals-ignore-case": "shipped"}]}}),
            json!({"detail": {"file": [{"suffix": ".jpg"}]}}),
            json!({"detail": {"file": [{"wildcard": "ph*.j*g"}]}}),
            json!({"source": [{"anything-but": ["users", "carts"]}]}),
            json!({"source": [{"anything-but": {"prefix": "us"}}]}),
            json!({"missing": [{"exists": false}]}),
            json!({"$or": [{"source": ["users"]}, {"n": [{"numeric": ["=", 5]}]}]}),
        ];
        for pattern in yes {
            assert!(p(pattern.clone()).matches(&ev), "{pattern}");
        }
        let no = [
            json!({"n": ["5"]}),
            json!({"source": [{"anything-but": "orders"}]}),
            json!({"source": [{"anything-but": {"suffix": "ers"}}]}),
            json!({"missing": ["x"]}),
            json!({"source": [{"exists": false}]}),
            json!({"detail": {"file": [{"wildcard": "*.png"}]}}),
            json!({"$or": [{"source": ["users"]}, {"n": [{"numeric": [">", 5]}]}]}),
        ];
        for pattern in no {
            assert!(!p(pattern.clone()).matches(&ev), "{pattern}");
        }
    }
}
