//! SIP messages: parsing through the framing layer into rsip, the few header look-ups the
//! transaction and dialog layers need, and response/request building. The only file that
//! touches rsip's header types.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use rsip::headers::{self, Header, ToTypedHeader, UntypedHeader};
use rsip::message::{HasHeaders, HeadersExt};
use rsip::param::{OtherParam, OtherParamValue};
use rsip::{Param, SipMessage};

use super::SipError;
use super::framing::{self, FramingError};
use super::validate;

pub use rsip::{Method, Request, Response};

/// RFC 3261 §8.1.1.7: branches that begin with this are unique and usable as transaction keys.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

#[derive(Debug)]
pub enum Parsed {
    Request(Request),
    Response(Response),
}

/// What went wrong, with enough of the request to answer it with a 400 if it was one.
#[derive(Debug)]
pub struct ParseFailure {
    pub error: SipError,
    pub start_line: Option<String>,
}

pub fn parse(data: &[u8]) -> Result<Parsed, ParseFailure> {
    let fail = |error: SipError| ParseFailure {
        error,
        start_line: framing::start_line(data).map(str::to_string),
    };
    // The start line first: a wrong version or URI scheme has its own answer (505, 416),
    // which rsip's parse error would hide.
    if let Some(line) = framing::start_line(data.trim_ascii_start()) {
        validate::request_line(line).map_err(|e| fail(SipError::RequestLine(e)))?;
    }
    let framed = framing::frame(data).map_err(|e| fail(SipError::Framing(e)))?;
    let bytes = alias_head(&framed.bytes);
    let message =
        SipMessage::try_from(bytes.as_ref()).map_err(|e| fail(SipError::Parse(e.to_string())))?;
    // rsip parses header values lazily; check the ones every layer relies on now, so nothing
    // later can trip over a malformed Via, CSeq, From, To or Call-ID.
    check_mandatory(&message).map_err(fail)?;
    Ok(match message {
        SipMessage::Request(r) => Parsed::Request(r),
        SipMessage::Response(r) => Parsed::Response(r),
    })
}

/// rsip 0.4 cannot read an IPv6 reference: it splits `[2001:db8::1]:5060` at the first colon.
/// So every `[address]` is handed to rsip as a domain name standing for the address
/// (`v6x2001-db8--1.ipv6.invalid`: colons become dashes, which an IPv6 address never holds,
/// `v6x` marks where it starts, and `.invalid` is reserved to resolve nowhere), turned back into `[address]` on the way out
/// (`to_bytes`), and read as the address by `host_ip`. Inside hotline an IPv6 host is this
/// alias; on the wire it never is.
const V6_ALIAS: &str = ".ipv6.invalid";
/// The same for an address written without brackets where the grammar has it so (a Via's
/// `received`), which rsip would cut at its first colon too.
const V6_BARE_ALIAS: &str = ".ipv6-bare.invalid";

/// The alias keeps the address as it was written, so that it goes out again byte for byte.
fn v6_alias(written: &str) -> String {
    format!("{V6_ALIAS_START}{}{V6_ALIAS}", written.replace(':', "-"))
}

fn v6_bare_alias(written: &str) -> String {
    format!(
        "{V6_ALIAS_START}{}{V6_BARE_ALIAS}",
        written.replace(':', "-")
    )
}

const V6_ALIAS_START: &str = "v6x";
/// The longest IPv6 address text (an IPv4-mapped one written in full), plus the extra colon.
const V6_TEXT_MAX: usize = 46;

