//! API Gateway REST APIs: resources, methods, AWS (non-proxy, with mapping templates), AWS_PROXY
//! and MOCK integrations, deployments and stages — and the seed scenario's shape: a form-encoded
//! SMS webhook turned into JSON by a request template and answered as TwiML XML.

use crate::common::*;
use serde_json::{Value, json};

const SMS_HANDLER: &str = r#"
def handler(event, context):
    if not event.get("From"):
        raise ValueError("Bad request: no sender")
    return {"message": "Got %s from %s (%s media)" % (event["Body"], event["From"], event["NumMedia"])}

def proxy(event, context):
    return {"statusCode": 200, "headers": {"content-type": "text/plain"},
            "body": "%s %s %s" % (event["httpMethod"], event["resource"], event["pathParameters"]["id"])}
"#;

const REQUEST_TEMPLATE: &str = r##"{
#foreach($pair in $input.body.split('&'))
#set($kv = $pair.split('='))
"$util.urlDecode($kv[0])": "$util.escapeJavaScript($util.urlDecode($kv[1]))"#if($foreach.hasNext),#end
#end
}"##;

const RESPONSE_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>$input.path('$.message')</Message></Response>"#;

async fn call(s: &Server, method: &str, path: &str, body: Value) -> Value {
    s.call_ok(method, path, body).await
}

