//! Function networking: every sandboxed environment in a network namespace of its own.
//!
//! Inside, an environment sees its own loopback, where the server listens for it — the Runtime
//! API at `127.0.0.1:9001` as on Lambda, and the Nimbus API (`AWS_ENDPOINT_URL`) at
//! `127.0.0.1:<server port>`, relayed to the server — and, in `isolated` mode, an `eth0` that
//! is one end of a veth pair whose other end (`nmb<slot>-<n>`) sits in the host. Outbound
//! traffic is routed and masqueraded through the host, as on Lambda. The host's nftables table
//! (one per server) is the enforcement: nothing reaches the host itself, another environment,
//! link-local addresses (cloud metadata) or, unless allowed, the private ranges; `prohibit`
//! routes inside the namespace make such connections fail at once rather than time out. The
//! host's name servers (from `/etc/resolv.conf`) stay reachable on port 53.
//!
//! The namespace is created by the clone; [`Network::prepare`] runs on the spawner thread while
//! the environment is prepared ahead of demand, so none of this is on the cold-start path. The
//! host end of the pair is deleted before the environment's uid (which names and numbers it) is
//! handed out again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::Feature;

/// The Runtime API's address inside an environment, as on Lambda.
pub const RUNTIME_API_PORT: u16 = 9001;

/// Connections one environment may hold open to the Nimbus API at once.
const API_CONNECTIONS_PER_ENV: usize = 256;

/// How environments reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Own namespace with outbound access through the host (default).
    Isolated,
    /// Own namespace with loopback only: the Runtime API and the Nimbus API, nothing else.
    Loopback,
    /// The host's network, shared (functions reach host-only services): an explicit opt-out.
    Host,
}

impl std::str::FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "isolated" => Ok(NetworkMode::Isolated),
            "loopback" => Ok(NetworkMode::Loopback),
            "host" => Ok(NetworkMode::Host),
            other => Err(format!(
                "unknown network mode '{other}': expected isolated, loopback or host"
            )),
        }
    }
}

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address; host bits may be set.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub len: u8,
}

impl Cidr {
    /// A prefix of `len` bits at `addr`; `len` is not checked here, and must not exceed 32.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Cidr {
        Cidr { addr, len }
    }

    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The prefix with its host bits cleared.
    fn network(&self) -> Cidr {
        Cidr::new(Ipv4Addr::from(u32::from(self.addr) & self.mask()), self.len)
    }

    /// Whether `ip` lies within the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{s}' is not an IPv4 address or prefix (a.b.c.d/n)"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|n| *n <= 32)
            .ok_or_else(|| format!("'{s}': the prefix length must be 0 to 32"))?;
        Ok(Cidr::new(addr, len).network())
    }
}

/// Destinations no environment reaches, whatever the settings: "this" network, loopback,
/// link-local (cloud metadata at 169.254.169.254), multicast and reserved space.
const ALWAYS_BLOCKED: &[Cidr] = &[
    Cidr::new(Ipv4Addr::new(0, 0, 0, 0), 8),
    Cidr::new(Ipv4Addr::new(127, 0, 0, 0), 8),
    Cidr::new(Ipv4Addr::new(169, 254, 0, 0), 16),
    Cidr::new(Ipv4Addr::new(224, 0, 0, 0), 4),
    Cidr::new(Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// Private and shared ranges (RFC 1918, RFC 6598 shared address space, RFC 2544 benchmarking),
/// blocked unless `block_private` is off.
const PRIVATE: &[Cidr] = &[
    Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 8),
    Cidr::new(Ipv4Addr::new(100, 64, 0, 0), 10),
    Cidr::new(Ipv4Addr::new(172, 16, 0, 0), 12),
    Cidr::new(Ipv4Addr::new(192, 168, 0, 0), 16),
    Cidr::new(Ipv4Addr::new(198, 18, 0, 0), 15),
];

/// Network settings of the sandbox.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Whether environments get a network namespace of their own, and what it reaches.
    pub mode: NetworkMode,
    /// Addresses of the veth pairs (two per environment).
    pub subnet: Cidr,
    /// Whether private ranges are unreachable (default true).
    pub block_private: bool,
    /// Destinations reachable despite the blocks (a private service the functions need).
    pub allow: Vec<Cidr>,
    /// The server's API, relayed from each environment's loopback at the same port.
    pub api: Option<SocketAddr>,
    /// Ports of the host's loopback that functions may reach, each relayed from the same port
    /// of the environment's loopback (a database on the developer's machine): an opt-in.
    pub host_ports: Vec<u16>,
}

