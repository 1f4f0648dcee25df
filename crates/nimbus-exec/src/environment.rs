//! One execution environment: a runtime process, its Runtime API endpoint, its log stream, and
//! the lifecycle Lambda gives it.
//!
//! State machine: `Initializing → Ready ⇄ Busy → Dead`. Init ends at the runtime's first
//! `/next` (or fails: `/init/error`, exit, the 10 s init limit). One invocation runs at a time; a
//! timeout or a crash kills the environment and the next invoke gets a fresh one. Logs (the
//! runtime's merged stdout/stderr plus the platform's START/END/REPORT lines) flow through a
//! per-environment task to the [`LogSink`], never on the response path.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::launcher::{LaunchSpec, Launcher, ProcessControl, describe_exit};
use crate::logpipe::{self, LogPipe};
use crate::runtimes::ResolvedRuntime;

/// Where an environment's log lines go. The returned future resolves once the lines are
/// stored; the environment reads no more of its runtime's output until then, so a sink that
/// falls behind (or rate-limits) slows the runtime down through its full pipe instead of
/// letting output pile up in memory.
pub trait LogSink: Send + Sync + 'static {
    /// Stores `lines` in log group `group`, stream `stream`, in order; resolves once they are
    /// stored.
    fn write(
        &self,
        group: &str,
        stream: &str,
        lines: Vec<LogLine>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

/// How much runtime output one invocation may log; output past either limit is dropped and a
/// marker line says how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes of runtime output one invocation (or the init phase) may log; 16 MiB by default.
    pub max_invocation_bytes: u64,
    /// Lines of runtime output one invocation (or the init phase) may log; 200,000 by default.
    pub max_invocation_lines: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_invocation_bytes: 16 * 1024 * 1024,
            max_invocation_lines: 200_000,
        }
    }
}

/// What `LogType: Tail` keeps of an invocation's log: its last 4 KB (a ring; older text is
/// dropped as new text arrives).
const TAIL_KEEP: usize = 4096;

/// Runtime output counted against [`LogLimits`] in the current invocation (or init).
#[derive(Default)]
struct Budget {
    bytes: u64,
    lines: u64,
    dropped_bytes: u64,
    dropped_lines: u64,
}

impl Budget {
    /// Whether a runtime line fits; counts it either way.
    fn admit(&mut self, limits: &LogLimits, line: &str) -> bool {
        let len = line.len() as u64;
        if self.bytes + len > limits.max_invocation_bytes
            || self.lines + 1 > limits.max_invocation_lines
        {
            self.dropped_bytes += len;
            self.dropped_lines += 1;
            return false;
        }
        self.bytes += len;
        self.lines += 1;
        true
    }

    /// The truncation marker, once, if anything was dropped; resets the count.
    fn marker(&mut self, limits: &LogLimits) -> Option<String> {
        if self.dropped_lines == 0 {
            return None;
        }
        let m = format!(
            "[Nimbus] Log output truncated: {} lines ({} bytes) dropped over the per-invocation limit of {} bytes / {} lines",
            self.dropped_lines,
            self.dropped_bytes,
            limits.max_invocation_bytes,
            limits.max_invocation_lines
        );
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
        Some(m)
    }
}

/// One log event as the environment hands it to the [`LogSink`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// When the line was read from the runtime (or written by the platform), in milliseconds since
    /// the Unix epoch.
    pub ts_ms: i64,
    /// The line without its line break. A carriage return inside a runtime's line becomes a line
    /// feed, so one event may span several lines.
    pub message: String,
}

