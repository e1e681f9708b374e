//! The client half of HTTP digest authentication as SIP uses it (RFC 7616, RFC 2617, RFC 3261
//! §22): reading `WWW-Authenticate` / `Proxy-Authenticate` challenges, choosing one, and
//! computing the `Authorization` header. Pure: no sockets, no clock (the cnonce is passed in).

use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Algorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    /// The token in `algorithm=`; a missing parameter means MD5 (RFC 7616 §3.3).
    pub fn from_token(token: Option<&str>) -> Option<Algorithm> {
        match token {
            None => Some(Algorithm::Md5),
            Some(t) if t.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(t) if t.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            // -sess variants, SHA-512-256 and anything else: not offered by hotline.
            Some(_) => None,
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of the hash of `parts` joined by ':'.
    pub fn hex(self, parts: &[&str]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            let mut s = String::with_capacity(64);
            for b in d.finalize() {
                let _ = write!(s, "{b:02x}");
            }
            s
        }
        match self {
            Algorithm::Md5 => run(Md5::new(), parts),
            Algorithm::Sha256 => run(Sha256::new(), parts),
        }
    }
}

/// Which algorithm the agents answer with when a server offers several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestPreference {
    /// SHA-256 when offered, else MD5 (RFC 7616 §3.7: the strongest the client supports).
    Auto,
    Sha256,
    Md5,
}

impl std::str::FromStr for DigestPreference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DigestPreference::Auto),
            "sha256" | "sha-256" => Ok(DigestPreference::Sha256),
            "md5" => Ok(DigestPreference::Md5),
            _ => Err(format!("{s:?}: expected auto, sha256 or md5")),
        }
    }
}

/// One `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop="auth"` (alone or in a list) was offered; false means RFC 2069 compatibility.
    pub qop_auth: bool,
    pub stale: bool,
}

/// Every `Digest` challenge in the values of the challenge headers (one header may carry
/// several challenges, several headers one each), in order. Challenges with an unknown
/// algorithm, another scheme, or no nonce are left out.
pub fn parse_challenges<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in header_values {
        for (scheme, params) in split_challenges(value) {
            if !scheme.eq_ignore_ascii_case("Digest") {
                continue;
            }
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.as_str())
            };
            let Some(algorithm) = Algorithm::from_token(get("algorithm")) else {
                continue;
            };
            let Some(nonce) = get("nonce") else { continue };
            out.push(Challenge {
                realm: get("realm").unwrap_or_default().to_string(),
                nonce: nonce.to_string(),
                opaque: get("opaque").map(str::to_string),
                algorithm,
                qop_auth: get("qop")
                    .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth"))),
                stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            });
        }
    }
    out
}

/// The challenge to answer: per the preference, else the first one we can compute.
pub fn choose(challenges: &[Challenge], pref: DigestPreference) -> Option<&Challenge> {
    let want = match pref {
        DigestPreference::Auto | DigestPreference::Sha256 => Algorithm::Sha256,
        DigestPreference::Md5 => Algorithm::Md5,
    };
    challenges
        .iter()
        .find(|c| c.algorithm == want)
        .or_else(|| challenges.first())
}

/// (scheme, [(name, value)]) for each challenge in one header value. Quoted strings may
/// hold commas and escaped quotes.
fn split_challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = value.as_bytes();
    let mut i = 0;
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let token_end = |mut j: usize| {
        while j < b.len() && !matches!(b[j], b' ' | b'\t' | b',' | b'=' | b'"') {
            j += 1;
        }
        j
    };
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',' | b'\r' | b'\n') {
            i += 1;
        }
        if i >= b.len() {
            return out;
        }
        let start = i;
        i = token_end(i);
        let name = &value[start..i];
        let mut j = i;
        while j < b.len() && matches!(b[j], b' ' | b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            // A parameter of the current challenge.
            j += 1;
            while j < b.len() && matches!(b[j], b' ' | b'\t') {
                j += 1;
            }
            let mut v = String::new();
            if j < b.len() && b[j] == b'"' {
                j += 1;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' && j + 1 < b.len() {
                        j += 1;
                    }
                    // Copy whole UTF-8 characters.
                    let ch = value[j..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    j += ch.len_utf8();
                }
                j += 1;
            } else {
                let e = token_end(j);
                v.push_str(&value[j..e]);
                j = e;
            }
            if let Some(last) = out.last_mut() {
                last.1.push((name.to_string(), v));
            }
            i = j;
        } else if !name.is_empty() {
            out.push((name.to_string(), Vec::new()));
            i = j;
        } else {
            // A stray quote or '=': skip it.
            i += 1;
        }
    }
}

