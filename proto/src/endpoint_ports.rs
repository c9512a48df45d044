//! Endpoints refer to their Service's shared port lists by index; these
//! helpers keep that indirection in one place on both ends of the stream.

use crate::v1::{Endpoint, EndpointPort, EndpointPorts, ServiceState};

impl ServiceState {
    /// The ports `endpoint` serves (empty when its index is out of range).
    pub fn endpoint_ports(&self, endpoint: &Endpoint) -> &[EndpointPort] {
        usize::try_from(endpoint.port_set)
            .ok()
            .and_then(|i| self.port_sets.get(i))
            .map_or(&[], |set| set.ports.as_slice())
    }

    /// The index of `ports` in `port_sets`, adding it when new.
    pub fn port_set_index(&mut self, ports: Vec<EndpointPort>) -> u32 {
        let found = self.port_sets.iter().position(|set| set.ports == ports);
        let index = found.unwrap_or_else(|| {
            self.port_sets.push(EndpointPorts { ports });
            self.port_sets.len() - 1
        });
        // A Service cannot have 2^32 distinct port lists: each is a distinct
        // set of pods' resolved ports, and a Service has far fewer pods.
        u32::try_from(index).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(n: u32) -> EndpointPort {
        EndpointPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: n,
        }
    }

    #[test]
    fn equal_port_lists_share_one_entry() {
        let mut s = ServiceState::default();
        assert_eq!(s.port_set_index(vec![port(80)]), 0);
        assert_eq!(s.port_set_index(vec![port(8080)]), 1);
        assert_eq!(s.port_set_index(vec![port(80)]), 0);
        assert_eq!(s.port_sets.len(), 2);
        let e = Endpoint {
            port_set: 1,
            ..Default::default()
        };
        assert_eq!(s.endpoint_ports(&e), [port(8080)]);
        let out_of_range = Endpoint {
            port_set: 7,
            ..Default::default()
        };
        assert!(s.endpoint_ports(&out_of_range).is_empty());
    }
}
