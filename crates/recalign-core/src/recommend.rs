//! Recommending from the whole catalogue, not from 20 given candidates: what a person who
//! types their own history expects. The 20-candidate protocol stays for evaluation.
//!
//! Scoring all 1,682 ML-100K titles in full is about 17k answer tokens through every layer (a
//! minute on two cores), so the titles are searched instead: they form a token trie (each
//! title as its compact line, title tokens then the newline, the answer the compact ranking
//! scores), and a beam of prefixes walks it one token at a time from the compact prompt over
//! the history. A prefix's summed log-probability only falls as tokens are added, so once `top`
//! titles are complete every prefix scoring below the `top`-th is dropped without loss; only
//! the beam width can drop a prefix that might still have won, and the result says whether it
//! did (`exact`). Each depth reruns the beam's rows from the prompt's cached keys and values
//! (rows of depth + 1 tokens), which is simpler than a cache per beam and cheap at title
//! lengths.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::hybrid::{ItemCatalogue, title_key};
use crate::lm::read_f32;
use crate::model::{KvCache, Slots};
use crate::{Error, LanguageModel, Result, prompt};

/// How wide and how far the search goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// How many titles to return.
    pub top: usize,
    /// Most prefixes carried from one token to the next.
    pub beam: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { top: 10, beam: 32 }
    }
}

/// One recommended title.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recommendation {
    /// 1-based rank.
    pub rank: usize,
    /// The catalogue title.
    pub title: String,
    /// Summed log-probability of its compact line (title and newline) after the history.
    pub log_prob: f32,
    /// Tokens in that line.
    pub n_tokens: usize,
}

/// The search's result and what it cost.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CatalogueRecommendations {
    /// Best first.
    pub recommendations: Vec<Recommendation>,
    /// True when no prefix that could still have entered the list was cut by the beam width:
    /// the list is then exactly the `top` best titles by summed log-probability.
    pub exact: bool,
    /// Titles searched (the catalogue less the history).
    pub titles: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Token positions run through the model after the prompt (all depths' rows).
    pub tokens_run: usize,
}

/// A trie node: its children by token and the titles whose line ends here.
#[derive(Default)]
struct Node {
    children: Vec<(u32, usize)>,
    ends: Vec<usize>,
}

fn trie(lines: &[Vec<u32>]) -> Vec<Node> {
    let mut nodes = vec![Node::default()];
    for (title, line) in lines.iter().enumerate() {
        let mut at = 0;
        for &token in line {
            at = match nodes[at].children.iter().find(|(t, _)| *t == token) {
                Some(&(_, child)) => child,
                None => {
                    nodes.push(Node::default());
                    let child = nodes.len() - 1;
                    nodes[at].children.push((token, child));
                    child
                }
            };
        }
        nodes[at].ends.push(title);
    }
    nodes
}

/// [`recommend`] over a loaded dataset's whole catalogue, with the item table a hybrid model
/// carries: what the CLI and the page both search.
pub async fn recommend_in(
    lm: &LanguageModel,
    log: &crate::data::InteractionLog,
    history: &[String],
    options: SearchOptions,
) -> Result<CatalogueRecommendations> {
    let titles: Vec<String> = log
        .catalogue
        .items()
        .iter()
        .map(|i| i.title.clone())
        .collect();
    let items = crate::hybrid::model_catalogue(lm);
    recommend(lm, log.domain, history, &titles, items.as_deref(), options).await
}

