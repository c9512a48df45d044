//! Whole-output tests: every expected string is kubectl's layout for the same objects.

use chrono::{DateTime, Utc};
use serde_json::json;
use switchyard_api::resources::{EndpointSlice, Kind, Object, Service};

use super::*;

const NOW: &str = "2024-05-01T12:00:00Z";
/// 2m10s before NOW.
const CREATED: &str = "2024-05-01T11:57:50Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

fn object(kind: Kind, value: serde_json::Value) -> Object {
    Object::from_value(kind, value).unwrap()
}

fn service(name: &str, spec: serde_json::Value) -> Object {
    service_in("default", name, spec, json!({}))
}

fn service_in(ns: &str, name: &str, spec: serde_json::Value, status: serde_json::Value) -> Object {
    object(
        Kind::Service,
        json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": CREATED},
            "spec": spec,
            "status": status,
        }),
    )
}

fn frontend() -> Object {
    service(
        "frontend-svc",
        json!({
            "type": "ClusterIP",
            "clusterIP": "10.96.0.15",
            "clusterIPs": ["10.96.0.15"],
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
            "selector": {"app": "frontend"},
            "ports": [{"port": 80, "targetPort": 5000, "protocol": "TCP"}],
            "sessionAffinity": "None",
        }),
    )
}

fn as_service(object: Object) -> Service {
    match object {
        Object::Service(svc) => *svc,
        other => panic!("not a service: {other:?}"),
    }
}

fn slice(service: &str, name: &str, endpoints: &[(&str, bool)], port: i32) -> EndpointSlice {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}}))
        .collect();
    let value = json!({
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": CREATED,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "", "port": port, "protocol": "TCP"}],
    });
    serde_json::from_value(value).unwrap()
}

fn frontend_slices() -> Vec<EndpointSlice> {
    vec![slice(
        "frontend-svc",
        "frontend-svc-x7k2p",
        &[
            ("10.244.1.5", true),
            ("10.244.2.7", true),
            ("10.244.3.9", false),
        ],
        5000,
    )]
}

fn table(objects: &[Object]) -> String {
    print_table(objects, &TableOptions::default(), now())
}

#[test]
fn cluster_ip_service() {
    assert_eq!(
        table(&[frontend()]),
        "\
NAME           TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE
frontend-svc   ClusterIP   10.96.0.15   <none>        80/TCP    2m10s
"
    );
}

#[test]
fn services_of_every_type() {
    let node_port = service(
        "web-np",
        json!({
            "type": "NodePort",
            "clusterIPs": ["10.96.0.20"],
            "ports": [{"port": 80, "nodePort": 32233}, {"port": 53, "protocol": "UDP"}],
        }),
    );
    let pending = service(
        "web-lb",
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.21"], "ports": [{"port": 443, "nodePort": 30443}]}),
    );
    let headless = service(
        "db",
        json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}),
    );
    let external = service(
        "search",
        json!({"type": "ExternalName", "externalName": "search.example.com"}),
    );
    assert_eq!(
        table(&[node_port, pending, headless, external]),
        "\
NAME     TYPE           CLUSTER-IP   EXTERNAL-IP          PORT(S)               AGE
web-np   NodePort       10.96.0.20   <none>               80:32233/TCP,53/UDP   2m10s
web-lb   LoadBalancer   10.96.0.21   <pending>            443:30443/TCP         2m10s
db       ClusterIP      None         <none>               5432/TCP              2m10s
search   ExternalName   <none>       search.example.com   <none>                2m10s
"
    );
}

#[test]
fn load_balancer_addresses() {
    let spec = json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.21"], "externalIPs": ["192.0.2.9"], "ports": [{"port": 80, "nodePort": 30080}]});
    let one = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
    let many =
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.11"}, {"ip": "203.0.113.10"}]}});
    let lb = |status| service_in("default", "lb", spec.clone(), status);
    let external_ip = |object: Object, wide: bool| {
        let opts = TableOptions {
            wide,
            no_headers: true,
            ..TableOptions::default()
        };
        let text = print_table(&[object], &opts, now());
        text.split_whitespace().nth(3).unwrap().to_string()
    };
    assert_eq!(external_ip(lb(one), false), "203.0.113.10,192.0.2.9");
    // kubectl cuts ingress addresses to 16 characters unless -o wide.
    assert_eq!(
        external_ip(lb(many.clone()), false),
        "203.0.113.10,...,192.0.2.9"
    );
    assert_eq!(
        external_ip(lb(many), true),
        "203.0.113.10,203.0.113.11,192.0.2.9"
    );
}

