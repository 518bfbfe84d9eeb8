//! The model's byte-level BPE tokenizer, rebuilt from GGUF metadata with the `tokenizers` crate,
//! and the ChatML template SmolLM2-Instruct was trained with.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// GGUF token type of control tokens (`<|im_start|>` and friends).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF token type of user-defined added tokens.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Text to token ids and back, for one model.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    eos_id: u32,
    vocab_size: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl TextTokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata. Only byte-level BPE (`gpt2`)
    /// vocabularies are supported; `smollm`-style pre-tokenisation splits digits one by one.
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Self> {
        let model = gguf.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model is {model:?}; only byte-level BPE (\"gpt2\") is supported"
            )));
        }
        let tokens = gguf.get_strings("tokenizer.ggml.tokens")?;
        let merges = gguf.get_strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = match gguf.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .as_array()
                .unwrap_or_default()
                .iter()
                .map(|t| t.as_u64().map_or(1, |t| t as i64))
                .collect(),
            None => Vec::new(),
        };
        let pre = gguf
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let eos_id = gguf.get_u64("tokenizer.ggml.eos_token_id")? as u32;
        if eos_id as usize >= tokens.len() {
            return Err(Error::Tokenizer(format!(
                "eos token id {eos_id} is outside the vocabulary of {} tokens",
                tokens.len()
            )));
        }

        let mut vocab = Vocab::default();
        for (id, tok) in tokens.iter().enumerate() {
            vocab.insert((*tok).to_string(), id as u32);
        }
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| Error::Tokenizer(format!("merge #{i} {m:?} is not two tokens")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(tok_err)?;

        let mut inner = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            // StarCoder-family vocabularies (SmolLM2 included) give every digit its own token.
            "smollm" | "starcoder" | "refact" => {
                Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            _ => byte_level.into(),
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .enumerate()
            .filter(|(id, _)| {
                matches!(
                    types.get(*id),
                    Some(&TOKEN_TYPE_CONTROL) | Some(&TOKEN_TYPE_USER_DEFINED)
                )
            })
            .map(|(_, t)| AddedToken::from((*t).to_string(), true))
            .collect();
        inner.add_special_tokens(&specials);

        Ok(Self {
            inner,
            eos_id,
            vocab_size: tokens.len(),
        })
    }

    /// Token ids of `text`. Control tokens written in the text (`<|im_start|>`) become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`, control tokens included when `keep_special` is set.
    pub fn decode(&self, ids: &[u32], keep_special: bool) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(Error::Tokenizer(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.vocab_size
            )));
        }
        self.inner.decode(ids, !keep_special).map_err(tok_err)
    }

    /// The end-of-sequence id (for SmolLM2-Instruct, `<|im_end|>`).
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

/// One turn of a chat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatTurn {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
}

/// The ChatML text of `turns`, followed by the assistant header so the model answers next.
///
/// SmolLM2's GGUF template inserts a default system turn; recalign does not, so prompts stay short
/// and match the reference token ids in the tests.
pub fn chatml(turns: &[ChatTurn]) -> String {
    let mut s = String::new();
    for t in turns {
        s.push_str("<|im_start|>");
        s.push_str(&t.role);
        s.push('\n');
        s.push_str(&t.content);
        s.push_str("<|im_end|>\n");
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

/// The ChatML text of a single user message.
pub fn chatml_user(content: &str) -> String {
    chatml(&[ChatTurn {
        role: "user".into(),
        content: content.into(),
    }])
}
