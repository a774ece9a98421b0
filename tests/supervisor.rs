//! The supervisor surface's store half: agent state intervals, API tokens,
//! campaign reports and personal data erasure, each on SQLite and on
//! PostgreSQL; and the `token`, `report` and `leads erase` commands.

mod common;

use std::path::Path;

use dialler::campaign::Campaign;
use dialler::store::{AgentState, Store};

fn campaign(name: &str) -> Campaign {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("campaigns")
        .join(format!("{name}.toml"));
    Campaign::load(&path).expect("sample campaign is valid")
}

// ---- agent states ----------------------------------------------------------

async fn agent_states_keep_one_open_interval_per_agent(store: Store) {
    let a = store
        .upsert_campaign(&campaign("uk-broadband"), 0)
        .await
        .expect("campaign");
    let b = store
        .upsert_campaign(&campaign("us-home-solar"), 0)
        .await
        .expect("campaign");
    let ready = store
        .agent_state_begin(a, "alice", AgentState::Ready, None, 1_000)
        .await
        .expect("begin");
    let paused = store
        .agent_state_begin(a, "alice", AgentState::Paused, Some("coffee"), 5_000)
        .await
        .expect("begin");
    // Another agent's state changes leave alice's interval alone.
    store
        .agent_state_begin(a, "bob", AgentState::Ready, None, 6_000)
        .await
        .expect("begin");
    // Moving to another campaign closes the interval in the first.
    let other = store
        .agent_state_begin(b, "alice", AgentState::Ready, None, 8_000)
        .await
        .expect("begin");
    let h = store
        .agent_state_history("alice", 0, 100_000)
        .await
        .expect("history");
    let got: Vec<_> = h
        .iter()
        .map(|i| {
            (
                i.id,
                i.campaign_id,
                i.state,
                i.reason.as_deref(),
                i.started_at,
                i.ended_at,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ready, a, AgentState::Ready, None, 1_000, Some(5_000)),
            (
                paused,
                a,
                AgentState::Paused,
                Some("coffee"),
                5_000,
                Some(8_000)
            ),
            (other, b, AgentState::Ready, None, 8_000, None),
        ]
    );
    // Logout closes it; a second logout finds nothing open.
    assert_eq!(
        store
            .agent_state_end_all("alice", 9_000)
            .await
            .expect("end"),
        1
    );
    assert_eq!(
        store
            .agent_state_end_all("alice", 9_500)
            .await
            .expect("end"),
        0
    );
    // A clock that stepped back never makes a negative interval.
    store
        .agent_state_begin(a, "alice", AgentState::Ready, None, 20_000)
        .await
        .expect("begin");
    store
        .agent_state_begin(a, "alice", AgentState::OnCall, None, 19_000)
        .await
        .expect("begin");
    let h = store
        .agent_state_history("alice", 10_000, 100_000)
        .await
        .expect("history");
    let got: Vec<_> = h
        .iter()
        .map(|i| (i.state, i.started_at, i.ended_at))
        .collect();
    assert_eq!(
        got,
        vec![
            (AgentState::Ready, 20_000, Some(20_000)),
            (AgentState::OnCall, 20_000, None)
        ]
    );
    // The range selects overlapping intervals only.
    let h = store
        .agent_state_history("alice", 5_000, 8_000)
        .await
        .expect("history");
    assert_eq!(h.iter().map(|i| i.id).collect::<Vec<_>>(), vec![paused]);
}
store_test!(agent_states_keep_one_open_interval_per_agent);