#[test]
fn wide_service_shows_selector() {
    let opts = TableOptions {
        wide: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_table(&[frontend()], &opts, now()),
        "\
NAME           TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE     SELECTOR
frontend-svc   ClusterIP   10.96.0.15   <none>        80/TCP    2m10s   app=frontend
"
    );
}

#[test]
fn all_namespaces_adds_namespace_column() {
    let other = service_in(
        "kube-system",
        "kube-dns",
        json!({"clusterIPs": ["10.96.0.10"], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}),
        json!({}),
    );
    let opts = TableOptions {
        all_namespaces: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_table(&[frontend(), other], &opts, now()),
        "\
NAMESPACE     NAME           TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)         AGE
default       frontend-svc   ClusterIP   10.96.0.15   <none>        80/TCP          2m10s
kube-system   kube-dns       ClusterIP   10.96.0.10   <none>        53/UDP,53/TCP   2m10s
"
    );
}

fn pod(name: &str, ip: Option<&str>, ready: bool) -> Object {
    let mut status =
        json!({"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
    }
    object(
        Kind::Pod,
        json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T08:40:00Z", "labels": {"app": "frontend"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "web", "ports": [{"containerPort": 5000}]}]},
            "status": status,
        }),
    )
}

#[test]
fn several_kinds_get_a_table_each_with_kind_prefixes() {
    let opts = TableOptions {
        with_kind_prefix: true,
        ..TableOptions::default()
    };
    let objects = [frontend(), pod("frontend-1", Some("10.244.1.5"), true)];
    assert_eq!(
        print_table(&objects, &opts, now()),
        "\
NAME                   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE
service/frontend-svc   ClusterIP   10.96.0.15   <none>        80/TCP    2m10s

NAME             READY   STATUS    RESTARTS   AGE
pod/frontend-1   1/1     Running   0          3h20m
"
    );
}

#[test]
fn pods_wide() {
    let objects = [
        pod("frontend-1", Some("10.244.1.5"), true),
        pod("frontend-2", None, false),
    ];
    let opts = TableOptions {
        wide: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_table(&objects, &opts, now()),
        "\
NAME         READY   STATUS    RESTARTS   AGE     IP           NODE
frontend-1   1/1     Running   0          3h20m   10.244.1.5   node-a
frontend-2   0/1     Pending   0          3h20m   <none>       node-a
"
    );
}

#[test]
fn deployments() {
    let deploy = object(
        Kind::Deployment,
        json!({
            "metadata": {"name": "frontend", "namespace": "default", "creationTimestamp": "2024-04-29T09:00:00Z"},
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"app": "frontend"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}],
                },
            },
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2},
        }),
    );
    let opts = TableOptions {
        wide: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_table(&[deploy], &opts, now()),
        "\
NAME       READY   UP-TO-DATE   AVAILABLE   AGE    SELECTOR
frontend   2/3     3            2           2d3h   app=frontend,tier in (edge,web)
"
    );
}

#[test]
fn endpoint_slices() {
    let mut many = slice(
        "big",
        "big-abcde",
        &[
            ("10.0.0.1", true),
            ("10.0.0.2", true),
            ("10.0.0.3", true),
            ("10.0.0.4", false),
            ("10.0.0.5", true),
        ],
        8080,
    );
    many.ports
        .push(serde_json::from_value(json!({"name": "metrics"})).unwrap());
    let objects: Vec<Object> = frontend_slices()
        .into_iter()
        .chain([many])
        .map(|s| Object::EndpointSlice(Box::new(s)))
        .collect();
    assert_eq!(
        table(&objects),
        "\
NAME                 ADDRESSTYPE   PORTS          ENDPOINTS                                AGE
frontend-svc-x7k2p   IPv4          5000           10.244.1.5,10.244.2.7,10.244.3.9         2m10s
big-abcde            IPv4          8080,metrics   10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...   2m10s
"
    );
}

