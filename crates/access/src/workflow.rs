//! The application workflow: every state an application can be in and every transition,
//! pure. The server's `applications` module asks this module before it changes anything.
//!
//! ```text
//! draft ──submit──> [eligibility] ──fails──> ineligible ──reopen──> draft
//!                        │ passes
//!                        ├── playground with budget left ──> awarded (automatic)
//!                        ├── technical assessment? ──> technical-assessment ──fails──> rejected
//!                        │                                   │ passes
//!                        ├── peer review? ──> peer-review ──reviews in──> right-to-reply? ──reply──┐
//!                        └──────────────────────────────────────────────────────────────> panel <┘
//! panel ──decide──> awarded | rejected;   awarded ──accept──> accepted (provisioned) | ──decline──> declined
//! any state before accepted ──withdraw──> withdrawn
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Draft,
    Ineligible,
    TechnicalAssessment,
    PeerReview,
    RightToReply,
    Panel,
    Awarded,
    Rejected,
    Accepted,
    Declined,
    Withdrawn,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Draft,
        State::Ineligible,
        State::TechnicalAssessment,
        State::PeerReview,
        State::RightToReply,
        State::Panel,
        State::Awarded,
        State::Rejected,
        State::Accepted,
        State::Declined,
        State::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Ineligible => "ineligible",
            State::TechnicalAssessment => "technical-assessment",
            State::PeerReview => "peer-review",
            State::RightToReply => "right-to-reply",
            State::Panel => "panel",
            State::Awarded => "awarded",
            State::Rejected => "rejected",
            State::Accepted => "accepted",
            State::Declined => "declined",
            State::Withdrawn => "withdrawn",
        }
    }

    /// Nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Rejected | State::Accepted | State::Declined | State::Withdrawn
        )
    }

    /// Waiting for the factory (the decision clock runs).
    pub fn awaits_decision(self) -> bool {
        matches!(
            self,
            State::TechnicalAssessment | State::PeerReview | State::RightToReply | State::Panel
        )
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown application state `{s}`"))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an application asks for: a new award, or more of an award it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    New,
    /// More time on an allocation.
    Extension,
    /// More GPU-hours on an allocation.
    Supplement,
    /// A new allocation for the same project once the current one ends.
    Renewal,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::New, Kind::Extension, Kind::Supplement, Kind::Renewal];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Extension => "extension",
            Kind::Supplement => "supplement",
            Kind::Renewal => "renewal",
        }
    }

    /// The lighter review a request takes: an extension or a supplement goes straight to
    /// a decision; a renewal skips the technical assessment but keeps the call's peer
    /// review and right to reply.
    pub fn steps(self, call: Steps) -> Steps {
        match self {
            Kind::New => call,
            Kind::Extension | Kind::Supplement => Steps::default(),
            Kind::Renewal => Steps {
                automatic_award: false,
                technical_assessment: false,
                ..call
            },
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown application kind `{s}` (expected new, extension, supplement, renewal)"))
    }
}

/// Which steps a call's applications go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Steps {
    /// Eligible playground applications are awarded at once while the budget lasts.
    pub automatic_award: bool,
    pub technical_assessment: bool,
    pub peer_review: bool,
    pub right_to_reply: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Submitted and checked: eligible or not, and whether the budget could hold an
    /// automatic award.
    Submitted {
        eligible: bool,
        budget_left: bool,
    },
    Reopen,
    TechnicalAssessment {
        passed: bool,
    },
    /// The last review the call needs came in.
    ReviewsComplete,
    /// The applicant replied to the reviews, or the time to reply ran out.
    Replied,
    Decided {
        award: bool,
    },
    Accept,
    Decline,
    Withdraw,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Submitted { .. } => "submit",
            Event::Reopen => "reopen",
            Event::TechnicalAssessment { .. } => "technical assessment",
            Event::ReviewsComplete => "reviews complete",
            Event::Replied => "reply",
            Event::Decided { .. } => "decision",
            Event::Accept => "accept",
            Event::Decline => "decline",
            Event::Withdraw => "withdraw",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an application that is {state} cannot take a {event}{hint}")]
pub struct Refused {
    pub state: State,
    pub event: &'static str,
    pub hint: &'static str,
}

