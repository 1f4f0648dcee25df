//! Asynchronous invocation: the durable event queue and its delivery.
//!
//! `Invoke` with `InvocationType=Event` (and every trigger that invokes asynchronously) writes the
//! event as a record (kind `async-event`) and answers 202 only once that write is committed
//! (group commit, kill -9 safe). A dispatcher delivers due events under each function's
//! concurrency (an event whose function is at its limit waits for a slot instead of spinning on
//! throttles), and applies Lambda's rules:
//!
//! - a function error (handler error, timeout, crash) is retried up to `MaximumRetryAttempts`
//!   (default 2) after the configured delays (default 1 and 2 minutes);
//! - a throttle or a system error is retried with exponential backoff (default 1 s doubling to
//!   5 minutes) until the event is `MaximumEventAgeInSeconds` old (default 6 hours);
//! - the outcome goes to the `OnSuccess` / `OnFailure` destination as Lambda's invocation record
//!   (`condition` Success, RetriesExhausted or EventAgeExceeded).
//!
//! An event's record is updated before each retry and deleted once it is done, so a restart
//! redelivers only events that were not finished (at-least-once, as on AWS).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use nimbus_store::{Store, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CoreError, Result};
use crate::event_config::{
    DEFAULT_MAX_EVENT_AGE_SECS, DEFAULT_MAX_RETRIES, Destination, parse_destination,
};
use crate::invoke::{Caller, InvocationType, InvokeInput, InvokeResult, InvokeService};
use crate::names::FunctionRef;
use crate::sinks::{Attribute, Message, SinkError};
use nimbus_events::destination::{InvocationRecord, RecordRequestContext, RecordResponseContext};

const KIND: &str = "async-event";

/// One accepted asynchronous event, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// The invocation's request id (a UUID), answered with the 202 and used as the record key.
    pub id: String,
    /// The unqualified function name.
    pub function: String,
    /// The version or alias invoked (`None`: `$LATEST`).
    pub qualifier: Option<String>,
    /// The event (JSON text).
    pub payload: String,
    /// The client context JSON (already base64-decoded), handed to the function.
    #[serde(default)]
    pub client_context: Option<String>,
    /// When the event was accepted, milliseconds since the Unix epoch; its age counts from here.
    pub enqueued_ms: i64,
    /// Invocations made so far (`approximateInvokeCount`).
    #[serde(default)]
    pub invocations: u32,
    /// Retries spent on function errors.
    #[serde(default)]
    pub function_errors: u32,
    /// When the next attempt is due, milliseconds since the Unix epoch.
    #[serde(default)]
    pub due_ms: i64,
    /// The last backoff after a throttle, system error or failed delivery, in milliseconds (0: none
    /// yet); the next one doubles it.
    #[serde(default)]
    pub backoff_ms: u64,
    /// The last invocation's outcome, for the failure record.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Who asked (absent from events accepted before callers were recorded: those were the
    /// account's own).
    #[serde(default)]
    pub caller: Option<Caller>,
    /// Set once the event is finished: what is still to be delivered of its outcome. The event
    /// is kept (and its deliveries retried) until its destination and dead-letter queue have it.
    #[serde(default)]
    pub concluded: Option<Concluded>,
}

impl QueuedEvent {
    /// A new event, due now.
    fn new(
        id: String,
        function: String,
        qualifier: Option<String>,
        payload: String,
        client_context: Option<String>,
        caller: Caller,
    ) -> QueuedEvent {
        let now = now_ms();
        QueuedEvent {
            id,
            caller: Some(caller),
            function,
            qualifier,
            payload,
            client_context,
            enqueued_ms: now,
            invocations: 0,
            function_errors: 0,
            due_ms: now,
            backoff_ms: 0,
            last_error: None,
            concluded: None,
        }
    }
}

/// A finished event's outcome, waiting for its deliveries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Concluded {
    /// Lambda's `requestContext.condition`: `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    /// The destination's ARN and the invocation record for it, until delivered.
    pub destination: Option<(String, String)>,
    /// The dead-letter queue's ARN and the error message for it, until delivered.
    pub dead_letter: Option<(String, String)>,
}

