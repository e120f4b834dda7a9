//! Where each key and value of a YAML file is, so that every diagnostic
//! can name a line and column.
//!
//! serde only reports positions for the errors it raises itself; the
//! validation rules that run after deserialization know the *path* of what
//! is wrong (`spec.targetGroups[1].containerPort`) but not where it is.
//! This index maps (document, path) to a position. It is built from
//! `yaml-rust2`'s marked event stream, which also gives us the YAML syntax
//! errors with their positions and the document boundaries.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 but columns from 0.
        Pos { line: m.line(), column: m.col() + 1 }
    }
}

/// What a node is, as far as the loader cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Mapping,
    Sequence,
    /// A scalar with its text; YAML's null (`~`, `null`, nothing) included.
    Scalar(String),
    /// An alias (`*name`): its target is not followed.
    Alias,
}

impl NodeKind {
    /// True for YAML's null spellings, which the loader treats as absent.
    pub fn is_null(&self) -> bool {
        matches!(self, NodeKind::Scalar(s) if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }
}

/// One node of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the key is, for mapping entries.
    pub key: Option<Pos>,
    /// Where the value starts.
    pub value: Pos,
    pub kind: NodeKind,
}

/// The positions of one YAML document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocIndex {
    /// Path → node. The root is the empty path `""`; map keys are joined
    /// with `.` and sequence items written `[i]`, as in
    /// `spec.targetGroups[1].containerPort`.
    entries: HashMap<String, Entry>,
    /// Keys of each mapping in file order, for "did you mean" and for
    /// telling apart a key written twice.
    keys: HashMap<String, Vec<String>>,
    /// Keys that appear twice in one mapping, with the second position.
    duplicates: Vec<(String, Pos)>,
}

impl DocIndex {
    /// The node at `path`, if the document has it.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The root node (absent only for an index built by hand).
    pub fn root(&self) -> Option<&Entry> {
        self.entries.get("")
    }

    /// Where to point for a problem with the value at `path`: the value
    /// if it exists, else the nearest ancestor that does (a missing field
    /// is reported at the mapping that should hold it).
    pub fn value_pos(&self, path: &str) -> Pos {
        self.locate(path, |e| e.value)
    }

    /// Where to point for a problem with the key at `path` (an unknown or
    /// duplicated key, a field that conflicts with another): the key
    /// itself, else as [`DocIndex::value_pos`].
    pub fn key_pos(&self, path: &str) -> Pos {
        self.locate(path, |e| e.key.unwrap_or(e.value))
    }

    fn locate(&self, path: &str, pick: impl Fn(&Entry) -> Pos) -> Pos {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.get(p) {
                return pick(e);
            }
            if p.is_empty() {
                return Pos { line: 1, column: 1 };
            }
            p = parent_path(p);
        }
    }

    /// The text of the scalar at `path`, if it is a non-null scalar.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        match self.entries.get(path) {
            Some(Entry { kind: kind @ NodeKind::Scalar(s), .. }) if !kind.is_null() => Some(s),
            _ => None,
        }
    }

    /// The keys of the mapping at `path`, in file order.
    pub fn keys(&self, path: &str) -> &[String] {
        self.keys.get(path).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Keys written twice in one mapping: (path, position of the repeat).
    pub fn duplicate_keys(&self) -> &[(String, Pos)] {
        &self.duplicates
    }
}

/// The parent of a path: `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
pub fn parent_path(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Joins a map key onto a path.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// Joins a sequence index onto a path.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// The positions of every document of a file, in order. Documents are
/// numbered as serde_yaml numbers them, so index `i` here describes the
/// `i`-th document serde_yaml yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileIndex {
    pub docs: Vec<DocIndex>,
}

/// Builds the index of a whole file, or returns its first syntax error.
pub fn index_str(text: &str) -> Result<FileIndex, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, true)
        .map_err(|e| SyntaxError { pos: Pos::from_marker(*e.marker()), message: e.info().to_string() })?;
    Ok(FileIndex { docs: builder.docs })
}

