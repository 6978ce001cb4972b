//! Arrays from numpy's files, read one way everywhere: a `.npy` file, or `archive.npz:name`
//! for one array of an `.npz` (as numpy's `np.savez` writes them). Extraction reads its
//! preprocessed images and scoring its features, recordings, folds and split halves here.

use crate::error::{Cause, Explain};
use std::path::Path;

/// An array that could not be read: a missing file or entry, not `.npy`, another dtype or
/// order. The message names the file (and the entry).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ArrayError(pub String, #[source] pub Option<Cause>);

/// What reading arrays returns.
pub type Result<T, E = ArrayError> = std::result::Result<T, E>;

/// An array's shape and its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// The size of each axis.
    pub shape: Vec<usize>,
    /// The elements, the last axis fastest.
    pub values: Vec<T>,
}

/// An array of float32 or float64, as f64.
pub fn read_f64(path: &Path) -> Result<Array<f64>> {
    read_floats(path, f64::from, |v| v)
}

/// An array of float32 or float64, as f32 (float64 rounded).
pub fn read_f32(path: &Path) -> Result<Array<f32>> {
    read_floats(path, |v| v, |v| v as f32)
}

/// An array of int64.
pub fn read_i64(path: &Path) -> Result<Array<i64>> {
    let bytes = npy_bytes(path)?;
    let npy = parse(path, &bytes)?;
    let shape = shape_of(&npy);
    let values = npy
        .into_vec::<i64>()
        .explain(ArrayError, || format!("{}: expected int64", path.display()))?;
    Ok(Array { shape, values })
}

fn read_floats<T>(
    path: &Path,
    from_f32: impl Fn(f32) -> T,
    from_f64: impl Fn(f64) -> T,
) -> Result<Array<T>> {
    let bytes = npy_bytes(path)?;
    let npy = parse(path, &bytes)?;
    if npy.order() != npyz::Order::C {
        let message = format!(
            "{}: Fortran-ordered arrays are not supported",
            path.display()
        );
        return Err(ArrayError(message, None));
    }
    let shape = shape_of(&npy);
    let cut_short = || format!("reading {}", path.display());
    let values = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {
            let values = npy.into_vec::<f32>().explain(ArrayError, cut_short)?;
            values.into_iter().map(from_f32).collect()
        }
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 => {
            let values = npy.into_vec::<f64>().explain(ArrayError, cut_short)?;
            values.into_iter().map(from_f64).collect()
        }
        other => {
            let message = format!(
                "{}: expected float32 or float64, got numpy dtype {}",
                path.display(),
                other.descr()
            );
            return Err(ArrayError(message, None));
        }
    };
    Ok(Array { shape, values })
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<npyz::NpyFile<&'a [u8]>> {
    npyz::NpyFile::new(bytes).explain(ArrayError, || {
        format!("{}: not an .npy file", path.display())
    })
}

fn shape_of(npy: &npyz::NpyFile<&[u8]>) -> Vec<usize> {
    npy.shape().iter().map(|&d| d as usize).collect()
}

/// The .npy bytes of `path`: a `.npy` file, or `archive.npz:name` for one array of an
/// `.npz`.
fn npy_bytes(path: &Path) -> Result<Vec<u8>> {
    let text = path.to_string_lossy();
    let Some((archive, name)) = text.split_once(".npz:") else {
        return std::fs::read(path).explain(ArrayError, || format!("reading {}", path.display()));
    };
    let archive = format!("{archive}.npz");
    let file =
        std::fs::File::open(&archive).explain(ArrayError, || format!("reading {archive}"))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .explain(ArrayError, || format!("{archive}: not an .npz archive"))?;
    let mut entry = zip
        .by_name(&format!("{name}.npy"))
        .explain(ArrayError, || format!("{archive} has no array `{name}`"))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes)
        .explain(ArrayError, || format!("reading {archive}:{name}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn an_npz_entry_reads_as_its_own_npy_would() {
        let dir = tempfile::tempdir().unwrap();
        let x = Tensor::new(&[[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
        let (npy, npz) = (dir.path().join("x.npy"), dir.path().join("both.npz"));
        x.write_npy(&npy).unwrap();
        Tensor::write_npz(&[("x", &x)], &npz).unwrap();
        let entry = dir.path().join("both.npz:x");
        assert_eq!(read_f32(&entry).unwrap(), read_f32(&npy).unwrap());
        assert_eq!(read_f64(&entry).unwrap().shape, [2, 3]);
        let missing = read_f32(&dir.path().join("both.npz:y")).unwrap_err();
        assert!(
            missing.to_string().ends_with("both.npz has no array `y`"),
            "{missing}"
        );
        let ints = read_i64(&npy).unwrap_err();
        assert!(
            ints.to_string().ends_with("x.npy: expected int64"),
            "{ints}"
        );
    }
}
