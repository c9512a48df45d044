//! Server-side printing: the `Table` kubectl asks for
//! (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) and prints as
//! it comes. The columns and cells are the ones swctl prints
//! (`switchyard_api::columns`), so both tools show the same table.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use switchyard_api::columns;
use switchyard_api::resources::{Kind, Object};

/// Whether the client asked for a Table.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.split(';').any(|p| p.trim() == "as=Table"))
    })
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Include {
    None,
    /// The object's metadata only: kubectl reads namespaces and labels from it.
    #[default]
    Metadata,
    Object,
}

impl Include {
    pub fn parse(value: &str) -> Include {
        match value {
            "None" => Include::None,
            "Object" => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// One column: its title and whether only `-o wide` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub wide: bool,
}

/// One row: its cells and the object it shows, as JSON.
pub struct Row {
    pub cells: Vec<String>,
    pub object: Value,
}

/// The columns of a stored kind: its name column, then swctl's.
pub fn columns_of(kind: Kind) -> Vec<Column> {
    let narrow = columns::header(kind, false).len();
    let mut out = vec![Column {
        name: columns::name_title(kind).to_string(),
        wide: false,
    }];
    out.extend(
        columns::header(kind, true)
            .into_iter()
            .enumerate()
            .map(|(i, name)| Column {
                name: name.to_string(),
                wide: i >= narrow,
            }),
    );
    out
}

/// A stored object's row: cells as `get` shows them, wide ones after.
pub fn row_of(object: &Object, now: DateTime<Utc>) -> Row {
    let mut cells = vec![object.name().to_string()];
    let narrow = columns::cells(object, false, now);
    let wide = columns::cells(object, true, now);
    let extra = wide.get(narrow.len()..).unwrap_or_default().to_vec();
    cells.extend(narrow);
    cells.extend(extra);
    Row {
        cells,
        object: object.clone().with_type_meta().to_value(),
    }
}

/// The Table; `metadata` is the list's (resourceVersion, continue).
pub fn table(columns: &[Column], rows: Vec<Row>, metadata: Value, include: Include) -> Value {
    let definitions: Vec<Value> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": c.name,
                "type": "string",
                "format": if i == 0 { "name" } else { "" },
                "description": "",
                "priority": if c.wide { 1 } else { 0 },
            })
        })
        .collect();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let mut out = json!({ "cells": row.cells });
            if let Some(object) = carried(row.object, include) {
                out["object"] = object;
            }
            out
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn carried(object: Value, include: Include) -> Option<Value> {
    match include {
        Include::None => None,
        Include::Object => Some(object),
        Include::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::Service;

    #[test]
    fn kubectl_asks_for_a_table_first() {
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }

    #[test]
    fn a_service_row_under_kubectls_columns() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-12-07T10:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 32233, "protocol": "TCP"}], "selector": {"app": "web"}}
        }))
        .unwrap();
        let object = Object::Service(Box::new(svc));
        let columns = columns_of(Kind::Service);
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ]
        );
        assert!(columns[6].wide && !columns[5].wide);
        let t = table(
            &columns,
            vec![row_of(&object, now)],
            json!({"resourceVersion": "7"}),
            Include::Metadata,
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "NodePort",
                "10.96.0.10",
                "<none>",
                "80:32233/TCP",
                "5m",
                "app=web"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        assert_eq!(t["columnDefinitions"][6]["priority"], 1);
    }
}