/// A container being filled while walking the event stream.
enum Frame {
    Mapping {
        path: String,
        /// The key read, waiting for its value.
        pending_key: Option<(String, Pos)>,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
    /// A mapping or sequence used as a map key: nothing inside is indexed
    /// (ballast's format has no such keys), it only has to be skipped.
    ComplexKey {
        depth: usize,
    },
}

#[derive(Default)]
struct Builder {
    docs: Vec<DocIndex>,
    current: Option<DocIndex>,
    stack: Vec<Frame>,
}

impl Builder {
    /// Records a node starting at `pos` and returns its path, or `None`
    /// when the node is not indexed (inside a complex key).
    fn place(&mut self, pos: Pos, kind: NodeKind) -> Option<String> {
        let doc = self.current.get_or_insert_with(DocIndex::default);
        // A block container's start event is marked where the parser
        // noticed it (after the first key), so its first child moves its
        // start back to where a reader sees it begin.
        if let Some(Frame::Mapping { path, .. } | Frame::Sequence { path, .. }) = self.stack.last()
            && let Some(parent) = doc.entries.get_mut(path.as_str())
            && pos < parent.value
        {
            parent.value = pos;
        }
        let (path, key) = match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::ComplexKey { .. }) => return None,
            Some(Frame::Sequence { path, next_index }) => {
                let p = join_index(path, *next_index);
                *next_index += 1;
                (p, None)
            }
            Some(Frame::Mapping { path, pending_key }) => match pending_key.take() {
                Some((key, key_pos)) => (join_key(path, &key), Some(key_pos)),
                None => {
                    // This node is a key.
                    match kind {
                        NodeKind::Scalar(key) => {
                            let keys = doc.keys.entry(path.clone()).or_default();
                            if keys.contains(&key) {
                                doc.duplicates.push((join_key(path, &key), pos));
                            } else {
                                keys.push(key.clone());
                            }
                            *pending_key = Some((key, pos));
                        }
                        // A complex or aliased key: keep the pairing of
                        // keys and values right with a placeholder.
                        _ => *pending_key = Some((String::from("?"), pos)),
                    }
                    return None;
                }
            },
        };
        // A repeated key keeps the first position: that is the value
        // serde_yaml would have kept had it not refused the duplicate.
        doc.entries.entry(path.clone()).or_insert(Entry { key, value: pos, kind });
        Some(path)
    }

    /// True when the next node would be a key of the enclosing mapping.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { pending_key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        if let Some(Frame::ComplexKey { depth }) = self.stack.last_mut() {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => *depth += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    *depth -= 1;
                    if *depth == 0 {
                        self.stack.pop();
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.current = Some(DocIndex::default());
                self.stack.clear();
            }
            Event::DocumentEnd => {
                if let Some(doc) = self.current.take() {
                    self.docs.push(doc);
                }
            }
            Event::Scalar(text, ..) => {
                self.place(pos, NodeKind::Scalar(text));
            }
            Event::Alias(_) => {
                self.place(pos, NodeKind::Alias);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                if self.expecting_key() {
                    self.place(pos, NodeKind::Alias);
                    self.stack.push(Frame::ComplexKey { depth: 1 });
                    return;
                }
                let kind = if is_map { NodeKind::Mapping } else { NodeKind::Sequence };
                let path = self.place(pos, kind).unwrap_or_default();
                self.stack.push(if is_map {
                    Frame::Mapping { path, pending_key: None }
                } else {
                    Frame::Sequence { path, next_index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    const TWO_DOCS: &str = "\
# leading comment
apiVersion: ballast.dev/v1alpha1
kind: Service
spec:
  tasks:
    min: 2
  targetGroups:
    - targetGroup: a
      containerPort: 80
    - targetGroup: b
      containerPort: 8000
---
kind: Capacity
spec: {cluster: c, zones: [{subnet: s1}]}
";

    #[test]
    fn maps_paths_to_key_and_value_positions() {
        let index = index_str(TWO_DOCS).unwrap();
        assert_eq!(index.docs.len(), 2);
        let d0 = &index.docs[0];
        // (path, key position, value position)
        let cases: &[(&str, Option<Pos>, Pos)] = &[
            ("", None, p(2, 1)),
            ("apiVersion", Some(p(2, 1)), p(2, 13)),
            ("kind", Some(p(3, 1)), p(3, 7)),
            ("spec", Some(p(4, 1)), p(5, 3)),
            ("spec.tasks.min", Some(p(6, 5)), p(6, 10)),
            ("spec.targetGroups", Some(p(7, 3)), p(8, 5)),
            ("spec.targetGroups[0]", None, p(8, 7)),
            ("spec.targetGroups[1].containerPort", Some(p(11, 7)), p(11, 22)),
        ];
        for (path, key, value) in cases {
            let e = d0.get(path).unwrap_or_else(|| panic!("no entry for {path:?}"));
            assert_eq!((e.key, e.value), (*key, *value), "{path}");
        }
        assert_eq!(d0.scalar("kind"), Some("Service"));
        assert_eq!(d0.scalar("spec.targetGroups[1].containerPort"), Some("8000"));
    }

    #[test]
    fn second_document_positions_are_file_absolute_and_flow_style_works() {
        let index = index_str(TWO_DOCS).unwrap();
        let d1 = &index.docs[1];
        assert_eq!(d1.scalar("kind"), Some("Capacity"));
        assert_eq!(d1.key_pos("kind"), p(13, 1));
        assert_eq!(d1.value_pos("spec.cluster"), p(14, 17));
        assert_eq!(d1.value_pos("spec.zones[0].subnet"), p(14, 37));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let index = index_str(TWO_DOCS).unwrap();
        let d0 = &index.docs[0];
        assert_eq!(d0.value_pos("spec.tasks.max"), d0.value_pos("spec.tasks"));
        assert_eq!(d0.key_pos("spec.tasks.max"), p(5, 3));
        assert_eq!(d0.key_pos("spec.targetGroups[1].containerName"), p(10, 7));
        assert_eq!(d0.key_pos("metadata.name"), p(2, 1));
        assert_eq!(d0.keys("spec.targetGroups[0]"), ["targetGroup", "containerPort"]);
    }

    #[test]
    fn counts_documents_like_serde_yaml() {
        // (text, number of documents, root kinds)
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("# only a comment\n", 0),
            ("a: 1\n", 1),
            ("---\na: 1\n", 1),
            ("a: 1\n---\nb: 2\n", 2),
            ("---\n---\na: 1\n", 2),
            ("a: 1\n...\n---\nb: 2\n", 2),
            ("a: 1\n---\n", 2),
        ];
        for (text, n) in cases {
            let index = index_str(text).unwrap();
            assert_eq!(index.docs.len(), *n, "{text:?}");
            let serde_docs = serde_yaml::Deserializer::from_str(text)
                .map(|d| {
                    use serde::Deserialize;
                    serde_yaml::Value::deserialize(d).unwrap()
                })
                .collect::<Vec<_>>();
            if *n > 0 {
                assert_eq!(serde_docs.len(), *n, "serde_yaml disagrees on {text:?}");
                for (doc, value) in index.docs.iter().zip(&serde_docs) {
                    assert_eq!(doc.root().unwrap().kind.is_null(), value.is_null(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn records_repeated_keys() {
        let index = index_str("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(index.docs[0].duplicate_keys(), [("b.c".to_string(), p(4, 3))]);
        // The first value's position is kept.
        assert_eq!(index.docs[0].value_pos("b.c"), p(3, 6));
    }

    #[test]
    fn complex_keys_are_skipped_without_confusing_later_paths() {
        let index = index_str("? [a, b]\n: 1\nc: 2\n").unwrap();
        assert_eq!(index.docs[0].value_pos("c"), p(3, 4));
        assert_eq!(index.docs[0].scalar("c"), Some("2"));
    }

    #[test]
    fn reports_syntax_errors_with_their_position() {
        let cases: &[(&str, usize)] =
            &[("a: 1\nb: [1, 2\n", 3), ("a: 1\n  b: 2\n", 2), ("a: \"unterminated\n", 1), ("a: 1\nb: @x\n", 2)];
        for (text, line) in cases {
            let err = index_str(text).expect_err(text);
            assert_eq!(err.pos.line, *line, "{text:?}: {err:?}");
            assert!(!err.message.is_empty());
        }
    }
}
