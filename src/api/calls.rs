//! Call control for an agent's current call: hold and resume, hang up, blind transfer with a
//! reason, attended transfer (consult, then complete or cancel). The same rules as the agent's state (an agent their own, a supervisor their
//! teams', an admin anyone's), carried out by the engine as if the agent's phone had asked.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Api, ApiRequest, Reply, ask_engine, error, read_json, reply, steering};
use crate::call::agent_api::AgentCommand;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Hold,
    HangUp,
    Transfer,
    Consult,
    CompleteConsult,
    CancelConsult,
}

pub async fn command(api: &Api, id: String, action: Action, req: Request<Incoming>) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HoldBody {
        hold: bool,
        call: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HangUpBody {
        call: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TransferBody {
        target: String,
        reason: Option<String>,
        call: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ConsultBody {
        target: String,
        call: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CompleteBody {
        reason: Option<String>,
        call: Option<String>,
    }
    let session = match steering(api, &id, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let command = match action {
        Action::Hold => match read_json::<HoldBody>(req).await {
            Ok(b) => AgentCommand::Hold {
                held: b.hold,
                call: b.call,
            },
            Err(r) => return r,
        },
        Action::HangUp => match read_json::<HangUpBody>(req).await {
            Ok(b) => AgentCommand::HangUp { call: b.call },
            Err(r) => return r,
        },
        Action::CancelConsult => match read_json::<HangUpBody>(req).await {
            Ok(b) => AgentCommand::CancelConsult { call: b.call },
            Err(r) => return r,
        },
        Action::Consult => match read_json::<ConsultBody>(req).await {
            Ok(b) if b.target.is_empty() || b.target.len() > 64 => {
                return error(StatusCode::BAD_REQUEST, "target is 1 to 64 characters");
            }
            Ok(b) => AgentCommand::Consult {
                target: b.target,
                call: b.call,
                teams: supervisor_teams(&session),
            },
            Err(r) => return r,
        },
        Action::CompleteConsult => match read_json::<CompleteBody>(req).await {
            Ok(b) => AgentCommand::CompleteConsult {
                reason: b.reason,
                call: b.call,
                by: (session.agent.as_deref() != Some(id.as_str())).then(|| session.user.clone()),
            },
            Err(r) => return r,
        },
        Action::Transfer => match read_json::<TransferBody>(req).await {
            Ok(b) if b.target.is_empty() || b.target.len() > 64 => {
                return error(StatusCode::BAD_REQUEST, "target is 1 to 64 characters");
            }
            Ok(b) => AgentCommand::Transfer {
                target: b.target,
                reason: b.reason,
                call: b.call,
                // A supervisor's transfer is not the agent's.
                by: (session.agent.as_deref() != Some(id.as_str())).then(|| session.user.clone()),
                teams: supervisor_teams(&session),
            },
            Err(r) => return r,
        },
    };
    match ask_engine(api, |reply| ApiRequest::Agent {
        id: id.clone(),
        command,
        reply,
    })
    .await
    {
        Ok(view) => {
            tracing::info!(user = %session.user, agent = %id, ?action, "call command through the API");
            reply(StatusCode::OK, json!(view))
        }
        Err(r) => r,
    }
}

/// A supervisor's reach: their teams (an admin's and an agent's: anyone).
fn supervisor_teams(session: &super::auth::Session) -> Option<Vec<String>> {
    (session.role == super::auth::Role::Supervisor).then(|| session.teams.clone())
}

/// `POST /api/v1/calls/{id}/move` with `{"queue": "billing"}` or `{"agent": "1002"}`: a
/// supervisor or admin sends a caller who is still waiting elsewhere.
pub async fn move_caller(api: &Api, call: String, req: Request<Incoming>) -> Reply {
    use crate::call::supervise::{MoveError, MoveTarget};
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        queue: Option<String>,
        agent: Option<String>,
    }
    let Some(session) = api.session(&req) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/v1/session)",
        );
    };
    if session.role == super::auth::Role::Agent {
        return error(
            StatusCode::FORBIDDEN,
            "only supervisors and admins move callers",
        );
    }
    let body: Body = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let target = match (body.queue, body.agent) {
        (Some(q), None) if !q.is_empty() && q.len() <= 64 => MoveTarget::Queue(q),
        (None, Some(a)) if !a.is_empty() && a.len() <= 64 => MoveTarget::Agent(a),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "name either a queue or an agent (1 to 64 characters)",
            );
        }
    };
    // A supervisor sends callers to their own teams' agents only.
    if let (MoveTarget::Agent(a), super::auth::Role::Supervisor) = (&target, session.role) {
        let team = api
            .feeds
            .snapshot
            .borrow()
            .agent_list
            .iter()
            .find(|x| &x.id == a)
            .and_then(|x| x.team.clone());
        if !super::events::may_see(&session, a, team.as_deref()) {
            return error(StatusCode::FORBIDDEN, "that agent is not in your teams");
        }
    }
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    let request = ApiRequest::Move {
        call: call.clone(),
        target: target.clone(),
        by: session.user.clone(),
        reply: reply_tx,
    };
    if api.feeds.commands.try_send(request).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again",
        );
    }
    match tokio::time::timeout(super::COMMAND_WAIT, reply_rx).await {
        Ok(Ok(Ok(()))) => {
            tracing::info!(user = %session.user, %call, ?target, "waiting caller moved through the API");
            let to = match target {
                MoveTarget::Queue(q) => json!({ "queue": q }),
                MoveTarget::Agent(a) => json!({ "agent": a }),
            };
            reply(StatusCode::OK, json!({ "moved": call, "to": to }))
        }
        Ok(Ok(Err(
            e @ (MoveError::AgentUnavailable(_)
            | MoveError::Refused { .. }
            | MoveError::Ringing
            | MoveError::SameQueue(_)),
        ))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Ok(Err(e))) => error(StatusCode::NOT_FOUND, e.to_string()),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server did not answer in time",
        ),
    }
}
