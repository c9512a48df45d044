//! Reading manifests (`swctl apply -f`, `create -f`, `delete -f`) the way kubectl does.
//!
//! Input is multi-document YAML or JSON (one object, or a `kind: List`). Each
//! object is checked in three steps, so the first error says what is wrong in
//! the user's words: its `apiVersion`/`kind` (kubectl's "unable to recognize"),
//! then the concrete type with the field path and the YAML line of the bad value.
//! The decoded type is thrown away: callers get the JSON value as written, so
//! fields the user left out stay left out.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use switchyard_api::resources::{field_path, unknown_fields, Step as Segment};
use switchyard_api::resources::{
    BootstrapToken, Deployment, EndpointSlice, Kind, Namespace, Node, Pod, Service, User,
};

/// One object read from a manifest, ready to send to the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub kind: Kind,
    /// The object as written (with `apiVersion` and `kind`), already known to decode as `kind`.
    pub value: serde_json::Value,
    /// The file it came from (`STDIN` for `-`), for kubectl-style `error when creating "x.yaml"`.
    pub source: String,
    /// Paths of fields the API does not know (`spec.foo`), which it would
    /// drop: warned about, or refused with `--validate=strict`.
    pub unknown_fields: Vec<String>,
}

/// Where in a source an object sits: documents count from 1, skipping empty ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub document: usize,
    /// The YAML line of the offending value, when the format gives one.
    pub line: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        match self.line {
            Some(line) => write!(f, ", line {line}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the path \"{path}\" does not exist")]
    NotFound { path: String },
    #[error("error reading \"{path}\": {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("error parsing {file}: {message}")]
    Syntax { file: String, message: String },
    #[error("error validating \"{file}\" ({at}): expected an object, found {found}")]
    NotAnObject {
        file: String,
        at: Position,
        found: &'static str,
    },
    #[error("error validating \"{file}\" ({at}): error validating data: [{missing}]")]
    MissingType {
        file: String,
        at: Position,
        missing: String,
    },
    #[error("unable to recognize \"{file}\" ({at}): no matches for kind \"{kind}\" in version \"{api_version}\"")]
    UnknownKind {
        file: String,
        at: Position,
        kind: String,
        api_version: String,
    },
    #[error("error validating \"{file}\" ({at}): {kind} in version \"{api_version}\" cannot be handled as a {kind}: {path}: {message}")]
    Invalid {
        file: String,
        at: Position,
        kind: Kind,
        api_version: &'static str,
        path: String,
        message: String,
    },
}

/// Name kubectl gives standard input in its messages.
const STDIN: &str = "STDIN";
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Reads every `-f` argument in order: `-` is stdin, a directory contributes its
/// `.yaml`/`.yml`/`.json` files sorted by name (not recursing, like `kubectl -f DIR`).
pub fn read_inputs(paths: &[String]) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    let mut failure = None;
    visit_inputs(paths, &mut |item| match item {
        Ok(m) => {
            manifests.push(m);
            true
        }
        Err(e) => {
            failure = Some(e);
            false
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(manifests),
    }
}

/// Objects parsed ahead of the one being sent, at most.
const AHEAD: usize = 256;

/// [`read_inputs`] as a stream: a thread of its own parses the sources one
/// document at a time and stays at most [`AHEAD`] objects ahead of the
/// reader, so a file of 100,000 documents is never held whole. The stream
/// ends after the first error, which it yields.
pub fn stream_inputs(
    paths: &[String],
) -> tokio::sync::mpsc::Receiver<Result<Manifest, ManifestError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
    let paths = paths.to_vec();
    std::thread::spawn(move || visit_inputs(&paths, &mut |item| tx.blocking_send(item).is_ok()));
    rx
}

/// Hands every object of every source to `emit` in order, and the first
/// error; stops when `emit` returns false.
fn visit_inputs(paths: &[String], emit: &mut dyn FnMut(Result<Manifest, ManifestError>) -> bool) {
    for path in paths {
        let visited = if path == "-" {
            visit_source(std::io::stdin().lock(), STDIN, emit)
        } else {
            visit_path(Path::new(path), emit)
        };
        match visited {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                emit(Err(e));
                return;
            }
        }
    }
}

