//! The pipe that carries a runtime's stdout and stderr (merged, as Lambda merges them) to its log
//! stream, split into lines.
//!
//! The read end is non-blocking and registered with the reactor; [`LogPipe::drain_now`] also
//! reads it directly, bypassing readiness, so that everything the runtime wrote before it posted
//! its response is logged before the END and REPORT lines. The pipe is shared between the
//! environment's log task and its invoke path: an invocation drains it at the moment it hands the
//! event over, so the runtime's earlier output is placed before START whatever the log task's lag.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// CloudWatch Logs caps an event at 256 KiB; longer lines are split.
const MAX_LINE: usize = 256 * 1024 - 26;

/// The most one drain reads before it returns (a runtime writing without pause would otherwise
/// keep one drain, and its output buffer, growing for ever). What is left stays in the pipe,
/// whose capacity blocks the runtime until the next read.
const MAX_DRAIN: usize = 512 * 1024;

pub(crate) struct LogPipe {
    fd: AsyncFd<OwnedFd>,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    partial: Vec<u8>,
    closed: bool,
}

/// Creates the pipe: (reader for the environment, writer for the runtime process).
pub(crate) fn pipe() -> std::io::Result<(LogPipe, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fresh descriptors into `fds`, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    // SAFETY: `read` is an OwnedFd: it stays open and is the same descriptor for the lifetime of
    // the AsyncFd that owns it.
    let fd =
        unsafe { AsyncFd::register(read) }.map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((
        LogPipe {
            fd,
            state: std::sync::Mutex::new(State::default()),
        },
        write,
    ))
}

impl LogPipe {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Waits until the pipe has data (or is closed), then reads what is there into complete lines.
    pub(crate) async fn read_lines(&self, out: &mut Vec<String>) {
        if self.is_closed() {
            std::future::pending::<()>().await;
        }
        match self.fd.readable().await {
            Ok(mut guard) => {
                // Readiness is cleared only once the pipe is empty (a drain that stopped at its
                // cap leaves it set, so the rest is read on the next call), and the pipe is read
                // once more after clearing, for what arrived in between.
                if self.drain_now(out) {
                    guard.clear_ready();
                    self.drain_now(out);
                }
            }
            Err(_) => {
                self.state().closed = true;
            }
        }
    }

    /// Reads whatever the kernel holds right now (up to `MAX_DRAIN`), without waiting; complete
    /// lines go to `out`. Returns whether the pipe was left empty (or closed).
    pub(crate) fn drain_now(&self, out: &mut Vec<String>) -> bool {
        let mut st = self.state();
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0usize;
        while read < MAX_DRAIN {
            // SAFETY: reading into a stack buffer of the given length from a descriptor we own.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n > 0 {
                read += n as usize;
                st.partial.extend_from_slice(&buf[..n as usize]);
                split_lines(&mut st.partial, out);
                continue;
            }
            if n == 0 {
                st.closed = true;
                flush(&mut st.partial, out);
            }
            return true;
        }
        false
    }

    /// Emits an unterminated trailing fragment as its own line.
    pub(crate) fn flush_partial(&self, out: &mut Vec<String>) {
        flush(&mut self.state().partial, out);
    }
}

fn flush(partial: &mut Vec<u8>, out: &mut Vec<String>) {
    if !partial.is_empty() {
        let rest = std::mem::take(partial);
        out.push(String::from_utf8_lossy(&rest).into_owned());
    }
}

fn split_lines(partial: &mut Vec<u8>, out: &mut Vec<String>) {
    let mut start = 0;
    while let Some(pos) = partial[start..].iter().position(|&b| b == b'\n') {
        let end = start + pos;
        let mut line = &partial[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        for chunk in line.chunks(MAX_LINE) {
            // A carriage return inside a line separates lines of one multi-line event
            // (the managed runtimes write tracebacks that way).
            out.push(String::from_utf8_lossy(chunk).replace('\r', "\n"));
        }
        if line.is_empty() {
            out.push(String::new());
        }
        start = end + 1;
    }
    partial.drain(..start);
    while partial.len() >= MAX_LINE {
        let chunk: Vec<u8> = partial.drain(..MAX_LINE).collect();
        out.push(String::from_utf8_lossy(&chunk).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn lines_written_before_a_drain_are_read_by_it() -> std::io::Result<()> {
        let (reader, writer) = pipe()?;
        let mut w = std::fs::File::from(writer);
        w.write_all(b"one\ntwo\r\nthr")?;
        let mut out = Vec::new();
        reader.drain_now(&mut out);
        assert_eq!(out, vec!["one".to_string(), "two".to_string()]);
        w.write_all(b"ee\n")?;
        drop(w);
        out.clear();
        reader.read_lines(&mut out).await;
        assert_eq!(out, vec!["three".to_string()]);
        reader.drain_now(&mut out);
        assert!(reader.is_closed());
        Ok(())
    }
}
