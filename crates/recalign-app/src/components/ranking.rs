//! Results: the ranked candidates with scores and choice probabilities, and a generated answer.

use recalign_core::{Generation, Ranking};

use crate::protocol::{CandidatePopularity, Comparison};
use yew::prelude::*;

/// Props of [`RankingTable`].
#[derive(Properties, PartialEq)]
pub struct RankingProps {
    /// The ranking.
    pub ranking: Ranking,
    /// How long it took, in ms.
    pub ms: f64,
    /// A second model's ranking of the same candidates.
    #[prop_or_default]
    pub comparison: Option<Comparison>,
    /// The item the dataset's test user really chose next (the form holds their history), to
    /// mark among the candidates.
    #[prop_or_default]
    pub chosen: Option<String>,
    /// The candidates' training popularity (a dataset is loaded).
    #[prop_or_default]
    pub popularity: Option<CandidatePopularity>,
}

/// The candidates best first, with a bar for each one's probability among the candidates and,
/// for a dataset's test user, their real next item marked: where the model put it is the
/// ranking's hit or miss, read at a glance. With a dataset loaded, each candidate's training
/// popularity is a second bar and long-tail items can be coloured, so a model that puts the
/// blockbusters first shows it in one ranking.
#[function_component(RankingTable)]
pub fn ranking_table(props: &RankingProps) -> Html {
    let show_tail = use_state(|| false);
    let r = &props.ranking;
    let pop = props.popularity.as_ref();
    let toggle = {
        let show_tail = show_tail.clone();
        Callback::from(move |e: Event| {
            let on = e
                .target_dyn_into::<web_sys::HtmlInputElement>()
                .is_some_and(|i| i.checked());
            show_tail.set(on);
        })
    };
    let other = props.comparison.as_ref();
    // Title -> (rank, score) under the second model.
    let lookup = |title: &str| {
        other.and_then(|o| {
            o.ranking
                .ranked
                .iter()
                .find(|c| c.candidate.title == title)
                .map(|c| (c.rank, c.candidate.score))
        })
    };
    html! {
        <section class="card" id="ranking">
            <h2>{ "Ranking" }</h2>
            <p class="meta">{ format!("{} candidates scored in one pass over a {}-token prompt in {:.2} s",
                r.ranked.len(), r.prompt_tokens, props.ms / 1e3) }
                if let Some(o) = other {
                    { format!("; next to {}, which ranked the same prompt", o.model) }
                }
            </p>
            if let Some(p) = pop {
                <p class="meta">
                    <label><input type="checkbox" id="tail-toggle" checked={ *show_tail } onchange={ toggle } />
                    { format!(" Colour long-tail candidates (fewer than {} training interactions: outside the 20% most popular items)", p.head_floor) }</label>
                </p>
            }
            <div class="scroll">
            <table>
                <thead><tr><th>{ "#" }</th><th>{ "Title" }</th><th>{ "log p" }</th><th>{ "tokens" }</th><th>{ "choice probability" }</th>
                    if pop.is_some() {
                        <th>{ "training popularity" }</th>
                    }
                    if let Some(o) = other {
                        <th class="compare">{ format!("# with {}", o.model) }</th><th class="compare">{ "log p" }</th>
                    }
                </tr></thead>
                <tbody>
                { for r.ranked.iter().enumerate().map(|(i, c)| {
                    let theirs = lookup(&c.candidate.title);
                    let chosen = props.chosen.as_deref() == Some(c.candidate.title.as_str());
                    let count = pop.map(|p| (p.counts.get(i).copied().flatten(), p.max.max(1), p.head_floor));
                    let tail = *show_tail
                        && count.is_some_and(|(n, _, floor)| n.is_some_and(|n| n < floor));
                    html! {
                    // The mark is the row's style and a CSS label, so the cells' text (what
                    // copying the table or the tests read) stays the title and the numbers.
                    <tr class={ classes!("candidate", chosen.then_some("chosen"), tail.then_some("tail")) }
                        title={ chosen.then_some("the item this test user really chose next") }>
                        <td>{ c.rank }</td>
                        <td class="title">{ &c.candidate.title }</td>
                        <td class="num score">{ format!("{:.3}", c.candidate.score) }</td>
                        <td class="num">{ c.candidate.n_tokens }</td>
                        <td class="bar"><span style={ format!("width:{:.1}%", 100.0 * c.probability) } />
                            <em>{ format!("{:.1}%", 100.0 * c.probability) }</em></td>
                        if let Some((n, max, _)) = count {
                            <td class="bar pop" data-count={ n.map(|n| n.to_string()) }>
                            { match n {
                                Some(n) => html! { <>
                                    <span style={ format!("width:{:.1}%", 100.0 * f64::from(n) / f64::from(max)) } />
                                    <em>{ n }</em>
                                </> },
                                None => html! { <em>{ "not in the catalogue" }</em> },
                            } }
                            </td>
                        }
                        if let Some((rank, score)) = theirs {
                            <td class="num compare-rank" title="rank under the second model; the arrow: how many places it moved there">
                                { format!("{rank} {}", moved(c.rank, rank)) }</td>
                            <td class="num compare-score">{ format!("{score:.3}") }</td>
                        }
                    </tr>
                }}) }
                </tbody>
            </table>
            </div>
        </section>
    }
}

