//! A language model ready to use: decoder plus tokenizer, with candidate scoring over a shared
//! prompt prefix and greedy generation.
//!
//! Every method is `async` and reads from the device only through `into_data_async`, so the same
//! code runs natively (Flex) and in the browser (WebGPU), where synchronous reads panic. Scoring
//! reads back once per ranking; generation once per new token.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::model::{KvCache, Llama, LlamaConfig, Slots};
use crate::prompt::recommendation_prompt;
use crate::tokenizer::{TextTokenizer, chatml_user};

mod frozen;
mod sequence;

pub use frozen::{FrozenAnswers, answer_log_probs, frozen_answer_bytes};
pub use sequence::{ScoredSequence, sequence_log_probs, sequence_log_probs_with};

/// A model and its tokenizer on one device.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    /// The decoder.
    pub model: Llama,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
}

/// One candidate's score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CandidateScore {
    /// Position in the candidate list as given.
    pub index: usize,
    /// The candidate text.
    pub title: String,
    /// `sum log p(title tokens + eos | prompt)`.
    pub log_prob: f32,
    /// Tokens scored (title tokens + eos).
    pub n_tokens: usize,
    /// The score used for ranking: `log_prob`, or `log_prob / n_tokens` when length-normalised.
    pub score: f32,
}

/// How candidates are scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScoreOptions {
    /// Divide each candidate's log-probability by its token count.
    pub length_normalised: bool,
}

/// Candidates ranked for one history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ranking {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Candidates, best first.
    pub ranked: Vec<RankedCandidate>,
}

/// A candidate with its place in the ranking.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankedCandidate {
    /// 1-based rank.
    pub rank: usize,
    /// The candidate and its score.
    pub candidate: CandidateScore,
    /// Softmax of the scores over the candidate set: the model's choice probability among them.
    pub probability: f32,
}

/// Text produced by greedy decoding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generation {
    /// New token ids (ending with eos when the model stopped by itself).
    pub ids: Vec<u32>,
    /// Their text, control tokens removed.
    pub text: String,
}

/// Reads a tensor's values back as f32, asynchronously (the one read-back path: synchronous
/// reads panic on WebGPU).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data_async()
        .await
        .map_err(Error::execution)?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::device(format!("{e:?}")))
}

