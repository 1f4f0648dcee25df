//! The invoke service: the one way into the data plane. Every trigger hands it an invocation;
//! it resolves the function, enforces payload limits and concurrency (account limit and
//! reserved concurrency, throttling with Lambda's `TooManyRequestsException` reasons), picks a
//! warm environment or starts one, runs the invocation, meters it and returns the result.
//!
//! Environments are pooled per function and reused while warm (last used first); a pool whose
//! function changed (new `RevisionId`) is retired. Idle environments are stopped after the
//! configured idle time.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use nimbus_exec::{
    EnvConfig, Environment, InvokeRequest, InvokeStatus, Launcher, LogSink, RuntimeReply,
};
use nimbus_store::{Store, UsageRow, WriteOp};

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::logs::LogService;
use crate::model::{FunctionRecord, FunctionState};
use crate::names::FunctionRef;
use crate::settings::Settings;

mod admission;

use admission::{Pools, Slot, pool_key};

/// Largest synchronous request payload (6 MiB).
pub const MAX_SYNC_PAYLOAD: usize = 6_291_456;
/// Largest asynchronous request payload (1 MiB).
pub const MAX_ASYNC_PAYLOAD: usize = 1_048_576;
/// `X-Amz-Log-Result` carries at most the last 4 KB of the invocation's log.
const TAIL_BYTES: usize = 4096;

/// Lambda's `InvocationType`: how the caller wants the function run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Synchronous: run now and answer the function's response (the default).
    RequestResponse,
    /// Asynchronous: queue the event durably and answer 202; delivery and retries follow.
    Event,
    /// Check that the function can be invoked, run nothing (204).
    DryRun,
}

/// Who an invocation is for: the principal that asked (a caller of the Lambda API) or the
/// service that triggers it for one of its resources. Every invocation carries one, and queued
/// events keep it, so that resource policies can be checked against it and records can say who
/// invoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind")]
pub enum Caller {
    /// A caller of the Lambda API in this account: the access key id its request was signed
    /// with, when it was (the signature is not verified yet: SigV4 verification is issue 12).
    Account {
        /// The caller's account (Nimbus's own account id).
        account_id: String,
        /// The access key id from the request's signature, when it was signed.
        access_key_id: Option<String>,
    },
    /// An AWS service acting for one of its resources: `sqs.amazonaws.com` for a queue's event
    /// source mapping, `apigateway.amazonaws.com` for an API's route, `lambda.amazonaws.com` for
    /// a destination record.
    Service {
        /// The service principal (`sqs.amazonaws.com`, `apigateway.amazonaws.com`,
        /// `lambda.amazonaws.com`).
        principal: String,
        /// The ARN of the resource the service acts for (a queue, an API route, a function).
        source_arn: String,
    },
    /// Anyone on the network: a function URL with `AuthType: NONE`.
    Anonymous,
}

impl Caller {
    /// A service acting for one of its resources.
    pub fn service(principal: &str, source_arn: impl Into<String>) -> Caller {
        Caller::Service {
            principal: principal.to_string(),
            source_arn: source_arn.into(),
        }
    }
}

/// One invocation request, from any trigger.
#[derive(Debug, Clone)]
pub struct InvokeInput {
    /// The function and the version or alias to invoke.
    pub target: FunctionRef,
    /// Who asked.
    pub caller: Caller,
    /// The event as bytes (JSON), at most [`MAX_SYNC_PAYLOAD`] (synchronous) or
    /// [`MAX_ASYNC_PAYLOAD`] (asynchronous).
    pub payload: Bytes,
    /// Synchronous, asynchronous or dry run.
    pub invocation_type: InvocationType,
    /// `LogType=Tail`: answer the last 4 KB of the invocation's log in `log_result` (synchronous
    /// only).
    pub log_tail: bool,
    /// Client context JSON (already base64-decoded).
    pub client_context: Option<String>,
    /// `X-Amz-Trace-Id` to hand to the function (as `Lambda-Runtime-Trace-Id`); a new one is
    /// made when absent.
    pub trace_header: Option<String>,
}

impl InvokeInput {
    /// A synchronous invocation from a trigger (an HTTP endpoint, an authorizer, a mapping):
    /// no log tail, client context or trace header.
    pub fn sync(target: FunctionRef, payload: impl Into<Bytes>, caller: Caller) -> InvokeInput {
        InvokeInput {
            target,
            caller,
            payload: payload.into(),
            invocation_type: InvocationType::RequestResponse,
            log_tail: false,
            client_context: None,
            trace_header: None,
        }
    }
}

