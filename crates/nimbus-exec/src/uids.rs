//! The uids environments run as: one range per server, reserved host-wide.
//!
//! Each live environment holds a uid of its own (its Runtime API then answers only that uid).
//! A server reserves its range with an exclusive `flock` on a file named after the range in a
//! host-wide directory (`/run/nimbus-uids`), held for the server's lifetime, so two servers on
//! one host never hand out the same uid; a server that finds its configured range taken moves
//! to the next free one. Within the range, never-used uids are handed out first and freed ones
//! are reused oldest first, and a uid is only freed once nothing of its environment is left.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many ranges above the configured base a server tries before giving up.
const MAX_RANGES: u32 = 256;

#[derive(Debug)]
struct State {
    next: u32,
    end: u32,
    free: VecDeque<u32>,
}

/// A reserved range of uids.
#[derive(Debug)]
pub struct UidPool {
    base: u32,
    count: u32,
    state: Mutex<State>,
    /// The locked reservation file (none for an unreserved pool in tests).
    _lock: Option<std::fs::File>,
}

impl UidPool {
    /// Reserves the first free range of `count` uids at or above `base`, recording `owner`
    /// (the data directory) in the reservation file.
    pub fn reserve(base: u32, count: u32, owner: &Path) -> Result<UidPool, String> {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "creating the uid reservation directory {}: {e}",
                dir.display()
            )
        })?;
        for k in 0..MAX_RANGES {
            let Some(start) = count.checked_mul(k).and_then(|o| base.checked_add(o)) else {
                break;
            };
            if start.checked_add(count).is_none() {
                break;
            }
            if let Some(why) = range_in_use(start, count) {
                tracing::info!(base = start, "skipping environment uids {start}..: {why}");
                continue;
            }
            let path = dir.join(format!("{start}.lock"));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            // SAFETY: flock on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                continue;
            }
            let _ = file.set_len(0);
            let _ = std::io::Write::write_all(
                &mut &file,
                format!("{}\n{}\n", std::process::id(), owner.display()).as_bytes(),
            );
            if k > 0 {
                tracing::info!(
                    base = start,
                    "environment uids {base}.. are reserved by another Nimbus server; using {start}.."
                );
            }
            return Ok(UidPool::new(start, count, Some(file)));
        }
        Err(format!(
            "no free range of {count} environment uids at or above {base}: {MAX_RANGES} ranges are reserved by other Nimbus servers"
        ))
    }

    /// A pool over `[base, base + count)` without a host-wide reservation.
    pub fn unreserved(base: u32, count: u32) -> UidPool {
        UidPool::new(base, count, None)
    }

    fn new(base: u32, count: u32, lock: Option<std::fs::File>) -> UidPool {
        UidPool {
            base,
            count,
            state: Mutex::new(State {
                next: base,
                end: base.saturating_add(count),
                free: VecDeque::new(),
            }),
            _lock: lock,
        }
    }

    /// The first uid of the range.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// How many uids the pool holds, from [`Self::base`] on.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// A uid no live environment holds: a never-used one if any is left, else the one freed
    /// longest ago.
    pub fn take(&self) -> Option<u32> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.next < s.end {
            s.next += 1;
            return Some(s.next - 1);
        }
        s.free.pop_front()
    }

    /// Gives a uid back once nothing of its environment is left.
    pub fn release(&self, uid: u32) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .free
            .push_back(uid);
    }
}

/// Whether the host already gives out ids in `[start, start + count)`: a user or group in
/// `/etc/passwd` / `/etc/group`, or a subordinate range in `/etc/subuid` / `/etc/subgid`
/// (an environment's leftover processes are killed by uid, so the range must be Nimbus's alone).
/// Directory services (NSS beyond the files) are not consulted.
fn range_in_use(start: u32, count: u32) -> Option<String> {
    let end = u64::from(start) + u64::from(count);
    let inside = |id: u64| (u64::from(start)..end).contains(&id);
    for file in ["/etc/passwd", "/etc/group"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines() {
            if let Some(id) = line.split(':').nth(2).and_then(|v| v.parse::<u64>().ok())
                && inside(id)
            {
                return Some(format!("{file} has id {id}"));
            }
        }
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines() {
            let mut f = line.split(':').skip(1);
            if let (Some(Ok(s)), Some(Ok(n))) = (
                f.next().map(str::parse::<u64>),
                f.next().map(str::parse::<u64>),
            ) && s < end
                && s + n > u64::from(start)
            {
                return Some(format!("{file} hands out {s}..{}", s + n));
            }
        }
    }
    None
}

fn lock_dir() -> PathBuf {
    PathBuf::from("/run/nimbus-uids")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_uids_first_then_the_oldest_freed() {
        let p = UidPool::unreserved(100, 3);
        let (a, b, c) = (p.take(), p.take(), p.take());
        assert_eq!((a, b, c), (Some(100), Some(101), Some(102)));
        assert_eq!(p.take(), None);
        p.release(101);
        p.release(100);
        assert_eq!(p.take(), Some(101));
        assert_eq!(p.take(), Some(100));
    }

    #[test]
    fn two_servers_never_share_a_range() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            let why =
                "uids::two_servers_never_share_a_range: reserving uid ranges needs root (for /run)";
            eprintln!("SKIPPED: {why}");
            if let Some(p) = std::env::var_os("NIMBUS_SKIP_LOG") {
                use std::io::Write as _;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                {
                    let _ = writeln!(f, "{why}");
                }
            }
            return;
        }
        // A base far from what servers use, so a running Nimbus does not interfere.
        let base = 3_000_000_000;
        let a = UidPool::reserve(base, 1000, Path::new("/a")).expect("first");
        let b = UidPool::reserve(base, 1000, Path::new("/b")).expect("second");
        assert_eq!(a.base(), base);
        assert_eq!(b.base(), base + 1000);
        drop(a);
        let c = UidPool::reserve(base, 1000, Path::new("/c")).expect("third");
        assert_eq!(c.base(), base, "a released range is free again");
    }
}
