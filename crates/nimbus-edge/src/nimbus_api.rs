//! Nimbus's own endpoints under `/_nimbus/`: health, code download (the target of
//! `GetFunction`'s `Code.Location`), usage and cost, and a status report for `nimbus doctor`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nimbus_core::Core;
use nimbus_core::pricing::PriceSheet;
use serde_json::json;

/// The `/_nimbus/` routes: `health`, `code/{name}/{sha256}.zip`, `cost` and `status`.
pub fn routes() -> Router<Core> {
    Router::new()
        .route("/_nimbus/health", get(health))
        .route("/_nimbus/code/{name}/{file}", get(code))
        .route("/_nimbus/cost", get(cost))
        .route("/_nimbus/status", get(status))
}

async fn health() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

async fn code(State(core): State<Core>, Path((name, file)): Path<(String, String)>) -> Response {
    let hex = file.trim_end_matches(".zip");
    if core.functions.get(&name).is_none() {
        return (StatusCode::NOT_FOUND, "no such function").into_response();
    }
    if !core.functions.holds_code(&name, hex) {
        return (StatusCode::NOT_FOUND, "no such code version").into_response();
    }
    match core.functions.code_bytes(hex) {
        Ok(bytes) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/zip")],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn cost(State(core): State<Core>) -> Response {
    let prices: &PriceSheet = &core.settings.prices;
    let usage = match core.store.usage_summary() {
        Ok(u) => u,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut total_requests = 0;
    let mut total_gbs = 0.0;
    let mut total_billed = 0;
    let functions: Vec<_> = usage
        .iter()
        .map(|u| {
            total_requests += u.requests;
            total_gbs += u.gb_seconds;
            total_billed += u.billed_ms;
            let c = prices.price(u.requests, u.gb_seconds);
            json!({
                "function": u.function,
                "requests": u.requests,
                "billedMs": u.billed_ms,
                "gbSeconds": u.gb_seconds,
                "requestCost": c.request_cost,
                "durationCost": c.duration_cost,
                "cost": c.total,
            })
        })
        .collect();
    let before = prices.price(total_requests, total_gbs);
    let after = prices.price_with_free_tier(total_requests, total_gbs);
    axum::Json(json!({
        "functions": functions,
        "total": {
            "requests": total_requests,
            "billedMs": total_billed,
            "gbSeconds": total_gbs,
            "costBeforeFreeTier": before.total,
            "costAfterFreeTier": after.total,
            "requestCostAfterFreeTier": after.request_cost,
            "durationCostAfterFreeTier": after.duration_cost,
        },
        "prices": prices,
    }))
    .into_response()
}

async fn status(State(core): State<Core>) -> Response {
    let (envs, inflight) = core.invoke.usage();
    let runtimes: Vec<_> = core
        .functions
        .catalog()
        .report()
        .into_iter()
        .map(|(id, r)| match r {
            Ok(p) => json!({ "runtime": id, "available": true, "detail": p }),
            Err(why) => json!({ "runtime": id, "available": false, "detail": why }),
        })
        .collect();
    axum::Json(json!({
        "launcher": core.invoke.launcher_name(),
        "isolation": core.invoke.isolation(),
        "environments": envs,
        "inflight": inflight,
        "pendingEvents": core.invoke.pending_events(),
        "accountConcurrency": core.settings.account_concurrency,
        "dataDir": core.settings.data_dir.display().to_string(),
        "runtimes": runtimes,
    }))
    .into_response()
}