/// `Ok(false)`: the consumer wants no more.
fn visit_path(
    path: &Path,
    emit: &mut dyn FnMut(Result<Manifest, ManifestError>) -> bool,
) -> Result<bool, ManifestError> {
    let shown = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|error| io_error(&shown, error))?;
    let files = match metadata.is_dir() {
        true => manifest_files(path)?,
        false => vec![path.to_path_buf()],
    };
    for file in files {
        let shown = file.display().to_string();
        let opened = std::fs::File::open(&file).map_err(|error| io_error(&shown, error))?;
        if !visit_source(std::io::BufReader::new(opened), &shown, emit)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn manifest_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, ManifestError> {
    let shown = dir.display().to_string();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| io_error(&shown, error))? {
        let path = entry.map_err(|error| io_error(&shown, error))?.path();
        let wanted = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| MANIFEST_EXTENSIONS.contains(&ext));
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn io_error(path: &str, error: std::io::Error) -> ManifestError {
    if error.kind() == std::io::ErrorKind::NotFound {
        ManifestError::NotFound {
            path: path.to_string(),
        }
    } else {
        ManifestError::Io {
            path: path.to_string(),
            error,
        }
    }
}

/// Parses one source's text; `source` names it in errors (a path, or `STDIN`).
pub fn parse(text: &str, source: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    visit_source(text.as_bytes(), source, &mut |item| match item {
        Ok(m) => {
            manifests.push(m);
            true
        }
        Err(_) => false,
    })?;
    Ok(manifests)
}

/// Reads one source document by document, handing each object to `emit`.
/// JSON is told apart by its first character so its errors come from a
/// JSON parser (YAML would accept it too, but report it in YAML terms).
fn visit_source(
    mut reader: impl BufRead,
    source: &str,
    emit: &mut dyn FnMut(Result<Manifest, ManifestError>) -> bool,
) -> Result<bool, ManifestError> {
    let syntax = |message: String| ManifestError::Syntax {
        file: source.to_string(),
        message,
    };
    if starts_with_brace(&mut reader).map_err(|error| io_error(source, error))? {
        let value: Value = serde_json::from_reader(reader).map_err(|e| syntax(e.to_string()))?;
        let doc = DocContext {
            source,
            number: 1,
            tree: None,
        };
        return doc.emit_all(&value, emit);
    }
    // YAML 1.2 booleans only: `yes` stays the string it reads as, not YAML
    // 1.1's `true`. Node and alias budgets hold per document (what stops a
    // YAML bomb); the number of documents and the input's size are free.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! { max_reader_input_bytes: None },
    };
    let trees = serde_saphyr::read_with_options::<_, Located>(&mut reader, options);
    for (index, tree) in trees.enumerate() {
        let tree = tree.map_err(|e| syntax(e.without_snippet().to_string()))?;
        let doc = DocContext {
            source,
            number: index + 1,
            tree: Some(&tree),
        };
        if !doc.emit_all(&tree.to_value(), emit)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the first byte past leading white space is `{`.
fn starts_with_brace(reader: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf()?;
        let Some(&first) = buf.first() else {
            return Ok(false);
        };
        if first.is_ascii_whitespace() {
            reader.consume(1);
            continue;
        }
        return Ok(first == b'{');
    }
}

/// One document being checked, with what errors need to point into it.
struct DocContext<'a> {
    source: &'a str,
    number: usize,
    tree: Option<&'a Located>,
}

