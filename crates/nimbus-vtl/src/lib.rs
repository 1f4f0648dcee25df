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

/// Why a template could not be parsed or rendered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VtlError {
    /// The template is not valid VTL, or nests deeper than [`MAX_DEPTH`].
    #[error("template syntax error at line {line}, column {column}: {message}")]
    Parse {
        /// The line the error was found on, from 1.
        line: usize,
        /// The column the error was found at, from 1, counted in bytes.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// Rendering failed: a method misused, or a step, time, output or value budget exceeded.
    #[error("template evaluation failed: {0}")]
    Eval(String),
}
