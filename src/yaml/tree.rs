//! Events to a positioned tree, within budgets.
//!
//! The parser is pulled one event at a time and every budget is checked as the event arrives,
//! so a hostile file is refused after at most `max_depth` levels or `max_nodes` nodes of work:
//! 300,000 nested `[` cost microseconds, not minutes. Anchored nodes are shared ([`Rc`]) rather
//! than copied, so aliases never multiply memory.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::runs::{self, Runs};
use crate::quote::quote;

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    fn of(span: &Span) -> Position {
        // The parser counts lines from 1 and columns from 0.
        Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// How a scalar was written: only plain scalars are subject to YAML's type resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

/// One node of a document.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    Scalar {
        value: Cow<'a, str>,
        style: Style,
        tag: Option<Box<str>>,
        at: Position,
    },
    Seq {
        items: Vec<Node<'a>>,
        tag: Option<Box<str>>,
        at: Position,
    },
    Map {
        entries: Vec<(Node<'a>, Node<'a>)>,
        tag: Option<Box<str>>,
        at: Position,
    },
    /// An anchored node, at its definition and at every alias of it.
    Shared(Rc<Node<'a>>),
}

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'s> {
    Key(&'s str),
    Index(usize),
}

impl<'a> Node<'a> {
    /// The node itself, through any anchor sharing.
    pub(crate) fn resolved(&self) -> &Node<'a> {
        match self {
            Node::Shared(inner) => inner.resolved(),
            other => other,
        }
    }

    pub(crate) fn position(&self) -> Position {
        match self.resolved() {
            Node::Scalar { at, .. } | Node::Seq { at, .. } | Node::Map { at, .. } => *at,
            // `resolved` never returns Shared.
            Node::Shared(inner) => inner.position(),
        }
    }

    /// The explicit tag, written as in the file (`!!str`, `!custom`).
    pub(crate) fn tag(&self) -> Option<&str> {
        match self.resolved() {
            Node::Scalar { tag, .. } | Node::Seq { tag, .. } | Node::Map { tag, .. } => {
                tag.as_deref()
            }
            Node::Shared(_) => None,
        }
    }

    /// The text of a scalar.
    pub(crate) fn as_scalar(&self) -> Option<&str> {
        match self.resolved() {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// What this node is, in words for messages ("a list", "a mapping", "text").
    pub(crate) fn kind(&self) -> &'static str {
        match self.resolved() {
            Node::Scalar { .. } => "a single value",
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
            Node::Shared(_) => "a value",
        }
    }

    /// The value under `key` in a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self.resolved() {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The position of the value at `path`, or of the deepest ancestor that exists.
    pub(crate) fn find(&self, path: &[Segment<'_>]) -> Position {
        let mut node = self;
        for step in path {
            let next = match (node.resolved(), step) {
                (Node::Map { .. }, Segment::Key(key)) => node.get(key),
                (Node::Seq { items, .. }, Segment::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.position()
    }
}

/// One document of a stream; `root` is `None` for an empty document.
#[derive(Debug)]
pub struct Document<'a> {
    pub root: Option<Node<'a>>,
    pub at: Position,
}

/// Budgets for one stream (one file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// Most nested sequences and mappings.
    pub max_depth: usize,
    /// Most nodes (scalars, sequences, mappings and aliases) in the whole stream.
    pub max_nodes: usize,
}

/// Why a stream could not be read: the first problem, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub(crate) at: Position,
    pub(crate) message: String,
}

enum Frame<'a> {
    Seq {
        items: Vec<Node<'a>>,
        tag: Option<Box<str>>,
        at: Position,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node<'a>, Node<'a>)>,
        key: Option<Node<'a>>,
        tag: Option<Box<str>>,
        at: Position,
        anchor: usize,
    },
}

/// Parses every document of `text` within `limits`.
///
/// Long runs of one-line quoted entries are read without the parser when it confirms them
/// (see [`super::runs`]); whenever it does not, or finds anything wrong, `text` is parsed as
/// written, so the outcome (tree, positions, errors) is the parser's either way.
pub fn parse<'a>(text: &'a str, limits: &TreeLimits) -> Result<Vec<Document<'a>>, ParseError> {
    let runs = runs::find(text);
    if !runs.is_empty() {
        let condensed = runs.condensed(text);
        let owned = |value: Cow<'_, str>| Cow::Owned(value.into_owned());
        if let Ok(Some(documents)) = build(&condensed, limits, &runs, owned) {
            return Ok(documents);
        }
    }
    build(text, limits, &Runs::default(), |value| value).map(Option::unwrap_or_default)
}

