//! Finds the line and column of a value inside a YAML document, for messages about values that
//! parsed fine but are wrong (an invalid UserID, a duplicate account).
//!
//! serde_yaml reports positions only for its own errors, so this walks yaml-rust2's marked
//! events. It runs only when there is something to report, never on the success path.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Position {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// The marked tree of one document.
#[derive(Debug)]
enum Node {
    Scalar(String, Position),
    Seq(Vec<Node>, Position),
    Map(Vec<(String, Node)>, Position),
    Other(Position),
}

impl Node {
    fn position(&self) -> Position {
        match self {
            Node::Scalar(_, p) | Node::Seq(_, p) | Node::Map(_, p) | Node::Other(p) => *p,
        }
    }
}

/// The documents of one file, parsed once and queried many times.
pub struct Locator {
    documents: Vec<Option<Node>>,
}

impl Locator {
    pub fn new(text: &str) -> Locator {
        let mut parser = Parser::new_from_str(text);
        let mut documents = Vec::new();
        loop {
            match parser.next_token() {
                Ok((Event::DocumentStart, _)) => documents.push(read_node(&mut parser)),
                Ok((Event::StreamEnd, _)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Locator { documents }
    }

    /// The position of the value at `path` in document `doc` (0-based), or of the deepest
    /// ancestor that exists.
    pub fn find(&self, doc: usize, path: &[Step<'_>]) -> Option<Position> {
        let mut node = self.documents.get(doc)?.as_ref()?;
        for step in path {
            let next = match (node, step) {
                (Node::Map(entries, _), Step::Key(key)) => {
                    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
                }
                (Node::Seq(items, _), Step::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        Some(node.position())
    }
}

/// The first YAML syntax error in `text`, if any.
pub fn syntax_error(text: &str) -> Option<(Position, String)> {
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return None,
            Ok(_) => {}
            Err(e) => {
                return Some((
                    (*e.marker()).into(),
                    format!("YAML syntax error: {}", e.info()),
                ));
            }
        }
    }
}

fn read_node(parser: &mut Parser<std::str::Chars<'_>>) -> Option<Node> {
    let (event, marker) = parser.next_token().ok()?;
    read_from(parser, event, marker.into())
}

fn read_from(
    parser: &mut Parser<std::str::Chars<'_>>,
    event: Event,
    pos: Position,
) -> Option<Node> {
    Some(match event {
        Event::Scalar(value, ..) => Node::Scalar(value, pos),
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (event, marker) = parser.next_token().ok()?;
                if event == Event::SequenceEnd {
                    break;
                }
                items.push(read_from(parser, event, marker.into())?);
            }
            Node::Seq(items, pos)
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let (event, marker) = parser.next_token().ok()?;
                if event == Event::MappingEnd {
                    break;
                }
                let key = read_from(parser, event, marker.into())?;
                let (event, marker) = parser.next_token().ok()?;
                let value = read_from(parser, event, marker.into())?;
                let key = match key {
                    Node::Scalar(k, _) => k,
                    _ => String::new(),
                };
                entries.push((key, value));
            }
            Node::Map(entries, pos)
        }
        Event::DocumentEnd => return None,
        _ => Node::Other(pos),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_in_later_documents() {
        let text = "a: 1\n---\nspec:\n  subscribers:\n    - x\n    - \"y\"\n";
        let loc = Locator::new(text);
        let p = loc
            .find(
                1,
                &[Step::Key("spec"), Step::Key("subscribers"), Step::Index(1)],
            )
            .unwrap();
        assert_eq!(p, Position { line: 6, column: 7 });
        assert_eq!(
            loc.find(0, &[Step::Key("a")]).unwrap(),
            Position { line: 1, column: 4 }
        );
    }

    #[test]
    fn missing_steps_fall_back_to_the_nearest_ancestor() {
        let loc = Locator::new("spec:\n  x: 1\n");
        assert_eq!(
            loc.find(0, &[Step::Key("spec"), Step::Key("nope")])
                .unwrap()
                .line,
            2
        );
    }
}
