//! Who is on the other end of a loopback TCP connection: the owner uid of the peer's socket,
//! asked of the kernel through `NETLINK_SOCK_DIAG` (the interface `ss` uses).
//!
//! Sandboxed environments share the host's network (functions have outbound network as on
//! AWS), so every environment could connect to every other environment's Runtime API port.
//! Each environment runs as its own uid; its Runtime API serves only connections whose client
//! socket belongs to that uid. Written by hand: one fixed-size request and reply (`inet_diag_req_v2`
//! / `inet_diag_msg`), smaller than wiring a general netlink crate for it.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const HDR: usize = 16;
/// `inet_diag_req_v2`: family, protocol, ext, pad, states, then the 48-byte `inet_diag_sockid`.
const REQ: usize = 56;
/// Offset of `idiag_uid` in `inet_diag_msg` (4 + 48 + expires, rqueue, wqueue).
const UID_AT: usize = 64;

/// The uid owning the TCP socket with source `from` and destination `to` (both IPv4).
pub fn tcp_socket_uid(from: SocketAddrV4, to: SocketAddrV4) -> io::Result<u32> {
    // SAFETY: plain socket creation; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };

    let mut msg = [0u8; HDR + REQ];
    msg[0..4].copy_from_slice(&((HDR + REQ) as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let r = &mut msg[HDR..];
    r[0] = libc::AF_INET as u8;
    r[1] = libc::IPPROTO_TCP as u8;
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every TCP state
    let id = &mut r[8..];
    id[0..2].copy_from_slice(&from.port().to_be_bytes());
    id[2..4].copy_from_slice(&to.port().to_be_bytes());
    id[4..8].copy_from_slice(&from.ip().octets());
    id[20..24].copy_from_slice(&to.ip().octets());
    id[40..48].copy_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE

    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: buffers and lengths match; the kernel copies them.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 512];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let reply = &buf[..n as usize];
    if reply.len() < HDR + 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short sock_diag reply",
        ));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind == NLMSG_ERROR {
        let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        return Err(io::Error::from_raw_os_error(-code));
    }
    if kind != SOCK_DIAG_BY_FAMILY || reply.len() < HDR + UID_AT + 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected sock_diag reply",
        ));
    }
    let u = &reply[HDR + UID_AT..HDR + UID_AT + 4];
    Ok(u32::from_ne_bytes([u[0], u[1], u[2], u[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpListener, TcpStream};

    #[test]
    fn the_owner_of_a_loopback_client_socket_is_found() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (_server_side, peer) = listener.accept()?;
        let (SocketAddr::V4(peer), SocketAddr::V4(local)) = (peer, listener.local_addr()?) else {
            return Err(io::Error::other("expected IPv4"));
        };
        match tcp_socket_uid(peer, local) {
            // SAFETY: geteuid has no preconditions.
            Ok(uid) => assert_eq!(uid, unsafe { libc::geteuid() }),
            // A kernel without inet_diag: the sandbox reports the check as unavailable.
            Err(e) => eprintln!("sock_diag unavailable here: {e}"),
        }
        // A socket that does not exist is an error, not a uid.
        let gone = SocketAddrV4::new(*peer.ip(), 1);
        assert!(tcp_socket_uid(gone, local).is_err());
        drop(client);
        Ok(())
    }
}
