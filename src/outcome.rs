//! The words the store, the runner, compliance and reports share about a
//! call and a lead: [`Outcome`] (how an attempt ended) and [`LeadStatus`]
//! (where a lead is in its life). Each is stored as its code; the code is
//! parsed back here and nowhere else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A person answered and talked to an agent.
    Connected,
    /// A person answered and no agent took the call in time.
    Abandoned,
    /// An answering machine.
    Machine,
    /// Busy.
    Busy,
    /// Rang out to the ring timeout.
    NoAnswer,
    /// Rejected by the callee or network.
    Rejected,
    /// Network or provider failure.
    Failure,
    /// Cut by a shutdown or a crash of the node that placed it (set by the
    /// live service and its recovery, never by the runner).
    Interrupted,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 8] = [
        Outcome::Connected,
        Outcome::Abandoned,
        Outcome::Machine,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Rejected,
        Outcome::Failure,
        Outcome::Interrupted,
    ];

    /// The outcome's code, as stored and as campaign files name it.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Abandoned => "abandoned",
            Outcome::Machine => "machine",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Rejected => "rejected",
            Outcome::Failure => "failure",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome with `code`.
    pub fn from_code(code: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.code() == code)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Outcome {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Outcome, UnknownCode> {
        Outcome::from_code(s).ok_or_else(|| UnknownCode(s.to_string()))
    }
}

/// A stored code this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown code {0:?}")]
pub struct UnknownCode(pub String);

/// Where a lead is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Imported, never dialled.
    New,
    /// Imported with no known time zone: never dialled until fixed.
    TzUnknown,
    /// In a node's hopper.
    Claimed,
    /// Its attempt row is written and the call is going out.
    Dialling,
    /// Waiting for its next attempt.
    Retry,
    /// Compliance refused it with nothing that time can clear (a listing,
    /// no attempts left): not dialled until someone fixes the data.
    Refused,
    /// Finished: connected, or out of attempts.
    Done,
    /// The person asked not to be called: never dialled again.
    Dnc,
}

impl LeadStatus {
    /// Every status.
    pub const ALL: [LeadStatus; 8] = [
        LeadStatus::New,
        LeadStatus::TzUnknown,
        LeadStatus::Claimed,
        LeadStatus::Dialling,
        LeadStatus::Retry,
        LeadStatus::Refused,
        LeadStatus::Done,
        LeadStatus::Dnc,
    ];

    /// The status as stored.
    pub fn code(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::TzUnknown => "tz_unknown",
            LeadStatus::Claimed => "claimed",
            LeadStatus::Dialling => "dialling",
            LeadStatus::Retry => "retry",
            LeadStatus::Refused => "refused",
            LeadStatus::Done => "done",
            LeadStatus::Dnc => "dnc",
        }
    }

    /// The status with `code`.
    pub fn from_code(code: &str) -> Option<LeadStatus> {
        LeadStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for LeadStatus {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<LeadStatus, UnknownCode> {
        LeadStatus::from_code(s).ok_or_else(|| UnknownCode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(o.code().parse::<Outcome>(), Ok(o));
            assert_eq!(
                serde_json::to_string(&o).unwrap_or_default(),
                format!("\"{o}\"")
            );
        }
        for s in LeadStatus::ALL {
            assert_eq!(s.code().parse::<LeadStatus>(), Ok(s));
        }
        assert!("human".parse::<Outcome>().is_err());
    }
}
