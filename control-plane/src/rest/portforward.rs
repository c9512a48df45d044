//! `kubectl port-forward`: `pods/NAME/portforward`, upgraded to WebSocket
//! (subprotocol `SPDY/3.1+portforward.k8s.io`, kubectl 1.31+) or, when
//! kubectl falls back, to SPDY/3.1. The session is authorized and audited
//! as `create pods/portforward`; each forwarded connection goes through the
//! same broker and agent tunnel as swctl's (`tunnel::stream`).

use axum::body::Body;
use http::header::{SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchyard_api::resources::{Kind, Object};
use switchyard_spdy::portforward::{self, Duplex, ServeConfig, WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::path::Target;
use super::{response, Rest};
use crate::auth::{Action, Caller, Verb};
use crate::status::to_status;
use crate::tunnel::TunnelApi;

/// The protocol kubectl asked to be upgraded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    WebSocket,
    Spdy,
}

fn upgrade_of(headers: &HeaderMap) -> Option<Upgrade> {
    let upgrade = headers.get(UPGRADE)?.to_str().ok()?.to_ascii_lowercase();
    match upgrade.as_str() {
        "websocket" => Some(Upgrade::WebSocket),
        u if u.starts_with("spdy/3.1") => Some(Upgrade::Spdy),
        _ => None,
    }
}

impl Rest {
    pub(super) async fn port_forward(
        &self,
        mut req: Request<Body>,
        target: &Target,
    ) -> Response<Body> {
        let caller = Caller::in_extensions(req.extensions());
        let method = format!("{} {}", req.method(), req.uri().path());
        let namespace = target
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let name = target.name.clone().unwrap_or_default();
        let action = Action::new(Verb::Create, "pods/portforward")
            .namespace(&namespace)
            .name(&name);
        if let Err(refused) = self.api.authorize(&caller, &method, action) {
            return response::error(&refused);
        }
        let uid = match self.registry.get(Kind::Pod, &namespace, &name) {
            Ok(Object::Pod(pod)) => pod.metadata.uid.unwrap_or_default(),
            Ok(_) => String::new(),
            Err(e) => return response::error(&to_status(e)),
        };
        let Some(upgrade) = upgrade_of(req.headers()) else {
            return response::bad_request("Upgrade request required".to_string());
        };
        let answer = match upgrade {
            Upgrade::WebSocket => match websocket_answer(req.headers()) {
                Ok(answer) => answer,
                Err(refused) => return refused,
            },
            Upgrade::Spdy => {
                switching(portforward::spdy_upgrade_headers().map(|(k, v)| (k, v.to_string())))
            }
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let config = ServeConfig {
            pod: format!("{name}_{namespace}"),
            uid,
            ..ServeConfig::default()
        };
        let dial = dialer(self.tunnel.clone(), namespace, name);
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => TokioIo::new(upgraded),
                Err(e) => return tracing::info!(error = %e, "port-forward upgrade failed"),
            };
            let served = match upgrade {
                Upgrade::WebSocket => {
                    let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                    portforward::serve_with(portforward::websocket_io(ws), config, dial).await
                }
                Upgrade::Spdy => portforward::serve_with(upgraded, config, dial).await,
            };
            if let Err(e) = served {
                tracing::info!(error = %e, "port-forward session ended with an error");
            }
        });
        answer
    }
}

/// A dial's answer: the pipe to the pod, or why there is none (kubectl
/// prints it).
type Dialing =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Box<dyn Duplex>, String>> + Send>>;

/// Each forwarded connection: a pipe to the pod's port through its agent.
fn dialer(
    tunnel: TunnelApi,
    namespace: String,
    name: String,
) -> impl Fn(u16) -> Dialing + Send + Sync + 'static {
    move |port| {
        let (tunnel, namespace, name) = (tunnel.clone(), namespace.clone(), name.clone());
        Box::pin(async move {
            let pipe = tunnel
                .open(&namespace, &name, port)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(pipe) as Box<dyn Duplex>)
        })
    }
}

/// The 101 answer to kubectl's WebSocket upgrade, or why it is refused
/// (kubectl then falls back to SPDY).
fn websocket_answer(headers: &HeaderMap) -> Result<Response<Body>, Response<Body>> {
    let offered = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    if !portforward::offers_protocol(offered, WEBSOCKET_PROTOCOL) {
        return Err(response::bad_request(format!(
            "port-forward over WebSocket speaks only the {WEBSOCKET_PROTOCOL} subprotocol"
        )));
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .ok_or_else(|| response::bad_request("Sec-WebSocket-Key is required".to_string()))?;
    Ok(switching(portforward::websocket_upgrade_headers(key)))
}

fn switching<const N: usize>(headers: [(&'static str, String); N]) -> Response<Body> {
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_two_ways_in() {
        let mut ws = HeaderMap::new();
        ws.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_of(&ws), Some(Upgrade::WebSocket));
        let mut spdy = HeaderMap::new();
        spdy.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert_eq!(upgrade_of(&spdy), Some(Upgrade::Spdy));
        assert_eq!(upgrade_of(&HeaderMap::new()), None);
    }

    #[test]
    fn a_websocket_without_the_subprotocol_is_refused_so_kubectl_falls_back() {
        let mut headers = HeaderMap::new();
        headers.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(websocket_answer(&headers).is_err());
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(WEBSOCKET_PROTOCOL),
        );
        let answer = websocket_answer(&headers).unwrap();
        assert_eq!(answer.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            answer.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
