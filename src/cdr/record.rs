//! The call detail record and its enumerations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One finished call. Built once, when the call is over, and never updated afterwards: that is
/// what lets the store insert it idempotently instead of tracking row versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrRecord {
    /// hotline's own call id (32 hex chars). The primary key, so a retried insert is a no-op.
    pub id: String,
    pub sip_call_id: String,
    /// ANI: the user part of From.
    pub caller: String,
    /// DNIS: the user part of the Request-URI.
    pub dialled: String,
    /// Unix epoch milliseconds when the INVITE arrived.
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub end_ms: i64,
    /// None when no flow matched the dialled number.
    pub flow: Option<String>,
    /// Node names visited, in order; repeats are kept because loops are what the path is
    /// mostly read for (a caller stuck re-entering a menu).
    pub ivr_path: Vec<String>,
    /// Every DTMF digit the caller entered, in order.
    pub digits: String,
    pub disposition: Disposition,
    pub hangup_by: HangupBy,
    /// Final SIP response code of the INVITE.
    pub sip_code: u16,
    /// Short machine word: "bye", "cancel", "flow_hangup", "rtp_timeout", "no_route",
    /// "no_codec", "overload", "shutdown", "error".
    pub end_reason: String,
    /// The prompt language the call ended in; None for calls refused before a flow ran.
    #[serde(default)]
    pub language: Option<String>,
    /// Survey answers in the order asked: (question id, key pressed).
    #[serde(default)]
    pub survey: Vec<(String, String)>,
    /// WAV files recorded from the caller (messages).
    #[serde(default)]
    pub recordings: Vec<String>,
}

impl CdrRecord {
    /// Wall time from INVITE to the end, or None if the clock went backwards in between.
    pub fn duration_ms(&self) -> Option<i64> {
        self.end_ms.checked_sub(self.start_ms).filter(|ms| *ms >= 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Ended by the flow in the IVR.
    Completed,
    CallerHangup,
    /// Refused for capacity (503); counted apart because it is demand the hotline never served.
    Blocked,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    Caller,
    Hotline,
    /// The call never got far enough for anyone to hang up (refused or failed during setup).
    None,
}

/// A text column held a word that is not one of the enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
}

impl Disposition {
    pub const ALL: [Disposition; 4] = [
        Disposition::Completed,
        Disposition::CallerHangup,
        Disposition::Blocked,
        Disposition::Failed,
    ];

    /// The stored form; identical to the serde form so the database, the spool and the JSON
    /// report all spell it the same way.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Completed => "completed",
            Disposition::CallerHangup => "caller_hangup",
            Disposition::Blocked => "blocked",
            Disposition::Failed => "failed",
        }
    }
}

impl FromStr for Disposition {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "disposition",
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HangupBy {
    pub const ALL: [HangupBy; 3] = [HangupBy::Caller, HangupBy::Hotline, HangupBy::None];

    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Caller => "caller",
            HangupBy::Hotline => "hotline",
            HangupBy::None => "none",
        }
    }
}

impl FromStr for HangupBy {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HangupBy::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "hangup_by",
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for HangupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_round_trips_through_text_and_serde() {
        for d in Disposition::ALL {
            assert_eq!(d.as_str().parse::<Disposition>(), Ok(d));
            assert_eq!(d.to_string(), d.as_str());
            let json = serde_json::to_string(&d).expect("serialise");
            assert_eq!(json, format!("\"{}\"", d.as_str()));
            let back: Disposition = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, d);
        }
    }

    #[test]
    fn hangup_by_round_trips_through_text_and_serde() {
        for h in HangupBy::ALL {
            assert_eq!(h.as_str().parse::<HangupBy>(), Ok(h));
            let json = serde_json::to_string(&h).expect("serialise");
            assert_eq!(json, format!("\"{}\"", h.as_str()));
            let back: HangupBy = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, h);
        }
    }

    #[test]
    fn unknown_words_are_rejected_with_the_offending_value() {
        let err = "Completed"
            .parse::<Disposition>()
            .expect_err("case matters");
        assert_eq!(err.kind, "disposition");
        assert_eq!(err.value, "Completed");
        assert!("".parse::<HangupBy>().is_err());
        assert!("agent".parse::<HangupBy>().is_err());
        assert!(err.to_string().contains("\"Completed\""));
    }

    #[test]
    fn duration_is_none_when_the_clock_went_backwards() {
        let mut rec = sample();
        assert_eq!(rec.duration_ms(), Some(65_000));
        rec.end_ms = rec.start_ms - 1;
        assert_eq!(rec.duration_ms(), None);
        rec.start_ms = i64::MIN;
        rec.end_ms = i64::MAX;
        assert_eq!(rec.duration_ms(), None);
    }

    #[test]
    fn record_serde_round_trip_keeps_every_field() {
        let rec = sample();
        let json = serde_json::to_string(&rec).expect("serialise");
        let back: CdrRecord = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, rec);
    }

    fn sample() -> CdrRecord {
        CdrRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            sip_call_id: "a84b4c76e66710@pc33.example.com".into(),
            caller: "4155550100".into(),
            dialled: "95588".into(),
            start_ms: 1_700_000_000_000,
            answer_ms: Some(1_700_000_000_120),
            end_ms: 1_700_000_065_000,
            flow: Some("main".into()),
            ivr_path: vec!["welcome".into(), "menu".into(), "menu".into()],
            digits: "19#".into(),
            disposition: Disposition::CallerHangup,
            hangup_by: HangupBy::Caller,
            sip_code: 200,
            end_reason: "bye".into(),
            language: None,
            survey: Vec::new(),
            recordings: Vec::new(),
        }
    }
}
