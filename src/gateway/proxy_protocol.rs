//! PROXY protocol (v1 and v2) on a listener: the header a load balancer sends before the HTTP
//! bytes names the real client, which then becomes the connection's peer address. A malformed
//! header closes that connection only.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::socket::SocketAddr as PSocketAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora::server::ShutdownWatch;
use ppp::v2::Command;
use ppp::{HeaderResult, PartialResult};
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A PROXY v1 header is at most 107 bytes; v2 with TLVs can be longer, but not this long.
const MAX_HEADER: usize = 4096;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Wraps an app: reads the PROXY header of each new connection, then hands it on.
pub struct ProxyProtocolApp<A> {
    pub inner: Arc<A>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ProxyProtocolApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let stream = match tokio::time::timeout(HEADER_TIMEOUT, accept(session)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                log::warn!("PROXY protocol: {e}; closing that connection");
                return None;
            }
            Err(_) => {
                log::warn!(
                    "PROXY protocol: no header within {HEADER_TIMEOUT:?}; closing that connection"
                );
                return None;
            }
        };
        // Keep-alive requests stay here: a reused connection carries no new PROXY header.
        let mut next = self.inner.process_new(stream, shutdown).await;
        while let Some(s) = next {
            next = self.inner.process_new(s, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Reads and strips the PROXY header; the stream's peer address becomes the client it names.
async fn accept(session: Stream) -> Result<Stream, String> {
    let mut l4 = session
        .into_any()
        .downcast::<L4Stream>()
        .map_err(|_| "not a plain TCP stream".to_string())?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = l4
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("connection closed before a complete PROXY header".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let parsed = HeaderResult::parse(&buf);
        if parsed.is_incomplete() {
            if buf.len() > MAX_HEADER {
                return Err("PROXY header too long".into());
            }
            continue;
        }
        let (len, source) = header(parsed)?;
        l4.rewind(&buf[len..]);
        if let Some(src) = source {
            let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
            let _ = digest.peer_addr.set(Some(PSocketAddr::Inet(src)));
            l4.set_socket_digest(digest);
        }
        return Ok(l4);
    }
}

/// The header's length and the client it names (`None`: keep the real peer, as for LOCAL).
fn header(parsed: HeaderResult<'_>) -> Result<(usize, Option<SocketAddr>), String> {
    match parsed {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            Ok((h.header.len(), source))
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, &h.addresses) {
                (Command::Local, _) => None,
                (_, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (_, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Ok((h.len(), source))
        }
        HeaderResult::V1(Err(e)) => Err(format!("malformed PROXY header: {e}")),
        HeaderResult::V2(Err(e)) => Err(format!("malformed PROXY v2 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_the_client() {
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let (len, src) = header(HeaderResult::parse(v1)).unwrap();
        assert_eq!(&v1[len..len + 3], b"GET");
        assert_eq!(src, Some("203.0.113.7:51000".parse().unwrap()));

        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([0x21, 0x11, 0, 12]);
        v2.extend([198, 51, 100, 9, 192, 0, 2, 1]);
        v2.extend(40000u16.to_be_bytes());
        v2.extend(443u16.to_be_bytes());
        v2.extend(b"GET");
        let (len, src) = header(HeaderResult::parse(&v2)).unwrap();
        assert_eq!(&v2[len..], b"GET");
        assert_eq!(src, Some("198.51.100.9:40000".parse().unwrap()));

        assert!(HeaderResult::parse(b"PROXY TCP4 203.0.113.7").is_incomplete());
        assert!(header(HeaderResult::parse(b"PROXY TCP9 x y 1 2\r\n")).is_err());
        assert!(header(HeaderResult::parse(b"GET / HTTP/1.1\r\n\r\n")).is_err());
    }
}
