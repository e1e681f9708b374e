//! IVR flows: TOML files compiled once into an index graph (every name resolved), and a
//! sans-IO interpreter that walks one call through it.

mod compile;
pub mod diagram;
mod interpreter;
mod model;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use compile::{FlowError, Located, load_dir};
pub use interpreter::{FlowAction, Interpreter, PlayId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(pub u32);

/// Every flow of a directory, with the routing table and the prompts they use. Built whole
/// and swapped whole, so a call never sees half of one version and half of another.
#[derive(Debug, Default)]
pub struct FlowSet {
    pub flows: Vec<Flow>,
    pub by_number: HashMap<String, FlowId>,
    pub default: Option<FlowId>,
    /// Prompt names in PromptId order.
    pub prompts: Vec<String>,
    /// Where each prompt is first used, for error messages.
    pub prompt_sites: Vec<Located>,
}

impl FlowSet {
    pub fn route(&self, dialled: &str) -> Option<FlowId> {
        self.by_number.get(dialled).copied().or(self.default)
    }

    pub fn flow(&self, id: FlowId) -> &Flow {
        &self.flows[id.0 as usize]
    }

    pub fn prompt_name(&self, id: PromptId) -> &str {
        &self.prompts[id.0 as usize]
    }
}

#[derive(Debug)]
pub struct Flow {
    pub name: String,
    pub file: PathBuf,
    pub start: NodeId,
    pub nodes: Vec<Node>,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub enum NodeKind {
    Play {
        prompts: Vec<PromptId>,
        barge_in: bool,
        next: NodeId,
    },
    Menu(Menu),
    Collect(Collect),
    Goto {
        next: NodeId,
    },
    Hangup,
}

#[derive(Debug)]
pub struct Menu {
    pub prompts: Vec<PromptId>,
    pub choices: Vec<(String, NodeId)>,
    pub invalid_prompts: Vec<PromptId>,
    pub timeout_prompts: Vec<PromptId>,
    pub timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub max_failures: u32,
    pub on_failure: Option<NodeId>,
}

#[derive(Debug)]
pub struct Collect {
    pub prompts: Vec<PromptId>,
    pub variable: String,
    pub min_digits: u32,
    pub max_digits: u32,
    pub terminator: Option<char>,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub max_attempts: u32,
    pub invalid_prompts: Vec<PromptId>,
    pub timeout_prompts: Vec<PromptId>,
    pub next: NodeId,
    pub on_failure: Option<NodeId>,
}

pub const DEFAULT_MENU_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_INTER_DIGIT: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_FAILURES: u32 = 3;