/// At most this many host ports may be opened to functions.
pub const MAX_HOST_PORTS: usize = 32;

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            mode: NetworkMode::Isolated,
            subnet: Cidr::new(Ipv4Addr::new(100, 64, 0, 0), 10),
            block_private: true,
            allow: Vec::new(),
            api: None,
            host_ports: Vec::new(),
        }
    }
}

/// What an environment's network holds (on the host side).
pub(crate) struct EnvNet {
    runtime_api: std::net::TcpListener,
    /// Listeners inside the environment and the host address each relays to.
    relays: Vec<(std::net::TcpListener, SocketAddr)>,
    veth: Veth,
}

/// The host end of an environment's veth pair (if it has one), deleted when it ends.
pub(crate) struct Veth(Option<String>);

impl EnvNet {
    /// Deletes the pair now, from any thread (an environment that never ran).
    pub(crate) fn discard(self) {
        let EnvNet {
            runtime_api,
            relays,
            veth,
        } = self;
        drop((runtime_api, relays));
        if let Some(v) = veth.0
            && let Err(e) = delete_link_blocking(&v)
            && !e.contains("No such device")
        {
            tracing::warn!("{e}");
        }
    }
}

impl EnvNet {
    /// The Runtime API's listener, the relayed ones, and the pair.
    pub(crate) fn into_parts(
        self,
    ) -> (
        std::net::TcpListener,
        Vec<(std::net::TcpListener, SocketAddr)>,
        Veth,
    ) {
        (self.runtime_api, self.relays, self.veth)
    }
}

/// The outbound part: the host end of every pair and the nftables table.
struct Outbound {
    handle: rtnetlink::Handle,
    /// Names of this server's host ends start with it (`nmb<k>-`).
    prefix: String,
    table: String,
    nft: PathBuf,
    subnet: Cidr,
    /// The pair index of this server's first uid: its slot's first pair.
    first_pair: u64,
    /// The first uid of this server's range (names count from it).
    range_base: u32,
    blocked: Vec<Cidr>,
    /// `network_allow`: reachable on every port.
    allowed: Vec<Cidr>,
    /// The host's name servers that lie in a blocked range: reachable on port 53 only.
    resolver_holes: Vec<Ipv4Addr>,
    /// The host-wide reservation of this server's slot (its addresses, names and table).
    _slot: std::fs::File,
}

/// Reserves the first free network slot host-wide: an exclusive `flock` on
/// `/run/nimbus-net/slot-<k>.lock`, held for the server's lifetime, so two servers never share
/// addresses, interface names or a table, whatever their uid ranges.
fn reserve_slot(slots: u32) -> Result<(u32, std::fs::File), String> {
    for k in 0..slots {
        let path = Path::new(STATE_DIR).join(format!("slot-{k}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own (released when it is closed).
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok((k, f));
        }
    }
    Err(format!(
        "every network slot ({slots}) is taken by other Nimbus servers on this host"
    ))
}

/// The spawner thread's own runtime for netlink, and its connection to the host's namespace.
pub(crate) struct Local {
    rt: tokio::runtime::Runtime,
    host: Option<rtnetlink::Handle>,
}

impl Local {
    pub(crate) fn new() -> std::io::Result<Local> {
        Ok(Local {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?,
            host: None,
        })
    }
}

/// The sandbox's network: made at launcher start, used for every environment.
pub(crate) struct Network {
    pub mode: NetworkMode,
    outbound: Option<Outbound>,
    api: Option<SocketAddr>,
    guest_api_port: u16,
    /// (port inside, host address) for every relay: the API's first.
    relays: Vec<(u16, SocketAddr)>,
    host_ns: Option<OwnedFd>,
    rt: tokio::runtime::Handle,
    pub feature: Feature,
}

fn nft_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
}

