//! The query protocol (form in, XML out), which SQS, SNS, IAM and STS speak: `Action=<Op>&
//! Version=…` with flattened member names (`Attribute.1.Name`, `Entry.2.Id`, `Tag.1.Key`).
//! [`read_form`] collects the fields (query string and form body, counted as they are
//! parsed); [`decode_form`] turns them into the JSON protocol's shape of the operation's input,
//! so a service decodes both protocols into the same typed requests; [`render_result`] and
//! [`render_error`] write AWS's XML. What is a list, a map or a number differs per service:
//! each says so through a [`QueryShape`].

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::AwsError;
use super::xml::{escape, text_element};

/// Dots a field name may have (`SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.
/// StringValue` has five).
const MAX_DEPTH: usize = 8;

/// Why a form is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A required field is absent (`Action`, a map entry's key).
    #[error("{0}")]
    Missing(String),
    /// A field is malformed, repeated, too deep, or there are too many.
    #[error("{0}")]
    Invalid(String),
}

/// What a service's model says about its members, for decoding forms and writing XML.
pub trait QueryShape {
    /// The member a flattened list fills (`AttributeName` → `AttributeNames`).
    fn list_member(&self, flat: &str) -> Option<&'static str>;
    /// The member a flattened map fills and its entries' key field (`Attribute` →
    /// (`Attributes`, `Name`)), for operation `op`.
    fn map_member(&self, flat: &str, op: &str) -> Option<(&'static str, &'static str)>;
    /// Whether a member is a number.
    fn is_integer(&self, member: &str) -> bool;
    /// The element each item of a result list is written as (`QueueUrls` → `QueueUrl`).
    fn list_element(&self, member: &str, op: &str) -> String;
    /// (entry element, key element) of a result map (`Attributes` → (`Attribute`, `Name`)).
    fn map_element(&self, member: &str) -> Option<(&'static str, &'static str)>;
    /// Whether the operation's response has a `<OpResult>` element.
    fn has_result(&self, op: &str) -> bool;
}

/// Fields of the protocol and of query-string signing, not members of an operation.
fn is_envelope(k: &str) -> bool {
    matches!(
        k,
        "Action"
            | "Version"
            | "AWSAccessKeyId"
            | "Signature"
            | "SignatureMethod"
            | "SignatureVersion"
            | "Timestamp"
            | "Expires"
            | "SecurityToken"
    ) || k.starts_with("X-Amz-")
}

/// The fields of a query-protocol request: the URL's query string, then the form body (at
/// most `max_bytes`); more than `max_fields` is refused before they are all collected.
pub async fn read_form(
    req: Request<Body>,
    max_bytes: usize,
    max_fields: usize,
) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .take(max_fields + 1)
                .collect()
        })
        .unwrap_or_default();
    let body = axum::body::to_bytes(req.into_body(), max_bytes)
        .await
        .map_err(|_| {
            FormError::Invalid(format!(
                "The request body could not be read (at most {max_bytes} bytes)."
            ))
        })?;
    for kv in form_urlencoded::parse(&body).into_owned() {
        if pairs.len() > max_fields {
            break;
        }
        pairs.push(kv);
    }
    if pairs.len() > max_fields {
        return Err(FormError::Invalid(format!(
            "The request has more than {max_fields} parameters."
        )));
    }
    Ok(pairs)
}

/// A form as a tree of its dotted names.
#[derive(Debug)]
enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

fn invalid(msg: impl Into<String>) -> FormError {
    FormError::Invalid(msg.into())
}

fn insert(root: &mut BTreeMap<String, Node>, key: &str, value: String) -> Result<(), FormError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() > MAX_DEPTH || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(format!(
            "The parameter {key} is not valid for this action."
        )));
    }
    let mut at = root;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            if at.insert(p.to_string(), Node::Leaf(value)).is_some() {
                return Err(invalid(format!(
                    "The parameter {key} is given more than once."
                )));
            }
            return Ok(());
        }
        let next = at
            .entry(p.to_string())
            .or_insert_with(|| Node::Branch(BTreeMap::new()));
        at = match next {
            Node::Branch(m) => m,
            Node::Leaf(_) => {
                return Err(invalid(format!(
                    "The parameter {key} is not valid for this action."
                )));
            }
        };
    }
    Ok(())
}

/// The items of a flattened list or map (`.1`, `.2`, …), in index order.
fn indexed<'a>(name: &str, node: &'a Node) -> Result<Vec<&'a Node>, FormError> {
    let Node::Branch(m) = node else {
        return Err(invalid(format!(
            "The parameter {name} must be indexed ({name}.1, {name}.2, …)."
        )));
    };
    let mut items = Vec::new();
    for (k, v) in m {
        let i: usize = k.parse().ok().filter(|i| *i >= 1).ok_or_else(|| {
            invalid(format!(
                "The parameter {name}.{k} is not valid: indexes start at 1."
            ))
        })?;
        items.push((i, v));
    }
    items.sort_by_key(|(i, _)| *i);
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

