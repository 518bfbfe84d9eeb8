//! Parses a GGUF header, its metadata and tensor infos from a borrowed byte slice.

use std::collections::BTreeMap;

use super::{DEFAULT_ALIGNMENT, GgmlType, GgufError, MAGIC, dequantize};

/// A metadata value, with every type GGUF defines.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lives and how it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as GGUF stores them.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Dimensions in row-major order (outermost first), as Burn and PyTorch write them.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A parsed GGUF file borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    /// Format version (2 or 3).
    pub version: u32,
    /// All metadata, by key.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data-section alignment.
    pub alignment: u64,
    data: &'a [u8],
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        if n > remaining {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                len: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what: what() })
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn value(&mut self, type_id: u32, key: &str, depth: u32) -> Result<MetaValue, GgufError> {
        let what = || format!("metadata value of {key:?}");
        Ok(match type_id {
            0 => MetaValue::U8(u8::from_le_bytes(self.array(&what)?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => {
                let [b] = self.array(&what)?;
                MetaValue::Bool(b != 0)
            }
            8 => MetaValue::String(self.string(&what)?),
            9 if depth < 4 => {
                let inner = self.u32(&what)?;
                let n = self.u64(&what)?;
                // Every element takes at least one byte: a count beyond the remaining bytes is a
                // truncated (or hostile) file, refused before reserving memory for it.
                if n > self.remaining() {
                    return Err(GgufError::Truncated {
                        what: format!("array {key:?} of {n} elements"),
                        offset: self.pos as u64,
                        needed: n,
                        len: self.bytes.len() as u64,
                    });
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(inner, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(&what)?)),
            _ => {
                return Err(GgufError::UnknownValueType {
                    key: key.to_string(),
                    type_id,
                });
            }
        })
    }
}

impl<'a> Gguf<'a> {
    /// Parses the header, metadata and tensor infos, and checks that every tensor's data lies
    /// inside the buffer. Tensor data is decoded lazily by [`Gguf::tensor_f32`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        let mut c = Cursor { bytes, pos: 0 };
        let magic: [u8; 4] = match bytes.get(..4) {
            Some(m) => m.try_into().unwrap_or_default(),
            None => {
                return Err(GgufError::Truncated {
                    what: "the GGUF magic".into(),
                    offset: 0,
                    needed: 4,
                    len: bytes.len() as u64,
                });
            }
        };
        if magic != MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        c.pos = 4;
        let version = c.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = c.u64(&|| "the tensor count".into())?;
        let n_kv = c.u64(&|| "the metadata count".into())?;

        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let type_id = c.u32(&|| format!("type of metadata key {key:?}"))?;
            let value = c.value(type_id, &key, 0)?;
            metadata.insert(key, value);
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v.as_u64().ok_or(GgufError::WrongKeyType {
                key: "general.alignment".into(),
                expected: "an unsigned integer",
            })?,
        };
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(GgufError::BadAlignment(alignment));
        }

        // Each tensor info takes at least 24 bytes; refuse counts the file cannot hold.
        if n_tensors > c.remaining() / 24 + 1 {
            return Err(GgufError::Truncated {
                what: format!("{n_tensors} tensor infos"),
                offset: c.pos as u64,
                needed: n_tensors.saturating_mul(24),
                len: bytes.len() as u64,
            });
        }
        let mut infos = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&|| format!("name of tensor #{i}"))?;
            let what = || format!("info of tensor {name:?}");
            let n_dims = c.u32(&what)?;
            if n_dims == 0 || n_dims > 4 {
                return Err(GgufError::BadShape {
                    name,
                    dims: vec![],
                    reason: format!("{n_dims} dimensions (GGUF allows 1 to 4)"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&what)?);
            }
            let type_id = c.u32(&what)?;
            let offset = c.u64(&what)?;
            let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
                name: name.clone(),
                type_id,
            })?;
            infos.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
            });
        }

        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let data = bytes.get(data_start as usize..).unwrap_or(&[]);
        let gguf = Gguf {
            version,
            metadata,
            tensors: infos,
            alignment,
            data,
        };
        for info in &gguf.tensors {
            gguf.tensor_bytes(info)?;
        }
        Ok(gguf)
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.metadata
            .get(key)
            .ok_or_else(|| GgufError::MissingKey(key.into()))
    }

    /// A metadata value that must be an unsigned integer.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get(key)?.as_u64().ok_or(GgufError::WrongKeyType {
            key: key.into(),
            expected: "an unsigned integer",
        })
    }

    /// A metadata value that must be a number.
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        self.get(key)?.as_f64().ok_or(GgufError::WrongKeyType {
            key: key.into(),
            expected: "a number",
        })
    }

    /// A metadata value that must be a string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.as_str().ok_or(GgufError::WrongKeyType {
            key: key.into(),
            expected: "a string",
        })
    }

    /// A metadata value that must be an array of strings.
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let wrong = || GgufError::WrongKeyType {
            key: key.into(),
            expected: "an array of strings",
        };
        self.get(key)?
            .as_array()
            .ok_or_else(wrong)?
            .iter()
            .map(|v| v.as_str().ok_or_else(wrong))
            .collect()
    }

    /// The info of a tensor by name.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GgufError::MissingTensor(name.into()))
    }

    /// The raw stored bytes of a tensor, bounds-checked.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&'a [u8], GgufError> {
        let bad_shape = |reason: String| GgufError::BadShape {
            name: info.name.clone(),
            dims: info.dims.clone(),
            reason,
        };
        let n = info
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad_shape("element count overflows".into()))?;
        let (block, block_bytes) = info.ty.block();
        if !info.dims[0].is_multiple_of(block) {
            return Err(bad_shape(format!(
                "the innermost dimension is not a multiple of the {} block size {block}",
                info.ty.name()
            )));
        }
        let size = (n / block)
            .checked_mul(block_bytes)
            .ok_or_else(|| bad_shape("byte size overflows".into()))?;
        let end = info.offset.checked_add(size);
        let len = self.data.len() as u64;
        match end {
            Some(end) if end <= len => Ok(&self.data[info.offset as usize..end as usize]),
            _ => Err(GgufError::TensorOutOfBounds {
                name: info.name.clone(),
                start: info.offset,
                end: end.unwrap_or(u64::MAX),
                len,
            }),
        }
    }

    /// A tensor by name, dequantised to f32, with its row-major shape.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), GgufError> {
        let info = self.tensor_info(name)?;
        let bytes = self.tensor_bytes(info)?;
        let values = dequantize(info.ty, bytes, info.n_elements() as usize).ok_or_else(|| {
            GgufError::UnsupportedTensorType {
                name: info.name.clone(),
                ty: info.ty.name(),
            }
        })?;
        Ok((values, info.shape()))
    }
}
