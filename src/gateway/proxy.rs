//! The `ProxyHttp` adaptor: each hook loads the request's config snapshot, asks the policy for a
//! verdict (continue, respond, forward) and acts on it in a few lines.

use super::pool::{NoMember, Pool};
use super::reply::{self, error_reply};
use super::routes::Compiled;
use crate::policy::actions::{ActionCx, BodyCheck};
use crate::policy::exchange::{ActionVars, ConnInfo, Reply, RequestHead, ResponseHead};
use crate::policy::expr::{request_host, Phase};
use crate::policy::Outcome;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Forwarding depth cap against `forward-internal` loops.
const MAX_FORWARDS: usize = 8;

pub struct Proxy {
    pub state: Arc<ArcSwap<Compiled>>,
    pub inflight: Arc<AtomicUsize>,
}

/// Counts a request as in flight from its first hook until its context is dropped.
pub struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An error decided before or while picking an upstream, answered by `fail_to_proxy`.
struct PendingError {
    status: StatusCode,
    code: &'static str,
    reason: String,
}

pub struct Ctx {
    cfg: Option<Arc<Compiled>>,
    conn: Option<ConnInfo>,
    /// Routes the request went through: the public one, then each forward-internal target.
    chain: Vec<usize>,
    /// The route whose pool serves the request.
    target: Option<usize>,
    tried: Vec<SocketAddr>,
    vars: ActionVars,
    pending: Option<PendingError>,
    /// A response-phase action replaced the upstream's body with this.
    replacement: Option<Bytes>,
    /// The request body, read before the policy when a policy inspects bodies.
    body: Option<Vec<u8>>,
    /// The response body, held back until the checks response actions left have judged it.
    response_hold: Held,
    /// The request body was too large to read before the policy: it streams to the
    /// upstream, held back in `request_hold` until the WAF has judged it.
    body_streams: bool,
    request_hold: Held,
    _inflight: InflightGuard,
}

impl Ctx {
    /// The pool serving the request and the member tried last.
    fn current_member(&self) -> Option<(Arc<Pool>, SocketAddr)> {
        let cfg = self.cfg.as_ref()?;
        let pool = cfg.routes[self.target?].pool.clone()?;
        Some((pool, *self.tried.last()?))
    }
}

fn conn_info(session: &Session) -> ConnInfo {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet().copied())
        .unwrap_or(unspecified);
    let server = session
        .server_addr()
        .and_then(|a| a.as_inet().copied())
        .unwrap_or(unspecified);
    ConnInfo::new(client, server)
}

/// The client a trusted proxy names in `X-Forwarded-For`: walking from the nearest hop back,
/// the first address that is not itself a trusted proxy. `None` when the peer is not trusted
/// (its `X-Forwarded-For` could say anything) or names no valid address.
fn forwarded_client(
    trusted: &[ipnet::IpNet],
    peer: std::net::IpAddr,
    session: &Session,
) -> Option<std::net::IpAddr> {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return None;
    }
    let headers = &session.req_header().headers;
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(value.to_str().ok()?.split(','));
    }
    let mut client = None;
    for hop in hops.iter().rev() {
        let ip: std::net::IpAddr = hop.trim().parse().ok()?;
        client = Some(ip);
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Pingora keeps at most this much of a pre-read body to send upstream afterwards.
const MAX_PREREAD: usize = 64 * 1024;

/// A body held back until the checks actions left for it have judged it.
#[derive(Default)]
struct Held {
    checks: Vec<Box<dyn BodyCheck>>,
    bytes: Vec<u8>,
}

/// What to do with a body chunk.
enum Hold {
    /// Nothing (more) to judge: the chunk goes on as it is.
    Pass(Option<Bytes>),
    /// Kept back for the judgement.
    Holding,
    /// Judged and let through: everything held so far, this chunk included.
    Release(Bytes),
    /// Judged and refused, with the reason.
    Blocked(String),
}

impl Held {
    /// Takes the next chunk; judges once the checks have what they need (all of the body, or
    /// the largest limit), after which later chunks pass.
    fn feed(&mut self, chunk: Option<Bytes>, end_of_stream: bool) -> Hold {
        if self.checks.is_empty() {
            return Hold::Pass(chunk);
        }
        if let Some(c) = chunk {
            self.bytes.extend_from_slice(&c);
        }
        let need = self.checks.iter().map(|c| c.limit()).max().unwrap_or(0);
        if !end_of_stream && self.bytes.len() < need {
            return Hold::Holding;
        }
        let held = std::mem::take(&mut self.bytes);
        for check in std::mem::take(&mut self.checks) {
            if let Err(reason) = check.judge(&held[..held.len().min(check.limit())]) {
                return Hold::Blocked(reason);
            }
        }
        Hold::Release(Bytes::from(held))
    }
}

/// Whether the request body can be read before the policy and replayed upstream: none, or a
/// declared length within Pingora's retry buffer. A larger or chunked body streams instead,
/// held back in `request_body_filter` until the WAF has judged it.
fn preread_fits(session: &mut Session) -> bool {
    if session.is_body_empty() {
        return true;
    }
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok())
        .is_some_and(|n| n <= MAX_PREREAD)
}

