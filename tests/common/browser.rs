//! A real headless Chromium driven over the DevTools protocol (a WebSocket on loopback):
//! open a page, run JavaScript in it, wait until the page shows something. Chromium must be
//! installed (`chromium` on Debian); the tests that use it are in the interop suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

pub struct Browser {
    child: Child,
    page: WebSocket<TcpStream>,
    next_id: u64,
    /// Script exceptions and console errors (a blocked request, a CSP refusal) seen so far.
    pub errors: Vec<String>,
    _profile: super::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let profile = super::TempDir::new("chromium");
        let binary = ["chromium", "chromium-browser"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())
            .expect("chromium is not installed (apt-get install chromium)");
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ws://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium did not open its DevTools port");
        trace(&format!("devtools at {addr}"));
        // The page target the browser opened.
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = loop {
            let list = http_get(&addr, "/json/list");
            let page = serde_json::from_str::<Value>(&list).ok().and_then(|v| {
                v.as_array()?
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            });
            if let Some(url) = page {
                break url;
            }
            assert!(Instant::now() < deadline, "no page target: {list}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        trace(&format!("page {url}"));
        let (page, _) = tungstenite::client::client(url.into_client_request().unwrap(), stream)
            .expect("DevTools WebSocket");
        trace("connected");
        let mut browser = Browser {
            child,
            page,
            next_id: 1,
            errors: Vec::new(),
            _profile: profile,
        };
        browser.call("Runtime.enable", json!({}));
        browser.call("Log.enable", json!({}));
        browser
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A DevTools command's result, or its error (a page navigating away, say).
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({ "id": id, "method": method, "params": params }).to_string();
        trace(&format!("cdp> {text}"));
        self.page.send(Message::text(text)).unwrap();
        loop {
            if let Message::Text(t) = self.page.read().expect("DevTools message") {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    return match v.get("error") {
                        Some(e) => Err(e.clone()),
                        None => Ok(v["result"].clone()),
                    };
                }
                match v["method"].as_str() {
                    Some("Runtime.exceptionThrown") => self
                        .errors
                        .push(v["params"]["exceptionDetails"].to_string()),
                    Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                        let entry = &v["params"]["entry"];
                        // A request the page expects to fail (401 before login) is not an
                        // error of the page.
                        if entry["source"] != "network" {
                            self.errors.push(entry.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn open(&mut self, url: &str) {
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(
            &format!("location.href.startsWith({url:?}) && document.readyState === 'complete'"),
            Duration::from_secs(10),
        );
    }

    /// Runs `js` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `js` is true in the page; on time out, fails with what the page shows.
    /// (An exception, or a page reloading, counts as not yet.)
    pub fn wait_for(&mut self, js: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let probe = format!(
            "(() => {{ try {{ return Boolean({js}); }} catch (e) {{ return false; }} }})()"
        );
        loop {
            let r = self.try_call(
                "Runtime.evaluate",
                json!({ "expression": probe, "returnByValue": true }),
            );
            if r.is_ok_and(|r| r["result"]["value"] == Value::Bool(true)) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("not true within {within:?}: {js}\npage:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves what the page shows as a PNG, `width` pixels wide.
    pub fn screenshot(&mut self, path: &std::path::Path, width: u32, height: u32) {
        use base64::Engine;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("a PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }

    pub fn text(&mut self, id: &str) -> String {
        self.eval(&format!("document.getElementById({id:?}).textContent"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&mut self, id: &str) {
        self.eval(&format!("document.getElementById({id:?}).click()"));
    }

    pub fn fill(&mut self, id: &str, value: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.getElementById({id:?}); e.value = {value:?}; \
             e.dispatchEvent(new Event('input')); }})()"
        ));
    }

    /// Fills the login form and waits for the page behind it.
    pub fn log_in(&mut self, user: &str, password: &str) {
        self.wait_for(
            "!document.getElementById('login').classList.contains('hidden')",
            Duration::from_secs(5),
        );
        self.fill("user", user);
        self.fill("password", password);
        self.click("login-button");
        self.wait_for(
            "!document.getElementById('app').classList.contains('hidden')",
            Duration::from_secs(10),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    // The DevTools server keeps the connection open: read what Content-Length says.
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(usize::MAX);
            if body.len() >= length {
                return body.to_string();
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                return text
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_string())
                    .unwrap_or_default();
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// With HOTLINE_TEST_CDP_TRACE set, what the test does with the browser goes to stderr.
fn trace(what: &str) {
    if std::env::var_os("HOTLINE_TEST_CDP_TRACE").is_some() {
        eprintln!("browser: {what}");
    }
}