/// The IPv4 name servers of the host's `/etc/resolv.conf`.
fn resolvers() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .collect()
}

/// The host's own IPv4 addresses.
fn host_addresses() -> Vec<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|i| i.address)
                .filter_map(|a| a.as_sockaddr_in().map(|s| s.ip()))
                .collect()
        })
        .unwrap_or_default()
}

/// Host-wide state shared by the servers on one host: whether Nimbus turned IPv4 forwarding on.
const STATE_DIR: &str = "/run/nimbus-net";

struct HostLock(#[allow(dead_code)] std::fs::File);

fn host_lock() -> std::io::Result<HostLock> {
    std::fs::create_dir_all(STATE_DIR)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(STATE_DIR).join("lock"))?;
    // SAFETY: flock on a descriptor we own (released when it is closed).
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(HostLock(f))
}

fn forwarding_marker() -> PathBuf {
    Path::new(STATE_DIR).join("forwarding-enabled")
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

fn nft(binary: &Path, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(binary)
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn set_elements(cidrs: &[Cidr]) -> String {
    cidrs
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server's nftables table: masquerade outbound traffic, refuse everything to the host, and
/// the blocked ranges (the allowed ones first); with `isolate_forwarding` (Nimbus turned IPv4
/// forwarding on), nothing else is forwarded, as before.
fn ruleset(
    table: &str,
    prefix: &str,
    blocked: &[Cidr],
    allowed: &[Cidr],
    resolvers: &[Ipv4Addr],
    isolate_forwarding: bool,
) -> String {
    let ours = format!("iifname \"{prefix}*\"");
    let mut s =
        format!("add table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n");
    s += "  set blocked { type ipv4_addr; flags interval; auto-merge; ";
    if !blocked.is_empty() {
        s += &format!("elements = {{ {} }} ", set_elements(blocked));
    }
    s += "}\n  set allowed { type ipv4_addr; flags interval; auto-merge; ";
    if !allowed.is_empty() {
        s += &format!("elements = {{ {} }} ", set_elements(allowed));
    }
    s += "}\n";
    s += "  chain input {\n    type filter hook input priority filter; policy accept;\n";
    for r in resolvers {
        s += &format!("    {ours} ip daddr {r} meta l4proto {{ tcp, udp }} th dport 53 accept\n");
    }
    s += &format!("    {ours} drop\n  }}\n");
    s += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
    s += &format!("    {ours} meta nfproto ipv6 drop\n");
    // Environments never reach each other, whatever the blocked ranges.
    s += "    iifname \"nmb*\" oifname \"nmb*\" drop\n";
    for r in resolvers {
        s += &format!("    {ours} ip daddr {r} meta l4proto {{ tcp, udp }} th dport 53 accept\n");
    }
    s += &format!("    {ours} ip daddr @allowed accept\n");
    s += &format!("    {ours} ip daddr @blocked drop\n");
    s += &format!("    {ours} accept\n");
    s += &format!("    oifname \"{prefix}*\" ct state established,related accept\n");
    s += &format!("    oifname \"{prefix}*\" drop\n");
    if isolate_forwarding {
        // Other servers' environments are filtered by their own tables.
        s += "    iifname \"nmb*\" accept\n    oifname \"nmb*\" accept\n    meta nfproto ipv4 drop\n";
    }
    s += "  }\n";
    s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
    s += &format!("    {ours} oifname != \"nmb*\" masquerade\n  }}\n}}\n");
    s
}

impl Outbound {
    /// Reserves a network slot host-wide, installs the table, then turns forwarding on where it
    /// is off (in that order: forwarding is never on without the table's rules).
    fn start(config: &NetworkConfig, range_base: u32, count: u32) -> Result<Outbound, String> {
        let nft_bin = nft_binary()
            .ok_or_else(|| "nft is not installed (Debian: apt install nftables)".to_string())?;
        let per_slot = u64::from(count.max(1)) * 2;
        let slots = config.subnet.size() / per_slot;
        if slots == 0 {
            return Err(format!(
                "sandbox.network_subnet {} is too small: {per_slot} addresses are needed per server",
                config.subnet
            ));
        }
        std::fs::create_dir_all(STATE_DIR).map_err(|e| format!("creating {STATE_DIR}: {e}"))?;
        let (slot, slot_lock) = reserve_slot(slots.min(256) as u32)?;
        let prefix = format!("nmb{slot}-");
        let table = format!("nimbus-{slot}");
        let resolvers: Vec<Ipv4Addr> = resolvers()
            .into_iter()
            .filter(|r| !r.is_loopback())
            .collect();
        let mut blocked: Vec<Cidr> = ALWAYS_BLOCKED.to_vec();
        if config.block_private {
            blocked.extend_from_slice(PRIVATE);
        }
        let allowed = config.allow.clone();
        let resolver_holes: Vec<Ipv4Addr> = resolvers
            .iter()
            .copied()
            .filter(|r| blocked.iter().any(|b| b.contains(*r)))
            .filter(|r| !allowed.iter().any(|a| a.contains(*r)))
            .collect();
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| format!("netlink: {e}"))?;
        let _lock = host_lock().map_err(|e| format!("locking {STATE_DIR}: {e}"))?;
        let forwarding = std::fs::read_to_string(IP_FORWARD)
            .map_err(|e| format!("reading {IP_FORWARD}: {e}"))?;
        let off = forwarding.trim() == "0";
        let isolate = off || forwarding_marker().exists();
        nft(
            &nft_bin,
            &ruleset(&table, &prefix, &blocked, &allowed, &resolvers, isolate),
        )?;
        if off {
            let enabled = std::fs::write(forwarding_marker(), b"")
                .map_err(|e| format!("writing {}: {e}", forwarding_marker().display()))
                .and_then(|()| {
                    std::fs::write(IP_FORWARD, "1")
                        .map_err(|e| format!("enabling IPv4 forwarding: {e}"))
                });
            if let Err(e) = enabled {
                let _ = nft(&nft_bin, &format!("delete table inet {table}\n"));
                let _ = std::fs::remove_file(forwarding_marker());
                return Err(e);
            }
            tracing::info!(
                "enabled IPv4 forwarding for function networking (only environments' traffic is forwarded)"
            );
        }
        tokio::spawn(conn);
        Ok(Outbound {
            handle,
            prefix,
            table,
            nft: nft_bin,
            subnet: config.subnet.network(),
            first_pair: u64::from(slot) * u64::from(count.max(1)),
            range_base,
            blocked,
            allowed,
            resolver_holes,
            _slot: slot_lock,
        })
    }

    /// The pair of addresses (host end, environment end) and the host end's name for a uid.
    fn pair(&self, uid: u32) -> Result<(Ipv4Addr, Ipv4Addr, String), String> {
        let local = uid
            .checked_sub(self.range_base)
            .ok_or("uid below the range")?;
        let n = self.first_pair + u64::from(local);
        if (n + 1) * 2 > self.subnet.size() {
            return Err(format!(
                "sandbox.network_subnet {} is exhausted",
                self.subnet
            ));
        }
        let base = u64::from(u32::from(self.subnet.addr)) + n * 2;
        let host = Ipv4Addr::from(base as u32);
        let guest = Ipv4Addr::from(base as u32 + 1);
        Ok((host, guest, format!("{}{local}", self.prefix)))
    }

    fn stop(&self) {
        let Ok(_lock) = host_lock() else { return };
        let _ = nft(&self.nft, &format!("delete table inet {}\n", self.table));
        // The last Nimbus table gone: turn forwarding back off if Nimbus turned it on.
        let others = Command::new(&self.nft)
            .args(["list", "tables"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.contains(" nimbus-"))
            })
            .unwrap_or(true);
        if !others && forwarding_marker().exists() {
            let _ = std::fs::write(IP_FORWARD, "0");
            let _ = std::fs::remove_file(forwarding_marker());
        }
    }
}

fn netlink_err(what: &str) -> impl Fn(rtnetlink::Error) -> String + '_ {
    move |e| match e {
        rtnetlink::Error::NetlinkError(m) => format!("{what}: {}", m.to_io()),
        other => format!("{what}: {other}"),
    }
}

