//! Blind transfer, back-to-back: hotline calls the target itself (a SIP URI, or a number
//! through the configured outbound target) and, once answered, relays the audio between
//! the caller and the target in the media thread. The caller's call stays ours, so a busy
//! or unanswered target takes the flow's failure exit instead of losing the caller, and
//! the call still ends with one CDR.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Engine, MediaBackend, MediaCommand, stream_params};
use crate::cdr::{Disposition, HangupBy};
use crate::flow::TaskId;
use crate::sdp::{self, Direction, LocalMedia, SessionDescription};
use crate::sip::{CallRef, Peer, TransportKind, UaEvent};

/// The outbound leg of a transfer.
pub(super) struct Leg {
    pub call: CallRef,
    task: TaskId,
    local: LocalMedia,
    target: String,
    /// Until the target answers: when to give up ringing.
    pub ring_deadline: Option<Instant>,
}

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
        .ok_or_else(|| format!("{target:?} is not a sip: URI"))?;
    let rest = rest.split(';').next().unwrap_or(rest);
    let (user, host) = rest
        .split_once('@')
        .ok_or_else(|| format!("{target:?} names no user@host"))?;
    let addr = host
        .parse::<SocketAddr>()
        .or_else(|_| host.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 5060)))
        .map_err(|_| format!("{host:?}: transfer targets are IP addresses (with an optional port); a host name needs an outbound target"))?;
    if user.is_empty() {
        return Err(format!("{target:?} names no user"));
    }
    Ok((addr, user.to_string()))
}

