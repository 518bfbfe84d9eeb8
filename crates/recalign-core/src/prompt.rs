//! The recommendation prompt: a user's history and the candidate titles, asking for one title.
//! (The data issue adds paraphrased templates per domain; this is the default movie template.)

use crate::tokenizer::chatml_user;

/// The user-turn text asking which candidate the user will pick next.
pub fn recommendation_request(history: &[String], candidates: &[String]) -> String {
    let list = |items: &[String]| -> String { items.iter().map(|t| format!("- {t}\n")).collect() };
    format!(
        "A user watched these movies, oldest first:\n{}\nCandidates:\n{}\nWhich candidate will the \
         user watch next? Answer with its exact title only.",
        list(history),
        list(candidates)
    )
}

/// The full ChatML prompt: the request as a user turn, then the assistant header.
pub fn recommendation_prompt(history: &[String], candidates: &[String]) -> String {
    chatml_user(&recommendation_request(history, candidates))
}

/// Splits a `"A; B; C"` list, trimming blanks and dropping empty entries.
pub fn split_titles(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_title_once_per_line() {
        let p = recommendation_request(&["A, with comma".into()], &["X".into(), "Y".into()]);
        assert!(p.contains("- A, with comma\n"));
        assert!(p.contains("- X\n- Y\n"));
    }

    #[test]
    fn splits_semicolon_lists() {
        assert_eq!(split_titles(" A ; ;B;"), ["A", "B"]);
        assert!(split_titles(" ; ").is_empty());
    }
}
