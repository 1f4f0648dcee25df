//! Function URLs: configuration API and HTTP requests served on the main port by host name.

use crate::common::*;
use serde_json::{Value, json};

/// Echoes the event, or answers with `event.body`'s JSON when the request asks for it.
const HTTP_BOOTSTRAP: &str = r#"#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    ev = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    path = ev.get("rawPath", "")
    if path == "/fail":
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/error", json.dumps({"errorMessage": "no", "errorType": "E"}))
    else:
        if path == "/custom":
            out = {"statusCode": 201, "headers": {"content-type": "text/plain", "x-custom": "yes"},
                   "cookies": ["a=1; Path=/", "b=2"], "body": "created"}
        elif path == "/binary":
            out = {"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "AAEC", "isBase64Encoded": True}
        else:
            out = {"echo": ev}
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps(out))
    conn.getresponse().read()
"#;

async fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
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
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn function_urls_serve_http_requests() {
    let s = Server::start();
    s.create_ok(
        "web",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", HTTP_BOOTSTRAP, 0o755)]),
        json!({}),
    )
    .await;
    let (st, _) = call(&s, "POST", "/2021-10-31/functions/web/url", Some(json!({}))).await;
    assert_eq!(st, 400, "AuthType is required");
    let (st, cfg) = call(
        &s,
        "POST",
        "/2021-10-31/functions/web/url",
        Some(json!({"AuthType": "NONE"})),
    )
    .await;
    assert_eq!(st, 201, "{cfg}");
    // Host-style where `*.localhost` resolves on this machine, path-style elsewhere: either
    // way the URL works as given.
    let url = cfg["FunctionUrl"].as_str().expect("url").to_string();
    assert!(
        url.starts_with("http://")
            && (url.contains(".lambda-url.localhost:") || url.contains("/_aws/lambda-url/")),
        "{url}"
    );
    let id = match url.split_once("/_aws/lambda-url/") {
        Some((_, rest)) => rest.trim_end_matches('/').to_string(),
        None => url
            .trim_start_matches("http://")
            .split('.')
            .next()
            .unwrap_or("")
            .to_string(),
    };
    assert_eq!(
        cfg["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:web"
    );
    let (st, _) = call(
        &s,
        "POST",
        "/2021-10-31/functions/web/url",
        Some(json!({"AuthType": "NONE"})),
    )
    .await;
    assert_eq!(st, 409);
    let (_, got) = call(&s, "GET", "/2021-10-31/functions/web/url", None).await;
    assert_eq!(got["FunctionUrl"], cfg["FunctionUrl"]);
    let (_, list) = call(&s, "GET", "/2021-10-31/functions/web/urls", None).await;
    assert_eq!(list["FunctionUrlConfigs"].as_array().map(Vec::len), Some(1));

    // Requests go to the URL as given.
    let req = |method: reqwest::Method, path: &str| {
        s.http
            .request(method, format!("{}{path}", url.trim_end_matches('/')))
    };
    // The host-style form is served on the main port too.
    let r = s
        .http
        .get(s.u("/plain"))
        .header("host", format!("{id}.lambda-url.localhost"))
        .send()
        .await
        .expect("host-style");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["echo"]["rawPath"],
        "/plain"
    );
    let r = req(reqwest::Method::POST, "/items/7?x=1&x=2")
        .header("cookie", "session=abc; theme=dark")
        .header("content-type", "application/json")
        .body(r#"{"k":"v"}"#)
        .send()
        .await
        .expect("url request");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-amzn-requestid").is_some());
    let ev = r.json::<Value>().await.expect("json")["echo"].clone();
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["routeKey"], "$default");
    assert_eq!(ev["rawPath"], "/items/7");
    assert_eq!(ev["rawQueryString"], "x=1&x=2");
    assert_eq!(ev["queryStringParameters"], json!({"x": "1,2"}));
    assert_eq!(ev["cookies"], json!(["session=abc", "theme=dark"]));
    assert_eq!(ev["body"], r#"{"k":"v"}"#);
    assert_eq!(ev["isBase64Encoded"], false);
    assert_eq!(ev["requestContext"]["http"]["method"], "POST");
    assert_eq!(ev["requestContext"]["accountId"], "anonymous");
    assert_eq!(ev["headers"]["content-type"], "application/json");

    let r = req(reqwest::Method::GET, "/custom")
        .send()
        .await
        .expect("custom");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.headers()["x-custom"], "yes");
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies, vec!["a=1; Path=/", "b=2"]);
    assert_eq!(r.text().await.expect("text"), "created");

    let r = req(reqwest::Method::GET, "/binary")
        .send()
        .await
        .expect("binary");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), vec![0u8, 1, 2]);

    let r = req(reqwest::Method::PUT, "/upload")
        .header("content-type", "application/octet-stream")
        .body(vec![0xffu8, 0x00])
        .send()
        .await
        .expect("upload");
    let ev = r.json::<Value>().await.expect("json")["echo"].clone();
    assert_eq!(
        (ev["isBase64Encoded"].as_bool(), ev["body"].as_str()),
        (Some(true), Some("/wA="))
    );

    let r = req(reqwest::Method::GET, "/fail")
        .send()
        .await
        .expect("fail");
    assert_eq!(r.status().as_u16(), 502);

    // Unknown URL ids are 404; deleting the config stops serving.
    let r = s
        .http
        .get(s.u("/"))
        .header("host", "nope.lambda-url.localhost")
        .send()
        .await
        .expect("unknown");
    assert_eq!(r.status().as_u16(), 404);
    let (st, _) = call(&s, "DELETE", "/2021-10-31/functions/web/url", None).await;
    assert_eq!(st, 204);
    let r = req(reqwest::Method::GET, "/").send().await.expect("gone");
    assert_eq!(r.status().as_u16(), 404);
    let (st, _) = call(&s, "GET", "/2021-10-31/functions/web/url", None).await;
    assert_eq!(st, 404);
}
