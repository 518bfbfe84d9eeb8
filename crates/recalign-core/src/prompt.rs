//! The recommendation prompt: a user's history and the candidate titles, asking for one title.
//! Several paraphrases per domain (S-DPO trains on 10-15) keep a fine-tuned model from keying on
//! one wording; template 0 of `movies` is the playground's default.

use serde::{Deserialize, Serialize};

use crate::data::Domain;
use crate::tokenizer::{TextTokenizer, chatml_user};

/// Paraphrases, with `{past}` / `{verb}` / `{noun}` / `{one}` filled per domain and
/// `{history}` / `{candidates}` replaced by one title per line.
const TEMPLATES: [&str; 6] = [
    "A user {past} these {noun}, oldest first:\n{history}\nCandidates:\n{candidates}\nWhich candidate will the user {verb} next? Answer with its exact title only.",
    "Here is what someone {past} recently, from oldest to newest:\n{history}\nFrom the list below, pick the one {one} they will {verb} next.\n{candidates}\nReply with the exact title and nothing else.",
    "{Noun} the user {past} (oldest first):\n{history}\nOptions:\n{candidates}\nPredict the next {one} the user will {verb}. Give only its title, exactly as listed.",
    "The user has {past} the following {noun} in this order:\n{history}\nChoose the {one} from these candidates that the user is most likely to {verb} next:\n{candidates}\nAnswer with the title only.",
    "Given that a user {past}:\n{history}\nwhich of these {noun} would they {verb} next?\n{candidates}\nWrite just the exact title.",
    "Recommend one {one} to a user who {past} these {noun} (oldest first):\n{history}\nYou must choose from:\n{candidates}\nAnswer with the chosen title exactly, nothing more.",
];

/// Number of paraphrases per domain.
pub const TEMPLATE_COUNT: usize = TEMPLATES.len();

/// Which wording to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PromptStyle {
    /// Item kind (picks the verbs and nouns).
    pub domain: Domain,
    /// A fixed template, or `None` to vary it per example (seeded by user and target).
    pub template: Option<usize>,
}

fn vocabulary(domain: Domain) -> [&'static str; 5] {
    // past, verb, noun, Noun, one
    match domain {
        Domain::Movies => ["watched", "watch", "movies", "Movies", "movie"],
        Domain::Music => ["listened to", "listen to", "artists", "Artists", "artist"],
        Domain::Games => ["played", "play", "games", "Games", "game"],
        Domain::Books => ["read", "read", "books", "Books", "book"],
    }
}

/// The user-turn text of template `template` (modulo [`TEMPLATE_COUNT`]) for `domain`.
pub fn request(
    domain: Domain,
    template: usize,
    history: &[String],
    candidates: &[String],
) -> String {
    let list = |items: &[String]| -> String { items.iter().map(|t| format!("- {t}\n")).collect() };
    let [past, verb, noun, noun_cap, one] = vocabulary(domain);
    // Titles are substituted last so that a title containing "{verb}" stays verbatim.
    TEMPLATES[template % TEMPLATE_COUNT]
        .replace("{past}", past)
        .replace("{verb}", verb)
        .replace("{noun}", noun)
        .replace("{Noun}", noun_cap)
        .replace("{one}", one)
        .replacen("{history}", &list(history), 1)
        .replacen("{candidates}", &list(candidates), 1)
}

/// The template an example gets under `style`: fixed, or a hash of (user, target).
pub fn template_for(style: PromptStyle, user: u32, target: u32) -> usize {
    style.template.unwrap_or_else(|| {
        let h = (u64::from(user) << 32 | u64::from(target)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 59) as usize % TEMPLATE_COUNT
    })
}

/// The default request (movies, template 0), as the playground shows it.
pub fn recommendation_request(history: &[String], candidates: &[String]) -> String {
    request(Domain::Movies, 0, history, candidates)
}

/// The full ChatML prompt: the request as a user turn, then the assistant header.
pub fn recommendation_prompt(history: &[String], candidates: &[String]) -> String {
    chatml_user(&recommendation_request(history, candidates))
}