fn is_v6_text(text: &str) -> bool {
    text.len() <= V6_TEXT_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// The address inside `[...]`, also when written with the extra colon RFC 3261's grammar
/// allows by mistake (`2001:db8:::192.0.2.1`, RFC 5118 §4.10).
fn bracketed_v6(inner: &str) -> Option<Ipv6Addr> {
    if !is_v6_text(inner) {
        return None;
    }
    inner
        .parse()
        .ok()
        .or_else(|| inner.replacen(":::", "::", 1).parse().ok())
}

/// `text` with every bracketed IPv6 reference outside quoted strings (a digest's `uri="..."`
/// must stay as it was signed) replaced by its alias.
pub fn alias_v6(text: &str) -> Cow<'_, str> {
    if !text.contains('[') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut quoted = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c == '\n' {
            // A quoted string does not run past its header: one stray quote (a Subject's
            // 12" pizza) must not hide the next headers' addresses.
            quoted = false;
            escaped = false;
        } else if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '"' {
            quoted = true;
        } else if c == '['
            && let Some(len) = text.as_bytes()[i + 1..]
                .iter()
                .take(V6_TEXT_MAX + 1)
                .position(|&b| b == b']')
            && bracketed_v6(&text[i + 1..i + 1 + len]).is_some()
        {
            out.push_str(&v6_alias(&text[i + 1..i + 1 + len]));
            i += len + 2;
            continue;
        } else if text[i..]
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("received="))
        {
            let value = &text[i + 9..];
            let len = value
                .find(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
                .unwrap_or(value.len());
            if len <= V6_TEXT_MAX
                && value[..len].contains(':')
                && bracketed_v6(&value[..len]).is_some()
            {
                out.push_str(&text[i..i + 9]);
                out.push_str(&v6_bare_alias(&value[..len]));
                i += 9 + len;
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
    Cow::Owned(out)
}

/// `text` with every alias turned back into the address as it was written.
pub fn unalias_v6(text: &str) -> Cow<'_, str> {
    let bare = unalias(text, V6_BARE_ALIAS, false);
    match unalias(&bare, V6_ALIAS, true) {
        Cow::Borrowed(_) => bare,
        Cow::Owned(done) => Cow::Owned(done),
    }
}

fn unalias<'a>(text: &'a str, suffix: &str, brackets: bool) -> Cow<'a, str> {
    if !text.contains(suffix) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(suffix) {
        let before = &rest[..at];
        let start = before.rfind(V6_ALIAS_START);
        let written = start.map(|s| before[s + V6_ALIAS_START.len()..].replace('-', ":"));
        match (start, written.as_deref().and_then(bracketed_v6)) {
            (Some(start), Some(_)) => {
                let written = written.unwrap_or_default();
                out.push_str(&before[..start]);
                if brackets {
                    out.push('[');
                }
                out.push_str(&written);
                if brackets {
                    out.push(']');
                }
            }
            _ => {
                out.push_str(before);
                out.push_str(suffix);
            }
        }
        rest = &rest[at + suffix.len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The header section of a framed message with its IPv6 references aliased; the body as is.
fn alias_head(bytes: &[u8]) -> Cow<'_, [u8]> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let Ok(head) = std::str::from_utf8(&bytes[..end]) else {
        return Cow::Borrowed(bytes);
    };
    match alias_v6(head) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(head) => {
            let mut out = head.into_bytes();
            out.extend_from_slice(&bytes[end..]);
            Cow::Owned(out)
        }
    }
}

/// The address a host names when it is an address (IPv4, or IPv6 in its alias form).
pub fn host_ip(host: &rsip::Host) -> Option<IpAddr> {
    match host {
        rsip::Host::IpAddr(ip) => Some(*ip),
        rsip::Host::Domain(d) => text_ip(&d.to_string()),
    }
}

/// An address written plain, bracketed or aliased (Via `received` is seen in all three).
fn text_ip(text: &str) -> Option<IpAddr> {
    if let Some(alias) = text
        .strip_suffix(V6_ALIAS)
        .or_else(|| text.strip_suffix(V6_BARE_ALIAS))
    {
        return alias
            .strip_prefix(V6_ALIAS_START)
            .and_then(|a| bracketed_v6(&a.replace('-', ":")))
            .map(IpAddr::V6);
    }
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) => bracketed_v6(inner).map(IpAddr::V6),
        None => text.parse().ok(),
    }
}

