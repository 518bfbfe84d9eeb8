//! Fetching the default assets and serving the built page, without the model: `./x serve`
//! needs only these two, and building them without Burn takes seconds instead of the native
//! CLI's minutes on a fresh machine. `recalign fetch|serve` call the same functions.

mod fetch;
mod serve;

pub use fetch::fetch;
pub use serve::{CSP, serve};

/// Errors are messages for the person at the terminal.
pub type Result<T = ()> = std::result::Result<T, String>;
