//! `agents.toml`: the agents (id, name, extension, credentials, skills, team, endpoint),
//! the not-ready reasons and the wrap-up dispositions.

use super::*;

/// False when the file is not TOML.
pub(super) fn read_agents(sink: &mut Sink, config: &mut AcdConfig) -> bool {
    let Some(doc) = parse(sink, sink.src.text) else {
        return false;
    };
    let top = Table::new(doc.get_ref(), doc.span(), "agents.toml");
    let agents = top.table("agents", sink);
    let reasons = top.table("reasons", sink);
    let dispositions = top.table("dispositions", sink);
    top.finish(sink);
    let mut extensions: Vec<(String, Located)> = Vec::new();
    if let Some(agents) = agents {
        for (id, value) in agents.entries() {
            if !valid_name(&id.v) {
                sink.error(
                    &id.span,
                    format!("agent id {:?} must be letters, digits, -, _ and .", id.v),
                );
            }
            let DeValue::Table(t) = value.get_ref() else {
                sink.error(
                    &value.span(),
                    format!(
                        "agent {:?} must be a table, not {}",
                        id.v,
                        kind_of(value.get_ref())
                    ),
                );
                continue;
            };
            let t = Table::new(t, value.span(), format!("agent {:?}", id.v));
            let agent = read_agent(sink, &id, &t);
            t.finish(sink);
            let at = sink.src.locate(&agent.1);
            if let Some((_, first)) = extensions.iter().find(|(e, _)| *e == agent.0.extension) {
                sink.error(
                    &agent.1,
                    format!(
                        "extension {:?} is already agent {:?}'s (at {first})",
                        agent.0.extension,
                        config
                            .agents
                            .iter()
                            .find(|a| a.extension == agent.0.extension)
                            .map_or("", |a| a.id.as_str())
                    ),
                );
            } else {
                extensions.push((agent.0.extension.clone(), at));
            }
            config.agents.push(agent.0);
        }
    }
    if let Some(reasons) = reasons {
        for (code, value) in reasons.entries() {
            if code.v.is_empty() || code.v.len() > 4 || !code.v.chars().all(|c| c.is_ascii_digit())
            {
                sink.error(
                    &code.span,
                    format!(
                        "reason code {:?} must be 1 to 4 digits (agents dial *14<code>)",
                        code.v
                    ),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::String(name) => config.reasons.push(ReasonCode {
                    code: code.v,
                    name: name.to_string(),
                }),
                other => sink.error(
                    &value.span(),
                    format!(
                        "reason {:?} is a name like \"Lunch\", not {}",
                        code.v,
                        kind_of(other)
                    ),
                ),
            }
        }
    }
    if let Some(dispositions) = dispositions {
        for (code, value) in dispositions.entries() {
            let code_ok = !code.v.is_empty()
                && code.v.len() <= 32
                && code
                    .v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !code_ok {
                sink.error(
                    &code.span,
                    format!(
                        "disposition code {:?} must be 1 to 32 letters, digits and _ (e.g. resolved)",
                        code.v
                    ),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::String(label) => {
                    config.dispositions.push(crate::acd::model::Disposition {
                        code: code.v,
                        label: label.to_string(),
                    })
                }
                other => sink.error(
                    &value.span(),
                    format!(
                        "disposition {:?} is a label like \"Resolved\", not {}",
                        code.v,
                        kind_of(other)
                    ),
                ),
            }
        }
    }
    true
}

/// The agent, and the span its extension is written at (or its id, when it has none).
pub(super) fn read_agent(
    sink: &mut Sink,
    id: &Sp<String>,
    t: &Table,
) -> (AgentDef, std::ops::Range<usize>) {
    let name = t.str("name", sink).map_or_else(|| id.v.clone(), |n| n.v);
    let extension = match t.get("extension") {
        Some(v) => match v.get_ref() {
            DeValue::String(s) => Sp::new(s.to_string(), v.span()),
            DeValue::Integer(i) => Sp::new(i.as_str().to_string(), v.span()),
            other => {
                sink.error(
                    &v.span(),
                    format!("`extension` must be a string, not {}", kind_of(other)),
                );
                id.clone()
            }
        },
        None => id.clone(),
    };
    if extension.v.is_empty()
        || !extension
            .v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
    {
        sink.error(
            &extension.span,
            format!(
                "extension {:?} must be a SIP user name: letters, digits, -, _, . and +",
                extension.v
            ),
        );
    }
    let mut hex_key = |key: &'static str, len: usize| -> Option<String> {
        let v = t.str(key, sink)?;
        if is_hex(&v.v, len) {
            Some(v.v.to_ascii_lowercase())
        } else {
            sink.error(
                &v.span,
                format!(
                    "`{key}` must be {len} hex characters (make it with `hotline agent-password {}`)",
                    id.v
                ),
            );
            None
        }
    };
    let credentials = Credentials {
        ha1_md5: hex_key("ha1_md5", 32),
        ha1_sha256: hex_key("ha1_sha256", 64),
    };
    let pin_sha256 = hex_key("pin_sha256", 64);
    let endpoint = match t.str("endpoint", sink) {
        None => AgentEndpoint::Registered,
        Some(e) if e.v == "registered" => AgentEndpoint::Registered,
        Some(e) => {
            if !fixed_uri_ok(&e.v) {
                sink.error(
                    &e.span,
                    format!(
                        "`endpoint` is \"registered\" or a SIP URI like \"sip:1001@192.0.2.10:5060\", not {:?}",
                        e.v
                    ),
                );
            }
            AgentEndpoint::Fixed(e.v)
        }
    };
    if endpoint == AgentEndpoint::Registered
        && credentials.ha1_md5.is_none()
        && credentials.ha1_sha256.is_none()
        && !t.has("ha1_md5")
        && !t.has("ha1_sha256")
    {
        sink.out.warnings.push(Warning {
            at: sink.src.locate(&id.span),
            message: format!(
                "agent {:?} has no ha1_md5 or ha1_sha256: their phone cannot register (make them with `hotline agent-password {}`)",
                id.v, id.v
            ),
        });
    }
    let mut skills = Vec::new();
    if let Some(s) = t.table("skills", sink) {
        for (skill, level) in s.entries() {
            if !valid_name(&skill.v) {
                sink.error(
                    &skill.span,
                    format!(
                        "skill name {:?} must be letters, digits, -, _ and .",
                        skill.v
                    ),
                );
            }
            if let Some(level) = level_value(sink, &skill.v, level) {
                skills.push(Skill {
                    name: skill.v,
                    level,
                });
            }
        }
    }
    let team = t.str("team", sink).map(|team| {
        if !valid_name(&team.v) {
            sink.error(
                &team.span,
                format!("team name {:?} must be letters, digits, -, _ and .", team.v),
            );
        }
        team.v
    });
    let wrap_up = duration_opt(sink, t, "wrap_up", Duration::ZERO);
    let auto_login = t.bool("auto_login", sink).is_some_and(|b| b.v);
    let span = extension.span.clone();
    (
        AgentDef {
            id: id.v.clone(),
            name,
            extension: extension.v,
            credentials,
            pin_sha256,
            endpoint,
            skills,
            team,
            wrap_up,
            auto_login,
        },
        span,
    )
}

/// `sip:user@host[:port]` (or `sip:host`), with nothing a SIP URI cannot hold.
pub(super) fn fixed_uri_ok(uri: &str) -> bool {
    let Some(rest) = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
    else {
        return false;
    };
    let host = match rest.rsplit_once('@') {
        Some(("", _)) => "",
        Some((_, host)) => host,
        None => rest,
    };
    let host = host.split(';').next().unwrap_or("");
    !host.is_empty()
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}