fn check_mandatory(m: &SipMessage) -> Result<(), SipError> {
    let bad = |what: &str| SipError::Parse(format!("missing or malformed {what}"));
    let via = m.via_header().map_err(|_| bad("Via"))?;
    via.typed().map_err(|_| bad("Via"))?;
    m.cseq_header()
        .map_err(|_| bad("CSeq"))?
        .typed()
        .map_err(|_| bad("CSeq"))?;
    m.from_header()
        .map_err(|_| bad("From"))?
        .tag()
        .map_err(|_| bad("From"))?;
    m.to_header()
        .map_err(|_| bad("To"))?
        .tag()
        .map_err(|_| bad("To"))?;
    m.call_id_header().map_err(|_| bad("Call-ID"))?;
    if let SipMessage::Request(r) = m {
        let cseq = r.cseq_header().ok().and_then(|c| c.typed().ok());
        if cseq.is_some_and(|c| c.method != r.method) {
            return Err(bad("CSeq method"));
        }
    }
    Ok(())
}

/// Header look-ups shared by requests and responses. All of them were validated by `parse`,
/// so the fallbacks below only matter for messages we built ourselves.
pub trait MessageExt: HasHeaders + HeadersExt {
    fn call_id(&self) -> &str {
        self.call_id_header().map(|h| h.value()).unwrap_or("")
    }
    fn cseq(&self) -> (u32, Method) {
        self.cseq_header()
            .ok()
            .and_then(|c| c.typed().ok())
            .map(|c| (c.seq, c.method))
            .unwrap_or((0, Method::Options))
    }
    fn sender_tag(&self) -> Option<String> {
        self.from_header()
            .ok()?
            .tag()
            .ok()?
            .map(|t| t.value().to_string())
    }
    fn to_tag(&self) -> Option<String> {
        self.to_header()
            .ok()?
            .tag()
            .ok()?
            .map(|t| t.value().to_string())
    }
    fn sender_user(&self) -> String {
        self.from_header()
            .ok()
            .and_then(|h| h.uri().ok())
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_default()
    }
    /// The To header's text as sent (with its tag, if any).
    fn to_text(&self) -> Option<String> {
        self.to_header().ok().map(|h| h.value().to_string())
    }
    /// The From header's text as sent.
    fn sender_text(&self) -> Option<String> {
        self.from_header().ok().map(|h| h.value().to_string())
    }
    fn top_via(&self) -> Option<rsip::typed::Via> {
        self.via_header().ok()?.typed().ok()
    }
    fn branch(&self) -> Option<String> {
        self.top_via()?.branch().map(|b| b.to_string())
    }
    fn content_type(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().trim().to_ascii_lowercase()),
            _ => None,
        })
    }
    fn contact_uri(&self) -> Option<rsip::Uri> {
        self.contact_header().ok()?.uri().ok()
    }
    fn header_value(&self, name: &str) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::Other(n, v) if n.eq_ignore_ascii_case(name) => Some(v.clone()),
            _ => None,
        })
    }
    /// Every value of a header, by its canonical name (case-insensitive), typed or not.
    fn header_values(&self, name: &str) -> Vec<String> {
        self.headers()
            .iter()
            .filter_map(|h| {
                let text = h.to_string();
                let (n, v) = text.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    }
    /// The user part of the To header's URI (the AOR of a REGISTER).
    fn to_header_uri_user(&self) -> Option<String> {
        self.to_header()
            .ok()?
            .uri()
            .ok()?
            .user()
            .map(str::to_string)
    }
    fn record_routes(&self) -> Vec<String> {
        self.headers()
            .iter()
            .filter_map(|h| match h {
                Header::RecordRoute(r) => Some(r.value().to_string()),
                _ => None,
            })
            .collect()
    }
}

impl MessageExt for Request {}
impl MessageExt for Response {}

/// RFC 3261 §18.2.1 and RFC 3581: note where a request really came from in its top Via, so
/// responses find their way back through NAT.
pub fn stamp_received(req: &mut Request, source: SocketAddr) {
    let Ok(via) = req.via_header_mut() else {
        return;
    };
    let Ok(mut typed) = via.typed() else { return };
    let sent_by_ip = host_ip(&typed.uri.host_with_port.host);
    let mut wants_rport = false;
    typed.params.retain(|p| match p {
        Param::Other(name, None) if name.value().eq_ignore_ascii_case("rport") => {
            wants_rport = true;
            false
        }
        _ => true,
    });
    if sent_by_ip != Some(source.ip()) || wants_rport {
        typed.params.retain(|p| !matches!(p, Param::Received(_)));
        typed
            .params
            .push(Param::Received(rsip::param::Received::new(
                match source.ip() {
                    IpAddr::V6(ip) => v6_bare_alias(&ip.to_string()),
                    v4 => v4.to_string(),
                },
            )));
    }
    if wants_rport {
        typed.params.push(Param::Other(
            OtherParam::new("rport"),
            Some(OtherParamValue::new(source.port().to_string())),
        ));
    }
    *via = typed.into();
}

/// Where responses to this request go (RFC 3261 §18.2.2 for unreliable transports, RFC 3581).
pub fn response_destination(req: &Request, source: SocketAddr) -> SocketAddr {
    let Some(via) = req.top_via() else {
        return source;
    };
    let received = via.params.iter().find_map(|p| match p {
        Param::Received(r) => text_ip(r.value()),
        _ => None,
    });
    let rport = via.params.iter().find_map(|p| match p {
        Param::Other(n, Some(v)) if n.value().eq_ignore_ascii_case("rport") => {
            v.value().parse::<u16>().ok()
        }
        _ => None,
    });
    let sent_by_port = via
        .uri
        .host_with_port
        .port
        .map(|p| *p.value())
        .unwrap_or(5060);
    let ip = received
        .or_else(|| host_ip(&via.uri.host_with_port.host))
        .unwrap_or(source.ip());
    SocketAddr::new(ip, rport.unwrap_or(sent_by_port))
}

/// The parts of a response that vary; everything else is copied from the request.
#[derive(Debug, Default, Clone)]
pub struct ResponseSpec {
    pub code: u16,
    pub to_tag: Option<String>,
    pub contact: Option<String>,
    pub body: Option<(String, Vec<u8>)>,
    pub extra: Vec<(String, String)>,
}

impl ResponseSpec {
    pub fn new(code: u16) -> Self {
        ResponseSpec {
            code,
            ..Default::default()
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.extra.push((name.to_string(), value.into()));
        self
    }
}

pub const USER_AGENT: &str = concat!("hotline/", env!("CARGO_PKG_VERSION"));

/// RFC 3261 §8.2.6: a response copies Via, From, To (adding our tag), Call-ID and CSeq.
pub fn build_response(req: &Request, spec: &ResponseSpec) -> Response {
    let mut headers: Vec<Header> = Vec::with_capacity(10);
    for h in req.headers().iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::RecordRoute(_) if (101..300).contains(&spec.code) => headers.push(h.clone()),
            Header::To(to) => {
                let has_tag = to.tag().ok().flatten().is_some();
                match (&spec.to_tag, has_tag) {
                    (Some(tag), false) if spec.code > 100 => headers.push(Header::To(
                        headers::To::new(format!("{};tag={}", to.value(), tag)),
                    )),
                    _ => headers.push(h.clone()),
                }
            }
            _ => {}
        }
    }
    if let Some(contact) = &spec.contact {
        headers.push(Header::Contact(headers::Contact::new(alias_v6(contact))));
    }
    headers.push(Header::Server(headers::Server::new(USER_AGENT)));
    for (name, value) in &spec.extra {
        headers.push(Header::Other(name.clone(), value.clone()));
    }
    let body = match &spec.body {
        Some((content_type, body)) => {
            headers.push(Header::ContentType(headers::ContentType::new(
                content_type.clone(),
            )));
            body.clone()
        }
        None => Vec::new(),
    };
    headers.push(Header::ContentLength(headers::ContentLength::new(
        body.len().to_string(),
    )));
    // rsip prints the codes it knows by their variant names ("MethodNotAllowed"); the status
    // line carries RFC 3261's reason phrase instead.
    let status_code = rsip::StatusCode::Other(spec.code, reason_phrase(spec.code).to_string());
    Response {
        status_code,
        version: rsip::Version::V2,
        headers: headers.into(),
        body,
    }
}

