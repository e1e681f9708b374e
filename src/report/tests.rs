use super::*;

fn tz(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).unwrap()
}

fn settings(zone: &str, shifts: Vec<Shift>) -> ReportSettings {
    ReportSettings {
        time_zone: tz(zone),
        shifts,
        ..Default::default()
    }
}

fn shift(agents: &[&str], days: &str, hours: &str) -> Shift {
    Shift {
        agents: agents.iter().map(|a| a.to_string()).collect(),
        team: None,
        days: crate::flow::schedule::parse_days(days).unwrap(),
        hours: crate::flow::schedule::parse_span(hours).unwrap().unwrap(),
    }
}

fn at(zone: &str, text: &str) -> i64 {
    intervals::parse_local(text, &tz(zone)).unwrap()
}

#[test]
fn a_night_shift_runs_into_the_next_day_and_is_clipped_to_the_range() {
    let s = settings("Asia/Shanghai", vec![shift(&["a1"], "mon", "22:00-06:00")]);
    // 2026-12-07 is a Monday.
    let from = at("Asia/Shanghai", "2026-12-07");
    let to = at("Asia/Shanghai", "2026-12-09");
    let plan = schedule(&s, &Directory::default(), from, to);
    assert_eq!(
        plan["a1"],
        vec![(
            at("Asia/Shanghai", "2026-12-07 22:00"),
            at("Asia/Shanghai", "2026-12-08 06:00")
        )]
    );
    // A range starting Tuesday still sees the shift that began on Monday night.
    let from = at("Asia/Shanghai", "2026-12-08 02:00");
    let plan = schedule(&s, &Directory::default(), from, to);
    assert_eq!(
        plan["a1"],
        vec![(from, at("Asia/Shanghai", "2026-12-08 06:00"))]
    );
}

#[test]
fn a_shift_on_a_day_the_clocks_change_is_as_long_as_the_day() {
    let s = settings(
        "Europe/Berlin",
        vec![shift(&["a1"], "daily", "00:00-24:00")],
    );
    let from = at("Europe/Berlin", "2026-03-29");
    let to = at("Europe/Berlin", "2026-03-30");
    let plan = schedule(&s, &Directory::default(), from, to);
    let total: i64 = plan["a1"].iter().map(|(s, e)| e - s).sum();
    assert_eq!(total, 23 * 3_600_000);
}

#[test]
fn team_shifts_take_the_teams_agents_and_overlaps_count_once() {
    let mut team = shift(&[], "daily", "09:00-17:00");
    team.team = Some("red".into());
    let s = settings("UTC", vec![team, shift(&["a1"], "daily", "16:00-18:00")]);
    let directory = Directory {
        teams: [
            ("a1", Some("red")),
            ("a2", Some("red")),
            ("a3", Some("blue")),
        ]
        .into_iter()
        .map(|(a, t)| (a.to_owned(), t.map(str::to_owned)))
        .collect(),
    };
    let plan = schedule(
        &s,
        &directory,
        at("UTC", "2026-12-07"),
        at("UTC", "2026-12-08"),
    );
    assert_eq!(plan.keys().collect::<Vec<_>>(), ["a1", "a2"]);
    assert_eq!(
        plan["a1"],
        vec![(at("UTC", "2026-12-07 09:00"), at("UTC", "2026-12-07 18:00"))]
    );
}

#[test]
fn the_shift_test_in_sql_stays_shallow_and_quotes_nothing_unsafe() {
    let mut plan = BTreeMap::new();
    let ranges: Vec<(i64, i64)> = (0..2000)
        .map(|i| (i * 86_400_000, i * 86_400_000 + 1))
        .collect();
    plan.insert("a1".to_owned(), ranges);
    plan.insert("x' OR 1=1 --".to_owned(), vec![(0, 1)]);
    let sql = in_shift_sql(&plan);
    let mut depth = 0;
    let mut deepest = 0;
    for c in sql.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth -= 1,
            _ => {}
        }
    }
    assert!(deepest < 20, "nesting {deepest}");
    assert!(
        !sql.contains("OR 1=1"),
        "an id that is not an agent id is left out"
    );
}

#[test]
fn transfers_are_the_transferring_agents_teams() {
    let directory = Directory {
        teams: [("a1", Some("red")), ("o'neil", Some("blue")), ("a3", None)]
            .into_iter()
            .map(|(a, t)| (a.to_owned(), t.map(str::to_owned)))
            .collect(),
    };
    assert_eq!(
        team_of_sql("t.transferred_by", &directory),
        "CASE t.transferred_by WHEN 'a1' THEN 'red' END"
    );
    assert_eq!(
        team_of_sql("x", &Directory::default()),
        "CAST(NULL AS TEXT)"
    );
}

#[tokio::test]
async fn a_range_too_long_is_refused_before_any_work() {
    let dir = std::env::temp_dir().join(format!("hotline-report-range-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let store = CdrStore::connect(&format!("sqlite://{}", dir.join("c.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let request = ReportRequest {
        from_ms: 0,
        to_ms: 253_402_300_799_000, // 9999-12-31
        interval: Interval::HalfHour,
        by: GroupBy::Agent,
    };
    let err = run(
        &store,
        &ReportSettings::default(),
        &Directory::default(),
        &request,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("400 days"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