/// The request-digest and the whole `Authorization` value for one request.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
}

/// `H(username:realm:password)`, what a server may store instead of the password.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hex(&[username, realm, password])
}

/// The `response=` value (RFC 7616 §3.4.1, qop=auth; RFC 2069 form when qop is absent).
pub fn response(c: &Challenge, cr: &Credentials<'_>, nc: u32, cnonce: &str) -> String {
    let alg = c.algorithm;
    let ha1 = ha1(alg, cr.username, &c.realm, cr.password);
    let ha2 = alg.hex(&[cr.method, cr.uri]);
    if c.qop_auth {
        alg.hex(&[&ha1, &c.nonce, &format!("{nc:08x}"), cnonce, "auth", &ha2])
    } else {
        alg.hex(&[&ha1, &c.nonce, &ha2])
    }
}

/// The `Authorization` (or `Proxy-Authorization`) header value.
pub fn authorization(c: &Challenge, cr: &Credentials<'_>, nc: u32, cnonce: &str) -> String {
    let resp = response(c, cr, nc, cnonce);
    let mut s = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{resp}\", algorithm={}",
        quote(cr.username),
        quote(&c.realm),
        quote(&c.nonce),
        quote(cr.uri),
        c.algorithm.token()
    );
    if let Some(o) = &c.opaque {
        let _ = write!(s, ", opaque=\"{}\"", quote(o));
    }
    if c.qop_auth {
        let _ = write!(s, ", qop=auth, nc={nc:08x}, cnonce=\"{}\"", quote(cnonce));
    }
    s
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(alg: Algorithm, realm: &str, nonce: &str, qop: bool) -> Challenge {
        Challenge {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm: alg,
            qop_auth: qop,
            stale: false,
        }
    }

    /// RFC 7616 §3.9.1, both algorithms.
    #[test]
    fn rfc7616_example() {
        let cr = Credentials {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
        };
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let md5 = ch(Algorithm::Md5, "http-auth@example.org", nonce, true);
        assert_eq!(
            response(&md5, &cr, 1, cnonce),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = ch(Algorithm::Sha256, "http-auth@example.org", nonce, true);
        assert_eq!(
            response(&sha, &cr, 1, cnonce),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// Vectors from the shell: `printf '2000:hotline:secret' | md5sum` etc., and python's
    /// hashlib for the REGISTER responses.
    #[test]
    fn agent_vectors() {
        assert_eq!(
            ha1(Algorithm::Md5, "2000", "hotline", "secret"),
            "f3f65ccb6461e230f422edf4beacb70e"
        );
        assert_eq!(
            ha1(Algorithm::Sha256, "2000", "hotline", "secret"),
            "fe16918522d0e3c0957e96132c204b0d18093d2119565e83fc043ff581616128"
        );
        let cr = Credentials {
            username: "2000",
            password: "secret",
            method: "REGISTER",
            uri: "sip:127.0.0.1:5060",
        };
        let cases = [
            (Algorithm::Md5, true, "862f4e85b40ad376952b04374a517af1"),
            (Algorithm::Md5, false, "496b9e895ed1fb7846c9eef0cbdd4fad"),
            (
                Algorithm::Sha256,
                true,
                "a50ea490412f5501fb0a8b2a556c60ce3bfab73402359dd9b9e76997164f609c",
            ),
            (
                Algorithm::Sha256,
                false,
                "c819bd0157fdd425b544450e33cceaf4ebc157ff5437f8bc55f8bab287483660",
            ),
        ];
        for (alg, qop, want) in cases {
            let c = ch(alg, "hotline", "abc,def", qop);
            assert_eq!(response(&c, &cr, 1, "0a4f113b"), want, "{alg:?} qop={qop}");
        }
    }

    #[test]
    fn authorization_header_fields() {
        let mut c = ch(Algorithm::Sha256, "hotline", "n\"1", true);
        c.opaque = Some("op".into());
        let cr = Credentials {
            username: "2000",
            password: "secret",
            method: "REGISTER",
            uri: "sip:127.0.0.1:5060",
        };
        let h = authorization(&c, &cr, 2, "cn");
        assert!(h.starts_with("Digest username=\"2000\", realm=\"hotline\", nonce=\"n\\\"1\", uri=\"sip:127.0.0.1:5060\", response=\""), "{h}");
        assert!(
            h.ends_with("algorithm=SHA-256, opaque=\"op\", qop=auth, nc=00000002, cnonce=\"cn\""),
            "{h}"
        );
        let legacy = authorization(&ch(Algorithm::Md5, "r", "n", false), &cr, 1, "cn");
        assert!(
            !legacy.contains("qop")
                && !legacy.contains("cnonce")
                && legacy.contains("algorithm=MD5")
        );
        // The header round-trips through the challenge parser's tokenizer.
        let parsed = split_challenges(&h);
        assert_eq!(parsed[0].0, "Digest");
        assert!(parsed[0].1.contains(&("nonce".into(), "n\"1".into())));
        assert!(parsed[0].1.contains(&("nc".into(), "00000002".into())));
    }

    #[test]
    fn two_headers_quoted_commas_and_preference() {
        let sha = r#"Digest realm="hotline", nonce="a,b=c", qop="auth", algorithm=SHA-256"#;
        let md5 = r#"Digest realm="hotline",nonce="x\"y",opaque="o, p",qop="auth,auth-int",algorithm=MD5,stale=TRUE"#;
        let cs = parse_challenges([sha, md5]);
        assert_eq!(cs.len(), 2);
        assert_eq!(
            cs[0],
            Challenge {
                realm: "hotline".into(),
                nonce: "a,b=c".into(),
                opaque: None,
                algorithm: Algorithm::Sha256,
                qop_auth: true,
                stale: false,
            }
        );
        assert_eq!(
            cs[1],
            Challenge {
                realm: "hotline".into(),
                nonce: "x\"y".into(),
                opaque: Some("o, p".into()),
                algorithm: Algorithm::Md5,
                qop_auth: true,
                stale: true,
            }
        );
        assert_eq!(
            choose(&cs, DigestPreference::Auto).unwrap().algorithm,
            Algorithm::Sha256
        );
        assert_eq!(
            choose(&cs, DigestPreference::Md5).unwrap().algorithm,
            Algorithm::Md5
        );
        // MD5 listed first: auto still prefers SHA-256.
        let cs = parse_challenges([md5, sha]);
        assert_eq!(
            choose(&cs, DigestPreference::Auto).unwrap().algorithm,
            Algorithm::Sha256
        );
        // Only MD5 offered: a SHA-256 preference falls back to it.
        let cs = parse_challenges([md5]);
        assert_eq!(
            choose(&cs, DigestPreference::Sha256).unwrap().algorithm,
            Algorithm::Md5
        );
        assert!(choose(&[], DigestPreference::Auto).is_none());
    }

    #[test]
    fn one_header_several_challenges_and_odd_ones() {
        let v = r#"Basic realm="x", Digest realm="hotline", nonce="1", algorithm=SHA-256, qop="auth", Digest realm="hotline", nonce="2""#;
        let cs = parse_challenges([v]);
        assert_eq!(cs.len(), 2, "{cs:?}");
        assert_eq!(
            (cs[0].nonce.as_str(), cs[0].algorithm),
            ("1", Algorithm::Sha256)
        );
        assert_eq!(
            (cs[1].nonce.as_str(), cs[1].algorithm, cs[1].qop_auth),
            ("2", Algorithm::Md5, false),
            "no algorithm means MD5; no qop means RFC 2069"
        );
        // Unsupported algorithms, missing nonces and garbage are skipped.
        let cs = parse_challenges([
            r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#,
            r#"Digest realm="r""#,
            "",
            r#"=",,"#,
            r#"digest REALM="R", NONCE=n, QOP=auth"#,
        ]);
        assert_eq!(cs.len(), 1);
        assert_eq!(
            (cs[0].realm.as_str(), cs[0].nonce.as_str(), cs[0].qop_auth),
            ("R", "n", true)
        );
    }
}