/// Reason phrases for every status line we send and for sipfrag: RFC 3261 §21, and the codes
/// later RFCs added (3265 489, 3515 202, 4028 422, 3329 494, 3261's 493, 5079 417, 4412 417,
/// 5393 470, 6665 204).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        c if c < 200 => "Progress",
        c if c < 300 => "Success",
        c if c < 400 => "Redirection",
        c if c < 500 => "Client Error",
        c if c < 600 => "Server Error",
        _ => "Failure",
    }
}

/// A request we originate, fully described; `build_request` turns it into rsip form.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub uri: String,
    pub via_host: String,
    pub transport: &'static str,
    pub branch: String,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub routes: Vec<String>,
    pub contact: Option<String>,
    pub body: Option<(String, Vec<u8>)>,
    pub extra: Vec<(String, String)>,
}

pub fn build_request(spec: &RequestSpec) -> Result<Request, SipError> {
    let uri = rsip::Uri::try_from(alias_v6(&spec.uri).as_ref())
        .map_err(|e| SipError::Parse(format!("bad request URI {:?}: {e}", spec.uri)))?;
    let mut headers: Vec<Header> = vec![
        Header::Via(headers::Via::new(format!(
            "SIP/2.0/{} {};branch={};rport",
            spec.transport,
            alias_v6(&spec.via_host),
            spec.branch
        ))),
        Header::MaxForwards(headers::MaxForwards::new("70")),
        Header::From(headers::From::new(alias_v6(&spec.from))),
        Header::To(headers::To::new(alias_v6(&spec.to))),
        Header::CallId(headers::CallId::new(spec.call_id.clone())),
        Header::CSeq(headers::CSeq::new(format!("{} {}", spec.cseq, spec.method))),
    ];
    for route in &spec.routes {
        headers.push(Header::Route(headers::Route::new(alias_v6(route))));
    }
    if let Some(contact) = &spec.contact {
        headers.push(Header::Contact(headers::Contact::new(alias_v6(contact))));
    }
    headers.push(Header::UserAgent(headers::UserAgent::new(USER_AGENT)));
    for (name, value) in &spec.extra {
        headers.push(Header::Other(name.clone(), value.clone()));
    }
    let body = match &spec.body {
        Some((content_type, body)) => {
            headers.push(Header::ContentType(headers::ContentType::new(
                content_type.clone(),
            )));
            body.clone()
        }
        None => Vec::new(),
    };
    headers.push(Header::ContentLength(headers::ContentLength::new(
        body.len().to_string(),
    )));
    Ok(Request {
        method: spec.method,
        uri,
        version: rsip::Version::V2,
        headers: headers.into(),
        body,
    })
}