impl<M: MediaBackend> Engine<M> {
    /// The flow asked to transfer the call: place the outbound call, or fail at once.
    pub(super) fn start_transfer(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        task: TaskId,
        target: String,
        is_number: bool,
        ring_timeout: Duration,
    ) {
        let outbound = self.cfg.outbound;
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let (addr, user) = match resolve(&target, is_number, outbound) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(sip_call_id = %call.sip_call_id, %target, why, "transfer impossible");
                call.interpreter.on_transfer_failed(now, task, &why);
                return;
            }
        };
        let leg_ref = self.ua.reserve_call();
        let port = match self.media.open_beside(leg_ref, call_ref) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(sip_call_id = %call.sip_call_id, error = %e, "no RTP port for a transfer");
                call.interpreter
                    .on_transfer_failed(now, task, "no media port");
                return;
            }
        };
        let local = LocalMedia::new(call.local.addr, port, fastrand::u64(1..1 << 40));
        let offer = sdp::build_offer(&local, Direction::SendRecv);
        let peer = Peer {
            addr,
            transport: TransportKind::Udp,
        };
        let caller = call.caller.clone();
        if let Err(e) =
            self.ua
                .invite_as(now, leg_ref, peer, &caller, &user, Some(offer.into_bytes()))
        {
            self.media.command(MediaCommand::Close { call: leg_ref });
            if let Some(call) = self.calls.get_mut(&call_ref) {
                tracing::warn!(sip_call_id = %call.sip_call_id, error = %e, "transfer INVITE not sent");
                call.interpreter
                    .on_transfer_failed(now, task, "INVITE not sent");
            }
            return;
        }
        if let Some(call) = self.calls.get_mut(&call_ref) {
            tracing::info!(sip_call_id = %call.sip_call_id, %target, to = %addr, "transferring");
            call.leg = Some(Leg {
                call: leg_ref,
                task,
                local,
                target,
                ring_deadline: Some(now + ring_timeout),
            });
        }
        self.legs.insert(leg_ref, call_ref);
    }

    /// An event of an outbound leg; true when `event` belonged to one.
    pub(super) fn on_leg_event(&mut self, now: Instant, event: &UaEvent) -> bool {
        let leg_ref = match event {
            UaEvent::Answered { call, .. }
            | UaEvent::Failed { call, .. }
            | UaEvent::RemoteBye { call }
            | UaEvent::Ended { call, .. }
            | UaEvent::Progress { call, .. }
            | UaEvent::ReInvite { call, .. }
            | UaEvent::Reinvited { call, .. }
            | UaEvent::Dtmf { call, .. } => *call,
            _ => return false,
        };
        let Some(&parent) = self.legs.get(&leg_ref) else {
            return false;
        };
        match event {
            UaEvent::Answered { answer, .. } => {
                self.leg_answered(now, parent, leg_ref, answer.as_deref())
            }
            UaEvent::Failed { code, .. } => self.leg_failed(now, parent, &format!("{code}")),
            UaEvent::RemoteBye { .. } => {
                // The target hung up: the transferred call is over.
                self.legs.remove(&leg_ref);
                self.media.command(MediaCommand::Close { call: leg_ref });
                if let Some(call) = self.calls.get_mut(&parent) {
                    call.leg = None;
                }
                self.ua.hangup(now, parent);
                self.finish(
                    now,
                    parent,
                    Disposition::Completed,
                    HangupBy::Hotline,
                    200,
                    "transfer_target_bye",
                );
            }
            UaEvent::ReInvite { .. } => self.ua.reject_reinvite(now, leg_ref, 488),
            UaEvent::Ended { .. } => {
                self.legs.remove(&leg_ref);
            }
            _ => {}
        }
        true
    }

    fn leg_answered(
        &mut self,
        now: Instant,
        parent: CallRef,
        leg_ref: CallRef,
        answer: Option<&[u8]>,
    ) {
        let Some(call) = self.calls.get_mut(&parent) else {
            self.ua.hangup(now, leg_ref);
            return;
        };
        let Some(leg) = call.leg.as_mut() else {
            return;
        };
        let negotiated = answer
            .and_then(|a| SessionDescription::parse_bytes(a).ok())
            .and_then(|a| sdp::accept_answer(&a, &leg.local).ok());
        let Some(neg) = negotiated else {
            tracing::warn!(sip_call_id = %call.sip_call_id, target = %leg.target, "the transfer target answered without usable SDP");
            self.ua.hangup(now, leg_ref);
            return self.leg_failed(now, parent, "no common codec");
        };
        leg.ring_deadline = None;
        let task = leg.task;
        tracing::info!(sip_call_id = %call.sip_call_id, target = %leg.target, "transfer answered; bridging");
        call.interpreter.on_transfer_connected(task);
        self.media.command(MediaCommand::Start {
            call: leg_ref,
            params: stream_params(&neg),
        });
        self.media.command(MediaCommand::Bridge {
            call: parent,
            with: leg_ref,
        });
        self.reschedule(parent);
    }

    fn leg_failed(&mut self, now: Instant, parent: CallRef, reason: &str) {
        let Some(call) = self.calls.get_mut(&parent) else {
            return;
        };
        let Some(leg) = call.leg.take() else {
            return;
        };
        self.legs.remove(&leg.call);
        self.media.command(MediaCommand::Close { call: leg.call });
        call.interpreter.on_transfer_failed(now, leg.task, reason);
        self.run_flow(now, parent);
    }

    /// The ring timer of a transfer ran out: cancel the outbound call.
    pub(super) fn check_ring_timeout(&mut self, now: Instant, parent: CallRef) {
        let Some(leg) = self.calls.get(&parent).and_then(|c| c.leg.as_ref()) else {
            return;
        };
        if leg.ring_deadline.is_some_and(|t| t <= now) {
            let leg_ref = leg.call;
            self.ua.hangup(now, leg_ref);
            self.leg_failed(now, parent, "no answer");
        }
    }

    /// The caller's call is ending: the outbound leg goes with it.
    pub(super) fn end_leg(&mut self, now: Instant, leg: Option<Leg>) {
        if let Some(leg) = leg {
            self.legs.remove(&leg.call);
            self.ua.hangup(now, leg.call);
            self.media.command(MediaCommand::Close { call: leg.call });
        }
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
