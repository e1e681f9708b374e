//! The flow file as admins write it: serde structs that mirror the TOML one to one, with spans
//! kept on every reference so errors can point at the line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    pub flow: FlowHeader,
    #[serde(default)]
    pub nodes: BTreeMap<Spanned<String>, Spanned<NodeDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowHeader {
    pub name: Spanned<String>,
    /// Dialled numbers (the user part of the Request-URI) this flow answers.
    #[serde(default)]
    pub numbers: Vec<Spanned<String>>,
    /// Calls to numbers no flow claims go to the default flow.
    #[serde(default)]
    pub default: bool,
    pub start: Spanned<String>,
}

/// One step of a flow. One struct for every node type (rather than a tagged enum) because
/// serde loses the source positions inside tagged enums; `compile` checks which keys each
/// type requires and allows. Durations are text with a unit: "5s", "1500ms", "2m".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub prompts: Option<Spanned<Vec<Spanned<String>>>>,
    pub barge_in: Option<Spanned<bool>>,
    pub next: Option<Spanned<String>>,
    pub choices: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub invalid_prompts: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout_prompts: Option<Spanned<Vec<Spanned<String>>>>,
    /// Menu: time allowed for the first key after the prompt ends (or is interrupted).
    pub timeout: Option<Spanned<String>>,
    pub inter_digit_timeout: Option<Spanned<String>>,
    pub max_failures: Option<Spanned<u32>>,
    pub on_failure: Option<Spanned<String>>,
    pub variable: Option<Spanned<String>>,
    pub min_digits: Option<Spanned<u32>>,
    pub max_digits: Option<Spanned<u32>>,
    pub terminator: Option<Spanned<String>>,
    pub first_digit_timeout: Option<Spanned<String>>,
    pub max_attempts: Option<Spanned<u32>>,
}

impl NodeDef {
    /// The keys present, with their spans, for the "does not apply to" check.
    pub fn present_keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut keys = Vec::new();
        macro_rules! key {
            ($($field:ident),*) => {$(
                if let Some(v) = &self.$field { keys.push((stringify!($field), v.span())); }
            )*};
        }
        key!(
            prompts,
            barge_in,
            next,
            choices,
            invalid_prompts,
            timeout_prompts,
            timeout,
            inter_digit_timeout,
            max_failures,
            on_failure,
            variable,
            min_digits,
            max_digits,
            terminator,
            first_digit_timeout,
            max_attempts
        );
        keys
    }
}
