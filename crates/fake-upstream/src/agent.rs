//! The fake's default behaviour, shared by every dialect: good enough for a coding agent to
//! finish a small task. Offered a file-writing tool (or a shell) and asked to create a file,
//! it calls the tool; once a tool result is back, it answers with text. Other tools get a call
//! with arguments built from their schema.

use crate::script::example_from_schema;
use serde_json::{Value, json};

/// What the fake decides to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer with text.
    Text(String),
    /// Call a tool with this input.
    Call {
        /// Tool name.
        name: String,
        /// Input object.
        input: Value,
    },
}

/// A tool as the fake sees it.
#[derive(Debug, Clone)]
pub struct ToolView {
    /// Name.
    pub name: String,
    /// JSON schema of its input.
    pub schema: Value,
}

/// What the fake knows about a request, whatever its dialect.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// System/developer text.
    pub system: String,
    /// The last user text.
    pub last_user: String,
    /// Tools offered.
    pub tools: Vec<ToolView>,
    /// The conversation already carries a tool result.
    pub has_tool_result: bool,
    /// Tool use forbidden (`tool_choice: none`).
    pub tools_off: bool,
    /// A tool the caller forces.
    pub forced: Option<String>,
    /// Image inputs seen.
    pub images: usize,
}

/// The file a prompt asks to create: (path, content).
pub fn file_task(prompt: &str) -> Option<(String, String)> {
    let name = prompt
        .split(|c: char| c.is_whitespace() || c == '`' || c == '"' || c == '\'')
        .map(|w| w.trim_end_matches([',', '.', ':', ';']))
        .find(|w| {
            let ext = w
                .rsplit_once('.')
                .map(|(stem, ext)| !stem.is_empty() && (1..=5).contains(&ext.len()));
            ext == Some(true) && w.chars().all(|c| c.is_alphanumeric() || "._-/".contains(c))
        })?
        .to_string();
    let content = prompt
        .split_once("containing exactly:")
        .map(|(_, rest)| rest.trim().trim_matches(['"', '\'', '`']).to_string())
        .unwrap_or_else(|| "hello".into());
    Some((name, content))
}

/// The working directory a coding agent announces in its system prompt, if any.
fn working_dir(system: &str) -> Option<String> {
    for marker in ["orking directory:", "<cwd>", "cwd:"] {
        if let Some((_, rest)) = system.split_once(marker) {
            let dir = rest.trim_start().split(['\n', '<']).next()?.trim();
            if dir.starts_with('/') {
                return Some(dir.to_string());
            }
        }
    }
    None
}

/// An example with only the schema's required properties (optional ones such as a working
/// directory are better left to the tool's defaults).
fn required_example(schema: &Value) -> Value {
    let full = example_from_schema(schema);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match full {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| required.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

fn has_props(schema: &Value, props: &[&str]) -> bool {
    props
        .iter()
        .all(|p| schema.pointer(&format!("/properties/{p}")).is_some())
}

/// Text without the `<system-reminder>...</system-reminder>` sections coding agents add.
fn strip_reminders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<system-reminder>") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find("</system-reminder>") {
            Some(end) => &rest[start + end + "</system-reminder>".len()..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Decides the answer.
pub fn decide(turn: &Turn) -> Decision {
    let turn = &Turn {
        last_user: strip_reminders(&turn.last_user),
        ..turn.clone()
    };
    let usable = !turn.tools.is_empty() && !turn.tools_off && !turn.has_tool_result;
    if usable {
        if let Some(name) = &turn.forced {
            if let Some(t) = turn.tools.iter().find(|t| &t.name == name) {
                return Decision::Call {
                    name: t.name.clone(),
                    input: example_from_schema(&t.schema),
                };
            }
        }
        if let Some((file, content)) = file_task(&turn.last_user) {
            let path = match working_dir(&turn.system) {
                Some(dir) if !file.starts_with('/') => format!("{dir}/{file}"),
                _ => file.clone(),
            };
            if let Some(t) = turn
                .tools
                .iter()
                .find(|t| has_props(&t.schema, &["file_path", "content"]))
            {
                return Decision::Call {
                    name: t.name.clone(),
                    input: json!({"file_path": path, "content": content}),
                };
            }
            if let Some(t) = turn
                .tools
                .iter()
                .find(|t| has_props(&t.schema, &["path", "content"]))
            {
                return Decision::Call {
                    name: t.name.clone(),
                    input: json!({"path": path, "content": content}),
                };
            }
            let shell = turn
                .tools
                .iter()
                .find(|t| has_props(&t.schema, &["command"]) || has_props(&t.schema, &["cmd"]));
            if let Some(t) = shell {
                let script = format!(
                    "printf '%s' '{}' > '{}'",
                    content.replace('\'', "'\\''"),
                    path
                );
                let key = if has_props(&t.schema, &["cmd"]) {
                    "cmd"
                } else {
                    "command"
                };
                let is_array =
                    t.schema.pointer(&format!("/properties/{key}/type")) == Some(&json!("array"));
                let value = if is_array {
                    json!(["bash", "-lc", script])
                } else {
                    json!(script)
                };
                let mut input = required_example(&t.schema);
                input[key] = value;
                return Decision::Call {
                    name: t.name.clone(),
                    input,
                };
            }
        }
        let t = &turn.tools[0];
        return Decision::Call {
            name: t.name.clone(),
            input: example_from_schema(&t.schema),
        };
    }
    if turn.has_tool_result {
        if let Some((file, _)) = file_task(&turn.last_user) {
            return Decision::Text(format!("Done: created {file}."));
        }
        return Decision::Text("Thanks, the tool result is in.".into());
    }
    let said: String = turn.last_user.chars().take(60).collect();
    let mut text = format!("This is the fake upstream answering: {said}");
    if turn.images > 0 {
        text.push_str(&format!(" (I saw {} image(s))", turn.images));
    }
    Decision::Text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_file_task() {
        assert_eq!(
            file_task("Create a file named hello.txt containing exactly: hi there"),
            Some(("hello.txt".into(), "hi there".into()))
        );
        assert_eq!(file_task("what's up?"), None);
    }

    #[test]
    fn writes_with_the_write_tool_in_the_working_dir() {
        let turn = Turn {
            system: "You are an agent.\nWorking directory: /tmp/w\n".into(),
            last_user: "Create notes.md containing exactly: x".into(),
            tools: vec![
                ToolView {
                    name: "Bash".into(),
                    schema: json!({"properties": {"command": {"type": "string"}}}),
                },
                ToolView {
                    name: "Write".into(),
                    schema: json!({"properties": {"file_path": {}, "content": {}}}),
                },
            ],
            ..Turn::default()
        };
        assert_eq!(
            decide(&turn),
            Decision::Call {
                name: "Write".into(),
                input: json!({"file_path": "/tmp/w/notes.md", "content": "x"})
            }
        );
    }
}