#[tokio::test]
async fn sms_webhook_through_mapping_templates() {
    let s = Server::start();
    if !runtime_available(&s, "python3.11").await {
        panic!("python3.11 is required for this test");
    }
    let zip = zip_of(&[("app.py", SMS_HANDLER, 0o644)]);
    s.create_ok("sms", "python3.11", "app.handler", &zip, json!({}))
        .await;
    s.create_ok("proxied", "python3.11", "app.proxy", &zip, json!({}))
        .await;
    let fn_uri = |name: &str| {
        format!(
            "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:{name}/invocations"
        )
    };

    let api = call(&s, "POST", "/restapis", json!({"name": "webhooks"})).await;
    let id = api["id"].as_str().expect("id").to_string();
    let root = api["rootResourceId"].as_str().expect("root").to_string();
    let sms = call(
        &s,
        "POST",
        &format!("/restapis/{id}/resources/{root}"),
        json!({"pathPart": "sms"}),
    )
    .await;
    let sms_id = sms["id"].as_str().expect("id").to_string();
    assert_eq!(sms["path"], "/sms");

    // POST /sms: AWS integration with request and response templates.
    let m = format!("/restapis/{id}/resources/{sms_id}/methods/POST");
    call(&s, "PUT", &m, json!({"authorizationType": "NONE"})).await;
    call(
        &s,
        "PUT",
        &format!("{m}/integration"),
        json!({
            "type": "AWS", "httpMethod": "POST", "uri": fn_uri("sms"),
            "requestTemplates": {"application/x-www-form-urlencoded": REQUEST_TEMPLATE},
            "passthroughBehavior": "NEVER",
        }),
    )
    .await;
    for code in ["200", "400"] {
        call(
            &s,
            "PUT",
            &format!("{m}/responses/{code}"),
            json!({"responseParameters": {"method.response.header.Content-Type": true}}),
        )
        .await;
    }
    call(
        &s,
        "PUT",
        &format!("{m}/integration/responses/200"),
        json!({
            "responseParameters": {"method.response.header.Content-Type": "'application/xml'"},
            "responseTemplates": {"application/xml": RESPONSE_TEMPLATE},
        }),
    )
    .await;
    call(&s, "PUT", &format!("{m}/integration/responses/400"), json!({
        "selectionPattern": "Bad request.*",
        "responseTemplates": {"application/json": "{\"error\": \"$util.escapeJavaScript($input.path('$.errorMessage'))\"}"},
    })).await;

    // GET /items/{id}: AWS_PROXY; GET /health: MOCK.
    let items = call(
        &s,
        "POST",
        &format!("/restapis/{id}/resources/{root}"),
        json!({"pathPart": "items"}),
    )
    .await;
    let item = call(
        &s,
        "POST",
        &format!(
            "/restapis/{id}/resources/{}",
            items["id"].as_str().expect("id")
        ),
        json!({"pathPart": "{id}"}),
    )
    .await;
    let im = format!(
        "/restapis/{id}/resources/{}/methods/GET",
        item["id"].as_str().expect("id")
    );
    call(&s, "PUT", &im, json!({"authorizationType": "NONE"})).await;
    call(
        &s,
        "PUT",
        &format!("{im}/integration"),
        json!({"type": "AWS_PROXY", "httpMethod": "POST", "uri": fn_uri("proxied")}),
    )
    .await;
    let health = call(
        &s,
        "POST",
        &format!("/restapis/{id}/resources/{root}"),
        json!({"pathPart": "health"}),
    )
    .await;
    let hm = format!(
        "/restapis/{id}/resources/{}/methods/GET",
        health["id"].as_str().expect("id")
    );
    call(&s, "PUT", &hm, json!({"authorizationType": "NONE"})).await;
    call(
        &s,
        "PUT",
        &format!("{hm}/integration"),
        json!({"type": "MOCK", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}}),
    )
    .await;
    call(&s, "PUT", &format!("{hm}/responses/200"), json!({})).await;
    call(&s, "PUT", &format!("{hm}/integration/responses/200"), json!({"responseTemplates": {"application/json": "{\"ok\": true, \"stage\": \"$context.stage\"}"}})).await;

    let (st, resources, _) = s.get(&format!("/restapis/{id}/resources")).await;
    assert_eq!(st, 200);
    assert_eq!(resources["item"].as_array().map(Vec::len), Some(5));

    call(
        &s,
        "POST",
        &format!("/restapis/{id}/deployments"),
        json!({"stageName": "prod"}),
    )
    .await;
    let base = format!("/restapis/{id}/prod/_user_request_");

    // The webhook: form in, TwiML out.
    let r = s
        .http
        .post(s.u(&format!("{base}/sms")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("From=%2B15551234567&To=%2B15557654321&Body=Hello+there&NumMedia=1&MediaUrl0=http%3A%2F%2Fexample%2Fa.jpg")
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml");
    assert_eq!(
        r.text().await.expect("text"),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Got Hello there from +15551234567 (1 media)</Message></Response>"#
    );
    // A function error selected by its message.
    let r = s
        .http
        .post(s.u(&format!("{base}/sms")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Body=x&NumMedia=0")
        .send()
        .await
        .expect("bad");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "Bad request: no sender"})
    );
    // No template for this content type and passthrough NEVER: 415.
    let r = s
        .http
        .post(s.u(&format!("{base}/sms")))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("415");
    assert_eq!(r.status().as_u16(), 415);

    let r = s
        .http
        .get(s.u(&format!("{base}/items/77")))
        .send()
        .await
        .expect("proxy");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("text"), "GET /items/{id} 77");
    let r = s
        .http
        .get(s.u(&format!("{base}/health")))
        .send()
        .await
        .expect("mock");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"ok": true, "stage": "prod"})
    );
    let r = s
        .http
        .get(s.u(&format!("{base}/nowhere")))
        .send()
        .await
        .expect("403");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"message": "Missing Authentication Token"})
    );
}