async fn link_index(handle: &rtnetlink::Handle, name: &str) -> Result<u32, String> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.header.index),
        Ok(None) => Err(format!("interface {name} not found")),
        Err(e) => Err(netlink_err("finding an interface")(e)),
    }
}

fn setns(fd: &impl AsFd) -> Result<(), String> {
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering a network namespace: {}", e.desc()))
}

/// A TCP socket created in the current network namespace, bound later.
fn tcp_socket() -> Result<socket2::Socket, String> {
    socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM.cloexec(),
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| format!("creating a socket: {e}"))
}

fn listen(socket: socket2::Socket, port: u16) -> Result<std::net::TcpListener, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    socket
        .bind(&addr.into())
        .and_then(|()| socket.listen(128))
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(|e| format!("listening on {addr} in the environment: {e}"))?;
    Ok(socket.into())
}

impl Network {
    /// Sets the network up for `mode` (on the calling tokio runtime). Isolated networking that
    /// the host cannot give degrades to loopback only — never to the host's network — and says
    /// why in the feature.
    pub(crate) fn start(
        config: &NetworkConfig,
        range_base: u32,
        count: u32,
    ) -> Result<Network, String> {
        let rt = tokio::runtime::Handle::current();
        let api_port = config.api.map(|a| a.port()).unwrap_or(0);
        let guest_api_port = if api_port == RUNTIME_API_PORT || api_port == 0 {
            4566
        } else {
            api_port
        };
        let mut relays: Vec<(u16, SocketAddr)> = Vec::new();
        if let Some(a) = config.api {
            let target = if a.ip().is_unspecified() {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            } else {
                a
            };
            relays.push((guest_api_port, target));
        }
        for p in &config.host_ports {
            if *p != RUNTIME_API_PORT && *p != guest_api_port && !relays.iter().any(|r| r.0 == *p) {
                relays.push((*p, SocketAddr::from((Ipv4Addr::LOCALHOST, *p))));
            }
        }
        let host_ns = if config.mode == NetworkMode::Host {
            None
        } else {
            // Never fall back to the host's network: without this the sandbox is unavailable.
            let f = std::fs::File::open("/proc/thread-self/ns/net")
                .map_err(|e| format!("opening this process's network namespace: {e}"))?;
            Some(OwnedFd::from(f))
        };
        let mut endpoints = format!(
            "the Runtime API at 127.0.0.1:{RUNTIME_API_PORT} and the Nimbus API at 127.0.0.1:{guest_api_port} on its own loopback"
        );
        if !config.host_ports.is_empty() {
            let ports: Vec<String> = config.host_ports.iter().map(u16::to_string).collect();
            endpoints += &format!(
                "; the host's loopback ports {} opened by sandbox.host_ports",
                ports.join(", ")
            );
        }
        let (mode, outbound, feature) = match config.mode {
            NetworkMode::Host => (
                NetworkMode::Host,
                None,
                Feature {
                    name: "network",
                    active: false,
                    detail: "the host's network (sandbox.network = \"host\"): functions reach the host's loopback, its other services and cloud metadata".into(),
                },
            ),
            NetworkMode::Loopback => (
                NetworkMode::Loopback,
                None,
                Feature {
                    name: "network",
                    active: true,
                    detail: format!("a network namespace per environment with loopback only (sandbox.network = \"loopback\"): {endpoints}; no outbound access"),
                },
            ),
            NetworkMode::Isolated => match Outbound::start(config, range_base, count) {
                Ok(o) => {
                    let private = if config.block_private {
                        "private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15)"
                    } else {
                        "(private ranges allowed: sandbox.block_private_networks = false)"
                    };
                    let detail = format!(
                        "a network namespace per environment: outbound through the host (veth {}*, nftables table inet {}); no route to the host, loopback, link-local (cloud metadata) or {private}{}; {endpoints}",
                        o.prefix,
                        o.table,
                        if o.allowed.is_empty() {
                            String::new()
                        } else {
                            format!("; allowed: {}", set_elements(&o.allowed))
                        }
                    );
                    (
                        NetworkMode::Isolated,
                        Some(o),
                        Feature {
                            name: "network",
                            active: true,
                            detail,
                        },
                    )
                }
                Err(why) => {
                    tracing::warn!("functions have no outbound network access: {why}");
                    (
                        NetworkMode::Loopback,
                        None,
                        Feature {
                            name: "network",
                            active: false,
                            detail: format!("no outbound access ({why}): a network namespace per environment with loopback only; {endpoints}"),
                        },
                    )
                }
            },
        };
        if let Some(r) = resolvers()
            .iter()
            .find(|r| r.is_loopback())
            .filter(|_| outbound.is_some())
        {
            tracing::warn!(resolver = %r, "the host's name server is on its loopback: functions cannot resolve names through it");
        }
        Ok(Network {
            mode,
            outbound,
            api: config.api,
            guest_api_port,
            relays,
            host_ns,
            rt,
            feature,
        })
    }