/// The tree of the events the parser reads from `text`, each scalar's text passed through
/// `keep`, with the entries of `runs` put back after their first. `None` when a run is not
/// confirmed.
pub(super) fn build<'t, 'a>(
    text: &'t str,
    limits: &TreeLimits,
    runs: &Runs<'a>,
    keep: impl Fn(Cow<'t, str>) -> Cow<'a, str>,
) -> Result<Option<Vec<Document<'a>>>, ParseError> {
    let mut parser = Parser::new_from_str(text);
    let mut documents = Vec::new();
    let mut stack: Vec<Frame<'a>> = Vec::new();
    let mut anchors: HashMap<usize, Rc<Node<'a>>> = HashMap::new();
    let mut nodes = 0usize;
    let mut document: Option<(Option<Node<'a>>, Position)> = None;
    let mut next_run = runs.runs.iter().peekable();
    let count = |nodes: &mut usize, at: Position| {
        *nodes += 1;
        if *nodes > limits.max_nodes {
            return Err(ParseError {
                at,
                message: format!(
                    "more than {} YAML nodes in one file; move long lists into subscriberFiles or split the file",
                    limits.max_nodes
                ),
            });
        }
        Ok(())
    };
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| ParseError {
            at: Position {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let at = Position::of(&span);
        let starts_seq = matches!(event, Event::SequenceStart(..));
        let counted = matches!(
            event,
            Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Alias(_)
        );
        if counted {
            count(&mut nodes, at)?;
        }
        let complete = match event {
            Event::StreamStart | Event::Nothing => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                // Anchors are scoped to their document.
                anchors.clear();
                document = Some((None, at));
                continue;
            }
            Event::DocumentEnd => {
                if let Some((root, at)) = document.take() {
                    // An empty document (a stray `---`) arrives as a plain null scalar.
                    let root = root.filter(|r| !is_plain_null(r));
                    documents.push(Document { root, at });
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node::Scalar {
                    value: keep(value),
                    style: match style {
                        ScalarStyle::Plain => Style::Plain,
                        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                        _ => Style::Block,
                    },
                    tag: tag.map(|t| tag_text(&t.handle, &t.suffix)),
                    at,
                };
                if let Some(run) = next_run.next_if(|run| run.first.at == at) {
                    // The run's first entry: it must be this scalar, as it was written, first
                    // in a block sequence starting on its line.
                    let confirmed = anchor == 0
                        && matches!(&node, Node::Scalar { value, style: Style::Quoted, tag: None, .. } if *value == run.first.value)
                        && matches!(stack.last(), Some(Frame::Seq { items, at, .. }) if items.is_empty() && *at == run.dash);
                    let Some(Frame::Seq { items, .. }) = stack.last_mut().filter(|_| confirmed)
                    else {
                        return Ok(None);
                    };
                    items.push(node);
                    for entry in &run.rest {
                        count(&mut nodes, entry.at)?;
                        items.push(Node::Scalar {
                            value: Cow::Borrowed(entry.value),
                            style: Style::Quoted,
                            tag: None,
                            at: entry.at,
                        });
                    }
                    continue;
                }
                share(node, anchor, &mut anchors)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(target) => Node::Shared(target.clone()),
                None => {
                    return Err(ParseError {
                        at,
                        message: "alias to an anchor that is not defined earlier in this document"
                            .into(),
                    });
                }
            },
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if stack.len() >= limits.max_depth {
                    return Err(ParseError {
                        at,
                        message: format!(
                            "nested deeper than {} levels; a manifest needs 3",
                            limits.max_depth
                        ),
                    });
                }
                let tag = tag.map(|t| tag_text(&t.handle, &t.suffix));
                stack.push(if starts_seq {
                    Frame::Seq {
                        items: Vec::new(),
                        tag,
                        at,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        tag,
                        at,
                        anchor,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    tag,
                    at,
                    anchor,
                }) => share(Node::Seq { items, tag, at }, anchor, &mut anchors),
                Some(Frame::Map {
                    entries,
                    tag,
                    at,
                    anchor,
                    ..
                }) => {
                    check_unique_keys(&entries)?;
                    share(Node::Map { entries, tag, at }, anchor, &mut anchors)
                }
                None => continue,
            },
        };
        match stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(complete),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(complete),
                Some(k) => entries.push((k, complete)),
            },
            None => {
                if let Some((root, _)) = document.as_mut() {
                    *root = Some(complete);
                }
            }
        }
    }
    if next_run.next().is_some() {
        return Ok(None);
    }
    Ok(Some(documents))
}

