//! `swctl get controlplanes`: the control planes sharing the cluster's
//! store, which one leads, how far each has read the store and how many
//! agents stream from it.

use chrono::{DateTime, Utc};
use switchyard_api::v1::ControlPlane;

use super::table::Aligner;
use switchyard_api::columns::{control_plane_cells, CONTROL_PLANE_HEADER};

/// NAME ADDRESS LEADER REVISION AGENTS AGE.
pub fn print_control_planes(rows: &[ControlPlane], no_headers: bool, now: DateTime<Utc>) -> String {
    let mut lines = Vec::new();
    if !no_headers {
        lines.push(CONTROL_PLANE_HEADER.iter().map(|t| t.to_string()).collect());
    }
    lines.extend(rows.iter().map(|cp| control_plane_cells(cp, now)));
    Aligner::default().render(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_control_plane_under_kubectl_style_headers() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let rows = vec![
            ControlPlane {
                name: "cp-1".into(),
                address: "https://172.18.0.1:7443".into(),
                leader: true,
                revision: 1042,
                agents: 2,
                started: "2026-12-02T10:00:00Z".into(),
            },
            ControlPlane {
                name: "cp-2".into(),
                address: "https://172.18.0.2:7443".into(),
                leader: false,
                revision: 1042,
                agents: 0,
                started: "2026-12-02T10:04:30Z".into(),
            },
        ];
        assert_eq!(
            print_control_planes(&rows, false, now),
            "NAME   ADDRESS                   LEADER   REVISION   AGENTS   AGE\n\
             cp-1   https://172.18.0.1:7443   true     1042       2        5m\n\
             cp-2   https://172.18.0.2:7443   false    1042       0        30s\n"
        );
    }
}
