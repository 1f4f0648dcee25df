//! The Nimbus data plane: execution environments that speak the Lambda Runtime API.
//!
//! An [`Environment`] is one isolated runtime process with its own Runtime API endpoint, its own
//! log stream and one invocation at a time. How the process is isolated is a [`Launcher`]'s
//! business (this crate ships the [`SandboxLauncher`] and the plain-process launcher). Which program runs is the
//! [`RuntimeCatalog`]'s (the user's `bootstrap` for `provided.*`, the bundled Python and Node
//! bootstraps for managed runtimes). Code is unpacked once per code version by [`code`].
//!
//! Nothing here knows about HTTP callers, AWS JSON or storage: the core's invoke service is the
//! only way in.

pub mod code;
pub mod environment;
pub mod launcher;
mod logpipe;
pub mod runtime_api;
pub mod runtimes;
pub mod sandbox;
pub mod scripted;
pub mod uids;

pub use environment::{
    EnvConfig, Environment, InitFailure, InvokeOutcome, InvokeRequest, InvokeStatus, LogLimits,
    LogLine, LogSink, RuntimeReply,
};
pub use launcher::{
    GuestPaths, LaunchError, LaunchSpec, Launched, Launcher, ProcessControl, ProcessLauncher,
};
pub use runtimes::{ResolvedRuntime, RuntimeCatalog, RuntimeError};
pub use sandbox::net::{Cidr, NetworkConfig, NetworkMode};
pub use sandbox::{Feature, SandboxConfig, SandboxLauncher};
pub use scripted::ScriptedLauncher;

/// Largest response a runtime may post (6 MiB + 100 bytes, as Lambda).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;
