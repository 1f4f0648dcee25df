//! A launcher for tests: instead of a process, each environment gets an in-process runtime (a
//! tokio task) that speaks the real Runtime API to the environment's listener and answers each
//! event as a script says. Environments, pools, admission, retries and provisioned concurrency
//! can then be tested without processes, interpreters or a sandbox — and, since the script's
//! delays are tokio sleeps, without waiting for real time where the test pauses the clock.
//!
//! The runtime is deliberately small: one HTTP/1.1 connection per request (hyper's client
//! connection), `GET /next`, then `POST /response` or `/error` — the same calls a real runtime
//! interface client makes, so the environment under test cannot tell the difference.

use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, oneshot};

use crate::launcher::{LaunchFuture, LaunchSpec, Launched, Launcher, ProcessControl};

/// What the scripted runtime does with one event.
#[derive(Debug, Clone)]
pub enum Step {
    /// Posts this response.
    Respond(Vec<u8>),
    /// Posts an error of this type and message (a function error).
    Error {
        /// The `errorType`, also sent as `Lambda-Runtime-Function-Error-Type`.
        error_type: String,
        /// The `errorMessage`.
        message: String,
    },
    /// Waits (on tokio's timer), then does the inner step.
    After(Duration, Box<Step>),
    /// Exits with this code without answering (a crash).
    Exit(i32),
    /// Never answers (the invocation times out).
    Hang,
}

/// What the runtime does at start.
#[derive(Debug, Clone)]
pub enum Init {
    /// Asks for the first event at once.
    Ready,
    /// Waits, then asks for the first event.
    After(Duration),
    /// Posts `/init/error` with this type, then exits.
    Fail(String),
}

/// The script: an event's payload in, a step out.
pub type Script = Arc<dyn Fn(&[u8]) -> Step + Send + Sync>;

/// Launches scripted runtimes.
pub struct ScriptedLauncher {
    script: Script,
    init: Init,
    launches: AtomicUsize,
    next_pid: AtomicU32,
}

impl ScriptedLauncher {
    /// A launcher whose runtimes answer every event as `script` says.
    pub fn new(script: impl Fn(&[u8]) -> Step + Send + Sync + 'static) -> ScriptedLauncher {
        ScriptedLauncher {
            script: Arc::new(script),
            init: Init::Ready,
            launches: AtomicUsize::new(0),
            next_pid: AtomicU32::new(1_000_000),
        }
    }

    /// Sets what each runtime does at start.
    pub fn with_init(mut self, init: Init) -> ScriptedLauncher {
        self.init = init;
        self
    }

    /// How many runtimes have been launched (cold starts).
    pub fn launches(&self) -> usize {
        self.launches.load(Ordering::SeqCst)
    }
}

/// Control over one scripted runtime.
struct Control {
    pid: u32,
    killed: AtomicBool,
    kill: Notify,
}

impl ProcessControl for Control {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    fn peak_memory_bytes(&self) -> Option<u64> {
        None
    }
}

/// An exit status as `waitpid` reports it (code in the high byte; a signal in the low bits).
fn status(raw: i32) -> ExitStatus {
    std::os::unix::process::ExitStatusExt::from_raw(raw)
}

impl Launcher for ScriptedLauncher {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn launch(&self, spec: LaunchSpec) -> LaunchFuture<'_> {
        self.launches.fetch_add(1, Ordering::SeqCst);
        let script = self.script.clone();
        let init = self.init.clone();
        let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let api = spec
                .env
                .iter()
                .find(|(k, _)| k == "AWS_LAMBDA_RUNTIME_API")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let control = Arc::new(Control {
                pid,
                killed: AtomicBool::new(false),
                kill: Notify::new(),
            });
            let (exit_tx, exit_rx) = oneshot::channel::<ExitStatus>();
            let output: OwnedFd = spec.output;
            let c = control.clone();
            tokio::spawn(async move {
                let code = tokio::select! {
                    code = run(&api, init, script) => status(code << 8),
                    _ = c.kill.notified() => status(libc::SIGKILL),
                };
                // The log pipe's write end closes with the "process".
                drop(output);
                let _ = exit_tx.send(code);
            });
            Ok(Launched {
                control,
                exit: Box::pin(
                    async move { exit_rx.await.unwrap_or_else(|_| status(libc::SIGKILL)) },
                ),
                runtime_api: None,
            })
        })
    }
}

