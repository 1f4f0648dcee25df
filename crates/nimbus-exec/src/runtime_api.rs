//! The Lambda Runtime API (`/2018-06-01/runtime/...`) served to one environment's runtime.
//!
//! Each environment gets its own loopback listener, so a runtime can only ever see its own
//! invocations. Responses are small and written in one go with `TCP_NODELAY` set.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::MAX_RESPONSE_BYTES;
use crate::environment::{Pending, RuntimeReply, Shared};

const PREFIX: &str = "/2018-06-01/runtime/";

/// Connections one environment's Runtime API holds at once (a runtime needs one or two; the
/// cap keeps a function from exhausting the server's descriptors through its own listener).
const MAX_CONNECTIONS: usize = 32;

/// Accepts runtime connections until the task is aborted (which also drops every connection).
/// With `only_uid`, a connection is served only if its client socket belongs to that uid (the
/// environment's own); any other is closed at once.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, only_uid: Option<u32>) {
    let mut conns = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((s, peer)) => {
                if let Some(uid) = only_uid
                    && !peer_is(uid, peer, &s)
                {
                    tracing::warn!(%peer, "refused a Runtime API connection from outside the environment");
                    continue;
                }
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, "runtime API accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= MAX_CONNECTIONS {
            tracing::warn!(
                "a runtime holds {MAX_CONNECTIONS} Runtime API connections; closing a new one"
            );
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

fn peer_is(uid: u32, peer: std::net::SocketAddr, s: &tokio::net::TcpStream) -> bool {
    use std::net::SocketAddr;
    match (peer, s.local_addr()) {
        (SocketAddr::V4(p), Ok(SocketAddr::V4(local))) => {
            crate::sandbox::peer::tcp_socket_uid(p, local).is_ok_and(|u| u == uid)
        }
        _ => false,
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The Runtime API serves /2018-06-01/runtime/ only",
        ));
    };
    let method = req.method().clone();
    Ok(match (method, rest) {
        (Method::GET, "invocation/next") => next(&shared).await,
        (Method::POST, "init/error") => {
            let error_type = header(&req, "lambda-runtime-function-error-type");
            match read_body(req).await {
                Ok(body) => {
                    shared.init_error(error_type, body);
                    json(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
                }
                Err(r) => r,
            }
        }
        (Method::POST, rest) if rest.starts_with("invocation/") => {
            let tail = &rest["invocation/".len()..];
            let (id, kind) = match tail.rsplit_once('/') {
                Some((id, k @ ("response" | "error"))) => (id.to_string(), k),
                _ => {
                    return Ok(error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "Unknown Runtime API path",
                    ));
                }
            };
            if !shared.is_current(&id) {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestID",
                    "Invalid request ID",
                ));
            }
            if kind == "response"
                && let Some(mode) = header(&req, "lambda-runtime-function-response-mode")
                && mode != "streaming"
            {
                shared.complete(
                    &id,
                    RuntimeReply::platform_error(
                        "Runtime.InvalidResponseModeHeader",
                        &format!("Invalid response mode header value: {mode}"),
                    ),
                );
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidFunctionResponseMode",
                    "Invalid function response mode",
                ));
            }
            let content_type = header(&req, "content-type");
            let error_type = header(&req, "lambda-runtime-function-error-type");
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => {
                    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        shared.complete(
                            &id,
                            RuntimeReply::platform_error(
                                "Function.ResponseSizeTooLarge",
                                &format!(
                                    "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                                ),
                            ),
                        );
                    }
                    return Ok(r);
                }
            };
            let reply = if kind == "response" {
                RuntimeReply::Response { body, content_type }
            } else {
                RuntimeReply::Error { body, error_type }
            };
            if shared.complete(&id, reply) {
                json(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestID",
                    "Invalid request ID",
                )
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Unknown Runtime API path",
        ),
    })
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            ))
        }
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "TruncatedHTTPRequest",
            "The request body could not be read",
        )),
    }
}

async fn next(shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    shared.mark_ready();
    let pending: Option<Pending> = {
        let mut rx = shared.next_rx.lock().await;
        rx.recv().await
    };
    let Some(p) = pending else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ShuttingDown",
            "The environment is shutting down",
        );
    };
    let mut r = Response::new(Full::new(p.payload.clone()));
    let h = r.headers_mut();
    let put = |h: &mut http::HeaderMap, name: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    put(h, "lambda-runtime-aws-request-id", &p.request_id);
    put(h, "lambda-runtime-deadline-ms", &p.deadline_ms.to_string());
    put(h, "lambda-runtime-invoked-function-arn", &p.invoked_arn);
    put(h, "lambda-runtime-trace-id", &p.trace_id);
    if let Some(cc) = &p.client_context {
        put(h, "lambda-runtime-client-context", cc);
    }
    if let Some(ci) = &p.cognito_identity {
        put(h, "lambda-runtime-cognito-identity", ci);
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    shared.begin(p);
    r
}
