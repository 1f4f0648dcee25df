//! API Gateway REST APIs: resources, methods, AWS (non-proxy, with mapping templates), AWS_PROXY
//! and MOCK integrations, deployments and stages — and the seed scenario's shape: a form-encoded
//! SMS webhook turned into JSON by a request template and answered as TwiML XML.

mod common;

use common::*;
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
    let url = s.u(path);
    let req = match method {
        "PUT" => s.http.put(url),
        _ => s.http.post(url),
    };
    let r = req.json(&body).send().await.expect("request");
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(st == 201 || st == 200, "{method} {path}: {st} {v}");
    v
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