#[test]
fn namespaces_and_nodes() {
    let ns = object(
        Kind::Namespace,
        json!({"metadata": {"name": "default", "creationTimestamp": "2021-01-02T00:00:00Z"}}),
    );
    let synced = object(
        Kind::Node,
        json!({
            "metadata": {"name": "node-a", "creationTimestamp": "2024-05-01T11:59:15Z"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.10.2"}], "syncState": "SYNCED", "appliedVersion": 42,
                "conditions": [{"type": "Ready", "status": "True"}]},
        }),
    );
    let nacked = object(
        Kind::Node,
        json!({
            "metadata": {"name": "node-b", "creationTimestamp": "2024-05-01T11:59:15Z"},
            "status": {"syncState": "NACKED", "lastError": "nft: syntax error",
                "conditions": [{"type": "Ready", "status": "Unknown"}]},
        }),
    );
    // Cluster-scoped kinds never get a NAMESPACE column.
    let opts = TableOptions {
        all_namespaces: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_table(&[ns, synced, nacked], &opts, now()),
        "\
NAME      STATUS   AGE
default   Active   3y120d

NAME     STATUS     SYNC                        ADDRESSES      VERSION   AGE
node-a   Ready      SYNCED                      192.168.10.2   42        45s
node-b   NotReady   NACKED: nft: syntax error   <none>         <none>    45s
"
    );
}

#[test]
fn endpoints_view() {
    let services = [
        as_service(frontend()),
        as_service(service("big", json!({"ports": [{"port": 80}]}))),
        as_service(service("lonely", json!({"ports": [{"port": 80}]}))),
    ];
    let mut slices = frontend_slices();
    slices.push(slice(
        "big",
        "big-abcde",
        &[
            ("10.0.0.1", true),
            ("10.0.0.2", true),
            ("10.0.0.3", true),
            ("10.0.0.4", false),
            ("10.0.0.5", true),
            ("fd00::6", true),
        ],
        8080,
    ));
    assert_eq!(
        print_endpoints(&services, &slices, &TableOptions::default(), now()),
        "\
NAME           ENDPOINTS                                               AGE
frontend-svc   10.244.1.5:5000,10.244.2.7:5000                         2m10s
big            10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more...   2m10s
lonely         <none>                                                  2m10s
"
    );
    let rows = endpoints_rows(&services[..1], &slices);
    assert_eq!(rows[0].endpoints, "10.244.1.5:5000,10.244.2.7:5000");
}

#[test]
fn endpoints_view_with_namespaces_and_prefix() {
    let opts = TableOptions {
        all_namespaces: true,
        with_kind_prefix: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_endpoints(&[as_service(frontend())], &frontend_slices(), &opts, now()),
        "\
NAMESPACE   NAME                     ENDPOINTS                         AGE
default     endpoints/frontend-svc   10.244.1.5:5000,10.244.2.7:5000   2m10s
"
    );
}

#[test]
fn watch_keeps_columns_aligned() {
    let mut printer = WatchPrinter::new(TableOptions::default());
    let initial = [
        pod("fe-1", Some("10.244.1.5"), true),
        pod("frontend-1", None, false),
    ];
    assert_eq!(
        printer.print(&initial, now()),
        "\
NAME         READY   STATUS    RESTARTS   AGE
fe-1         1/1     Running   0          3h20m
frontend-1   0/1     Pending   0          3h20m
"
    );
    let next = printer.print(&[pod("fe-2", None, false)], now());
    assert_eq!(next, "fe-2         0/1     Pending   0          3h20m\n");
    let wider = printer.print(&[pod("frontend-canary-1", None, false)], now());
    assert_eq!(
        wider,
        "frontend-canary-1   0/1     Pending   0          3h20m\n"
    );
}

#[test]
fn no_headers_and_empty_input() {
    let opts = TableOptions {
        no_headers: true,
        ..TableOptions::default()
    };
    assert_eq!(
        print_table(&[frontend()], &opts, now()),
        "frontend-svc   ClusterIP   10.96.0.15   <none>   80/TCP   2m10s\n"
    );
    assert_eq!(table(&[]), "");
}

