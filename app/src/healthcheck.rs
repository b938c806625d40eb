//! `dpg healthcheck`: the container's health probe (the runtime image has no curl).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the probe may take in all; Docker's own timeout is longer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `GET /health/ready` on this instance's port over loopback; `Ok` on 200, otherwise
/// the reason.
pub fn probe(port: u16) -> Result<(), String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|err| format!("cannot set timeouts: {err}"))?;
    // HTTP/1.0 with Connection: close, so the answer ends when the server closes.
    let request = format!(
        "GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("cannot send the probe: {err}"))?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|err| format!("no answer: {err}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("/health/ready answered {code}")),
        None => Err("the answer is not HTTP".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(answer.as_bytes());
        });
        port
    }

    #[test]
    fn healthy_only_on_200() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(probe(ok), Ok(()));
        let not_ready = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(
            probe(not_ready),
            Err("/health/ready answered 503".to_string())
        );
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let err = probe(port).expect_err("closed port");
        assert!(err.starts_with("cannot connect"), "{err}");
    }
}
