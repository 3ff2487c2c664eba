//! The admin listener (`Gateway.spec.admin`): `GET /healthz` and `GET /metrics` (Prometheus
//! text). Kept apart from the public listeners so it can stay on loopback.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::Encoder;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Admin {
    pub address: SocketAddr,
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return Ok(());
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path) {
        ("GET", "/healthz") => ("200 OK", "text/plain", b"ok\n".to_vec()),
        ("GET", "/metrics") => {
            let mut out = Vec::new();
            let encoder = prometheus::TextEncoder::new();
            let _ = encoder.encode(&prometheus::gather(), &mut out);
            let errors =
                crate::policy::EXPRESSION_ERRORS.load(std::sync::atomic::Ordering::Relaxed);
            out.extend(format!(
                "# HELP switchyard_rule_expression_errors_total Rule expressions that failed at run time (the rule did not match)\n# TYPE switchyard_rule_expression_errors_total counter\nswitchyard_rule_expression_errors_total {errors}\n"
            ).bytes());
            ("200 OK", "text/plain; version=0.0.4", out)
        }
        _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

#[async_trait]
impl BackgroundService for Admin {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match TcpListener::bind(self.address).await {
            Ok(l) => l,
            Err(e) => {
                log::error!("admin listener {}: {e}", self.address);
                return;
            }
        };
        log::info!("admin on http://{} (/healthz, /metrics)", self.address);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(async move {
                            let _ = answer(stream).await;
                        });
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
