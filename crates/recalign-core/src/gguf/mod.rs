//! GGUF (v2/v3) reading and writing: bytes in, typed metadata and f32 tensors out.
//!
//! The reader never touches the file system and never trusts a count or offset from the file: every
//! length is checked against the bytes actually present before anything is allocated, so a
//! truncated or hostile file gives a [`GgufError`] naming what is wrong, never a panic.

mod dequant;
mod reader;
mod writer;

pub use dequant::{GgmlType, dequantize};
pub use reader::{Gguf, MetaValue, TensorInfo};
pub use writer::GgufWriter;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Tensor data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Why a byte buffer is not a usable GGUF file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    /// The buffer ends before a field it must contain.
    #[error(
        "truncated: {what} needs {needed} bytes at offset {offset}, but the file has {len} bytes \
         (was the download interrupted?)"
    )]
    Truncated {
        /// The field being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Total file length.
        len: u64,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: it starts with {found:02x?} instead of \"GGUF\"")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A GGUF version other than 2 or 3.
    #[error("GGUF version {0} is not supported (only versions 2 and 3)")]
    UnsupportedVersion(u32),
    /// A metadata value has a type id outside the specification.
    #[error("metadata key {key:?} has unknown value type {type_id}")]
    UnknownValueType {
        /// The metadata key.
        key: String,
        /// The type id found.
        type_id: u32,
    },
    /// A tensor has a type id this reader does not know at all.
    #[error("tensor {name:?} has unknown ggml type {type_id}")]
    UnknownTensorType {
        /// Tensor name.
        name: String,
        /// The type id found.
        type_id: u32,
    },
    /// A tensor's type is known but cannot be dequantised here.
    #[error(
        "tensor {name:?} is stored as {ty}, which recalign cannot dequantise \
         (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K)"
    )]
    UnsupportedTensorType {
        /// Tensor name.
        name: String,
        /// The ggml type name.
        ty: &'static str,
    },
    /// A tensor's data would extend past the end of the file.
    #[error(
        "tensor {name:?} needs bytes {start}..{end} of the data section, which has only {len} \
         bytes (truncated file?)"
    )]
    TensorOutOfBounds {
        /// Tensor name.
        name: String,
        /// Start of its data, relative to the data section.
        start: u64,
        /// End of its data.
        end: u64,
        /// Length of the data section.
        len: u64,
    },
    /// A tensor's shape is impossible (zero or too many dimensions, overflow, not whole blocks).
    #[error("tensor {name:?} has an invalid shape {dims:?}: {reason}")]
    BadShape {
        /// Tensor name.
        name: String,
        /// Dimensions as stored (innermost first).
        dims: Vec<u64>,
        /// Why it is invalid.
        reason: String,
    },
    /// A string field is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        what: String,
    },
    /// A metadata key the model needs is absent.
    #[error("metadata key {0:?} is missing")]
    MissingKey(String),
    /// A metadata key has a type other than the one needed.
    #[error("metadata key {key:?} should be {expected}")]
    WrongKeyType {
        /// The key.
        key: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A tensor the model needs is absent.
    #[error("tensor {0:?} is missing")]
    MissingTensor(String),
    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment {0} is not a power of two")]
    BadAlignment(u64),
}