/// The `options.top` titles of `catalogue` (less those in `history`) that `lm` finds likeliest
/// as the next line of the compact document over `history`. A hybrid model reads each history
/// title found in `items` with its item vector (as [`crate::hybrid::rank`] does); other models
/// read text alone.
pub async fn recommend(
    lm: &LanguageModel,
    domain: crate::data::Domain,
    history: &[String],
    catalogue: &[String],
    items: Option<&ItemCatalogue>,
    options: SearchOptions,
) -> Result<CatalogueRecommendations> {
    if options.top == 0 || options.beam == 0 {
        return Err(Error::Model(
            "a catalogue search needs top and beam of at least 1".into(),
        ));
    }
    let tok = &lm.tokenizer;
    // A model without a projector reads every title as text.
    let items = items.filter(|_| lm.model.weights.projector.is_some());
    let (prompt_ids, slots) = crate::hybrid::compact_history_ids(tok, domain, history, items)?;
    let seen: std::collections::HashSet<String> = history.iter().map(|t| loose(t)).collect();
    // One entry per distinct title not in the history, in catalogue order.
    let mut titles: Vec<String> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for t in catalogue {
        if !t.trim().is_empty() && !seen.contains(&loose(t)) && keys.insert(title_key(t)) {
            titles.push(t.trim().to_string());
        }
    }
    if titles.is_empty() {
        return Err(Error::EmptyCandidates);
    }
    let lines = titles
        .iter()
        .map(|t| prompt::compact_line_ids(tok, t))
        .collect::<Result<Vec<_>>>()?;
    let longest = lines.iter().map(Vec::len).max().unwrap_or(0);
    lm.check_fits(prompt_ids.len(), longest)?;
    let nodes = trie(&lines);
    let model = &lm.model;
    let device = model.device();
    let layers = 0..model.config.n_layers;
    // The prompt less its last token, cached once; the last token opens every row, so a
    // slot on it becomes a slot at each row's first position.
    let (last, prefix) = prompt_ids.split_last().ok_or(Error::EmptyCandidates)?;
    let mut before = Slots::default();
    let mut last_slot = None;
    for (&at, &row) in slots.positions.iter().zip(&slots.rows) {
        if (at as usize) < prefix.len() {
            before.positions.push(at);
            before.rows.push(row);
        } else {
            last_slot = Some(row);
        }
    }
    let mut cache = KvCache::default();
    if !prefix.is_empty() {
        let ids = prefix.iter().map(|&t| i64::from(t)).collect();
        let x = model.embed(model.tokens(ids, 1, prefix.len()));
        let prefix_slots = before.tensors(prefix.len(), device)?;
        model.forward_layers_with(x, layers.clone(), &mut cache, prefix_slots.as_ref())?;
    }
    // (node, tokens so far, summed log-prob)
    let mut beams: Vec<(usize, Vec<u32>, f32)> = vec![(0, Vec::new(), 0.0)];
    let mut done: Vec<(usize, f32)> = Vec::new();
    let mut exact = true;
    let mut tokens_run = 0;
    while !beams.is_empty() {
        let (n, len) = (beams.len(), beams[0].1.len() + 1);
        let mut ids = Vec::with_capacity(n * len);
        let widest = beams
            .iter()
            .map(|(node, _, _)| nodes[*node].children.len())
            .max()
            .unwrap_or(0);
        let mut wanted = Vec::with_capacity(n * widest);
        for (node, path, _) in &beams {
            ids.push(i64::from(*last));
            ids.extend(path.iter().map(|&t| i64::from(t)));
            let children = &nodes[*node].children;
            wanted.extend((0..widest).map(|j| children.get(j).map_or(0, |(t, _)| i64::from(*t))));
        }
        let row_slots = match last_slot {
            Some(row) => Slots {
                positions: (0..n).map(|i| (i * len) as u32).collect(),
                rows: vec![row; n],
            }
            .tensors(n * len, device)?,
            None => None,
        };
        let x = model.embed(model.tokens(ids, n, len));
        // Every step reads the prompt's cache afresh (each beam carries its whole path).
        let mut step = cache.clone();
        step.last_pass();
        let hidden = model.final_norm(model.forward_layers_with(
            x,
            layers.clone(),
            &mut step,
            row_slots.as_ref(),
        )?);
        tokens_run += n * len;
        let d = model.config.hidden_size;
        let at_end = hidden.narrow(1, len - 1, 1).reshape([n, d]);
        let wanted: Tensor<2, Int> =
            Tensor::from_data(TensorData::new(wanted, [n, widest]), device);
        let lp = read_f32(log_softmax(model.logits(at_end), 1).gather(1, wanted)).await?;
        let mut next = Vec::new();
        for (b, (node, path, score)) in beams.iter().enumerate() {
            for (j, &(token, child)) in nodes[*node].children.iter().enumerate() {
                let s = score + lp[b * widest + j];
                if s <= bar(&done, options.top) {
                    continue;
                }
                if !nodes[child].ends.is_empty() {
                    done.extend(nodes[child].ends.iter().map(|&t| (t, s)));
                    done.sort_by(|a, b| b.1.total_cmp(&a.1));
                    done.truncate(options.top);
                }
                if !nodes[child].children.is_empty() {
                    let mut p = path.clone();
                    p.push(token);
                    next.push((child, p, s));
                }
            }
        }
        let floor = bar(&done, options.top);
        next.retain(|(_, _, s)| *s > floor);
        next.sort_by(|a, b| b.2.total_cmp(&a.2));
        if next.len() > options.beam {
            exact = false;
            next.truncate(options.beam);
        }
        beams = next;
    }
    Ok(CatalogueRecommendations {
        recommendations: done
            .into_iter()
            .enumerate()
            .map(|(i, (t, log_prob))| Recommendation {
                rank: i + 1,
                title: titles[t].clone(),
                log_prob,
                n_tokens: lines[t].len(),
            })
            .collect(),
        exact,
        titles: titles.len(),
        prompt_tokens: prompt_ids.len(),
        tokens_run,
    })
}

