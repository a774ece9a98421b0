//! What the agent desktop shows for a campaign: the call script, with the
//! lead's fields filled in, and the pause codes agents choose from. The
//! `[desktop]` table of a campaign file; both may be left out.
//!
//! ```toml
//! [desktop]
//! script = """
//! Hello {first_name}, I'm calling from Example Fibre about {postcode}.
//! """
//! pause_codes = [
//!   { code = "BREAK", label = "Break" },
//!   { code = "TRAINING", label = "Training" },
//! ]
//! ```

use serde::{Deserialize, Serialize};

/// The longest script, characters.
pub const SCRIPT_LIMIT: usize = 20_000;

/// The most pause codes a campaign may list.
pub const PAUSE_CODES_LIMIT: usize = 30;

/// A reason an agent may pause for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseCode {
    /// Short stable code, such as `BREAK` (A-Z, 0-9, _; up to 20).
    pub code: String,
    /// What agents see.
    pub label: String,
}

/// The desktop settings of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desktop {
    /// The call script; `{field}` is replaced by the lead's field.
    pub script: Option<String>,
    /// The pause codes, in the order agents see them.
    pub pause_codes: Vec<PauseCode>,
}

impl Default for Desktop {
    fn default() -> Desktop {
        let code = |c: &str, l: &str| PauseCode {
            code: c.into(),
            label: l.into(),
        };
        Desktop {
            script: None,
            pause_codes: vec![
                code("BREAK", "Break"),
                code("LUNCH", "Lunch"),
                code("TRAINING", "Training"),
                code("MEETING", "Meeting"),
                code("TECHNICAL", "Technical problem"),
            ],
        }
    }
}

/// The `[desktop]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDesktop {
    pub(super) script: Option<String>,
    pub(super) pause_codes: Option<Vec<PauseCode>>,
}

