//! Function names, ARNs and qualifiers as Lambda accepts them in paths:
//! `my-function`, `my-function:qualifier`, `123456789012:function:my-function[:q]` and
//! `arn:aws:lambda:us-east-1:123456789012:function:my-function[:q]`.

use crate::error::{CoreError, Result};

const NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/// A parsed function reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The function name (1–64 of `[A-Za-z0-9_-]`).
    pub name: String,
    /// The version or alias (`$LATEST`, a number or an alias name), from a `:qualifier` suffix.
    pub qualifier: Option<String>,
    /// The 12-digit account id, when an ARN or partial ARN gave one.
    pub account: Option<String>,
    /// The region, when a full ARN gave one.
    pub region: Option<String>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_qualifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && (s == "$LATEST"
            || s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn pattern_error(value: &str, field: &str) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}"
    ))
}

/// Parses a function reference as given in a path or a `FunctionName` field.
pub fn parse_function_ref(input: &str) -> Result<FunctionRef> {
    let too_long = if input.starts_with("arn:") {
        input.len() > 170
    } else {
        input.len() > 140
    };
    if input.is_empty() || too_long {
        return Err(pattern_error(input, "functionName"));
    }
    let parts: Vec<&str> = input.split(':').collect();
    let (account, region, name, qualifier) = match parts.as_slice() {
        [name] => (None, None, *name, None),
        [name, q] => (None, None, *name, Some(*q)),
        [acct, "function", name] => (Some(*acct), None, *name, None),
        [acct, "function", name, q] => (Some(*acct), None, *name, Some(*q)),
        ["arn", partition, "lambda", region, acct, "function", name] => {
            check_partition(partition, input)?;
            (Some(*acct), Some(*region), *name, None)
        }
        [
            "arn",
            partition,
            "lambda",
            region,
            acct,
            "function",
            name,
            q,
        ] => {
            check_partition(partition, input)?;
            (Some(*acct), Some(*region), *name, Some(*q))
        }
        _ => return Err(pattern_error(input, "functionName")),
    };
    if let Some(a) = account
        && (a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(pattern_error(input, "functionName"));
    }
    if !valid_name(name) {
        return Err(pattern_error(input, "functionName"));
    }
    if let Some(q) = qualifier
        && !valid_qualifier(q)
    {
        return Err(pattern_error(input, "functionName"));
    }
    Ok(FunctionRef {
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
        account: account.map(str::to_string),
        region: region.map(str::to_string),
    })
}

fn check_partition(p: &str, input: &str) -> Result<()> {
    if p.starts_with("aws") {
        Ok(())
    } else {
        Err(pattern_error(input, "functionName"))
    }
}

/// Combines a path reference with a `?Qualifier=` parameter as Lambda does.
pub fn with_qualifier(mut r: FunctionRef, qualifier: Option<&str>) -> Result<FunctionRef> {
    if let Some(q) = qualifier {
        if !valid_qualifier(q) {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
            )));
        }
        match &r.qualifier {
            Some(existing) if existing != q => {
                return Err(CoreError::InvalidParameter(
                    "The derived qualifier from the function name does not match the specified qualifier."
                        .into(),
                ));
            }
            _ => r.qualifier = Some(q.to_string()),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_form_lambda_accepts() -> Result<()> {
        let n = parse_function_ref("my-fn")?;
        assert_eq!((n.name.as_str(), n.qualifier), ("my-fn", None));
        let q = parse_function_ref("my-fn:$LATEST")?;
        assert_eq!(q.qualifier.as_deref(), Some("$LATEST"));
        let p = parse_function_ref("123456789012:function:my-fn:prod")?;
        assert_eq!(p.account.as_deref(), Some("123456789012"));
        assert_eq!(p.qualifier.as_deref(), Some("prod"));
        let a = parse_function_ref("arn:aws:lambda:us-east-1:123456789012:function:my-fn")?;
        assert_eq!(a.region.as_deref(), Some("us-east-1"));
        assert_eq!(a.name, "my-fn");
        Ok(())
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "has space",
            "a:b:c",
            "12:function:f",
            "arn:aws:s3:::bucket",
            &"x".repeat(65),
            "f:bad!",
        ] {
            assert!(
                matches!(parse_function_ref(bad), Err(CoreError::Validation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn qualifier_must_agree() {
        let r = parse_function_ref("f:1").expect("parse");
        assert!(matches!(
            with_qualifier(r.clone(), Some("2")),
            Err(CoreError::InvalidParameter(_))
        ));
        assert_eq!(
            with_qualifier(r, Some("1"))
                .ok()
                .and_then(|r| r.qualifier)
                .as_deref(),
            Some("1")
        );
    }
}