/// How one delivery of an outcome went.
enum Delivery {
    Done,
    /// The target cannot take it now (a store failure): try again later.
    Later,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Lambda's retry rules for one asynchronous event, apart from the queue and from time (the
/// caller says what time it is), so that they are tested on a manual clock.
#[derive(Debug, Clone)]
pub struct RetryRules {
    /// Retries after function errors (`MaximumRetryAttempts`).
    pub max_retries: u32,
    /// `MaximumEventAgeInSeconds`, in milliseconds.
    pub max_age_ms: i64,
    /// The delay before each retry after a function error (the last one repeats).
    pub retry_delays: Vec<Duration>,
    /// The first backoff after a throttle or system error; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// The longest backoff (default 5 minutes).
    pub backoff_max: Duration,
}

/// What happens to an event after an attempt.
#[derive(Debug)]
pub enum Next {
    /// Finished with this condition (`Success`, `RetriesExhausted`, `EventAgeExceeded`).
    Conclude(&'static str, Option<InvokeResult>),
    /// Tried again after this delay.
    RetryAfter(Duration),
    /// Nothing more now (dropped, or kept for the restart).
    Nothing,
}

impl RetryRules {
    /// Whether the event is past its maximum age.
    pub fn too_old(&self, ev: &QueuedEvent, now_ms: i64) -> bool {
        now_ms - ev.enqueued_ms > self.max_age_ms
    }

    /// After a function error (handler error, timeout, crash): retried after the configured
    /// delay while retries are left, else `RetriesExhausted`.
    pub fn after_function_error(&self, ev: &mut QueuedEvent, result: InvokeResult) -> Next {
        if ev.function_errors >= self.max_retries {
            return Next::Conclude("RetriesExhausted", Some(result));
        }
        let delay = self
            .retry_delays
            .get(ev.function_errors as usize)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(60));
        ev.function_errors += 1;
        ev.last_error = Some(String::from_utf8_lossy(&result.payload).into_owned());
        Next::RetryAfter(delay)
    }