/// `▲ n` when the second model ranks the candidate `n` places higher (a smaller rank), `▼ n`
/// lower, `=` the same.
fn moved(ours: usize, theirs: usize) -> String {
    match theirs.cmp(&ours) {
        std::cmp::Ordering::Less => format!("▲ {}", ours - theirs),
        std::cmp::Ordering::Greater => format!("▼ {}", theirs - ours),
        std::cmp::Ordering::Equal => "=".into(),
    }
}

/// Props of [`CatalogueList`].
#[derive(Properties, PartialEq)]
pub struct CatalogueListProps {
    /// The search's titles.
    pub found: recalign_core::recommend::CatalogueRecommendations,
    /// Their training popularity.
    pub popularity: CandidatePopularity,
    /// How long it took, in ms.
    pub ms: f64,
}

/// The top titles of the whole catalogue, with each one's training popularity, and whether
/// the search was exact.
#[function_component(CatalogueList)]
pub fn catalogue_list(props: &CatalogueListProps) -> Html {
    let f = &props.found;
    let max = props.popularity.max.max(1);
    html! {
        <section class="card" id="catalogue-recommendations">
            <h2>{ "From the whole catalogue" }</h2>
            <p class="meta">{ format!(
                "The {} likeliest next titles among {} (the history's own left out), found in {:.1} s by a search over the titles' tokens ({} positions run). {}",
                f.recommendations.len(), f.titles, props.ms / 1e3, f.tokens_run,
                if f.exact { "Exact: no title that could have made the list was cut." }
                else { "Approximate: the search kept only the best prefixes at each token, so a title it cut could have made the list." }) }</p>
            <div class="scroll">
            <table>
                <thead><tr><th>{ "#" }</th><th>{ "Title" }</th><th>{ "log p" }</th><th>{ "training popularity" }</th></tr></thead>
                <tbody>
                { for f.recommendations.iter().enumerate().map(|(i, r)| {
                    let n = props.popularity.counts.get(i).copied().flatten();
                    html! {
                        <tr class="recommended">
                            <td>{ r.rank }</td>
                            <td class="title">{ &r.title }</td>
                            <td class="num score">{ format!("{:.3}", r.log_prob) }</td>
                            <td class="bar pop" data-count={ n.map(|n| n.to_string()) }>
                                <span style={ format!("width:{:.1}%", 100.0 * f64::from(n.unwrap_or(0)) / f64::from(max)) } />
                                <em>{ n.map_or("–".to_string(), |n| n.to_string()) }</em>
                            </td>
                        </tr>
                    }
                }) }
                </tbody>
            </table>
            </div>
        </section>
    }
}

/// Props of [`GenerationView`].
#[derive(Properties, PartialEq)]
pub struct GenerationProps {
    /// The answer.
    pub generation: Generation,
    /// The candidate it names, if exactly one.
    pub named: Option<String>,
    /// How long it took, in ms.
    pub ms: f64,
}

/// The model's free-text answer and whether it names exactly one candidate.
#[function_component(GenerationView)]
pub fn generation_view(props: &GenerationProps) -> Html {
    html! {
        <section class="card" id="generation">
            <h2>{ "Generated answer" }</h2>
            <blockquote>{ &props.generation.text }</blockquote>
            <p class="meta">
            { match &props.named {
                Some(t) => format!("Valid: names the candidate “{t}”."),
                None => "Not valid: the answer does not name exactly one candidate (a hallucination in the papers' terms).".to_string(),
            } }
            { format!(" {} tokens in {:.2} s.", props.generation.ids.len(), props.ms / 1e3) }
            </p>
        </section>
    }
}
