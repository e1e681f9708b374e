//! What a waiting caller hears of their place in the queue: "you are number N in the queue;
//! your expected wait is about M minutes", in the caller's language, from the prompts
//! `queue/position`, `queue/position_after`, `queue/wait`, `queue/minutes` and the
//! spoken-number words. The catalog asks for those prompts in every language as soon as one
//! queue announces, so `check` lists any that are missing.

use std::time::Duration;

use super::Catalog;
use crate::flow::PromptId;
use crate::flow::say::{self, Grammar, SayAs};

pub const POSITION: &str = "queue/position";
pub const POSITION_AFTER: &str = "queue/position_after";
pub const WAIT: &str = "queue/wait";
pub const MINUTES: &str = "queue/minutes";
pub const PROMPTS: [&str; 4] = [POSITION, POSITION_AFTER, WAIT, MINUTES];

/// The prompts to play, or nothing when a piece is missing (better silence than half a
/// sentence).
pub(super) fn words(
    catalog: &Catalog,
    language: &str,
    position: Option<u32>,
    wait: Option<Duration>,
) -> Vec<PromptId> {
    let grammar = Grammar::for_language(language);
    let id = |name: &str| catalog.flows.prompt_index.get(name).copied();
    let number = |n: u64| -> Option<Vec<PromptId>> {
        let words = say::words(grammar, SayAs::Number, &n.to_string());
        if words.is_empty() {
            return None;
        }
        words.iter().map(|w| id(&format!("say/{w}"))).collect()
    };
    let mut out = Vec::new();
    if let Some(position) = position {
        let (Some(lead), Some(after)) = (id(POSITION), id(POSITION_AFTER)) else {
            return Vec::new();
        };
        let Some(n) = number(u64::from(position)) else {
            return Vec::new();
        };
        out.push(lead);
        out.extend(n);
        out.push(after);
    }
    if let Some(wait) = wait {
        // Round up: "about 1 minute" for 20 s is honest, "about 0 minutes" is not.
        let minutes = wait.as_secs().div_ceil(60).max(1);
        if let (Some(w), Some(n), Some(m)) = (id(WAIT), number(minutes), id(MINUTES)) {
            out.push(w);
            out.extend(n);
            out.push(m);
        }
    }
    out
}
