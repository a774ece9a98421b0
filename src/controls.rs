//! Campaign controls: what supervisors change on a running campaign
//! without a restart. A campaign is running, paused or stopped; its
//! dial-level cap and abandonment target may be set below (or, for the
//! cap, above) the campaign file's. The controls live in the store
//! (`campaign_controls`), so they survive a restart and every node of a
//! cluster applies them; the runner takes them through
//! [`Controls::effective`], the one place that turns them into settings.
//!
//! Fail closed: a target can only be set up to the campaign's legal limit,
//! and a stopped or paused campaign launches nothing whatever else says.

use serde::{Deserialize, Serialize};

use crate::campaign::Campaign;

/// Whether a campaign dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Dials (within its calling hours).
    #[default]
    Running,
    /// Launches no new calls; calls in flight, agents and the claimed
    /// leads stay. `resume` goes on where it stopped.
    Paused,
    /// Launches no new calls and gives its claimed leads back; agents
    /// may not log in to it. `start` begins again.
    Stopped,
}

impl RunState {
    /// `running`, `paused` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopped => "stopped",
        }
    }

    /// The stored name back; `None` for anything else.
    pub fn parse(s: &str) -> Option<RunState> {
        match s {
            "running" => Some(RunState::Running),
            "paused" => Some(RunState::Paused),
            "stopped" => Some(RunState::Stopped),
            _ => None,
        }
    }
}

/// A change of run state a supervisor asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stopped → running.
    Start,
    /// Running → paused.
    Pause,
    /// Paused → running.
    Resume,
    /// Running or paused → stopped.
    Stop,
}

impl Action {
    /// `start`, `pause`, `resume` or `stop`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "start" => Some(Action::Start),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "stop" => Some(Action::Stop),
            _ => None,
        }
    }

    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Stop => "stop",
        }
    }
}

/// Most lead lists a campaign may dial at once.
pub const MAX_LISTS: usize = 50;

