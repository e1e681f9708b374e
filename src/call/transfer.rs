//! Blind transfer, back-to-back: hotline calls the target itself (a SIP URI, or a number
//! through the configured outbound target) and, once answered, relays the audio between
//! the caller and the target in the media thread. The caller's call stays ours, so a busy
//! or unanswered target takes the flow's failure exit instead of losing the caller, and
//! the call still ends with one CDR.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::legs::{LegEnd, Role};
use super::{Engine, InteractionId, LegId, MediaBackend};
use crate::cdr::{Disposition, HangupBy};
use crate::flow::TaskId;
use crate::sip::{Peer, TransportKind};

/// Where a transfer goes: the peer to send the INVITE to and the user part to call.
fn resolve(
    target: &str,
    is_number: bool,
    outbound: Option<SocketAddr>,
) -> Result<(SocketAddr, String), String> {
    if is_number {
        let gateway =
            outbound.ok_or("no outbound target is configured for numbers (sip.outbound)")?;
        if target.is_empty()
            || !target
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
        {
            return Err(format!("{target:?} is not a number to dial"));
        }
        return Ok((gateway, target.to_string()));
    }
    let rest = target
        .strip_prefix("sip:")
        .or_else(|| target.strip_prefix("sips:"))
        .ok_or_else(|| format!("{target:?} is not a sip: URI"))?;
    let rest = rest.split(';').next().unwrap_or(rest);
    let (user, host) = rest
        .split_once('@')
        .ok_or_else(|| format!("{target:?} names no user@host"))?;
    let addr = host
        .parse::<SocketAddr>()
        .or_else(|_| {
            host.parse::<std::net::IpAddr>().map(|ip| {
                SocketAddr::new(ip, crate::sip::TransportKind::of_uri(target).default_port())
            })
        })
        .map_err(|_| format!("{host:?}: transfer targets are IP addresses (with an optional port); a host name needs an outbound target"))?;
    if user.is_empty() {
        return Err(format!("{target:?} names no user"));
    }
    Ok((addr, user.to_string()))
}

impl<M: MediaBackend> Engine<M> {
    /// The flow asked to transfer the call: place the outbound leg, or fail at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_transfer(
        &mut self,
        now: Instant,
        id: InteractionId,
        task: TaskId,
        target: String,
        is_number: bool,
        ring_timeout: Duration,
        headers: Vec<(String, String)>,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (addr, user) = match resolve(&target, is_number, self.cfg.outbound) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(sip_call_id = %call.sip_call_id, %target, why, "transfer impossible");
                call.interpreter.on_transfer_failed(now, task, &why);
                return;
            }
        };
        let caller = self
            .cfg
            .outbound_caller_id
            .present(&call.caller, &call.dialled)
            .to_string();
        let peer = Peer {
            addr,
            transport: if is_number {
                self.cfg.outbound_transport
            } else {
                TransportKind::of_uri(&target)
            },
        };
        let role = Role::TransferTarget {
            task,
            target: target.clone(),
        };
        let placed = self.place_leg(
            id,
            role,
            peer.transport == TransportKind::Tls,
            |ua, dialog, offer| {
                ua.invite_as_with(now, dialog, peer, &caller, &user, Some(offer), headers)
                    .map_err(|e| format!("INVITE not sent: {e}"))
            },
        );
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match placed {
            Ok(leg) => {
                tracing::info!(sip_call_id = %call.sip_call_id, %target, to = %addr, "transferring");
                self.set_leg_deadline(leg, Some(now + ring_timeout));
            }
            Err(why) => {
                tracing::warn!(sip_call_id = %call.sip_call_id, %target, why, "transfer not placed");
                call.interpreter.on_transfer_failed(now, task, &why);
            }
        }
    }

    pub(super) fn transfer_answered(
        &mut self,
        now: Instant,
        leg: LegId,
        id: InteractionId,
        task: TaskId,
        target: &str,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            self.drop_leg(now, leg);
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %target, "transfer answered; bridging");
        call.interpreter.on_transfer_connected(task);
        self.bridge(leg);
        self.reschedule(id);
    }

    /// The transfer leg is gone. Before it was answered the flow takes its failure exit; once
    /// the caller was handed over, the target's hang-up sends the caller on at the node's
    /// `answered` exit when it has one (a survey), and otherwise ends the call (a blind
    /// transfer gave the caller away).
    pub(super) fn transfer_leg_ended(
        &mut self,
        now: Instant,
        id: InteractionId,
        task: TaskId,
        target: &str,
        how: LegEnd,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let reason = match how {
            LegEnd::RemoteBye | LegEnd::RtpTimeout => {
                if call.interpreter.on_transfer_ended(now, task) {
                    tracing::info!(sip_call_id = %call.sip_call_id, %target, "the transfer target hung up; back to the flow");
                    return self.run_flow(now, id);
                }
                tracing::info!(sip_call_id = %call.sip_call_id, %target, "the transfer target hung up");
                self.ua.hangup(now, call.dialog);
                return self.finish(
                    now,
                    id,
                    Disposition::Completed,
                    HangupBy::Hotline,
                    200,
                    "transfer_target_bye",
                );
            }
            LegEnd::Failed(code) => format!("{code}"),
            LegEnd::NoAnswer => "no answer".to_string(),
            LegEnd::NoMedia => "no common codec".to_string(),
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %target, %reason, "transfer failed");
        call.interpreter.on_transfer_failed(now, task, &reason);
        self.run_flow(now, id);
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn targets_resolve_to_a_peer_and_a_user() {
        let gw = Some("192.0.2.9:5080".parse().unwrap());
        assert_eq!(
            resolve("13800138000", true, gw).unwrap(),
            ("192.0.2.9:5080".parse().unwrap(), "13800138000".into())
        );
        assert!(
            resolve("13800138000", false, gw).is_err(),
            "a number is not a URI"
        );
        assert!(resolve("138 0013", true, gw).is_err());
        assert!(
            resolve("13800138000", true, None)
                .unwrap_err()
                .contains("sip.outbound")
        );
        assert_eq!(
            resolve("sip:duty@192.0.2.7:5070;transport=udp", false, None).unwrap(),
            ("192.0.2.7:5070".parse().unwrap(), "duty".into())
        );
        assert_eq!(
            resolve("sip:duty@192.0.2.7", false, None).unwrap().0.port(),
            5060
        );
        assert!(
            resolve("sip:duty@pbx.example.org", false, None)
                .unwrap_err()
                .contains("IP")
        );
        assert!(resolve("sip:@192.0.2.7", false, None).is_err());
    }
}