/// Everything an environment needs to know about the function version it runs.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    /// The function's name (the core puts it in `AWS_LAMBDA_FUNCTION_NAME` in [`Self::env`]).
    pub function_name: String,
    /// The version this environment runs: `$LATEST` or a published number; it appears in the log
    /// stream name and the START line.
    pub version: String,
    /// `MemorySize` in MiB: the memory limit where the launcher enforces one, and the REPORT line's
    /// Memory Size.
    pub memory_mb: u32,
    /// The function's `Timeout`: how long one invocation may run before the environment is killed.
    pub timeout: Duration,
    /// How long init may take (until the runtime's first `/next`); Lambda's is 10 s.
    pub init_timeout: Duration,
    /// The runtime that starts the process.
    pub runtime: ResolvedRuntime,
    /// The unpacked code on the host; the runtime sees it at the launcher's guest path, if any.
    pub task_root: PathBuf,
    /// User variables and platform variables; the per-environment ones
    /// (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_LOG_STREAM_NAME`) are added here.
    pub env: Vec<(String, String)>,
    /// The log group the environment writes to, normally `/aws/lambda/<function name>`.
    pub log_group: String,
    /// The server's region, as it appears in the runtime version ARN of the `INIT_START` line.
    pub region: String,
    /// The runtime process's `RLIMIT_NOFILE`.
    pub max_open_files: u64,
    /// Runtime files on the host (the bundled bootstrap's directory for managed runtimes).
    pub runtime_dir: Option<PathBuf>,
    /// Host directories the runtime needs at their own path (a managed runtime's interpreter).
    pub ro_paths: Vec<PathBuf>,
    /// `/tmp` size in MiB (`EphemeralStorage`).
    pub ephemeral_mb: u32,
    /// How much runtime output an invocation may log.
    pub log_limits: LogLimits,
}

/// One invocation handed to an environment.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// The invocation's request id (the Runtime API's `Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The event, passed to the runtime unchanged as the body of `/next`.
    pub payload: Bytes,
    /// The ARN the caller invoked, with its qualifier if it gave one
    /// (`Lambda-Runtime-Invoked-Function-Arn`).
    pub invoked_arn: String,
    /// The client context JSON, already base64-decoded (`Lambda-Runtime-Client-Context`).
    pub client_context: Option<String>,
    /// The Cognito identity JSON (`Lambda-Runtime-Cognito-Identity`); Nimbus never sets it today.
    pub cognito_identity: Option<String>,
    /// The X-Ray trace header (`Lambda-Runtime-Trace-Id`).
    pub trace_id: String,
    /// Collect this invocation's log lines for `X-Amz-Log-Result`.
    pub tail: bool,
}

/// What the runtime (or the platform on its behalf) answered.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeReply {
    /// The runtime posted `/invocation/{id}/response`.
    Response {
        /// The response body, as posted.
        body: Bytes,
        /// The `Content-Type` the runtime posted it with, if any.
        content_type: Option<String>,
    },
    /// The runtime posted an `/invocation/{id}/error`, or the platform reports one for it.
    Error {
        /// The error document, normally `{"errorType": …, "errorMessage": …}`.
        body: Bytes,
        /// The `Lambda-Runtime-Function-Error-Type` header (e.g. `Runtime.ExitError`), if the
        /// runtime sent one.
        error_type: Option<String>,
    },
}

impl RuntimeReply {
    /// An error the platform reports for the function (`Sandbox.Timedout`, `Runtime.ExitError`…).
    pub fn platform_error(error_type: &str, message: &str) -> RuntimeReply {
        RuntimeReply::Error {
            body: Bytes::from(
                serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string(),
            ),
            error_type: Some(error_type.to_string()),
        }
    }
}

/// How an invocation ended, and whether its environment may be reused.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeStatus {
    /// The runtime posted a response.
    Success,
    /// The function or runtime reported an error; the environment stays usable.
    Error(String),
    /// The environment was lost (timeout, crash, init failure): it must not be reused.
    Fatal(String),
}

/// The result of [`Environment::invoke`].
#[derive(Debug)]
pub struct InvokeOutcome {
    /// What goes back to the caller.
    pub reply: RuntimeReply,
    /// Whether it succeeded and whether the environment may be reused.
    pub status: InvokeStatus,
    /// From handing the event over to the reply (the REPORT line's Duration), init excluded.
    pub duration: Duration,
    /// The init phase's duration, on the first invocation of an environment only (a cold start).
    pub init_duration: Option<Duration>,
    /// Duration plus any init duration, rounded up to the next millisecond (at least 1); the core
    /// applies its own billing granularity.
    pub billed_ms: u64,
    /// This invocation's log text, if `tail` was asked for (resolves after REPORT is logged).
    pub tail: Option<oneshot::Receiver<String>>,
}