async fn send(s: &Server, method: &str, path: &str, body: Value) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = s
        .http
        .request(m, s.u(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// A MOCK `GET /ping` API deployed to `prod`; returns (api id, resource id of /ping).
async fn mock_api(s: &Server) -> (String, String) {
    let api = call(s, "POST", "/restapis", json!({"name": "mocked"})).await;
    let id = api["id"].as_str().expect("id").to_string();
    let root = api["rootResourceId"].as_str().expect("root").to_string();
    let ping = call(
        s,
        "POST",
        &format!("/restapis/{id}/resources/{root}"),
        json!({"pathPart": "ping"}),
    )
    .await;
    let rid = ping["id"].as_str().expect("id").to_string();
    let m = format!("/restapis/{id}/resources/{rid}/methods/GET");
    call(s, "PUT", &m, json!({"authorizationType": "NONE"})).await;
    call(
        s,
        "PUT",
        &format!("{m}/integration"),
        json!({"type": "MOCK", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}}),
    )
    .await;
    call(s, "PUT", &format!("{m}/responses/200"), json!({})).await;
    call(
        s,
        "PUT",
        &format!("{m}/integration/responses/200"),
        json!({"responseTemplates": {"application/json": "{\"v\": \"$!stageVariables.v\"}"}}),
    )
    .await;
    call(
        s,
        "POST",
        &format!("/restapis/{id}/deployments"),
        json!({"stageName": "prod", "variables": {"v": "one"}}),
    )
    .await;
    (id, rid)
}

#[tokio::test]
async fn stage_updates_throttle_and_change_variables() {
    let s = Server::start();
    let (id, _) = mock_api(&s).await;
    let url = s.u(&format!("/restapis/{id}/prod/_user_request_/ping"));
    let get = || async { s.http.get(&url).send().await.expect("get") };
    assert_eq!(
        get().await.json::<Value>().await.expect("json"),
        json!({"v": "one"})
    );

    // Stage variables and method settings through patch operations.
    let (st, stage) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        json!({"patchOperations": [
            {"op": "replace", "path": "/variables/v", "value": "two"},
            {"op": "replace", "path": "/description", "value": "production"},
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "0.01"},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "3"},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{stage}");
    assert_eq!(stage["variables"], json!({"v": "two"}));
    assert_eq!(stage["description"], "production");
    assert_eq!(stage["methodSettings"]["*/*"]["throttlingRateLimit"], 0.01);
    assert_eq!(stage["methodSettings"]["*/*"]["throttlingBurstLimit"], 3);

    // Burst 3 at 0.01 requests/s: three pass, the fourth is throttled as API Gateway does.
    for _ in 0..3 {
        let r = get().await;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.json::<Value>().await.expect("json"), json!({"v": "two"}));
    }
    let r = get().await;
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"message": "Too Many Requests"})
    );

    // A method's own setting overrides the stage-wide one; removing it restores the default.
    let (st, stage) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        json!({"patchOperations": [
            {"op": "replace", "path": "/~1ping/GET/throttling/rateLimit", "value": "1000"},
            {"op": "replace", "path": "/~1ping/GET/throttling/burstLimit", "value": "1000"},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{stage}");
    assert_eq!(
        stage["methodSettings"]["~1ping/GET"]["throttlingBurstLimit"],
        1000
    );
    assert_eq!(get().await.status().as_u16(), 200);
    let (st, _) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        json!({"patchOperations": [
            {"op": "remove", "path": "/~1ping/GET/throttling/rateLimit"},
            {"op": "remove", "path": "/*/*/throttling/rateLimit"},
            {"op": "remove", "path": "/variables/v"},
        ]}),
    )
    .await;
    assert_eq!(st, 200);
    let r = get().await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), json!({"v": ""}));

    // The full set Terraform's aws_api_gateway_method_settings and aws_api_gateway_stage send.
    let (st, stage) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        json!({"patchOperations": [
            {"op": "replace", "path": "/*/*/metrics/enabled", "value": "true"},
            {"op": "replace", "path": "/*/*/logging/loglevel", "value": "INFO"},
            {"op": "replace", "path": "/*/*/logging/dataTrace", "value": "false"},
            {"op": "replace", "path": "/*/*/caching/enabled", "value": "true"},
            {"op": "replace", "path": "/*/*/caching/ttlInSeconds", "value": "60"},
            {"op": "replace", "path": "/*/*/caching/dataEncrypted", "value": "false"},
            {"op": "replace", "path": "/*/*/caching/requireAuthorizationForCacheControl", "value": "true"},
            {"op": "replace", "path": "/*/*/caching/unauthorizedCacheControlHeaderStrategy", "value": "FAIL_WITH_403"},
            {"op": "replace", "path": "/tracingEnabled", "value": "true"},
            {"op": "replace", "path": "/cacheClusterEnabled", "value": "true"},
            {"op": "replace", "path": "/cacheClusterSize", "value": "0.5"},
            {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": "arn:aws:logs:us-east-1:000000000000:log-group:access"},
            {"op": "replace", "path": "/accessLogSettings/format", "value": "$context.requestId"},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{stage}");
    let all = &stage["methodSettings"]["*/*"];
    assert_eq!(
        (
            all["metricsEnabled"].clone(),
            all["loggingLevel"].clone(),
            all["cachingEnabled"].clone(),
            all["cacheTtlInSeconds"].clone()
        ),
        (json!(true), json!("INFO"), json!(true), json!(60))
    );
    assert_eq!(
        all["unauthorizedCacheControlHeaderStrategy"],
        "FAIL_WITH_403"
    );
    assert_eq!(
        (
            stage["tracingEnabled"].clone(),
            stage["cacheClusterSize"].clone()
        ),
        (json!(true), json!("0.5"))
    );
    assert_eq!(stage["accessLogSettings"]["format"], "$context.requestId");

    // Bad patches are refused whole, naming what to fix; the stage is unchanged.
    for (ops, needle) in [
        (
            json!([{"op": "replace", "path": "/nonsense", "value": "x"}]),
            "Invalid patch path '/nonsense'",
        ),
        (
            json!([{"op": "replace", "path": "/description", "value": "changed"},
                   {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "fast"}]),
            "rateLimit",
        ),
        (
            json!([{"op": "replace", "path": "/~1missing/GET/throttling/rateLimit", "value": "1"}]),
            "/missing GET",
        ),
        (
            json!([{"op": "replace", "path": "/deploymentId", "value": "nope"}]),
            "Invalid deployment id",
        ),
    ] {
        let (st, v) = send(
            &s,
            "PATCH",
            &format!("/restapis/{id}/stages/prod"),
            json!({ "patchOperations": ops }),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        assert!(v["message"].as_str().unwrap_or("").contains(needle), "{v}");
    }
    let (_, stage, _) = s.get(&format!("/restapis/{id}/stages/prod")).await;
    assert_eq!(stage["description"], "production");
    let (st, _) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}/stages/nostage"),
        json!({"patchOperations": []}),
    )
    .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn rest_api_control_plane_reads_updates_and_deletes() {
    let s = Server::start();
    let (id, rid) = mock_api(&s).await;
    let m = format!("/restapis/{id}/resources/{rid}/methods/GET");

    // UpdateRestApi.
    let (st, api) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}"),
        json!({"patchOperations": [
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/binaryMediaTypes/image~1png", "value": null},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{api}");
    assert_eq!(api["name"], "renamed");
    assert_eq!(api["binaryMediaTypes"], json!(["image/png"]));

    // Reads of method and integration responses.
    let (st, r, _) = s.get(&format!("{m}/responses/200")).await;
    assert_eq!((st, r["statusCode"].clone()), (200, json!("200")));
    let (st, r, _) = s.get(&format!("{m}/integration/responses/200")).await;
    assert_eq!(st, 200);
    assert!(r["responseTemplates"]["application/json"].is_string());
    let (st, _, _) = s.get(&format!("{m}/responses/500")).await;
    assert_eq!(st, 404);

    // Deployments: a second one moved to the stage frees the first for deletion.
    let (_, deps, _) = s.get(&format!("/restapis/{id}/deployments")).await;
    let first = deps["item"][0]["id"]
        .as_str()
        .expect("deployment")
        .to_string();
    let (st, v) = send(
        &s,
        "DELETE",
        &format!("/restapis/{id}/deployments/{first}"),
        json!({}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let second = call(
        &s,
        "POST",
        &format!("/restapis/{id}/deployments"),
        json!({"description": "two"}),
    )
    .await;
    let second = second["id"].as_str().expect("id").to_string();
    let (st, _, _) = s.get(&format!("/restapis/{id}/deployments/{second}")).await;
    assert_eq!(st, 200);
    let (st, stage) = send(
        &s,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        json!({"patchOperations": [{"op": "replace", "path": "/deploymentId", "value": second}]}),
    )
    .await;
    assert_eq!((st, stage["deploymentId"].clone()), (200, json!(second)));
    let (st, _) = send(
        &s,
        "DELETE",
        &format!("/restapis/{id}/deployments/{first}"),
        json!({}),
    )
    .await;
    assert_eq!(st, 202);
    let (_, deps, _) = s.get(&format!("/restapis/{id}/deployments")).await;
    assert_eq!(deps["item"].as_array().map(Vec::len), Some(1));

    // Deletes of responses, the integration and the method, each once.
    for (path, code) in [
        (format!("{m}/integration/responses/200"), 204),
        (format!("{m}/integration/responses/200"), 404),
        (format!("{m}/responses/200"), 204),
        (format!("{m}/integration"), 204),
        (format!("{m}/integration"), 404),
        (m.clone(), 204),
        (m.clone(), 404),
    ] {
        let (st, v) = send(&s, "DELETE", &path, json!({})).await;
        assert_eq!(st, code, "DELETE {path}: {v}");
    }
    // The stage still serves its deployment's snapshot until it is deleted.
    let url = s.u(&format!("/restapis/{id}/prod/_user_request_/ping"));
    assert_eq!(
        s.http
            .get(&url)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
    let (st, _) = send(
        &s,
        "DELETE",
        &format!("/restapis/{id}/stages/prod"),
        json!({}),
    )
    .await;
    assert_eq!(st, 202);
    let (st, _) = send(
        &s,
        "DELETE",
        &format!("/restapis/{id}/stages/prod"),
        json!({}),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(
        s.http
            .get(&url)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        403
    );
}

/// Sleeps two seconds, then answers a proxy response.
const SLOW_PROXY: &str = r#"#!/usr/bin/python3
import http.client, os, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    time.sleep(2)
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", '{"statusCode": 200, "body": "late"}')
    conn.getresponse().read()
"#;

#[tokio::test]
async fn a_proxy_integration_past_its_timeout_is_a_504() {
    let s = Server::start();
    s.create_ok(
        "slow-proxy",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", SLOW_PROXY, 0o755)]),
        json!({"Timeout": 10}),
    )
    .await;
    let api = call(&s, "POST", "/restapis", json!({"name": "slow"})).await;
    let id = api["id"].as_str().expect("id").to_string();
    let root = api["rootResourceId"].as_str().expect("root").to_string();
    let m = format!("/restapis/{id}/resources/{root}/methods/GET");
    call(&s, "PUT", &m, json!({"authorizationType": "NONE"})).await;
    call(
        &s,
        "PUT",
        &format!("{m}/integration"),
        json!({
            "type": "AWS_PROXY", "httpMethod": "POST", "timeoutInMillis": 500,
            "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:slow-proxy/invocations",
        }),
    )
    .await;
    call(
        &s,
        "POST",
        &format!("/restapis/{id}/deployments"),
        json!({"stageName": "prod"}),
    )
    .await;
    let r = s
        .http
        .get(s.u(&format!("/restapis/{id}/prod/_user_request_/")))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status().as_u16(), 504);
    assert!(
        r.headers().contains_key("x-amzn-requestid"),
        "the gateway's own errors carry the request id"
    );
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"message": "Endpoint request timed out"})
    );
}
