//! The Velocity Template Language as API Gateway mapping templates use it: `#set`, `#if` /
//! `#elseif` / `#else`, `#foreach` (with `$foreach.index`, `$foreach.count`, `$foreach.hasNext`
//! and `$velocityCount`), comments, quiet references, method calls on strings, lists and maps
//! with Java's names and results, and API Gateway's variables: `$input` (`body`, `json()`,
//! `path()`, `params()`), `$util` (`escapeJavaScript`, `urlEncode`, `urlDecode`, `base64Encode`,
//! `base64Decode`, `parseJson`), `$context` and `$stageVariables`.
//!
//! A template error is an `Err` with its line and column (never a panic); evaluation is bounded
//! (loop iterations and output size) so a template cannot run away.

mod eval;
mod parse;
mod value;

pub use eval::{MAX_STEPS, MAX_VALUE_BYTES, Request, Template, render};
pub use parse::MAX_DEPTH;
pub use value::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VtlError {
    #[error("template syntax error at line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("template evaluation failed: {0}")]
    Eval(String),
}