/// A title as a person may type it: "Fargo (1996)", "usual suspects, the" and "The Usual
/// Suspects" are one title, so a history typed with years or MovieLens' article order still
/// keeps its titles out of the recommendations.
fn loose(title: &str) -> String {
    let t = crate::data::natural_title(title);
    let t = match t.rsplit_once(" (") {
        Some((stem, year))
            if year.len() == 5
                && year.ends_with(')')
                && year[..4].bytes().all(|b| b.is_ascii_digit()) =>
        {
            crate::data::natural_title(stem)
        }
        _ => t,
    };
    t.to_lowercase()
}

/// The score a new title must beat to enter a list of `top`: the `top`-th's, or -inf.
fn bar(done: &[(usize, f32)], top: usize) -> f32 {
    if done.len() < top {
        f32::NEG_INFINITY
    } else {
        done.last().map_or(f32::NEG_INFINITY, |d| d.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Domain;
    use burn::tensor::Device;

    fn titles() -> Vec<String> {
        [
            "Heat",
            "Heathers",
            "Fargo",
            "Babe",
            "Casino",
            "Clueless",
            "Casablanca",
            "Star Wars",
            "Star Trek",
            "Star Kid",
            "Toy Story",
            "Twister",
            "Amélie",
            "Seven",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn a_wide_search_is_exact_and_equals_scoring_every_title() {
        let lm =
            LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
                .unwrap();
        let history = vec!["Fargo".to_string(), "Babe".to_string()];
        let all = titles();
        let search = |top, beam| {
            pollster::block_on(recommend(
                &lm,
                Domain::Movies,
                &history,
                &all,
                None,
                SearchOptions { top, beam },
            ))
            .unwrap()
        };
        let wide = search(5, 1000);
        assert!(wide.exact);
        assert_eq!(wide.titles, all.len() - 2);
        // Every title scored in full by the compact ranking, the history's titles excluded.
        let rest: Vec<String> = all
            .iter()
            .filter(|t| !history.contains(t))
            .cloned()
            .collect();
        let ranking = pollster::block_on(lm.rank_compact(
            Domain::Movies,
            &history,
            &rest,
            crate::ScoreOptions::default(),
        ))
        .unwrap();
        let want: Vec<(String, f32)> = ranking.ranked[..5]
            .iter()
            .map(|c| (c.candidate.title.clone(), c.candidate.log_prob))
            .collect();
        let got: Vec<(String, f32)> = wide
            .recommendations
            .iter()
            .map(|r| (r.title.clone(), r.log_prob))
            .collect();
        for ((gt, gl), (wt, wl)) in got.iter().zip(&want) {
            assert_eq!(gt, wt, "{got:?} vs {want:?}");
            assert!((gl - wl).abs() < 1e-4, "{got:?} vs {want:?}");
        }
        assert_eq!(wide.recommendations.len(), 5);
        assert!(
            wide.recommendations
                .iter()
                .all(|r| !history.contains(&r.title))
        );
        // A beam of one still returns titles from the catalogue, each with its true score.
        let narrow = search(3, 1);
        assert!(narrow.tokens_run < wide.tokens_run);
        for r in &narrow.recommendations {
            let c = ranking
                .ranked
                .iter()
                .find(|c| c.candidate.title == r.title)
                .unwrap();
            assert!((c.candidate.log_prob - r.log_prob).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_searches_are_refused() {
        let lm =
            LanguageModel::from_gguf_bytes(&crate::fixtures::tiny_model_gguf(7), &Device::flex())
                .unwrap();
        let run = |catalogue: &[String], top| {
            pollster::block_on(recommend(
                &lm,
                Domain::Movies,
                &["Heat".to_string()],
                catalogue,
                None,
                SearchOptions { top, beam: 4 },
            ))
        };
        assert!(run(&titles(), 0).is_err());
        assert_eq!(loose("Usual Suspects, The (1995)"), "the usual suspects");
        assert_eq!(loose(" Fargo (1996)"), loose("fargo"));
        assert_eq!(loose("Seven (Se7en)"), "seven (se7en)");
        assert!(matches!(
            run(&["Heat".to_string()], 3),
            Err(Error::EmptyCandidates)
        ));
    }
}
