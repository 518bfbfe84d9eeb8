//! LLaRA's hybrid item input inside the decoder: the positions of a prompt's item slots and the
//! trained projector whose output is added to the residual stream at them.

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Error, Result};

/// LLaRA's projector: a conventional recommender's item vector `[d_item]` to a vector the
/// decoder adds to its residual stream at an item's slot, `gelu(v U) D`. `D` starts at zero,
/// so a fresh projector leaves the model exactly as it was (the text-only model): the start of
/// LLaRA's curriculum from text-only to hybrid, reached by training rather than by a schedule.
/// No biases, so every trainable tensor is 2-d like the LoRA factors.
#[derive(Module, Debug)]
pub struct Projector {
    /// The oracle's item vectors `[rows, d_item]`, frozen.
    pub items: Param<Tensor<2>>,
    /// `[d_item, hidden]`.
    pub up: Param<Tensor<2>>,
    /// `[hidden, hidden]`.
    pub down: Param<Tensor<2>>,
    /// The layer whose input receives the projected vectors: the adapter's lowest adapted
    /// layer, so the frozen layers below still depend on the tokens alone (their outputs stay
    /// cacheable) and backward stops where it does without a projector.
    pub layer: usize,
    /// The items the table's rows stand for, carried so the trained adapter keeps them.
    #[module(skip)]
    pub catalogue: Option<std::sync::Arc<crate::hybrid::ItemCatalogue>>,
}

impl Projector {
    /// Projected vectors `[n, hidden]` of item vectors `[n, d_item]`.
    pub fn forward(&self, items: Tensor<2>) -> Tensor<2> {
        gelu(items.matmul(self.up.val())).matmul(self.down.val())
    }

    /// `x` `[1, t, hidden]` with the projection of the item table's `rows` `[n]` added at the
    /// positions `place` `[t, n]` (one 1 per column) gives them: one thin matmul instead of a
    /// scatter, which autodiff and every backend support alike.
    ///
    /// `place` is `[t, n]` for one prompt (broadcast over a batch of rows that share it) or
    /// `[b * t, n]` for a batch whose rows each have their own slots.
    ///
    /// The vector is added in units of the stream's own RMS at that position (a constant for
    /// the gradient): by the upper layers the residual stream of a pretrained decoder is far
    /// larger than anything a fresh projector writes, and scaled this way a projector entry of
    /// 0.1 means a tenth of the stream wherever it is injected.
    pub fn add_to(&self, x: Tensor<3>, place: Tensor<2>, rows: Tensor<1, Int>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let items = self.items.val().select(0, rows);
        let added = place.matmul(self.forward(items));
        let added = if added.dims()[0] == b * t && b > 1 {
            added.reshape([b, t, d])
        } else {
            added.unsqueeze::<3>()
        };
        let rms = x.clone().detach().square().mean_dim(2).sqrt();
        x + added * rms
    }
}

/// Where a hybrid prompt's slots are and which item rows they hold, as tensors for
/// [`Projector::add_to`]: the placement `[positions, n]` and the rows `[n]`
/// ([`Slots::tensors`] builds them).
pub type SlotTensors = (Tensor<2>, Tensor<1, Int>);

/// A hybrid prompt's slots ([`crate::hybrid`]): each slot's position and its item's table row.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slots {
    /// Slot positions in the prompt, ascending.
    pub positions: Vec<u32>,
    /// The item table row of each slot (item index + 1).
    pub rows: Vec<u32>,
}

impl Slots {
    /// Whether the prompt has no slot (a text-only prompt).
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The placement matrix `[len, n]` (a 1 at each slot's position in its column) and the
    /// rows `[n]`, for [`Projector::add_to`]; `None` without slots. Slots at or after `len` are
    /// an error (they belong to a longer prompt).
    pub fn tensors(
        &self,
        len: usize,
        device: &Device,
    ) -> Result<Option<(Tensor<2>, Tensor<1, Int>)>> {
        let n = self.positions.len();
        if n == 0 {
            return Ok(None);
        }
        let mut place = vec![0f32; len * n];
        for (j, &p) in self.positions.iter().enumerate() {
            let p = p as usize;
            if p >= len {
                return Err(Error::Model(format!(
                    "a hybrid slot at position {p} lies outside the {len} prompt tokens it is run with"
                )));
            }
            place[p * n + j] = 1.0;
        }
        let rows = self.rows.iter().map(|&r| i64::from(r)).collect();
        Ok(Some((
            Tensor::from_data(TensorData::new(place, [len, n]), device),
            Tensor::from_data(TensorData::new(rows, [n]), device),
        )))
    }
}