/// How an invocation ended, for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ran (successfully or with a function error: see `function_error`).
    Completed,
    /// Queued durably for asynchronous delivery.
    Accepted,
    /// Checked, not run (`DryRun`).
    DryRun,
}

/// What the caller gets back.
#[derive(Debug, Clone)]
pub struct InvokeResult {
    /// Whether it ran, was queued or was only checked.
    pub outcome: Outcome,
    /// The function's response, or its error document when `function_error` (empty unless
    /// `Completed`).
    pub payload: Bytes,
    /// The response's content type as the runtime gave it (`application/json` for an error
    /// document).
    pub content_type: Option<String>,
    /// `X-Amz-Function-Error`: the function returned or raised an error; `payload` is its error
    /// document.
    pub function_error: bool,
    /// `X-Amz-Executed-Version`: the version that ran (`$LATEST` when nothing ran).
    pub executed_version: String,
    /// base64 of the last 4 KB of the log, when a tail was asked for.
    pub log_result: Option<String>,
    /// The invocation's request id (a UUID): `x-amzn-RequestId`, and the id in its log lines and
    /// records.
    pub request_id: String,
}

/// The invoke service, which every trigger goes through: it resolves the target, applies reserved
/// and account concurrency, keeps each function version's execution environments (warm and
/// provisioned) and queues asynchronous events.
pub struct InvokeService {
    pub(crate) settings: Arc<Settings>,
    pub(crate) functions: Arc<FunctionService>,
    pub(crate) launcher: Arc<dyn Launcher>,
    pub(crate) logs: Arc<LogService>,
    store: Store,
    pools: Mutex<Pools>,
    /// Provisioned-concurrency settings (see `provisioned`).
    pub(crate) provisioned: crate::provisioned::ProvisionedConfigs,
    /// Set once the service is shared, for tasks the reaper starts.
    pub(crate) me: std::sync::OnceLock<std::sync::Weak<InvokeService>>,
    /// Accepted asynchronous events (see `async_invoke`).
    pub(crate) queue: crate::async_invoke::AsyncQueue,
    pub(crate) configs: Arc<crate::event_config::EventConfigs>,
    /// Where destination records and dead-letter events go (queues, and later topics).
    pub(crate) sinks: Arc<crate::sinks::Sinks>,
    /// Invocations between taking a slot and writing their usage row (cold starts included);
    /// shutdown lets them finish, bounded, before it stops environments.
    inflight: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

/// Counts an invocation in flight until dropped.
struct InFlight<'a>(&'a InvokeService);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self
            .0
            .inflight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.settled.notify_waiters();
        }
    }
}

fn trace_id() -> String {
    let now = chrono::Utc::now().timestamp();
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{now:08x}-{};Parent={};Sampled=0;Lineage=1:{}:0",
        &a[..24],
        &b[..16],
        &b[16..24]
    )
}

