//! Reading a generated answer against the candidate set (method.md section 2): an answer is valid
//! iff exactly one candidate title occurs in it.

/// The candidate a generated `answer` names, if exactly one does.
///
/// Matching is a case-insensitive substring test; a title that is a substring of another matched
/// title counts only if the longer one is absent (so "Babe" inside "Babe: Pig in the City" does
/// not make the answer ambiguous).
pub fn named_candidate(answer: &str, candidates: &[String]) -> Option<usize> {
    let answer = answer.to_lowercase();
    let lower: Vec<String> = candidates.iter().map(|c| c.trim().to_lowercase()).collect();
    let present: Vec<usize> = (0..lower.len())
        .filter(|&i| !lower[i].is_empty() && answer.contains(&lower[i]))
        .collect();
    let maximal: Vec<usize> = present
        .iter()
        .copied()
        .filter(|&i| {
            !present
                .iter()
                .any(|&j| j != i && lower[j].len() > lower[i].len() && lower[j].contains(&lower[i]))
        })
        .collect();
    match maximal.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exactly_one_title_is_valid() {
        let cands = c(&["Heat", "Casino", "Babe"]);
        assert_eq!(named_candidate("I'd pick casino.", &cands), Some(1));
        assert_eq!(named_candidate("Heat or Casino", &cands), None);
        assert_eq!(named_candidate("Jumanji", &cands), None);
    }

    #[test]
    fn a_title_inside_a_longer_matched_title_does_not_count() {
        let cands = c(&["Babe", "Babe: Pig in the City", "Heat"]);
        assert_eq!(named_candidate("Babe: Pig in the City", &cands), Some(1));
        assert_eq!(named_candidate("Babe", &cands), Some(0));
    }
}