fn convert(shape: &dyn QueryShape, node: &Node, op: &str, name: &str) -> Result<Value, FormError> {
    let m = match node {
        Node::Leaf(s) => {
            return Ok(match s.parse::<i64>() {
                Ok(n) if shape.is_integer(name) => Value::from(n),
                _ => Value::String(s.clone()),
            });
        }
        Node::Branch(m) => m,
    };
    let mut out = Map::new();
    for (k, child) in m {
        if let Some(member) = shape.list_member(k) {
            let items = indexed(k, child)?
                .into_iter()
                .map(|item| convert(shape, item, op, k))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(member.to_string(), Value::Array(items));
        } else if let Some((member, key_field)) = shape.map_member(k, op) {
            let mut map = Map::new();
            for item in indexed(k, child)? {
                let Node::Branch(fields) = item else {
                    return Err(invalid(format!(
                        "The parameter {k} needs {key_field} and Value."
                    )));
                };
                let key = match fields.get(key_field) {
                    Some(Node::Leaf(s)) => s.clone(),
                    _ => return Err(FormError::Missing(format!("{k}.N.{key_field}"))),
                };
                let value = match fields.get("Value") {
                    Some(v) => convert(shape, v, op, "Value")?,
                    None => Value::String(String::new()),
                };
                if fields.keys().any(|f| f != key_field && f != "Value") {
                    return Err(invalid(format!(
                        "The parameter {k} has members other than {key_field} and Value."
                    )));
                }
                map.insert(key, value);
            }
            out.insert(member.to_string(), Value::Object(map));
        } else {
            out.insert(k.clone(), convert(shape, child, op, k)?);
        }
    }
    Ok(Value::Object(out))
}

/// The operation (`Action`) and its input in the JSON protocol's shape.
pub fn decode_form(
    shape: &dyn QueryShape,
    pairs: &[(String, String)],
) -> Result<(String, Value), FormError> {
    let mut action = None;
    let mut root = BTreeMap::new();
    for (k, v) in pairs {
        if k == "Action" {
            action = Some(v.clone());
        }
        if is_envelope(k) {
            continue;
        }
        insert(&mut root, k, v.clone())?;
    }
    let op = action.ok_or_else(|| FormError::Missing("Action".into()))?;
    let input = convert(shape, &Node::Branch(root), &op, "")?;
    Ok((op, input))
}

fn scalar(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => escape(s, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        _ => {}
    }
}

fn element(shape: &dyn QueryShape, name: &str, v: &Value, op: &str, out: &mut String) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match v {
        Value::Object(m) => members(shape, m, op, out),
        other => scalar(other, out),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn members(shape: &dyn QueryShape, m: &Map<String, Value>, op: &str, out: &mut String) {
    for (k, v) in m {
        match v {
            Value::Null => {}
            Value::Array(items) => {
                let name = shape.list_element(k, op);
                for item in items {
                    element(shape, &name, item, op, out);
                }
            }
            Value::Object(map) => match shape.map_element(k) {
                Some((entry, key)) => {
                    for (name, value) in map {
                        out.push('<');
                        out.push_str(entry);
                        out.push('>');
                        text_element(key, name, out);
                        element(shape, "Value", value, op, out);
                        out.push_str("</");
                        out.push_str(entry);
                        out.push('>');
                    }
                }
                None => element(shape, k, v, op, out),
            },
            other => element(shape, k, other, op, out),
        }
    }
}

/// The XML response for a result (given in the JSON protocol's shape):
/// `<OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata><RequestId>…`.
pub fn render_result(
    shape: &dyn QueryShape,
    xmlns: &str,
    op: &str,
    result: &Value,
    request_id: &str,
) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>");
    out.push_str(&format!("<{op}Response xmlns=\"{xmlns}\">"));
    if shape.has_result(op) {
        out.push_str(&format!("<{op}Result>"));
        if let Value::Object(m) = result {
            members(shape, m, op, &mut out);
        }
        out.push_str(&format!("</{op}Result>"));
    }
    out.push_str("<ResponseMetadata>");
    text_element("RequestId", request_id, &mut out);
    out.push_str(&format!("</ResponseMetadata></{op}Response>"));
    out
}

/// The query protocol's error document: `<ErrorResponse><Error><Type>Sender</Type><Code>…
/// </Code><Message>…</Message><Detail/></Error><RequestId>…</RequestId></ErrorResponse>`.
pub fn render_error(e: &dyn AwsError, xmlns: &str, request_id: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{xmlns}\"><Error>");
    text_element("Type", e.fault().as_str(), &mut out);
    text_element("Code", e.query_code(), &mut out);
    text_element("Message", e.message(), &mut out);
    out.push_str("<Detail/></Error>");
    text_element("RequestId", request_id, &mut out);
    out.push_str("</ErrorResponse>");
    out
}

/// An XML response (`text/xml`) with its request id.
pub fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

/// Whether a request speaks the query protocol: a form body, or no `X-Amz-Target` and an
/// `Action` in the query string.
pub fn is_query(req: &Request<Body>) -> bool {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    let target = req.headers().contains_key("x-amz-target");
    form || (!target
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("Action="))))
}