fn is_plain_null(node: &Node<'_>) -> bool {
    matches!(node, Node::Scalar { value, style: Style::Plain, tag: None, .. } if super::resolve::is_null(value))
}

fn share<'a>(
    node: Node<'a>,
    anchor: usize,
    anchors: &mut HashMap<usize, Rc<Node<'a>>>,
) -> Node<'a> {
    if anchor == 0 {
        return node;
    }
    let shared = Rc::new(node);
    anchors.insert(anchor, shared.clone());
    Node::Shared(shared)
}

/// `!!str` for the core schema's tags, the handle and suffix as written otherwise.
fn tag_text(handle: &str, suffix: &str) -> Box<str> {
    match handle {
        "tag:yaml.org,2002:" => format!("!!{suffix}"),
        _ => format!("{handle}{suffix}"),
    }
    .into_boxed_str()
}

/// YAML forbids repeated keys; tools disagree on which one wins, so none may.
fn check_unique_keys(entries: &[(Node<'_>, Node<'_>)]) -> Result<(), ParseError> {
    let mut seen: HashMap<&str, Position> = HashMap::with_capacity(entries.len());
    for (key, _) in entries {
        if let Some(text) = key.as_scalar()
            && let Some(first) = seen.insert(text, key.position())
        {
            return Err(ParseError {
                at: key.position(),
                message: format!(
                    "key {} appears twice in one mapping (first on line {}); keep one",
                    quote(text),
                    first.line
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TreeLimits = TreeLimits {
        max_depth: 8,
        max_nodes: 1000,
    };

    fn root(text: &str) -> Node<'_> {
        parse(text, &LIMITS)
            .unwrap()
            .into_iter()
            .next()
            .unwrap()
            .root
            .unwrap()
    }

    #[test]
    fn positions_styles_and_tags_are_kept() {
        let text = "a: plain\nb: \"quoted\"\nc: !!str 12\nlist:\n  - x\n  - |\n    block\n";
        let node = root(text);
        let b = node.get("b").unwrap();
        assert_eq!(b.position(), Position { line: 2, column: 4 });
        assert!(matches!(
            b,
            Node::Scalar {
                style: Style::Quoted,
                ..
            }
        ));
        assert_eq!(node.get("c").unwrap().tag(), Some("!!str"));
        assert_eq!(
            node.find(&[Segment::Key("list"), Segment::Index(1)]),
            Position { line: 7, column: 5 }
        );
        assert_eq!(
            node.find(&[Segment::Key("list"), Segment::Index(7)]),
            Position { line: 5, column: 3 }
        );
    }

    #[test]
    fn documents_are_split_and_empty_ones_kept() {
        let docs = parse("a: 1\n---\n---\nb: 2\n", &LIMITS).unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.is_none());
        assert_eq!(docs[2].at.line, 3);
    }

    #[test]
    fn deep_nesting_is_refused_at_the_limit_not_after_reading_it_all() {
        for text in [
            "[".repeat(300_000),
            "- ".repeat(300_000),
            "{a: ".repeat(300_000),
        ] {
            let err = parse(&text, &LIMITS).unwrap_err();
            assert!(
                err.message.contains("nested deeper than 8") || err.message.contains("recursion"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn too_many_nodes_are_refused() {
        let text = format!("[{}]", "a, ".repeat(2000));
        let err = parse(&text, &LIMITS).unwrap_err();
        assert!(err.message.contains("more than 1000 YAML nodes"), "{err:?}");
    }

    #[test]
    fn aliases_share_the_anchored_node() {
        let node = root("a: &x [1, 2]\nb: *x\n");
        let (Node::Shared(a), Node::Shared(b)) = (node.get("a").unwrap(), node.get("b").unwrap())
        else {
            panic!("not shared")
        };
        assert!(Rc::ptr_eq(a, b));
        let err = parse("a: *nope\n", &LIMITS).unwrap_err();
        assert!(err.message.contains("YAML syntax error") || err.message.contains("alias"));
    }

    #[test]
    fn repeated_keys_are_refused_with_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n", &LIMITS).unwrap_err();
        assert_eq!(err.at.line, 3);
        assert!(err.message.contains("first on line 1"), "{err:?}");
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_content() {
        let node = root("\u{feff}apiVersion: v\n");
        assert_eq!(node.get("apiVersion").unwrap().as_scalar(), Some("v"));
    }
}