/// Why init failed.
#[derive(Debug, Clone)]
pub enum InitFailure {
    /// The runtime posted `/runtime/init/error`.
    Reported {
        /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
        error_type: Option<String>,
        /// The error document the runtime posted.
        body: Bytes,
    },
    /// The process exited before its first `/next`; how, as [`describe_exit`] renders it.
    Exited(String),
    /// Init ran past [`EnvConfig::init_timeout`] (which is carried).
    TimedOut(Duration),
    /// The process could not be started (no `bootstrap`, or the launcher failed); why.
    Launch(String),
}

impl InitFailure {
    fn error_type(&self) -> String {
        match self {
            InitFailure::Reported { error_type, .. } => error_type
                .clone()
                .unwrap_or_else(|| "Runtime.Unknown".to_string()),
            InitFailure::Exited(_) => "Runtime.ExitError".into(),
            InitFailure::TimedOut(_) => "Sandbox.Timedout".into(),
            InitFailure::Launch(_) => "Runtime.InvalidEntrypoint".into(),
        }
    }

    fn reply(&self, request_id: &str) -> RuntimeReply {
        match self {
            InitFailure::Reported { error_type, body } => RuntimeReply::Error {
                body: body.clone(),
                error_type: error_type.clone(),
            },
            InitFailure::Exited(how) => RuntimeReply::platform_error(
                "Runtime.ExitError",
                &format!("RequestId: {request_id} Error: Runtime exited with error: {how}"),
            ),
            InitFailure::TimedOut(d) => RuntimeReply::platform_error(
                "Sandbox.Timedout",
                &format!(
                    "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                    d.as_secs_f64()
                ),
            ),
            InitFailure::Launch(msg) => RuntimeReply::platform_error(
                "Runtime.InvalidEntrypoint",
                &format!("RequestId: {request_id} Error: {msg}"),
            ),
        }
    }
}

/// An invocation waiting for (or being served by) the runtime.
pub(crate) struct Pending {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: i64,
    pub invoked_arn: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub trace_id: String,
    pub reply: oneshot::Sender<RuntimeReply>,
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<RuntimeReply>,
}

#[derive(Debug, Clone, PartialEq)]
enum InitSignal {
    Initializing,
    Ready,
    Failed(Option<String>, Bytes),
}

/// State shared between the environment and its Runtime API server.
pub(crate) struct Shared {
    pub(crate) next_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    current: Mutex<Option<Current>>,
    init: watch::Sender<InitSignal>,
}

