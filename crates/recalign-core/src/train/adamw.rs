//! AdamW whose moments we hold, so a checkpoint reads them asynchronously.
//!
//! Burn 0.22's `ModuleOptimizer` serialises its state only through synchronous reads
//! (`to_record` → `TensorData`), which panic on a browser's WebGPU; the page could then not
//! checkpoint a run, and a reload would lose it. This is burn-optim's `AdamW` (no AMSGrad, no
//! cautious decay) with the same operations in the same order, so the numbers do not change
//! (the test below compares both bit for bit), and its state is plain tensors keyed by parameter id.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::lm::read_f32;
use crate::{Error, Result};

/// burn-optim's AdamW defaults, which the runs before this module used.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// One parameter's moments on its device.
struct Moments {
    time: usize,
    first: Tensor<1>,
    second: Tensor<1>,
}

/// One parameter's moments as a checkpoint stores them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamMoments {
    /// Steps this parameter has taken.
    pub time: usize,
    /// First moment, flattened.
    pub first: Vec<f32>,
    /// Second moment, flattened.
    pub second: Vec<f32>,
}

/// The optimiser state of a run, keyed by parameter id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Moments per parameter id.
    pub params: BTreeMap<u64, ParamMoments>,
}

/// Decoupled-weight-decay Adam over a module's parameters that have gradients.
pub(crate) struct AdamW {
    weight_decay: f32,
    moments: HashMap<ParamId, Moments>,
    /// Moments restored from a checkpoint, placed on each parameter's device at its next step.
    stored: HashMap<ParamId, ParamMoments>,
}

impl AdamW {
    pub(crate) fn new(weight_decay: f32) -> Self {
        Self {
            weight_decay,
            moments: HashMap::new(),
            stored: HashMap::new(),
        }
    }

    /// Applies one step at learning rate `lr` to every parameter of `module` in `grads`.
    pub(crate) fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        module.map(&mut StepMapper {
            optim: self,
            grads: &mut grads,
            lr,
        })
    }

    /// Reads every moment back (one read per tensor; no synchronous read anywhere).
    pub(crate) async fn state(&self) -> Result<OptimizerState> {
        let mut params: BTreeMap<u64, ParamMoments> = self
            .stored
            .iter()
            .map(|(id, p)| (id.val(), p.clone()))
            .collect();
        for (id, m) in &self.moments {
            params.insert(
                id.val(),
                ParamMoments {
                    time: m.time,
                    first: read_f32(m.first.clone()).await?,
                    second: read_f32(m.second.clone()).await?,
                },
            );
        }
        Ok(OptimizerState { params })
    }

    /// Takes `state` as the moments to continue from (placed on each parameter's device at its
    /// next step).
    pub(crate) fn restore(&mut self, state: &OptimizerState) {
        self.moments.clear();
        self.stored = state
            .params
            .iter()
            .map(|(id, p)| (ParamId::from(*id), p.clone()))
            .collect();
    }
}

struct StepMapper<'a> {
    optim: &'a mut AdamW,
    grads: &'a mut GradientsParams,
    lr: f64,
}

