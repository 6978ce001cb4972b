//! torchrun's error file (`TORCHELASTIC_ERROR_FILE`): a failing rank writes its error there
//! as PyTorch's `@record` does, so the agent's failure summary shows our message rather than
//! "<N/A>"; our launcher reads it back for its own summary.

use serde_json::{json, Value};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `message` (the whole chain of causes) in the layout torchrun reads:
/// `{"message": {"message": ..., "extraInfo": {"py_callstack": ..., "timestamp": ...}}}`.
/// torchrun shows `py_callstack` in its summary and orders failures by `timestamp`.
pub fn write(path: &Path, message: &str) -> std::io::Result<()> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let data = json!({
        "message": {
            "message": format!("CornetError: {message}"),
            "extraInfo": {
                "py_callstack": message,
                "timestamp": timestamp.to_string(),
            },
        },
    });
    // Written whole, so the agent never reads half a file.
    crate::files::write_whole(path, data.to_string())
}

/// The message a rank left in `path`, if it left one that reads.
pub fn read(path: &Path) -> Option<String> {
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let message = &data["message"];
    let text = message["extraInfo"]["py_callstack"]
        .as_str()
        .or_else(|| message["message"].as_str())
        .or_else(|| message.as_str())?;
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_torchrun_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.json");
        write(&path, "data.train: no such folder: /x").unwrap();
        let data: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // torchrun's ProcessFailure: message.extraInfo.timestamp as an integer string, and
        // its summary shows message.extraInfo.py_callstack.
        let info = &data["message"]["extraInfo"];
        assert!(info["timestamp"].as_str().unwrap().parse::<u64>().unwrap() > 1_700_000_000);
        assert_eq!(info["py_callstack"], "data.train: no such folder: /x");
        assert_eq!(
            data["message"]["message"],
            "CornetError: data.train: no such folder: /x"
        );
        assert_eq!(
            read(&path).as_deref(),
            Some("data.train: no such folder: /x")
        );
        assert!(!dir.path().join("error.json.partial").exists());
    }

    #[test]
    fn reads_pytorchs_plain_messages_and_nothing_from_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.json");
        std::fs::write(&path, r#"{"message": "Signal 9", "timestamp": "1"}"#).unwrap();
        assert_eq!(read(&path).as_deref(), Some("Signal 9"));
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(read(&path), None);
        assert_eq!(read(&dir.path().join("absent.json")), None);
    }
}
