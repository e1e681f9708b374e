//! A catalog is one loaded version of the flows and their prompts, encoded once. Calls hold
//! the catalog they started with, so a reload never changes a call in progress.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::flow::{self, FlowError, FlowSet, Located, PromptId};
use crate::media::prompt::{self, EncodedPrompt, PromptError};

#[derive(Debug)]
pub struct Catalog {
    pub flows: Arc<FlowSet>,
    prompts: Vec<EncodedPrompt>,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{} error(s) in flows:\n{}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Flows(Vec<FlowError>),
    #[error("{}", .0.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("\n"))]
    MissingPrompts(Vec<MissingPrompt>),
    #[error(transparent)]
    Prompt(#[from] PromptError),
}

/// A prompt a flow uses that has no file in any place it may be.
#[derive(Debug)]
pub struct MissingPrompt {
    pub at: Located,
    pub name: String,
    pub tried: Vec<PathBuf>,
}

impl std::fmt::Display for MissingPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tried: Vec<String> = self.tried.iter().map(|p| p.display().to_string()).collect();
        write!(
            f,
            "{}: prompt {:?} is missing: looked for {}\n    {}",
            self.at,
            self.name,
            tried.join(" and "),
            self.at.snippet
        )
    }
}

impl Catalog {
    /// Load every flow in `flows_dir` and every prompt they use from `prompts_dir`:
    /// `<prompts>/<language>/<name>.wav`, else `<prompts>/<name>.wav`.
    pub fn load(
        flows_dir: &Path,
        prompts_dir: &Path,
        language: &str,
    ) -> Result<Catalog, CatalogError> {
        let flows = flow::load_dir(flows_dir).map_err(CatalogError::Flows)?;
        let mut prompts = Vec::with_capacity(flows.prompts.len());
        let mut files = Vec::new();
        let mut missing = Vec::new();
        for (name, at) in flows.prompts.iter().zip(&flows.prompt_sites) {
            let tried = vec![
                prompts_dir.join(language).join(format!("{name}.wav")),
                prompts_dir.join(format!("{name}.wav")),
            ];
            match tried.iter().find(|p| p.is_file()) {
                Some(path) => {
                    let samples = prompt::load_wav(path)?;
                    prompts.push(prompt::EncodedPrompt::encode(&samples));
                    files.push(path.clone());
                }
                None => missing.push(MissingPrompt {
                    at: at.clone(),
                    name: name.clone(),
                    tried,
                }),
            }
        }
        if !missing.is_empty() {
            return Err(CatalogError::MissingPrompts(missing));
        }
        Ok(Catalog {
            flows: Arc::new(flows),
            prompts,
            files,
        })
    }

    pub fn prompt(&self, id: PromptId) -> &EncodedPrompt {
        &self.prompts[id.0 as usize]
    }

    /// For tests: a catalog from flows and ready-made prompts.
    pub fn from_parts(flows: FlowSet, prompts: Vec<EncodedPrompt>) -> Catalog {
        Catalog {
            flows: Arc::new(flows),
            prompts,
            files: Vec::new(),
        }
    }
}