impl LanguageModel {
    /// Parses GGUF bytes and loads the model onto `device`.
    pub fn from_gguf_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let gguf = Gguf::parse(bytes)?;
        // Architecture first: "this is not a llama model" says more than a missing tokenizer key.
        LlamaConfig::from_gguf(&gguf)?;
        let tokenizer = TextTokenizer::from_gguf(&gguf)?;
        let model = Llama::from_gguf(&gguf, device)?;
        if tokenizer.vocab_size() != model.config.vocab_size {
            return Err(Error::Model(format!(
                "the tokenizer has {} tokens but the embedding has {} rows",
                tokenizer.vocab_size(),
                model.config.vocab_size
            )));
        }
        Ok(Self { model, tokenizer })
    }

    /// Token ids of each candidate's answer in LLaRA's format: the title as the prompt's list
    /// holds it, then end-of-sequence.
    ///
    /// The list writes `- Toy Story`, whose title tokens start with the word and its space
    /// (` Toy`); the bare title after the assistant header would start `T`, `oy`. About a
    /// quarter of ML-100K's titles split differently in the two places, so an answer written
    /// bare is not a copy of any listed entry, and a small model that learns to answer drifts to
    /// the catalogue's titles instead of the list's (ValidRatio). The answer is therefore the
    /// title after one space, tokenised as in the list (`tests/ml100k.rs` checks every title);
    /// its text is the title with a leading space, which [`crate::eval::named_candidate`] reads.
    pub fn candidate_ids(&self, candidates: &[String]) -> Result<Vec<Vec<u32>>> {
        if candidates.is_empty() {
            return Err(Error::EmptyCandidates);
        }
        candidates
            .iter()
            .enumerate()
            .map(|(index, title)| {
                let mut ids = crate::prompt::llara_answer_ids(&self.tokenizer, title)?;
                if ids.is_empty() {
                    return Err(Error::EmptyCandidate {
                        index,
                        title: title.clone(),
                    });
                }
                ids.push(self.tokenizer.eos_id());
                Ok(ids)
            })
            .collect()
    }

    /// Each candidate's answer ids and the longest length, once the prompt and the longest answer
    /// are known to fit the context.
    fn answers_that_fit(
        &self,
        prompt_ids: &[u32],
        candidates: &[String],
    ) -> Result<(Vec<Vec<u32>>, usize)> {
        let answers = self.candidate_ids(candidates)?;
        let longest = answers.iter().map(Vec::len).max().unwrap_or(1);
        self.check_fits(prompt_ids.len(), longest)?;
        Ok((answers, longest))
    }

    /// The ChatML prompt ids of a recommendation `request`, checked to leave room in the context
    /// for the longest candidate answer (the guard every data path goes through).
    pub fn request_prompt_ids(&self, request: &str, candidates: &[String]) -> Result<Vec<u32>> {
        let ids = self.tokenizer.encode(&chatml_user(request))?;
        self.answers_that_fit(&ids, candidates)?;
        Ok(ids)
    }

    /// `PromptTooLong` unless a non-empty prompt of `prompt` tokens plus `after` more fit.
    pub(crate) fn check_fits(&self, prompt: usize, after: usize) -> Result<()> {
        let context = self.model.config.context_length;
        if prompt == 0 || prompt + after > context {
            return Err(Error::PromptTooLong {
                tokens: prompt,
                needed: after,
                context,
            });
        }
        Ok(())
    }

    /// Scores every candidate as a continuation of `prompt_ids`, running the prompt once.
    ///
    /// One pass: the prompt minus its last token, then the candidates packed end to end after it
    /// ([`crate::model::Packed`]), each row the prompt's last token then the candidate, so that
    /// position `j` of a row predicts answer token `j`. The sums are read back once.
    pub async fn score_candidates(
        &self,
        prompt_ids: &[u32],
        candidates: &[String],
        options: ScoreOptions,
    ) -> Result<Vec<CandidateScore>> {
        let (answers, _) = self.answers_that_fit(prompt_ids, candidates)?;
        let sums = answer_log_probs(&self.model, prompt_ids, &answers)?;
        let sums = read_f32(sums).await?;
        Ok(self.to_scores(candidates, &answers, &sums, options))
    }

    /// Summed log-probability of each of `answers` (token ids as given, terminator included) as
    /// a continuation of `prompt_ids`, the prompt run once: for prompt formats whose answers are
    /// not "title + end-of-sequence" (the compact format's "title + newline").
    pub async fn score_answer_ids(
        &self,
        prompt_ids: &[u32],
        answers: &[Vec<u32>],
    ) -> Result<Vec<f32>> {
        self.check_answer_ids(prompt_ids, answers)?;
        let sums = answer_log_probs(&self.model, prompt_ids, answers)?;
        read_f32(sums).await
    }

    /// Refuses an empty answer list, an empty answer, or a prompt plus longest answer past the
    /// context, before any work.
    fn check_answer_ids(&self, prompt_ids: &[u32], answers: &[Vec<u32>]) -> Result<()> {
        if answers.is_empty() {
            return Err(Error::EmptyCandidates);
        }
        if let Some(index) = answers.iter().position(Vec::is_empty) {
            return Err(Error::EmptyCandidate {
                index,
                title: String::new(),
            });
        }
        let longest = answers.iter().map(Vec::len).max().unwrap_or(1);
        self.check_fits(prompt_ids.len(), longest)
    }

    /// [`Self::score_answer_ids`] for `self` and each of `others` at once, where all are one base
    /// model with different adapters (as [`crate::train::with_adapter`] makes them): the layers
    /// below the lowest adapted one are the same in every model, so they run once and only the
    /// layers above run per model. Comparing the base model, SFT and two preference adapters
    /// with LoRA on the top 8 of 30 layers then costs 54 layer passes instead of 120. Models on
    /// different base weights must not be passed together: nothing here can tell them apart.
    pub async fn score_answer_ids_with(
        &self,
        others: &[&LanguageModel],
        prompt_ids: &[u32],
        answers: &[Vec<u32>],
    ) -> Result<Vec<Vec<f32>>> {
        self.score_hybrid_with(others, prompt_ids, &Slots::default(), answers)
            .await
    }

    /// [`Self::score_answer_ids_with`] for a hybrid prompt (`slots` in `prompt_ids`; empty for
    /// a text-only one): models with a projector add their item vectors at the slots.
    pub async fn score_hybrid_with(
        &self,
        others: &[&LanguageModel],
        prompt_ids: &[u32],
        slots: &Slots,
        answers: &[Vec<u32>],
    ) -> Result<Vec<Vec<f32>>> {
        if others.is_empty() && slots.is_empty() {
            return Ok(vec![self.score_answer_ids(prompt_ids, answers).await?]);
        }
        self.check_answer_ids(prompt_ids, answers)?;
        let models: Vec<&Llama> = std::iter::once(&self.model)
            .chain(others.iter().map(|o| &o.model))
            .collect();
        let split = models
            .iter()
            .map(|m| m.first_adapted_layer())
            .min()
            .unwrap_or(0);
        let frozen = FrozenAnswers::with_slots(&self.model, split, prompt_ids, slots, answers)?;
        let mut out = Vec::with_capacity(models.len());
        for m in models {
            out.push(read_f32(frozen.log_probs(m)?).await?);
        }
        Ok(out)
    }

    pub(crate) fn to_scores(
        &self,
        candidates: &[String],
        answers: &[Vec<u32>],
        sums: &[f32],
        options: ScoreOptions,
    ) -> Vec<CandidateScore> {
        candidates
            .iter()
            .zip(answers)
            .zip(sums)
            .enumerate()
            .map(|(index, ((title, a), &log_prob))| CandidateScore {
                index,
                title: title.clone(),
                log_prob,
                n_tokens: a.len(),
                score: if options.length_normalised {
                    log_prob / a.len() as f32
                } else {
                    log_prob
                },
            })
            .collect()
    }

    /// The same scores as [`Self::score_candidates`], computed the slow way: every candidate as
    /// its own full sequence (prompt + answer), no shared cache. The reference for tests and the
    /// baseline of `recalign bench rank`.
    pub async fn score_candidates_separately(
        &self,
        prompt_ids: &[u32],
        candidates: &[String],
        options: ScoreOptions,
    ) -> Result<Vec<CandidateScore>> {
        let (answers, _) = self.answers_that_fit(prompt_ids, candidates)?;
        let device = self.model.device();
        let p = prompt_ids.len();
        let mut sums = Vec::with_capacity(answers.len());
        for a in &answers {
            let seq: Vec<i64> = prompt_ids
                .iter()
                .chain(&a[..a.len() - 1])
                .map(|&t| t as i64)
                .collect();
            let len = seq.len();
            let hidden = self
                .model
                .forward(self.model.tokens(seq, 1, len), &mut KvCache::single_pass())?
                .narrow(1, p - 1, a.len());
            let targets = a.iter().map(|&t| t as i64).collect();
            let targets =
                Tensor::<2, Int>::from_data(TensorData::new(targets, [a.len(), 1]), device);
            let mask = Tensor::<2>::ones([1, a.len()], device);
            sums.extend(read_f32(masked_sums(&self.model, hidden, targets, mask)).await?);
        }
        Ok(self.to_scores(candidates, &answers, &sums, options))
    }

    /// Greedy continuation of `prompt_ids`, at most `max_new_tokens`, stopping at eos.
    pub async fn generate(&self, prompt_ids: &[u32], max_new_tokens: usize) -> Result<Generation> {
        self.generate_with(prompt_ids, &Slots::default(), max_new_tokens)
            .await
    }

    /// [`Self::generate`] from a hybrid prompt (`slots` in `prompt_ids`): a model with a
    /// projector adds its item vectors there when it reads the prompt.
    pub async fn generate_with(
        &self,
        prompt_ids: &[u32],
        slots: &Slots,
        max_new_tokens: usize,
    ) -> Result<Generation> {
        self.check_fits(prompt_ids.len(), max_new_tokens)?;
        let mut cache = KvCache::default();
        let mut input: Vec<i64> = prompt_ids.iter().map(|&t| t as i64).collect();
        let mut ids = Vec::new();
        let eos = self.tokenizer.eos_id();
        let mut prompt_slots = slots.tensors(prompt_ids.len(), self.model.device())?;
        while ids.len() < max_new_tokens {
            let len = input.len();
            let x = self
                .model
                .embed(self.model.tokens(std::mem::take(&mut input), 1, len));
            let layers = 0..self.model.config.n_layers;
            let slots = prompt_slots.take();
            let hidden = self.model.final_norm(self.model.forward_layers_with(
                x,
                layers,
                &mut cache,
                slots.as_ref(),
            )?);
            let d = self.model.config.hidden_size;
            let last = hidden.narrow(1, len - 1, 1).reshape([1, d]);
            let logits = read_f32(
                self.model
                    .logits(last)
                    .reshape([self.model.config.vocab_size]),
            )
            .await?;
            let next = argmax(&logits);
            ids.push(next);
            if next == eos {
                break;
            }
            input.push(next as i64);
        }
        let text = self.tokenizer.decode(&ids, false)?;
        Ok(Generation { ids, text })
    }

    /// Ranks `candidates` for a user with `history`, using the default recommendation prompt.
    pub async fn rank(
        &self,
        history: &[String],
        candidates: &[String],
        options: ScoreOptions,
    ) -> Result<Ranking> {
        let prompt = self
            .tokenizer
            .encode(&recommendation_prompt(history, candidates))?;
        let scores = self.score_candidates(&prompt, candidates, options).await?;
        Ok(Ranking {
            prompt_tokens: prompt.len(),
            ranked: rank_scores(scores),
        })
    }

    /// Ranks `candidates` for a user with `history` in the compact format (the history as a
    /// document of `domain` titles, each candidate scored as the next line), the format
    /// adapters trained with sequence SFT rank with.
    pub async fn rank_compact(
        &self,
        domain: crate::data::Domain,
        history: &[String],
        candidates: &[String],
        options: ScoreOptions,
    ) -> Result<Ranking> {
        if candidates.is_empty() {
            return Err(Error::EmptyCandidates);
        }
        let prompt = crate::prompt::compact_ids(&self.tokenizer, domain, history)?;
        let answers = candidates
            .iter()
            .map(|t| crate::prompt::compact_line_ids(&self.tokenizer, t))
            .collect::<Result<Vec<_>>>()?;
        let sums = self.score_answer_ids(&prompt, &answers).await?;
        Ok(Ranking {
            prompt_tokens: prompt.len(),
            ranked: rank_scores(self.to_scores(candidates, &answers, &sums, options)),
        })
    }

    /// Ranks in `format`: [`LanguageModel::rank`] (LLaRA's prompt) or
    /// [`LanguageModel::rank_compact`], as the adapter in use was trained.
    pub async fn rank_as(
        &self,
        format: crate::prompt::PromptFormat,
        domain: crate::data::Domain,
        history: &[String],
        candidates: &[String],
        options: ScoreOptions,
    ) -> Result<Ranking> {
        match format {
            crate::prompt::PromptFormat::Llara => self.rank(history, candidates, options).await,
            crate::prompt::PromptFormat::Compact => {
                self.rank_compact(domain, history, candidates, options)
                    .await
            }
        }
    }

    /// Greedy answer to `message` sent as a single ChatML user turn.
    pub async fn chat(&self, message: &str, max_new_tokens: usize) -> Result<Generation> {
        let ids = self.tokenizer.encode(&chatml_user(message))?;
        self.generate(&ids, max_new_tokens).await
    }
}

