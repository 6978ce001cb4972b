//! The model's state dict: every parameter and buffer under its PyTorch name, in PyTorch's order.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor, Var};
use std::collections::HashMap;

/// Whether the optimizer updates a tensor (a parameter) or the forward pass does (a buffer:
/// BatchNorm's running statistics and `num_batches_tracked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Trained by the optimizer.
    Parameter,
    /// Updated by the forward pass, or constant.
    Buffer,
}

/// One tensor of the state dict.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its PyTorch state-dict name, e.g. `V1.conv.weight`.
    pub name: String,
    /// The tensor, shared with the layer that uses it.
    pub var: Var,
    /// Whether the optimizer or the forward pass updates it.
    pub role: Role,
}

/// Named tensors in registration order, which is the order of PyTorch's `state_dict()`.
///
/// Layers hold clones of these `Var`s (they share storage), so loading weights into the store
/// loads them into the network.
#[derive(Debug, Default)]
pub struct ParamStore {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    pub(crate) fn insert(&mut self, name: String, tensor: Tensor, role: Role) -> Result<Var> {
        if self.index.contains_key(&name) {
            return Err(Error::InvalidConfig(format!("`{name}` registered twice")));
        }
        let var = Var::from_tensor(&tensor)?;
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push(Entry {
            name,
            var: var.clone(),
            role,
        });
        Ok(var)
    }

    /// Every entry, parameters and buffers, in state-dict order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The trainable parameters, in state-dict order.
    pub fn parameters(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.role == Role::Parameter)
    }

    /// The tensor of state-dict name `name`, if the model has one.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.index.get(name).map(|&i| &self.entries[i].var)
    }

    /// A snapshot of every entry (detached copies, safe to keep while training goes on).
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        self.entries
            .iter()
            .map(|e| Ok((e.name.clone(), e.var.as_detached_tensor().copy()?)))
            .collect()
    }

    /// Loads a complete state dict, as PyTorch's `load_state_dict(strict=True)`: every key must
    /// be present with the right shape and no other key may appear. Values are converted to each
    /// entry's dtype and device. Nothing is written unless everything checks out.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let mut expected: Vec<_> = self.entries.iter().collect();
        expected.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in &expected {
            let want = entry.var.dims();
            match tensors.get(&entry.name) {
                None => {
                    return Err(Error::MissingKey {
                        key: entry.name.clone(),
                        expected: want.to_vec(),
                    })
                }
                Some(t) if t.dims() != want => {
                    return Err(Error::ShapeMismatch {
                        key: entry.name.clone(),
                        expected: want.to_vec(),
                        found: t.dims().to_vec(),
                    })
                }
                Some(_) => {}
            }
        }
        let mut extra: Vec<_> = tensors
            .keys()
            .filter(|k| !self.index.contains_key(*k))
            .collect();
        extra.sort();
        if let Some(key) = extra.first() {
            return Err(Error::UnexpectedKey {
                key: (*key).clone(),
                found: tensors[*key].dims().to_vec(),
            });
        }
        for entry in &self.entries {
            let value = tensors[&entry.name]
                .to_dtype(entry.var.dtype())?
                .to_device(entry.var.device())?;
            entry.var.set(&value)?;
        }
        Ok(())
    }
}

/// How a freshly built model fills a parameter, following the original's initialisation.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Const(f64),
    /// Uniform on [-bound, bound].
    Uniform(f64),
    /// Normal with mean 0.
    Normal(f64),
}

/// Registers parameters and buffers under dotted names while the network is built.
pub(crate) struct Builder {
    pub store: ParamStore,
    device: Device,
    rng: rand::rngs::StdRng,
}

impl Builder {
    pub fn new(device: &Device, seed: u64) -> Self {
        use rand::SeedableRng;
        Builder {
            store: ParamStore::default(),
            device: device.clone(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn param(&mut self, name: String, shape: &[usize], init: Init) -> Result<Tensor> {
        use rand_distr::{Distribution, Normal, Uniform};
        let n: usize = shape.iter().product();
        let values: Vec<f32> = match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform(bound) => {
                let dist = Uniform::new_inclusive(-bound, bound)
                    .map_err(|e| Error::InvalidConfig(format!("{name}: {e}")))?;
                (0..n).map(|_| dist.sample(&mut self.rng) as f32).collect()
            }
            Init::Normal(std) => {
                let dist = Normal::new(0.0, std)
                    .map_err(|e| Error::InvalidConfig(format!("{name}: {e}")))?;
                (0..n).map(|_| dist.sample(&mut self.rng) as f32).collect()
            }
        };
        let tensor = Tensor::from_vec(values, shape, &self.device)?;
        Ok(self
            .store
            .insert(name, tensor, Role::Parameter)?
            .as_tensor()
            .clone())
    }

    pub fn buffer(&mut self, name: String, tensor: Tensor) -> Result<Var> {
        self.store.insert(name, tensor, Role::Buffer)
    }
}
