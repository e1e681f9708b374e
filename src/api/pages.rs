//! The browser pages: the agent desktop, the wallboard and the reports. Static files built
//! into the binary (no build step, nothing fetched from elsewhere at run time); everything
//! they show comes from the API and its event stream, with the session cookie.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::Reply;

const SHELL: &str = include_str!("web/shell.html");
const DESK: &str = include_str!("web/desk.html");
const WALLBOARD: &str = include_str!("web/wallboard.html");
const REPORTS: &str = include_str!("web/reports.html");
const QA: &str = include_str!("web/qa.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// Scripts and styles from this server only, no inline code, never in a frame.
const POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self'; \
                      frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const PATHS: &[&str] = &[
    "/",
    "/desk",
    "/wallboard",
    "/reports",
    "/qa",
    "/static/app.js",
    "/static/style.css",
];

pub fn is_page(path: &str) -> bool {
    PATHS.contains(&path)
}

/// The page or file at `path`, if it is one.
pub fn serve(path: &str) -> Option<Reply> {
    let (body, kind): (String, &str) = match path {
        "/" => return Some(redirect("/desk")),
        "/desk" => (
            page("desk", "agent desktop", DESK),
            "text/html; charset=utf-8",
        ),
        "/wallboard" => (
            page("wallboard", "wallboard", WALLBOARD),
            "text/html; charset=utf-8",
        ),
        "/reports" => (
            page("reports", "reports", REPORTS),
            "text/html; charset=utf-8",
        ),
        "/qa" => (
            page("qa", "quality monitoring", QA),
            "text/html; charset=utf-8",
        ),
        "/static/app.js" => (SCRIPT.to_owned(), "text/javascript; charset=utf-8"),
        "/static/style.css" => (STYLE.to_owned(), "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(r)
}

fn page(name: &str, title: &str, body: &str) -> String {
    SHELL
        .replace("{{title}}", title)
        .replace("{{page}}", name)
        .replace("{{body}}", body)
}

fn redirect(to: &'static str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_whole_and_their_ids_exist_for_the_script() {
        for path in ["/desk", "/wallboard", "/reports", "/qa"] {
            assert!(is_page(path), "{path} is served but not routed");
            let r = serve(path).unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert!(
                r.headers()[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("default-src 'self'")
            );
        }
        assert_eq!(serve("/").unwrap().status(), StatusCode::FOUND);
        assert!(serve("/etc/passwd").is_none());
        for path in PATHS {
            assert!(serve(path).is_some(), "{path} is listed but not served");
        }
        // No inline script or style: the policy would block it.
        for html in [SHELL, DESK, WALLBOARD, REPORTS, QA] {
            assert!(!html.contains("style=\""), "inline style");
            assert!(!html.contains("<script>"), "inline script");
        }
        // Every element the script looks up by id is on its page (or the shell).
        let ids = |html: &str| -> Vec<String> {
            html.split("id=\"")
                .skip(1)
                .filter_map(|s| s.split('"').next().map(str::to_owned))
                .collect()
        };
        let known: Vec<String> = [SHELL, DESK, WALLBOARD, REPORTS, QA]
            .iter()
            .flat_map(|h| ids(h))
            .collect();
        for wanted in SCRIPT.split("$(\"").skip(1) {
            let id = wanted.split('"').next().unwrap();
            assert!(known.iter().any(|k| k == id), "app.js wants #{id}");
        }
    }
}
