//! A rate-limit service speaking Envoy's protocol (gRPC
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) with its counters in Redis,
//! so that every gateway replica asking it shares one limit. Run as `rls-redis` or in-process.
//!
//! Each descriptor is a fixed window in Redis: the key `rls:<domain>:<unit>:<k=v|…>` is
//! incremented by the descriptor's hits and gets its expiry (one unit) when it is created, in
//! one Lua script (atomic: two gateways asking at once never both get the last request). The
//! limit is the descriptor's `limit` override, else the service's default. When Redis cannot be
//! reached or fails, the call fails with gRPC status 14 (UNAVAILABLE), and the gateway applies
//! its `failureMode`.
//!
//! The Redis client is a few lines of RESP over a TCP stream (commands out, integer and array
//! replies in), with a pool of idle connections and a time limit on every command.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agw_gateway::envoy::ratelimit::{
    DescriptorStatus, RateLimit, RateLimitDescriptor, RateLimitRequest, RateLimitResponse, SHOULD_RATE_LIMIT, code,
    unit,
};
use agw_gateway::envoy::{self, HeaderValue};
use agw_gateway::grpc;
use agw_mcp::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::serve::{self, Server};

/// Longest a Redis command may take, connecting included.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest bulk reply or array read from Redis (ours are tiny).
const MAX_REPLY: usize = 1 << 16;

/// Increments the window's counter and starts its expiry on creation; returns the count and
/// the milliseconds left in the window.
const SCRIPT: &str = "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
local ttl = redis.call('PTTL', KEYS[1]) \
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end \
return {n, ttl}";

/// The limit of descriptors that carry no override.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub requests_per_unit: u32,
    /// `envoy::ratelimit::unit::*`.
    pub unit: i32,
}

/// The running service.
pub struct Rls {
    pub server: Server,
    calls: Arc<AtomicU64>,
}

impl Rls {
    /// Serves on `addr` with counters in the Redis at `redis`.
    pub async fn start(addr: SocketAddr, redis: SocketAddr, default: Limit) -> std::io::Result<Rls> {
        let redis = Arc::new(Redis::new(redis));
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let server = serve::app(addr, move |req| {
            let redis = redis.clone();
            counted.fetch_add(1, Ordering::Relaxed);
            async move { answer(req, &redis, default).await }
        })
        .await?;
        Ok(Rls { server, calls })
    }

    /// `host:port`, for `remoteRateLimit.host`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

async fn answer(req: Request<Incoming>, redis: &Redis, default: Limit) -> Response<Body> {
    if req.uri().path() != SHOULD_RATE_LIMIT {
        return grpc_answer(Err((12, "unknown method".into())));
    }
    let body = match Limited::new(req.into_body(), grpc::MAX_MESSAGE + 5).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return grpc_answer(Err((8, "request too large".into()))),
    };
    let request = match grpc::unframe(body).and_then(|m| RateLimitRequest::decode(m).map_err(|e| e.to_string())) {
        Ok(r) => r,
        Err(e) => return grpc_answer(Err((3, e))),
    };
    match should_rate_limit(&request, redis, default).await {
        Ok(resp) => grpc_answer(Ok(grpc::frame(&resp))),
        Err(e) => grpc_answer(Err((14, format!("redis: {e}")))),
    }
}

/// Counts every descriptor; over the limit when any one is.
async fn should_rate_limit(
    request: &RateLimitRequest,
    redis: &Redis,
    default: Limit,
) -> Result<RateLimitResponse, String> {
    let mut statuses = Vec::new();
    for d in &request.descriptors {
        let limit = d.limit.map_or(default, |l| Limit { requests_per_unit: l.requests_per_unit, unit: l.unit });
        let window_ms = unit::seconds(limit.unit).max(1) * 1000;
        let hits = d.hits_addend.map_or(u64::from(request.hits_addend.max(1)), |h| h.value);
        let key = window_key(&request.domain, limit.unit, d);
        let (count, ttl_ms) = redis.incr_window(&key, hits, window_ms).await?;
        let over = count > u64::from(limit.requests_per_unit);
        statuses.push(DescriptorStatus {
            code: if over { code::OVER_LIMIT } else { code::OK },
            current_limit: Some(RateLimit {
                name: String::new(),
                requests_per_unit: limit.requests_per_unit,
                unit: limit.unit,
            }),
            limit_remaining: u32::try_from(u64::from(limit.requests_per_unit).saturating_sub(count)).unwrap_or(0),
            duration_until_reset: Some(envoy::Duration {
                seconds: i64::try_from(ttl_ms.div_ceil(1000)).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        });
    }
    let over = statuses.iter().any(|s| s.code == code::OVER_LIMIT);
    Ok(RateLimitResponse {
        overall_code: if over { code::OVER_LIMIT } else { code::OK },
        statuses,
        response_headers_to_add: if over { vec![HeaderValue::new("x-rls", "over-limit")] } else { Vec::new() },
        request_headers_to_add: vec![HeaderValue::new("x-rls-checked", "1")],
        raw_body: Vec::new(),
    })
}

/// The Redis key of a descriptor's window; entries are escaped so that no two descriptors
/// share one.
fn window_key(domain: &str, unit: i32, d: &RateLimitDescriptor) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|").replace('=', "\\=");
    let entries: Vec<String> = d.entries.iter().map(|e| format!("{}={}", esc(&e.key), esc(&e.value))).collect();
    format!("rls:{}:{unit}:{}", esc(domain), entries.join("|"))
}

/// A unary gRPC answer: the message and `grpc-status: 0` in the trailers, or a trailers-only
/// error.
fn grpc_answer(result: Result<Bytes, (u32, String)>) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = match result {
        Ok(message) => {
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            vec![Ok(Frame::data(message)), Ok(Frame::trailers(trailers))]
        }
        Err((status, message)) => {
            let mut r = Response::new(agw_mcp::body::empty());
            r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
            r.headers_mut().insert("grpc-status", http::HeaderValue::from(status));
            if let Ok(v) = http::HeaderValue::from_str(&message) {
                r.headers_mut().insert("grpc-message", v);
            }
            return r;
        }
    };
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let mut r = Response::new(body.map_err(|e| match e {}).boxed());
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
    r
}

