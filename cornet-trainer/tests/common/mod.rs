//! Helpers of the `score` command's tests.

/// Writes a row-major f64 array as .npy.
pub fn write_npy(path: &std::path::Path, shape: &[u64], values: &[f64]) {
    use npyz::WriterBuilder;
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn score_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
        .arg("score")
        .args(args)
        .output()
        .unwrap()
}
