//! Flow files to a `FlowSet`: read every file, learn every flow's name (so `subflow` can point
//! across files), compile each flow's nodes, build the routing table, then run the checks.
//! Every problem is collected with its file, line, column and text; nothing stops at the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::nodes::{self, Shared};
use super::schema::{Diagnostics, FlowError, Located, Sink, Source, Sp, Table};
use super::{FlowId, FlowSet, calendar, check};

/// Load, compile and check every `*.toml` in `dir`. The set is returned only when there are no
/// errors; warnings come either way.
pub fn load_dir(dir: &Path) -> (Option<FlowSet>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let files = match list_files(dir) {
        Ok(f) => f,
        Err(e) => {
            diags.errors.push(e);
            return (None, diags);
        }
    };
    let mut texts = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(t) => texts.push((file, t)),
            Err(source) => diags.errors.push(FlowError::ReadFile { file, source }),
        }
    }
    let sources: Vec<Source> = texts
        .iter()
        .map(|(file, text)| Source { file, text })
        .collect();

    // Pass 1: parse every file and read its [flow] header.
    let mut parsed = Vec::new();
    for src in &sources {
        let mut sink = Sink {
            src,
            out: &mut diags,
        };
        let doc = match DeTable::parse(src.text) {
            Ok(doc) => doc,
            Err(e) => {
                let (span, message) =
                    super::schema::syntax_error(src.text, e.span().unwrap_or(0..0), e.message());
                sink.error(&span, message);
                continue;
            }
        };
        parsed.push((src, doc));
    }
    let mut headers = Vec::new();
    let mut flow_ids: HashMap<String, FlowId> = HashMap::new();
    let mut name_sites: HashMap<String, Located> = HashMap::new();
    for (src, doc) in &parsed {
        let mut sink = Sink {
            src,
            out: &mut diags,
        };
        let top = Table::new(doc.get_ref(), doc.span(), "a flow file");
        let header = top.table("flow", &mut sink);
        let nodes = top.table("nodes", &mut sink);
        let has_flow = top.has("flow");
        top.finish(&mut sink);
        let Some(header) = header else {
            if !has_flow {
                sink.error(
                    &(0..0),
                    "a flow file needs a [flow] table (name, numbers, start)",
                );
            }
            continue;
        };
        let header = header.relabel("the [flow] table");
        let Some(name) = header.req_str("name", &mut sink) else {
            continue;
        };
        if let Some(first) = name_sites.get(&name.v) {
            sink.error(
                &name.span,
                format!("a second flow named {:?} (the first is at {first})", name.v),
            );
            continue;
        }
        name_sites.insert(name.v.clone(), src.locate(&name.span));
        flow_ids.insert(name.v.clone(), FlowId(headers.len() as u32));
        headers.push((src, header, name, nodes));
    }

    // Pass 2: compile each flow, now that every flow name is known.
    let mut set = FlowSet::default();
    let calendars = calendar::load_dir(dir, &mut diags);
    let mut shared = Shared::new(calendars);
    let mut number_sites: HashMap<String, Located> = HashMap::new();
    let mut default_site: Option<Located> = None;
    for (i, (src, header, name, nodes_table)) in headers.into_iter().enumerate() {
        let id = FlowId(i as u32);
        let mut sink = Sink {
            src,
            out: &mut diags,
        };
        let numbers = header.strings("numbers", &mut sink).unwrap_or_default();
        let default = header.bool("default", &mut sink).is_some_and(|d| d.v);
        let start = header.req_str("start", &mut sink);
        let language = header.str("language", &mut sink);
        // Free text for admins; read only so it counts as a known key.
        let _ = header.str("description", &mut sink);
        header.finish(&mut sink);
        if let Some(lang) = &language {
            shared.language(&lang.v, src.locate(&lang.span), &mut sink);
        }
        let flow = nodes::compile_flow(
            &mut sink,
            &name,
            start.as_ref(),
            language.map(|l| l.v),
            nodes_table.as_ref(),
            &flow_ids,
            &mut shared,
        );
        for number in &numbers {
            if number.v.is_empty() || number.v.chars().any(char::is_whitespace) {
                sink.error(
                    &number.span,
                    format!("{:?} is not a dialled number", number.v),
                );
                continue;
            }
            let at = src.locate(&number.span);
            if let Some(first) = number_sites.get(&number.v) {
                sink.error(
                    &number.span,
                    format!("number {:?} is already routed by {first}", number.v),
                );
                continue;
            }
            number_sites.insert(number.v.clone(), at);
            set.by_number.insert(number.v.clone(), id);
        }
        if default {
            let at = src.locate(&name.span);
            match &default_site {
                Some(first) => sink.error(
                    &name.span,
                    format!("a second default flow (the first is at {first})"),
                ),
                None => {
                    default_site = Some(at);
                    set.default = Some(id);
                }
            }
        }
        match flow {
            Some(mut flow) => {
                flow.numbers = numbers.iter().map(|n| n.v.clone()).collect();
                set.flows.push(flow)
            }
            // Keep FlowIds aligned with positions even when a flow failed.
            None => set.flows.push(super::Flow {
                name: name.v.clone(),
                file: src.file.to_path_buf(),
                numbers: Vec::new(),
                start: super::NodeId(0),
                language: None,
                nodes: Vec::new(),
            }),
        }
    }
    if parsed.is_empty() && diags.errors.is_empty() {
        diags.errors.push(FlowError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    shared.finish(&mut set, &mut diags);
    if !diags.errors.is_empty() {
        return (None, diags);
    }
    check::analyse(&set, &mut diags);
    if diags.errors.is_empty() {
        (Some(set), diags)
    } else {
        (None, diags)
    }
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>, FlowError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FlowError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// A node's table, as compile_flow iterates them.
pub(super) fn node_tables<'t, 'i>(
    nodes: &Table<'t, 'i>,
) -> Vec<(Sp<String>, &'t toml::Spanned<DeValue<'i>>)> {
    nodes.entries().collect()
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
