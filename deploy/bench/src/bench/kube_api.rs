//! The Kubernetes API beside gRPC (issue 25): `kubectl get svc -A` over the
//! loaded cluster (server-side Table, kubectl's default chunks of 500), and
//! Service writes per second through REST next to the same writes through
//! gRPC on the same control plane. Targets: the list within 1 s; REST
//! writes at least 0.8× gRPC's (gRPC/REST ≤ 1.25).

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use switchyard_tls::credentials::Credentials;

use super::api::{write_all, Writer};
use crate::context::Ctx;
use crate::report::{Report, Row, Target};
use crate::stats::Summary;

pub const BENCH: &str = "kube-api";
const LIST_TARGET_MS: f64 = 1000.0;
const WRITE_COST_TARGET: f64 = 1.25;
/// `kubectl get svc -A` runs timed.
const LISTS: usize = 5;

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let shape = ctx.shape;
    let writes = shape.services / 2;
    let chunks = shape.services.div_ceil(500);
    report.setup(
        BENCH,
        format!(
            "the loaded cluster ({} Services, {} Pods) on a fresh control plane (TLS, sled); \
             `kubectl get svc -A` (Table, discovery cached) timed {LISTS} times end to end with kubectl's default chunks of 500 \
             ({chunks} requests, paced by client-go's own 5 requests/s past a burst of 10) and with --chunk-size=0, and the same \
             {chunks} chunked requests made without that pacing; \
             then {writes} new Services through REST (one HTTP/2 connection, as kubectl and client-go use) \
             and {writes} through gRPC, 64 in flight each. cost = gRPC writes/s / REST writes/s.",
            shape.services,
            shape.pods()
        ),
    );
    let cp = ctx.loaded_control_plane(&shape).await?;
    let kubeconfig = cp.data_dir().join("admin.conf");
    let scale = format!("{} svc", shape.services);
    let x = shape.services as f64;

    // kubectl's default chunks of 500 are 20 requests at 10,000 Services;
    // past its burst of 10, client-go's own rate limit (5 requests/s) paces
    // them, whatever the server does: that row is for information, and the
    // target applies to a single chunk and to the server's part.
    for (case, chunk, target) in [
        ("kubectl-get-svc-all", "500", None),
        (
            "kubectl-get-svc-all-chunk-size-0",
            "0",
            Some(Target::median(LIST_TARGET_MS)),
        ),
    ] {
        let list_ms = kubectl_lists(&kubeconfig, ctx.work(), shape.services, chunk)?;
        if let Some(s) = Summary::of(&list_ms) {
            report.push(Row::at(BENCH, case, &scale, x).measured("ms", s, target));
        }
    }
    let mut rest = Rest::connect(&kubeconfig).await?;
    let mut chunked_ms = Vec::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let rows = rest.table_in_chunks(500).await?;
        chunked_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(rows >= shape.services, "the chunks held {rows} rows");
    }
    if let Some(s) = Summary::of(&chunked_ms) {
        let target = Some(Target::median(LIST_TARGET_MS));
        report.push(
            Row::at(BENCH, "rest-table-in-chunks-of-500", &scale, x).measured("ms", s, target),
        );
    }

    let rest_phase = write_all(&rest, services("bench-rest", writes)).await?;
    let grpc_phase = write_all(&cp.api().await?, services("bench-grpc", writes)).await?;
    for (case, phase) in [("rest", &rest_phase), ("grpc", &grpc_phase)] {
        let row = Row::at(
            BENCH,
            &format!("{case}-service-writes-per-second"),
            &scale,
            x,
        );
        report.push(row.measured("1/s", Summary::single(phase.per_second()), None));
    }
    let cost = grpc_phase.per_second() / rest_phase.per_second();
    let row = Row::at(BENCH, "rest-write-cost", &scale, x);
    report.push(row.measured(
        "x",
        Summary::single(cost),
        Some(Target::median(WRITE_COST_TARGET)),
    ));
    cp.stop();
    Ok(())
}

/// Times `kubectl get svc -A --chunk-size=CHUNK`, checking it printed every Service.
fn kubectl_lists(
    kubeconfig: &Path,
    work: &Path,
    services: usize,
    chunk: &str,
) -> anyhow::Result<Vec<f64>> {
    let cache = work.join("kubectl-cache");
    let kubectl = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .context("running kubectl (is it installed?)")
    };
    // Discovery is cached after the first run, as on a user's machine.
    kubectl(&["api-resources"])?;
    let mut ms = Vec::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let out = kubectl(&["get", "svc", "-A", "--chunk-size", chunk])?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            out.status.success(),
            "kubectl get svc -A: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = out.stdout.iter().filter(|b| **b == b'\n').count();
        ensure!(
            rows > services,
            "kubectl listed {rows} lines for {services} Services"
        );
    }
    Ok(ms)
}

fn services(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": format!("{prefix}-{i}"), "namespace": "default"},
                "spec": {"selector": {"app": format!("{prefix}-{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}
            })
        })
        .collect()
}

/// A REST client on one HTTP/2 connection with the admin's certificate.
#[derive(Clone)]
struct Rest {
    send: SendRequest<Full<Bytes>>,
    authority: String,
}

impl Rest {
    async fn connect(kubeconfig: &Path) -> anyhow::Result<Rest> {
        let credentials = Credentials::read(kubeconfig)?;
        let tls = tokio_rustls::TlsConnector::from(credentials.client_config()?);
        let authority = credentials
            .server
            .trim_start_matches("https://")
            .to_string();
        let tcp = tokio::net::TcpStream::connect(&authority).await?;
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h);
        let name = rustls_pki_types::ServerName::try_from(host.to_string())?;
        let stream = tls.connect(name, tcp).await?;
        let (send, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        tokio::spawn(connection);
        Ok(Rest { send, authority })
    }
}

impl Rest {
    /// What `kubectl get svc -A` asks for, chunk after chunk, without its
    /// client-side pacing; the number of rows.
    async fn table_in_chunks(&mut self, limit: usize) -> anyhow::Result<usize> {
        let mut rows = 0;
        let mut token = String::new();
        loop {
            let mut uri = format!("https://{}/api/v1/services?limit={limit}", self.authority);
            if !token.is_empty() {
                uri.push_str(&format!("&continue={token}"));
            }
            let request = http::Request::get(uri)
                .header(
                    http::header::ACCEPT,
                    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                )
                .body(Full::new(Bytes::new()))?;
            self.send.ready().await?;
            let response = self.send.send_request(request).await?;
            ensure!(
                response.status().is_success(),
                "list answered {}",
                response.status()
            );
            let body = response.into_body().collect().await?.to_bytes();
            let table: Value = serde_json::from_slice(&body)?;
            rows += table["rows"].as_array().map_or(0, Vec::len);
            match table["metadata"]["continue"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => return Ok(rows),
            }
        }
    }
}

impl Writer for Rest {
    async fn write(&mut self, obj: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(obj)?;
        let request = http::Request::post(format!(
            "https://{}/api/v1/namespaces/default/services",
            self.authority
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
        self.send.ready().await?;
        let response = self.send.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        ensure!(
            status == http::StatusCode::CREATED,
            "POST answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }
}