/// The runtime's loop; returns its exit code.
async fn run(api: &str, init: Init, script: Script) -> i32 {
    match init {
        Init::Ready => {}
        Init::After(d) => tokio::time::sleep(d).await,
        Init::Fail(error_type) => {
            let _ = call(
                api,
                "POST",
                "/2018-06-01/runtime/init/error",
                Some(&error_type),
                b"{\"errorMessage\":\"init failed\"}".to_vec(),
            )
            .await;
            return 1;
        }
    }
    loop {
        let Ok((id, event)) = next(api).await else {
            return 1;
        };
        let mut step = script(&event);
        loop {
            match step {
                Step::After(d, inner) => {
                    tokio::time::sleep(d).await;
                    step = *inner;
                }
                Step::Respond(body) => {
                    let path = format!("/2018-06-01/runtime/invocation/{id}/response");
                    if call(api, "POST", &path, None, body).await.is_err() {
                        return 1;
                    }
                    break;
                }
                Step::Error {
                    error_type,
                    message,
                } => {
                    let path = format!("/2018-06-01/runtime/invocation/{id}/error");
                    let body =
                        serde_json::json!({"errorType": error_type, "errorMessage": message});
                    let sent = call(
                        api,
                        "POST",
                        &path,
                        Some(&error_type),
                        body.to_string().into_bytes(),
                    );
                    if sent.await.is_err() {
                        return 1;
                    }
                    break;
                }
                Step::Exit(code) => return code,
                Step::Hang => std::future::pending::<()>().await,
            }
        }
    }
}

/// `GET /next`: the request id and the event.
async fn next(api: &str) -> Result<(String, Bytes), String> {
    let (headers, body) = call(
        api,
        "GET",
        "/2018-06-01/runtime/invocation/next",
        None,
        Vec::new(),
    )
    .await?;
    let id = headers
        .get("lambda-runtime-aws-request-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no request id")?
        .to_string();
    Ok((id, body))
}