/// A Redis client: RESP over TCP, idle connections kept for the next command.
pub struct Redis {
    addr: SocketAddr,
    idle: Mutex<Vec<BufStream<TcpStream>>>,
}

/// One RESP reply.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Redis {
    pub fn new(addr: SocketAddr) -> Redis {
        Redis { addr, idle: Mutex::new(Vec::new()) }
    }

    /// Adds `hits` to the window at `key` (`window_ms` long from its first hit): the count
    /// and the milliseconds left.
    pub async fn incr_window(&self, key: &str, hits: u64, window_ms: u64) -> Result<(u64, u64), String> {
        let (hits, window) = (hits.to_string(), window_ms.to_string());
        let args: [&[u8]; 6] = [b"EVAL", SCRIPT.as_bytes(), b"1", key.as_bytes(), hits.as_bytes(), window.as_bytes()];
        match self.command(&args).await? {
            Reply::Array(items) => match items.as_slice() {
                [Reply::Int(n), Reply::Int(ttl)] => {
                    Ok((u64::try_from(*n).unwrap_or(0), u64::try_from(*ttl).unwrap_or(0)))
                }
                other => Err(format!("unexpected reply {other:?}")),
            },
            Reply::Error(e) => Err(e),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Sends one command and reads its reply, within [`REDIS_TIMEOUT`]. A pooled connection
    /// that fails (Redis restarted) empties the pool and the command is tried once more on a
    /// new one.
    pub async fn command(&self, args: &[&[u8]]) -> Result<Reply, String> {
        let idle = self.idle.lock().map(|mut i| i.pop()).unwrap_or(None);
        let reused = idle.is_some();
        match self.exchange(idle, args).await {
            Err(_) if reused => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.clear();
                }
                self.exchange(None, args).await
            }
            other => other,
        }
    }

    async fn exchange(&self, conn: Option<BufStream<TcpStream>>, args: &[&[u8]]) -> Result<Reply, String> {
        let exchange = async {
            let mut conn = match conn {
                Some(c) => c,
                None => BufStream::new(TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?),
            };
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
            conn.write_all(&out).await.map_err(|e| e.to_string())?;
            conn.flush().await.map_err(|e| e.to_string())?;
            let reply = read_reply(&mut conn, 0).await?;
            Ok::<_, String>((conn, reply))
        };
        let (conn, reply) =
            tokio::time::timeout(REDIS_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())??;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(reply)
    }
}

/// One reply (arrays nest at most two deep here).
fn read_reply<'a>(
    conn: &'a mut BufStream<TcpStream>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        let n = (&mut *conn).take(MAX_REPLY as u64).read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 || !line.ends_with("\r\n") {
            return Err("connection closed".into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let number = || rest.parse::<i64>().map_err(|_| format!("bad reply line `{line}`"));
        Ok(match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(number()?),
            "$" => match usize::try_from(number()?) {
                Err(_) => Reply::Bulk(None),
                Ok(len) if len > MAX_REPLY => return Err("reply too large".into()),
                Ok(len) => {
                    let mut data = vec![0; len + 2];
                    conn.read_exact(&mut data).await.map_err(|e| e.to_string())?;
                    data.truncate(len);
                    Reply::Bulk(Some(data))
                }
            },
            "*" if depth < 2 => match usize::try_from(number()?) {
                Err(_) => Reply::Array(Vec::new()),
                Ok(len) if len > 64 => return Err("reply too large".into()),
                Ok(len) => {
                    let mut items = Vec::with_capacity(len);
                    for _ in 0..len {
                        items.push(read_reply(conn, depth + 1).await?);
                    }
                    Reply::Array(items)
                }
            },
            _ => return Err(format!("unexpected reply line `{line}`")),
        })
    })
}

/// A `redis-server` of our own on a free loopback port, without persistence; stopped (and
/// restartable on the same port) by the test.
pub struct RedisServer {
    pub addr: SocketAddr,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts `redis-server` (Debian's package; `.ci/run` installs it) and waits until it answers.
    pub async fn start() -> anyhow::Result<RedisServer> {
        let port = crate::node::free_port().await;
        let mut s = RedisServer { addr: SocketAddr::from(([127, 0, 0, 1], port)), child: None };
        s.restart().await?;
        Ok(s)
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let port = self.addr.port().to_string();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "yes", "--loglevel", "warning"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot run redis-server ({e}): install Debian's redis-server (.ci/run does)")
            })?;
        self.child = Some(child);
        let client = Redis::new(self.addr);
        for _ in 0..200 {
            if client.command(&[b"PING"]).await == Ok(Reply::Simple("PONG".into())) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("redis-server did not answer on {}", self.addr)
    }

    /// Kills it (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