impl DocContext<'_> {
    /// Hands the document's objects to `emit`; `Ok(false)` when it wants no more.
    fn emit_all(
        &self,
        value: &Value,
        emit: &mut dyn FnMut(Result<Manifest, ManifestError>) -> bool,
    ) -> Result<bool, ManifestError> {
        let mut objects = Vec::new();
        self.expand(value, &mut objects)?;
        Ok(objects.into_iter().all(|m| emit(Ok(m))))
    }

    /// Adds the document's objects: itself, or each item of a `kind: List`.
    fn expand(&self, value: &Value, out: &mut Vec<Manifest>) -> Result<(), ManifestError> {
        let items = value
            .as_object()
            .filter(|object| object.get("kind").and_then(Value::as_str) == Some("List"))
            .and_then(|object| object.get("items"));
        let Some(items) = items else {
            out.push(self.check(value, &[])?);
            return Ok(());
        };
        let Some(items) = items.as_array() else {
            return Err(self.not_an_object(items, &[Segment::Key("items".into())]));
        };
        for (index, item) in items.iter().enumerate() {
            let prefix = [Segment::Key("items".into()), Segment::Index(index)];
            out.push(self.check(item, &prefix)?);
        }
        Ok(())
    }

    /// Checks one object; `prefix` is its path inside the document.
    fn check(&self, value: &Value, prefix: &[Segment]) -> Result<Manifest, ManifestError> {
        let Some(object) = value.as_object() else {
            return Err(self.not_an_object(value, prefix));
        };
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind_name = object.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind_name)) = (api_version, kind_name) else {
            return Err(self.missing_type(api_version.is_none(), kind_name.is_none(), prefix));
        };
        let kind = Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == kind_name && kind.api_version() == api_version)
            .ok_or_else(|| ManifestError::UnknownKind {
                file: self.source.to_string(),
                at: self.position(prefix),
                kind: kind_name.to_string(),
                api_version: api_version.to_string(),
            })?;
        let unknown = decode_as(kind, value).map_err(|error| self.invalid(kind, error, prefix))?;
        Ok(Manifest {
            kind,
            value: value.clone(),
            source: self.source.to_string(),
            unknown_fields: unknown.iter().map(|path| path_string(path)).collect(),
        })
    }

    fn position(&self, path: &[Segment]) -> Position {
        Position {
            document: self.number,
            line: self.tree.map(|tree| tree.line_at(path)),
        }
    }

    fn not_an_object(&self, value: &Value, path: &[Segment]) -> ManifestError {
        ManifestError::NotAnObject {
            file: self.source.to_string(),
            at: self.position(path),
            found: switchyard_api::resources::json_type(value),
        }
    }

    fn missing_type(&self, no_version: bool, no_kind: bool, prefix: &[Segment]) -> ManifestError {
        let missing = [
            (no_version, "apiVersion not set"),
            (no_kind, "kind not set"),
        ]
        .into_iter()
        .filter_map(|(is_missing, text)| is_missing.then_some(text))
        .collect::<Vec<_>>()
        .join(", ");
        ManifestError::MissingType {
            file: self.source.to_string(),
            at: self.position(prefix),
            missing,
        }
    }

    fn invalid(
        &self,
        kind: Kind,
        error: serde_path_to_error::Error<serde_json::Error>,
        prefix: &[Segment],
    ) -> ManifestError {
        let mut path = prefix.to_vec();
        path.extend(error.path().iter().filter_map(segment_of));
        ManifestError::Invalid {
            file: self.source.to_string(),
            at: self.position(&path),
            kind,
            api_version: kind.api_version(),
            path: path_string(&path),
            message: error.inner().to_string(),
        }
    }
}

/// Decodes `value` as the concrete type of `kind` to find type errors,
/// with their path; returns the paths of the fields Kubernetes' schema for
/// `kind` does not know.
fn decode_as(
    kind: Kind,
    value: &Value,
) -> Result<Vec<Vec<Segment>>, serde_path_to_error::Error<serde_json::Error>> {
    match kind {
        Kind::Namespace => decode::<Namespace>(value),
        Kind::Service => decode::<Service>(value),
        Kind::Pod => decode::<Pod>(value),
        Kind::Deployment => decode::<Deployment>(value),
        Kind::EndpointSlice => decode::<EndpointSlice>(value),
        Kind::Node => decode::<Node>(value),
        Kind::User => decode::<User>(value),
        Kind::BootstrapToken => decode::<BootstrapToken>(value),
    }?;
    Ok(unknown_fields(kind, value))
}

fn decode<T: DeserializeOwned>(
    value: &Value,
) -> Result<(), serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize::<_, T>(value).map(|_: T| ())
}

/// A step of a decoding error's path.
fn segment_of(segment: &serde_path_to_error::Segment) -> Option<Segment> {
    match segment {
        serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
        serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
        serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => None,
    }
}

/// A field path; `.` for the object itself.
fn path_string(path: &[Segment]) -> String {
    match field_path(path) {
        p if p.is_empty() => ".".to_string(),
        p => p,
    }
}

