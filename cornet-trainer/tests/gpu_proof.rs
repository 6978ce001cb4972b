//! `scripts/gpu_proof.sh` where there is no GPU, as in CI: the script parses, and with a kit it
//! stops after unpacking it and resolving its libraries, with status 2 and a report that says
//! so (the dry run `scripts/gpu_kit.sh` ends with). The kit here is a stand-in (copies of a
//! system executable under the kit's names), so that no GPU build is needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu_proof.sh")
}

fn shell(command: &mut Command) -> Output {
    let output = command.output().expect("running a shell command");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_gpu_proof_script_parses() {
    shell(Command::new("bash").arg("-n").arg(script()));
}

/// A kit as gpu_kit.sh packs it, each executable a copy of `env`.
fn stand_in_kit(dir: &Path) -> PathBuf {
    let stage = dir.join("stage");
    let executables = [
        "bin/cornet-trainer",
        "bin/cornet-data",
        "tests/cornet-model-cornet_model",
        "tests/cornet-trainer-cornet_trainer",
        "tests/cornet-trainer-tests",
    ];
    for name in executables {
        let path = stage.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy("/usr/bin/env", &path).unwrap();
    }
    let kit_json = r#"{"commit": "stand-in", "built": "now", "rustc": "none"}"#;
    std::fs::write(stage.join("KIT.json"), kit_json).unwrap();
    let sums = shell(
        Command::new("sha256sum")
            .arg("KIT.json")
            .args(executables)
            .current_dir(&stage),
    );
    std::fs::write(stage.join("SHA256SUMS"), sums.stdout).unwrap();
    let kit = dir.join("kit/kit.tar.xz");
    std::fs::create_dir_all(kit.parent().unwrap()).unwrap();
    shell(
        Command::new("tar")
            .arg("-C")
            .arg(&stage)
            .arg("-cJf")
            .arg(&kit)
            .args(["SHA256SUMS", "KIT.json", "bin", "tests"]),
    );
    kit
}

#[test]
fn without_a_gpu_the_proof_stops_before_any_gpu_step_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let kit = stand_in_kit(dir.path());
    let out = dir.path().join("report");
    let run = Command::new("bash")
        .arg(script())
        .arg(&out)
        .env("CORNET_KIT", &kit)
        .env("CORNET_PROOF_PYTHON", "python3")
        .env("CORNET_PROOF_NVIDIA_SMI", dir.path().join("no-nvidia-smi"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no GPU"), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("gpu_report.json")).unwrap()).unwrap();
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("kit", "passed"),
            ("libraries", "passed"),
            ("gpu", "no GPU")
        ]
    );
    assert_eq!(report["kit"]["commit"], "stand-in");
    let markdown = std::fs::read_to_string(out.join("gpu_report.md")).unwrap();
    assert!(markdown.contains("| gpu | no GPU |"), "{markdown}");
}
