//! Resource-based policy: AddPermission, GetPolicy and RemovePermission under
//! `/2015-03-31/functions/{name}/policy`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::policies::PermissionInput;
use serde::Deserialize;
use serde_json::json;

use super::functions::target;
use super::wire;
use crate::error::LambdaError;

type Q = Query<HashMap<String, String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PermissionIn {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    invoked_via_function_url: Option<bool>,
    revision_id: Option<String>,
}

pub(crate) async fn add(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let r = target(&name, &q)?;
    let i: PermissionIn = wire::parse_body(&body)?;
    let _ = i.invoked_via_function_url;
    let statement = core
        .policies
        .add(
            &r,
            PermissionInput {
                statement_id: i.statement_id,
                action: i.action,
                principal: i.principal,
                source_arn: i.source_arn,
                source_account: i.source_account,
                event_source_token: i.event_source_token,
                principal_org_id: i.principal_org_id,
                function_url_auth_type: i.function_url_auth_type,
                revision_id: i.revision_id,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "Statement": statement.to_string() })),
    )
        .into_response())
}

pub(crate) async fn get(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let r = target(&name, &q)?;
    let p = core.policies.get(&r)?;
    Ok(axum::Json(json!({ "Policy": p.document(), "RevisionId": p.revision_id })).into_response())
}

pub(crate) async fn remove(
    State(core): State<Core>,
    Path((name, sid)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let r = target(&name, &q)?;
    core.policies
        .remove(&r, &sid, q.get("RevisionId").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
