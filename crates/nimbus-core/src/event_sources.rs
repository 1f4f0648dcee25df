//! Event source mappings: Lambda's pull model. A mapping is a record (kind
//! `event-source-mapping`) with AWS's state machine (`Creating → Enabled`, `Enabling`,
//! `Disabling`, `Disabled`, `Updating`, `Deleting`); the supervisor here runs one poller per
//! enabled mapping through the [`EventSource`] registered for the source ARN's service (SQS
//! registers its own from its crate), restarts pollers after an update and at server start,
//! and stops them on disable, delete and shutdown. Pollers deliver through the invoke service,
//! so concurrency limits and throttles apply to them like to any caller.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use nimbus_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::invoke::InvokeService;
use crate::names::{FunctionRef, parse_function_ref};
use crate::records::RecordMap;
use crate::settings::Settings;

const KIND: &str = "event-source-mapping";

/// A mapping as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// `UUID`: the mapping's id, also the end of its ARN.
    pub uuid: String,
    /// The unqualified name of the function invoked.
    pub function: String,
    /// The version or alias invoked (`None`: `$LATEST`).
    pub qualifier: Option<String>,
    /// `EventSourceArn`: the queue (or, later, stream) read from.
    pub source_arn: String,
    /// `BatchSize`: the most records per invocation, 1–10000 (default 10; above 10 needs a batching
    /// window for SQS).
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`: how long to gather records before invoking, 0–300.
    pub batching_window_secs: u32,
    /// Whether the mapping should be polling (`Enabled` as asked; `state` says where it is).
    pub enabled: bool,
    /// `Creating`, `Enabling`, `Enabled`, `Disabling`, `Disabled`, `Updating`, `Deleting`.
    pub state: String,
    /// `StateTransitionReason` (`USER_INITIATED`).
    pub state_reason: String,
    /// `FunctionResponseTypes`: empty or `["ReportBatchItemFailures"]`.
    pub function_response_types: Vec<String>,
    /// `ScalingConfig.MaximumConcurrency`.
    pub maximum_concurrency: Option<u32>,
    /// Milliseconds since the epoch.
    pub last_modified_ms: i64,
    /// `FilterCriteria.Filters[].Pattern`: a record is delivered when one matches (none: all).
    #[serde(default)]
    pub filters: Vec<String>,
    /// Tags of the mapping (at most 50).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Mapping {
    /// Whether the function's response can name failed items (`ReportBatchItemFailures`).
    pub fn reports_item_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }

    /// The function the mapping invokes.
    pub fn target(&self) -> FunctionRef {
        FunctionRef {
            name: self.function.clone(),
            qualifier: self.qualifier.clone(),
            account: None,
            region: None,
        }
    }
}

/// What Create/UpdateEventSourceMapping carry (absent fields keep their value on update).
#[derive(Debug, Clone, Default)]
pub struct MappingInput {
    /// `FunctionName` (name, ARN or partial ARN, optionally qualified); required on create.
    pub function_name: Option<String>,
    /// `EventSourceArn`; required on create, fixed afterwards.
    pub event_source_arn: Option<String>,
    /// `BatchSize`, checked to be 1–10000.
    pub batch_size: Option<i64>,
    /// `MaximumBatchingWindowInSeconds`, checked to be 0–300.
    pub batching_window_secs: Option<i64>,
    /// `Enabled` (default true).
    pub enabled: Option<bool>,
    /// `FunctionResponseTypes`: at most one, `ReportBatchItemFailures`.
    pub function_response_types: Option<Vec<String>>,
    /// `ScalingConfig.MaximumConcurrency`, checked to be 2–1000.
    pub maximum_concurrency: Option<i64>,
    /// `FilterCriteria` patterns (`Some(vec![])` clears them).
    pub filters: Option<Vec<String>>,
    /// Tags at creation.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Filters a mapping may have, and the longest pattern.
const MAX_FILTERS: usize = 5;
const MAX_PATTERN_CHARS: usize = 4096;

/// Checks `FilterCriteria` patterns as Lambda does (one fixed message for any fault).
fn check_filters(filters: &[String]) -> Result<()> {
    let invalid = || CoreError::InvalidParameter("Invalid filter pattern definition.".into());
    if filters.len() > MAX_FILTERS {
        return Err(CoreError::InvalidParameter(format!(
            "The filter criteria has {} filters; at most {MAX_FILTERS} are allowed.",
            filters.len()
        )));
    }
    for f in filters {
        if f.chars().count() > MAX_PATTERN_CHARS {
            return Err(invalid());
        }
        crate::patterns::Pattern::parse(f).map_err(|e| {
            tracing::debug!(pattern = %f, error = %e, "invalid filter pattern");
            invalid()
        })?;
    }
    Ok(())
}

/// A running poller's future.
pub type Poller = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A service whose resources can feed a mapping (a queue service, later streams).
pub trait EventSource: Send + Sync {
    /// Checks the source before a mapping to it is created: the error is AWS's message for
    /// the `InvalidParameterValueException` (a queue that does not exist, say).
    fn validate(&self, source_arn: &str) -> std::result::Result<(), String>;
    /// Checks a mapping's batching against the source's limits, at creation and at every
    /// update: the error is AWS's message for the `InvalidParameterValueException`.
    fn check_batching(
        &self,
        _source_arn: &str,
        _batching: Batching,
    ) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Polls for `mapping` until `stop` turns true: batches go to the function through
    /// `invoke`, and what the function handled is removed from the source.
    fn run(
        &self,
        mapping: Mapping,
        invoke: Arc<InvokeService>,
        stop: watch::Receiver<bool>,
    ) -> Poller;
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A mapping's batching, as its source checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// `BatchSize`.
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`.
    pub window_secs: u32,
}