/// Sums of masked target log-probs per row: hidden `[n, len, d]`, targets `[n*len, 1]`.
pub(crate) fn masked_sums(
    model: &Llama,
    hidden: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Tensor<1> {
    let [n, len, d] = hidden.dims();
    let logits = model.logits(hidden.reshape([n * len, d]));
    let token_lp = log_softmax(logits, 1).gather(1, targets).reshape([n, len]);
    (token_lp * mask).sum_dim(1).reshape([n])
}

/// Sorts scores best first (stable on ties) and attaches ranks and choice probabilities.
pub fn rank_scores(mut scores: Vec<CandidateScore>) -> Vec<RankedCandidate> {
    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
    let max = scores.first().map_or(0.0, |s| s.score);
    let total: f32 = scores.iter().map(|s| (s.score - max).exp()).sum();
    scores
        .into_iter()
        .enumerate()
        .map(|(i, score)| RankedCandidate {
            rank: i + 1,
            probability: (score.score - max).exp() / total,
            candidate: score,
        })
        .collect()
}

/// Index of the largest value (the first on ties; NaN never wins).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(index: usize, score: f32) -> CandidateScore {
        CandidateScore {
            index,
            title: format!("t{index}"),
            log_prob: score,
            n_tokens: 1,
            score,
        }
    }

    #[test]
    fn ranking_sorts_best_first_and_probabilities_sum_to_one() {
        let ranked = rank_scores(vec![score(0, -3.0), score(1, -1.0), score(2, -2.0)]);
        let order: Vec<usize> = ranked.iter().map(|r| r.candidate.index).collect();
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(ranked[0].rank, 1);
        let total: f32 = ranked.iter().map(|r| r.probability).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(ranked[0].probability > ranked[1].probability);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, f32::NAN]), 1);
    }
}