/// RFC 3261 §9.1: a CANCEL copies the INVITE's Request-URI, top Via, From, To, Call-ID and
/// CSeq number.
pub fn build_cancel(invite: &Request) -> Request {
    let mut headers: Vec<Header> = Vec::new();
    for h in invite.headers().iter() {
        match h {
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => {
                headers.push(h.clone())
            }
            Header::Via(_) if !headers.iter().any(|x| matches!(x, Header::Via(_))) => {
                headers.push(h.clone())
            }
            _ => {}
        }
    }
    let seq = invite.cseq().0;
    headers.push(Header::CSeq(headers::CSeq::new(format!("{seq} CANCEL"))));
    headers.push(Header::MaxForwards(headers::MaxForwards::new("70")));
    headers.push(Header::ContentLength(headers::ContentLength::new("0")));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// RFC 3261 §17.1.1.3: the ACK for a non-2xx final response belongs to the INVITE transaction
/// and copies its top Via; To comes from the response (it carries the tag).
pub fn build_ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut req = build_cancel(invite);
    req.method = Method::Ack;
    for h in req.headers.iter_mut() {
        match h {
            Header::CSeq(c) => *c = headers::CSeq::new(format!("{} ACK", invite.cseq().0)),
            Header::To(to) => {
                if let Ok(resp_to) = response.to_header() {
                    *to = resp_to.clone();
                }
            }
            _ => {}
        }
    }
    req
}

