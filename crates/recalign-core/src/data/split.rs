//! The LLaRA / S-DPO protocol (method.md §1) as code: positive filter, chronological order,
//! the seeded 8:1:1 user split, sliding windows for training users, the last item for
//! validation and test users, and 20-item candidate sets seeded by (seed, target).

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{DataError, DataErrorKind, InteractionLog, ItemId};

/// How examples are cut from an interaction log. The defaults are method.md's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Seeds the user split and (with the target) every candidate set.
    pub seed: u64,
    /// Interactions rated below this are not positives; `None` keeps every interaction
    /// (implicit feedback). Unrated interactions are always positives.
    pub min_rating: Option<f32>,
    /// Fewest history items an example may have.
    pub min_history: usize,
    /// Most history items (the most recent are kept).
    pub max_history: usize,
    /// Candidate set size, target included.
    pub candidates: usize,
    /// Train : validation : test share of users.
    pub ratios: [u32; 3],
    /// Examples per validation and test user: the last this many windows (1: the last item
    /// only, the papers' protocol). More windows of the same held-out users give a larger
    /// evaluation set that is still never trained on (5 gives ~945 on ML-100K).
    #[serde(default = "one")]
    pub eval_windows: usize,
}

fn one() -> usize {
    1
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            seed: 2024,
            min_rating: Some(3.0),
            min_history: 3,
            max_history: 10,
            candidates: 20,
            ratios: [8, 1, 1],
            eval_windows: 1,
        }
    }
}

impl SplitConfig {
    /// Refuses settings no split can satisfy (also for pre-windowed rows, which use the same
    /// candidate count and seed).
    pub(crate) fn check(&self) -> Result<(), DataError> {
        if self.min_history == 0 || self.min_history > self.max_history {
            return Err(DataError::setting(format!(
                "history bounds must satisfy 1 <= min ({}) <= max ({})",
                self.min_history, self.max_history
            )));
        }
        if self.candidates < 2 {
            return Err(DataError::setting("at least 2 candidates are needed"));
        }
        if self.ratios.iter().sum::<u32>() == 0 {
            return Err(DataError::setting("the split ratios sum to 0"));
        }
        if self.eval_windows == 0 {
            return Err(DataError::setting(
                "at least 1 evaluation window per held-out user is needed",
            ));
        }
        Ok(())
    }
}

/// One prompt's worth of data: what the user had, what came next, and the items to choose from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// User index in the log (row number for pre-windowed sets).
    pub user: u32,
    /// Positive items before the target, oldest first.
    pub history: Vec<ItemId>,
    /// The next positive item (the chosen answer).
    pub target: ItemId,
    /// The target plus sampled negatives, shuffled (empty until attached).
    pub candidates: Vec<ItemId>,
}

/// Which part of a split.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    /// Training users' sliding windows.
    #[default]
    Train,
    /// Validation users' last items.
    Validation,
    /// Test users' last items.
    Test,
}

impl SplitName {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Validation => "validation",
            SplitName::Test => "test",
        }
    }
}

/// The three splits of a log, with what every later stage needs from the training side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Splits {
    /// The settings used.
    pub config: SplitConfig,
    /// Sliding-window examples of training users.
    pub train: Vec<Example>,
    /// Last-item examples of validation users.
    pub validation: Vec<Example>,
    /// Last-item examples of test users.
    pub test: Vec<Example>,
    /// Each training user's full positive sequence, oldest first (the oracle trains on these).
    pub train_sequences: Vec<Vec<ItemId>>,
    /// Positive interactions per item over training users (popularity, method.md §2 and §4).
    pub popularity: Vec<u32>,
    /// Users per split, in split order.
    pub users: [Vec<u32>; 3],
    /// Users dropped for having fewer than `min_history + 1` positives.
    pub short_users: usize,
    /// Interactions kept by the positive filter.
    pub positives: usize,
    /// Repeated (user, item) positives dropped (each pair counts once, at its first time).
    pub repeats: usize,
}

impl Splits {
    /// The examples of one split.
    pub fn get(&self, name: SplitName) -> &[Example] {
        match name {
            SplitName::Train => &self.train,
            SplitName::Validation => &self.validation,
            SplitName::Test => &self.test,
        }
    }
}