/// The mappings of this server and their pollers.
pub struct EventSourceMappings {
    settings: Arc<Settings>,
    functions: Arc<FunctionService>,
    invoke: Arc<InvokeService>,
    map: RecordMap<Mapping>,
    sources: RwLock<BTreeMap<String, Arc<dyn EventSource>>>,
    running: Mutex<HashMap<String, Running>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn service_of(arn: &str) -> &str {
    arn.split(':').nth(2).unwrap_or_default()
}

fn too_large(v: i64, field: &str, max: i64) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have value less than or equal to {max}"
    ))
}

fn too_small(v: i64, field: &str, min: i64) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
    ))
}

impl EventSourceMappings {
    /// Loads the stored mappings; no poller runs until the sources are registered and
    /// [`EventSourceMappings::resume`] is called.
    pub fn open(
        store: Store,
        settings: Arc<Settings>,
        functions: Arc<FunctionService>,
        invoke: Arc<InvokeService>,
    ) -> Result<EventSourceMappings> {
        Ok(EventSourceMappings {
            settings,
            functions,
            invoke,
            map: RecordMap::open(store, KIND)?,
            sources: RwLock::new(BTreeMap::new()),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Registers the event source for ARNs of `service` (`sqs`, …).
    pub fn register(&self, service: &str, source: Arc<dyn EventSource>) {
        self.sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.to_string(), source);
    }

    fn source(&self, arn: &str) -> Option<Arc<dyn EventSource>> {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service_of(arn))
            .cloned()
    }

    /// The mapping's ARN.
    pub fn arn(&self, uuid: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:event-source-mapping:{uuid}",
            self.settings.region, self.settings.account_id
        )
    }

    /// The ARN of the function a mapping invokes (with its qualifier).
    pub fn function_arn(&self, m: &Mapping) -> String {
        let base = self.functions.arn(&m.function);
        match &m.qualifier {
            Some(q) => format!("{base}:{q}"),
            None => base,
        }
    }

    /// At start (once the sources are registered): every mapping takes the state it was going
    /// to, and the enabled ones are polled again; a mapping being deleted is deleted.
    pub async fn resume(self: &Arc<Self>) -> Result<()> {
        for m in self.map.values() {
            if m.state == "Deleting" {
                self.map.remove(&m.uuid).await?;
                continue;
            }
            self.settle(m).await?;
        }
        Ok(())
    }

