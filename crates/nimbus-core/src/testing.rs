//! A platform for unit tests: the function and invoke services (code unpacked in a temporary
//! directory), running functions on `nimbus-exec`'s scripted launcher (in-process runtimes that
//! speak the Runtime API) and the in-memory store, so admission, pooling and retries are tested
//! without processes or a database.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use nimbus_exec::scripted::ScriptedLauncher;

use crate::invoke::{InvocationType, InvokeInput, InvokeResult};
use crate::model::{ConfigChange, CreateFunction, FunctionState};
use crate::{CoreError, FunctionService, InvokeService, LogService, Settings};

pub(crate) struct Platform {
    _dir: tempfile::TempDir,
    pub(crate) functions: Arc<FunctionService>,
    pub(crate) invoke: Arc<InvokeService>,
    pub(crate) launcher: Arc<ScriptedLauncher>,
}

fn bootstrap_zip() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    w.start_file("bootstrap", opts).expect("zip entry");
    w.write_all(b"#!/bin/sh\n").expect("zip write");
    w.finish().expect("zip").into_inner()
}

impl Platform {
    pub(crate) fn new(launcher: ScriptedLauncher, tune: impl FnOnce(&mut Settings)) -> Platform {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings::new(dir.path().to_path_buf());
        tune(&mut settings);
        let settings = Arc::new(settings);
        // The in-memory store: no database on disk for unit tests.
        let store = nimbus_store::Store::memory(&dir.path().join("blobs")).expect("store");
        let catalog = Arc::new(
            nimbus_exec::RuntimeCatalog::discover_with(
                &dir.path().join("runtimes"),
                &Default::default(),
                false,
            )
            .expect("catalog"),
        );
        let functions = Arc::new(
            FunctionService::open(settings.clone(), store.clone(), catalog).expect("functions"),
        );
        let logs = Arc::new(LogService::new(store.clone(), u64::MAX / 4, u64::MAX / 4));
        let configs = Arc::new(
            crate::event_config::EventConfigs::open(store.clone(), functions.clone())
                .expect("configs"),
        );
        let launcher = Arc::new(launcher);
        let invoke = InvokeService::new(
            settings,
            functions.clone(),
            launcher.clone(),
            logs,
            store,
            configs,
            Arc::new(crate::sinks::Sinks::new()),
        )
        .expect("invoke service");
        Platform {
            _dir: dir,
            functions,
            invoke,
            launcher,
        }
    }

    /// Creates a `provided.al2023` function and waits until it is Active.
    pub(crate) async fn function(&self, name: &str) {
        self.functions
            .create(CreateFunction {
                name: name.into(),
                config: ConfigChange {
                    runtime: Some("provided.al2023".into()),
                    role: Some("arn:aws:iam::000000000000:role/r".into()),
                    handler: Some("h".into()),
                    ..ConfigChange::default()
                },
                zip: Some(bootstrap_zip()),
                ..CreateFunction::default()
            })
            .await
            .expect("create");
        for _ in 0..500 {
            if self
                .functions
                .get(name)
                .is_some_and(|r| r.state == FunctionState::Active)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never became Active");
    }

    /// A synchronous invocation.
    pub(crate) async fn call(&self, name: &str, payload: &str) -> Result<InvokeResult, CoreError> {
        let target = crate::names::parse_function_ref(name).expect("name");
        self.invoke
            .invoke(InvokeInput {
                invocation_type: InvocationType::RequestResponse,
                ..InvokeInput::sync(
                    target,
                    payload.to_string(),
                    crate::invoke::Caller::Anonymous,
                )
            })
            .await
    }
}