/// How a ranking prompt is written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    /// LLaRA's: a ChatML user turn with the history and the candidate list, answered by a title
    /// and end-of-sequence (the papers' protocol; also what generation and ValidRatio use). The
    /// answer's title is tokenised as its list entry holds it, after a space
    /// ([`llara_answer_ids`]), so an answer is a copy of listed tokens.
    #[default]
    Llara,
    /// The history as a plain document, one title per line, and each candidate scored as the
    /// next line. About a quarter of the tokens of the LLaRA prompt, no candidate list for the
    /// model to copy from, and every title tokenised exactly as its answer is.
    Compact,
}

impl PromptFormat {
    /// Whether this is LLaRA's format (the default, left out of files).
    pub fn is_llara(&self) -> bool {
        *self == PromptFormat::Llara
    }
}

/// The ids of `title` as LLaRA's answer (end-of-sequence not included): the title as a list
/// line `- {title}` holds it, a space and the title tokenised together. Empty for a blank title.
pub fn llara_answer_ids(tok: &TextTokenizer, title: &str) -> crate::Result<Vec<u32>> {
    if title.trim().is_empty() {
        return Ok(Vec::new());
    }
    tok.encode(&format!(" {title}"))
}

/// The text of a compact document: the header, then each title on its own line. Its tokens are
/// [`compact_ids`]' wherever a title tokenises the same alone as after a newline (every
/// ML-100K title does; `tests/ml100k.rs` checks).
pub fn compact_text(domain: Domain, titles: &[String]) -> String {
    let mut text = compact_header(domain);
    for t in titles {
        text.push_str(t);
        text.push('\n');
    }
    text
}

/// The first line of a compact document.
pub fn compact_header(domain: Domain) -> String {
    let [past, _, noun, _, _] = vocabulary(domain);
    let mut noun = noun.to_string();
    if let Some(first) = noun.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    format!("{noun} a user {past}, in order:\n")
}

/// The ids of `title` as a compact line: the title tokenised on its own, then a newline. A
/// history line and a candidate answer are both this, so what the model reads in the history
/// is exactly what it is asked to produce.
pub fn compact_line_ids(tok: &TextTokenizer, title: &str) -> crate::Result<Vec<u32>> {
    let mut ids = tok.encode(title)?;
    ids.extend(tok.encode("\n")?);
    Ok(ids)
}

/// The ids of a compact document: the header, then one line per title.
pub fn compact_ids(
    tok: &TextTokenizer,
    domain: Domain,
    titles: &[String],
) -> crate::Result<Vec<u32>> {
    let mut ids = tok.encode(&compact_header(domain))?;
    for t in titles {
        ids.extend(compact_line_ids(tok, t)?);
    }
    Ok(ids)
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
    fn every_template_fills_every_slot_for_every_domain() {
        let h = vec!["Odd {verb} title".to_string()];
        let c = vec!["C1".to_string(), "C2".to_string()];
        for domain in Domain::ALL {
            let mut seen = std::collections::HashSet::new();
            for t in 0..TEMPLATE_COUNT {
                let p = request(domain, t, &h, &c);
                assert!(p.contains("- Odd {verb} title\n"), "{p}");
                assert!(p.contains("- C1\n- C2\n"));
                let without_title = p.replace("Odd {verb} title", "");
                assert!(!without_title.contains('{'), "unfilled slot in {p}");
                assert!(seen.insert(p));
            }
        }
    }

    #[test]
    fn per_example_templates_vary_and_are_stable() {
        let style = PromptStyle::default();
        let picks: std::collections::HashSet<usize> =
            (0..200).map(|u| template_for(style, u, 7)).collect();
        assert_eq!(picks.len(), TEMPLATE_COUNT);
        assert_eq!(template_for(style, 3, 9), template_for(style, 3, 9));
        assert_eq!(
            template_for(
                PromptStyle {
                    template: Some(2),
                    ..style
                },
                3,
                9
            ),
            2
        );
    }

    #[test]
    fn splits_semicolon_lists() {
        assert_eq!(split_titles(" A ; ;B;"), ["A", "B"]);
        assert!(split_titles(" ; ").is_empty());
    }
}