/// Splits `log` per `config` (deterministic: the same log and config give identical splits).
pub fn split(log: &InteractionLog, config: &SplitConfig) -> Result<Splits, DataError> {
    config.check()?;
    let n_items = log.catalogue.len();
    let mut per_user: Vec<Vec<(i64, ItemId)>> = vec![Vec::new(); log.users.len()];
    let mut positives = 0;
    for it in &log.interactions {
        let positive = match (config.min_rating, it.rating) {
            (Some(min), Some(r)) => r >= min,
            _ => true,
        };
        if positive && let Some(seq) = per_user.get_mut(it.user as usize) {
            seq.push((it.timestamp, it.item));
            positives += 1;
        }
    }
    let mut repeats = 0;
    let mut sequences: Vec<(u32, Vec<ItemId>)> = Vec::new();
    let mut short_users = 0;
    let mut seen = vec![false; n_items];
    for (user, mut events) in per_user.into_iter().enumerate() {
        events.sort_by_key(|&(t, item)| (t, item));
        let mut seq = Vec::with_capacity(events.len());
        for (_, item) in events {
            if std::mem::replace(&mut seen[item.index()], true) {
                repeats += 1;
            } else {
                seq.push(item);
            }
        }
        for item in &seq {
            seen[item.index()] = false;
        }
        if seq.len() > config.min_history {
            sequences.push((user as u32, seq));
        } else {
            // Every user in a log has at least one interaction, so this counts real users.
            short_users += 1;
        }
    }
    if sequences.is_empty() {
        return Err(DataError::file(
            "interactions",
            DataErrorKind::NoInteractions(format!(
                "no user has more than {} positive interactions ({short_users} users too short)",
                config.min_history
            )),
        ));
    }
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(config.seed));
    let total: u64 = config.ratios.iter().map(|&r| u64::from(r)).sum();
    let n = sequences.len() as u64;
    let n_train = (n * u64::from(config.ratios[0]) + total / 2) / total;
    let n_val = (n * u64::from(config.ratios[1]) + total / 2) / total;
    let n_val = n_val.min(n - n_train.min(n));

    let mut out = Splits {
        config: config.clone(),
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
        train_sequences: Vec::new(),
        popularity: vec![0; n_items],
        users: Default::default(),
        short_users,
        positives,
        repeats,
    };
    let mut part = [Vec::new(), Vec::new(), Vec::new()];
    for (rank, &idx) in order.iter().enumerate() {
        let which = if (rank as u64) < n_train {
            0
        } else if (rank as u64) < n_train + n_val {
            1
        } else {
            2
        };
        part[which].push(idx);
    }
    // Within a split, users keep log order so output files diff cleanly.
    for p in &mut part {
        p.sort_unstable();
    }
    for &idx in &part[0] {
        let (user, seq) = &sequences[idx];
        for item in seq {
            out.popularity[item.index()] += 1;
        }
        for t in config.min_history..seq.len() {
            let start = t.saturating_sub(config.max_history);
            out.train.push(window(*user, &seq[start..t], seq[t]));
        }
        out.users[0].push(*user);
        out.train_sequences.push(seq.clone());
    }
    for (which, target) in [(1, &mut out.validation), (2, &mut out.test)] {
        for &idx in &part[which] {
            let (user, seq) = &sequences[idx];
            // Oldest first; never a window with fewer than `min_history` items before it.
            let first = seq
                .len()
                .saturating_sub(config.eval_windows)
                .max(config.min_history);
            for t in first..seq.len() {
                let start = t.saturating_sub(config.max_history);
                target.push(window(*user, &seq[start..t], seq[t]));
            }
            out.users[which].push(*user);
        }
    }
    for examples in [&mut out.train, &mut out.validation, &mut out.test] {
        attach_candidates(examples, n_items, config.seed, config.candidates)?;
    }
    Ok(out)
}

fn window(user: u32, history: &[ItemId], target: ItemId) -> Example {
    Example {
        user,
        history: history.to_vec(),
        target,
        candidates: Vec::new(),
    }
}