    /// Starts or stops the mapping's poller as `enabled` says, and records the state reached.
    async fn settle(self: &Arc<Self>, mut m: Mapping) -> Result<Mapping> {
        self.stop_poller(&m.uuid).await;
        let state = if m.enabled {
            match self.source(&m.source_arn) {
                Some(src) => {
                    let (stop, rx) = watch::channel(false);
                    let task = tokio::spawn(src.run(m.clone(), self.invoke.clone(), rx));
                    self.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(m.uuid.clone(), Running { stop, task });
                    "Enabled"
                }
                None => {
                    tracing::error!(uuid = %m.uuid, source = %m.source_arn, "no event source serves this mapping; it stays disabled");
                    "Disabled"
                }
            }
        } else {
            "Disabled"
        };
        if m.state != state {
            m.state = state.to_string();
            self.map.put(m.uuid.clone(), m.clone()).await?;
        }
        Ok(m)
    }

    async fn stop_poller(&self, uuid: &str) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        if let Some(r) = running {
            let _ = r.stop.send(true);
            let abort = r.task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), r.task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Stops every poller (at shutdown, before environments stop).
    pub async fn shutdown(&self) {
        let uuids: Vec<String> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for u in uuids {
            self.stop_poller(&u).await;
        }
    }

    fn function_response_types(v: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
        if let Some(types) = &v {
            if types.len() > 1 {
                return Err(CoreError::Validation(format!(
                    "1 validation error detected: Value '{types:?}' at 'functionResponseTypes' failed to satisfy constraint: Member must have length less than or equal to 1"
                )));
            }
            if let Some(t) = types.iter().find(|t| *t != "ReportBatchItemFailures") {
                return Err(CoreError::Validation(format!(
                    "1 validation error detected: Value '[{t}]' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [ReportBatchItemFailures]]"
                )));
            }
        }
        Ok(v)
    }

