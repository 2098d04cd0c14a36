//! Remote JWKS: fetched at start-up (without blocking it), refreshed in the background, and
//! refreshed on an unknown `kid` at most once per cool-down, so tokens with random kids cannot
//! make the gateway hammer the key server. A failed refresh keeps the last good keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agw_http::HttpClient;
use agw_http::body::{self, read_limited};
use agw_policy::jwt::jwks::MAX_JWKS_BYTES;
use agw_policy::jwt::{KeySet, KeyStore};
use http::{Method, Request, Uri};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How often keys are refreshed in the background.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// First retry interval after a failed fetch; it doubles up to [`MAX_RETRY_INTERVAL`].
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// Minimum time between fetches caused by unknown kids.
pub const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RemoteJwks {
    pub url: Uri,
    pub store: Arc<KeyStore>,
    client: HttpClient,
    /// When the last fetch started; held across the fetch so concurrent callers wait for it.
    last_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    /// Successful fetches: a caller that waited for someone else's fetch sees it change.
    generation: AtomicU64,
    loaded: watch::Sender<bool>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").field("url", &self.shown_url()).finish()
    }
}

impl RemoteJwks {
    pub fn new(url: Uri, client: HttpClient) -> Arc<RemoteJwks> {
        Arc::new(RemoteJwks {
            url,
            store: Arc::new(KeyStore::default()),
            client,
            last_fetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            loaded: watch::channel(false).0,
        })
    }

    /// The URL as logs show it: without credentials in its userinfo or query.
    pub fn shown_url(&self) -> String {
        agw_config::redact::url(&self.url.to_string())
    }

    /// Counts the keys in the store as loaded (a reload handing over the previous keys).
    pub fn mark_loaded(&self) {
        self.loaded.send_replace(true);
    }

    /// How many fetches were attempted (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Keeps the keys fresh until `stop` fires.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut retry = RETRY_INTERVAL;
        loop {
            let wait = if self.refresh().await {
                retry = RETRY_INTERVAL;
                REFRESH_INTERVAL
            } else {
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY_INTERVAL);
                wait
            };

            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Called when a token names a kid we do not have. Returns whether new keys were fetched
    /// (so the token is worth checking again).
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.last_fetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Keys arrived while this caller waited (another caller's fetch, or the first
            // fetch at start-up): check the token against them before fetching again.
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_COOLDOWN) {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    async fn refresh(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> bool {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch()).await {
            Ok(Ok(keys)) => {
                for why in &keys.skipped {
                    warn!(url = %self.shown_url(), "JWKS key skipped: {why}");
                }
                debug!(url = %self.shown_url(), keys = keys.len(), "JWKS fetched");
                if !*self.loaded.borrow() {
                    info!(url = %self.shown_url(), keys = keys.len(), "JWKS loaded");
                }
                self.store.replace(keys);
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.loaded.send_replace(true);
                true
            }
            Ok(Err(e)) => {
                warn!(url = %self.shown_url(), error = %e, "JWKS fetch failed; keeping the last good keys");
                false
            }
            Err(_) => {
                warn!(url = %self.shown_url(), "JWKS fetch timed out; keeping the last good keys");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|e| e.to_string())?;
        let resp = self.client.send(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let bytes = read_limited(resp.into_body(), MAX_JWKS_BYTES).await.map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| "JWKS is not UTF-8".to_string())?;
        KeySet::parse(text).map_err(|e| e.to_string())
    }
}
