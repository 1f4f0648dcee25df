//! Versions and aliases: publishing, immutability, qualifiers everywhere, weighted alias routing.

use crate::common::*;
use serde_json::{Value, json};

async fn send(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let url = s.u(path);
    let req = match method {
        "POST" => s.http.post(url),
        "PUT" => s.http.put(url),
        "DELETE" => s.http.delete(url),
        _ => s.http.get(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.expect("request");
    let st = r.status().as_u16();
    let t = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (st, r.json().await.unwrap_or(Value::Null), t)
}

async fn configure(s: &Server, name: &str, var: &str) {
    let (st, v, _) = send(
        s,
        "PUT",
        &format!("/2015-03-31/functions/{name}/configuration"),
        Some(json!({"Environment": {"Variables": {"MY_VAR": var}}})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // Wait for the update to settle.
    for _ in 0..100 {
        let (_, c, _) = s
            .get(&format!("/2015-03-31/functions/{name}/configuration"))
            .await;
        if c["LastUpdateStatus"] == "Successful" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn versions_are_immutable_snapshots() {
    let s = Server::start();
    provided_fn(
        &s,
        "ver",
        json!({"Environment": {"Variables": {"MY_VAR": "one"}}}),
    )
    .await;
    let (st, v1, _) = send(
        &s,
        "POST",
        "/2015-03-31/functions/ver/versions",
        Some(json!({"Description": "first"})),
    )
    .await;
    assert_eq!(st, 201, "{v1}");
    assert_eq!(v1["Version"], "1");
    assert_eq!(
        v1["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:ver:1"
    );
    assert_eq!(v1["Description"], "first");
    // Nothing changed: the same version comes back.
    let (st, again, _) = send(&s, "POST", "/2015-03-31/functions/ver/versions", None).await;
    assert_eq!((st, again["Version"].as_str()), (201, Some("1")));

    configure(&s, "ver", "two").await;
    let (_, latest, _) = s.get("/2015-03-31/functions/ver/configuration").await;
    // Preconditions.
    let (st, _, t) = send(
        &s,
        "POST",
        "/2015-03-31/functions/ver/versions",
        Some(json!({"CodeSha256": "bogus"})),
    )
    .await;
    assert_eq!(
        (st, t.as_deref()),
        (400, Some("InvalidParameterValueException"))
    );
    let (st, _, t) = send(
        &s,
        "POST",
        "/2015-03-31/functions/ver/versions",
        Some(json!({"RevisionId": "stale"})),
    )
    .await;
    assert_eq!(
        (st, t.as_deref()),
        (412, Some("PreconditionFailedException"))
    );
    let (st, v2, _) = send(
        &s,
        "POST",
        "/2015-03-31/functions/ver/versions",
        Some(json!({"CodeSha256": latest["CodeSha256"], "RevisionId": latest["RevisionId"]})),
    )
    .await;
    assert_eq!((st, v2["Version"].as_str()), (201, Some("2")), "{v2}");

    let (_, list, _) = s.get("/2015-03-31/functions/ver/versions").await;
    let versions: Vec<&str> = list["Versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["Version"].as_str())
        .collect();
    assert_eq!(versions, vec!["$LATEST", "1", "2"]);
    let (_, page, _) = s.get("/2015-03-31/functions/ver/versions?MaxItems=2").await;
    assert_eq!(page["Versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["NextMarker"], "1");

    // Each version runs its own configuration, in its own environments.
    let one = s.invoke_raw("ver:1", b"{}", &[]).await;
    assert_eq!(one.header("x-amz-executed-version").as_deref(), Some("1"));
    let one = one.json();
    assert_eq!(one["env"]["MY_VAR"], "one");
    assert_eq!(one["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "1");
    assert!(
        one["env_id"].as_str().is_some_and(|id| id.contains("/[1]")),
        "{one}"
    );
    assert_eq!(
        one["headers"]["Lambda-Runtime-Invoked-Function-Arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:ver:1"
    );
    let two = s
        .invoke_raw(
            "ver",
            b"{}",
            &[("X-Amz-Invocation-Type", "RequestResponse")],
        )
        .await;
    assert_eq!(
        two.header("x-amz-executed-version").as_deref(),
        Some("$LATEST")
    );
    assert_eq!(two.json()["env"]["MY_VAR"], "two");
    let (_, c, _) = s
        .get("/2015-03-31/functions/ver/configuration?Qualifier=1")
        .await;
    assert_eq!(
        (
            c["Version"].as_str(),
            c["Environment"]["Variables"]["MY_VAR"].as_str()
        ),
        (Some("1"), Some("one"))
    );
    let (_, f, _) = s.get("/2015-03-31/functions/ver:2").await;
    assert_eq!(f["Configuration"]["Version"], "2");

    // Qualifiers are refused where AWS refuses them.
    let (st, _, _) = send(
        &s,
        "PUT",
        "/2015-03-31/functions/ver:1/configuration",
        Some(json!({"Timeout": 5})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _, t) = send(
        &s,
        "DELETE",
        "/2015-03-31/functions/ver?Qualifier=$LATEST",
        None,
    )
    .await;
    assert_eq!(
        (st, t.as_deref()),
        (400, Some("InvalidParameterValueException"))
    );
    let (st, _, _) = s.get("/2015-03-31/functions/ver:9/configuration").await;
    assert_eq!(st, 404);

    // Deleting a version.
    let (st, _, _) = send(&s, "DELETE", "/2015-03-31/functions/ver?Qualifier=2", None).await;
    assert_eq!(st, 204);
    assert_eq!(s.invoke("ver:2", json!({})).await.status, 404);
    // Numbers are never reused.
    configure(&s, "ver", "three").await;
    let (_, v3, _) = send(&s, "POST", "/2015-03-31/functions/ver/versions", None).await;
    assert_eq!(v3["Version"], "3");
}

#[tokio::test]
async fn aliases_route_by_weight() {
    let s = Server::start();
    provided_fn(
        &s,
        "canary",
        json!({"Environment": {"Variables": {"MY_VAR": "blue"}}}),
    )
    .await;
    send(&s, "POST", "/2015-03-31/functions/canary/versions", None).await;
    configure(&s, "canary", "green").await;
    send(&s, "POST", "/2015-03-31/functions/canary/versions", None).await;

    let (st, a, _) = send(
        &s,
        "POST",
        "/2015-03-31/functions/canary/aliases",
        Some(
            json!({"Name": "live", "FunctionVersion": "1", "Description": "prod",
                    "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.3}}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{a}");
    assert_eq!(
        a["AliasArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:canary:live"
    );
    assert_eq!(a["FunctionVersion"], "1");
    assert_eq!(a["RoutingConfig"]["AdditionalVersionWeights"]["2"], 0.3);
    assert!(a["RevisionId"].is_string());
    let (_, got, _) = s.get("/2015-03-31/functions/canary/aliases/live").await;
    assert_eq!(got, a);

    // 300 invocations: about 30 % run version 2.
    let n = 300;
    let mut on_two = 0;
    for _ in 0..n {
        let r = s.invoke("canary:live", json!({})).await;
        assert_eq!(r.status, 200);
        let v = r.header("x-amz-executed-version");
        let out = r.json();
        match v.as_deref() {
            Some("2") => {
                on_two += 1;
                assert_eq!(out["env"]["MY_VAR"], "green");
            }
            Some("1") => assert_eq!(out["env"]["MY_VAR"], "blue"),
            other => panic!("unexpected executed version {other:?}"),
        }
        assert_eq!(
            out["headers"]["Lambda-Runtime-Invoked-Function-Arn"],
            "arn:aws:lambda:us-east-1:000000000000:function:canary:live"
        );
    }
    let share = f64::from(on_two) / f64::from(n);
    // ±4.5 standard deviations of a binomial(300, 0.3): fails by chance far less than once in 10^5.
    assert!(
        (0.18..=0.42).contains(&share),
        "{on_two} of {n} on version 2"
    );

    // Errors.
    for (body, want) in [
        (
            json!({"Name": "live", "FunctionVersion": "1"}),
            (409, "ResourceConflictException"),
        ),
        (
            json!({"Name": "123", "FunctionVersion": "1"}),
            (400, "ValidationException"),
        ),
        (
            json!({"Name": "x", "FunctionVersion": "9"}),
            (404, "ResourceNotFoundException"),
        ),
        (
            json!({"Name": "y", "FunctionVersion": "$LATEST", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}}),
            (400, "InvalidParameterValueException"),
        ),
        (
            json!({"Name": "z", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 1.5}}}),
            (400, "ValidationException"),
        ),
    ] {
        let (st, v, t) = send(
            &s,
            "POST",
            "/2015-03-31/functions/canary/aliases",
            Some(body.clone()),
        )
        .await;
        assert_eq!((st, t.as_deref()), (want.0, Some(want.1)), "{body} → {v}");
    }
    // A version an alias uses cannot be deleted.
    let (st, v, t) = send(
        &s,
        "DELETE",
        "/2015-03-31/functions/canary?Qualifier=2",
        None,
    )
    .await;
    assert_eq!(
        (st, t.as_deref()),
        (409, Some("ResourceConflictException")),
        "{v}"
    );

    // Update: all traffic to 2; a stale RevisionId is refused.
    let (st, _, _) = send(
        &s,
        "PUT",
        "/2015-03-31/functions/canary/aliases/live",
        Some(json!({"FunctionVersion": "2", "RevisionId": "stale"})),
    )
    .await;
    assert_eq!(st, 412);
    let (st, u, _) = send(
        &s,
        "PUT",
        "/2015-03-31/functions/canary/aliases/live",
        Some(json!({"FunctionVersion": "2", "RoutingConfig": {"AdditionalVersionWeights": {}}})),
    )
    .await;
    assert_eq!(st, 200, "{u}");
    assert!(u.get("RoutingConfig").is_none());
    for _ in 0..5 {
        let r = s.invoke("canary:live", json!({})).await;
        assert_eq!(r.header("x-amz-executed-version").as_deref(), Some("2"));
    }
    let (_, list, _) = s
        .get("/2015-03-31/functions/canary/aliases?FunctionVersion=2")
        .await;
    assert_eq!(list["Aliases"].as_array().map(Vec::len), Some(1));
    let (_, list, _) = s
        .get("/2015-03-31/functions/canary/aliases?FunctionVersion=1")
        .await;
    assert_eq!(list["Aliases"].as_array().map(Vec::len), Some(0));

    let (st, _, _) = send(
        &s,
        "DELETE",
        "/2015-03-31/functions/canary/aliases/live",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _, t) = send(&s, "GET", "/2015-03-31/functions/canary/aliases/live", None).await;
    assert_eq!((st, t.as_deref()), (404, Some("ResourceNotFoundException")));
    assert_eq!(s.invoke("canary:live", json!({})).await.status, 404);
}

#[tokio::test]
async fn versions_and_aliases_survive_a_restart_and_go_with_the_function() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    provided_fn(&s, "keep", json!({})).await;
    send(&s, "POST", "/2015-03-31/functions/keep/versions", None).await;
    send(
        &s,
        "POST",
        "/2015-03-31/functions/keep/aliases",
        Some(json!({"Name": "prod", "FunctionVersion": "1"})),
    )
    .await;
    s.stop();
    let s = Server::start_in(tmp.path(), None);
    let r = s.invoke("keep:prod", json!({})).await;
    assert_eq!(r.header("x-amz-executed-version").as_deref(), Some("1"));
    let (st, _, _) = send(&s, "DELETE", "/2015-03-31/functions/keep", None).await;
    assert_eq!(st, 204);
    provided_fn(&s, "keep", json!({})).await;
    let (_, list, _) = s.get("/2015-03-31/functions/keep/versions").await;
    assert_eq!(
        list["Versions"].as_array().map(Vec::len),
        Some(1),
        "a recreated function starts without versions"
    );
    let (st, _, _) = s.get("/2015-03-31/functions/keep/aliases/prod").await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn provisioned_concurrency_keeps_environments_initialised() {
    let s = Server::start_with_config("[server]\nidle_timeout_secs = 1\n");
    provided_fn(&s, "pc", json!({})).await;
    send(&s, "POST", "/2015-03-31/functions/pc/versions", None).await;
    send(
        &s,
        "POST",
        "/2015-03-31/functions/pc/aliases",
        Some(json!({"Name": "live", "FunctionVersion": "1"})),
    )
    .await;
    let path = "/2019-09-30/functions/pc/provisioned-concurrency";

    let (st, _, t) = send(
        &s,
        "PUT",
        &format!("{path}?Qualifier=$LATEST"),
        Some(json!({"ProvisionedConcurrentExecutions": 1})),
    )
    .await;
    assert_eq!(
        (st, t.as_deref()),
        (400, Some("InvalidParameterValueException"))
    );
    let (st, _, t) = send(
        &s,
        "PUT",
        path,
        Some(json!({"ProvisionedConcurrentExecutions": 1})),
    )
    .await;
    assert_eq!((st, t.as_deref()), (400, Some("ValidationException")));
    let (st, _, t) = send(
        &s,
        "PUT",
        &format!("{path}?Qualifier=live"),
        Some(json!({"ProvisionedConcurrentExecutions": 0})),
    )
    .await;
    assert_eq!((st, t.as_deref()), (400, Some("ValidationException")));
    let (st, _, t) = send(&s, "GET", &format!("{path}?Qualifier=live"), None).await;
    assert_eq!(
        (st, t.as_deref()),
        (404, Some("ProvisionedConcurrencyConfigNotFoundException"))
    );

    let (st, v, _) = send(
        &s,
        "PUT",
        &format!("{path}?Qualifier=live"),
        Some(json!({"ProvisionedConcurrentExecutions": 2})),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["RequestedProvisionedConcurrentExecutions"], 2);
    let mut ready = Value::Null;
    for _ in 0..200 {
        let (_, v, _) = s.get(&format!("{path}?Qualifier=live")).await;
        if v["Status"] == "READY" {
            ready = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        ready["AllocatedProvisionedConcurrentExecutions"], 2,
        "{ready}"
    );
    assert_eq!(ready["AvailableProvisionedConcurrentExecutions"], 2);
    let (_, st, _) = s.get("/_nimbus/status").await;
    assert_eq!(st["environments"], 2, "initialised before any invocation");

    // Idle for longer than the idle timeout: still there, and used first.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let out = s.invoke("pc:live", json!({})).await.json();
    assert_eq!(
        out["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "provisioned-concurrency"
    );
    let out = s.invoke("pc", json!({})).await.json();
    assert_eq!(out["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");

    let (_, list, _) = s.get(&format!("{path}?List=ALL")).await;
    let items = list["ProvisionedConcurrencyConfigs"]
        .as_array()
        .expect("list");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:pc:live"
    );

    let (st, _, _) = send(&s, "DELETE", &format!("{path}?Qualifier=live"), None).await;
    assert_eq!(st, 204);
    let (st, _, _) = s.get(&format!("{path}?Qualifier=live")).await;
    assert_eq!(st, 404);
    // The provisioned environments are released (the on-demand one is reaped when idle).
    let mut left = Value::Null;
    for _ in 0..100 {
        let (_, st, _) = s.get("/_nimbus/status").await;
        left = st["environments"].clone();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0);
}
