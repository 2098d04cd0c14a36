//! `agentgateway healthcheck`: one `GET /healthz/ready` to a running gateway, for container
//! health checks in images that have no shell and no curl (deploy/container/Containerfile).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Connect, read and write time-outs each: a health check that hangs is a failed one.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Exit 0 when the readiness server at `addr` answers `200`, 1 otherwise (with the reason on
/// standard error).
pub(crate) fn run(addr: &str) -> ExitCode {
    match probe(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("not ready: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(addr: &str) -> Result<(), String> {
    let target = addr.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    write!(stream, "GET /healthz/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    // The status line is all we need; a readiness answer is a few bytes.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..len]);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("answered {status_line:?}")),
    }
}
