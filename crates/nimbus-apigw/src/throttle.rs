//! Gateway request throttling: one token bucket per throttled target (an HTTP API stage, a REST
//! API stage's method), holding `burst` tokens refilled at `rate` per second, as API Gateway's
//! stage and method throttling does. A request that finds the bucket empty is answered 429.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

/// Takes a token from the bucket named `key` (rate per second, burst defaulting to the rate
/// rounded up); `false` when none is left. A change of rate or burst starts a fresh bucket.
pub fn admit(key: &str, rate: f64, burst: Option<u32>) -> bool {
    // Buckets are keyed by target and limits so that a changed limit starts full; idle buckets
    // are dropped once they are full again, so the map only holds recently busy targets.
    static BUCKETS: OnceLock<Mutex<HashMap<String, (f64, Instant)>>> = OnceLock::new();
    let burst = f64::from(burst.unwrap_or(rate.ceil() as u32));
    let mut buckets = BUCKETS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if buckets.len() > 10_000 {
        buckets.retain(|_, (tokens, at)| {
            *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
        });
    }
    let bucket = buckets
        .entry(format!("{key}|{rate}|{burst}"))
        .or_insert((burst, now));
    bucket.0 = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * rate).min(burst);
    bucket.1 = now;
    if bucket.0 >= 1.0 {
        bucket.0 -= 1.0;
        true
    } else {
        false
    }
}

/// API Gateway's answer to a throttled request.
pub fn too_many_requests() -> Response {
    crate::apigwv2::reply(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"message": "Too Many Requests"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal() {
        let key = "test-burst";
        assert!((0..5).all(|_| admit(key, 0.001, Some(5))));
        assert!(!admit(key, 0.001, Some(5)));
        // Other limits are another bucket.
        assert!(admit(key, 0.001, Some(6)));
        // Burst 0 admits nothing.
        assert!(!admit("test-zero", 100.0, Some(0)));
    }
}