impl ModuleMapper for StepMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let device = tensor.device();
        let tensor: Tensor<1> = tensor.inner().reshape([n]);
        let grad: Tensor<1> = grad.reshape([n]);
        let (factor_1, factor_2) = (1.0 - BETA_1, 1.0 - BETA_2);
        let live = self.optim.moments.remove(&id);
        let stored = self.optim.stored.remove(&id);
        let (time, first, second) = match (live, stored) {
            (Some(m), _) => (
                m.time + 1,
                m.first
                    .mul_scalar(BETA_1)
                    .add(grad.clone().mul_scalar(factor_1)),
                m.second
                    .mul_scalar(BETA_2)
                    .add(grad.square().mul_scalar(factor_2)),
            ),
            (None, Some(p)) if p.first.len() == n && p.second.len() == n => {
                let load = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
                (
                    p.time + 1,
                    load(p.first)
                        .mul_scalar(BETA_1)
                        .add(grad.clone().mul_scalar(factor_1)),
                    load(p.second)
                        .mul_scalar(BETA_2)
                        .add(grad.square().mul_scalar(factor_2)),
                )
            }
            // No state yet (or a stored one of another size, which `check_state` refuses before
            // a run gets here): start as burn-optim does.
            _ => (
                1,
                grad.clone().mul_scalar(factor_1),
                grad.square().mul_scalar(factor_2),
            ),
        };
        let t = time as i32;
        let first_corrected = first.clone().div_scalar(1f32 - BETA_1.powi(t));
        let second_corrected = second.clone().div_scalar(1f32 - BETA_2.powi(t));
        let delta = first_corrected.div(second_corrected.sqrt().add_scalar(EPSILON));
        let decay = self.lr * f64::from(self.optim.weight_decay);
        let decayed = if decay == 0.0 {
            tensor
        } else {
            tensor.mul_scalar(1.0 - decay)
        };
        let updated = decayed - delta.mul_scalar(self.lr);
        self.optim.moments.insert(
            id,
            Moments {
                time,
                first,
                second,
            },
        );
        let mut updated = Tensor::<D>::from_inner(updated.reshape(shape));
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// Refuses a stored state whose parameters or sizes do not match `module`'s trainable ones.
pub(crate) fn check_state<M: Module>(state: &OptimizerState, module: &M) -> Result<()> {
    let mut sizes = TrainableSizes::default();
    module.visit(&mut sizes);
    for (id, p) in &state.params {
        match sizes.0.get(id) {
            Some(&n) if p.first.len() == n && p.second.len() == n => {}
            Some(&n) => {
                return Err(Error::Train(format!(
                    "checkpoint: the optimiser state of parameter {id} has {} values, the \
                     adapter's factor {n}",
                    p.first.len()
                )));
            }
            None => {
                return Err(Error::Train(format!(
                    "checkpoint: optimiser state for parameter {id}, which this run does not train"
                )));
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct TrainableSizes(HashMap<u64, usize>);

impl ModuleVisitor for TrainableSizes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        if t.is_require_grad() {
            self.0.insert(param.id.val(), t.shape().num_elements());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::AdamWConfig;
    use burn::tensor::{Device, Distribution};

    #[derive(Module, Debug)]
    struct Factors {
        a: Param<Tensor<2>>,
        b: Param<Tensor<2>>,
    }

    fn factors(device: &Device) -> Factors {
        let p = |rows, cols, seed| {
            let t = Tensor::<2>::from_data(
                TensorData::new(
                    (0..rows * cols)
                        .map(|i| ((i * 7 + seed) % 13) as f32 / 13.0 - 0.5)
                        .collect::<Vec<f32>>(),
                    [rows, cols],
                ),
                device,
            );
            Param::from_tensor(t.require_grad())
        };
        Factors {
            a: p(3, 4, 1),
            b: p(4, 2, 5),
        }
    }

    fn grads(f: &Factors, x: &Tensor<2>) -> GradientsParams {
        let y = x.clone().matmul(f.a.val()).matmul(f.b.val());
        let loss = (y.clone() * y).sum();
        GradientsParams::from_grads(loss.backward(), f)
    }

    fn values(f: &Factors) -> Vec<f32> {
        let mut v = f.a.val().inner().into_data().try_to_vec::<f32>().unwrap();
        v.extend(f.b.val().inner().into_data().try_to_vec::<f32>().unwrap());
        v
    }

    /// Same steps as burn-optim's AdamW, bit for bit, and a restored state continues exactly.
    #[test]
    fn matches_burn_adamw_and_resumes_exactly() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([5, 3], Distribution::Normal(0.0, 1.0), &device);
        let (mut ours, mut burns) = (factors(&device), factors(&device));
        let mut adamw = AdamW::new(0.01);
        let mut reference = AdamWConfig::new().with_weight_decay(0.01).init();
        let lrs = [1e-2, 5e-3, 2e-3, 1e-3];
        let mut saved = None;
        for (step, lr) in lrs.iter().enumerate() {
            let g = grads(&ours, &x);
            ours = adamw.step(*lr, ours, g);
            let g = grads(&burns, &x);
            burns = reference.step(*lr, burns, g);
            assert_eq!(values(&ours), values(&burns), "step {step}");
            if step == 1 {
                saved = Some((pollster::block_on(adamw.state()).unwrap(), values(&ours)));
            }
        }
        // Continue from the state after step 2 with a fresh optimiser and fresh parameters.
        let (state, after_two) = saved.unwrap();
        let mut resumed = AdamW::new(0.01);
        resumed.restore(&state);
        let mut f = factors(&device);
        // The trainer keeps parameter ids across a resume (`CheckpointState::factor_ids`).
        let set = |id: ParamId, p: &Param<Tensor<2>>, v: &[f32]| {
            let dims = p.val().dims();
            Param::initialized(
                id,
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), dims), &device).require_grad(),
            )
        };
        f.a = set(ours.a.id, &f.a, &after_two[..12]);
        f.b = set(ours.b.id, &f.b, &after_two[12..]);
        check_state(&state, &f).unwrap();
        for lr in &lrs[2..] {
            let g = grads(&f, &x);
            f = resumed.step(*lr, f, g);
        }
        assert_eq!(values(&f), values(&ours));
    }
}
