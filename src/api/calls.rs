//! Call control for an agent's current call: hold and resume, hang up, blind transfer with a
//! reason. The same rules as the agent's state (an agent their own, a supervisor their
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
}

pub async fn command(api: &Api, id: String, action: Action, req: Request<Incoming>) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HoldBody {
        hold: bool,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HangUpBody {}
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TransferBody {
        target: String,
        reason: Option<String>,
    }
    let session = match steering(api, &id, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let command = match action {
        Action::Hold => match read_json::<HoldBody>(req).await {
            Ok(b) => AgentCommand::Hold { held: b.hold },
            Err(r) => return r,
        },
        Action::HangUp => match read_json::<HangUpBody>(req).await {
            Ok(_) => AgentCommand::HangUp,
            Err(r) => return r,
        },
        Action::Transfer => match read_json::<TransferBody>(req).await {
            Ok(b) if b.target.is_empty() || b.target.len() > 64 => {
                return error(StatusCode::BAD_REQUEST, "target is 1 to 64 characters");
            }
            Ok(b) => AgentCommand::Transfer {
                target: b.target,
                reason: b.reason,
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
