//! An agent phone's REGISTER with digest authentication and its refreshes, and the login
//! feature code it dials when the server wants one.

use super::*;

impl Agent {
    pub(super) fn send_register(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        let r = &mut self.reg;
        r.cseq += 1;
        r.phase = if r.phase == RegPhase::Registered || r.ever {
            r.phase
        } else {
            RegPhase::InFlight
        };
        let mut headers = vec![("Expires", r.asked.to_string())];
        if let Some((c, proxy)) = &r.challenge {
            r.nc += 1;
            let value = digest::authorization(
                c,
                &Credentials {
                    username: &self.ext,
                    password: &ctx.plan.opts.password,
                    method: "REGISTER",
                    uri: &ctx.ruri,
                },
                r.nc,
                &token(16),
            );
            headers.push((
                if *proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                },
                value,
            ));
        }
        let aor = format!("<sip:{}@{}>", self.ext, ctx.aor_host);
        let contact = format!("<{}>", self.contact_uri);
        let data = build_request(&RawRequest {
            method: "REGISTER",
            ruri: &ctx.ruri,
            local: &self.local,
            branch: &format!("z9hG4bK{}", token(16)),
            from: &aor,
            from_tag: &r.from_tag,
            to: &aor,
            call_id: &r.call_id,
            cseq: r.cseq,
            contact: Some(&contact),
            headers: &headers,
            body: None,
        })
        .into_bytes();
        self.send(&data, ctx);
        self.reg.txn = Some(Txn::new(now, data, self.reg.cseq, false));
    }

    pub(super) fn reg_failed(&mut self, code: u16, ctx: &mut Ctx<'_>) {
        if self.reg.asked == 0 {
            self.reg.phase = RegPhase::Done;
            return;
        }
        if self.reg.ever {
            ctx.tally.refresh_failures += 1;
        } else {
            *ctx.tally.register_failures.entry(code).or_default() += 1;
        }
        self.reg.phase = RegPhase::Failed;
    }

    pub(super) fn on_register_response(&mut self, now: Instant, r: RawResponse, ctx: &mut Ctx<'_>) {
        let Some(txn) = &mut self.reg.txn else { return };
        if r.cseq != txn.cseq || r.code < 200 {
            return;
        }
        self.reg.txn = None;
        match r.code {
            200..=299 if self.reg.asked == 0 => {
                ctx.tally.unregistered += 1;
                self.reg.phase = RegPhase::Done;
            }
            200..=299 => {
                self.reg.auth_tries = 0;
                let granted = r.granted(&self.contact_uri).unwrap_or(self.reg.asked);
                if granted == 0 {
                    return self.reg_failed(r.code, ctx);
                }
                self.reg.refresh_at =
                    Some(now + Duration::from_secs(u64::from(granted / 2).max(5)));
                self.reg.phase = RegPhase::Registered;
                if self.reg.ever {
                    ctx.tally.refreshes += 1;
                } else {
                    self.reg.ever = true;
                    ctx.tally.registered += 1;
                    let alg = self
                        .reg
                        .challenge
                        .as_ref()
                        .map_or("none", |(c, _)| c.algorithm.token());
                    *ctx.tally.algorithms.entry(alg).or_default() += 1;
                    if let Some(code) = ctx.plan.opts.login_code.clone()
                        && !ctx.stopping
                    {
                        self.start_login(now, &code, ctx);
                    }
                }
            }
            401 | 407 => {
                let (cs, proxy) = r.challenges();
                let chosen = digest::choose(&cs, ctx.plan.opts.digest).cloned();
                let Some(c) = chosen.filter(|_| self.reg.auth_tries < 2) else {
                    return self.reg_failed(r.code, ctx);
                };
                self.reg.auth_tries += 1;
                self.reg.challenge = Some((c, proxy));
                self.reg.nc = 0;
                self.send_register(now, ctx);
            }
            code => self.reg_failed(code, ctx),
        }
    }

    pub(super) fn login_request(
        &self,
        ctx: &Ctx<'_>,
        l: &Login,
        method: &str,
        cseq: u32,
        auth: Option<(String, bool)>,
    ) -> Vec<u8> {
        let ruri = format!(
            "sip:{}@{}",
            ctx.plan.opts.login_code.as_deref().unwrap_or_default(),
            ctx.aor_host
        );
        let from = format!("<sip:{}@{}>", self.ext, ctx.aor_host);
        let contact = format!("<{}>", self.contact_uri);
        let mut headers = Vec::new();
        if let Some((v, proxy)) = auth {
            headers.push((
                if proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                },
                v,
            ));
        }
        let body = (method == "INVITE").then(|| {
            sdp::build_offer(
                &LocalMedia::new(ctx.plan.local_ip, self.rtp_port, self.session),
                sdp::Direction::SendRecv,
            )
        });
        build_request(&RawRequest {
            method,
            ruri: &ruri,
            local: &self.local,
            branch: &l.branch,
            from: &from,
            from_tag: &l.from_tag,
            to: &l.to,
            call_id: &l.call_id,
            cseq,
            contact: (method == "INVITE").then_some(contact.as_str()),
            headers: &headers,
            body: body.as_deref(),
        })
        .into_bytes()
    }

    pub(super) fn start_login(&mut self, now: Instant, code: &str, ctx: &mut Ctx<'_>) {
        let mut l = Login {
            call_id: format!("{}@hotline-load", token(20)),
            from_tag: token(10),
            cseq: 1,
            branch: format!("z9hG4bK{}", token(16)),
            to: format!("<sip:{code}@{}>", ctx.aor_host),
            phase: LoginPhase::Inviting,
            txn: None,
            auth_tries: 0,
        };
        let data = self.login_request(ctx, &l, "INVITE", 1, None);
        self.send(&data, ctx);
        l.txn = Some(Txn::new(now, data, 1, true));
        self.login = Some(l);
    }

    pub(super) fn on_login_response(&mut self, now: Instant, r: RawResponse, ctx: &mut Ctx<'_>) {
        let Some(mut l) = self.login.take() else {
            return;
        };
        let invite_cseq = if l.phase == LoginPhase::ByeSent {
            l.cseq - 1
        } else {
            l.cseq
        };
        if r.method == "INVITE" && r.cseq == invite_cseq {
            if let Some(t) = &mut l.txn
                && l.phase == LoginPhase::Inviting
            {
                t.answered = true;
            }
            if r.code >= 200 {
                // ACK every final response (a 2xx: in a new transaction, resent for each
                // retransmission of it).
                l.to = r.to.clone();
                if r.code >= 300 {
                    let ack = self.login_request(ctx, &l, "ACK", invite_cseq, None);
                    self.send(&ack, ctx);
                } else {
                    let mut a = Login {
                        branch: format!("z9hG4bK{}", token(16)),
                        ..clone_login(&l)
                    };
                    a.to = r.to.clone();
                    let ack = self.login_request(ctx, &a, "ACK", invite_cseq, None);
                    self.send(&ack, ctx);
                }
            }
            if l.phase == LoginPhase::Inviting && r.code >= 200 {
                l.txn = None;
                match r.code {
                    200..=299 => {
                        *ctx.tally.login_results.entry(r.code).or_default() += 1;
                        l.cseq += 1;
                        l.branch = format!("z9hG4bK{}", token(16));
                        let bye = self.login_request(ctx, &l, "BYE", l.cseq, None);
                        self.send(&bye, ctx);
                        l.txn = Some(Txn::new(now, bye, l.cseq, false));
                        l.phase = LoginPhase::ByeSent;
                    }
                    401 | 407 if l.auth_tries < 2 => {
                        let (cs, proxy) = r.challenges();
                        match digest::choose(&cs, ctx.plan.opts.digest) {
                            Some(c) => {
                                l.auth_tries += 1;
                                l.cseq += 1;
                                l.branch = format!("z9hG4bK{}", token(16));
                                // A new INVITE outside any dialog: no To tag.
                                l.to = format!(
                                    "<sip:{}@{}>",
                                    ctx.plan.opts.login_code.as_deref().unwrap_or_default(),
                                    ctx.aor_host
                                );
                                let ruri = format!(
                                    "sip:{}@{}",
                                    ctx.plan.opts.login_code.as_deref().unwrap_or_default(),
                                    ctx.aor_host
                                );
                                let value = digest::authorization(
                                    c,
                                    &Credentials {
                                        username: &self.ext,
                                        password: &ctx.plan.opts.password,
                                        method: "INVITE",
                                        uri: &ruri,
                                    },
                                    1,
                                    &token(16),
                                );
                                let inv = self.login_request(
                                    ctx,
                                    &l,
                                    "INVITE",
                                    l.cseq,
                                    Some((value, proxy)),
                                );
                                self.send(&inv, ctx);
                                l.txn = Some(Txn::new(now, inv, l.cseq, true));
                            }
                            None => {
                                *ctx.tally.login_results.entry(r.code).or_default() += 1;
                                l.phase = LoginPhase::Done;
                            }
                        }
                    }
                    code => {
                        *ctx.tally.login_results.entry(code).or_default() += 1;
                        l.phase = LoginPhase::Done;
                    }
                }
            }
        } else if r.method == "BYE"
            && l.phase == LoginPhase::ByeSent
            && r.cseq == l.cseq
            && r.code >= 200
        {
            l.txn = None;
            l.phase = LoginPhase::Done;
        }
        if l.phase == LoginPhase::Done {
            self.login_done = true;
        }
        self.login = Some(l);
    }
}
