//! `swctl get endpoints`: Switchyard stores only EndpointSlices, so the
//! Endpoints view kubectl users expect is built here from each Service's slices.

use chrono::{DateTime, Utc};
use switchyard_api::resources::{EndpointSlice, Kind, Service};

use super::table::{decorate, Aligner, TableOptions};
use switchyard_api::columns::age::age;
use switchyard_api::columns::truncated_list;

/// One line of the Endpoints view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsRow {
    pub namespace: String,
    pub name: String,
    /// Ready `ip:port` pairs as kubectl shows them: `a:80,b:80,c:80 + 2 more...` or `<none>`.
    pub endpoints: String,
    /// The Service's creation time: its Endpoints appear with it.
    pub creation_timestamp: Option<String>,
}

/// A row per Service, from the slices labelled with its name in its namespace.
pub fn endpoints_rows(services: &[Service], slices: &[EndpointSlice]) -> Vec<EndpointsRow> {
    services
        .iter()
        .map(|svc| {
            let addresses = ready_addresses(&slices_of(svc, slices), None);
            EndpointsRow {
                namespace: svc.metadata.namespace.clone().unwrap_or_default(),
                name: svc.metadata.name.clone(),
                endpoints: truncated_list(addresses.into_iter())
                    .unwrap_or_else(|| "<none>".to_string()),
                creation_timestamp: svc.metadata.creation_timestamp.clone(),
            }
        })
        .collect()
}

/// The table `kubectl get endpoints` prints: NAME ENDPOINTS AGE.
pub fn print_endpoints(
    services: &[Service],
    slices: &[EndpointSlice],
    opts: &TableOptions,
    now: DateTime<Utc>,
) -> String {
    // Endpoints are namespaced, like Services.
    let kind = Kind::Service;
    let mut lines = Vec::new();
    if !opts.no_headers {
        let titles = vec!["ENDPOINTS".to_string(), "AGE".to_string()];
        lines.push(decorate(
            kind,
            opts,
            "NAMESPACE".into(),
            "NAME".into(),
            titles,
        ));
    }
    for row in endpoints_rows(services, slices) {
        let name = if opts.with_kind_prefix {
            format!("endpoints/{}", row.name)
        } else {
            row.name
        };
        let cells = vec![row.endpoints, age(row.creation_timestamp.as_deref(), now)];
        lines.push(decorate(kind, opts, row.namespace, name, cells));
    }
    if lines.is_empty() {
        return String::new();
    }
    Aligner::default().render(&lines)
}

/// The slices that belong to `svc`.
pub(super) fn slices_of<'a>(svc: &Service, slices: &'a [EndpointSlice]) -> Vec<&'a EndpointSlice> {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
    slices
        .iter()
        .filter(|s| s.metadata.namespace.as_deref().unwrap_or_default() == namespace)
        .filter(|s| s.service_name() == Some(svc.metadata.name.as_str()))
        .collect()
}

/// Ready `ip:port` pairs, port by port, like kubectl's `formatEndpointSlices`;
/// `port_name` keeps one service port (`""` for an unnamed one), `None` all.
/// A slice without ports (headless, portless) contributes bare addresses.
pub(super) fn ready_addresses(slices: &[&EndpointSlice], port_name: Option<&str>) -> Vec<String> {
    let mut list = Vec::new();
    for slice in slices {
        let ready = || {
            slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.is_ready())
                .flat_map(|e| &e.addresses)
        };
        if slice.ports.is_empty() {
            list.extend(ready().cloned());
            continue;
        }
        let ports = slice
            .ports
            .iter()
            .filter(|p| port_name.is_none_or(|name| p.name.as_deref().unwrap_or_default() == name));
        for port in ports {
            list.extend(ready().map(|address| host_port(address, port.port)));
        }
    }
    list
}

/// `ip:port`, bracketing IPv6 addresses as Go's `net.JoinHostPort` does.
fn host_port(address: &str, port: Option<i32>) -> String {
    match port {
        Some(port) if address.contains(':') => format!("[{address}]:{port}"),
        Some(port) => format!("{address}:{port}"),
        None => address.to_string(),
    }
}