/// Checks a choice of lead lists against the lists the campaign has
/// (`known`): 1-[`MAX_LISTS`] valid names, each one the campaign holds
/// leads in (a typo would silently stop the dialling).
pub fn check_lists(lists: &[String], known: &[String]) -> Result<(), ControlError> {
    let bad = |message: String| ControlError::Setting {
        field: "lists",
        message,
    };
    if lists.is_empty() || lists.len() > MAX_LISTS {
        return Err(bad(format!(
            "name 1-{MAX_LISTS} lists, or null for every list"
        )));
    }
    for l in lists {
        if !crate::store::valid_list_name(l) {
            return Err(bad(format!(
                "{l:?}: a list name is 1-64 letters, digits, '-', '_' or '.'"
            )));
        }
        if !known.contains(l) {
            return Err(bad(format!(
                "the campaign has no lead list {l:?} (it has: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Lowest dial-level cap: one call per agent (preview-like).
pub const MIN_DIAL_LEVEL: f64 = 1.0;
/// Highest dial-level cap a supervisor may set.
pub const MAX_DIAL_LEVEL: f64 = 10.0;

/// Why a control change is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// The action does not apply in the current state.
    #[error("cannot {action} a {state} campaign")]
    Transition {
        /// What was asked.
        action: &'static str,
        /// The state it found.
        state: &'static str,
    },
    /// A setting is out of range.
    #[error("{field}: {message}")]
    Setting {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A campaign's controls as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Controls {
    /// Running, paused or stopped.
    pub state: RunState,
    /// The dial-level cap (calls in flight per active agent) set over the
    /// campaign file's; `None`: the file's.
    pub max_dial_level: Option<f64>,
    /// The abandonment target (percent) set over the campaign file's;
    /// `None`: the file's.
    pub target_percent: Option<f64>,
    /// The lead lists the campaign dials (agreed callbacks are dialled
    /// whatever their list); `None`: every list.
    pub lists: Option<Vec<String>>,
    /// Grows by one with each change (nodes apply a change once).
    pub version: i64,
    /// When last changed (ms).
    pub updated_at: i64,
    /// Who last changed them.
    pub updated_by: String,
}

impl Default for Controls {
    fn default() -> Controls {
        Controls {
            state: RunState::Running,
            max_dial_level: None,
            target_percent: None,
            lists: None,
            version: 0,
            updated_at: 0,
            updated_by: String::new(),
        }
    }
}

/// What the runner dials with, from a campaign and its controls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    /// May it launch calls?
    pub dialling: bool,
    /// Calls in flight per active agent, at most.
    pub max_dial_level: f64,
    /// Abandonment target, percent.
    pub target_percent: f64,
}

impl Controls {
    /// The state after `action`, or why it does not apply. Asking for the
    /// state the campaign is in already (pause a paused one) is allowed
    /// and changes nothing.
    pub fn after(&self, action: Action) -> Result<RunState, ControlError> {
        use RunState::*;
        let to = match (action, self.state) {
            (Action::Start, Stopped | Running) => Running,
            (Action::Pause, Running | Paused) => Paused,
            (Action::Resume, Paused | Running) => Running,
            (Action::Stop, _) => Stopped,
            (a, s) => {
                return Err(ControlError::Transition {
                    action: a.as_str(),
                    state: s.as_str(),
                });
            }
        };
        Ok(to)
    }

    /// Checks a dial-level cap and a target for `campaign`: the cap within
    /// [`MIN_DIAL_LEVEL`]..=[`MAX_DIAL_LEVEL`], the target above 0 and at
    /// most the campaign's legal abandonment limit.
    pub fn check_settings(
        campaign: &Campaign,
        max_dial_level: Option<f64>,
        target_percent: Option<f64>,
    ) -> Result<(), ControlError> {
        if let Some(l) = max_dial_level
            && !(l.is_finite() && (MIN_DIAL_LEVEL..=MAX_DIAL_LEVEL).contains(&l))
        {
            return Err(ControlError::Setting {
                field: "max_dial_level",
                message: format!("from {MIN_DIAL_LEVEL} to {MAX_DIAL_LEVEL} calls per agent"),
            });
        }
        if let Some(t) = target_percent
            && !(t.is_finite() && t > 0.0 && t <= campaign.abandon_limit_percent)
        {
            return Err(ControlError::Setting {
                field: "target_percent",
                message: format!(
                    "above 0 and at most the campaign's abandonment limit, {}%",
                    campaign.abandon_limit_percent
                ),
            });
        }
        Ok(())
    }

    /// The settings the runner dials with.
    pub fn effective(&self, campaign: &Campaign) -> Effective {
        Effective {
            dialling: self.state == RunState::Running,
            max_dial_level: self.max_dial_level.unwrap_or(campaign.max_dial_level),
            // Never above the limit, whatever the store holds.
            target_percent: self
                .target_percent
                .unwrap_or(campaign.abandon_target_percent)
                .min(campaign.abandon_limit_percent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/uk-broadband.toml");
        Campaign::load(&path).expect("sample campaign")
    }

    #[test]
    fn transitions_follow_the_state() {
        let mut c = Controls::default();
        assert_eq!(c.after(Action::Pause), Ok(RunState::Paused));
        c.state = RunState::Paused;
        assert_eq!(c.after(Action::Resume), Ok(RunState::Running));
        assert!(c.after(Action::Start).is_err(), "a paused campaign resumes");
        assert_eq!(c.after(Action::Stop), Ok(RunState::Stopped));
        c.state = RunState::Stopped;
        assert!(c.after(Action::Pause).is_err());
        assert!(c.after(Action::Resume).is_err());
        assert_eq!(c.after(Action::Start), Ok(RunState::Running));
    }

    #[test]
    fn a_target_never_passes_the_legal_limit() {
        let camp = campaign();
        let limit = camp.abandon_limit_percent;
        assert!(Controls::check_settings(&camp, None, Some(limit)).is_ok());
        assert!(Controls::check_settings(&camp, None, Some(limit + 0.01)).is_err());
        assert!(Controls::check_settings(&camp, None, Some(0.0)).is_err());
        assert!(Controls::check_settings(&camp, None, Some(f64::NAN)).is_err());
        assert!(Controls::check_settings(&camp, Some(0.5), None).is_err());
        assert!(Controls::check_settings(&camp, Some(f64::INFINITY), None).is_err());
        assert!(Controls::check_settings(&camp, Some(2.5), Some(1.0)).is_ok());
        // A stored target over the limit (an older limit) is cut to it.
        let c = Controls {
            target_percent: Some(limit * 2.0),
            ..Controls::default()
        };
        assert_eq!(c.effective(&camp).target_percent, limit);
        let paused = Controls {
            state: RunState::Paused,
            max_dial_level: Some(1.5),
            ..Controls::default()
        };
        let e = paused.effective(&camp);
        assert!(!e.dialling);
        assert_eq!(e.max_dial_level, 1.5);
        assert_eq!(e.target_percent, camp.abandon_target_percent);
    }
}
