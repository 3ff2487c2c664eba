//! A tiny HTTP/1.1 upstream that answers every request with its own name, for the demo and for
//! the integration tests (so a client can tell which upstream answered).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running upstream: its address, how many requests it answered, and a way to stop it
/// (closing its listener and every open connection, as a crashed process would).
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    /// The listener task and the connection tasks still running.
    live: Arc<AtomicUsize>,
}

/// Counts a task as live until it ends.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections that carried at least one request (health-check probes carry none);
    /// keep-alive reuse keeps this low.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops it and returns once its listener and every connection are closed (at most a
    /// couple of seconds): a test that stops an upstream and then sends a request must not
    /// find it still answering on a kept-alive connection. Call it from outside the runtime.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.live.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Starts an upstream named `name` on `127.0.0.1:0` inside the current tokio runtime.
/// `GET /slow/<ms>` answers after that many milliseconds.
pub async fn spawn(name: &str) -> std::io::Result<Upstream> {
    spawn_on(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts an upstream on a given address (e.g. the address of one that was stopped).
pub async fn spawn_on(name: &str, addr: SocketAddr) -> std::io::Result<Upstream> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let name: Arc<str> = name.into();
    let hits = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = watch::channel(false);
    let counter = hits.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    let mut accept_stop = stopped.clone();
    let live = Arc::new(AtomicUsize::new(0));
    let listening = Live::new(&live);
    let tasks = live.clone();
    tokio::spawn(async move {
        let _listening = listening;
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                _ = accept_stop.changed() => return,
            };
            let name = name.clone();
            let accepted = accepted.clone();
            let hits = counter.clone();
            let mut conn_stop = stopped.clone();
            let serving = Live::new(&tasks);
            tokio::spawn(async move {
                let _serving = serving;
                tokio::select! {
                    _ = serve(stream, &name, &hits, &accepted) => {}
                    _ = conn_stop.changed() => {}
                }
            });
        }
    });
    Ok(Upstream {
        addr,
        hits,
        connections,
        stop,
        live,
    })
}

async fn serve(
    stream: TcpStream,
    name: &str,
    hits: &AtomicUsize,
    connections: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = serde_json::Map::new();
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0);
                }
                if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.insert(k, serde_json::Value::String(v));
            }
        }
        let body = if chunked {
            read_chunked(&mut reader).await?
        } else {
            let mut body = vec![0u8; content_length];
            reader.read_exact(&mut body).await?;
            body
        };
        hits.fetch_add(1, Ordering::SeqCst);
        if std::mem::take(&mut first) {
            connections.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(ms) = path
            .strip_prefix("/slow/")
            .and_then(|m| m.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms.min(30_000))).await;
        }
        let api = name.rsplit_once('-').map(|(a, _)| a).unwrap_or(name);
        let payload = serde_json::json!({
            "upstream": name,
            "api": api,
            "method": method,
            "path": path,
            "headers": headers,
            "body_bytes": body.len(),
        })
        .to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: {name}\r\ncontent-length: {}\r\n{}\r\n{payload}",
            payload.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

/// A chunked request body (chunk extensions and trailers ignored).
async fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let size = size.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size `{size}`")))?;
        if n == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n + 2, 0);
        reader.read_exact(&mut body[start..]).await?;
        body.truncate(start + n);
    }
}
