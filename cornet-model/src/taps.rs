//! Capturing module outputs during a forward pass, as the original's forward hooks did.
//!
//! Every module call is counted under its PyTorch name (`V4.output`, `V2.conv2`, ...); the k-th
//! call of a module is the tap `<module>.<k>`, which for `<area>.output` is the time step.

use crate::error::{Error, Result};
use candle_core::Tensor;
use std::collections::HashMap;

/// Which module calls to keep.
#[derive(Debug, Clone)]
pub enum TapFilter {
    /// Every `<area>.output` call and `decoder.avgpool`: the fixtures' tap set.
    AreaOutputs,
    /// Every call of every module.
    Everything,
    /// The listed taps: `V4.output.3` for one call, or `V4.output` for every call.
    Only(Vec<String>),
}

impl TapFilter {
    /// The selection of the original `run.py test --layer --sublayer --time_step`.
    pub fn layer(layer: &str, sublayer: &str, time_step: Option<usize>) -> Self {
        let module = format!("{layer}.{sublayer}");
        TapFilter::Only(vec![match time_step {
            Some(t) => format!("{module}.{t}"),
            None => module,
        }])
    }

    fn keeps(&self, module: &str, call: usize) -> bool {
        match self {
            TapFilter::Everything => true,
            TapFilter::AreaOutputs => module.ends_with(".output") || module == "decoder.avgpool",
            TapFilter::Only(names) => names.iter().any(|name| {
                name == module
                    || name
                        .strip_prefix(module)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .and_then(|k| k.parse::<usize>().ok())
                        == Some(call)
            }),
        }
    }
}

/// The tap recorder handed down through one forward pass.
#[derive(Debug, Default)]
pub struct Taps {
    filter: Option<TapFilter>,
    calls: HashMap<String, usize>,
    captured: Vec<(String, Tensor)>,
}

impl Taps {
    /// Records nothing: the plain forward pass.
    pub fn none() -> Self {
        Taps::default()
    }

    /// Records the calls `filter` selects.
    pub fn new(filter: TapFilter) -> Self {
        Taps {
            filter: Some(filter),
            ..Taps::default()
        }
    }

    pub(crate) fn record(&mut self, module: &str, value: &Tensor) {
        let Some(filter) = &self.filter else { return };
        let count = self.calls.entry(module.to_string()).or_insert(0);
        let call = *count;
        *count += 1;
        if filter.keeps(module, call) {
            self.captured
                .push((format!("{module}.{call}"), value.detach()));
        }
    }

    /// The captured taps in call order, named `<module>.<call>`.
    ///
    /// With an explicit selection, every requested tap must have been produced: asking for
    /// `V4.output.7` of a model whose V4 runs 4 steps is an error, not an empty result.
    pub fn finish(self) -> Result<Vec<(String, Tensor)>> {
        if let Some(TapFilter::Only(names)) = &self.filter {
            for name in names {
                let found = self.captured.iter().any(|(tap, _)| {
                    tap == name
                        || tap
                            .rsplit_once('.')
                            .is_some_and(|(module, _)| module == name)
                });
                if !found {
                    let mut known: Vec<_> = self
                        .calls
                        .iter()
                        .map(|(module, n)| format!("{module} (calls 0..{n})"))
                        .collect();
                    known.sort();
                    return Err(Error::InvalidConfig(format!(
                        "no tap `{name}` in this model; modules are: {}",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(self.captured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn run(filter: TapFilter, calls: &[&str]) -> Result<Vec<String>> {
        let mut taps = Taps::new(filter);
        let value = Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?;
        for module in calls {
            taps.record(module, &value);
        }
        Ok(taps.finish()?.into_iter().map(|(name, _)| name).collect())
    }

    const CALLS: [&str; 6] = [
        "V1.conv",
        "V1.output",
        "V2.output",
        "V2.output",
        "decoder.avgpool",
        "decoder.linear",
    ];

    #[test]
    fn calls_are_numbered_per_module() -> Result<()> {
        assert_eq!(
            run(TapFilter::AreaOutputs, &CALLS)?,
            [
                "V1.output.0",
                "V2.output.0",
                "V2.output.1",
                "decoder.avgpool.0"
            ]
        );
        assert_eq!(run(TapFilter::Everything, &CALLS)?.len(), CALLS.len());
        Ok(())
    }

    #[test]
    fn a_selection_by_module_keeps_every_call_and_by_call_one() -> Result<()> {
        assert_eq!(
            run(TapFilter::layer("V2", "output", None), &CALLS)?,
            ["V2.output.0", "V2.output.1"]
        );
        assert_eq!(
            run(TapFilter::layer("V2", "output", Some(1)), &CALLS)?,
            ["V2.output.1"]
        );
        Ok(())
    }

    #[test]
    fn asking_for_a_call_that_never_happens_is_an_error() {
        let err = run(TapFilter::layer("V2", "output", Some(2)), &CALLS).unwrap_err();
        assert!(err.to_string().contains("no tap `V2.output.2`"), "{err}");
        assert!(err.to_string().contains("V2.output (calls 0..2)"), "{err}");
    }
}
