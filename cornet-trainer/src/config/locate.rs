//! Finding keys: by dotted path in a YAML value (for `--set`) and in the file's text (for the
//! line of an error; serde_yaml's values carry no positions).

use serde_yaml::{Mapping, Value};

/// Sets `path` (`optim.lr`) in `root` to `value`, creating missing sections.
pub fn set(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err("empty key in the path".into());
        }
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(format!("`{}` is not a section", parts[..i].join(".")));
        };
        let key = Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert(Value::Null);
    }
    Ok(())
}

/// The 1-based line where `path` (`optim.lr`) is written: each key is looked for among the
/// direct children of the one before (the lines of its block at its children's indentation).
/// `None` when it is not in the text.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |i: usize| lines[i].len() - lines[i].trim_start().len();
    let is_content = |i: usize| {
        let t = lines[i].trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let (mut from, mut to) = (0, lines.len());
    let mut found = None;
    for part in path.split('.') {
        let key = format!("{}:", part.split('[').next().unwrap_or(part));
        let level = indent_of((from..to).find(|&i| is_content(i))?);
        let hit = (from..to).find(|&i| {
            is_content(i) && indent_of(i) == level && lines[i].trim_start().starts_with(&key)
        })?;
        // The key's block ends at the next content line indented no deeper than the key.
        to = (hit + 1..to)
            .find(|&i| is_content(i) && indent_of(i) <= level)
            .unwrap_or(to);
        from = hit + 1;
        found = Some(hit + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "model:\n  arch: Z\n  train: x\n# comment\noptim:\n  lr: 0.1\n  momentum: 0.9\ntrain:\n  lr: 3\n";

    #[test]
    fn finds_nested_keys_in_their_own_section() {
        assert_eq!(line_of(TEXT, "optim.lr"), Some(6));
        assert_eq!(line_of(TEXT, "train.lr"), Some(9));
        assert_eq!(line_of(TEXT, "optim.momentum"), Some(7));
        assert_eq!(line_of(TEXT, "model"), Some(1));
        assert_eq!(line_of(TEXT, "model.lr"), None);
    }

    #[test]
    fn set_creates_sections_and_refuses_to_descend_into_values() {
        let mut value: Value = serde_yaml::from_str(TEXT).unwrap();
        set(&mut value, "dist.ngpus", Value::from(2)).unwrap();
        assert_eq!(value["dist"]["ngpus"], Value::from(2));
        assert!(set(&mut value, "model.arch.x", Value::from(1)).is_err());
    }
}