impl RawDesktop {
    /// The settings, or each problem as (field, message).
    pub(super) fn check(self) -> Result<Desktop, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let defaults = Desktop::default();
        if let Some(s) = &self.script {
            if s.chars().count() > SCRIPT_LIMIT {
                errors.push((
                    "desktop.script".into(),
                    format!("longer than {SCRIPT_LIMIT} characters"),
                ));
            }
            if let Some(bad) = placeholders(s).find(|p| p.is_err()) {
                let at = bad.err().unwrap_or_default();
                errors.push((
                    "desktop.script".into(),
                    format!(
                        "a '{{' at character {at} does not open a placeholder {{field}} (A-Z, a-z, 0-9, _); write {{{{ for a brace"
                    ),
                ));
            }
        }
        let pause_codes = self.pause_codes.unwrap_or(defaults.pause_codes);
        if pause_codes.is_empty() {
            errors.push((
                "desktop.pause_codes".into(),
                "list at least one pause code".into(),
            ));
        }
        if pause_codes.len() > PAUSE_CODES_LIMIT {
            errors.push((
                "desktop.pause_codes".into(),
                format!("at most {PAUSE_CODES_LIMIT} pause codes"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in pause_codes.iter().enumerate() {
            let ok = !p.code.is_empty()
                && p.code.len() <= 20
                && p.code
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                errors.push((
                    format!("desktop.pause_codes[{i}].code"),
                    format!("{:?}: use A-Z, 0-9 and _, up to 20", p.code),
                ));
            }
            if !seen.insert(p.code.as_str()) {
                errors.push((
                    format!("desktop.pause_codes[{i}].code"),
                    format!("{:?} is listed twice", p.code),
                ));
            }
            let label = p.label.trim();
            if label.is_empty() || label.chars().count() > 60 {
                errors.push((
                    format!("desktop.pause_codes[{i}].label"),
                    "1 to 60 characters".into(),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Desktop {
                script: self.script,
                pause_codes,
            })
        } else {
            Err(errors)
        }
    }
}

/// One piece of a script.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// The pieces of `script`: text, `{field}` placeholders, and `{{` / `}}`
/// as literal braces; `Err(character index)` for a `{` that opens nothing.
fn placeholders(script: &str) -> impl Iterator<Item = Result<Piece<'_>, usize>> {
    let mut rest = script;
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let piece = if let Some(tail) = rest.strip_prefix("{{") {
            rest = tail;
            at += 2;
            Ok(Piece::Text("{"))
        } else if let Some(tail) = rest.strip_prefix("}}") {
            rest = tail;
            at += 2;
            Ok(Piece::Text("}"))
        } else if let Some(tail) = rest.strip_prefix('{') {
            let name_len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if name_len > 0 && tail[name_len..].starts_with('}') {
                let name = &tail[..name_len];
                rest = &tail[name_len + 1..];
                at += name_len + 2;
                Ok(Piece::Field(name))
            } else {
                let bad = at;
                rest = "";
                Err(bad)
            }
        } else {
            let end = rest.find(['{', '}']).unwrap_or(rest.len());
            let end = if end == 0 { 1 } else { end };
            let (text, tail) = rest.split_at(end);
            rest = tail;
            at += text.chars().count();
            Ok(Piece::Text(text))
        };
        Some(piece)
    })
}

impl Desktop {
    /// The script with the lead's fields filled in (`fields` is the lead's
    /// JSON object); a field the lead does not have reads `[field]`, so
    /// the agent sees what is missing rather than a gap.
    pub fn render_script(&self, fields: &serde_json::Value) -> Option<String> {
        let script = self.script.as_deref()?;
        let mut out = String::with_capacity(script.len());
        for piece in placeholders(script) {
            match piece {
                Ok(Piece::Text(t)) => out.push_str(t),
                Ok(Piece::Field(name)) => match fields.get(name) {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => out.push_str(s),
                    Some(serde_json::Value::Number(n)) => out.push_str(&n.to_string()),
                    Some(serde_json::Value::Bool(b)) => out.push_str(if *b { "yes" } else { "no" }),
                    _ => {
                        out.push('[');
                        out.push_str(name);
                        out.push(']');
                    }
                },
                // Checked when the campaign was loaded.
                Err(_) => break,
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desktop(script: &str) -> Desktop {
        Desktop {
            script: Some(script.into()),
            ..Desktop::default()
        }
    }

    #[test]
    fn fields_fill_the_script_and_missing_ones_show() {
        let d = desktop("Hi {first_name}, {{not}} {plan} at £{price}.");
        let fields = serde_json::json!({"first_name": "Asha", "price": 30});
        assert_eq!(
            d.render_script(&fields).as_deref(),
            Some("Hi Asha, {not} [plan] at £30.")
        );
        assert_eq!(Desktop::default().render_script(&fields), None);
    }

    #[test]
    fn a_brace_that_opens_nothing_is_refused_with_where() {
        let raw = RawDesktop {
            script: Some("ab { oops".into()),
            pause_codes: None,
        };
        let e = raw.check().expect_err("bad script");
        assert!(e[0].1.contains("character 3"), "{e:?}");
        let ok = RawDesktop {
            script: Some("a }} b {{ {x_1}".into()),
            pause_codes: None,
        };
        assert!(ok.check().is_ok());
    }

    #[test]
    fn pause_codes_are_checked() {
        let raw = RawDesktop {
            script: None,
            pause_codes: Some(vec![
                PauseCode {
                    code: "BREAK".into(),
                    label: "Break".into(),
                },
                PauseCode {
                    code: "BREAK".into(),
                    label: "".into(),
                },
                PauseCode {
                    code: "lunch".into(),
                    label: "Lunch".into(),
                },
            ]),
        };
        let e = raw.check().expect_err("bad codes");
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"desktop.pause_codes[1].code"), "{e:?}");
        assert!(fields.contains(&"desktop.pause_codes[1].label"), "{e:?}");
        assert!(fields.contains(&"desktop.pause_codes[2].code"), "{e:?}");
        let empty = RawDesktop {
            script: None,
            pause_codes: Some(Vec::new()),
        };
        assert!(empty.check().is_err());
    }
}
