//! Functions' resource-based policies: AddPermission, GetPolicy and RemovePermission, with the
//! policy statements AWS writes for each permission (principal forms, `SourceArn` /
//! `SourceAccount` / `PrincipalOrgID` / `FunctionUrlAuthType` / `EventSourceToken` conditions),
//! one policy per function and qualifier (kind `function-policy`, keyed `<function>:<qualifier>`).
//!
//! Nimbus records and serves these policies as Lambda does, so deployment tools (SAM,
//! Terraform, the serverless framework, `aws lambda add-permission`) work unchanged; it does not
//! evaluate them, as it does not authenticate callers.

use std::sync::Arc;

use nimbus_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::names::FunctionRef;
use crate::records::RecordMap;

const KIND: &str = "function-policy";

/// A function's (or qualifier's) resource-based policy, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The unqualified function name.
    pub function: String,
    /// `$LATEST`, a version number or an alias name.
    pub qualifier: String,
    /// The policy's `Statement` elements, in the order they were added, each with its `Sid`.
    pub statements: Vec<Value>,
    /// `RevisionId`: a UUID, new on every change; AddPermission and RemovePermission may require
    /// it.
    pub revision_id: String,
}

impl Policy {
    /// The policy document as AWS returns it (a JSON string in `Policy`).
    pub fn document(&self) -> String {
        json!({"Version": "2012-10-17", "Id": "default", "Statement": self.statements}).to_string()
    }
}

