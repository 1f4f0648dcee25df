//! API Gateway API keys and usage plans over REST-JSON: `/apikeys` and `/usageplans` (with their
//! `/keys`), as the `apigateway` client sends them.

use crate::Gateway;
use crate::api_keys::{ApiKey, Quota, Throttle, UsagePlan};
use crate::http_apis::ApiError;
use crate::members::{input, rest};
use crate::rest_apis::PatchOp;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::apigwv2::{GwError, R, reply, s, strings};

fn render_key(k: &ApiKey, include_value: bool) -> Value {
    let mut v = json!({
        "id": k.id,
        "name": k.name,
        "enabled": k.enabled,
        "createdDate": k.created,
        "lastUpdatedDate": k.updated,
        "stageKeys": [],
        "tags": k.tags,
    });
    if include_value {
        v["value"] = json!(k.value);
    }
    if let Some(d) = &k.description {
        v["description"] = json!(d);
    }
    if let Some(c) = &k.customer_id {
        v["customerId"] = json!(c);
    }
    v
}

fn render_throttle(t: &Throttle) -> Value {
    let mut v = json!({});
    if let Some(r) = t.rate_limit {
        v["rateLimit"] = json!(r);
    }
    if let Some(b) = t.burst_limit {
        v["burstLimit"] = json!(b);
    }
    v
}

fn render_plan(p: &UsagePlan) -> Value {
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "apiStages": p.api_stages.iter().map(|(a, s)| json!({"apiId": a, "stage": s})).collect::<Vec<_>>(),
        "tags": p.tags,
    });
    if let Some(d) = &p.description {
        v["description"] = json!(d);
    }
    if let Some(t) = &p.throttle {
        v["throttle"] = render_throttle(t);
    }
    if let Some(q) = &p.quota {
        v["quota"] = json!({"limit": q.limit, "offset": q.offset, "period": q.period});
    }
    v
}

fn flag(q: &std::collections::BTreeMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true")
}

type Q = Query<std::collections::BTreeMap<String, String>>;

async fn create_key(State(gw): State<Gateway>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_API_KEY)?;
    let k = gw
        .api_keys
        .create_key(
            s(&v, "name"),
            s(&v, "description"),
            v.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            s(&v, "value"),
            s(&v, "customerId"),
            strings(&v, "tags"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_key(&k, true)))
}

async fn get_keys(State(gw): State<Gateway>, Query(q): Q) -> R {
    let include = flag(&q, "includeValues");
    let name = q.get("name").cloned();
    let items: Vec<Value> = gw
        .api_keys
        .list_keys()
        .iter()
        .filter(|k| name.as_ref().is_none_or(|n| k.name.starts_with(n.as_str())))
        .map(|k| render_key(k, include))
        .collect();
    Ok(reply(StatusCode::OK, json!({ "item": items })))
}

async fn get_key(State(gw): State<Gateway>, Path(id): Path<String>, Query(q): Q) -> R {
    let k = gw.api_keys.key(&id)?;
    Ok(reply(
        StatusCode::OK,
        render_key(&k, flag(&q, "includeValue")),
    ))
}

async fn update_key(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::UPDATE_API_KEY)?;
    let ops: Vec<PatchOp> = serde_json::from_value(
        v.get("patchOperations").cloned().unwrap_or(json!([])),
    )
    .map_err(|e| {
        GwError(ApiError::BadRequest(format!(
            "Invalid patchOperations: {e}"
        )))
    })?;
    let k = gw.api_keys.update_key(&id, &ops).await?;
    Ok(reply(StatusCode::OK, render_key(&k, false)))
}

async fn delete_key(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    gw.api_keys.delete_key(&id).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn create_plan(State(gw): State<Gateway>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_USAGE_PLAN)?;
    let stages = v
        .get("apiStages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|st| Some((s(st, "apiId")?, s(st, "stage")?)))
                .collect()
        })
        .unwrap_or_default();
    let throttle = v
        .get("throttle")
        .filter(|t| t.is_object())
        .map(|t| Throttle {
            rate_limit: t.get("rateLimit").and_then(Value::as_f64),
            burst_limit: t
                .get("burstLimit")
                .and_then(Value::as_u64)
                .map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
        });
    let quota = v.get("quota").filter(|q| q.is_object()).map(|q| Quota {
        limit: q.get("limit").and_then(Value::as_u64).unwrap_or(0),
        offset: q.get("offset").and_then(Value::as_u64).unwrap_or(0),
        period: s(q, "period").unwrap_or_default(),
    });
    let p = gw
        .api_keys
        .create_plan(
            s(&v, "name"),
            s(&v, "description"),
            stages,
            throttle,
            quota,
            strings(&v, "tags"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_plan(&p)))
}

async fn get_plans(State(gw): State<Gateway>, Query(q): Q) -> R {
    let key = q.get("keyId").cloned();
    let items: Vec<Value> = gw
        .api_keys
        .list_plans()
        .iter()
        .filter(|p| key.as_ref().is_none_or(|k| p.keys.contains(k)))
        .map(render_plan)
        .collect();
    Ok(reply(StatusCode::OK, json!({ "item": items })))
}

async fn get_plan(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    Ok(reply(StatusCode::OK, render_plan(&gw.api_keys.plan(&id)?)))
}

async fn delete_plan(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    gw.api_keys.delete_plan(&id).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn render_plan_key(k: &ApiKey) -> Value {
    json!({"id": k.id, "type": "API_KEY", "value": k.value, "name": k.name})
}

async fn add_plan_key(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_USAGE_PLAN_KEY)?;
    let key =
        s(&v, "keyId").ok_or_else(|| GwError(ApiError::BadRequest("keyId is required".into())))?;
    let k = gw
        .api_keys
        .add_plan_key(&id, &key, &s(&v, "keyType").unwrap_or_default())
        .await?;
    Ok(reply(StatusCode::CREATED, render_plan_key(&k)))
}

async fn get_plan_keys(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let p = gw.api_keys.plan(&id)?;
    let items: Vec<Value> = p
        .keys
        .iter()
        .filter_map(|k| gw.api_keys.key(k).ok())
        .map(|k| render_plan_key(&k))
        .collect();
    Ok(reply(StatusCode::OK, json!({ "item": items })))
}

async fn remove_plan_key(State(gw): State<Gateway>, Path((id, key)): Path<(String, String)>) -> R {
    gw.api_keys.remove_plan_key(&id, &key).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The control-plane routes for `/apikeys` and `/usageplans` (with `/usageplans/{id}/keys`).
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/apikeys", post(create_key).get(get_keys))
        .route(
            "/apikeys/{id}",
            get(get_key).patch(update_key).delete(delete_key),
        )
        .route("/usageplans", post(create_plan).get(get_plans))
        .route("/usageplans/{id}", get(get_plan).delete(delete_plan))
        .route(
            "/usageplans/{id}/keys",
            post(add_plan_key).get(get_plan_keys),
        )
        .route(
            "/usageplans/{id}/keys/{key}",
            axum::routing::delete(remove_plan_key),
        )
}