/// Reads the request body before the upstream is chosen, so the WAF can judge it and a block
/// never reaches the upstream; Pingora's retry buffer then replays it upstream. `Err` (inside
/// `Ok`) when the body is too large to be kept that way.
async fn read_body(
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<std::result::Result<(), String>> {
    if session.is_body_empty() {
        return Ok(Ok(()));
    }
    session.enable_retry_buffering();
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_PREREAD {
            return Ok(Err(format!(
                "request bodies over {} KiB cannot be inspected before forwarding yet",
                MAX_PREREAD / 1024
            )));
        }
    }
    ctx.body = Some(body);
    Ok(Ok(()))
}

impl Proxy {
    /// Runs the response phases of the routes in `chain`, innermost first, on `res`.
    async fn response_phases(
        cfg: &Compiled,
        chain: &[usize],
        conn: &ConnInfo,
        req: &mut dyn RequestHead,
        res: &mut dyn ResponseHead,
        vars: &mut ActionVars,
        body_checks: &mut Vec<Box<dyn BodyCheck>>,
    ) -> Option<(usize, Outcome)> {
        for &id in chain.iter().rev() {
            let route = &cfg.routes[id];
            if !route.policy.has_response_rules() {
                continue;
            }
            let mut cx = ActionCx {
                env: &cfg.env,
                conn,
                endpoint: &route.info,
                req: &mut *req,
                res: Some(&mut *res),
                vars: &mut *vars,
                internal: cfg,
                body: None,
                body_streams: false,
                body_checks: &mut *body_checks,
            };
            match route.policy.run(Phase::Response, &mut cx).await {
                Outcome::Continue | Outcome::Forward(_) => {}
                done => return Some((id, done)),
            }
        }
        None
    }

    async fn answer(&self, session: &mut Session, ctx: &mut Ctx, mut reply: Reply) -> Result<bool> {
        if reply.run_response_phase {
            let cfg = ctx.cfg.clone().expect("config loaded");
            let conn = ctx.conn.clone().expect("conn info");
            let req = session.req_header_mut();
            // The gateway's own reply: no upstream content for a body check to judge.
            let mut checks = Vec::new();
            let vars = &mut ctx.vars;
            if let Some((id, done)) =
                Self::response_phases(&cfg, &ctx.chain, &conn, req, &mut reply, vars, &mut checks)
                    .await
            {
                reply = outcome_reply(&cfg, id, done, reply::wants_json(session));
            }
        }
        reply::write(session, &reply).await?;
        Ok(true)
    }
}