/// The state after `event`, or why it does not apply.
pub fn next(state: State, event: Event, steps: Steps) -> Result<State, Refused> {
    use State::*;
    let after_review = || if steps.right_to_reply { RightToReply } else { Panel };
    let after_assessment = || if steps.peer_review { PeerReview } else { Panel };
    let to = match (state, event) {
        (Draft, Event::Submitted { eligible: false, .. }) => Ineligible,
        (
            Draft,
            Event::Submitted {
                eligible: true,
                budget_left,
            },
        ) => {
            if steps.automatic_award && budget_left {
                Awarded
            } else if steps.technical_assessment {
                TechnicalAssessment
            } else {
                after_assessment()
            }
        }
        (Ineligible, Event::Reopen) => Draft,
        (TechnicalAssessment, Event::TechnicalAssessment { passed: false }) => Rejected,
        (TechnicalAssessment, Event::TechnicalAssessment { passed: true }) => after_assessment(),
        (PeerReview, Event::ReviewsComplete) => after_review(),
        (RightToReply, Event::Replied) => Panel,
        (Panel, Event::Decided { award }) => {
            if award {
                Awarded
            } else {
                Rejected
            }
        }
        (Awarded, Event::Accept) => Accepted,
        (Awarded, Event::Decline) => Declined,
        (s, Event::Withdraw) if !s.is_final() => Withdrawn,
        (s, e) => {
            return Err(Refused {
                state: s,
                event: e.name(),
                hint: match s {
                    Accepted => ": it was accepted and its allocation exists",
                    Withdrawn | Declined | Rejected => ": it is closed",
                    _ => "",
                },
            });
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    const PLAYGROUND: Steps = Steps {
        automatic_award: true,
        technical_assessment: false,
        peer_review: false,
        right_to_reply: false,
    };
    const FAST_LANE: Steps = Steps {
        automatic_award: false,
        technical_assessment: true,
        peer_review: false,
        right_to_reply: false,
    };
    const LARGE_SCALE: Steps = Steps {
        automatic_award: false,
        technical_assessment: true,
        peer_review: true,
        right_to_reply: true,
    };

    fn walk(steps: Steps, events: &[Event]) -> Vec<State> {
        let mut s = Draft;
        let mut seen = vec![s];
        for e in events {
            s = next(s, *e, steps).unwrap_or_else(|r| panic!("{r}"));
            seen.push(s);
        }
        seen
    }

    #[test]
    fn each_mode_walks_its_steps() {
        let ok = Event::Submitted {
            eligible: true,
            budget_left: true,
        };
        assert_eq!(walk(PLAYGROUND, &[ok, Event::Accept]), [Draft, Awarded, Accepted]);
        let no_budget = Event::Submitted {
            eligible: true,
            budget_left: false,
        };
        assert_eq!(
            walk(PLAYGROUND, &[no_budget, Event::Decided { award: true }]),
            [Draft, Panel, Awarded],
            "a playground out of budget waits for a decision"
        );
        assert_eq!(
            walk(
                FAST_LANE,
                &[
                    ok,
                    Event::TechnicalAssessment { passed: true },
                    Event::Decided { award: true },
                    Event::Accept
                ]
            ),
            [Draft, TechnicalAssessment, Panel, Awarded, Accepted]
        );
        assert_eq!(
            walk(
                LARGE_SCALE,
                &[
                    ok,
                    Event::TechnicalAssessment { passed: true },
                    Event::ReviewsComplete,
                    Event::Replied,
                    Event::Decided { award: false }
                ]
            ),
            [Draft, TechnicalAssessment, PeerReview, RightToReply, Panel, Rejected]
        );
        let no_reply = Steps {
            right_to_reply: false,
            ..LARGE_SCALE
        };
        assert_eq!(
            walk(
                no_reply,
                &[ok, Event::TechnicalAssessment { passed: true }, Event::ReviewsComplete]
            ),
            [Draft, TechnicalAssessment, PeerReview, Panel]
        );
        assert_eq!(
            walk(
                LARGE_SCALE,
                &[
                    Event::Submitted {
                        eligible: false,
                        budget_left: true
                    },
                    Event::Reopen
                ]
            ),
            [Draft, Ineligible, Draft]
        );
    }

    #[test]
    fn requests_take_a_lighter_path() {
        let ok = Event::Submitted {
            eligible: true,
            budget_left: true,
        };
        let extension = Kind::Extension.steps(LARGE_SCALE);
        assert_eq!(
            walk(extension, &[ok, Event::Decided { award: true }]),
            [Draft, Panel, Awarded]
        );
        let renewal = Kind::Renewal.steps(LARGE_SCALE);
        assert_eq!(
            walk(renewal, &[ok, Event::ReviewsComplete, Event::Replied]),
            [Draft, PeerReview, RightToReply, Panel],
            "no technical assessment, the same peer review"
        );
        let playground_supplement = Kind::Supplement.steps(PLAYGROUND);
        assert_eq!(
            walk(playground_supplement, &[ok]),
            [Draft, Panel],
            "never awarded automatically"
        );
        assert_eq!(Kind::New.steps(FAST_LANE), FAST_LANE);
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
    }

    #[test]
    fn withdrawal_is_possible_until_acceptance_and_nothing_leaves_a_final_state() {
        for s in State::ALL {
            let w = next(s, Event::Withdraw, LARGE_SCALE);
            assert_eq!(w.is_ok(), !s.is_final(), "{s}");
        }
        for s in State::ALL.into_iter().filter(|s| s.is_final()) {
            for e in [
                Event::Accept,
                Event::Decline,
                Event::Reopen,
                Event::Replied,
                Event::ReviewsComplete,
                Event::Decided { award: true },
            ] {
                assert!(next(s, e, LARGE_SCALE).is_err(), "{s} took {e:?}");
            }
        }
        let err = next(Accepted, Event::Withdraw, LARGE_SCALE).unwrap_err();
        assert!(err.to_string().contains("allocation exists"), "{err}");
        assert!(
            next(Panel, Event::Accept, LARGE_SCALE).is_err(),
            "nothing to accept before an award"
        );
        assert!(
            next(PeerReview, Event::Decided { award: true }, LARGE_SCALE).is_err(),
            "no decision before the reviews"
        );
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
        }
    }
}
