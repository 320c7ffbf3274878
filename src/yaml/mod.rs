//! YAML as subsync reads it: manifests (untrusted, from pull requests) and the emulator's
//! configuration.
//!
//! One parser, saphyr-parser, builds a positioned tree ([`tree`]) within budgets; values are
//! then typed through serde ([`de`]) with strict scalars ([`resolve`]). Positions come from the
//! same parse, so a value that parsed but is wrong (an invalid UserID) is located without
//! reading the file twice.
//!
//! Why not serde_yaml: it is deprecated upstream, has no budgets (a small file of nested `[`
//! took minutes to refuse), reads `0123` or `yes` into a string field as their literal text
//! where other tools see numbers and booleans, and gives no positions for values that parsed.
//! serde-saphyr was considered: it has budgets and spans, but its knobs do not express "refuse
//! what YAML 1.1 or 1.2 would type, except safe integers", its messages quote values whole,
//! and it is forty thousand lines to audit for what is a few hundred here.

mod de;
pub(crate) mod resolve;
mod runs;
mod suggest;
mod tree;

pub use de::from_node;
pub(crate) use de::{Detail, Error, text_item};
pub(crate) use suggest::closest;
pub(crate) use tree::{Document, Node, Position, Segment};
pub use tree::{TreeLimits, parse};
