//! What a score measures: which metrics are asked for, and the scores they give.

use serde::Serialize;

/// Which scores to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Representational similarity analysis (Spearman and Pearson).
    Rsa,
    /// Linear centred kernel alignment.
    Cka,
    /// Cross-validated PLS predictivity, with the split-half noise ceiling.
    Pls,
    /// All of them.
    All,
}

impl Metric {
    /// Whether asking for `self` asks for `metric`.
    pub fn includes(self, metric: Metric) -> bool {
        self == metric || self == Metric::All
    }
}

/// The scores of one set of features; those not asked for (or undefined) are `None`.
#[derive(Debug, Default, Serialize)]
pub struct Scores {
    /// Spearman correlation of the model's and the neural RDMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_spearman: Option<f64>,
    /// Pearson correlation of the model's and the neural RDMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_pearson: Option<f64>,
    /// Linear CKA of the features and the mean responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cka_linear: Option<f64>,
    /// Median over neuroids of the cross-validated PLS prediction's r.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictivity_raw: Option<f64>,
    /// Median over neuroids of the split-half noise ceiling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<f64>,
    /// `predictivity_raw / ceiling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictivity_ceiled: Option<f64>,
    /// The PLS prediction's r per neuroid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r_neuroid: Option<Vec<f64>>,
    /// The ceiling per neuroid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_neuroid: Option<Vec<f64>>,
}

impl Scores {
    /// The scalar scores as (JSON name, label, value), in the order a table shows them.
    pub fn scalars(&self) -> [(&'static str, &'static str, Option<f64>); 6] {
        [
            ("rsa_spearman", "RSA (Spearman)", self.rsa_spearman),
            ("rsa_pearson", "RSA (Pearson)", self.rsa_pearson),
            ("cka_linear", "linear CKA", self.cka_linear),
            (
                "predictivity_raw",
                "PLS predictivity (raw, median r)",
                self.predictivity_raw,
            ),
            ("ceiling", "noise ceiling (split-half)", self.ceiling),
            (
                "predictivity_ceiled",
                "PLS predictivity / ceiling",
                self.predictivity_ceiled,
            ),
        ]
    }
}
