//! A catalog is one loaded version of the flows and their prompts in every language, encoded
//! once. Calls hold the catalog they started with, so a reload never changes a call in
//! progress.
//!
//! Prompt files: `<prompts>/<language>/<name>.wav`, falling back to the default language's
//! folder, then to `<prompts>/<name>.wav` (language-neutral recordings such as a tone or a
//! bilingual greeting). Spoken-value words (`say/<word>`) are only looked for in the languages
//! whose grammar uses them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::acd::AcdConfig;
use crate::acd::load as acd_load;
use crate::flow::say::Grammar;
use crate::flow::{self, FlowSet, Located, PromptId};
use crate::media::prompt::{self, EncodedPrompt, PromptError};

#[derive(Debug)]
pub struct Catalog {
    pub flows: Arc<FlowSet>,
    /// The agents and queues of `<flows>/acd/`, loaded with the flows and swapped with them
    /// (empty when the folder does not exist). Queue music prompts are in `flows`' prompt
    /// table, found by name.
    pub acd: Arc<AcdConfig>,
    /// The default language first.
    languages: Vec<String>,
    /// For each language, each prompt's index into `encoded`.
    table: Vec<Vec<usize>>,
    encoded: Vec<EncodedPrompt>,
    /// The files behind `encoded`, in the same order.
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// The content hash of the flows directory and these prompt files (see
    /// [`crate::versions`]), named in every CDR of a call this catalog served.
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{} error(s) in flows and prompts:\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Prompt(#[from] PromptError),
}

/// Everything a load found, for `hotline check`: the catalog when there were no errors.
pub struct CatalogReport {
    pub catalog: Option<Catalog>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// For each prompt, the languages a call may be in where it plays: a flow's own language,
/// the default, and every language its `language` nodes switch to. A prompt missing in a
/// language no flow using it can speak is not worth a warning.
fn languages_of_prompts(set: &FlowSet, default_language: &str) -> Vec<Vec<String>> {
    let mut flow_langs: Vec<Vec<String>> = set
        .flows
        .iter()
        .map(|flow| {
            let mut langs = vec![
                flow.language
                    .clone()
                    .unwrap_or_else(|| default_language.to_string()),
            ];
            for node in &flow.nodes {
                if let flow::NodeKind::Language { language, .. } = &node.kind {
                    langs.push(language.clone());
                }
            }
            langs
        })
        .collect();
    // A subflow plays in its caller's language, unless its own header names one (then it
    // speaks that): pass languages along subflow calls until nothing changes (at most one
    // round per flow).
    for _ in 0..set.flows.len() {
        let mut changed = false;
        for (i, flow) in set.flows.iter().enumerate() {
            for node in &flow.nodes {
                if let flow::NodeKind::Subflow { flow: callee, .. } = node.kind
                    && set.flow(callee).language.is_none()
                {
                    let add: Vec<String> = flow_langs[i].clone();
                    let target = &mut flow_langs[callee.0 as usize];
                    for l in add {
                        if !target.contains(&l) {
                            target.push(l);
                            changed = true;
                        }
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = vec![Vec::new(); set.prompts.len()];
    for (flow, langs) in set.flows.iter().zip(&flow_langs) {
        for node in &flow.nodes {
            for list in node.kind.prompt_lists() {
                for item in list {
                    if let flow::PromptItem::Prompt(id) = item {
                        let entry = &mut out[id.0 as usize];
                        for l in langs {
                            if !entry.contains(l) {
                                entry.push(l.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

impl Catalog {
    /// Load every flow in `flows_dir` and every prompt they use, in every language they use.
    /// Warnings are logged; errors refuse the whole set.
    pub fn load(
        flows_dir: &Path,
        prompts_dir: &Path,
        default_language: &str,
    ) -> Result<Catalog, CatalogError> {
        let report = Catalog::check(flows_dir, prompts_dir, default_language)?;
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        match report.catalog {
            Some(c) => Ok(c),
            None => Err(CatalogError::Invalid(report.errors)),
        }
    }

    pub fn check(
        flows_dir: &Path,
        prompts_dir: &Path,
        default_language: &str,
    ) -> Result<CatalogReport, CatalogError> {
        let (set, mut diags) = flow::load_dir(flows_dir);
        // The ACD files are checked even when the flows have errors: every problem at once.
        let (acd, acd_diags) = acd_load::load(flows_dir);
        diags.errors.extend(acd_diags.errors);
        diags.warnings.extend(acd_diags.warnings);
        let mut set = set;
        if let (Some(set), Some(acd)) = (&set, &acd) {
            acd_load::check_flows(acd, set, &mut diags);
        }
        let mut errors: Vec<String> = diags.errors.iter().map(|e| e.to_string()).collect();
        let mut warnings: Vec<String> = diags.warnings.iter().map(|w| w.to_string()).collect();
        let (Some(mut set), Some(acd)) = (set.take().filter(|_| errors.is_empty()), acd) else {
            return Ok(CatalogReport {
                catalog: None,
                errors,
                warnings,
            });
        };
        let mut languages = vec![default_language.to_string()];
        // A language without its folder is said once, not once per prompt it would have.
        // (The default language may do without one: language-neutral recordings serve it.)
        let mut folderless: Vec<String> = Vec::new();
        for (lang, at) in &set.languages {
            if !prompts_dir.join(lang).is_dir() && !folderless.contains(lang) {
                folderless.push(lang.clone());
                errors.push(format!(
                    "{at}: language {lang:?} has no prompt folder {}\n    {}",
                    prompts_dir.join(lang).display(),
                    at.snippet
                ));
            }
            if !languages.contains(lang) {
                languages.push(lang.clone());
            }
        }
        let mut used_in = languages_of_prompts(&set, default_language);
        // Queue music plays in the default language's recording unless a language has its own.
        for (name, at) in &acd.music {
            let id = set.add_prompt(name, at.clone());
            if let Some(langs) = used_in.get_mut(id.0 as usize) {
                if !langs.iter().any(|l| l == default_language) {
                    langs.push(default_language.to_string());
                }
            } else {
                used_in.push(vec![default_language.to_string()]);
            }
        }
        // Position announcements speak in the caller's language, whichever it is.
        if let Some(at) = acd.announce.first() {
            let words = [Grammar::English, Grammar::Chinese]
                .into_iter()
                .flat_map(|g| g.words())
                .map(|w| format!("say/{w}"));
            let names = super::announce::PROMPTS.iter().map(|p| p.to_string());
            for name in names.chain(words) {
                let id = set.add_prompt(&name, at.clone());
                match used_in.get_mut(id.0 as usize) {
                    Some(langs) => *langs = languages.clone(),
                    None => used_in.push(languages.clone()),
                }
            }
        }
        let mut table = Vec::with_capacity(languages.len());
        let mut encoded = Vec::new();
        let mut files = Vec::new();
        let mut by_file: HashMap<PathBuf, usize> = HashMap::new();
        let mut missing: HashMap<usize, Vec<String>> = HashMap::new();
        for lang in &languages {
            if folderless.contains(lang) {
                table.push(vec![usize::MAX; set.prompts.len()]);
                continue;
            }
            let grammar = Grammar::for_language(lang);
            let words = grammar.words();
            let mut row = Vec::with_capacity(set.prompts.len());
            for (i, name) in set.prompts.iter().enumerate() {
                let said = name
                    .strip_prefix("say/")
                    .map(|w| words.iter().any(|x| x == w));
                if said == Some(false) {
                    // Another grammar's word: this language never asks for it.
                    row.push(usize::MAX);
                    continue;
                }
                let mut tried = vec![prompts_dir.join(lang).join(format!("{name}.wav"))];
                let default_has_same_words = Grammar::for_language(default_language) == grammar;
                if lang != default_language && (said.is_none() || default_has_same_words) {
                    tried.push(
                        prompts_dir
                            .join(default_language)
                            .join(format!("{name}.wav")),
                    );
                }
                if said.is_none() {
                    tried.push(prompts_dir.join(format!("{name}.wav")));
                }
                let Some(found) = tried.iter().position(|p| p.is_file()) else {
                    // A recording no call in this language can reach is not missing.
                    if said.is_none() && !used_in[i].iter().any(|l| l == lang) {
                        row.push(usize::MAX);
                        continue;
                    }
                    missing.entry(i).or_default().push(format!(
                        "{lang} (looked for {})",
                        tried
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    row.push(usize::MAX);
                    continue;
                };
                let path = &tried[found];
                if found == 1
                    && lang != default_language
                    && said.is_none()
                    && used_in[i].iter().any(|l| l == lang)
                {
                    warnings.push(format!(
                        "{}: warning: prompt {name:?} has no {lang} recording ({}); {lang} callers hear the {default_language} one\n    {}",
                        set.prompt_sites[i],
                        tried[0].display(),
                        set.prompt_sites[i].snippet
                    ));
                }
                let index = match by_file.get(path) {
                    Some(ix) => *ix,
                    None => match prompt::load_wav(path) {
                        Ok(samples) => {
                            encoded.push(EncodedPrompt::encode(&samples));
                            files.push(path.clone());
                            by_file.insert(path.clone(), encoded.len() - 1);
                            encoded.len() - 1
                        }
                        Err(e) => {
                            // Listed with every other problem, not the only one reported.
                            errors.push(format!("{}: {e}", set.prompt_sites[i]));
                            by_file.insert(path.clone(), usize::MAX);
                            usize::MAX
                        }
                    },
                };
                row.push(index);
            }
            table.push(row);
        }
        let mut missing: Vec<_> = missing.into_iter().collect();
        missing.sort_by_key(|(i, _)| *i);
        for (i, langs) in missing {
            let at: &Located = &set.prompt_sites[i];
            errors.push(format!(
                "{at}: prompt {:?} is missing in {}\n    {}",
                set.prompts[i],
                langs.join("; "),
                at.snippet
            ));
        }
        // Best effort: a file that cannot be read into the version is a warning, never a
        // refused load.
        let version = if errors.is_empty() {
            match crate::versions::current(flows_dir, prompts_dir, &files) {
                Ok((version, skipped)) => {
                    for s in skipped {
                        warnings.push(format!("not part of the flow-set version: {s}"));
                    }
                    version
                }
                Err(e) => {
                    warnings.push(format!("the flow-set version is unknown: {e}"));
                    "unknown".to_string()
                }
            }
        } else {
            String::new()
        };
        let catalog = errors.is_empty().then(|| Catalog {
            flows: Arc::new(set),
            acd: Arc::new(acd.config),
            languages,
            table,
            encoded,
            files,
            warnings: warnings.clone(),
            version,
        });
        Ok(CatalogReport {
            catalog,
            errors,
            warnings,
        })
    }

    /// The prompt as recorded for `language` (or its fallback). A language the catalog does
    /// not know plays the default language's recordings.
    pub fn prompt(&self, language: &str, id: PromptId) -> Option<&EncodedPrompt> {
        self.encoded.get(self.slot(language, id)?)
    }

    /// The file a prompt plays from in `language`, for the dry run.
    pub fn prompt_file(&self, language: &str, id: PromptId) -> Option<&Path> {
        self.files
            .get(self.slot(language, id)?)
            .map(PathBuf::as_path)
    }

    fn slot(&self, language: &str, id: PromptId) -> Option<usize> {
        let lang = self
            .languages
            .iter()
            .position(|l| l == language)
            .unwrap_or(0);
        self.table.get(lang)?.get(id.0 as usize).copied()
    }

    pub fn default_language(&self) -> &str {
        &self.languages[0]
    }

    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// For tests: a catalog from flows and ready-made prompts, one language.
    pub fn from_parts(flows: FlowSet, prompts: Vec<EncodedPrompt>) -> Catalog {
        let n = prompts.len();
        Catalog {
            flows: Arc::new(flows),
            acd: Arc::new(AcdConfig::default()),
            languages: vec!["en".into()],
            table: vec![(0..n).collect()],
            encoded: prompts,
            files: Vec::new(),
            warnings: Vec::new(),
            version: "0000test0000".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(path: &Path, value: i16) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for _ in 0..800 {
            w.write_sample(value).unwrap();
        }
        w.finalize().unwrap();
    }

    const FLOW: &str = r#"
[flow]
name = "f"
numbers = ["1"]
start = "a"
[nodes.a]
type = "play"
prompts = ["hello", "tone", { number = "'21'" }]
next = "zh"
[nodes.zh]
type = "language"
language = "zh"
next = "b"
[nodes.b]
type = "play"
prompts = ["hello", { number = "'2000'" }]
next = "end"
[nodes.end]
type = "hangup"
"#;

    fn site() -> (PathBuf, PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("hotline-catalog-{}", fastrand::u64(..)));
        let (flows, prompts) = (root.join("flows"), root.join("prompts"));
        std::fs::create_dir_all(&flows).unwrap();
        std::fs::write(flows.join("f.toml"), FLOW).unwrap();
        wav(&prompts.join("en/hello.wav"), 100);
        wav(&prompts.join("zh/hello.wav"), 200);
        wav(&prompts.join("tone.wav"), 300);
        for w in Grammar::English.words() {
            wav(&prompts.join(format!("en/say/{w}.wav")), 1);
        }
        for w in Grammar::Chinese.words() {
            wav(&prompts.join(format!("zh/say/{w}.wav")), 2);
        }
        (root, flows, prompts)
    }

    #[test]
    fn each_language_has_its_recordings_and_falls_back_to_neutral_ones() {
        let (root, flows, prompts) = site();
        let c = Catalog::load(&flows, &prompts, "en").unwrap();
        assert_eq!(c.languages(), ["en", "zh"]);
        let id = |n: &str| c.flows.prompt_id(n).unwrap();
        let file = |l: &str, n: &str| c.prompt_file(l, id(n)).unwrap().to_path_buf();
        assert_eq!(file("zh", "hello"), prompts.join("zh/hello.wav"));
        assert_eq!(file("en", "hello"), prompts.join("en/hello.wav"));
        assert_eq!(
            file("zh", "tone"),
            prompts.join("tone.wav"),
            "language-neutral"
        );
        assert_eq!(file("zh", "say/wan"), prompts.join("zh/say/wan.wav"));
        assert!(
            c.prompt_file("en", id("say/wan")).is_none(),
            "not an English word"
        );
        assert_eq!(
            file("fr", "hello"),
            prompts.join("en/hello.wav"),
            "unknown: the default"
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        std::fs::remove_dir_all(root).ok();
    }

    /// A language without its folder is one error, not one per prompt (issue 10).
    #[test]
    fn a_missing_language_folder_is_said_once() {
        let (root, flows, prompts) = site();
        std::fs::remove_dir_all(prompts.join("zh")).unwrap();
        let r = Catalog::check(&flows, &prompts, "en").unwrap();
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0].contains("language \"zh\" has no prompt folder"),
            "{:?}",
            r.errors
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn a_recording_missing_in_one_language_warns_and_one_missing_everywhere_is_an_error() {
        let (root, flows, prompts) = site();
        std::fs::remove_file(prompts.join("zh/hello.wav")).unwrap();
        let c = Catalog::load(&flows, &prompts, "en").unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("prompt \"hello\" has no zh recording")),
            "{:?}",
            c.warnings
        );
        std::fs::remove_file(prompts.join("zh/say/liang.wav")).unwrap();
        std::fs::write(prompts.join("en/hello.wav"), b"not a wav").unwrap();
        let r = Catalog::check(&flows, &prompts, "en").unwrap();
        assert!(r.catalog.is_none());
        let all = r.errors.join("\n");
        assert!(
            all.contains("prompt \"say/liang\" is missing in zh"),
            "{all}"
        );
        assert!(
            all.contains("not a WAV file"),
            "a broken file is listed too: {all}"
        );
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn the_acd_files_load_with_the_flows_and_their_music_is_a_checked_prompt() {
        let (root, flows, prompts) = site();
        let c = Catalog::load(&flows, &prompts, "en").unwrap();
        assert_eq!(
            *c.acd,
            AcdConfig::default(),
            "no acd folder: no agents, no queues"
        );
        let acd = flows.join("acd");
        std::fs::create_dir_all(&acd).unwrap();
        std::fs::write(
            acd.join("agents.toml"),
            "[agents.1001]\nha1_md5 = \"0809f3e5963e8d5a3d19b15141b5885d\"\n",
        )
        .unwrap();
        std::fs::write(
            acd.join("queues.toml"),
            "[queues.general]\nmusic = \"hold\"\n",
        )
        .unwrap();
        let r = Catalog::check(&flows, &prompts, "en").unwrap();
        assert!(r.catalog.is_none(), "missing music refuses the set");
        assert!(
            r.errors.iter().any(|e| e.starts_with(&format!(
                "{}:2:9: prompt \"hold\" is missing in en (looked for",
                acd.join("queues.toml").display()
            ))),
            "{:?}",
            r.errors
        );
        wav(&prompts.join("hold.wav"), 5);
        let c = Catalog::load(&flows, &prompts, "en").unwrap();
        assert_eq!(c.acd.agents.len(), 1);
        let hold = c.flows.prompt_id("hold").unwrap();
        assert_eq!(c.prompt_file("en", hold).unwrap(), prompts.join("hold.wav"));
        assert_eq!(c.prompt_file("zh", hold).unwrap(), prompts.join("hold.wav"));
        // An error in an ACD file refuses flows and agents together, listed with flow errors.
        std::fs::write(
            acd.join("queues.toml"),
            "[queues.general]\nstrategy = \"random\"\n",
        )
        .unwrap();
        let err = Catalog::load(&flows, &prompts, "en")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("queues.toml:2:12: unknown strategy \"random\""),
            "{err}"
        );
        std::fs::remove_dir_all(root).ok();
    }
}