    /// Whether environments get a namespace of their own.
    pub(crate) fn own_namespace(&self) -> bool {
        self.mode != NetworkMode::Host
    }

    /// `AWS_ENDPOINT_URL` inside an environment, when it differs from the host's.
    pub(crate) fn guest_endpoint(&self) -> Option<String> {
        (self.own_namespace() && self.api.is_some())
            .then(|| format!("http://127.0.0.1:{}", self.guest_api_port))
    }

    /// On the spawner thread, for a freshly cloned init: the veth pair, the namespace's
    /// interfaces and routes, and the listeners inside it. The netlink conversations run on the
    /// spawner's own runtime (`local`), so a busy server does not slow them down.
    pub(crate) fn prepare(
        &self,
        local: &mut Local,
        pid: libc::pid_t,
        uid: u32,
    ) -> Result<Option<EnvNet>, String> {
        let Some(host_ns) = &self.host_ns else {
            return Ok(None);
        };
        let host_handle = match (&self.outbound, &local.host) {
            (None, _) => None,
            (Some(_), Some(h)) => Some(h.clone()),
            (Some(_), None) => {
                let _rt = local.rt.enter();
                let (conn, handle, _) =
                    rtnetlink::new_connection().map_err(|e| format!("netlink: {e}"))?;
                local.rt.spawn(conn);
                local.host = Some(handle.clone());
                Some(handle)
            }
        };
        let ns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| format!("opening the environment's network namespace: {e}"))?
            .into();
        let pair = match &self.outbound {
            Some(o) => Some((o, o.pair(uid)?)),
            None => None,
        };
        let veth = pair.as_ref().map(|(_, (_, _, n))| n.clone());
        let result = (|| {
            if let (Some((_, (host, _, name))), Some(h)) = (&pair, &host_handle) {
                local.rt.block_on(create_veth(h, name, *host, &ns))?;
            }
            // Sockets belong to the namespace they are created in.
            setns(&ns)?;
            let made = (|| {
                // The netlink socket registers with the runtime's reactor as it is made.
                let _rt = local.rt.enter();
                let (conn, handle, _) = rtnetlink::new_connection()
                    .map_err(|e| format!("netlink in the environment: {e}"))?;
                let runtime = tcp_socket()?;
                let relays = self
                    .relays
                    .iter()
                    .map(|(port, target)| Ok((tcp_socket()?, *port, *target)))
                    .collect::<Result<Vec<_>, String>>()?;
                Ok::<_, String>((conn, handle, runtime, relays))
            })();
            if let Err(e) = setns(host_ns) {
                // The thread would create the next environment's host-side state in this one.
                tracing::error!("{e}: leaving an environment's network namespace failed");
                std::process::abort();
            }
            let (conn, handle, runtime, relays) = made?;
            local.rt.spawn(conn);
            let guest = pair.as_ref().map(|(o, (h, g, _))| (*o, *h, *g));
            local.rt.block_on(configure_guest(&handle, guest))?;
            // Let the namespace's netlink connection see its handle gone and end (it holds a
            // socket, and so the namespace).
            drop(handle);
            local.rt.block_on(tokio::task::yield_now());
            Ok(EnvNet {
                runtime_api: listen(runtime, RUNTIME_API_PORT)?,
                relays: relays
                    .into_iter()
                    .map(|(s, port, target)| Ok((listen(s, port)?, target)))
                    .collect::<Result<_, String>>()?,
                veth: Veth(veth.clone()),
            })
        })();
        if result.is_err()
            && let Some(v) = &veth
            && let Some(h) = &host_handle
        {
            let _ = local.rt.block_on(delete_link(h, v));
        }
        result.map(Some)
    }

    /// Deletes the host end of an environment's pair (the namespace's end goes with it).
    pub(crate) async fn release(&self, veth: &Veth) {
        if let (Some(v), Some(o)) = (&veth.0, &self.outbound)
            && let Err(e) = delete_link(&o.handle, v).await
        {
            tracing::warn!(interface = %v, "deleting an environment's interface: {e}");
        }
    }

    /// Serves an environment's relays (the Nimbus API, opened host ports): each connection to
    /// a listener inside is relayed to its host address.
    pub(crate) fn relay_all(
        &self,
        relays: Vec<(std::net::TcpListener, SocketAddr)>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        relays
            .into_iter()
            .filter_map(|(l, target)| {
                let _rt = self.rt.enter();
                let listener = tokio::net::TcpListener::from_std(l).ok()?;
                Some(self.rt.spawn(relay(listener, target)))
            })
            .collect()
    }

    /// Removes the host-side rules (at shutdown).
    pub(crate) fn stop(&self) {
        if let Some(o) = &self.outbound {
            o.stop();
        }
    }
}