/// SplitMix64's finaliser: spreads (seed, target) over the RNG's seed space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The candidate set of one example: the target and `n - 1` distinct items drawn uniformly from
/// the catalogue minus the history and the target, shuffled. The RNG is seeded by
/// (`seed`, target), so the same example always gets the same candidates.
pub fn sample_candidates(
    n_items: usize,
    history: &[ItemId],
    target: ItemId,
    seed: u64,
    n: usize,
) -> Result<Vec<ItemId>, DataError> {
    let mut excluded = vec![false; n_items];
    for &i in history.iter().chain([&target]) {
        if let Some(e) = excluded.get_mut(i.index()) {
            *e = true;
        }
    }
    let available = excluded.iter().filter(|&&e| !e).count();
    let needed = n.saturating_sub(1);
    if available < needed {
        return Err(DataError::file(
            "catalogue",
            DataErrorKind::CatalogueTooSmall { available, needed },
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ mix(u64::from(target.0))));
    let mut picked: Vec<ItemId> = Vec::with_capacity(n);
    if available >= 4 * needed {
        // Rejection sampling: the expected number of draws is below 4/3 per item.
        while picked.len() < needed {
            let i = rng.random_range(0..n_items);
            if !excluded[i] {
                excluded[i] = true;
                picked.push(ItemId(i as u32));
            }
        }
    } else {
        let pool: Vec<ItemId> = (0..n_items)
            .filter(|&i| !excluded[i])
            .map(|i| ItemId(i as u32))
            .collect();
        picked.extend(pool.choose_multiple(&mut rng, needed).copied());
    }
    picked.push(target);
    picked.shuffle(&mut rng);
    Ok(picked)
}

/// Gives every example its candidate set (for rows that arrive without one, such as LLaRA's).
pub fn attach_candidates(
    examples: &mut [Example],
    n_items: usize,
    seed: u64,
    n: usize,
) -> Result<(), DataError> {
    for e in examples {
        e.candidates = sample_candidates(n_items, &e.history, e.target, seed, n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Catalogue, Domain, Interaction, LoadReport};

    fn log(users: usize, per_user: usize, items: usize) -> InteractionLog {
        let mut catalogue = Catalogue::new();
        for i in 0..items {
            catalogue.insert(&i.to_string(), &format!("Item {i}"));
        }
        let mut interactions = Vec::new();
        for u in 0..users {
            for k in 0..per_user {
                let item = ItemId(((u * 7 + k * 3) % items) as u32);
                interactions.push(Interaction {
                    user: u as u32,
                    item,
                    timestamp: k as i64 / 2,
                    rating: Some(4.0),
                });
            }
        }
        InteractionLog {
            domain: Domain::Movies,
            catalogue,
            users: (0..users).map(|u| u.to_string()).collect(),
            interactions,
            report: LoadReport::default(),
        }
    }

    #[test]
    fn windows_follow_the_protocol() {
        let s = split(&log(50, 15, 100), &SplitConfig::default()).unwrap();
        assert_eq!(s.users[0].len() + s.users[1].len() + s.users[2].len(), 50);
        assert_eq!(
            (s.users[0].len(), s.users[1].len(), s.users[2].len()),
            (40, 5, 5)
        );
        assert_eq!(s.train.len(), 40 * (15 - 3));
        for e in s.train.iter().chain(&s.validation).chain(&s.test) {
            assert!((3..=10).contains(&e.history.len()));
            assert_eq!(e.candidates.len(), 20);
            assert_eq!(e.candidates.iter().filter(|&&c| c == e.target).count(), 1);
            assert!(e.candidates.iter().all(|c| !e.history.contains(c)));
        }
    }

    #[test]
    fn ties_in_time_are_ordered_by_item() {
        let s = split(
            &log(10, 6, 100),
            &SplitConfig {
                ratios: [1, 0, 0],
                ..Default::default()
            },
        )
        .unwrap();
        for seq in &s.train_sequences {
            // timestamps are k/2: pairs share a time, so each pair must be in item order
            for pair in seq.chunks(2) {
                if let [a, b] = pair {
                    assert!(a < b);
                }
            }
        }
    }

    #[test]
    fn candidates_depend_only_on_seed_target_and_history() {
        let h = [ItemId(1), ItemId(2), ItemId(3)];
        let a = sample_candidates(500, &h, ItemId(9), 1, 20).unwrap();
        assert_eq!(a, sample_candidates(500, &h, ItemId(9), 1, 20).unwrap());
        assert_ne!(a, sample_candidates(500, &h, ItemId(9), 2, 20).unwrap());
        let small = sample_candidates(24, &h, ItemId(9), 1, 20).unwrap();
        assert_eq!(small.len(), 20);
        let err = sample_candidates(20, &h, ItemId(9), 1, 20).unwrap_err();
        assert!(matches!(
            err.kind,
            DataErrorKind::CatalogueTooSmall {
                available: 16,
                needed: 19
            }
        ));
    }

    #[test]
    fn low_ratings_are_not_positives_and_short_users_are_counted() {
        let mut l = log(5, 8, 50);
        for it in l.interactions.iter_mut().filter(|i| i.user == 0) {
            it.rating = Some(2.0);
        }
        let s = split(&l, &SplitConfig::default()).unwrap();
        assert_eq!(s.short_users, 1);
        assert_eq!(s.positives, 4 * 8);
    }
}