#[test]
fn describe_cluster_ip_service() {
    let mut svc = as_service(frontend());
    svc.metadata.labels.insert("app".into(), "frontend".into());
    svc.metadata.labels.insert("tier".into(), "web".into());
    assert_eq!(
        describe_service(&svc, &frontend_slices()),
        "\
Name:                     frontend-svc
Namespace:                default
Labels:                   app=frontend
                          tier=web
Annotations:              <none>
Selector:                 app=frontend
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.0.15
IPs:                      10.96.0.15
Port:                     <unset>  80/TCP
TargetPort:               5000/TCP
Endpoints:                10.244.1.5:5000,10.244.2.7:5000
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"
    );
}

#[test]
fn describe_load_balancer_service() {
    let svc = as_service(service_in(
        "default",
        "web-lb",
        json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.21",
            "clusterIPs": ["10.96.0.21"],
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
            "externalIPs": ["192.0.2.9"],
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}],
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31898,
        }),
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"hostname": "lb.example.com"}]}}),
    ));
    assert_eq!(
        describe_service(&svc, &[]),
        "\
Name:                     web-lb
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=web
Type:                     LoadBalancer
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.0.21
IPs:                      10.96.0.21
External IPs:             192.0.2.9
LoadBalancer Ingress:     203.0.113.10, lb.example.com
Port:                     http  80/TCP
TargetPort:               http/TCP
NodePort:                 http  30080/TCP
Endpoints:                <none>
Session Affinity:         None
External Traffic Policy:  Local
Internal Traffic Policy:  Cluster
HealthCheck NodePort:     31898
Events:                   <none>
"
    );
}

#[test]
fn describe_external_name_service() {
    let svc = as_service(service(
        "search",
        json!({"type": "ExternalName", "externalName": "search.example.com"}),
    ));
    assert_eq!(
        describe_service(&svc, &[]),
        "\
Name:              search
Namespace:         default
Labels:            <none>
Annotations:       <none>
Selector:          <none>
Type:              ExternalName
IP Families:       <none>
IP:                
IPs:               <none>
External Name:     search.example.com
Session Affinity:  None
Events:            <none>
"
    );
}

#[test]
fn describe_pod_layout() {
    let mut value = json!({
        "metadata": {
            "name": "frontend-1",
            "namespace": "default",
            "labels": {"app": "frontend"},
            "annotations": {"note": "hand registered"},
        },
        "spec": {
            "nodeName": "node-a",
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 5000}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
            }],
        },
        "status": {"podIP": "10.244.1.5", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let Object::Pod(pod) = object(Kind::Pod, value.take()) else {
        panic!("not a pod")
    };
    let mut dual = pod.clone();
    dual.status.pod_ips =
        serde_json::from_value(json!([{"ip": "10.244.1.5"}, {"ip": "fd00:10:244:1::5"}])).unwrap();
    assert!(
        describe_pod(&dual).contains("IPs:\n  IP:  10.244.1.5\n  IP:  fd00:10:244:1::5\n"),
        "{}",
        describe_pod(&dual)
    );
    assert_eq!(
        describe_pod(&pod),
        "\
Name:         frontend-1
Namespace:    default
Node:         node-a
Labels:       app=frontend
Annotations:  note: hand registered
Status:       Running
IP:           10.244.1.5
IPs:
  IP:  10.244.1.5
Containers:
  web:
    Image:      nginx:1.27
    Port:       5000/TCP (http)
    Readiness:  http-get http://:http/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
Conditions:
  Type    Status
  Ready   True 
Events:   <none>
"
    );
}