    fn maximum_concurrency(v: Option<i64>) -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(n) if n < 2 => Err(too_small(n, "scalingConfig.maximumConcurrency", 2)),
            Some(n) if n > 1000 => Err(too_large(n, "scalingConfig.maximumConcurrency", 1000)),
            Some(n) => Ok(Some(n as u32)),
        }
    }

    fn batch_size(v: Option<i64>, default: u32) -> Result<u32> {
        match v {
            None => Ok(default),
            Some(n) if n < 1 => Err(too_small(n, "batchSize", 1)),
            Some(n) if n > 10_000 => Err(too_large(n, "batchSize", 10_000)),
            Some(n) => Ok(n as u32),
        }
    }

    fn window(v: Option<i64>, default: u32) -> Result<u32> {
        match v {
            None => Ok(default),
            Some(n) if n < 0 => Err(too_small(n, "maximumBatchingWindowInSeconds", 0)),
            Some(n) if n > 300 => Err(too_large(n, "maximumBatchingWindowInSeconds", 300)),
            Some(n) => Ok(n as u32),
        }
    }

    fn resolve_function(&self, name: &str) -> Result<FunctionRef> {
        let r = parse_function_ref(name)?;
        if self.functions.get(&r.name).is_none() {
            return Err(CoreError::NotFound(format!(
                "Function not found: {}",
                match &r.qualifier {
                    Some(q) => format!("{}:{q}", self.functions.arn(&r.name)),
                    None => self.functions.arn(&r.name),
                }
            )));
        }
        Ok(r)
    }

    /// CreateEventSourceMapping: answered in `Creating`; the poller starts right after.
    pub async fn create(self: &Arc<Self>, input: MappingInput) -> Result<Mapping> {
        let function = input.function_name.clone().ok_or_else(|| {
            CoreError::Validation("1 validation error detected: Value null at 'functionName' failed to satisfy constraint: Member must not be null".into())
        })?;
        let source_arn = input.event_source_arn.clone().ok_or_else(|| {
            CoreError::InvalidParameter(
                "Unrecognized event source, must be kinesis, dynamodb stream or sqs.".into(),
            )
        })?;
        let source = self.source(&source_arn).ok_or_else(|| {
            CoreError::InvalidParameter(format!(
                "Nimbus has no event source for {source_arn}: mappings read from SQS queues of this server (streams and tables arrive with those services)"
            ))
        })?;
        let target = self.resolve_function(&function)?;
        let batch_size = Self::batch_size(input.batch_size, 10)?;
        let window = Self::window(input.batching_window_secs, 0)?;
        source
            .check_batching(
                &source_arn,
                Batching {
                    batch_size,
                    window_secs: window,
                },
            )
            .map_err(CoreError::InvalidParameter)?;
        let types = Self::function_response_types(input.function_response_types)?;
        let concurrency = Self::maximum_concurrency(input.maximum_concurrency)?;
        let filters = input.filters.unwrap_or_default();
        check_filters(&filters)?;
        let tags = input.tags.unwrap_or_default();
        crate::functions::check_tags(&tags)?;
        if tags.len() > 50 {
            return Err(CoreError::InvalidParameter(
                "An event source mapping can have at most 50 tags".into(),
            ));
        }
        source
            .validate(&source_arn)
            .map_err(CoreError::InvalidParameter)?;
        let _edit = self.map.edit().await;
        if let Some(existing) = self.map.find(|m| {
            m.source_arn == source_arn
                && m.function == target.name
                && m.qualifier == target.qualifier
        }) {
            return Err(CoreError::Conflict(format!(
                "An event source mapping with SQS arn (\" {source_arn} \") and function (\" {} \") already exists. Please update or delete the existing mapping with UUID {}",
                target.name, existing.uuid
            )));
        }
        let m = Mapping {
            uuid: uuid::Uuid::new_v4().to_string(),
            function: target.name,
            qualifier: target.qualifier,
            source_arn,
            batch_size,
            batching_window_secs: window,
            enabled: input.enabled.unwrap_or(true),
            state: "Creating".into(),
            state_reason: "USER_INITIATED".into(),
            function_response_types: types.unwrap_or_default(),
            maximum_concurrency: concurrency,
            last_modified_ms: now_ms(),
            filters,
            tags,
        };
        self.map.put(m.uuid.clone(), m.clone()).await?;
        drop(_edit);
        self.settle_later(m.uuid.clone());
        Ok(m)
    }

    /// Moves a mapping on to its settled state in the background (the API answers first, in
    /// the transitional state, as AWS does).
    fn settle_later(self: &Arc<Self>, uuid: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let _edit = me.map.edit().await;
            if let Some(m) = me.map.get(&uuid)
                && let Err(e) = me.settle(m).await
            {
                tracing::error!(%uuid, error = %e, "settling an event source mapping failed");
            }
        });
    }

    fn not_found() -> CoreError {
        CoreError::NotFound("The resource you requested does not exist.".into())
    }

    /// GetEventSourceMapping, by UUID (`NotFound` when there is none).
    pub fn get(&self, uuid: &str) -> Result<Mapping> {
        self.map.get(uuid).ok_or_else(Self::not_found)
    }

    /// The UUID of a mapping's ARN (`arn:aws:lambda:<region>:<account>:event-source-mapping:<uuid>`).
    pub fn uuid_of(arn: &str) -> Option<&str> {
        let parts: Vec<&str> = arn.split(':').collect();
        (parts.len() == 7
            && parts[0] == "arn"
            && parts[2] == "lambda"
            && parts[5] == "event-source-mapping")
            .then(|| parts[6])
    }

    /// TagResource on a mapping's ARN.
    pub async fn tag(&self, arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
        crate::functions::check_tags(&tags)?;
        let uuid = Self::uuid_of(arn).ok_or_else(Self::not_found)?;
        let _edit = self.map.edit().await;
        let mut m = self.get(uuid)?;
        m.tags.extend(tags);
        if m.tags.len() > 50 {
            return Err(CoreError::InvalidParameter(
                "An event source mapping can have at most 50 tags".into(),
            ));
        }
        self.map.put(m.uuid.clone(), m).await.map(drop)
    }

    /// UntagResource on a mapping's ARN.
    pub async fn untag(&self, arn: &str, keys: &[String]) -> Result<()> {
        let uuid = Self::uuid_of(arn).ok_or_else(Self::not_found)?;
        let _edit = self.map.edit().await;
        let mut m = self.get(uuid)?;
        for k in keys {
            m.tags.remove(k);
        }
        self.map.put(m.uuid.clone(), m).await.map(drop)
    }

    /// ListTags on a mapping's ARN.
    pub fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let uuid = Self::uuid_of(arn).ok_or_else(Self::not_found)?;
        Ok(self.get(uuid)?.tags)
    }

    /// UpdateEventSourceMapping: answered in `Updating` (or `Enabling` / `Disabling`).
    pub async fn update(self: &Arc<Self>, uuid: &str, input: MappingInput) -> Result<Mapping> {
        let _edit = self.map.edit().await;
        let mut m = self.get(uuid)?;
        if m.state == "Deleting" {
            return Err(CoreError::Conflict(format!(
                "Cannot update the event source mapping because it is in use. The mapping {uuid} is being deleted."
            )));
        }
        if let Some(f) = &input.function_name {
            let r = self.resolve_function(f)?;
            m.function = r.name;
            m.qualifier = r.qualifier;
        }
        m.batch_size = Self::batch_size(input.batch_size, m.batch_size)?;
        m.batching_window_secs = Self::window(input.batching_window_secs, m.batching_window_secs)?;
        if let Some(source) = self.source(&m.source_arn) {
            source
                .check_batching(
                    &m.source_arn,
                    Batching {
                        batch_size: m.batch_size,
                        window_secs: m.batching_window_secs,
                    },
                )
                .map_err(CoreError::InvalidParameter)?;
        }
        if let Some(t) = Self::function_response_types(input.function_response_types)? {
            m.function_response_types = t;
        }
        if input.maximum_concurrency.is_some() {
            m.maximum_concurrency = Self::maximum_concurrency(input.maximum_concurrency)?;
        }
        if let Some(f) = input.filters {
            check_filters(&f)?;
            m.filters = f;
        }
        m.state = match input.enabled {
            Some(true) if !m.enabled => "Enabling",
            Some(false) if m.enabled => "Disabling",
            _ => "Updating",
        }
        .to_string();
        if let Some(e) = input.enabled {
            m.enabled = e;
        }
        m.state_reason = "USER_INITIATED".into();
        m.last_modified_ms = now_ms();
        self.map.put(m.uuid.clone(), m.clone()).await?;
        drop(_edit);
        self.settle_later(m.uuid.clone());
        Ok(m)
    }

    /// DeleteEventSourceMapping: answered in `Deleting`; the poller stops and the record goes.
    pub async fn delete(self: &Arc<Self>, uuid: &str) -> Result<Mapping> {
        let mut m = {
            let _edit = self.map.edit().await;
            let mut m = self.get(uuid)?;
            m.state = "Deleting".into();
            m.state_reason = "USER_INITIATED".into();
            self.map.put(m.uuid.clone(), m.clone()).await?;
            m
        };
        let me = self.clone();
        let id = m.uuid.clone();
        tokio::spawn(async move {
            me.stop_poller(&id).await;
            let _edit = me.map.edit().await;
            if let Err(e) = me.map.remove(&id).await {
                tracing::error!(uuid = %id, error = %e, "deleting an event source mapping failed");
            }
        });
        m.last_modified_ms = now_ms();
        Ok(m)
    }

    /// ListEventSourceMappings: by function (name or ARN) and source, in UUID order, paged by
    /// UUID markers.
    pub fn list(
        &self,
        function: Option<&str>,
        source_arn: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<(Vec<Mapping>, Option<String>)> {
        let max = match max_items {
            None => 100,
            Some(n) if n < 1 => return Err(too_small(n, "maxItems", 1)),
            Some(n) if n > 10_000 => return Err(too_large(n, "maxItems", 10_000)),
            Some(n) => n as usize,
        };
        let wanted = function.map(parse_function_ref).transpose()?;
        let mut all: Vec<Mapping> = self
            .map
            .values()
            .into_iter()
            .filter(|m| {
                wanted.as_ref().is_none_or(|w| {
                    w.name == m.function && (w.qualifier.is_none() || w.qualifier == m.qualifier)
                })
            })
            .filter(|m| source_arn.is_none_or(|s| s == m.source_arn))
            .collect();
        all.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        let start = match marker {
            Some(mk) => all
                .iter()
                .position(|m| m.uuid == mk)
                .map(|i| i + 1)
                .ok_or_else(|| CoreError::InvalidParameter(format!("Invalid marker: {mk}")))?,
            None => 0,
        };
        let page: Vec<Mapping> = all.iter().skip(start).take(max).cloned().collect();
        let next = (start + page.len() < all.len())
            .then(|| page.last().map(|m| m.uuid.clone()))
            .flatten();
        Ok((page, next))
    }
}
