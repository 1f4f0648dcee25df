//! Unit tests of the invoke service: payload checks, log tails, and admission, pooling and
//! provisioned concurrency on the scripted launcher.

use super::*;

#[test]
fn tail_is_at_most_4k_and_char_aligned() {
    let s = "é".repeat(3000);
    let t = tail_of(&s);
    assert!(t.len() <= TAIL_BYTES);
    assert!(s.ends_with(t));
    assert_eq!(tail_of("short"), "short");
}

#[test]
fn payload_checks() {
    assert!(matches!(
        InvokeService::check_payload(&Bytes::from_static(b"{nope"), MAX_SYNC_PAYLOAD),
        Err(CoreError::InvalidRequestContent(_))
    ));
    let big = Bytes::from(vec![b' '; MAX_ASYNC_PAYLOAD + 1]);
    assert!(matches!(
        InvokeService::check_payload(&big, MAX_ASYNC_PAYLOAD),
        Err(CoreError::RequestTooLarge(m)) if m == "Request must be smaller than 1048576 bytes for the InvokeFunction operation"
    ));
    assert_eq!(
        InvokeService::check_payload(&Bytes::new(), MAX_SYNC_PAYLOAD)
            .ok()
            .as_deref(),
        Some(&b"{}"[..])
    );
}

use std::time::Duration;

use nimbus_exec::scripted::{ScriptedLauncher, Step};

use crate::testing::Platform;

fn slow_echo(event: &[u8]) -> Step {
    Step::After(
        Duration::from_millis(300),
        Box::new(Step::Respond(event.to_vec())),
    )
}

#[tokio::test]
async fn warm_environments_are_reused_and_reserved_concurrency_throttles() {
    let p = Platform::new(
        ScriptedLauncher::new(|e: &[u8]| Step::Respond(e.to_vec())),
        |_| {},
    );
    p.function("echo").await;
    for n in 0..3 {
        let r = p
            .call("echo", &format!("{{\"n\":{n}}}"))
            .await
            .expect("invoke");
        assert_eq!(&r.payload[..], format!("{{\"n\":{n}}}").as_bytes());
        assert!(!r.function_error);
    }
    assert_eq!(
        p.launcher.launches(),
        1,
        "sequential calls share one warm environment"
    );

    let p = Platform::new(ScriptedLauncher::new(slow_echo), |_| {});
    p.function("slow").await;
    let target = crate::names::parse_function_ref("slow").expect("name");
    p.functions
        .set_reserved_concurrency(&target, Some(1))
        .await
        .expect("reserve");
    let (a, b) = tokio::join!(p.call("slow", "1"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.call("slow", "2").await
    });
    assert!(a.is_ok(), "{a:?}");
    match b {
        Err(CoreError::TooManyRequests { reason, .. }) => {
            assert_eq!(reason, "ReservedFunctionConcurrentInvocationLimitExceeded")
        }
        other => panic!("the second call should be throttled: {other:?}"),
    }
    assert_eq!(p.launcher.launches(), 1, "a throttled call starts nothing");
    // Reserved concurrency 0 refuses every call.
    p.functions
        .set_reserved_concurrency(&target, Some(0))
        .await
        .expect("reserve 0");
    assert!(matches!(
        p.call("slow", "3").await,
        Err(CoreError::TooManyRequests { .. })
    ));
}

#[tokio::test]
async fn the_account_limit_throttles_across_functions() {
    let p = Platform::new(ScriptedLauncher::new(slow_echo), |s| {
        s.account_concurrency = 2
    });
    p.function("a").await;
    p.function("b").await;
    let (x, y, z) = tokio::join!(p.call("a", "1"), p.call("b", "2"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        p.call("a", "3").await
    });
    assert!(x.is_ok() && y.is_ok(), "{x:?} {y:?}");
    match z {
        Err(CoreError::TooManyRequests { reason, .. }) => {
            assert_eq!(reason, "ConcurrentInvocationLimitExceeded")
        }
        other => panic!("the third call should be throttled: {other:?}"),
    }
}

#[tokio::test]
async fn provisioned_environments_serve_without_a_cold_start() {
    let p = Platform::new(
        ScriptedLauncher::new(|e: &[u8]| Step::Respond(e.to_vec())),
        |_| {},
    );
    p.function("pc").await;
    let target = crate::names::parse_function_ref("pc").expect("name");
    p.functions
        .publish_version(&target, None, None, None)
        .await
        .expect("publish");
    let v1 = crate::names::parse_function_ref("pc:1").expect("name");
    p.invoke.put_provisioned(&v1, 2).await.expect("provision");
    for _ in 0..500 {
        if p.invoke.get_provisioned(&v1).expect("status").allocated == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        p.invoke.get_provisioned(&v1).expect("status").status(),
        "READY"
    );
    assert_eq!(
        p.launcher.launches(),
        2,
        "two environments provisioned ahead of demand"
    );
    let r = p.call("pc:1", "{}").await.expect("invoke v1");
    assert_eq!(r.executed_version, "1");
    assert_eq!(
        p.launcher.launches(),
        2,
        "the version is served by a provisioned environment"
    );
    p.call("pc", "{}").await.expect("invoke $LATEST");
    assert_eq!(
        p.launcher.launches(),
        3,
        "$LATEST has no provisioned environment"
    );
}
