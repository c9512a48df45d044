//! kubectl's table layout: left-aligned columns, each as wide as its widest
//! cell plus 3 spaces and at least 6 (kubectl's tabwriter: minwidth 6,
//! padding 3), the last column unpadded so lines carry no trailing blanks.

use chrono::{DateTime, Utc};
use switchyard_api::resources::{Kind, Object};

use switchyard_api::columns;

const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

/// How `swctl get` lays out its table, from its flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`: extra columns.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first (namespaced kinds only, as kubectl).
    pub all_namespaces: bool,
    /// Names as `service/frontend-svc`, as kubectl does when several kinds are asked for.
    pub with_kind_prefix: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--show-labels`: a last LABELS column, `key=value,…`.
    pub show_labels: bool,
}

/// One table per kind (in order of first appearance, objects in the order
/// given), separated by a blank line. Empty input gives an empty string: the
/// caller prints kubectl's `No resources found in … namespace.`
pub fn print_table(objects: &[Object], opts: &TableOptions, now: DateTime<Utc>) -> String {
    let mut kinds: Vec<Kind> = Vec::new();
    for object in objects {
        if !kinds.contains(&object.kind()) {
            kinds.push(object.kind());
        }
    }
    let tables: Vec<String> = kinds
        .into_iter()
        .map(|kind| {
            let of_kind = objects.iter().filter(|o| o.kind() == kind);
            let rows: Vec<Vec<String>> = of_kind.map(|o| object_row(o, opts, now)).collect();
            Aligner::default().render(&with_header(kind, opts, rows))
        })
        .collect();
    tables.join("\n")
}

/// `get -w`: the first call prints a header and rows; later calls print rows
/// aligned to the columns already shown (widths only grow, like kubectl's
/// `RememberWidths`). A change of kind starts a new table.
#[derive(Debug, Clone, Default)]
pub struct WatchPrinter {
    opts: TableOptions,
    kind: Option<Kind>,
    aligner: Aligner,
}

impl WatchPrinter {
    pub fn new(opts: TableOptions) -> WatchPrinter {
        WatchPrinter {
            opts,
            ..WatchPrinter::default()
        }
    }

    /// Rows for `objects` (the initial list, then one object per event).
    pub fn print(&mut self, objects: &[Object], now: DateTime<Utc>) -> String {
        let mut out = String::new();
        for object in objects {
            let row = object_row(object, &self.opts, now);
            let kind = object.kind();
            if self.kind == Some(kind) {
                out.push_str(&self.aligner.render(&[row]));
                continue;
            }
            // A new table: size its columns for the whole batch, as `get` would.
            self.kind = Some(kind);
            self.aligner = Aligner::default();
            let batch = objects.iter().filter(|o| o.kind() == kind);
            let batch = batch.map(|o| object_row(o, &self.opts, now)).collect();
            self.aligner.reserve(&with_header(kind, &self.opts, batch));
            out.push_str(
                &self
                    .aligner
                    .render(&with_header(kind, &self.opts, vec![row])),
            );
        }
        out
    }
}

/// The header row (unless `no_headers`) followed by `rows`.
fn with_header(kind: Kind, opts: &TableOptions, rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    if opts.no_headers {
        return rows;
    }
    let labels = opts.show_labels.then(|| "LABELS".to_string());
    let titles = columns::header(kind, opts.wide)
        .into_iter()
        .map(String::from)
        .chain(labels);
    let header = decorate(
        kind,
        opts,
        "NAMESPACE".to_string(),
        columns::name_title(kind).to_string(),
        titles.collect(),
    );
    let mut lines = vec![header];
    lines.extend(rows);
    lines
}

fn object_row(object: &Object, opts: &TableOptions, now: DateTime<Utc>) -> Vec<String> {
    let kind = object.kind();
    let name = if opts.with_kind_prefix {
        format!("{}/{}", kind.singular(), object.name())
    } else {
        object.name().to_string()
    };
    let mut cells = columns::cells(object, opts.wide, now);
    if opts.show_labels {
        cells.push(columns::format_labels(Some(&object.meta().labels)));
    }
    decorate(kind, opts, object.namespace().to_string(), name, cells)
}

/// Puts NAMESPACE (when shown) and NAME before the kind's own cells.
pub(super) fn decorate(
    kind: Kind,
    opts: &TableOptions,
    namespace: String,
    name: String,
    cells: Vec<String>,
) -> Vec<String> {
    let mut row = Vec::with_capacity(cells.len() + 2);
    if opts.all_namespaces && kind.is_namespaced() {
        row.push(namespace);
    }
    row.push(name);
    row.extend(cells);
    row
}

/// Column widths, kept between renders so streamed rows stay aligned.
#[derive(Debug, Clone, Default)]
pub(super) struct Aligner {
    widths: Vec<usize>,
}

impl Aligner {
    /// Widens columns to fit `lines` without printing them.
    fn reserve(&mut self, lines: &[Vec<String>]) {
        for line in lines {
            let padded = line.split_last().map_or(&[][..], |(_, rest)| rest);
            for (column, cell) in padded.iter().enumerate() {
                if self.widths.len() <= column {
                    self.widths.push(MIN_WIDTH);
                }
                let width = cell.chars().count() + PADDING;
                self.widths[column] = self.widths[column].max(width);
            }
        }
    }

    pub(super) fn render(&mut self, lines: &[Vec<String>]) -> String {
        self.reserve(lines);
        let mut out = String::new();
        for line in lines {
            for (column, cell) in line.iter().enumerate() {
                if column + 1 == line.len() {
                    out.push_str(cell);
                } else {
                    let width = self.widths[column];
                    out.push_str(&format!("{cell:<width$}"));
                }
            }
            out.push('\n');
        }
        out
    }
}