/// A YAML node with the line it starts on, so an error found later on the
/// JSON value can point back to the line the user wrote.
#[derive(Debug)]
struct Located {
    line: u64,
    node: YamlNode,
}

#[derive(Debug)]
enum YamlNode {
    Scalar(Value),
    Seq(Vec<Located>),
    Map(Vec<(String, Located)>),
}

impl Located {
    /// The line of the deepest node along `path` that exists.
    fn line_at(&self, path: &[Segment]) -> u64 {
        let Some((first, rest)) = path.split_first() else {
            return self.line;
        };
        let child = match (&self.node, first) {
            (YamlNode::Seq(items), Segment::Index(index)) => items.get(*index),
            (YamlNode::Map(entries), Segment::Key(key)) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, child)| child),
            _ => None,
        };
        child.map_or(self.line, |child| child.line_at(rest))
    }

    fn to_value(&self) -> Value {
        match &self.node {
            YamlNode::Scalar(value) => value.clone(),
            YamlNode::Seq(items) => Value::Array(items.iter().map(Located::to_value).collect()),
            YamlNode::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, child)| (key.clone(), child.to_value()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<YamlNode>::deserialize(deserializer)?;
        Ok(Located {
            line: spanned.referenced.line(),
            node: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for YamlNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = YamlNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<YamlNode, E> {
        Ok(YamlNode::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<YamlNode, D::Error> {
        YamlNode::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YamlNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(YamlNode::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlNode, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Located>()? {
            entries.push((key, value));
        }
        Ok(YamlNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"# the frontend, as a user would write it
apiVersion: v1
kind: Service
metadata:
  name: frontend-svc
  labels:
    enabled: yes
spec:
  selector:
    app: frontend
  ports:
  - port: 80
    targetPort: 5000
---
apiVersion: v1
kind: Pod
metadata:
  name: frontend-1
  labels:
    app: frontend
spec:
  nodeName: node-a
  containers:
  - name: web
    ports:
    - containerPort: 5000
status:
  podIP: 10.244.1.5
---
---
apiVersion: v1
kind: Pod
metadata:
  name: frontend-2
  labels:
    app: frontend
status:
  podIP: 10.244.2.7
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
spec:
  replicas: 2
  selector:
    matchLabels:
      app: frontend
  template:
    metadata:
      labels:
        app: frontend
"#;

    fn error(text: &str) -> String {
        match parse(text, "app.yaml") {
            Ok(manifests) => panic!("expected an error, got {manifests:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn reads_multi_document_yaml_skipping_empty_documents() {
        let manifests = parse(APP, "app.yaml").unwrap();
        let kinds: Vec<Kind> = manifests.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Service, Kind::Pod, Kind::Pod, Kind::Deployment]
        );
        let names: Vec<&str> = manifests
            .iter()
            .map(|m| m.value["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["frontend-svc", "frontend-1", "frontend-2", "frontend"]
        );
        assert!(manifests.iter().all(|m| m.source == "app.yaml"));
    }

    #[test]
    fn keeps_values_as_written() {
        let manifests = parse(APP, "app.yaml").unwrap();
        let svc = &manifests[0].value;
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 5000);
        // YAML 1.2: `yes` is a string, not a boolean.
        assert_eq!(svc["metadata"]["labels"]["enabled"], "yes");
        // Left-out fields stay out.
        assert!(svc["spec"].get("type").is_none());
        let deploy = Object::from_value(Kind::Deployment, manifests[3].value.clone()).unwrap();
        assert_eq!(deploy.name(), "frontend");
    }

    use switchyard_api::resources::Object;

    #[test]
    fn reads_json_object_and_list() {
        let one = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}"#;
        let manifests = parse(one, "ns.json").unwrap();
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].kind, Kind::Namespace);

        let list = r#"{
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"}}
            ]
        }"#;
        let kinds: Vec<Kind> = parse(list, "list.json")
            .unwrap()
            .iter()
            .map(|m| m.kind)
            .collect();
        assert_eq!(kinds, [Kind::Service, Kind::Deployment]);
    }

    #[test]
    fn reads_yaml_list() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n";
        let manifests = parse(text, "list.yaml").unwrap();
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].kind, Kind::Pod);
    }

    #[test]
    fn unknown_kind_names_source_and_document() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Foo\nmetadata:\n  name: b\n";
        assert_eq!(
            error(text),
            "unable to recognize \"app.yaml\" (document 2, line 6): no matches for kind \"Foo\" in version \"v1\""
        );
    }

    #[test]
    fn kind_must_be_spelled_out() {
        let text = "apiVersion: v1\nkind: svc\n";
        assert_eq!(
            error(text),
            "unable to recognize \"app.yaml\" (document 1, line 1): no matches for kind \"svc\" in version \"v1\""
        );
    }

    #[test]
    fn api_version_must_match_kind() {
        let text = "apiVersion: v1\nkind: Deployment\nmetadata:\n  name: d\n";
        assert_eq!(
            error(text),
            "unable to recognize \"app.yaml\" (document 1, line 1): no matches for kind \"Deployment\" in version \"v1\""
        );
        let text = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n";
        assert_eq!(parse(text, "s.yaml").unwrap()[0].kind, Kind::EndpointSlice);
    }

    #[test]
    fn missing_kind_is_reported() {
        let text = "metadata:\n  name: x\n";
        assert_eq!(
            error(text),
            "error validating \"app.yaml\" (document 1, line 1): error validating data: [apiVersion not set, kind not set]"
        );
        let text = "apiVersion: v1\nkind: Service\n---\napiVersion: v1\n";
        assert_eq!(
            error(text),
            "error validating \"app.yaml\" (document 2, line 4): error validating data: [kind not set]"
        );
    }

    #[test]
    fn type_errors_name_field_path_and_line() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n  - port: eighty\n";
        assert_eq!(
            error(text),
            "error validating \"app.yaml\" (document 1, line 8): Service in version \"v1\" cannot be handled as a Service: spec.ports[1].port: invalid type: string \"eighty\", expected i32"
        );
    }

    #[test]
    fn type_errors_in_json_list_items_name_the_item() {
        let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": 7}}
        ]}"#;
        match parse(list, "l.json") {
            Err(ManifestError::Invalid { at, path, .. }) => {
                assert_eq!(
                    at,
                    Position {
                        document: 1,
                        line: None
                    }
                );
                assert_eq!(path, "items[0].spec.nodeName");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn documents_must_be_objects() {
        assert_eq!(
            error("- a\n- b\n"),
            "error validating \"app.yaml\" (document 1, line 1): expected an object, found a list"
        );
    }

    #[test]
    fn syntax_errors_name_the_source() {
        let message = error("apiVersion: v1\nkind: [Service\n");
        assert!(message.starts_with("error parsing app.yaml: "), "{message}");
        let message = match parse("{\"kind\": ", "x.json") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error"),
        };
        assert!(message.starts_with("error parsing x.json: "), "{message}");
    }

    #[test]
    fn reads_directories_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let ns =
            |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
        std::fs::write(dir.path().join("b.yaml"), ns("b")).unwrap();
        std::fs::write(dir.path().join("a.yml"), ns("a")).unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let single = dir.path().join("b.yaml").display().to_string();
        let paths = [dir.path().display().to_string(), single.clone()];
        let manifests = read_inputs(&paths).unwrap();
        let names: Vec<&str> = manifests
            .iter()
            .map(|m| m.value["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c", "b"]);
        assert_eq!(manifests[3].source, single);
    }

    #[test]
    fn documents_are_not_counted_against_a_budget() {
        // 20 times the 1,024 documents serde-saphyr allows a whole stream.
        let text: String = (0..20_000)
            .map(|i| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{i}\n---\n"))
            .collect();
        let manifests = parse(&text, "many.yaml").unwrap();
        assert_eq!(manifests.len(), 20_000);
        assert_eq!(manifests[19_999].value["metadata"]["name"], "ns-19999");
    }

    #[test]
    fn a_yaml_bomb_in_one_document_is_still_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            text.push_str(&format!(
                "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = error(&text);
        assert!(err.starts_with("error parsing app.yaml: "), "{err}");
    }

    #[test]
    fn missing_path_reads_like_kubectl() {
        let error = read_inputs(&["/no/such/app.yaml".to_string()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the path \"/no/such/app.yaml\" does not exist"
        );
    }
}
