//! A no-op `provided` runtime for benchmarks: std only, one keep-alive connection with
//! `TCP_NODELAY`, answers every event with `{}`. Built as a static-friendly binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(Option<String>, Vec<u8>)> {
    let mut line = String::new();
    let mut id = None;
    let mut len = 0usize;
    r.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed",
        ));
    }
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "lambda-runtime-aws-request-id" {
                id = Some(v.trim().to_string());
            } else if k == "content-length" {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((id, body))
}

fn main() -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(std::io::Error::other)?;
    let stream = TcpStream::connect(&api)?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    // NOOP_SLEEP_MS makes every invocation take that long (to hold many environments busy).
    let sleep_ms: u64 = std::env::var("NOOP_SLEEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n");
    loop {
        w.write_all(next.as_bytes())?;
        let (id, _event) = read_response(&mut r)?;
        let id = id.unwrap_or_default();
        if sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
        }
        let resp = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        w.write_all(resp.as_bytes())?;
        read_response(&mut r)?;
    }
}