/// A Via branch (RFC 3261 §8.1.1.7). Tokens come from the caller's generator, never the
/// global one, so a UA seeded alike replays the same bytes.
pub fn new_branch(rng: &mut fastrand::Rng) -> String {
    format!("{BRANCH_COOKIE}{}", random_token(rng, 16))
}

/// Tags, Call-IDs and branches: unique, not secret (they are on the wire).
pub fn random_token(rng: &mut fastrand::Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect()
}

pub fn to_bytes(msg: impl Into<SipMessage>) -> Vec<u8> {
    let text = msg.into().to_string();
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    match unalias_v6(&text[..end]) {
        Cow::Borrowed(_) => text.into_bytes(),
        Cow::Owned(mut head) => {
            head.push_str(&text[end..]);
            head.into_bytes()
        }
    }
}

/// A minimal response for requests rsip could not parse, built from whatever headers we can
/// find, so that a sender with a broken stack still learns what happened. Nothing for
/// responses and ACKs (never answered) or without a Via (nowhere to send it).
/// Whether a To or From header line carries a tag parameter (after the URI's `>`, when the
/// URI is bracketed, since a URI may carry parameters of its own).
fn has_tag(line: &str) -> bool {
    let value = line.split_once(':').map_or("", |(_, v)| v);
    let params = value.rsplit_once('>').map_or(value, |(_, p)| p);
    let compact: String = params
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    compact.contains(";tag=")
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn bare_response(
    data: &[u8],
    code: u16,
    warning: &str,
    extra: &[(&str, &str)],
) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.trim_start_matches(['\r', '\n']).lines();
    let first = lines.next()?;
    if first.starts_with("SIP/") || first.starts_with("ACK ") {
        return None;
    }
    let mut out = format!("SIP/2.0 {code} {}\r\n", reason_phrase(code));
    let mut have = (false, false, false, false, false);
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let slot = match name.as_str() {
            "via" | "v" => &mut have.0,
            "from" | "f" => &mut have.1,
            "to" | "t" => &mut have.2,
            "call-id" | "i" => &mut have.3,
            "cseq" => &mut have.4,
            _ => continue,
        };
        if !*slot || name == "via" || name == "v" {
            *slot = true;
            out.push_str(line.trim_end());
            // RFC 3261 §8.2.6.2: a UAS's final response tags the To. The same request gets
            // the same tag, so a retransmission's answer matches the first.
            if matches!(name.as_str(), "to" | "t") && !has_tag(line) {
                out.push_str(&format!(";tag={:016x}", fnv1a(data)));
            }
            out.push_str("\r\n");
        }
    }
    if !have.0 {
        return None;
    }
    let warning: String = warning
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    out.push_str(&format!(
        "Warning: 399 hotline \"{}\"\r\n",
        warning.replace('"', "'")
    ));
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

pub fn is_framing_error(e: &SipError) -> Option<&FramingError> {
    match e {
        SipError::Framing(f) => Some(f),
        _ => None,
    }
}
