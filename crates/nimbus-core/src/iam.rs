//! IAM policy documents, typed, and their evaluation: the one evaluator every policy goes
//! through (API Gateway's Lambda authorizer policies today; identity and resource policies as
//! they arrive). A document is parsed as IAM parses it — `Statement` one or many, `Action` /
//! `NotAction` and `Resource` / `NotResource` each a string or a list, unknown elements
//! refused — and evaluated as IAM does: an explicit `Deny` wins, else any `Allow`, else the
//! implicit deny. What Nimbus cannot evaluate (`Condition`) fails closed, never open.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// `2012-10-17` (or the older `2008-10-17`).
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The document's id.
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The statements, in order (a single statement object is a list of one).
    #[serde(rename = "Statement", deserialize_with = "one_or_many")]
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Statement {
    /// The statement's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    pub effect: Effect,
    /// Who the statement is about (resource policies); kept, not evaluated here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Value>,
    /// Actions it covers (`service:Operation`, wildcards allowed, case-insensitive).
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub action: Option<Vec<String>>,
    /// Actions it covers by exclusion.
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_action: Option<Vec<String>>,
    /// Resources it covers (ARNs, wildcards allowed, case-sensitive).
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource: Option<Vec<String>>,
    /// Resources it covers by exclusion.
    #[serde(
        default,
        deserialize_with = "opt_one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_resource: Option<Vec<String>>,
    /// Conditions: Nimbus does not evaluate them, so a statement with one makes the whole
    /// evaluation fail (closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// A statement's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, over any grant.
    Deny,
}

/// The outcome of evaluating a request against a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it.
    ExplicitDeny,
    /// No statement covers it.
    ImplicitDeny,
}

/// Why a document cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not a policy document.
    #[error("the policy document is malformed: {0}")]
    Malformed(String),
    /// A statement has a `Condition`, which Nimbus does not evaluate.
    #[error("the policy has a Condition, which Nimbus does not evaluate")]
    UnsupportedCondition,
}

fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::<T>::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(t) => vec![t],
    })
}

fn opt_one_or_many<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    one_or_many(d).map(Some)
}

/// IAM's wildcard match: `*` any run of characters, `?` any one character.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it has absorbed up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
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

impl Statement {
    /// Whether the positive list matches `value` (or the negative one does not). A statement
    /// must have exactly one of the pair.
    fn covers(
        positive: &Option<Vec<String>>,
        negative: &Option<Vec<String>>,
        value: &str,
        fold: bool,
        what: &str,
    ) -> Result<bool, PolicyError> {
        let test = |p: &String| {
            if fold {
                wildcard(&p.to_ascii_lowercase(), &value.to_ascii_lowercase())
            } else {
                wildcard(p, value)
            }
        };
        match (positive, negative) {
            (Some(list), None) => Ok(list.iter().any(test)),
            (None, Some(list)) => Ok(!list.iter().any(test)),
            _ => Err(PolicyError::Malformed(format!(
                "a statement needs exactly one of {what} and Not{what}"
            ))),
        }
    }
}

impl PolicyDocument {
    /// A document from its JSON value.
    pub fn from_value(v: Value) -> Result<PolicyDocument, PolicyError> {
        serde_json::from_value(v).map_err(|e| PolicyError::Malformed(e.to_string()))
    }

    /// IAM's decision for `action` on `resource`.
    pub fn evaluate(&self, action: &str, resource: &str) -> Result<Decision, PolicyError> {
        if self.statements.iter().any(|s| s.condition.is_some()) {
            return Err(PolicyError::UnsupportedCondition);
        }
        let mut allowed = false;
        for s in &self.statements {
            let applies = Statement::covers(&s.action, &s.not_action, action, true, "Action")?
                && Statement::covers(&s.resource, &s.not_resource, resource, false, "Resource")?;
            match (applies, s.effect) {
                (true, Effect::Deny) => return Ok(Decision::ExplicitDeny),
                (true, Effect::Allow) => allowed = true,
                (false, _) => {}
            }
        }
        Ok(if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/pets/7";

    fn decide(doc: Value) -> Result<Decision, PolicyError> {
        PolicyDocument::from_value(doc)?.evaluate("execute-api:Invoke", ARN)
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c", "abbbc"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "abbc"));
        assert!(wildcard("arn:*:pets/*", "arn:x:pets/1/2"));
        assert!(!wildcard("arn:*:pets/*", "arn:x:cats/1"));
        assert!(wildcard("**a", "bba"));
        // No exponential blow-up on adversarial patterns.
        assert!(!wildcard(&"*a".repeat(50), &"a".repeat(40)));
    }

    #[test]
    fn deny_wins_allow_grants_silence_denies() {
        let allow = json!({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ARN});
        let deny = json!({"Effect": "Deny", "Action": "execute-api:*", "Resource": ["arn:aws:execute-api:*"]});
        assert_eq!(
            decide(json!({"Statement": allow.clone()})),
            Ok(Decision::Allow)
        );
        assert_eq!(
            decide(json!({"Version": "2012-10-17", "Statement": [allow, deny]})),
            Ok(Decision::ExplicitDeny)
        );
        assert_eq!(
            decide(json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})),
            Ok(Decision::ImplicitDeny)
        );
        // Actions are case-insensitive, resources are not.
        assert_eq!(
            decide(
                json!({"Statement": {"Effect": "Allow", "Action": "EXECUTE-API:invoke", "Resource": ARN.to_uppercase()}})
            ),
            Ok(Decision::ImplicitDeny)
        );
        // NotAction / NotResource.
        assert_eq!(
            decide(
                json!({"Statement": {"Effect": "Allow", "NotAction": "s3:*", "NotResource": "arn:aws:s3:::*"}})
            ),
            Ok(Decision::Allow)
        );
    }

    #[test]
    fn what_cannot_be_evaluated_fails_closed() {
        assert_eq!(
            decide(
                json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}})
            ),
            Err(PolicyError::UnsupportedCondition)
        );
        for bad in [
            json!({"Statement": {"Effect": "Allow", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Allow", "Action": "*", "NotAction": "x", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Maybe", "Action": "*", "Resource": "*"}}),
            json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Bogus": 1}}),
            json!({"Statements": []}),
        ] {
            assert!(
                matches!(decide(bad.clone()), Err(PolicyError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