/// One Runtime API call on a connection of its own.
async fn call(
    api: &str,
    method: &str,
    path: &str,
    error_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(http::HeaderMap, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(api)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", api);
    if let Some(t) = error_type {
        req = req.header("lambda-runtime-function-error-type", t);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((headers, body))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::environment::{
        EnvConfig, Environment, InvokeRequest, InvokeStatus, LogLimits, LogLine,
    };
    use crate::runtimes::{ResolvedRuntime, RuntimeFamily};
    use crate::{LogSink, RuntimeReply};

    /// Keeps every log line.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl LogSink for Lines {
        fn write(
            &self,
            _group: &str,
            _stream: &str,
            lines: Vec<LogLine>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(lines.into_iter().map(|l| l.message));
            Box::pin(async {})
        }
    }

    fn config(task: &std::path::Path, timeout: Duration) -> Arc<EnvConfig> {
        std::fs::write(task.join("bootstrap"), b"").expect("bootstrap");
        Arc::new(EnvConfig {
            function_name: "f".into(),
            version: "$LATEST".into(),
            memory_mb: 128,
            timeout,
            init_timeout: Duration::from_secs(10),
            runtime: ResolvedRuntime {
                id: "provided.al2023".into(),
                family: RuntimeFamily::Provided,
                interpreter: None,
                bootstrap: None,
            },
            task_root: task.to_path_buf(),
            env: Vec::new(),
            log_group: "/aws/lambda/f".into(),
            region: "us-east-1".into(),
            max_open_files: 1024,
            runtime_dir: None,
            ro_paths: Vec::new(),
            ephemeral_mb: 512,
            log_limits: LogLimits::default(),
        })
    }

    fn request(payload: &str) -> InvokeRequest {
        InvokeRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            payload: Bytes::from(payload.to_string()),
            invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            client_context: None,
            cognito_identity: None,
            trace_id: "Root=1-00000000-000000000000000000000000".into(),
            tail: false,
        }
    }

    fn echo_or_fail(event: &[u8]) -> Step {
        match event {
            b"\"fail\"" => Step::Error {
                error_type: "Handled".into(),
                message: "asked to".into(),
            },
            b"\"crash\"" => Step::Exit(3),
            b"\"hang\"" => Step::Hang,
            other => Step::Respond(other.to_vec()),
        }
    }

    #[tokio::test]
    async fn a_scripted_runtime_speaks_the_runtime_api() {
        let dir = tempfile::tempdir().expect("tempdir");
        let launcher = ScriptedLauncher::new(echo_or_fail);
        let lines = Arc::new(Lines::default());
        let env = Environment::start(
            config(dir.path(), Duration::from_secs(5)),
            &launcher,
            lines.clone(),
        )
        .await;
        let out = env.invoke(request("{\"n\":1}")).await;
        assert_eq!(out.status, InvokeStatus::Success);
        assert!(
            matches!(&out.reply, RuntimeReply::Response { body, .. } if &body[..] == b"{\"n\":1}"),
            "{:?}",
            out.reply
        );
        // A function error leaves the environment usable; the same runtime answers again.
        let out = env.invoke(request("\"fail\"")).await;
        assert!(
            matches!(out.status, InvokeStatus::Error(_)),
            "{:?}",
            out.status
        );
        assert!(
            matches!(&out.reply, RuntimeReply::Error { error_type: Some(t), .. } if t == "Handled"),
            "{:?}",
            out.reply
        );
        let out = env.invoke(request("2")).await;
        assert_eq!(out.status, InvokeStatus::Success);
        assert_eq!(launcher.launches(), 1, "one runtime served all three");
        // A crash is fatal for the environment, with Lambda's exit error.
        let out = env.invoke(request("\"crash\"")).await;
        assert!(
            matches!(out.status, InvokeStatus::Fatal(_)),
            "{:?}",
            out.status
        );
        assert!(
            matches!(&out.reply, RuntimeReply::Error { error_type: Some(t), .. } if t == "Runtime.ExitError"),
            "{:?}",
            out.reply
        );
        env.shutdown();
    }

    #[tokio::test]
    async fn a_hung_runtime_times_out_and_init_errors_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let launcher = ScriptedLauncher::new(echo_or_fail);
        let lines = Arc::new(Lines::default());
        let env = Environment::start(
            config(dir.path(), Duration::from_millis(300)),
            &launcher,
            lines.clone(),
        )
        .await;
        let out = env.invoke(request("\"hang\"")).await;
        assert!(
            matches!(out.status, InvokeStatus::Fatal(_)),
            "{:?}",
            out.status
        );
        assert!(
            matches!(&out.reply, RuntimeReply::Error { error_type: Some(t), .. } if t == "Sandbox.Timedout"),
            "{:?}",
            out.reply
        );
        env.shutdown();

        let failing =
            ScriptedLauncher::new(echo_or_fail).with_init(Init::Fail("Runtime.Boom".into()));
        let env = Environment::start(
            config(dir.path(), Duration::from_secs(5)),
            &failing,
            lines.clone(),
        )
        .await;
        let out = env.invoke(request("1")).await;
        assert!(
            matches!(out.status, InvokeStatus::Fatal(_)),
            "{:?}",
            out.status
        );
        assert!(
            matches!(&out.reply, RuntimeReply::Error { error_type: Some(t), .. } if t.contains("Runtime.Boom")),
            "{:?}",
            out.reply
        );
    }
}
