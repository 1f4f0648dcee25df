//! A `provided.al2023` function written with `lambda_runtime`: echoes the event and the
//! invocation context, fails on `{"fail": true}`, and counts invocations (warm reuse).

use std::sync::atomic::{AtomicU64, Ordering};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

static COUNT: AtomicU64 = AtomicU64::new(0);

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if payload.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err("the Rust function was asked to fail".into());
    }
    Ok(json!({
        "event": payload,
        "count": n,
        "request_id": ctx.request_id,
        "deadline": ctx.deadline,
        "invoked_function_arn": ctx.invoked_function_arn,
        "function_name": ctx.env_config.function_name,
        "memory": ctx.env_config.memory,
        "version": ctx.env_config.version,
        "log_stream": ctx.env_config.log_stream,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
