//! Agents' provisioned phones: the SIP URIs each agent may log in at. Adding
//! and removing one is audited in the same transaction.

use super::{AuditEntry, Backend, Store, StoreError};

/// One provisioned phone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AgentPhone {
    /// The agent.
    pub agent_id: String,
    /// The phone's SIP URI.
    pub sip_uri: String,
    /// When it was bound (ms).
    pub added_at: i64,
    /// Who bound it.
    pub added_by: String,
}

impl Store {
    /// Binds `sip_uri` to `agent`, audited as `by` (who, when, from where;
    /// the action, subject and detail are filled in here); false when it
    /// was already.
    pub async fn phone_add(
        &self,
        agent: &str,
        sip_uri: &str,
        by: AuditEntry,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO agent_phones (agent_id, sip_uri, added_at, added_by)
             VALUES ($1, $2, $3, $4) ON CONFLICT (agent_id, sip_uri) DO NOTHING";
        self.phone_change(SQL, "phone.add", agent, sip_uri, by)
            .await
    }

    /// Unbinds `sip_uri` from `agent`, audited as `by`; false when it was
    /// not bound.
    pub async fn phone_remove(
        &self,
        agent: &str,
        sip_uri: &str,
        by: AuditEntry,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM agent_phones WHERE agent_id = $1 AND sip_uri = $2";
        self.phone_change(SQL, "phone.remove", agent, sip_uri, by)
            .await
    }

    async fn phone_change(
        &self,
        sql: &'static str,
        action: &str,
        agent: &str,
        sip_uri: &str,
        by: AuditEntry,
    ) -> Result<bool, StoreError> {
        let audit = AuditEntry {
            action: action.to_string(),
            subject: format!("agent {agent}"),
            detail: sip_uri.to_string(),
            ..by
        };
        let (at, actor) = (audit.at, audit.actor.as_str());
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut q = sqlx::query(sql).bind(agent).bind(sip_uri);
            if sql.contains("$3") {
                q = q.bind(at).bind(actor);
            }
            let n = q.execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                insert_audit!(&mut *tx, &audit)?;
            }
            tx.commit().await?;
            n > 0
        }))
    }

    /// The phones bound to `agent`, or to every agent with `None`, sorted.
    pub async fn agent_phones(&self, agent: Option<&str>) -> Result<Vec<AgentPhone>, StoreError> {
        const SQL: &str = "SELECT agent_id, sip_uri, added_at, added_by FROM agent_phones
             WHERE $1 IS NULL OR agent_id = $1 ORDER BY agent_id, sip_uri";
        let rows: Vec<(String, String, i64, String)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(agent)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(agent_id, sip_uri, added_at, added_by)| AgentPhone {
                agent_id,
                sip_uri,
                added_at,
                added_by,
            })
            .collect())
    }
}