/// What an AddPermission request carries.
#[derive(Debug, Clone, Default)]
pub struct PermissionInput {
    /// `StatementId` (`Sid`): 1–100 of `[A-Za-z0-9._-]`, unique in the policy; required.
    pub statement_id: Option<String>,
    /// `Action`: `lambda:InvokeFunction`, `lambda:*`, `*`…; required.
    pub action: Option<String>,
    /// `Principal`: a service (`*.amazonaws.com`), an account id, an ARN or `*`; required.
    pub principal: Option<String>,
    /// `SourceArn`: the `AWS:SourceArn` condition (`ArnLike`).
    pub source_arn: Option<String>,
    /// `SourceAccount`: the `AWS:SourceAccount` condition.
    pub source_account: Option<String>,
    /// `EventSourceToken`: the `lambda:EventSourceToken` condition (Alexa skills).
    pub event_source_token: Option<String>,
    /// `PrincipalOrgID`: the `aws:PrincipalOrgID` condition.
    pub principal_org_id: Option<String>,
    /// `FunctionUrlAuthType`: `NONE` or `AWS_IAM`, the `lambda:FunctionUrlAuthType` condition.
    pub function_url_auth_type: Option<String>,
    /// `RevisionId`: when given, the permission is added only if it is the policy's current one.
    pub revision_id: Option<String>,
}

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str> {
    v.as_deref().ok_or_else(|| {
        CoreError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn valid_statement_id(sid: &str) -> bool {
    (1..=100).contains(&sid.len())
        && sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `lambda:*`, `lambda:<Action>` or `*`.
fn valid_action(a: &str) -> bool {
    a == "*"
        || a.strip_prefix("lambda:").is_some_and(|x| {
            x == "*" || (!x.is_empty() && x.chars().all(|c| c.is_ascii_alphabetic()))
        })
}

/// The `Principal` element AWS writes for a principal as given.
fn principal_of(p: &str) -> Value {
    if p == "*" {
        json!("*")
    } else if p.ends_with(".amazonaws.com") || p.ends_with(".amazonaws.com.cn") {
        json!({ "Service": p })
    } else if p.len() == 12 && p.chars().all(|c| c.is_ascii_digit()) {
        json!({ "AWS": format!("arn:aws:iam::{p}:root") })
    } else {
        json!({ "AWS": p })
    }
}

/// The resource-based policies of all functions, keyed `{function}:{qualifier}`: recorded and
/// served, not evaluated.
pub struct Policies {
    functions: Arc<FunctionService>,
    map: RecordMap<Policy>,
}

impl Policies {
    /// Loads the stored policies; `functions` resolves the functions and qualifiers requests name.
    pub fn open(store: Store, functions: Arc<FunctionService>) -> Result<Policies> {
        Ok(Policies {
            functions,
            map: RecordMap::open(store, KIND)?,
        })
    }

    /// The function, the qualifier the policy is kept under, and the resource ARN a statement
    /// names. The qualifier must exist (a published version or an alias).
    fn target(&self, r: &FunctionRef) -> Result<(String, String, String)> {
        let rec = self.functions.resolve(r)?;
        let arn = self.functions.arn(&rec.name);
        Ok(match r.qualifier.as_deref() {
            None | Some("$LATEST") => (rec.name.clone(), "$LATEST".into(), arn),
            Some(q) => (rec.name.clone(), q.to_string(), format!("{arn}:{q}")),
        })
    }

    fn key(function: &str, qualifier: &str) -> String {
        format!("{function}:{qualifier}")
    }

    fn no_policy() -> CoreError {
        CoreError::NotFound("The resource you requested does not exist.".into())
    }

    fn check_revision(p: Option<&Policy>, wanted: Option<&str>) -> Result<()> {
        if let Some(w) = wanted
            && p.map(|p| p.revision_id.as_str()) != Some(w)
        {
            return Err(CoreError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id".into(),
            ));
        }
        Ok(())
    }

    /// AddPermission: returns the statement added.
    pub async fn add(&self, r: &FunctionRef, input: PermissionInput) -> Result<Value> {
        let _edit = self.map.edit().await;
        let sid = required(&input.statement_id, "statementId")?;
        let action = required(&input.action, "action")?;
        let principal = required(&input.principal, "principal")?;
        if !valid_statement_id(sid) {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{sid}' at 'statementId' failed to satisfy constraint: Member must satisfy regular expression pattern: ([a-zA-Z0-9-_.]+)"
            )));
        }
        if !valid_action(action) {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{action}' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])"
            )));
        }
        if let Some(t) = &input.function_url_auth_type
            && t != "NONE"
            && t != "AWS_IAM"
        {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{t}' at 'functionUrlAuthType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]"
            )));
        }
        let (function, qualifier, resource) = self.target(r)?;
        let key = Self::key(&function, &qualifier);
        let current = self.map.get(&key);
        Self::check_revision(current.as_ref(), input.revision_id.as_deref())?;
        let mut policy = current.unwrap_or_else(|| Policy {
            function: function.clone(),
            qualifier: qualifier.clone(),
            statements: Vec::new(),
            revision_id: String::new(),
        });
        if policy.statements.iter().any(|s| s["Sid"] == sid) {
            return Err(CoreError::Conflict(format!(
                "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
            )));
        }
        let mut conditions = serde_json::Map::new();
        let mut condition = |op: &str, key: &str, value: &str| {
            let entry = conditions
                .entry(op.to_string())
                .or_insert_with(|| json!({}));
            entry[key] = json!(value);
        };
        if let Some(a) = &input.source_arn {
            condition("ArnLike", "AWS:SourceArn", a);
        }
        if let Some(a) = &input.source_account {
            condition("StringEquals", "AWS:SourceAccount", a);
        }
        if let Some(o) = &input.principal_org_id {
            condition("StringEquals", "aws:PrincipalOrgID", o);
        }
        if let Some(t) = &input.event_source_token {
            condition("StringEquals", "lambda:EventSourceToken", t);
        }
        if let Some(t) = &input.function_url_auth_type {
            condition("StringEquals", "lambda:FunctionUrlAuthType", t);
        }
        let mut statement = json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": principal_of(principal),
            "Action": action,
            "Resource": resource,
        });
        if !conditions.is_empty() {
            statement["Condition"] = Value::Object(conditions);
        }
        if policy.document().len() + statement.to_string().len() > 20_480 {
            return Err(CoreError::InvalidParameter(
                "The final policy size (over 20480 bytes) is bigger than the limit.".into(),
            ));
        }
        policy.statements.push(statement.clone());
        policy.revision_id = uuid::Uuid::new_v4().to_string();
        self.map.put(key, policy).await?;
        Ok(statement)
    }

    /// GetPolicy.
    pub fn get(&self, r: &FunctionRef) -> Result<Policy> {
        let (function, qualifier, _) = self.target(r)?;
        self.map
            .get(&Self::key(&function, &qualifier))
            .filter(|p| !p.statements.is_empty())
            .ok_or_else(Self::no_policy)
    }

    /// RemovePermission.
    pub async fn remove(
        &self,
        r: &FunctionRef,
        sid: &str,
        revision_id: Option<&str>,
    ) -> Result<()> {
        let _edit = self.map.edit().await;
        let (function, qualifier, _) = self.target(r)?;
        let key = Self::key(&function, &qualifier);
        let mut policy = self.map.get(&key).ok_or_else(Self::no_policy)?;
        Self::check_revision(Some(&policy), revision_id)?;
        let before = policy.statements.len();
        policy.statements.retain(|s| s["Sid"] != sid);
        if policy.statements.len() == before {
            return Err(CoreError::NotFound(format!(
                "Statement {sid} is not found in resource policy."
            )));
        }
        if policy.statements.is_empty() {
            self.map.remove(&key).await
        } else {
            policy.revision_id = uuid::Uuid::new_v4().to_string();
            self.map.put(key, policy).await.map(|_| ())
        }
    }

    /// Drops the policy of a deleted version or alias.
    pub async fn forget_qualifier(&self, function: &str, qualifier: &str) -> Result<()> {
        let key = Self::key(function, qualifier);
        if self.map.contains(&key) {
            self.map.remove(&key).await?;
        }
        Ok(())
    }

    /// Forgets a deleted function's policies.
    pub fn forget(&self, function: &str) {
        self.map.remove_prefix(&format!("{function}:"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_written_as_aws_writes_them() {
        assert_eq!(principal_of("*"), json!("*"));
        assert_eq!(
            principal_of("apigateway.amazonaws.com"),
            json!({"Service": "apigateway.amazonaws.com"})
        );
        assert_eq!(
            principal_of("123456789012"),
            json!({"AWS": "arn:aws:iam::123456789012:root"})
        );
        assert_eq!(
            principal_of("arn:aws:iam::123456789012:role/r"),
            json!({"AWS": "arn:aws:iam::123456789012:role/r"})
        );
    }

    #[test]
    fn actions_and_statement_ids_are_checked() {
        assert!(valid_action("lambda:InvokeFunction"));
        assert!(valid_action("lambda:*"));
        assert!(valid_action("*"));
        assert!(!valid_action("s3:GetObject"));
        assert!(!valid_action("lambda:"));
        assert!(valid_statement_id("apigateway-test_1.0"));
        assert!(!valid_statement_id("has space"));
        assert!(!valid_statement_id(""));
    }
}