async fn relay(listener: tokio::net::TcpListener, target: SocketAddr) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(API_CONNECTIONS_PER_ENV));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((mut inbound, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        conns.spawn(async move {
            let _permit = permit;
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

fn write_sysctl(path: &str, value: &str) -> Result<(), String> {
    match std::fs::write(path, value) {
        Ok(()) => Ok(()),
        // No IPv6 on this host: nothing to turn off.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("writing {path}: {e}")),
    }
}

async fn create_veth(
    handle: &rtnetlink::Handle,
    name: &str,
    host: Ipv4Addr,
    ns: &OwnedFd,
) -> Result<(), String> {
    let build = || {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name("eth0".to_string())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        LinkVeth::new(name, "eth0")
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build()
    };
    match handle.link().add(build()).execute().await {
        Ok(()) => {}
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::EEXIST => {
            // Left by an environment whose namespace something else still holds.
            delete_link(handle, name).await?;
            handle
                .link()
                .add(build())
                .execute()
                .await
                .map_err(netlink_err("creating a veth pair"))?;
        }
        Err(e) => return Err(netlink_err("creating a veth pair")(e)),
    }
    write_sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1")?;
    // Answer ARP only for the host end's own address: a socket that names its interface gets
    // no on-link route to the host's other addresses.
    write_sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/arp_ignore"), "1")?;
    let index = link_index(handle, name).await?;
    handle
        .address()
        .add(index, IpAddr::V4(host), 31)
        .execute()
        .await
        .map_err(netlink_err("addressing the host end"))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink_err("bringing the host end up"))
}

/// Deletes an interface by name with one blocking netlink request (for the synchronous paths:
/// discarding prepared environments at shutdown).
pub(crate) fn delete_link_blocking(name: &str) -> Result<(), String> {
    use rtnetlink::packet_core::{
        NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
    use rtnetlink::sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_ROUTE};
    let io = |e: std::io::Error| format!("deleting interface {name}: {e}");
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(io)?;
    sock.bind_auto().map_err(io)?;
    sock.connect(&NlAddr::new(0, 0)).map_err(io)?;
    let mut link = LinkMessage::default();
    link.attributes
        .push(LinkAttribute::IfName(name.to_string()));
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::DelLink(link)),
    );
    msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    sock.send(&out, 0).map_err(io)?;
    let mut buf = [0u8; 4096];
    // SAFETY: recv into a buffer we own, of the length given.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..n as usize])
        .map_err(|e| format!("deleting interface {name}: {e}"))?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => {
            Err(format!("deleting interface {name}: {}", e.to_io()))
        }
        _ => Ok(()),
    }
}

