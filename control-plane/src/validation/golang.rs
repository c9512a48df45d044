//! Go's `%#v` rendering of the non-scalar values a few Kubernetes errors
//! print (maps, slices, structs), so those errors name the value as the API
//! server does, e.g. `map[string]string{"app":"x"}`.

use switchyard_api::resources::Labels;

use super::field::BadValue;

/// The one place a Go rendering becomes a bad value, printed verbatim.
pub(crate) fn value(rendered: String) -> BadValue {
    BadValue::Raw(rendered)
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// `map[string]string{"a":"1", "b":"2"}`; a missing map is Go's nil map.
pub(super) fn string_map(map: &Labels) -> String {
    if map.is_empty() {
        return "map[string]string(nil)".to_string();
    }
    let pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
        .collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// `[]string{"a", "b"}`.
pub(crate) fn string_slice(items: &[String]) -> String {
    typed_slice("string", items)
}

/// `[]core.IPFamily{"IPv4", "IPv6"}`: a slice of a named string type.
pub(super) fn typed_slice(type_name: &str, items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[]{type_name}{{{}}}", quoted.join(", "))
}

/// The `(protocol, port)` key Kubernetes reports for duplicate Service ports.
pub(super) fn service_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        quote(protocol)
    )
}

pub(super) fn node_address(type_: &str, address: &str) -> String {
    format!(
        "core.NodeAddress{{Type:{}, Address:{}}}",
        quote(type_),
        quote(address)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_render_like_go() {
        let mut m = Labels::new();
        assert_eq!(string_map(&m), "map[string]string(nil)");
        m.insert("tier".to_string(), "web".to_string());
        m.insert("app".to_string(), "x".to_string());
        assert_eq!(
            string_map(&m),
            r#"map[string]string{"app":"x", "tier":"web"}"#
        );
    }

    #[test]
    fn slices_and_structs_render_like_go() {
        assert_eq!(
            string_slice(&["10.96.0.1".to_string(), "10.96.0.2".to_string()]),
            r#"[]string{"10.96.0.1", "10.96.0.2"}"#
        );
        assert_eq!(
            service_port_key("TCP", 80),
            r#"core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#
        );
        assert_eq!(
            node_address("InternalIP", "10.0.0.1"),
            r#"core.NodeAddress{Type:"InternalIP", Address:"10.0.0.1"}"#
        );
    }
}
