//! Property: the manifest reader never panics, whatever it is fed: raw
//! bytes (not UTF-8 either) or YAML-shaped text put together at random
//! from the pieces of real manifests, anchors, flow syntax and JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use swctl::manifest::{parse, read_inputs};

const PIECES: [&str; 24] = [
    "apiVersion: v1\n",
    "kind: Service\n",
    "kind: Pod\n",
    "---\n",
    "...\n",
    "metadata:\n  name: web\n",
    "  namespace: default\n",
    "spec:\n  ports:\n  - port: 70000\n",
    "  selector: {app: web}\n",
    "- ",
    "  ",
    "\t",
    ": ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a ",
    "!!str ",
    "\"\\u00",
    "{\"kind\": \"Service\", \"apiVersion\": \"v1\"}\n",
    "\u{feff}",
    "\n",
];

/// A whole manifest the reader takes.
const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

/// Random pieces, or valid documents with one random piece spliced in.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = || proptest::sample::select(PIECES.to_vec());
    prop_oneof![
        proptest::collection::vec(piece(), 0..64).prop_map(|pieces| pieces.concat()),
        (1usize..4, piece(), any::<proptest::sample::Index>()).prop_map(|(docs, piece, at)| {
            let text = vec![SERVICE; docs].join("---\n");
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}{piece}{}", &text[..cut], &text[cut..])
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn yaml_shaped_text_is_read_or_refused(text in yamlish()) {
        let _ = parse(&text, "fuzz.yaml");
    }

    #[test]
    fn raw_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.yaml");
        std::fs::write(&path, &bytes).unwrap();
        let _ = read_inputs(&[path.to_string_lossy().into_owned()]);
    }
}

/// The generator reaches the reader's interesting paths: some texts parse
/// into objects and some are refused.
#[test]
fn generated_texts_both_parse_and_fail() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..500 {
        let text = yamlish().new_tree(&mut runner).unwrap().current();
        match parse(&text, "fuzz.yaml") {
            Ok(objects) if !objects.is_empty() => parsed += 1,
            Ok(_) => {}
            Err(_) => refused += 1,
        }
    }
    assert!(parsed > 5, "{parsed} parsed");
    assert!(refused > 100, "{refused} refused");
}
