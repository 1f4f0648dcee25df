//! The `nimbus` binary: the server and the command-line client for people. A thin layer over
//! the library crates; the client talks to the server only through its public APIs.

mod client;
mod compose;
mod config;
mod server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nimbus",
    version,
    about = "A self-hosted, AWS Lambda-compatible serverless platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The server a client command talks to (`--endpoint`, `NIMBUS_ENDPOINT`), shared by every
/// command but `server`.
#[derive(clap::Args, Clone)]
pub struct Endpoint {
    /// The Nimbus server to talk to.
    #[arg(
        long,
        env = "NIMBUS_ENDPOINT",
        default_value = "http://127.0.0.1:4566",
        global = true
    )]
    pub endpoint: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Nimbus server (every API on one address).
    Server {
        /// Address to listen on.
        #[arg(long, env = "NIMBUS_LISTEN", default_value = "127.0.0.1:4566")]
        listen: String,
        /// Directory holding all state.
        #[arg(long, env = "NIMBUS_DATA_DIR", default_value = "./.nimbus")]
        data_dir: PathBuf,
        /// Config file (TOML); defaults to <data-dir>/nimbus.toml when that exists.
        #[arg(long, env = "NIMBUS_CONFIG")]
        config: Option<PathBuf>,
        /// How environments run: auto (the sandbox where the host allows it), sandbox, process.
        /// Overrides `[sandbox] launcher` in the config file.
        #[arg(long, env = "NIMBUS_LAUNCHER")]
        launcher: Option<String>,
    },
    /// Create or update a function from a directory or a zip file.
    Deploy {
        /// A directory (zipped for you) or a .zip file.
        path: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        runtime: Option<String>,
        #[arg(long)]
        handler: Option<String>,
        /// Memory in MB (128–10240).
        #[arg(long)]
        memory: Option<i64>,
        /// Timeout in seconds (1–900).
        #[arg(long)]
        timeout: Option<i64>,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        #[arg(long, default_value = "arn:aws:iam::000000000000:role/lambda-role")]
        role: String,
        /// Redeploy whenever a file in the directory changes.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Invoke a function and print its response.
    Invoke {
        name: String,
        /// The event: JSON text, or @file.
        #[arg(long)]
        payload: Option<String>,
        /// Invoke asynchronously (InvocationType=Event).
        #[arg(long = "async")]
        is_async: bool,
        /// Print the invocation's log tail to stderr.
        #[arg(long)]
        logs: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// List functions.
    Ls {
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Delete a function.
    Rm {
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Print a function's logs.
    Logs {
        name: String,
        /// Keep printing new lines as they arrive.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Show metered usage and what it would cost on AWS.
    Cost {
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Show what the server runs with: isolation, runtimes, environments.
    Doctor {
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

fn main() -> anyhow::Result<()> {
    // The sandbox re-executes this binary as an environment's init; nothing else runs then.
    match std::env::args_os().nth(1).as_ref().and_then(|a| a.to_str()) {
        Some(nimbus_exec::sandbox::init::INIT_ARG) => nimbus_exec::sandbox::init::main(),
        Some(nimbus_exec::sandbox::PROBE_ARG) => nimbus_exec::sandbox::probe_main(),
        Some(nimbus_exec::code::UNPACK_ARG) => nimbus_exec::code::helper_main(),
        _ => {}
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Server {
                listen,
                data_dir,
                config,
                launcher,
            } => server::run(listen, data_dir, config, launcher).await,
            Command::Deploy {
                path,
                name,
                runtime,
                handler,
                memory,
                timeout,
                env,
                role,
                watch,
                endpoint,
            } => {
                let spec = client::DeploySpec {
                    path,
                    name,
                    runtime,
                    handler,
                    memory,
                    timeout,
                    env,
                    role,
                };
                client::deploy(&endpoint.endpoint, &spec, watch).await
            }
            Command::Invoke {
                name,
                payload,
                is_async,
                logs,
                endpoint,
            } => client::invoke(&endpoint.endpoint, &name, payload, is_async, logs).await,
            Command::Ls { endpoint } => client::list(&endpoint.endpoint).await,
            Command::Rm { name, endpoint } => client::remove(&endpoint.endpoint, &name).await,
            Command::Logs {
                name,
                follow,
                endpoint,
            } => client::logs(&endpoint.endpoint, &name, follow).await,
            Command::Cost { endpoint } => client::cost(&endpoint.endpoint).await,
            Command::Doctor { endpoint } => client::doctor(&endpoint.endpoint).await,
        }
    })
}