impl InvokeService {
    /// Starts the service: resumes interrupted function activations, reopens the asynchronous event
    /// queue and the provisioned-concurrency settings, and spawns the event dispatcher and the
    /// environment reaper (every 500 ms). Must be called inside a tokio runtime.
    pub fn new(
        settings: Arc<Settings>,
        functions: Arc<FunctionService>,
        launcher: Arc<dyn Launcher>,
        logs: Arc<LogService>,
        store: Store,
        configs: Arc<crate::event_config::EventConfigs>,
        sinks: Arc<crate::sinks::Sinks>,
    ) -> Result<Arc<InvokeService>> {
        functions.resume();
        let queue = crate::async_invoke::AsyncQueue::open(store.clone())?;
        let store_for_pc = store.clone();
        let svc = Arc::new(InvokeService {
            settings,
            functions,
            launcher,
            logs,
            store,
            pools: Mutex::new(Pools::default()),
            inflight: std::sync::atomic::AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
            queue,
            configs,
            sinks,
            provisioned: crate::provisioned::ProvisionedConfigs::open(store_for_pc)?,
            me: std::sync::OnceLock::new(),
        });
        let _ = svc.me.set(Arc::downgrade(&svc));
        tokio::spawn(svc.clone().dispatch());
        let weak = Arc::downgrade(&svc);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(svc) => svc.reap(),
                    None => break,
                }
            }
        });
        Ok(svc)
    }

    /// Asynchronous events accepted and not yet finished.
    pub fn pending_events(&self) -> usize {
        self.queue.pending()
    }

    /// The launcher's short name (`sandbox`, `process`, …), for logs and `nimbus doctor`.
    pub fn launcher_name(&self) -> &'static str {
        self.launcher.name()
    }

    /// What isolation the launcher gives environments.
    pub fn isolation(&self) -> Vec<nimbus_exec::Feature> {
        self.launcher.features()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Pools> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (environments alive, invocations in flight).
    pub fn usage(&self) -> (usize, usize) {
        let p = self.lock();
        let alive = p
            .every
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|e| e.is_alive())
            .count();
        (alive, p.inflight)
    }

    /// Σ reserved concurrency over all functions.
    pub fn reserved_total(&self) -> u64 {
        self.functions.reserved_total()
    }

    fn reap(&self) {
        let idle_limit = self.settings.idle_timeout;
        let mut retired = Vec::new();
        {
            let mut p = self.lock();
            let names: Vec<String> = p.by_function.keys().cloned().collect();
            for name in names {
                let (function, version) = name.split_once(':').unwrap_or((&name, "$LATEST"));
                let exists = self.functions.get(function).is_some()
                    && (version == "$LATEST"
                        || self.functions.qualified(function, version).is_some());
                if let Some(pool) = p.by_function.get_mut(&name) {
                    let (old, keep): (Vec<_>, Vec<_>) = pool
                        .idle
                        .drain(..)
                        .partition(|e| !exists || !e.is_alive() || e.idle_for() >= idle_limit);
                    pool.idle = keep;
                    retired.extend(old);
                    if !exists && pool.inflight == 0 {
                        p.by_function.remove(&name);
                    }
                }
            }
            p.every
                .retain(|w| w.upgrade().is_some_and(|e| e.is_alive()));
        }
        for e in retired {
            e.shutdown();
        }
        self.clone_for_provisioning();
    }

    /// Stops every environment (server shutdown) and waits (briefly) until their last log lines
    /// were handed to the store.
    pub async fn shutdown(&self) {
        // No new invocations; those in flight (cold starts included) finish first, bounded.
        self.lock().shutting_down = true;
        let deadline = tokio::time::Instant::now() + self.settings.invocation_drain;
        loop {
            let settled = self.settled.notified();
            if self.inflight.load(std::sync::atomic::Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                tracing::warn!(
                    inflight = self.inflight.load(std::sync::atomic::Ordering::Acquire),
                    "invocations still running at the end of the shutdown drain; stopping them"
                );
                break;
            }
        }
        let all: Vec<Arc<Environment>> = {
            let mut p = self.lock();
            p.shutting_down = true;
            // Strong references first: an idle environment held only by its pool would be
            // dropped by clearing the pool, and its queued log lines with it.
            let all: Vec<Arc<Environment>> = p.every.iter().filter_map(Weak::upgrade).collect();
            for pool in p.by_function.values_mut() {
                pool.idle.clear();
                pool.provisioned_idle.clear();
            }
            all
        };
        for e in &all {
            e.shutdown();
        }
        let limit = Duration::from_secs(2);
        let ends = all.iter().map(|e| async move {
            e.wait_stopped(limit).await;
            e.flush_logs(limit).await;
        });
        futures_util::future::join_all(ends).await;
        self.launcher.shutdown();
    }

    /// Drops a function's warm environments and asynchronous settings (after delete).
    pub fn forget(&self, name: &str) {
        self.configs.forget(name);
        self.forget_provisioned(name);
        let idle: Vec<Arc<Environment>> = {
            let mut p = self.lock();
            let prefix = format!("{name}:");
            p.by_function
                .iter_mut()
                .filter(|(k, _)| k.starts_with(&prefix))
                .flat_map(|(_, pool)| std::mem::take(&mut pool.idle))
                .collect()
        };
        for e in idle {
            e.shutdown();
        }
    }

    pub(crate) fn env_config(&self, rec: &FunctionRecord) -> Result<Arc<EnvConfig>> {
        let runtime = self
            .functions
            .catalog()
            .resolve(&rec.runtime)
            .map_err(|e| CoreError::Internal(e.to_string()))?
            .clone();
        let host_task_root = self.functions.task_root(&rec.code_hex);
        let host_runtime_dir = runtime.runtime_dir();
        // Paths as the function sees them: /var/task and /var/runtime in a sandbox.
        let (task_root, runtime_dir) = match self.launcher.guest_paths() {
            Some(g) => (g.task_root, g.runtime_dir),
            None => (
                host_task_root.clone(),
                host_runtime_dir
                    .clone()
                    .unwrap_or_else(|| host_task_root.clone()),
            ),
        };
        let s = &self.settings;
        let host_path = std::env::var("PATH").unwrap_or_default();
        // Unreserved defaults first, then the user's variables, then the reserved ones.
        let mut env: Vec<(String, String)> = vec![
            ("LANG".into(), "en_US.UTF-8".into()),
            (
                "PATH".into(),
                format!("/usr/local/bin:/usr/bin/:/bin:/opt/bin:{host_path}"),
            ),
            (
                "LD_LIBRARY_PATH".into(),
                format!(
                    "/lib64:/usr/lib64:{0}:{0}/lib:{1}:{1}/lib:/opt/lib",
                    runtime_dir.display(),
                    task_root.display()
                ),
            ),
            (
                "AWS_ENDPOINT_URL".into(),
                self.launcher
                    .guest_endpoint()
                    .unwrap_or_else(|| s.public_url.clone()),
            ),
            ("AWS_XRAY_CONTEXT_MISSING".into(), "LOG_ERROR".into()),
        ];
        env.extend(rec.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut reserved: Vec<(String, String)> = vec![
            ("_HANDLER".into(), rec.handler.clone()),
            ("AWS_REGION".into(), s.region.clone()),
            ("AWS_DEFAULT_REGION".into(), s.region.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), rec.name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                rec.memory_size.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), rec.version.clone()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".into(), rec.log_group()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_SESSION_TOKEN".into(), "test".into()),
            ("LAMBDA_TASK_ROOT".into(), task_root.display().to_string()),
            (
                "LAMBDA_RUNTIME_DIR".into(),
                runtime_dir.display().to_string(),
            ),
            ("TZ".into(), ":UTC".into()),
        ];
        if let Some(x) = runtime.execution_env() {
            reserved.push(("AWS_EXECUTION_ENV".into(), x));
        }
        if let Some(f) = &rec.logging.log_format
            && f == "JSON"
        {
            reserved.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
            if let Some(l) = &rec.logging.application_log_level {
                reserved.push(("AWS_LAMBDA_LOG_LEVEL".into(), l.clone()));
            }
        }
        env.retain(|(k, _)| !reserved.iter().any(|(r, _)| r == k));
        env.extend(reserved);
        Ok(Arc::new(EnvConfig {
            function_name: rec.name.clone(),
            version: rec.version.clone(),
            memory_mb: rec.memory_size,
            timeout: Duration::from_secs(u64::from(rec.timeout)),
            init_timeout: s.init_timeout,
            ro_paths: runtime.install_dir().into_iter().collect(),
            runtime,
            task_root: host_task_root,
            env,
            log_group: rec.log_group(),
            region: s.region.clone(),
            max_open_files: 1024,
            runtime_dir: host_runtime_dir,
            ephemeral_mb: rec.ephemeral_storage,
            log_limits: s.log_limits,
        }))
    }

    fn check_payload(payload: &Bytes, limit: usize) -> Result<Bytes> {
        if payload.len() > limit {
            return Err(CoreError::RequestTooLarge(format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )));
        }
        if payload.iter().all(u8::is_ascii_whitespace) {
            return Ok(Bytes::from_static(b"{}"));
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
            return Err(CoreError::InvalidRequestContent(format!(
                "Could not parse request body into json: Could not parse payload into json: {e}"
            )));
        }
        Ok(payload.clone())
    }

    /// Resolves the target and waits out a short Pending / InProgress phase.
    pub(crate) async fn target(&self, r: &FunctionRef) -> Result<Arc<FunctionRecord>> {
        let rec = self.functions.resolve_for_invoke(r)?;
        let rec = if rec.version == "$LATEST"
            && (rec.state == FunctionState::Pending
                || rec.last_update_status == crate::model::UpdateStatus::InProgress)
        {
            self.functions.settled(&rec.name).await?
        } else {
            rec
        };
        if rec.state == FunctionState::Failed {
            return Err(CoreError::Conflict(format!(
                "The operation cannot be performed at this time. The function is currently in the following state: Failed ({})",
                rec.state_reason.clone().unwrap_or_default()
            )));
        }
        Ok(rec)
    }

    /// Invokes a function (any invocation type).
    pub async fn invoke(self: &Arc<Self>, input: InvokeInput) -> Result<InvokeResult> {
        let limit = match input.invocation_type {
            InvocationType::Event => MAX_ASYNC_PAYLOAD,
            _ => MAX_SYNC_PAYLOAD,
        };
        let payload = Self::check_payload(&input.payload, limit)?;
        let rec = self.target(&input.target).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        match input.invocation_type {
            InvocationType::DryRun => Ok(InvokeResult {
                outcome: Outcome::DryRun,
                payload: Bytes::new(),
                content_type: None,
                function_error: false,
                executed_version: "$LATEST".into(),
                log_result: None,
                request_id,
            }),
            InvocationType::Event => {
                // 202 only once the event is durable.
                self.accept_event(&input, &rec.name, &payload, &request_id)
                    .await?;
                Ok(InvokeResult {
                    outcome: Outcome::Accepted,
                    payload: Bytes::new(),
                    content_type: None,
                    function_error: false,
                    executed_version: "$LATEST".into(),
                    log_result: None,
                    request_id,
                })
            }
            InvocationType::RequestResponse => {
                // The invocation runs in its own task so that a caller who hangs up cannot
                // leave an environment half-way through an invocation.
                let svc = self.clone();
                let handle =
                    tokio::spawn(async move { svc.run(rec, input, payload, request_id).await });
                handle
                    .await
                    .map_err(|e| CoreError::Internal(format!("the invocation task failed: {e}")))?
            }
        }
    }

    pub(crate) async fn run(
        self: Arc<Self>,
        rec: Arc<FunctionRecord>,
        input: InvokeInput,
        payload: Bytes,
        request_id: String,
    ) -> Result<InvokeResult> {
        let (slot, unreserved) = self.acquire(&rec)?;
        let _inflight = InFlight(&self);
        let env = match slot {
            Slot::Warm(env) => env,
            Slot::Cold(config) => {
                let sink: Arc<dyn LogSink> = self.logs.clone();
                let env = Environment::start(config, self.launcher.as_ref(), sink).await;
                self.lock().every.push(Arc::downgrade(&env));
                env
            }
        };
        let invoked_arn = match &input.target.qualifier {
            Some(q) => format!("{}:{q}", self.functions.arn(&rec.name)),
            None => self.functions.arn(&rec.name),
        };
        let outcome = env
            .invoke(InvokeRequest {
                request_id: request_id.clone(),
                payload,
                invoked_arn,
                client_context: input.client_context.clone(),
                cognito_identity: None,
                trace_id: input.trace_header.clone().unwrap_or_else(trace_id),
                tail: input.log_tail,
            })
            .await;
        let reusable = !matches!(outcome.status, InvokeStatus::Fatal(_));
        self.release(
            &pool_key(&rec),
            &rec.revision_id,
            reusable.then_some(env),
            unreserved,
        );

        let total_ms = outcome.duration.as_secs_f64() * 1000.0
            + outcome
                .init_duration
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0);
        let status = match &outcome.status {
            InvokeStatus::Success => "success".to_string(),
            InvokeStatus::Error(t) | InvokeStatus::Fatal(t) => format!("error:{t}"),
        };
        self.store.write_background(vec![WriteOp::Usage(UsageRow {
            ts_ms: chrono::Utc::now().timestamp_millis(),
            function: rec.name.clone(),
            request_id: request_id.clone(),
            duration_ms: outcome.duration.as_secs_f64() * 1000.0,
            billed_ms: self.settings.prices.billed_ms(total_ms) as i64,
            memory_mb: i64::from(rec.memory_size),
            init_ms: outcome.init_duration.map(|d| d.as_secs_f64() * 1000.0),
            status,
        })]);

        let log_result = match outcome.tail {
            Some(rx) => match tokio::time::timeout(Duration::from_secs(5), rx).await {
                Ok(Ok(text)) => {
                    Some(base64::engine::general_purpose::STANDARD.encode(tail_of(&text)))
                }
                _ => Some(String::new()),
            },
            None => None,
        };
        let (payload, content_type, function_error) = match outcome.reply {
            RuntimeReply::Response { body, content_type } => (body, content_type, false),
            RuntimeReply::Error { body, .. } => (body, Some("application/json".into()), true),
        };
        Ok(InvokeResult {
            outcome: Outcome::Completed,
            payload,
            content_type,
            function_error,
            executed_version: rec.version.clone(),
            log_result,
            request_id,
        })
    }
}

/// The last 4 KB of `text`, cut at a character boundary.
fn tail_of(text: &str) -> &str {
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut start = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests;
