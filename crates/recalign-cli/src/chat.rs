//! `recalign chat`: the model's greedy answer to one user turn, to see that it loaded and speaks.

use crate::args::{CliResult, ModelArgs, load_model};

/// Prints the greedy completion of `text` sent as a user turn.
pub fn run(text: &str, max_new_tokens: usize, model: &ModelArgs) -> CliResult {
    let lm = load_model(model)?;
    let g = pollster::block_on(lm.chat(text, max_new_tokens)).map_err(|e| e.to_string())?;
    println!("{}", g.text);
    Ok(())
}
