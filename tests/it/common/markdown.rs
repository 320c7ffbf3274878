//! Markdown as GitHub reads it, for the tests of the README and the guide: the anchors its
//! headings get and the links it holds, code blocks and code spans ignored.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// What one Markdown file offers and points at.
pub struct Markdown {
    /// The `#fragment` of each heading, as GitHub makes them (duplicates numbered `-1`, `-2`).
    pub anchors: Vec<String>,
    /// The destination of every link and image, as written.
    pub links: Vec<String>,
}

pub fn read(text: &str) -> Markdown {
    let mut anchors: Vec<String> = Vec::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let slug = slug(&heading.take().unwrap_or_default());
                let same = anchors
                    .iter()
                    .filter(|a| {
                        *a == &slug
                            || a.strip_prefix(&slug)
                                .and_then(|rest| rest.strip_prefix('-'))
                                .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .count();
                anchors.push(if same == 0 {
                    slug
                } else {
                    format!("{slug}-{same}")
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                links.push(dest_url.to_string())
            }
            _ => {}
        }
    }
    Markdown { anchors, links }
}

/// GitHub's anchor for a heading's text: lower case, punctuation dropped (but `-` and `_`),
/// each space a `-`.
pub fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}
