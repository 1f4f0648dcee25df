//! Gateway request throttling: one token bucket per throttled target (an HTTP API stage, a REST
//! API stage's method), holding `burst` tokens refilled at `rate` per second, as API Gateway's
//! stage and method throttling does. A request that finds the bucket empty is answered 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use nimbus_core::clock::Clock;
use serde_json::json;

/// The gateway's token buckets, on the platform's clock.
pub struct Throttle {
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets held before idle (full again) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl Throttle {
    /// Empty buckets on `clock` (a manual clock in tests).
    pub fn new(clock: Arc<dyn Clock>) -> Throttle {
        Throttle {
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from the bucket named `key` (rate per second, burst defaulting to the
    /// rate rounded up); `false` when none is left. A change of rate or burst starts a fresh
    /// bucket.
    pub fn admit(&self, key: &str, rate: f64, burst: Option<u32>) -> bool {
        // Buckets are keyed by target and limits so that a changed limit starts full; idle
        // buckets are dropped once they are full again, so the map only holds recently busy
        // targets.
        let burst = f64::from(burst.unwrap_or(rate.ceil() as u32));
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_BUCKETS {
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
    use std::time::Duration;

    use nimbus_core::clock::ManualClock;

    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let clock = Arc::new(ManualClock::new(0));
        let t = Throttle::new(clock.clone());
        let key = "test-burst";
        assert!((0..5).all(|_| t.admit(key, 2.0, Some(5))));
        assert!(!t.admit(key, 2.0, Some(5)));
        // Other limits are another bucket.
        assert!(t.admit(key, 2.0, Some(6)));
        // Half a second at 2/s refills one token, and only one.
        clock.advance(Duration::from_millis(500));
        assert!(t.admit(key, 2.0, Some(5)));
        assert!(!t.admit(key, 2.0, Some(5)));
        // A long idle refills up to the burst, never beyond.
        clock.advance(Duration::from_secs(3600));
        assert!((0..5).all(|_| t.admit(key, 2.0, Some(5))));
        assert!(!t.admit(key, 2.0, Some(5)));
        // Burst 0 admits nothing.
        assert!(!t.admit("test-zero", 100.0, Some(0)));
    }
}
