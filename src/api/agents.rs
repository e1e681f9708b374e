//! Steering agents through the API: who may, handing the request to the signalling loop,
//! and the state and wrap-up commands (calls.rs has the call commands).

use super::*;

/// Agents see themselves, supervisors their teams' agents, admins everyone.
pub(super) fn may_see(s: &Session, agent: &crate::call::agent_api::AgentView) -> bool {
    events::may_see(s, &agent.id, agent.team.as_deref())
}

/// The session of a user who may steer agent `id`, or the answer saying why not.
pub(super) fn steering(api: &Api, id: &str, req: &Request<Incoming>) -> Result<Session, Reply> {
    let Some(session) = api.session(req) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/v1/session)",
        ));
    };
    // Decided on the latest snapshot: an agent's team changes only with the agents file.
    let known = api
        .feeds
        .snapshot
        .borrow()
        .agent_list
        .iter()
        .find(|a| a.id == id)
        .cloned();
    match &known {
        Some(a) if may_see(&session, a) => Ok(session),
        Some(_) => Err(error(
            StatusCode::FORBIDDEN,
            format!("{} may not change agent {id:?}", session.user),
        )),
        None if session.role == Role::Admin => Ok(session),
        None => Err(error(StatusCode::NOT_FOUND, format!("no agent {id:?}"))),
    }
}

pub(super) type EngineReply =
    Result<crate::call::agent_api::AgentView, crate::call::agent_api::AgentCommandError>;

/// Hands a request to the signalling loop and waits for its answer.
pub(super) async fn ask_engine(
    api: &Api,
    request: impl FnOnce(tokio::sync::oneshot::Sender<EngineReply>) -> ApiRequest,
) -> Result<crate::call::agent_api::AgentView, Reply> {
    use crate::call::agent_api::AgentCommandError as E;
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    if api.feeds.commands.try_send(request(reply_tx)).is_err() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again",
        ));
    }
    match tokio::time::timeout(COMMAND_WAIT, reply_rx).await {
        Ok(Ok(Ok(view))) => Ok(view),
        Ok(Ok(Err(e @ E::UnknownAgent(_)))) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Ok(Ok(Err(e @ E::NotInWrapUp(_)))) => Err(error(StatusCode::CONFLICT, e.to_string())),
        Ok(Ok(Err(
            e @ (E::NotOnCall(_)
            | E::OtherCall(_)
            | E::PhoneHolds(_)
            | E::Consulting(_)
            | E::NotConsulting(_)
            | E::ConsultRinging(_)
            | E::Unavailable { .. }),
        ))) => Err(error(StatusCode::CONFLICT, e.to_string())),
        Ok(Ok(Err(e @ E::NoSuchTarget(_)))) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Ok(Ok(Err(e @ E::NotYourTeam(_)))) => Err(error(StatusCode::FORBIDDEN, e.to_string())),
        Ok(Ok(Err(e))) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        _ => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server did not answer in time",
        )),
    }
}

/// `POST /api/v1/agents/{id}/wrap-up` with `{"disposition": "resolved", "notes": "...",
/// "resolved": true, "done": true}`: every field optional.
pub(super) async fn wrap_up(api: &Api, id: String, req: Request<Incoming>) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        disposition: Option<String>,
        notes: Option<String>,
        resolved: Option<bool>,
        #[serde(default)]
        done: bool,
    }
    let session = match steering(api, &id, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body: Body = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let note = crate::call::WrapNote {
        disposition: body.disposition,
        notes: body.notes,
        resolved: body.resolved,
    };
    let done = body.done;
    match ask_engine(api, |reply| ApiRequest::WrapUp {
        id: id.clone(),
        note,
        done,
        reply,
    })
    .await
    {
        Ok(view) => {
            tracing::info!(user = %session.user, agent = %id, done, "wrap-up recorded through the API");
            reply(StatusCode::OK, json!(view))
        }
        Err(r) => r,
    }
}

/// `POST /api/v1/agents/{id}/state` with `{"state": "ready"}`, `{"state": "not_ready",
/// "reason": "lunch"}`, `logged_in`, `logged_out` or `wrap_up_done`.
pub(super) async fn set_agent_state(api: &Api, id: String, req: Request<Incoming>) -> Reply {
    use crate::call::agent_api::AgentCommand;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        state: String,
        reason: Option<String>,
    }
    let session = match steering(api, &id, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body: Body = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let command = match (body.state.as_str(), body.reason) {
        ("ready", None) => AgentCommand::Ready,
        ("not_ready", Some(reason)) => AgentCommand::NotReady { reason },
        ("not_ready", None) => {
            return error(StatusCode::BAD_REQUEST, "not_ready needs a reason");
        }
        ("logged_in", None) => AgentCommand::Login,
        ("logged_out", None) => AgentCommand::Logout,
        ("wrap_up_done", None) => AgentCommand::EndWrapUp,
        (state @ ("ready" | "logged_in" | "logged_out" | "wrap_up_done"), Some(_)) => {
            return error(StatusCode::BAD_REQUEST, format!("{state} takes no reason"));
        }
        (other, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown state {other:?} (ready, not_ready, logged_in, logged_out, wrap_up_done)"
                ),
            );
        }
    };
    match ask_engine(api, |reply| ApiRequest::Agent {
        id: id.clone(),
        command,
        reply,
    })
    .await
    {
        Ok(view) => {
            tracing::info!(user = %session.user, agent = %id, state = view.state, "agent state set through the API");
            reply(StatusCode::OK, json!(view))
        }
        Err(r) => r,
    }
}
