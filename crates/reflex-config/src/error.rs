//! What is wrong with a config file: each problem with its file and place (line, section, key,
//! layer) as data. `Display` is the one line `reflexd` prints.

use std::fmt;
use std::path::PathBuf;

/// One problem with a config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{place}{what}", file.display())]
pub struct Error {
    /// The config file.
    pub file: PathBuf,
    /// Where in it.
    pub place: Place,
    /// What is wrong there.
    pub what: String,
}

/// Where in a config file a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (it cannot be read, it is not a table, …).
    File,
    /// A line and column of the TOML text.
    Line {
        /// From 1.
        line: usize,
        /// From 1, in characters.
        column: usize,
    },
    /// A section: `source`, `window`, `sinks[1]`, …
    Section(String),
    /// A key of a section, as a path (`format`, `layers[0].name`).
    Key {
        /// The section.
        section: String,
        /// The key.
        key: String,
    },
    /// A `[[model.layers]]` entry.
    Layer {
        /// From 1, in the file's order.
        number: usize,
        /// Its `name`, once known.
        name: Option<String>,
    },
}

impl fmt::Display for Place {
    /// The text between the file name and the problem: `:3:7: `, `: [window] `, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File => f.write_str(": "),
            Place::Line { line, column } => write!(f, ":{line}:{column}: "),
            Place::Section(s) => write!(f, ": [{s}] "),
            Place::Key { section, key } => write!(f, ": [{section}] {key}: "),
            Place::Layer { number, name: None } => write!(f, ": [[model.layers]] #{number}: "),
            Place::Layer { number, name: Some(name) } => write!(f, ": [[model.layers]] #{number}: layer {name}: "),
        }
    }
}

/// Every problem found in a config file, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One problem a line: reflexd prefixes each with `error: `.
        f.write_str(&self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    }
}

impl std::error::Error for Errors {}
