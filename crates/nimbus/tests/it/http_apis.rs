//! API Gateway HTTP APIs through the apigatewayv2 API: route precedence, stages and
//! deployments, path-style URLs, payload formats 1.0 and 2.0.

use crate::common::*;
use serde_json::{Value, json};

/// Answers every request with the route it was given and its path parameters; payload format
/// 1.0 needs `statusCode`, so the answer has one either way.
const ROUTER_FN: &str = r#"#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    ev = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    key = ev.get("routeKey") or ev.get("resource")
    out = {"statusCode": 200, "headers": {"content-type": "application/json"},
           "multiValueHeaders": {"x-multi": ["a", "b"]},
           "body": json.dumps({"route": key, "version": ev["version"], "params": ev.get("pathParameters"),
                               "stageVars": ev.get("stageVariables"), "mvq": ev.get("multiValueQueryStringParameters")})}
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps(out))
    conn.getresponse().read()
"#;

async fn post(s: &Server, path: &str, body: Value) -> Value {
    let r = s
        .http
        .post(s.u(path))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 201, "{path}");
    r.json().await.expect("json")
}

async fn get_via(s: &Server, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = s.http.get(s.u(path)).send().await.expect("get");
    let st = r.status().as_u16();
    let h = r.headers().clone();
    (st, r.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn routes_stages_and_payload_formats() {
    let s = Server::start();
    s.create_ok(
        "router",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", ROUTER_FN, 0o755)]),
        json!({}),
    )
    .await;
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:router";
    let api = post(
        &s,
        "/v2/apis",
        json!({"name": "shop", "protocolType": "HTTP"}),
    )
    .await;
    let id = api["apiId"].as_str().expect("id").to_string();
    let v2 = post(&s, &format!("/v2/apis/{id}/integrations"), json!({"integrationType": "AWS_PROXY", "integrationUri": arn, "payloadFormatVersion": "2.0"})).await;
    let v1 = post(&s, &format!("/v2/apis/{id}/integrations"), json!({"integrationType": "AWS_PROXY", "integrationUri": format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"), "payloadFormatVersion": "1.0"})).await;
    let t2 = format!("integrations/{}", v2["integrationId"].as_str().expect("id"));
    let t1 = format!("integrations/{}", v1["integrationId"].as_str().expect("id"));
    for (key, target) in [
        ("GET /items/{id}", &t2),
        ("GET /items/special", &t2),
        ("ANY /{proxy+}", &t2),
        ("POST /legacy/{thing}", &t1),
    ] {
        post(
            &s,
            &format!("/v2/apis/{id}/routes"),
            json!({"routeKey": key, "target": target}),
        )
        .await;
    }
    let r = s
        .http
        .post(s.u(&format!("/v2/apis/{id}/routes")))
        .json(&json!({"routeKey": "GET /items/{id}", "target": t2}))
        .send()
        .await
        .expect("dup");
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.headers()["x-amzn-errortype"], "ConflictException");
    let r = s
        .http
        .post(s.u(&format!("/v2/apis/{id}/routes")))
        .json(&json!({"routeKey": "FETCH /x"}))
        .send()
        .await
        .expect("bad");
    assert_eq!(r.status().as_u16(), 400);

    // A stage without auto-deploy serves nothing until a deployment.
    post(
        &s,
        &format!("/v2/apis/{id}/stages"),
        json!({"stageName": "prod", "stageVariables": {"color": "blue"}}),
    )
    .await;
    let base = format!("/restapis/{id}/prod/_user_request_");
    assert_eq!(get_via(&s, &format!("{base}/items/1")).await.0, 404);
    post(
        &s,
        &format!("/v2/apis/{id}/deployments"),
        json!({"stageName": "prod"}),
    )
    .await;

    let (st, v, _) = get_via(&s, &format!("{base}/items/7")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["route"].as_str(), v["params"]["id"].as_str()),
        (Some("GET /items/{id}"), Some("7"))
    );
    assert_eq!(v["version"], "2.0");
    assert_eq!(v["stageVars"], json!({"color": "blue"}));
    let (_, v, _) = get_via(&s, &format!("{base}/items/special")).await;
    assert_eq!(v["route"], "GET /items/special");
    let (_, v, _) = get_via(&s, &format!("{base}/a/b/c")).await;
    assert_eq!(
        (v["route"].as_str(), v["params"]["proxy"].as_str()),
        (Some("ANY /{proxy+}"), Some("a/b/c"))
    );

    // Payload format 1.0: resource, multi-value query, multi-value response headers.
    let r = s
        .http
        .post(s.u(&format!("{base}/legacy/box?tag=a&tag=b")))
        .body("{}")
        .send()
        .await
        .expect("v1");
    assert_eq!(r.status().as_u16(), 200);
    let multi: Vec<&str> = r
        .headers()
        .get_all("x-multi")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(multi, vec!["a", "b"]);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["route"], "/legacy/{thing}");
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["params"], json!({"thing": "box"}));
    assert_eq!(v["mvq"], json!({"tag": ["a", "b"]}));

    // Routes added after the deployment are not served by the deployed stage.
    post(
        &s,
        &format!("/v2/apis/{id}/routes"),
        json!({"routeKey": "GET /new", "target": t2}),
    )
    .await;
    let (_, v, _) = get_via(&s, &format!("{base}/new")).await;
    assert_eq!(v["route"], "ANY /{proxy+}");

    // HTTP_PROXY: forwarded to an upstream (here the server's own health endpoint).
    let up = post(&s, &format!("/v2/apis/{id}/integrations"), json!({"integrationType": "HTTP_PROXY", "integrationUri": s.u("/_nimbus/health"), "integrationMethod": "GET"})).await;
    let up_target = format!("integrations/{}", up["integrationId"].as_str().expect("id"));
    post(
        &s,
        &format!("/v2/apis/{id}/routes"),
        json!({"routeKey": "GET /up", "target": up_target}),
    )
    .await;
    // The integration's method (GET) is used whatever the request's (POST here).
    post(
        &s,
        &format!("/v2/apis/{id}/routes"),
        json!({"routeKey": "POST /up", "target": up_target}),
    )
    .await;
    post(
        &s,
        &format!("/v2/apis/{id}/deployments"),
        json!({"stageName": "prod"}),
    )
    .await;
    let (st, v, _) = get_via(&s, &format!("{base}/up")).await;
    assert_eq!((st, v), (200, json!({"status": "ok"})));
    let r = s
        .http
        .post(s.u(&format!("{base}/up")))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "forwarded as GET");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"status": "ok"})
    );

    // No match at all: 404 with API Gateway's body.
    let api2 = post(
        &s,
        "/v2/apis",
        json!({"name": "bare", "protocolType": "HTTP"}),
    )
    .await;
    let id2 = api2["apiId"].as_str().expect("id");
    post(
        &s,
        &format!("/v2/apis/{id2}/routes"),
        json!({"routeKey": "GET /only"}),
    )
    .await;
    post(
        &s,
        &format!("/v2/apis/{id2}/stages"),
        json!({"stageName": "$default", "autoDeploy": true}),
    )
    .await;
    let (st, v, _) = get_via(
        &s,
        &format!("/restapis/{id2}/$default/_user_request_/other"),
    )
    .await;
    assert_eq!((st, v), (404, json!({"message": "Not Found"})));

    let (st, _, _) = get_via(&s, "/v2/apis/nope").await;
    assert_eq!(st, 404);

    // Stage throttling: a burst of 2 and (nearly) no refill — the third request is refused.
    let r = s
        .http
        .patch(s.u(&format!("/v2/apis/{id}/stages/prod")))
        .json(&json!({"defaultRouteSettings": {"throttlingRateLimit": 0.001, "throttlingBurstLimit": 2}}))
        .send()
        .await
        .expect("patch");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["defaultRouteSettings"]["throttlingBurstLimit"], 2);
    let codes: Vec<u16> = {
        let mut c = Vec::new();
        for _ in 0..3 {
            c.push(get_via(&s, &format!("{base}/items/1")).await.0);
        }
        c
    };
    assert_eq!(codes, vec![200, 200, 429]);
    let (_, v, _) = get_via(&s, &format!("{base}/items/1")).await;
    assert_eq!(v, json!({"message": "Too Many Requests"}));
}
