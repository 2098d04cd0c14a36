//! `remoteRateLimit` with a limit shared by two real gateway processes: both ask the test
//! kit's rate-limit service (Envoy's protocol), whose counters live in a real Redis.

mod support;

use agw_gateway::envoy::ratelimit::unit;
use agw_testkit::client::{McpClient, http};
use agw_testkit::rls::{Limit, RedisServer, Rls};
use serde_json::json;
use support::{Logs, sigterm, start};

const LIMIT: u32 = 10;

/// A gateway whose one route is limited by the service at `rls`, in front of `upstream`.
fn config(rls: &str, upstream: &str, failure_mode: &str) -> String {
    format!(
        "config:\n  adminAddr: 'off'\n  statsAddr: 'off'\n  readinessAddr: 'off'\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        remoteRateLimit:\n          domain: agentgateway\n          host: {rls}\n          failureMode: {failure_mode}\n          descriptors:\n          - entries:\n            - key: route\n              value: '\"shared\"'\n            - key: path\n              value: request.path\n      backends:\n      - host: {upstream}\n"
    )
}

fn port(logs: &Logs) -> u16 {
    let prefix = "Listening on 0.0.0.0:";
    let lines = logs.wait_for(prefix);
    let line = lines.iter().find(|l| l.contains(prefix)).unwrap();
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

async fn statuses(urls: &[String], n: usize) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let url = urls[i % urls.len()].clone();
        tasks.spawn(async move { http("GET", &url, &[], "").await.unwrap().0 });
    }
    let mut out = Vec::new();
    while let Some(s) = tasks.join_next().await {
        out.push(s.unwrap());
    }
    out
}

#[test]
fn a_limit_holds_across_two_gateways_and_a_redis_outage_follows_each_failure_mode() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut redis, rls, upstream) = rt.block_on(async {
        let redis = RedisServer::start().await.unwrap();
        let limit = Limit { requests_per_unit: LIMIT, unit: unit::HOUR };
        let rls = Rls::start("127.0.0.1:0".parse().unwrap(), redis.addr, limit).await.unwrap();
        let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
        (redis, rls, upstream)
    });
    let upstream_host = upstream.addr.to_string();
    let (closed, closed_logs) = start(&["--config", &config(&rls.host(), &upstream_host, "failClosed")]);
    let (open, open_logs) = start(&["--config", &config(&rls.host(), &upstream_host, "failOpen")]);
    let urls =
        [format!("http://127.0.0.1:{}/mcp", port(&closed_logs)), format!("http://127.0.0.1:{}/mcp", port(&open_logs))];

    rt.block_on(async {
        let direct = http("GET", &upstream.url("/mcp"), &[], "").await.unwrap().0;
        assert!(direct != 429 && direct != 500, "the upstream's own answer must tell apart: {direct}");

        // 30 requests at once, spread over both gateways: exactly LIMIT pass in total.
        let got = statuses(&urls, 30).await;
        let passed = got.iter().filter(|s| **s == direct).count();
        let limited = got.iter().filter(|s| **s == 429).count();
        assert_eq!((passed, limited), (LIMIT as usize, 30 - LIMIT as usize), "{got:?}");

        // A refusal says why and when to come back (from the service's descriptor status).
        let refused =
            McpClient::new(&urls[1]).post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap();
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("x-ratelimit-limit"), Some("10"));
        assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(refused.header("x-rls"), Some("over-limit"), "the service's response headers are passed on");
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");

        // Redis down: the service fails; each gateway applies its failure mode.
        redis.stop();
        assert_eq!(http("GET", &urls[0], &[], "").await.unwrap().0, 500, "failClosed refuses");
        assert_eq!(http("GET", &urls[1], &[], "").await.unwrap().0, direct, "failOpen lets it through");

        // Redis back (empty: nothing persisted): both gateways count again, against a fresh window.
        redis.restart().await.unwrap();
        assert_eq!(http("GET", &urls[0], &[], "").await.unwrap().0, direct, "recovered");
        let got = statuses(&urls, 20).await;
        assert_eq!(got.iter().filter(|s| **s == direct).count(), LIMIT as usize - 1, "{got:?}");
    });
    assert!(rls.calls() >= 52, "every request asked the service");
    for child in [&closed, &open] {
        sigterm(child);
    }
    for mut child in [closed, open] {
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    let logs = closed_logs.lines().join("\n");
    assert!(logs.contains("rate-limit service failed; request refused (failClosed)"), "{logs}");
}
