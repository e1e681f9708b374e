use super::*;

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let path = std::env::temp_dir().join(format!("hotline-config-{}.toml", fastrand::u64(..)));
    std::fs::write(&path, text).unwrap();
    let r = Config::load(Some(&path), &Overrides::default());
    std::fs::remove_file(path).ok();
    r
}

#[test]
fn defaults_without_file() {
    let c = Config::load(None, &Overrides::default()).unwrap();
    assert_eq!(c.sip_bind, "0.0.0.0:5060".parse().unwrap());
    assert_eq!(c.rtp_ports, (20000, 29999));
    assert_eq!(c.database, "sqlite://hotline.db");
    assert_eq!(c.flows_dir, PathBuf::from("./ivr-flows"));
    assert_eq!(c.recordings_dir, PathBuf::from("./recordings"));
}

#[test]
fn per_source_limits_and_trusted_networks() {
    let c = load_text("[sip]\nmax_calls = 300\n").unwrap();
    assert_eq!(
        (c.source_call_rate, c.source_max_calls, c.ack_timeout),
        (50, 150, Duration::from_secs(10)),
        "half of max_calls by default"
    );
    assert!(c.trusted.is_empty());
    let c = load_text(
        "[sip]\nsource_call_rate = 0\nsource_max_calls = 7\nack_timeout = \"4s\"\n\
         trusted = [\"192.0.2.0/24\", \"2001:db8::5\"]\n",
    )
    .unwrap();
    assert_eq!((c.source_call_rate, c.source_max_calls), (0, 7));
    assert_eq!(c.ack_timeout, Duration::from_secs(4));
    assert!(c.trusted.contains("192.0.2.77".parse().unwrap()));
    assert!(c.trusted.contains("2001:db8::5".parse().unwrap()));
    assert!(!c.trusted.contains("192.0.3.1".parse().unwrap()));
    for (text, key) in [
        ("[sip]\ntrusted = [\"trunk.example.com\"]\n", "sip.trusted"),
        ("[sip]\ntrusted = [\"10.0.0.0/40\"]\n", "sip.trusted"),
        ("[sip]\nack_timeout = \"200ms\"\n", "sip.ack_timeout"),
    ] {
        let e = load_text(text).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn recordings_directory_from_the_file() {
    let c = load_text("[flows]\nrecordings = \"/var/spool/hotline/messages\"\n").unwrap();
    assert_eq!(
        c.recordings_dir,
        PathBuf::from("/var/spool/hotline/messages")
    );
    let e = load_text("[flows]\nrecordings = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("flows.recordings"), "{e}");
}

#[test]
fn file_values_and_overrides() {
    let c = load_text("[sip]\nbind = \"127.0.0.1:5080\"\nmax_calls = 10\n[media]\nrtp_ports = \"30001-30100\"\nrtp_timeout = \"10s\"\n").unwrap();
    assert_eq!(c.sip_bind.port(), 5080);
    assert_eq!(c.max_calls, 10);
    assert_eq!(c.rtp_ports, (30002, 30100), "RTP starts on an even port");
    assert_eq!(c.rtp_timeout, Duration::from_secs(10));
    assert_eq!(
        c.first_packet_timeout,
        Duration::from_secs(10),
        "the default"
    );
    let c = load_text("[media]\nfirst_packet_timeout = \"0s\"\n").unwrap();
    assert_eq!(c.first_packet_timeout, Duration::ZERO, "off");
    let e = load_text("[media]\nfirst_packet_timeout = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("media.first_packet_timeout"), "{e}");
    let o = Overrides {
        sip_bind: Some("127.0.0.1:6000".into()),
        ..Default::default()
    };
    assert_eq!(Config::load(None, &o).unwrap().sip_bind.port(), 6000);
}

#[test]
fn errors_name_the_key() {
    let e = load_text("[sip]\nbind = \"nowhere\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sip.bind"), "{e}");
    let e = load_text("[media]\nrtp_timeout = \"10\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("media.rtp_timeout"), "{e}");
    let e = load_text("[sip]\nbnid = \"x\"\n").unwrap_err().to_string();
    assert!(e.contains(":2:1:") && e.contains("bnid"), "{e}");
    let e = load_text("[media]\nrtp_ports = \"9-3\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("media.rtp_ports"), "{e}");
    let e = load_text("[reload]\npoll = \"0ms\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("reload.poll"), "{e}");
}

#[test]
fn reload_keys() {
    let c = Config::load(None, &Overrides::default()).unwrap();
    assert!(c.reload_watch, "watching is on by default");
    assert_eq!(c.reload_poll, Duration::from_millis(500));
    let c = load_text("[reload]\nwatch = false\npoll = \"2s\"\n").unwrap();
    assert!(!c.reload_watch);
    assert_eq!(c.reload_poll, Duration::from_secs(2));
}

#[test]
fn type_errors_name_the_dotted_key_in_plain_words() {
    let cases = [
        (
            "[sip]\nmax_calls = \"ten\"\n",
            ":2:13: sip.max_calls: invalid type: string \"ten\", expected a whole number",
        ),
        (
            "sip = \"x\"\n",
            ":1:7: sip: invalid type: string \"x\", expected a table",
        ),
        // serde reads an array as a struct's fields in order, hence its odd wording here.
        ("[[media]]\nthreads = 2\n", ":1:1: media: invalid type"),
        (
            "[media]\nthreads = 1.5\n",
            ":2:11: media.threads: invalid type: floating point `1.5`, expected a whole number",
        ),
        (
            "[flows]\ndir = 3\n",
            ":2:7: flows.dir: invalid type: integer `3`, expected a string",
        ),
        (
            "[sip.bind]\nport = 1\n",
            ":1:1: sip.bind: invalid type: map, expected a string",
        ),
        (
            "sip = { tcp = \"yes\" }\n",
            ":1:15: sip.tcp: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[sip]\nbnid = \"x\"\n",
            ":2:1: sip.bnid: unknown field `bnid`",
        ),
        ("[sipp]\n", ":1:2: sipp: unknown field `sipp`"),
        (
            "[sip]\nmax_calls = 1\nmax_calls = 2\n",
            ":3:1: sip.max_calls: duplicate key",
        ),
        ("[cdr]\ndatabase = \n", ":2:12: cdr.database: "),
    ];
    for (text, want) in cases {
        let e = load_text(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn a_port_range_without_a_pair_is_refused() {
    let e = load_text("[media]\nrtp_ports = \"46001-46002\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("media.rtp_ports") && e.contains("no RTP/RTCP pair"),
        "{e}"
    );
    let o = Overrides {
        rtp_ports: Some("46001-46002".into()),
        ..Default::default()
    };
    let e = Config::load(None, &o).unwrap_err().to_string();
    assert!(
        e.contains("--rtp-ports") && e.contains("media.rtp_ports"),
        "{e}"
    );
    assert_eq!(parse_port_range("46000-46001"), Ok((46000, 46001)));
    assert_eq!(parse_port_range("46001-46003"), Ok((46002, 46003)));
    assert!(parse_port_range("65533-65534").is_err());
}

#[test]
fn database_urls_of_other_schemes_are_refused() {
    for bad in [
        "mysql://hotline:secret@db/cdr",
        "postgres:hotline@db/cdr",
        " ",
    ] {
        let text = format!("[cdr]\ndatabase = {bad:?}\n");
        let e = load_text(&text).unwrap_err().to_string();
        assert!(e.contains("cdr.database"), "{bad}: {e}");
        assert!(!e.contains("secret"), "no password in messages: {e}");
    }
    for good in [
        "sqlite://cdr.db",
        "sqlite:cdr.db?mode=rwc",
        "SQLite:///var/lib/hotline/cdr.db",
        "postgres://u:p@localhost/cdr",
        "postgresql://localhost/cdr",
        "./cdr.db",
    ] {
        let text = format!("[cdr]\ndatabase = {good:?}\n");
        assert_eq!(load_text(&text).unwrap().database, good);
    }
    let o = Overrides {
        database: Some("mongodb://db/cdr".into()),
        ..Default::default()
    };
    let e = Config::load(None, &o).unwrap_err().to_string();
    assert!(
        e.contains("--database") && e.contains("cdr.database"),
        "{e}"
    );
}

#[test]
fn tls_needs_both_files_and_srtp_takes_three_modes() {
    let c = load_text("").unwrap();
    assert_eq!((c.tls, c.srtp), (None, SrtpMode::Optional));
    let c = load_text("[sip]\ntls_certificate = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap();
    assert_eq!(
        c.tls,
        Some(TlsConfig {
            port: 5061,
            certificate: "c.pem".into(),
            key: "k.pem".into()
        })
    );
    for half in [
        "[sip]\ntls_certificate = \"c.pem\"\n",
        "[sip]\ntls_key = \"k.pem\"\n",
        "[sip]\ntls_port = 5071\n",
    ] {
        let e = load_text(half).unwrap_err().to_string();
        assert!(e.contains("sip.tls_"), "{half}: {e}");
    }
    for (text, mode) in [
        ("off", SrtpMode::Off),
        ("optional", SrtpMode::Optional),
        ("required", SrtpMode::Required),
    ] {
        let c = load_text(&format!("[media]\nsrtp = \"{text}\"\n")).unwrap();
        assert_eq!(c.srtp, mode);
    }
    let e = load_text("[media]\nsrtp = \"always\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("media.srtp"), "{e}");
    let c = load_text(
        "[sip]\noutbound = \"192.0.2.10:5061\"\noutbound_transport = \"TLS\"\noutbound_tls_name = \"trunk.example.net\"\ntls_ca = \"ca.pem\"\ntls_certificate = \"c.pem\"\ntls_key = \"k.pem\"\n",
    )
    .unwrap();
    assert_eq!(c.outbound_transport, crate::sip::TransportKind::Tls);
    assert_eq!(c.outbound_tls_name.as_deref(), Some("trunk.example.net"));
    assert_eq!(c.tls_ca, Some(PathBuf::from("ca.pem")));
    let e = load_text("[sip]\noutbound_transport = \"tls\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls_certificate"), "{e}");
    let e = load_text("[sip]\noutbound_transport = \"sctp\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sip.outbound_transport"), "{e}");
}

#[test]
fn example_file_is_valid_and_complete() {
    let text = include_str!("../../hotline.example.toml");
    let c = load_text(text).unwrap();
    assert_eq!(c.sip_bind.port(), 5060);
}

#[test]
fn the_registrar_section_is_read_and_checked() {
    let load = |text: &str| {
        let path = std::env::temp_dir().join(format!("hotline-reg-{}.toml", fastrand::u64(..)));
        std::fs::write(&path, text).unwrap();
        let c = Config::load(Some(&path), &Overrides::default());
        std::fs::remove_file(&path).ok();
        c
    };
    let c = load("[registrar]\nmin_expires = \"10s\"\nmax_expires = \"10m\"\nkeepalive = \"off\"\nmax_contacts = 2\nblock_for = \"1m\"\n").unwrap();
    let r = &c.registrar;
    assert_eq!(
        (
            r.min_expires,
            r.max_expires,
            r.keepalive,
            r.max_contacts,
            r.block_for
        ),
        (
            Duration::from_secs(10),
            Duration::from_secs(600),
            None,
            2,
            Duration::from_secs(60)
        )
    );
    assert_eq!(
        r.default_expires,
        Duration::from_secs(600),
        "kept within the bounds"
    );
    let c = load("[registrar]\nkeepalive = \"15s\"\n").unwrap();
    assert_eq!(c.registrar.keepalive, Some(Duration::from_secs(15)));
    for (bad, key) in [
        ("min_expires = \"0s\"", "registrar.min_expires"),
        (
            "min_expires = \"2m\"\nmax_expires = \"1m\"",
            "registrar.max_expires",
        ),
        ("keepalive = \"soon\"", "registrar.keepalive"),
        ("max_contacts = 0", "registrar.max_contacts"),
        ("fail_limit = 0", "registrar.fail_limit"),
    ] {
        let err = load(&format!("[registrar]\n{bad}\n")).unwrap_err();
        assert!(err.to_string().contains(key), "{bad}: {err}");
    }
}

#[test]
fn the_api_is_off_unless_bound() {
    assert_eq!(load_text("").unwrap().api, None);
    let c = load_text("[api]\nbind = \"127.0.0.1:8080\"\nsession_idle = \"10m\"\n").unwrap();
    let api = c.api.unwrap();
    assert_eq!(api.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(api.users, PathBuf::from("./users.toml"));
    assert_eq!(api.session_idle, Duration::from_secs(600));
    assert_eq!(api.session_max, Duration::from_secs(12 * 3600));
    assert_eq!(api.tls, None);
    let e = load_text("[api]\nbind = \"localhost\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.bind"), "{e}");
    let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\ntls_key = \"k.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.tls_certificate"), "{e}");
    let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\nmax_connections_per_address = 0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.max_connections_per_address"), "{e}");
    let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\nsession_idle = \"0s\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.session_idle"), "{e}");
    let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\nusers_file = \"u\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("users_file"), "{e}");
}