#[test]
fn describe_deployment_layout() {
    let Object::Deployment(deploy) = object(
        Kind::Deployment,
        json!({
            "metadata": {"name": "frontend", "namespace": "default", "creationTimestamp": "2024-05-01T08:40:00Z"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "frontend"}},
                "template": {
                    "metadata": {"labels": {"app": "frontend"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2},
        }),
    ) else {
        panic!("not a deployment")
    };
    assert_eq!(
        describe_deployment(&deploy),
        "\
Name:               frontend
Namespace:          default
CreationTimestamp:  Wed, 01 May 2024 08:40:00 +0000
Labels:             <none>
Annotations:        <none>
Selector:           app=frontend
Replicas:           3 desired | 3 updated | 3 total | 2 available | 1 unavailable
Pod Template:
  Labels:  app=frontend
  Containers:
    web:
      Image:  nginx:1.27
      Port:   <none>
Events:       <none>
"
    );
}

#[test]
fn yaml_of_one_object() {
    let yaml = to_yaml(&[frontend()], false).unwrap();
    assert_eq!(
        yaml,
        "\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: \"2024-05-01T11:57:50Z\"
  name: frontend-svc
  namespace: default
spec:
  clusterIP: \"10.96.0.15\"
  clusterIPs:
  - \"10.96.0.15\"
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - port: 80
    protocol: TCP
    targetPort: 5000
  selector:
    app: frontend
  sessionAffinity: None
  type: ClusterIP
"
    );
}

#[test]
fn yaml_of_several_objects_is_a_list() {
    let ns = object(Kind::Namespace, json!({"metadata": {"name": "shop"}}));
    let yaml = to_yaml(&[ns.clone(), ns], true).unwrap();
    assert_eq!(
        yaml,
        "\
apiVersion: v1
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
  status: {}
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
  status: {}
kind: List
metadata:
  resourceVersion: \"\"
"
    );
}

#[test]
fn json_output() {
    let ns = object(Kind::Namespace, json!({"metadata": {"name": "shop"}}));
    assert_eq!(
        to_json(std::slice::from_ref(&ns), false).unwrap(),
        "\
{
    \"apiVersion\": \"v1\",
    \"kind\": \"Namespace\",
    \"metadata\": {
        \"name\": \"shop\"
    },
    \"status\": {}
}
"
    );
    let list = to_json(&[ns.clone(), ns], true).unwrap();
    let value: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(value["kind"], "List");
    assert_eq!(value["items"].as_array().map(Vec::len), Some(2));
    assert!(
        list.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n"),
        "{list}"
    );
    assert!(list.ends_with("    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"), "{list}");
}

#[test]
fn endpoints_bracket_ipv6_and_list_portless_slices() {
    let svc = as_service(service(
        "v6",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    ));
    let mut with_port = slice("v6", "v6-a", &[("fd00::6", true)], 8080);
    with_port.address_type = "IPv6".into();
    let mut portless = slice("v6", "v6-b", &[("10.0.0.7", true)], 0);
    portless.ports.clear();
    let rows = endpoints_rows(&[svc], &[with_port, portless]);
    assert_eq!(rows[0].endpoints, "[fd00::6]:8080,10.0.0.7");
}

#[test]
fn describe_node_layout() {
    let Object::Node(node) = object(
        Kind::Node,
        json!({
            "metadata": {"name": "node-2", "labels": {"topology.kubernetes.io/zone": "b"}, "creationTimestamp": "2024-05-01T08:40:00Z"},
            "spec": {"podCIDR": "10.244.2.0/24"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "172.18.0.3"}],
                "agentVersion": "0.1.0",
                "syncState": "DISCONNECTED",
                "appliedVersion": 17,
                "conditions": [{
                    "type": "Ready", "status": "Unknown",
                    "lastHeartbeatTime": "2024-05-01T11:58:40Z",
                    "lastTransitionTime": "2024-05-01T11:59:00Z",
                    "reason": "NodeStatusUnknown",
                    "message": "switchyard-agent stopped posting node status.",
                }],
            },
        }),
    ) else {
        panic!("not a node")
    };
    assert_eq!(
        describe_node(&node),
        "\
Name:               node-2
Labels:             topology.kubernetes.io/zone=b
Annotations:        <none>
CreationTimestamp:  Wed, 01 May 2024 08:40:00 +0000
Conditions:
  Type    Status    LastHeartbeatTime                 LastTransitionTime                Reason              Message
  ----    ------    -----------------                 ------------------                ------              -------
  Ready   Unknown   Wed, 01 May 2024 11:58:40 +0000   Wed, 01 May 2024 11:59:00 +0000   NodeStatusUnknown   switchyard-agent stopped posting node status.
Addresses:
  InternalIP:     172.18.0.3
PodCIDR:          10.244.2.0/24
Agent Version:    0.1.0
Sync:             DISCONNECTED
Applied Version:  17
Events:           <none>
"
    );
}
