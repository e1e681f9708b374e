//! The pages in a real headless Chromium (interop: needs `chromium`): an agent logs in on
//! the desktop and goes ready, a caller is queued and rings the agent's phone, the screen pop
//! shows the caller's IVR data, the agent wraps up with a disposition from the desktop, and
//! the supervisor's wallboard counts the call; the reports page draws its charts.

mod common;

use std::time::Duration;

use common::agent_phone::*;
use common::browser::Browser;
use common::*;
use hotline::api::auth::hash_password;
use hotline::config::ApiSettings;

const PASSWORD: &str = "correct horse";
const CALLER: &str = "13800000077";

#[test]
#[ignore = "interop: needs chromium"]
fn an_agent_takes_a_call_on_the_desktop_and_the_wallboard_counts_it() {
    let mut site = agent_site_with(
        FLOW,
        "[queues.help]\nstrategy = \"longest-idle\"\nskills = { help = 1 }\nring_timeout = \"20s\"\nwrap_up = \"2m\"\nrecord = true\n",
    );
    // Not logged in by the phone: the desktop does it.
    write_agents(
        &site,
        &AGENTS.replace("auto_login = true", "auto_login = false").replace(
            "[agents.1002]",
            "[dispositions]\nresolved = \"Resolved\"\ncomplaint = \"Complaint\"\n\n[reasons]\n2 = \"Lunch\"\n\n[agents.1002]",
        ),
    );
    let hash = hash_password(PASSWORD).unwrap();
    let users = site.dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"li\"\nrole = \"agent\"\nagent = \"1001\"\npassword = \"{hash}\"\n\
             [[user]]\nname = \"wang\"\nrole = \"supervisor\"\nteams = [\"support\"]\npassword = \"{hash}\"\n"
        ),
    )
    .unwrap();
    site.config.api = Some(ApiSettings {
        bind: "127.0.0.1:0".parse().unwrap(),
        users,
        tls: None,
        session_idle: Duration::from_secs(600),
        session_max: Duration::from_secs(3600),
        max_connections: 64,
        max_connections_per_address: 32,
        request_timeout: Duration::from_secs(15),
    });
    let mut server = start(site.config.clone());
    let api = server.server.as_ref().unwrap().api_addr.unwrap();
    let sip = server.sip;
    let phone_thread = std::thread::spawn(move || run_agent(sip, Behaviour::Answer, S(20_000)));

    let mut wallboard = Browser::start();
    wallboard.open(&format!("http://{api}/wallboard"));
    wallboard.log_in("wang", PASSWORD);
    wallboard.wait_for(
        "document.querySelector('[data-state=\"logged_out\"]') && \
         document.querySelector('[data-state=\"logged_out\"]').textContent === '2'",
        Duration::from_secs(10),
    );

    let mut desk = Browser::start();
    desk.open(&format!("http://{api}/desk"));
    desk.log_in("li", PASSWORD);
    // Log in to the queues and go ready; the phone registered meanwhile.
    desk.wait_for(
        "document.getElementById('state').textContent.startsWith('logged out')",
        Duration::from_secs(10),
    );
    desk.click("log-in");
    desk.wait_for(
        "!document.getElementById('state').textContent.startsWith('logged out')",
        Duration::from_secs(10),
    );
    desk.click("ready");
    desk.wait_for(
        "document.getElementById('state').textContent === 'available'",
        Duration::from_secs(10),
    );
    wallboard.wait_for(
        "document.querySelector('[data-state=\"available\"]').textContent === '1'",
        Duration::from_secs(10),
    );

    // A caller is queued and the agent's phone rings and answers: the pop shows who it is
    // and what they did in the IVR.
    let mut caller = Phone::calling_from(sip, CALLER);
    caller.call("400");
    desk.wait_for(
        &format!("document.getElementById('pop').textContent.includes('{CALLER}')"),
        Duration::from_secs(10),
    );
    let pop = desk.text("pop");
    assert!(pop.contains("help"), "{pop}");
    assert!(pop.contains("agent"), "the IVR path: {pop}");
    desk.wait_for(
        "document.getElementById('state').textContent === 'on call'",
        Duration::from_secs(10),
    );
    caller.talk(S(500));
    // Hold and back from the desk, then hang up there: the caller goes on in the flow.
    desk.click("hold");
    desk.wait_for(
        "document.getElementById('state').textContent === 'on hold'",
        Duration::from_secs(10),
    );
    caller.talk(S(500));
    desk.click("hold");
    desk.wait_for(
        "document.getElementById('state').textContent === 'on call'",
        Duration::from_secs(10),
    );
    desk.click("hang-up");
    caller.pump(S(3000));

    // Wrap-up with a disposition, from the desktop.
    desk.wait_for(
        "!document.getElementById('wrap').classList.contains('hidden')",
        Duration::from_secs(10),
    );
    desk.eval("document.getElementById('disposition').value = 'resolved'");
    desk.fill("notes", "asked about the outage");
    desk.eval("document.getElementById('resolved').value = 'yes'");
    desk.click("wrap-done");
    desk.wait_for(
        "document.getElementById('state').textContent === 'available'",
        Duration::from_secs(10),
    );

    // The wallboard counts the answered call.
    wallboard.wait_for(
        "document.getElementById('answered').textContent === '1'",
        Duration::from_secs(30),
    );
    let sl = wallboard.text("sl");
    assert!(sl.ends_with('%'), "service level shown: {sl}");
    // `HOTLINE_SCREENSHOTS=docs cargo test --test browser -- --ignored` refreshes the
    // README's pictures.
    let shots = std::env::var_os("HOTLINE_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(dir) = &shots {
        wallboard.screenshot(&dir.join("wallboard.png"), 1100, 520);
    }

    // The record has the wrap-up.
    let records = read_cdrs(&site.config.database);
    let record = records
        .iter()
        .find(|r| r.caller == CALLER)
        .expect("the call's CDR");
    assert_eq!(record.wrap_disposition.as_deref(), Some("resolved"));
    assert_eq!(record.resolved, Some(true));
    assert!(
        record.hold_ms.unwrap_or(0) > 0,
        "the hold is in the CDR: {record:?}"
    );

    // The reports page draws the day's calls.
    let mut reports = Browser::start();
    reports.open(&format!("http://{api}/reports"));
    reports.log_in("wang", PASSWORD);
    reports.eval("document.getElementById('interval').value = 'hour'");
    reports.click("run-report");
    reports.wait_for(
        "document.querySelectorAll('#report-body tr').length > 0 && \
         document.querySelector('#calls-chart polyline[data-series=\"answered\"]')",
        Duration::from_secs(10),
    );
    let levels = reports.eval(
        "[...document.querySelectorAll('#report-body td[data-indicator=\"service_level_pct\"]')]\
         .map((td) => td.textContent).filter((t) => t !== '-')",
    );
    assert_eq!(
        levels,
        serde_json::json!(["100.0"]),
        "the service level of the one call"
    );
    if let Some(dir) = &shots {
        reports.screenshot(&dir.join("report.png"), 1100, 900);
    }

    // The supervisor listens to the recorded call on the QA page and scores it.
    let mut qa = Browser::start();
    qa.open(&format!("http://{api}/qa"));
    qa.log_in("wang", PASSWORD);
    qa.wait_for(
        &format!(
            "document.querySelector('button[data-call=\"{}\"]')",
            record.id
        ),
        Duration::from_secs(10),
    );
    qa.eval(&format!(
        "document.querySelector('button[data-call=\"{}\"]').click()",
        record.id
    ));
    qa.wait_for(
        "document.getElementById('qa-audio').readyState >= 1 && \
         document.getElementById('qa-audio').duration > 1",
        Duration::from_secs(10),
    );
    qa.fill("qa-score", "85");
    qa.click("qa-save");
    qa.wait_for(
        "document.getElementById('qa-saved').textContent === 'saved'",
        Duration::from_secs(10),
    );
    let scores = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = hotline::cdr::CdrStore::connect(&site.config.database)
            .await
            .unwrap();
        store
            .aggregate("SELECT CAST(score AS BIGINT) FROM qa_scores", &[], 0)
            .await
            .unwrap()
    });
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].1, vec![85]);

    for (page, errors) in [
        ("desk", &desk.errors),
        ("wallboard", &wallboard.errors),
        ("reports", &reports.errors),
        ("qa", &qa.errors),
    ] {
        assert!(errors.is_empty(), "{page}: {errors:#?}");
    }
    drop(desk);
    drop(wallboard);
    drop(reports);
    drop(qa);
    let _ = phone_thread.join();
    server.stop();
}
