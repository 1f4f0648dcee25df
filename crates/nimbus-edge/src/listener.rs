//! The front door's connection handling: accepting with global and per-peer connection caps,
//! header-read and keep-alive idle timeouts, and a bounded graceful shutdown.
//!
//! A connection over a cap is closed at once (before any byte is read), so one client (or one
//! function) cannot exhaust the server's descriptors. Each request's headers must arrive within
//! the header timeout, which also bounds how long an idle keep-alive connection is held. On
//! shutdown the listener stops accepting, in-flight requests get the grace period to finish, and
//! whatever is still open after it is aborted, so a half-sent request never holds SIGTERM up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt;

/// Limits of the front door's connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections across all peers.
    pub max_connections: usize,
    /// Open connections from one peer address.
    pub max_per_peer: usize,
    /// How long a request's headers may take to arrive (also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// How long in-flight requests may run on after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            max_per_peer: 1024,
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Counts open connections per peer; a slot is released when its guard drops.
#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

struct Slot {
    counts: Arc<Mutex<Counts>>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_peer.remove(&self.peer);
            }
        }
    }
}

fn take_slot(counts: &Arc<Mutex<Counts>>, peer: IpAddr, limits: &ConnectionLimits) -> Option<Slot> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let mine = c.per_peer.get(&peer).copied().unwrap_or(0);
    if c.total >= limits.max_connections || mine >= limits.max_per_peer {
        return None;
    }
    c.total += 1;
    *c.per_peer.entry(peer).or_insert(0) += 1;
    Some(Slot {
        counts: counts.clone(),
        peer,
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most the grace
/// period and aborts what is left.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut refused = 0u64;
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = take_slot(&counts, peer.ip(), &limits) else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, "connection limit reached; closing new connections");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let _slot = slot;
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, open = conns.len(), "connections still open after the shutdown grace period; aborting them");
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Raises the soft open-files limit to the hard limit (the server holds a descriptor per
/// connection, environment pipe and log file) and returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

/// Connection caps that leave descriptor headroom under `nofile`: at most a quarter of the
/// descriptors go to front-door connections.
pub fn limits_for(nofile: u64, mut limits: ConnectionLimits) -> ConnectionLimits {
    if nofile > 0 {
        let cap = usize::try_from(nofile / 4).unwrap_or(usize::MAX).max(64);
        limits.max_connections = limits.max_connections.min(cap);
        limits.max_per_peer = limits.max_per_peer.min(limits.max_connections);
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_peer_and_in_total() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = ConnectionLimits {
            max_connections: 3,
            max_per_peer: 2,
            ..ConnectionLimits::default()
        };
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let s1 = take_slot(&counts, a, &limits);
        let s2 = take_slot(&counts, a, &limits);
        assert!(s1.is_some() && s2.is_some());
        assert!(take_slot(&counts, a, &limits).is_none(), "per-peer cap");
        let s3 = take_slot(&counts, b, &limits);
        assert!(s3.is_some());
        assert!(take_slot(&counts, b, &limits).is_none(), "global cap");
        drop(s1);
        assert!(
            take_slot(&counts, a, &limits).is_some(),
            "a freed slot is reusable"
        );
        assert_eq!(
            limits_for(256, ConnectionLimits::default()).max_connections,
            64
        );
    }
}