impl Shared {
    pub(crate) fn mark_ready(&self) {
        self.init.send_if_modified(|s| {
            if *s == InitSignal::Initializing {
                *s = InitSignal::Ready;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn init_error(&self, error_type: Option<String>, body: Bytes) {
        self.init.send_if_modified(|s| {
            if *s == InitSignal::Initializing {
                *s = InitSignal::Failed(error_type, body);
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn begin(&self, p: Pending) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        *cur = Some(Current {
            request_id: p.request_id,
            reply: p.reply,
        });
    }

    pub(crate) fn is_current(&self, id: &str) -> bool {
        let cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        cur.as_ref().is_some_and(|c| c.request_id == id)
    }

    /// Completes the current invocation if its id matches. Returns whether it did.
    pub(crate) fn complete(&self, id: &str, reply: RuntimeReply) -> bool {
        let taken = {
            let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match cur.as_ref() {
                Some(c) if c.request_id == id => cur.take(),
                _ => None,
            }
        };
        match taken {
            Some(c) => {
                let _ = c.reply.send(reply);
                true
            }
            None => false,
        }
    }
}

enum LogMsg {
    /// A platform line, logged after everything the runtime wrote so far.
    Line(String),
    /// START: optionally begin collecting the invocation's lines for the tail. `before` holds
    /// what the runtime wrote before the event was handed over (drained at that moment).
    Start {
        line: String,
        capture: bool,
        before: Vec<String>,
    },
    /// END and REPORT (the REPORT gets Max Memory Used filled in here, off the response path).
    Finish {
        end_line: String,
        report: Report,
        tail: Option<oneshot::Sender<String>>,
    },
    /// Acknowledged once everything before it was handed to the sink.
    Flush(oneshot::Sender<()>),
}

struct Report {
    request_id: String,
    duration: Duration,
    billed_ms: u64,
    memory_mb: u32,
    init_duration: Option<Duration>,
    out_of_memory: bool,
    status: Option<String>,
}

/// A running execution environment.
pub struct Environment {
    id: String,
    config: Arc<EnvConfig>,
    log_stream: String,
    next_tx: mpsc::UnboundedSender<Pending>,
    log_tx: mpsc::UnboundedSender<LogMsg>,
    process: Mutex<Option<Arc<dyn ProcessControl>>>,
    exit_rx: watch::Receiver<Option<String>>,
    server: Mutex<Option<tokio::task::AbortHandle>>,
    started: Instant,
    init_duration_us: AtomicU64,
    first_invoke_pending: AtomicBool,
    dead: AtomicBool,
    init_failure: Mutex<Option<InitFailure>>,
    last_used: Mutex<Instant>,
    /// The runtime's output pipe (shared with the log task); none if setup failed before it.
    pipe: Option<Arc<LogPipe>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Environment {
    /// Starts an environment and waits for its init phase to end. On init failure the returned
    /// environment is dead and [`Environment::invoke`] answers with the init error.
    pub async fn start(
        config: Arc<EnvConfig>,
        launcher: &dyn Launcher,
        sink: Arc<dyn LogSink>,
    ) -> Arc<Environment> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let log_stream = format!(
            "{}/[{}]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            config.version,
            id
        );
        let (next_tx, next_rx) = mpsc::unbounded_channel();
        let (init_tx, mut init_rx) = watch::channel(InitSignal::Initializing);
        let shared = Arc::new(Shared {
            next_rx: tokio::sync::Mutex::new(next_rx),
            current: Mutex::new(None),
            init: init_tx,
        });
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None::<String>);
        let started = Instant::now();

        // The Runtime API listens on the host's loopback unless the launcher gives each
        // environment a network of its own (and the listener inside it).
        let guest_api = launcher.guest_runtime_api();
        let setup = async {
            let (listener, address) = match &guest_api {
                Some(a) => (None, a.clone()),
                None => {
                    let l = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
                    let a = format!("127.0.0.1:{}", l.local_addr()?.port());
                    (Some(l), a)
                }
            };
            let (pipe, write_end) = logpipe::pipe()?;
            Ok::<_, std::io::Error>((listener, address, Arc::new(pipe), write_end))
        };
        let (listener, runtime_api, pipe, write_end) = match setup.await {
            Ok(x) => x,
            Err(e) => {
                return Self::failed(
                    id,
                    config,
                    log_stream,
                    next_tx,
                    log_tx,
                    exit_rx,
                    InitFailure::Launch(format!("could not set up the environment: {e}")),
                );
            }
        };

        let mut env_vars = config.env.clone();
        env_vars.push(("AWS_LAMBDA_RUNTIME_API".into(), runtime_api));
        env_vars.push(("AWS_LAMBDA_LOG_STREAM_NAME".into(), log_stream.clone()));
        let guest = launcher.guest_paths();
        let (task_root, runtime_dir) = match &guest {
            Some(g) => (g.task_root.clone(), Some(g.runtime_dir.clone())),
            None => (config.task_root.clone(), config.runtime_dir.clone()),
        };
        let (program, args) = config.runtime.command(&task_root, runtime_dir.as_deref());
        let spec = LaunchSpec {
            program: program.clone(),
            args,
            env: env_vars,
            cwd: task_root,
            memory_mb: config.memory_mb,
            output: write_end,
            max_open_files: config.max_open_files,
            name: id.clone(),
            task_root: config.task_root.clone(),
            runtime_dir: config.runtime_dir.clone(),
            ro_paths: config.ro_paths.clone(),
            ephemeral_mb: config.ephemeral_mb,
        };
        let env = Arc::new(Environment {
            id,
            config: config.clone(),
            log_stream: log_stream.clone(),
            next_tx,
            log_tx: log_tx.clone(),
            process: Mutex::new(None),
            exit_rx,
            server: Mutex::new(None),
            started,
            init_duration_us: AtomicU64::new(0),
            first_invoke_pending: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            init_failure: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            pipe: Some(pipe.clone()),
        });
        let _ = log_tx.send(LogMsg::Line(format!(
            "INIT_START Runtime Version: {}\tRuntime Version ARN: arn:aws:lambda:{}::runtime:{}",
            config.runtime.version_label(),
            config.region,
            runtime_version_hash(&config.runtime.version_label())
        )));

        let bootstrap_missing =
            config.runtime.interpreter.is_none() && !config.task_root.join("bootstrap").exists();
        let launched = if bootstrap_missing {
            Err(InitFailure::Launch(format!(
                "Couldn't find valid bootstrap(s): [{}]",
                program.display()
            )))
        } else {
            launcher.launch(spec).await.map_err(|e| {
                InitFailure::Launch(match &e {
                    crate::LaunchError::Spawn { program, source } => {
                        format!("fork/exec {}: {}", program.display(), describe_io(source))
                    }
                    other => other.to_string(),
                })
            })
        };
        let control = launched.as_ref().ok().map(|l| l.control.clone());
        tokio::spawn(log_task(
            config.clone(),
            log_stream,
            pipe,
            log_rx,
            control,
            sink,
        ));
        let (control, exit, listener) = match launched {
            Ok(l) => {
                let listener = match (listener, l.runtime_api) {
                    (Some(host), _) => Ok(host),
                    (None, Some(guest)) => tokio::net::TcpListener::from_std(guest)
                        .map_err(|e| format!("the Runtime API listener: {e}")),
                    (None, None) => Err("the launcher gave no Runtime API listener".to_string()),
                };
                match listener {
                    Ok(listener) => (l.control, l.exit, listener),
                    Err(why) => {
                        l.control.kill();
                        // The exit future frees what the launch holds.
                        tokio::spawn(l.exit);
                        return env.fail_init(InitFailure::Launch(why));
                    }
                }
            }
            Err(failure) => return env.fail_init(failure),
        };
        let server = tokio::spawn(crate::runtime_api::serve(
            listener,
            shared.clone(),
            control.runtime_uid(),
        ));
        *env.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server.abort_handle());
        *env.process.lock().unwrap_or_else(|e| e.into_inner()) = Some(control);
        tokio::spawn(async move {
            let status: ExitStatus = exit.await;
            let _ = exit_tx.send(Some(describe_exit(&status)));
        });

        // Init: until the first /next, an /init/error, an exit, or the init time limit.
        let mut exit_watch = env.exit_rx.clone();
        let limit = tokio::time::sleep(config.init_timeout);
        tokio::pin!(limit);
        let outcome = loop {
            tokio::select! {
                biased;
                changed = init_rx.changed() => {
                    if changed.is_err() { break Err(InitFailure::Exited("signal: killed".into())); }
                    match init_rx.borrow_and_update().clone() {
                        InitSignal::Ready => break Ok(()),
                        InitSignal::Failed(t, b) => break Err(InitFailure::Reported { error_type: t, body: b }),
                        InitSignal::Initializing => continue,
                    }
                }
                r = exit_watch.wait_for(Option::is_some) => {
                    let how = r.ok().and_then(|v| v.clone()).unwrap_or_else(|| "signal: killed".into());
                    break Err(InitFailure::Exited(how));
                }
                _ = &mut limit => break Err(InitFailure::TimedOut(config.init_timeout)),
            }
        };
        let init = started.elapsed();
        env.init_duration_us
            .store(init.as_micros() as u64, Ordering::Relaxed);
        match outcome {
            Ok(()) => env,
            Err(failure) => env.fail_init(failure),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn failed(
        id: String,
        config: Arc<EnvConfig>,
        log_stream: String,
        next_tx: mpsc::UnboundedSender<Pending>,
        log_tx: mpsc::UnboundedSender<LogMsg>,
        exit_rx: watch::Receiver<Option<String>>,
        failure: InitFailure,
    ) -> Arc<Environment> {
        let env = Arc::new(Environment {
            id,
            config,
            log_stream,
            next_tx,
            log_tx,
            process: Mutex::new(None),
            exit_rx,
            server: Mutex::new(None),
            started: Instant::now(),
            init_duration_us: AtomicU64::new(0),
            first_invoke_pending: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            init_failure: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            pipe: None,
        });
        env.fail_init(failure)
    }

    fn fail_init(self: Arc<Self>, failure: InitFailure) -> Arc<Environment> {
        let init = self.started.elapsed();
        self.init_duration_us
            .store(init.as_micros() as u64, Ordering::Relaxed);
        let status = match &failure {
            InitFailure::TimedOut(_) => "Status: timeout".to_string(),
            other => format!("Status: error\tError Type: {}", other.error_type()),
        };
        let _ = self.log_tx.send(LogMsg::Line(format!(
            "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\t{status}",
            init.as_secs_f64() * 1000.0
        )));
        *self.init_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
        self.shutdown();
        self
    }

    /// The environment's id: 32 hex digits, also the last part of its log stream name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The log stream this environment writes to: `YYYY/MM/DD/[<version>]<id>`, as Lambda names
    /// them.
    pub fn log_stream(&self) -> &str {
        &self.log_stream
    }

    /// The function configuration the environment was started with.
    pub fn config(&self) -> &Arc<EnvConfig> {
        &self.config
    }

    /// Whether this environment can take another invocation.
    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire)
    }

    /// How long the environment has been idle.
    pub fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// The init failure, if init failed.
    pub fn init_failure(&self) -> Option<InitFailure> {
        self.init_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The runtime process's id, as the server sees it; `None` if it never started.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|p| p.pid())
    }

    /// Runs one invocation. The caller must not run two at once on one environment.
    pub async fn invoke(&self, req: InvokeRequest) -> InvokeOutcome {
        let init_duration = if self.first_invoke_pending.swap(false, Ordering::AcqRel) {
            Some(Duration::from_micros(
                self.init_duration_us.load(Ordering::Relaxed),
            ))
        } else {
            None
        };
        // Whatever the runtime wrote until now belongs before START: drain it here, before the
        // event is handed over, rather than when the log task gets to the START message.
        let mut before = Vec::new();
        if let Some(pipe) = &self.pipe {
            pipe.drain_now(&mut before);
            pipe.flush_partial(&mut before);
        }
        let _ = self.log_tx.send(LogMsg::Start {
            line: format!(
                "START RequestId: {} Version: {}",
                req.request_id, self.config.version
            ),
            capture: req.tail,
            before,
        });
        let begun = Instant::now();

        if let Some(failure) = self.init_failure() {
            let reply = failure.reply(&req.request_id);
            let status = InvokeStatus::Fatal(failure.error_type());
            return self.finish(req, reply, status, begun, init_duration);
        }

        let timeout = self.config.timeout;
        let deadline_ms = now_ms() + timeout.as_millis() as i64;
        let (reply_tx, reply_rx) = oneshot::channel();
        let pending = Pending {
            request_id: req.request_id.clone(),
            payload: req.payload.clone(),
            deadline_ms,
            invoked_arn: req.invoked_arn.clone(),
            client_context: req.client_context.clone(),
            cognito_identity: req.cognito_identity.clone(),
            trace_id: req.trace_id.clone(),
            reply: reply_tx,
        };
        if self.next_tx.send(pending).is_err() {
            let reply = RuntimeReply::platform_error(
                "Sandbox.Failure",
                &format!(
                    "RequestId: {} Error: the environment is gone",
                    req.request_id
                ),
            );
            return self.finish(
                req,
                reply,
                InvokeStatus::Fatal("Sandbox.Failure".into()),
                begun,
                init_duration,
            );
        }
        let mut exit_watch = self.exit_rx.clone();
        let (reply, status) = tokio::select! {
            biased;
            r = reply_rx => match r {
                Ok(reply @ RuntimeReply::Response { .. }) => (reply, InvokeStatus::Success),
                Ok(reply @ RuntimeReply::Error { .. }) => {
                    let t = match &reply {
                        RuntimeReply::Error { error_type, .. } => error_type.clone().unwrap_or_else(|| "Unhandled".into()),
                        _ => "Unhandled".into(),
                    };
                    (reply, InvokeStatus::Error(t))
                }
                Err(_) => (
                    RuntimeReply::platform_error("Sandbox.Failure", &format!("RequestId: {} Error: the invocation was lost", req.request_id)),
                    InvokeStatus::Fatal("Sandbox.Failure".into()),
                ),
            },
            _ = tokio::time::sleep(timeout) => {
                self.kill();
                let secs = timeout.as_secs_f64();
                let _ = self.log_tx.send(LogMsg::Line(format!(
                    "{} {} Task timed out after {secs:.2} seconds",
                    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    req.request_id
                )));
                (
                    RuntimeReply::platform_error("Sandbox.Timedout", &format!("RequestId: {} Error: Task timed out after {secs:.2} seconds", req.request_id)),
                    InvokeStatus::Fatal("Sandbox.Timedout".into()),
                )
            }
            r = exit_watch.wait_for(Option::is_some) => {
                let how = r.ok().and_then(|v| v.clone()).unwrap_or_else(|| "signal: killed".into());
                let msg = format!("RequestId: {} Error: Runtime exited with error: {how}", req.request_id);
                // A kill by the memory cgroup is reported as such (the exit itself is SIGKILL).
                let kind = if self.out_of_memory() { "Runtime.OutOfMemory" } else { "Runtime.ExitError" };
                let _ = self.log_tx.send(LogMsg::Line(msg.clone()));
                let _ = self.log_tx.send(LogMsg::Line(kind.into()));
                (
                    RuntimeReply::platform_error(kind, &msg),
                    InvokeStatus::Fatal(kind.into()),
                )
            }
        };
        self.finish(req, reply, status, begun, init_duration)
    }

    fn finish(
        &self,
        req: InvokeRequest,
        reply: RuntimeReply,
        status: InvokeStatus,
        begun: Instant,
        init_duration: Option<Duration>,
    ) -> InvokeOutcome {
        let duration = begun.elapsed();
        if let InvokeStatus::Fatal(_) = status {
            self.shutdown();
        }
        let total_ms = duration.as_secs_f64() * 1000.0
            + init_duration
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0);
        let billed_ms = (total_ms.ceil() as u64).max(1);
        let report_status = match &status {
            InvokeStatus::Success => None,
            InvokeStatus::Fatal(t) if t == "Sandbox.Timedout" => {
                Some("Status: timeout".to_string())
            }
            InvokeStatus::Error(t) | InvokeStatus::Fatal(t) => {
                Some(format!("Status: error\tError Type: {t}"))
            }
        };
        let (tail_tx, tail_rx) = if req.tail {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let _ = self.log_tx.send(LogMsg::Finish {
            end_line: format!("END RequestId: {}", req.request_id),
            report: Report {
                request_id: req.request_id,
                duration,
                billed_ms,
                memory_mb: self.config.memory_mb,
                init_duration,
                out_of_memory: matches!(&status, InvokeStatus::Fatal(t) if t == "Runtime.OutOfMemory"),
                status: report_status,
            },
            tail: tail_tx,
        });
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        InvokeOutcome {
            reply,
            status,
            duration,
            init_duration,
            billed_ms,
            tail: tail_rx,
        }
    }

    fn out_of_memory(&self) -> bool {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|p| p.out_of_memory())
    }

    fn kill(&self) {
        if let Some(p) = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            p.kill();
        }
    }

    /// Waits (at most `limit`) until every log line so far was handed to the log sink.
    pub async fn flush_logs(&self, limit: Duration) {
        let (ack, done) = oneshot::channel();
        if self.log_tx.send(LogMsg::Flush(ack)).is_ok() {
            let _ = tokio::time::timeout(limit, done).await;
        }
    }

    /// Waits (at most `limit`) until the runtime process is gone and reaped (after
    /// [`Environment::shutdown`]). Environments that never launched count as gone.
    pub async fn wait_stopped(&self, limit: Duration) {
        let launched = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if launched {
            let mut rx = self.exit_rx.clone();
            let _ = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        }
    }

    /// Stops the environment: kills the runtime and closes its Runtime API.
    pub fn shutdown(&self) {
        self.dead.store(true, Ordering::Release);
        self.kill();
        if let Some(s) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.abort();
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn runtime_version_hash(label: &str) -> String {
    // A stable 64-hex identifier per runtime version label (the form of AWS's runtime ARNs).
    let mut h: u64 = 0xcbf29ce484222325;
    let mut out = String::with_capacity(64);
    for round in 0..4u8 {
        for b in label.bytes().chain(std::iter::once(round)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The per-environment log task: runtime output and platform lines, in order, to the sink.
async fn log_task(
    config: Arc<EnvConfig>,
    stream: String,
    pipe: Arc<LogPipe>,
    mut rx: mpsc::UnboundedReceiver<LogMsg>,
    process: Option<Arc<dyn ProcessControl>>,
    sink: Arc<dyn LogSink>,
) {
    let group = config.log_group.clone();
    let limits = config.log_limits;
    let mut capture: Option<String> = None;
    let mut budget = Budget::default();
    let mut lines = Vec::new();
    let mut out: Vec<LogLine> = Vec::new();
    let mut peak_mb: u64 = 0;
    let push = |out: &mut Vec<LogLine>, capture: &mut Option<String>, msg: String| {
        if let Some(buf) = capture.as_mut() {
            buf.push_str(&msg);
            buf.push('\n');
            if buf.len() > 2 * TAIL_KEEP {
                let mut cut = buf.len() - TAIL_KEEP;
                while !buf.is_char_boundary(cut) {
                    cut += 1;
                }
                buf.drain(..cut);
            }
        }
        out.push(LogLine {
            ts_ms: now_ms(),
            message: msg,
        });
    };
    // Runtime output: counted against the invocation's budget, dropped past it.
    let runtime = |out: &mut Vec<LogLine>,
                   capture: &mut Option<String>,
                   budget: &mut Budget,
                   lines: &mut Vec<String>| {
        for l in lines.drain(..) {
            if budget.admit(&limits, &l) {
                push(out, capture, l);
            }
        }
    };
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                // Everything the runtime wrote before this platform event comes first. (A
                // START carries what was written before its event was handed over; what the
                // pipe holds now may already be the invocation's own output.)
                if !matches!(msg, LogMsg::Start { .. }) {
                    pipe.drain_now(&mut lines);
                }
                if matches!(msg, LogMsg::Finish { .. }) {
                    pipe.flush_partial(&mut lines);
                }
                runtime(&mut out, &mut capture, &mut budget, &mut lines);
                match msg {
                    LogMsg::Line(l) => push(&mut out, &mut capture, l),
                    LogMsg::Flush(ack) => {
                        pipe.flush_partial(&mut lines);
                        runtime(&mut out, &mut capture, &mut budget, &mut lines);
                        if !out.is_empty() {
                            sink.write(&group, &stream, std::mem::take(&mut out)).await;
                        }
                        let _ = ack.send(());
                    }
                    LogMsg::Start { line, capture: c, before } => {
                        let mut before = before;
                        runtime(&mut out, &mut capture, &mut budget, &mut before);
                        if let Some(m) = budget.marker(&limits) {
                            push(&mut out, &mut capture, m);
                        }
                        budget = Budget::default();
                        capture = c.then(String::new);
                        push(&mut out, &mut capture, line);
                    }
                    LogMsg::Finish { end_line, report, tail } => {
                        if let Some(m) = budget.marker(&limits) {
                            push(&mut out, &mut capture, m);
                        }
                        push(&mut out, &mut capture, end_line);
                        if let Some(p) = &process
                            && let Some(bytes) = p.peak_memory_bytes()
                        {
                            peak_mb = peak_mb.max(bytes.div_ceil(1024 * 1024));
                        }
                        let max_used = if report.out_of_memory { u64::from(report.memory_mb) } else { peak_mb };
                        let mut line = format!(
                            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
                            report.request_id,
                            report.duration.as_secs_f64() * 1000.0,
                            report.billed_ms,
                            report.memory_mb,
                            max_used,
                        );
                        if let Some(init) = report.init_duration {
                            line.push_str(&format!("Init Duration: {:.2} ms\t", init.as_secs_f64() * 1000.0));
                        }
                        if let Some(s) = report.status {
                            line.push_str(&s);
                            line.push('\t');
                        }
                        push(&mut out, &mut capture, line);
                        if let (Some(tail), Some(text)) = (tail, capture.take()) {
                            let _ = tail.send(text);
                        }
                    }
                }
            }
            _ = pipe.read_lines(&mut lines), if !pipe.is_closed() => {
                runtime(&mut out, &mut capture, &mut budget, &mut lines);
            }
        }
        if !out.is_empty() {
            sink.write(&group, &stream, std::mem::take(&mut out)).await;
        }
    }
    // The environment is gone; log what the runtime still had buffered.
    pipe.drain_now(&mut lines);
    pipe.flush_partial(&mut lines);
    runtime(&mut out, &mut capture, &mut budget, &mut lines);
    if let Some(m) = budget.marker(&limits) {
        push(&mut out, &mut capture, m);
    }
    if !out.is_empty() {
        sink.write(&group, &stream, out).await;
    }
}