/// A terminal response-phase outcome as the reply that replaces the response.
fn outcome_reply(cfg: &Compiled, route: usize, outcome: Outcome, json: bool) -> Reply {
    let endpoint = Some(&*cfg.routes[route].info.url);
    match outcome {
        Outcome::Respond(r) => r,
        Outcome::Error(e) => error_reply(e.status, e.code, endpoint, &e.message, json),
        Outcome::Continue | Outcome::Forward(_) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SWY_INTERNAL",
            endpoint,
            "unexpected policy outcome",
            json,
        ),
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Ctx {
            cfg: None,
            conn: None,
            chain: Vec::new(),
            target: None,
            tried: Vec::new(),
            vars: ActionVars::default(),
            pending: None,
            replacement: None,
            body: None,
            response_hold: Held::default(),
            body_streams: false,
            request_hold: Held::default(),
            _inflight: InflightGuard(self.inflight.clone()),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let cfg = self.state.load_full();
        let mut conn = conn_info(session);
        if let Some(ip) = forwarded_client(&cfg.gateway.trusted_proxies, conn.client_ip, session) {
            conn.client_ip = ip;
        }
        conn.categories = cfg.ip_intel.lookup(conn.client_ip).clone();
        ctx.cfg = Some(cfg.clone());
        ctx.conn = Some(conn.clone());
        let json = reply::wants_json(session);
        let host = request_host(session.req_header()).to_ascii_lowercase();
        let Some(mut route_id) = cfg.public_route(&host) else {
            let reason = format!("no endpoint serves host `{host}`");
            let r = error_reply(
                StatusCode::NOT_FOUND,
                "SWY_ENDPOINT_NOT_FOUND",
                None,
                &reason,
                json,
            );
            return self.answer(session, ctx, r).await;
        };
        if cfg.body_limit.is_some() && preread_fits(session) {
            if let Err(reason) = read_body(session, ctx).await? {
                let r = error_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "SWY_BODY_TOO_LARGE",
                    None,
                    &reason,
                    json,
                );
                return self.answer(session, ctx, r).await;
            }
        } else if cfg.body_limit.is_some() {
            ctx.body_streams = true;
        }
        loop {
            ctx.chain.push(route_id);
            let route = &cfg.routes[route_id];
            let outcome = {
                let mut cx = ActionCx {
                    env: &cfg.env,
                    conn: &conn,
                    endpoint: &route.info,
                    req: session.req_header_mut(),
                    res: None,
                    vars: &mut ctx.vars,
                    internal: &*cfg,
                    body: ctx.body.as_deref(),
                    body_streams: ctx.body_streams,
                    body_checks: &mut ctx.request_hold.checks,
                };
                route.policy.run(Phase::Request, &mut cx).await
            };
            let url = Some(&*route.info.url);
            match outcome {
                Outcome::Continue if route.pool.is_some() => {
                    ctx.target = Some(route_id);
                    return Ok(false);
                }
                Outcome::Continue => {
                    let reason = "the endpoint's on_http_request ended without a terminal action";
                    let r = error_reply(StatusCode::NOT_FOUND, "SWY_NO_ROUTE", url, reason, json);
                    return self.answer(session, ctx, r).await;
                }
                Outcome::Respond(r) => return self.answer(session, ctx, r).await,
                Outcome::Error(e) => {
                    let r = error_reply(e.status, e.code, url, &e.message, json);
                    return self.answer(session, ctx, r).await;
                }
                Outcome::Forward(next) if ctx.chain.len() > MAX_FORWARDS => {
                    let reason = format!(
                        "forward-internal to `{}` exceeds the depth limit of {MAX_FORWARDS}",
                        cfg.routes[next].info.url
                    );
                    let r = error_reply(
                        StatusCode::LOOP_DETECTED,
                        "SWY_FORWARD_LOOP",
                        url,
                        &reason,
                        json,
                    );
                    return self.answer(session, ctx, r).await;
                }
                Outcome::Forward(next) => route_id = next,
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let cfg = ctx.cfg.as_ref().expect("config loaded");
        let route = &cfg.routes[ctx.target.expect("target chosen")];
        let pool = route.pool.as_ref().expect("agent route has a pool");
        let addr = match pool.select(&ctx.tried) {
            Ok(a) => a,
            Err(why) => {
                let (status, code, reason) = match why {
                    NoMember::Unresolved => (
                        StatusCode::BAD_GATEWAY,
                        "SWY_UPSTREAM_UNRESOLVED",
                        format!("upstream host name does not resolve ({})", pool.describe()),
                    ),
                    NoMember::Unavailable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SWY_POOL_UNAVAILABLE",
                        format!("no healthy pool member ({})", pool.describe()),
                    ),
                };
                ctx.pending = Some(PendingError {
                    status,
                    code,
                    reason,
                });
                return Err(Error::explain(ErrorType::HTTPStatus(status.as_u16()), code));
            }
        };
        ctx.tried.push(addr);
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(3));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some((pool, addr)) = ctx.current_member() {
            pool.record_failure(addr);
            // Nothing was sent yet, so any request may go to the next member.
            if ctx.tried.len() < pool.size() {
                e.set_retry(true);
            } else {
                ctx.pending = Some(PendingError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "SWY_POOL_UNAVAILABLE",
                    reason: format!(
                        "no pool member accepted the connection ({})",
                        pool.describe()
                    ),
                });
            }
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some((pool, addr)) = ctx.current_member() {
            pool.record_success(addr);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let conn = ctx.conn.as_ref().expect("conn info");
        let client = conn.client_ip.to_string();
        let xff = match upstream
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) => format!("{prev}, {client}"),
            None => client,
        };
        upstream.insert_header("x-forwarded-for", xff)?;
        upstream.insert_header("x-forwarded-proto", conn.scheme)?;
        if !upstream.headers.contains_key("x-forwarded-host") {
            let host = session
                .req_header()
                .headers
                .get(http::header::HOST)
                .cloned();
            if let Some(h) = host {
                upstream.insert_header("x-forwarded-host", h)?;
            }
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        match ctx.request_hold.feed(body.take(), end_of_stream) {
            Hold::Pass(chunk) => *body = chunk,
            // An empty chunk is not written upstream (and does not end the body there).
            Hold::Holding => *body = Some(Bytes::new()),
            Hold::Release(held) => {
                *body = (!held.is_empty() || !end_of_stream).then_some(held);
            }
            Hold::Blocked(reason) => {
                // The upstream has the headers but none of the body; it gets a reset
                // connection and the client the 403.
                ctx.pending = Some(PendingError {
                    status: StatusCode::FORBIDDEN,
                    code: "SWY_WAF_BLOCKED",
                    reason,
                });
                return Error::e_explain(ErrorType::HTTPStatus(403), "WAF blocked the body");
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let cfg = ctx.cfg.clone().expect("config loaded");
        let conn = ctx.conn.clone().expect("conn info");
        let json = reply::wants_json(session);
        let done = Self::response_phases(
            &cfg,
            &ctx.chain,
            &conn,
            session.req_header_mut(),
            upstream_response,
            &mut ctx.vars,
            &mut ctx.response_hold.checks,
        );
        if let Some((id, outcome)) = done.await {
            let reply = outcome_reply(&cfg, id, outcome, json);
            *upstream_response = reply::response_header(&reply)?;
            ctx.replacement = Some(reply.body);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if ctx.replacement.is_some() {
            *body = if end_of_stream {
                ctx.replacement.take()
            } else {
                None
            };
            return Ok(None);
        }
        match ctx.response_hold.feed(body.take(), end_of_stream) {
            Hold::Pass(chunk) => *body = chunk,
            Hold::Holding => *body = None,
            Hold::Release(held) => *body = (!held.is_empty()).then_some(held),
            // The status line and headers are out already: all that is left is to cut the
            // response off so the body never reaches the client.
            Hold::Blocked(reason) => return Error::e_explain(ErrorType::HTTPStatus(403), reason),
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let json = reply::wants_json(session);
        let endpoint = ctx
            .cfg
            .as_ref()
            .zip(ctx.target)
            .map(|(cfg, t)| cfg.routes[t].info.url.to_string());
        let reply = match ctx.pending.take() {
            Some(p) => error_reply(p.status, p.code, endpoint.as_deref(), &p.reason, json),
            None => {
                let (status, code) = match e.etype() {
                    ErrorType::HTTPStatus(s) => (
                        StatusCode::from_u16(*s).unwrap_or(StatusCode::BAD_GATEWAY),
                        "SWY_BAD_REQUEST",
                    ),
                    _ if e.esource() == &ErrorSource::Downstream => {
                        (StatusCode::BAD_REQUEST, "SWY_BAD_REQUEST")
                    }
                    ErrorType::ConnectTimedout
                    | ErrorType::ConnectRefused
                    | ErrorType::ConnectNoRoute
                    | ErrorType::ConnectError => {
                        (StatusCode::BAD_GATEWAY, "SWY_UPSTREAM_UNREACHABLE")
                    }
                    ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                        (StatusCode::GATEWAY_TIMEOUT, "SWY_UPSTREAM_TIMEOUT")
                    }
                    _ => (StatusCode::BAD_GATEWAY, "SWY_UPSTREAM_ERROR"),
                };
                let reason = format!("{e}");
                error_reply(status, code, endpoint.as_deref(), reason.trim(), json)
            }
        };
        let status = reply.status.as_u16();
        // A response may already be on its way; then the connection can only be closed.
        if session.response_written().is_none() {
            if let Err(err) = reply::write(session, &reply).await {
                log::debug!("could not send the error response: {err}");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses a body that contains `needle` within its first `limit` bytes.
    struct Refuse {
        limit: usize,
        needle: &'static [u8],
    }

    impl BodyCheck for Refuse {
        fn limit(&self) -> usize {
            self.limit
        }

        fn judge(&self, body: &[u8]) -> Result<(), String> {
            assert!(body.len() <= self.limit);
            match body.windows(self.needle.len()).any(|w| w == self.needle) {
                true => Err("refused".into()),
                false => Ok(()),
            }
        }
    }

    fn held(limit: usize) -> Held {
        Held {
            checks: vec![Box::new(Refuse {
                limit,
                needle: b"bad",
            })],
            bytes: Vec::new(),
        }
    }

    #[test]
    fn a_held_body_is_judged_once_it_reaches_the_limit_then_streams() {
        let mut h = held(4);
        assert!(matches!(
            h.feed(Some(Bytes::from_static(b"ab")), false),
            Hold::Holding
        ));
        match h.feed(Some(Bytes::from_static(b"cdef")), false) {
            Hold::Release(b) => assert_eq!(&b[..], b"abcdef"),
            _ => panic!("released at the limit"),
        }
        // Past the limit nothing is inspected any more, as with ProcessPartial.
        match h.feed(Some(Bytes::from_static(b"bad")), true) {
            Hold::Pass(Some(b)) => assert_eq!(&b[..], b"bad"),
            _ => panic!("passes through"),
        }
    }

    #[test]
    fn a_short_body_is_judged_at_its_end_and_can_be_refused() {
        let mut h = held(100);
        assert!(matches!(
            h.feed(Some(Bytes::from_static(b"a b")), false),
            Hold::Holding
        ));
        assert!(matches!(
            h.feed(Some(Bytes::from_static(b"ad")), true),
            Hold::Blocked(_)
        ));
        let mut none = Held::default();
        assert!(matches!(none.feed(None, true), Hold::Pass(None)));
    }
}