    /// After a throttle or a system error: exponential backoff, not counted against the
    /// retries, until the next attempt would come after the event's maximum age.
    pub fn after_throttle(&self, ev: &mut QueuedEvent, now_ms: i64) -> Next {
        let next = if ev.backoff_ms == 0 {
            self.backoff_initial
        } else {
            (Duration::from_millis(ev.backoff_ms) * 2).min(self.backoff_max)
        };
        ev.backoff_ms = next.as_millis() as u64;
        if now_ms + next.as_millis() as i64 - ev.enqueued_ms > self.max_age_ms {
            Next::Conclude("EventAgeExceeded", None)
        } else {
            Next::RetryAfter(next)
        }
    }
}

#[derive(Default)]
struct State {
    events: HashMap<String, QueuedEvent>,
    due: BinaryHeap<Reverse<(i64, u64, String)>>,
    /// Events whose function was at its concurrency limit, per function.
    waiting: HashMap<String, VecDeque<String>>,
    inflight: HashMap<String, usize>,
    inflight_total: usize,
    seq: u64,
}

impl State {
    fn schedule(&mut self, id: String, due_ms: i64) {
        self.seq += 1;
        self.due.push(Reverse((due_ms, self.seq, id)));
    }
}

/// The queue's state; the delivery logic lives on [`InvokeService`].
pub struct AsyncQueue {
    store: Store,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

impl AsyncQueue {
    /// Loads the events a previous run accepted and did not finish.
    pub fn open(store: Store) -> Result<AsyncQueue> {
        let mut st = State::default();
        for (k, body) in store.records(KIND)? {
            match serde_json::from_str::<QueuedEvent>(&body) {
                Ok(ev) => {
                    let due = ev.due_ms;
                    st.events.insert(ev.id.clone(), ev);
                    st.schedule(k, due);
                }
                Err(e) => tracing::error!(key = %k, error = %e, "unreadable queued event skipped"),
            }
        }
        if !st.events.is_empty() {
            tracing::info!(
                events = st.events.len(),
                "resuming queued asynchronous events"
            );
        }
        Ok(AsyncQueue {
            store,
            state: Mutex::new(st),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events accepted and not yet finished.
    pub fn pending(&self) -> usize {
        self.lock().events.len()
    }

    /// Durably accepts an event; returns once the write is committed.
    pub async fn enqueue(&self, ev: QueuedEvent) -> Result<()> {
        self.save_durably(&ev).await?;
        {
            let mut st = self.lock();
            let (id, due) = (ev.id.clone(), ev.due_ms);
            st.events.insert(id.clone(), ev);
            st.schedule(id, due);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Stores the event's current state and waits for the commit (without scheduling it).
    async fn save_durably(&self, ev: &QueuedEvent) -> Result<()> {
        let body = serde_json::to_string(ev)
            .map_err(|e| CoreError::Internal(format!("encoding an event: {e}")))?;
        self.store
            .write_async(vec![WriteOp::PutRecord {
                kind: KIND.into(),
                key: ev.id.clone(),
                body,
            }])
            .await?;
        Ok(())
    }

    /// Saves an event's progress (before a retry) without waiting.
    fn save(&self, ev: &QueuedEvent) {
        if let Ok(body) = serde_json::to_string(ev) {
            self.store.write_background(vec![WriteOp::PutRecord {
                kind: KIND.into(),
                key: ev.id.clone(),
                body,
            }]);
        }
    }

    fn remove(&self, id: &str) {
        self.store.write_background(vec![WriteOp::DeleteRecord {
            kind: KIND.into(),
            key: id.to_string(),
        }]);
        self.lock().events.remove(id);
    }
}

/// How one delivery attempt ended.
enum Attempt {
    Success(InvokeResult),
    FunctionError(InvokeResult),
    Throttled,
    Gone,
    /// The server is shutting down: the attempt does not count and the event stays stored,
    /// to be delivered again after the restart.
    Interrupted,
}

impl InvokeService {
    /// Accepts an asynchronous invocation durably (the 202 follows).
    pub(crate) async fn accept_event(
        &self,
        input: &InvokeInput,
        function: &str,
        payload: &Bytes,
        request_id: &str,
    ) -> Result<()> {
        self.queue
            .enqueue(QueuedEvent::new(
                request_id.to_string(),
                function.to_string(),
                input.target.qualifier.clone(),
                String::from_utf8_lossy(payload).into_owned(),
                input.client_context.clone(),
                input.caller.clone(),
            ))
            .await
    }

    /// The dispatcher: delivers due events while their functions have capacity.
    pub(crate) async fn dispatch(self: Arc<Self>) {
        loop {
            let wake = self.queue.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let next_due = {
                let mut st = self.queue.lock();
                let now = now_ms();
                let mut ready = Vec::new();
                let next = loop {
                    let Some(Reverse((due, _, _))) = st.due.peek() else {
                        break None;
                    };
                    if *due > now {
                        break Some(*due);
                    }
                    let Some(Reverse((_, _, id))) = st.due.pop() else {
                        break None;
                    };
                    let Some(function) = st.events.get(&id).map(|e| e.function.clone()) else {
                        continue;
                    };
                    let busy = st.inflight.get(&function).copied().unwrap_or(0);
                    if busy >= self.delivery_limit(&function) {
                        st.waiting.entry(function).or_default().push_back(id);
                        continue;
                    }
                    *st.inflight.entry(function).or_default() += 1;
                    st.inflight_total += 1;
                    if let Some(ev) = st.events.get(&id) {
                        ready.push(ev.clone());
                    }
                };
                drop(st);
                for ev in ready {
                    let svc = self.clone();
                    tokio::spawn(async move { svc.deliver(ev).await });
                }
                next
            };
            let sleep = match next_due {
                Some(due) => Duration::from_millis((due - now_ms()).max(1) as u64),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = &mut wake => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// How many deliveries of a function may run at once: its reserved concurrency, else the
    /// account's limit.
    fn delivery_limit(&self, function: &str) -> usize {
        match self.functions.get(function) {
            Some(rec) => rec
                .reserved_concurrency
                .map(|r| r as usize)
                .unwrap_or(self.settings.account_concurrency)
                .max(1),
            None => 1,
        }
    }

    /// A delivery ended: free its slot and let a waiting event of the same function go.
    fn delivered(&self, function: &str) {
        let mut st = self.queue.lock();
        if let Some(n) = st.inflight.get_mut(function) {
            *n = n.saturating_sub(1);
        }
        st.inflight_total = st.inflight_total.saturating_sub(1);
        let next = st.waiting.get_mut(function).and_then(VecDeque::pop_front);
        if let Some(id) = next {
            st.schedule(id, 0);
        }
        drop(st);
        self.queue.wake.notify_one();
    }

    async fn attempt(self: &Arc<Self>, ev: &QueuedEvent) -> Attempt {
        let target = FunctionRef {
            name: ev.function.clone(),
            qualifier: ev.qualifier.clone(),
            account: None,
            region: None,
        };
        let rec = match self.target(&target).await {
            Ok(r) => r,
            Err(CoreError::NotFound(_)) => return Attempt::Gone,
            Err(_) => return Attempt::Throttled,
        };
        let input = InvokeInput {
            target,
            caller: ev.caller.clone().unwrap_or_else(|| Caller::Account {
                account_id: self.settings.account_id.clone(),
                access_key_id: None,
            }),
            payload: Bytes::from(ev.payload.clone()),
            invocation_type: InvocationType::Event,
            log_tail: false,
            client_context: ev.client_context.clone(),
            trace_header: None,
        };
        let payload = input.payload.clone();
        let svc = self.clone();
        let id = ev.id.clone();
        let run = tokio::spawn(async move { svc.run(rec, input, payload, id).await });
        let outcome = run.await;
        if !matches!(&outcome, Ok(Ok(r)) if !r.function_error) && self.lock().shutting_down {
            // An environment killed by the shutdown is a system error, not the function's.
            return Attempt::Interrupted;
        }
        match outcome {
            Ok(Ok(r)) if r.function_error => Attempt::FunctionError(r),
            Ok(Ok(r)) => Attempt::Success(r),
            // Throttles and system errors are retried until the event is too old.
            Ok(Err(_)) | Err(_) => Attempt::Throttled,
        }
    }

    /// Lambda's retry rules for this event's function (its event invoke config, else the
    /// defaults) and the server's delays.
    fn rules(&self, ev: &QueuedEvent) -> RetryRules {
        let config = self
            .configs
            .effective(&ev.function, ev.qualifier.as_deref());
        RetryRules {
            max_retries: config
                .as_ref()
                .map(|c| c.max_retries())
                .unwrap_or(DEFAULT_MAX_RETRIES),
            max_age_ms: i64::from(
                config
                    .as_ref()
                    .map(|c| c.max_age_secs())
                    .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS),
            ) * 1000,
            retry_delays: self.settings.async_retry_delays.clone(),
            backoff_initial: self.settings.async_backoff_initial,
            backoff_max: self.settings.async_backoff_max,
        }
    }

    async fn deliver(self: Arc<Self>, mut ev: QueuedEvent) {
        let rules = self.rules(&ev);
        let function = ev.function.clone();
        if ev.concluded.is_some() {
            self.finish(ev).await;
            self.delivered(&function);
            return;
        }
        if rules.too_old(&ev, now_ms()) {
            self.conclude(ev, "EventAgeExceeded", None).await;
            self.delivered(&function);
            return;
        }
        let next = match self.attempt(&ev).await {
            Attempt::Success(r) => {
                ev.invocations += 1;
                Next::Conclude("Success", Some(r))
            }
            Attempt::FunctionError(r) => {
                ev.invocations += 1;
                rules.after_function_error(&mut ev, r)
            }
            Attempt::Throttled => rules.after_throttle(&mut ev, now_ms()),
            Attempt::Gone => {
                tracing::warn!(request_id = %ev.id, function = %ev.function, "asynchronous event dropped: the function no longer exists");
                self.queue.remove(&ev.id);
                Next::Nothing
            }
            Attempt::Interrupted => {
                tracing::info!(request_id = %ev.id, function = %ev.function, "asynchronous delivery interrupted by the shutdown; the event is kept for the restart");
                Next::Nothing
            }
        };
        match next {
            Next::Conclude(condition, result) => self.conclude(ev, condition, result).await,
            Next::RetryAfter(delay) => self.retry(ev, delay),
            Next::Nothing => {}
        }
        self.delivered(&function);
    }

    fn retry(&self, mut ev: QueuedEvent, delay: Duration) {
        ev.due_ms = now_ms() + delay.as_millis() as i64;
        self.queue.save(&ev);
        let mut st = self.queue.lock();
        let (id, due) = (ev.id.clone(), ev.due_ms);
        st.events.insert(id.clone(), ev);
        st.schedule(id, due);
    }

    /// Records the event's outcome and delivers it (to its destination, and to the dead-letter
    /// queue if it failed); the event is forgotten only once both have it.
    async fn conclude(&self, mut ev: QueuedEvent, condition: &str, result: Option<InvokeResult>) {
        let config = self
            .configs
            .effective(&ev.function, ev.qualifier.as_deref());
        let destination = config.and_then(|c| {
            if condition == "Success" {
                c.on_success
            } else {
                c.on_failure
            }
        });
        if condition != "Success" {
            tracing::warn!(request_id = %ev.id, function = %ev.function, condition, "asynchronous event failed");
        }
        let destination = destination.map(|arn| {
            let record = self.invocation_record(&ev, condition, result.as_ref());
            // A record of strings, numbers and JSON values always serializes.
            let text = serde_json::to_string(&record).expect("an invocation record serializes");
            (arn, text)
        });
        // A failed event also goes to the function's dead-letter queue (the event alone, with
        // the request id and error as message attributes, as Lambda sends it).
        let dead_letter = if condition != "Success" {
            self.functions
                .get(&ev.function)
                .and_then(|f| f.dead_letter_target.clone())
                .map(|dlq| {
                    let message = ev
                        .last_error
                        .clone()
                        .or_else(|| {
                            result
                                .as_ref()
                                .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
                        })
                        .unwrap_or_else(|| format!("Event {condition}"));
                    (dlq, message)
                })
        } else {
            None
        };
        let deliveries = destination.is_some() || dead_letter.is_some();
        ev.concluded = Some(Concluded {
            condition: condition.to_string(),
            destination,
            dead_letter,
        });
        // The outcome is on disk before it is delivered: a crash from here on delivers it after
        // the restart instead of running the function again.
        if deliveries && let Err(e) = self.queue.save_durably(&ev).await {
            tracing::error!(request_id = %ev.id, error = %e, "could not record the event's outcome");
        }
        self.finish(ev).await;
    }

    /// Delivers what is left of a concluded event's outcome; keeps the event (retried with
    /// backoff) while a delivery cannot be made.
    async fn finish(&self, mut ev: QueuedEvent) {
        let Some(mut c) = ev.concluded.take() else {
            return;
        };
        if let Some((arn, record)) = c.destination.clone()
            && let Delivery::Done = self.deliver_outcome(&ev, &arn, record).await
        {
            c.destination = None;
        }
        if let Some((dlq, message)) = c.dead_letter.clone()
            && let Delivery::Done = self.dead_letter(&ev, &dlq, message).await
        {
            c.dead_letter = None;
        }
        if c.destination.is_none() && c.dead_letter.is_none() {
            self.queue.remove(&ev.id);
            return;
        }
        let max_age_ms = i64::from(
            self.configs
                .effective(&ev.function, ev.qualifier.as_deref())
                .map(|c| c.max_age_secs())
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS),
        ) * 1000;
        if now_ms() - ev.enqueued_ms > max_age_ms {
            tracing::error!(request_id = %ev.id, "the event's outcome could not be delivered within its maximum age; it is dropped");
            self.queue.remove(&ev.id);
            return;
        }
        tracing::warn!(request_id = %ev.id, "the event's outcome could not be delivered yet; it is kept and retried");
        let next =
            Duration::from_millis(ev.backoff_ms.max(500) * 2).min(self.settings.async_backoff_max);
        ev.backoff_ms = next.as_millis() as u64;
        ev.concluded = Some(c);
        self.retry(ev, next);
    }

    async fn deliver_outcome(&self, ev: &QueuedEvent, arn: &str, record: String) -> Delivery {
        match parse_destination(arn) {
            Ok(Destination::Function { name, qualifier }) => {
                let sent = self
                    .queue
                    .enqueue(QueuedEvent::new(
                        uuid::Uuid::new_v4().to_string(),
                        name,
                        qualifier,
                        record,
                        None,
                        Caller::service("lambda.amazonaws.com", self.function_arn(ev)),
                    ))
                    .await;
                match sent {
                    Ok(()) => Delivery::Done,
                    Err(e) => {
                        tracing::error!(request_id = %ev.id, error = %e, "could not queue the destination record");
                        Delivery::Later
                    }
                }
            }
            Ok(Destination::Sink { arn }) => {
                self.to_sink(&arn, record, BTreeMap::new(), &ev.id).await
            }
            Err(e) => {
                tracing::error!(request_id = %ev.id, destination = %arn, error = %e, "unusable destination; the outcome is dropped");
                Delivery::Done
            }
        }
    }

    async fn dead_letter(&self, ev: &QueuedEvent, dlq: &str, message: String) -> Delivery {
        match parse_destination(dlq) {
            Ok(Destination::Sink { arn }) => {
                let attrs: BTreeMap<String, Attribute> = [
                    ("RequestID".to_string(), Attribute::string(ev.id.clone())),
                    ("ErrorCode".to_string(), Attribute::number(200)),
                    ("ErrorMessage".to_string(), Attribute::string(message)),
                ]
                .into_iter()
                .collect();
                self.to_sink(&arn, ev.payload.clone(), attrs, &ev.id).await
            }
            _ => {
                tracing::warn!(request_id = %ev.id, dead_letter = %dlq, "the dead-letter target is not a queue of this server; the event is dropped");
                Delivery::Done
            }
        }
    }

    /// Delivers a message through the sink registry: done once accepted, or when the target
    /// does not exist (nothing to retry); anything else is tried again later.
    async fn to_sink(
        &self,
        target: &str,
        body: String,
        attributes: BTreeMap<String, Attribute>,
        request_id: &str,
    ) -> Delivery {
        match self
            .sinks
            .deliver(target, Message { body, attributes })
            .await
        {
            Ok(()) => Delivery::Done,
            Err(SinkError::NotFound(e)) => {
                tracing::error!(request_id, target, error = %e, "the target does not exist; the message is dropped");
                Delivery::Done
            }
            Err(SinkError::Unavailable(e)) => {
                tracing::error!(request_id, target, error = %e, "could not deliver to the target");
                Delivery::Later
            }
        }
    }

    /// Lambda's invocation record for destinations.
    /// The qualified ARN of the function an event is for.
    fn function_arn(&self, ev: &QueuedEvent) -> String {
        format!(
            "{}:{}",
            self.functions.arn(&ev.function),
            ev.qualifier.as_deref().unwrap_or("$LATEST")
        )
    }

    fn invocation_record(
        &self,
        ev: &QueuedEvent,
        condition: &str,
        result: Option<&InvokeResult>,
    ) -> InvocationRecord {
        let arn = self.function_arn(ev);
        let request_payload: Value =
            serde_json::from_str(&ev.payload).unwrap_or_else(|_| Value::String(ev.payload.clone()));
        let body = result
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .or_else(|| ev.last_error.clone());
        let (response_context, response_payload) = match body {
            Some(body) => (
                Some(RecordResponseContext {
                    status_code: 200,
                    executed_version: result
                        .map(|r| r.executed_version.clone())
                        .unwrap_or_else(|| "$LATEST".into()),
                    function_error: result
                        .is_none_or(|r| r.function_error)
                        .then(|| "Unhandled".to_string()),
                }),
                Some(serde_json::from_str(&body).unwrap_or(Value::String(body))),
            ),
            None => (None, None),
        };
        InvocationRecord {
            version: "1.0".into(),
            timestamp: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
            request_context: RecordRequestContext {
                request_id: ev.id.clone(),
                function_arn: arn,
                condition: condition.to_string(),
                approximate_invoke_count: ev.invocations,
            },
            request_payload,
            response_context,
            response_payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::invoke::Outcome;

    fn rules() -> RetryRules {
        RetryRules {
            max_retries: 2,
            max_age_ms: 60_000,
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
        }
    }

    fn event(clock: &ManualClock) -> QueuedEvent {
        QueuedEvent {
            enqueued_ms: clock.epoch_millis(),
            ..QueuedEvent::new(
                "id".into(),
                "f".into(),
                None,
                "{}".into(),
                None,
                Caller::Anonymous,
            )
        }
    }

    fn failed(payload: &str) -> InvokeResult {
        InvokeResult {
            outcome: Outcome::Completed,
            payload: Bytes::from(payload.to_string()),
            content_type: None,
            function_error: true,
            executed_version: "$LATEST".into(),
            log_result: None,
            request_id: "r".into(),
        }
    }

    #[test]
    fn function_errors_are_retried_after_the_delays_then_exhausted() {
        let clock = ManualClock::new(1_000_000);
        let mut ev = event(&clock);
        let r = rules();
        let mut delays = Vec::new();
        loop {
            match r.after_function_error(&mut ev, failed("boom")) {
                Next::RetryAfter(d) => delays.push(d),
                Next::Conclude(c, result) => {
                    assert_eq!(c, "RetriesExhausted");
                    assert!(result.is_some(), "the last result goes to the record");
                    break;
                }
                Next::Nothing => panic!("a function error is never dropped"),
            }
            assert!(delays.len() <= 2, "more retries than MaximumRetryAttempts");
        }
        assert_eq!(
            delays,
            [Duration::from_secs(60), Duration::from_secs(120)],
            "the configured delays, in order"
        );
        assert_eq!(ev.function_errors, 2);
        assert_eq!(ev.last_error.as_deref(), Some("boom"));
        // Zero retries: the first error concludes.
        let mut ev = event(&clock);
        let none = RetryRules {
            max_retries: 0,
            ..rules()
        };
        assert!(matches!(
            none.after_function_error(&mut ev, failed("x")),
            Next::Conclude("RetriesExhausted", _)
        ));
    }

    #[test]
    fn throttles_back_off_exponentially_until_the_event_is_too_old() {
        let clock = ManualClock::new(5_000_000);
        let mut ev = event(&clock);
        let r = rules();
        let mut waits = Vec::new();
        loop {
            match r.after_throttle(&mut ev, clock.epoch_millis()) {
                Next::RetryAfter(d) => {
                    waits.push(d.as_secs());
                    clock.advance(d);
                }
                Next::Conclude(c, result) => {
                    assert_eq!(c, "EventAgeExceeded");
                    assert!(result.is_none());
                    break;
                }
                Next::Nothing => panic!("a throttle is never dropped"),
            }
            assert!(waits.len() < 100, "no end to the backoff");
        }
        // 1, 2, 4, 8 (the cap), then 8 s while the next attempt comes within the 60 s
        // (at 55 s, the next would be at 63 s).
        assert_eq!(waits, [1, 2, 4, 8, 8, 8, 8, 8, 8]);
        assert_eq!(
            ev.function_errors, 0,
            "throttles are not counted as retries"
        );
        // The age check before an attempt.
        let fresh = event(&clock);
        assert!(!r.too_old(&fresh, clock.epoch_millis()));
        clock.advance(Duration::from_millis(60_001));
        assert!(r.too_old(&fresh, clock.epoch_millis()));
    }
}
