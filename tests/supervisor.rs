//! The supervisor surface's store half: agent state intervals, API tokens,
//! campaign reports and personal data erasure, each on SQLite and on
//! PostgreSQL; and the `token`, `report` and `leads erase` commands.

mod common;

use std::path::Path;

use common::RawDb;
use dialler::auth::{self, AuthError, Role};
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

// ---- tokens ----------------------------------------------------------------

async fn tokens_authenticate_by_hash_until_revoked(store: Store, raw: RawDb) {
    let sup = auth::create_token(&store, Role::Supervisor, None, Some("night shift"), 1_000)
        .await
        .expect("create");
    assert!(sup.token.starts_with(auth::TOKEN_PREFIX));
    let agent = auth::create_token(&store, Role::Agent, Some("a7"), None, 1_000)
        .await
        .expect("create");
    assert!(matches!(
        auth::create_token(&store, Role::Agent, None, None, 1_000).await,
        Err(AuthError::AgentIdMissing)
    ));
    assert!(matches!(
        auth::create_token(&store, Role::Agent, Some("  "), None, 1_000).await,
        Err(AuthError::AgentIdEmpty)
    ));
    assert!(matches!(
        auth::create_token(&store, Role::Admin, Some("a7"), None, 1_000).await,
        Err(AuthError::AgentIdNotAllowed(Role::Admin))
    ));

    let p = auth::authenticate(&store, &sup.token)
        .await
        .expect("auth")
        .expect("known");
    assert_eq!(
        (p.token_id, p.role, p.agent_id),
        (sup.id, Role::Supervisor, None)
    );
    let p = auth::authenticate(&store, &agent.token)
        .await
        .expect("auth")
        .expect("known");
    assert_eq!(p.agent_id.as_deref(), Some("a7"));
    assert!(p.can_access_agent("a7") && !p.can_access_agent("a8") && !p.can_supervise());
    for wrong in ["", "dlr_00", &agent.token[..agent.token.len() - 1]] {
        assert_eq!(auth::authenticate(&store, wrong).await.expect("auth"), None);
    }

    // The secret is nowhere in the database; its hash is.
    assert_eq!(raw.find_text(&sup.token).await, vec![]);
    assert_eq!(
        raw.find_text(&auth::token_hash(&sup.token)).await,
        vec![("api_tokens".to_string(), "token_hash".to_string(), 1)]
    );

    assert!(auth::revoke(&store, sup.id, 2_000).await.expect("revoke"));
    assert!(!auth::revoke(&store, sup.id, 3_000).await.expect("revoke"));
    assert!(!auth::revoke(&store, 9_999, 3_000).await.expect("revoke"));
    assert_eq!(
        auth::authenticate(&store, &sup.token).await.expect("auth"),
        None
    );
    assert!(
        auth::authenticate(&store, &agent.token)
            .await
            .expect("auth")
            .is_some()
    );
    let rows = store.token_list().await.expect("list");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].label.as_deref(), rows[0].revoked_at),
        (Some("night shift"), Some(2_000))
    );
    assert_eq!((rows[1].role.as_str(), rows[1].revoked_at), ("agent", None));
}
store_raw_test!(tokens_authenticate_by_hash_until_revoked);
