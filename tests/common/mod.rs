//! Test harness: starts the real `switchyard` binary on a loopback port and real upstream
//! servers that answer with their own name, and speaks HTTP/1.1 to them over plain sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchyard::demo::upstream::{self, Upstream};

/// Upstream servers running on their own runtime for the test's lifetime.
pub struct Upstreams {
    _rt: tokio::runtime::Runtime,
    pub list: Vec<Upstream>,
}

impl Upstreams {
    pub fn start(names: &[&str]) -> Upstreams {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let list = rt.block_on(async {
            let mut v = Vec::new();
            for n in names {
                v.push(upstream::spawn(n).await.unwrap());
            }
            v
        });
        Upstreams { _rt: rt, list }
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.list[i].addr
    }

    /// Starts another upstream on `addr` (one that was stopped) and keeps it running.
    pub fn respawn(&mut self, name: &str, addr: SocketAddr) -> usize {
        let up = self._rt.block_on(upstream::spawn_on(name, addr)).unwrap();
        self.list.push(up);
        self.list.len() - 1
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The shared references (`../shared`), or `None` when absent (a user's fresh clone). CI sets
/// `SWITCHYARD_REQUIRE_SHARED`, and then absence is a failure, not a skip.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SWITCHYARD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("scenario").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("SWITCHYARD_REQUIRE_SHARED").is_some() {
        panic!(
            "{} is missing, and SWITCHYARD_REQUIRE_SHARED is set",
            dir.display()
        );
    }
    eprintln!(
        "skipping: {} not found (set SWITCHYARD_SHARED)",
        dir.display()
    );
    None
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

pub struct Gateway {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Gateway {
    /// Writes `files` (name, text) into a fresh directory and runs `switchyard run` on it.
    pub fn start(files: &[(&str, &str)]) -> Gateway {
        let dir = temp_dir("gw");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Self::start_in(dir)
    }

    pub fn start_in(dir: PathBuf) -> Gateway {
        let log = dir.join("gateway.log");
        let port = port_of(&dir);
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("stdout.log")).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut gw = Gateway {
            child,
            port,
            dir,
            log,
        };
        gw.wait_ready();
        gw
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited early ({status}):\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "gateway did not listen on {}:\n{}",
            self.port,
            self.log_text()
        );
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.log_text().matches(needle).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits for the process to exit; `None` if it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.port, "GET", path, headers, "")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of the first listener in the directory's config (tests write `address: 127.0.0.1:N`).
fn port_of(dir: &Path) -> u16 {
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        if let Some(pos) = text.find("address: 127.0.0.1:") {
            let rest = &text[pos + "address: 127.0.0.1:".len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            return digits.parse().unwrap();
        }
    }
    panic!("no 127.0.0.1 listener in {}", dir.display());
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Which upstream answered (`x-upstream`), or "" for a gateway-made response.
    pub fn upstream(&self) -> &str {
        self.header("x-upstream").unwrap_or("")
    }
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Client {
    port: u16,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        Ok(Self::from_stream(
            port,
            TcpStream::connect(("127.0.0.1", port))?,
        ))
    }

    pub fn from_stream(port: u16, stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            port,
            reader: BufReader::new(stream),
        }
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<Response> {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str("Host: localhost\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.reader.get_mut().write_all(req.as_bytes())?;
        read_response(&mut self.reader, method == "HEAD")
    }

    /// Sends `raw` bytes as they are (a hand-framed request) and reads the response.
    pub fn send_raw(&mut self, raw: &[u8]) -> std::io::Result<Response> {
        self.reader.get_mut().write_all(raw)?;
        read_response(&mut self.reader, false)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut c = Client::connect(port).expect("connect to the gateway");
    c.send(method, path, headers, body).expect("a response")
}

fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line `{line}`")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if head_only {
    } else if let Some(len) = find("content-length") {
        body.resize(len.parse().unwrap_or(0), 0);
        r.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if status >= 200 && status != 204 && status != 304 {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A Gateway document listening on `port`.
pub fn gateway_doc(port: u16) -> String {
    gateway_doc_with(port, "")
}

/// A Gateway document with extra `spec` lines (indented by two spaces).
pub fn gateway_doc_with(port: u16, extra: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: Gateway\nspec:\n  listeners:\n    - address: 127.0.0.1:{port}\n  gracePeriod: 3s\n{extra}"
    )
}

/// An internal AgentEndpoint for `api` pointing at `addr`.
pub fn internal_endpoint(api: &str, addr: SocketAddr) -> String {
    format!(
        "---\napiVersion: ngrok.k8s.ngrok.com/v1alpha1\nkind: AgentEndpoint\nmetadata:\n  name: {api}\nspec:\n  bindings: [internal]\n  url: https://{api}.internal\n  upstream:\n    url: http://{addr}\n"
    )
}

/// A CloudEndpoint on `http://localhost` that forwards by `X-Acme-Api`, after `extra_rules`
/// (YAML list items, indented for `on_http_request`).
pub fn cloud_endpoint(extra_rules: &str) -> String {
    format!(
        "---\napiVersion: ngrok.k8s.ngrok.com/v1alpha1\nkind: CloudEndpoint\nmetadata:\n  name: api\nspec:\n  url: http://localhost\n  trafficPolicy:\n    policy:\n      on_http_request:\n{extra_rules}        - actions:\n            - type: forward-internal\n              config:\n                url: https://${{getReqHeader('X-Acme-Api')[0]}}.internal\n"
    )
}

/// Gateway + cloud endpoint + one internal endpoint per (api, addr).
pub fn config(port: u16, extra_rules: &str, apis: &[(&str, SocketAddr)]) -> String {
    let mut text = gateway_doc(port);
    text.push_str(&cloud_endpoint(extra_rules));
    for (api, addr) in apis {
        text.push_str(&internal_endpoint(api, *addr));
    }
    text
}

/// A client connection from a chosen loopback source address (127.0.0.0/8 is all loopback on
/// Linux), so a test can be several clients with different IPs.
pub fn connect_from(port: u16, source: &str) -> Client {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    let dst: SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&dst.into()).unwrap();
    let stream: TcpStream = sock.into();
    Client::from_stream(port, stream)
}

/// A Redis server of the test's own on a free port, stopped when dropped. `None` (skip) when
/// `redis-server` is not installed, unless CI requires it.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Option<Redis> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if std::env::var_os("SWITCHYARD_REQUIRE_REDIS").is_none() => {
                eprintln!("skipping: cannot start redis-server ({e})");
                return None;
            }
            Err(e) => panic!("redis-server is required here: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis { child, port })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