async fn delete_link(handle: &rtnetlink::Handle, name: &str) -> Result<(), String> {
    handle
        .link()
        .del_with_message(LinkUnspec::new_with_name(name).build())
        .execute()
        .await
        .map_err(netlink_err("deleting an interface"))
}

/// Inside the namespace: loopback up; with a pair, `eth0` addressed and up, a default route
/// through the host end, and `prohibit` routes for every blocked range (holes for the allowed).
async fn configure_guest(
    handle: &rtnetlink::Handle,
    pair: Option<(&Outbound, Ipv4Addr, Ipv4Addr)>,
) -> Result<(), String> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(1).up().build())
        .execute()
        .await
        .map_err(netlink_err("bringing loopback up"))?;
    let Some((o, host, guest)) = pair else {
        return Ok(());
    };
    let eth0 = link_index(handle, "eth0").await?;
    handle
        .address()
        .add(eth0, IpAddr::V4(guest), 31)
        .execute()
        .await
        .map_err(netlink_err("addressing eth0"))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(eth0).up().build())
        .execute()
        .await
        .map_err(netlink_err("bringing eth0 up"))?;
    let route =
        |dest: Cidr| RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dest.addr, dest.len);
    handle
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(host)
                .output_interface(eth0)
                .build(),
        )
        .execute()
        .await
        .map_err(netlink_err("adding the default route"))?;
    let mut prohibit: Vec<Cidr> = o.blocked.clone();
    prohibit.push(Cidr::new(host, 32));
    // Other environments (the own pair's /31 is more specific).
    prohibit.push(o.subnet);
    prohibit.extend(host_addresses().into_iter().map(|a| Cidr::new(a, 32)));
    // Holes: the allowed destinations, and the name servers (port 53 only, by the host's rules).
    let holes: Vec<Cidr> = o
        .allowed
        .iter()
        .copied()
        .chain(o.resolver_holes.iter().map(|r| Cidr::new(*r, 32)))
        .collect();
    prohibit.retain(|p| !holes.iter().any(|a| a.network() == p.network()));
    prohibit.dedup();
    for p in prohibit {
        match handle
            .route()
            .add(route(p).kind(RouteType::Prohibit).build())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::EEXIST => {}
            Err(e) => return Err(netlink_err("adding a prohibit route")(e)),
        }
    }
    for a in &holes {
        match handle
            .route()
            .add(route(*a).gateway(host).output_interface(eth0).build())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::EEXIST => {}
            Err(e) => return Err(netlink_err("adding an allowed route")(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.1.2.3/8".parse().expect("cidr");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(Ipv4Addr::new(10, 200, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(11, 0, 0, 1)));
        let host: Cidr = "192.0.2.7".parse().expect("address");
        assert_eq!(host, Cidr::new(Ipv4Addr::new(192, 0, 2, 7), 32));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn the_ruleset_blocks_before_it_accepts() {
        let s = ruleset(
            "nimbus-0",
            "nmb0-",
            &[Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 8)],
            &[Cidr::new(Ipv4Addr::new(10, 1, 2, 3), 32)],
            &[Ipv4Addr::new(10, 255, 255, 53)],
            true,
        );
        let allowed = s.find("ip daddr @allowed accept").expect("allowed");
        let blocked = s.find("ip daddr @blocked drop").expect("blocked");
        let accept = s.find("iifname \"nmb0-*\" accept").expect("accept");
        assert!(allowed < blocked && blocked < accept, "{s}");
        assert!(s.contains("elements = { 10.1.2.3/32 }"));
        // The name server: port 53 only, to the host and forwarded, before the blocks.
        let dns = "ip daddr 10.255.255.53 meta l4proto { tcp, udp } th dport 53 accept";
        assert_eq!(s.matches(dns).count(), 2, "{s}");
        assert!(s.rfind(dns).expect("dns") < blocked, "{s}");
        assert!(s.contains("iifname \"nmb0-*\" drop\n  }\n  chain forward"));
        assert!(s.trim_end().ends_with('}'));
        assert!(
            s.contains("    meta nfproto ipv4 drop\n  }"),
            "forwarding isolated (IPv4 only): {s}"
        );
        let apart = s
            .find("iifname \"nmb*\" oifname \"nmb*\" drop")
            .expect("apart");
        assert!(apart < allowed, "environments are kept apart first: {s}");
        let open = ruleset("nimbus-0", "nmb0-", &[], &[], &[], false);
        assert!(!open.contains("ipv4 drop"));
        assert!(!open.contains("elements"));
    }
}
