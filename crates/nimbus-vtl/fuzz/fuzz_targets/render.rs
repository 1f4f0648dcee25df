//! Fuzz target: any bytes as a mapping template, rendered against a request whose body is
//! JSON, with parameters, headers, context and stage variables. Rendering may fail with an
//! error but must never panic, overflow the stack or run away.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(template) = std::str::from_utf8(data) else {
        return;
    };
    let req = nimbus_vtl::Request {
        body: r#"{"a": [1, {"b": "x"}], "s": "Hello World", "n": 3.5, "t": true}"#.into(),
        path_params: vec![("id".into(), "42".into())],
        query_params: vec![("q".into(), "a b".into())],
        headers: vec![("content-type".into(), "application/json".into())],
        context: serde_json::json!({"stage": "prod", "requestId": "r", "identity": {"sourceIp": "127.0.0.1"}}),
        stage_variables: vec![("v".into(), "1".into())],
    };
    let _ = nimbus_vtl::render(template, &req);
});
