//! Webhooks to a CRM: what a campaign's subscribers are sent, how it is
//! signed, and the task that delivers the outbox with back-off.
//!
//! Events are written to the store's outbox in the transaction of the row
//! each describes (a call's answer or end, a disposition), one row per
//! subscription, so none is lost to a crash between the two. The
//! [`Deliverer`] POSTs them with an exponential back-off for up to
//! [`GIVE_UP_AFTER`] (a receiver down for hours loses nothing), and once
//! the receiver takes an event again, the subscription's backed-off
//! events go within the first back-off rather than after up to an hour;
//! it logs every try, and a failed or delivered event can be replayed. Delivery is
//! at least once; each event carries an id (the body's `id`, and the
//! `Idempotency-Key` header, the same on every try and replay) by which a
//! receiver keeps it exactly once.
//!
//! Signature: `X-Dialler-Signature: t=UNIX_SECONDS,v1=HEX` where HEX is
//! HMAC-SHA256 with the subscription's secret over `"{t}.{body}"` (see
//! [`verify`]); a receiver recomputes it over the raw body, compares in
//! constant time and refuses a `t` more than five minutes off.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::clock::{Clock, Millis};
use crate::store::{OutboxItem, Store, StoreError};

/// The events a subscription may ask for.
pub const EVENTS: [&str; 5] = [
    "call.answered",
    "call.ended",
    "disposition.recorded",
    "conversion",
    "lead.opted_out",
];

/// An event is given up after this long undelivered (it stays in the log
/// and can be replayed).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(72 * 3600);

/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How long a receiver has to answer one try.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A signature's timestamp a receiver should accept, either way.
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// What is wrong with a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not an event of [`EVENTS`].
    #[error("unknown event {0:?}: use {events}", events = EVENTS.join(", "))]
    UnknownEvent(String),
    /// Not an absolute http(s) URL.
    #[error("{0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// A URL with a user name or password in it.
    #[error(
        "a webhook URL may not carry a user name or password (supervisors see the URL and logs name it); the receiver checks the X-Dialler-Signature HMAC instead"
    )]
    CredentialsInUrl,
}

/// The events named in `list` (comma-separated; `all` or empty: every
/// event), checked.
pub fn parse_events(list: &str) -> Result<Vec<String>, WebhookError> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() || names == ["all"] {
        return Ok(EVENTS.iter().map(|e| e.to_string()).collect());
    }
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !EVENTS.contains(&n) {
            return Err(WebhookError::UnknownEvent(n.to_string()));
        }
        if !out.iter().any(|e| e == n) {
            out.push(n.to_string());
        }
    }
    Ok(out)
}

/// `url`, checked: absolute, http or https, with a host.
pub fn check_url(url: &str) -> Result<String, WebhookError> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|_| WebhookError::BadUrl(url.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(WebhookError::BadUrl(url.to_string()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(WebhookError::CredentialsInUrl);
    }
    Ok(parsed.to_string())
}

/// `url` with any user name and password taken out, for logs (a
/// subscription made before [`check_url`] refused them may hold some).
pub fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(unreadable URL)".to_string(),
    }
}

/// The stored form of a subscription's events: `,a,b,` (so that one is
/// found with `LIKE '%,a,%'`).
pub fn events_column(events: &[String]) -> String {
    format!(",{},", events.join(","))
}

/// The LIKE pattern that finds subscriptions to `event`.
pub fn event_pattern(event: &str) -> String {
    format!("%,{event},%")
}

/// A new signing secret: `whsec_` and 64 hex digits.
pub fn new_secret() -> String {
    use rand::RngExt;
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", hex::encode(bytes))
}

/// The call an event is about, read in the transaction that writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallContext {
    /// The campaign's id.
    pub campaign_id: i64,
    /// The campaign's name.
    pub campaign: String,
    /// The call (attempt) id.
    pub call_id: i64,
    /// The lead's id (none once erased).
    pub lead_id: Option<i64>,
    /// The number called, E.164 (none once erased).
    pub phone: Option<String>,
    /// Which attempt at the lead.
    pub attempt_no: i64,
    /// The lead's other columns, a JSON object (none once erased).
    pub fields: Option<String>,
}

/// An event's data: the call and lead it is about, and `extra`.
pub fn payload(ctx: &CallContext, extra: serde_json::Value) -> String {
    let fields = ctx
        .fields
        .as_deref()
        .and_then(|f| serde_json::from_str::<serde_json::Value>(f).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut data = serde_json::json!({
        "campaign": ctx.campaign,
        "call_id": ctx.call_id,
        "attempt": ctx.attempt_no,
        "lead": { "id": ctx.lead_id, "phone": ctx.phone, "fields": fields },
    });
    if let (Some(d), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
        d.extend(extra);
    }
    data.to_string()
}

/// An event's `payload` with the person taken out, as [`payload`] writes
/// it for a call whose lead was erased: the lead's id, number and fields
/// null, the rest (the call, its outcome, the disposition's code) kept.
/// A payload that is not a JSON object keeps nothing.
pub fn erased_payload(payload: &str) -> String {
    let erased_lead = serde_json::json!({ "id": null, "phone": null, "fields": null });
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(mut data)) => {
            data.insert("lead".to_string(), erased_lead);
            serde_json::Value::Object(data).to_string()
        }
        _ => serde_json::json!({ "lead": erased_lead }).to_string(),
    }
}

/// The event that tells a campaign's subscribers a lead was erased at the
/// person's request (GDPR Art. 19: each recipient of the data is told), so
/// that the CRM erases its copy: the lead's id, which earlier events gave
/// it, and nothing else of the person. Sent to every live subscription of
/// the campaign, whatever events it chose.
pub const ERASED_EVENT: &str = "lead.erased";

/// [`ERASED_EVENT`]'s payload.
pub fn erased_notice(campaign: &str, lead_id: i64, at: i64) -> String {
    serde_json::json!({
        "campaign": campaign,
        "lead": { "id": lead_id, "phone": null, "fields": null },
        "erased_at": time(at),
    })
    .to_string()
}

/// A time as the payloads give it: RFC 3339, UTC, milliseconds.
pub fn time(ms: i64) -> String {
    Millis(ms)
        .utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The body sent for outbox row `id`: the same on every try and replay.
pub fn body(id: i64, event: &str, created_at: i64, payload: &str) -> String {
    let data: serde_json::Value = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": idempotency_key(id),
        "event": event,
        "created_at": time(created_at),
        "data": data,
    })
    .to_string()
}

/// The idempotency key of outbox row `id`.
pub fn idempotency_key(id: i64) -> String {
    format!("evt_{id}")
}

fn mac(secret: &str, t: i64, body: &str) -> Option<hmac::Hmac<Sha256>> {
    let mut m = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    Some(m)
}

/// The `X-Dialler-Signature` header for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let sig = mac(secret, t, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={t},v1={sig}")
}

/// What a receiver does: true when `header` signs `body` with `secret`
/// and its time is within [`SIGNATURE_TOLERANCE_S`] of `now_s`.
pub fn verify(secret: &str, header: &str, body: &str, now_s: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now_s - t).abs() > SIGNATURE_TOLERANCE_S {
        return false;
    }
    mac(secret, t, body).is_some_and(|m| m.verify_slice(&v1).is_ok())
}

/// The wait before try `attempts + 1` after `attempts` failed ones:
/// doubling from `base`, at most [`MAX_BACKOFF`], with up to a fifth
/// added at random so that a receiver coming back is not hit by every
/// event at once.
pub fn next_delay(base: Duration, attempts: u32) -> Duration {
    use rand::RngExt;
    let doubled = base.saturating_mul(1u32 << attempts.min(20));
    let d = doubled.min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.0..0.2);
    d.mul_f64(1.0 + jitter)
}

/// How a delivery task behaves.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// This node (claims carry it).
    pub node: String,
    /// The first retry's wait.
    pub base_backoff: Duration,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// Events handled at once.
    pub batch: u32,
    /// How often to look for due events when there were none.
    pub poll: Duration,
}

impl DeliverySettings {
    /// The service's settings for node `node`.
    pub fn for_node(node: &str) -> DeliverySettings {
        DeliverySettings {
            node: node.to_string(),
            base_backoff: Duration::from_secs(5),
            timeout: REQUEST_TIMEOUT,
            batch: 32,
            poll: Duration::from_millis(500),
        }
    }
}

/// What one try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryOutcome {
    /// A 2xx: delivered.
    Delivered,
    /// Try again at this time (ms).
    Retry(i64),
    /// Too old: given up (replay sends it again).
    GaveUp,
}

/// Delivers a store's webhook outbox: claims due events (a lease, so that
/// several nodes share the work and a dead node's claims lapse), POSTs
/// each signed, and records every try.
pub struct Deliverer {
    store: Store,
    clock: Clock,
    settings: DeliverySettings,
    client: reqwest::Client,
}

impl Deliverer {
    /// A deliverer over `store`; HTTPS receivers are checked against the
    /// system's roots (and `extra_ca`, a PEM file, when given).
    pub fn new(
        store: Store,
        clock: Clock,
        settings: DeliverySettings,
        extra_ca: Option<&std::path::Path>,
    ) -> Result<Deliverer, crate::sip::SipError> {
        let tls = crate::sip::tls::client_config(extra_ca)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dialler/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::sip::SipError::Tls(e.to_string()))?;
        Ok(Deliverer {
            store,
            clock,
            settings,
            client,
        })
    }

    /// Delivers until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let handled = match self.round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery round failed");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(self.settings.poll) => {}
                }
            }
        }
    }

    /// One round: claims up to a batch of due events and tries each (at
    /// once); returns how many.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let now = self.clock.now().ms();
        let lease = crate::clock::duration_ms(self.settings.timeout) * 3 + 5_000;
        let items = self
            .store
            .webhook_claim(&self.settings.node, now, lease, self.settings.batch)
            .await?;
        let n = items.len();
        let tries = items.into_iter().map(|item| self.try_one(item));
        for r in futures_util::future::join_all(tries).await {
            r?;
        }
        Ok(n)
    }

    async fn try_one(&self, item: OutboxItem) -> Result<(), StoreError> {
        let body = body(item.id, &item.event, item.created_at, &item.payload);
        let sent_at = self.clock.now();
        let t = sent_at.ms().div_euclid(1000);
        let started = std::time::Instant::now();
        let r = self
            .client
            .post(&item.url)
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency_key(item.id))
            .header("x-dialler-event", item.event.as_str())
            .header("x-dialler-signature", signature(&item.secret, t, &body))
            .body(body)
            .send()
            .await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, error) = match r {
            Ok(resp) => {
                let s = resp.status();
                let err = (!s.is_success()).then(|| format!("HTTP {s}"));
                (Some(i64::from(s.as_u16())), err)
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "could not connect".to_string()
                } else {
                    e.to_string()
                };
                (None, Some(what))
            }
        };
        let now = self.clock.now().ms();
        let outcome = if error.is_none() {
            TryOutcome::Delivered
        } else if now - item.tries_from >= crate::clock::duration_ms(GIVE_UP_AFTER) {
            TryOutcome::GaveUp
        } else {
            let attempts = u32::try_from(item.attempts).unwrap_or(u32::MAX);
            let wait = next_delay(self.settings.base_backoff, attempts);
            TryOutcome::Retry(now + crate::clock::duration_ms(wait))
        };
        if let Some(e) = &error {
            tracing::info!(event = item.id, url = %without_credentials(&item.url), error = %e, "webhook not delivered");
        }
        // The receiver took one: those backed off while it was away go
        // again soon (after the first back-off, not after up to an hour).
        let backlog_by = (outcome == TryOutcome::Delivered)
            .then(|| now + crate::clock::duration_ms(self.settings.base_backoff));
        self.store
            .webhook_tried(
                item.id,
                now,
                status,
                error.as_deref(),
                duration_ms,
                &outcome,
                backlog_by,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let s = signature("whsec_x", 1_700_000_000, r#"{"a":1}"#);
        assert!(verify("whsec_x", &s, r#"{"a":1}"#, 1_700_000_100));
        assert!(!verify("whsec_x", &s, r#"{"a":2}"#, 1_700_000_100));
        assert!(!verify("whsec_y", &s, r#"{"a":1}"#, 1_700_000_100));
        assert!(
            !verify("whsec_x", &s, r#"{"a":1}"#, 1_700_001_000),
            "too old"
        );
        assert!(!verify("whsec_x", "t=1,v1=zz", "", 1));
    }

    #[test]
    fn events_are_checked_and_all_means_every_one() {
        assert_eq!(parse_events("all").map(|e| e.len()), Ok(5));
        assert_eq!(
            parse_events("call.ended, conversion,call.ended"),
            Ok(vec!["call.ended".to_string(), "conversion".to_string()])
        );
        assert!(parse_events("call.ended,call.exploded").is_err());
        assert_eq!(
            events_column(&["a".into(), "b".into()]),
            ",a,b,".to_string()
        );
    }

    #[test]
    fn urls_must_be_http() {
        assert!(check_url("https://crm.example.com/hooks").is_ok());
        assert!(check_url("ftp://crm.example.com/").is_err());
        assert!(check_url("crm.example.com").is_err());
        assert_eq!(
            without_credentials("http://user:pass@crm.example.com/h?a=1"),
            "http://crm.example.com/h?a=1"
        );
        for secret in [
            "http://user:pass@crm.example.com/",
            "https://user@crm.example.com/",
            "https://:pass@crm.example.com/",
        ] {
            assert!(
                matches!(check_url(secret), Err(WebhookError::CredentialsInUrl)),
                "{secret}"
            );
        }
    }

    #[test]
    fn back_off_doubles_to_an_hour() {
        let base = Duration::from_secs(5);
        let d0 = next_delay(base, 0);
        assert!(d0 >= base && d0 <= base.mul_f64(1.2));
        let d3 = next_delay(base, 3);
        assert!(d3 >= Duration::from_secs(40) && d3 <= Duration::from_secs(48));
        assert!(next_delay(base, 30) <= MAX_BACKOFF.mul_f64(1.2));
    }

    #[test]
    fn the_body_is_the_same_on_every_try() {
        let p = r#"{"campaign":"uk","call_id":7}"#;
        let a = body(42, "call.ended", 1_000, p);
        assert_eq!(a, body(42, "call.ended", 1_000, p));
        let v: serde_json::Value = serde_json::from_str(&a).unwrap_or_default();
        assert_eq!(v["id"], "evt_42");
        assert_eq!(v["data"]["call_id"], 7);
        assert_eq!(v["created_at"], "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn an_erased_payload_keeps_the_call_and_drops_the_person() {
        let ctx = CallContext {
            campaign_id: 1,
            campaign: "uk".into(),
            call_id: 7,
            lead_id: Some(3),
            phone: Some("+447700900123".into()),
            attempt_no: 2,
            fields: Some(r#"{"name":"Asha"}"#.into()),
        };
        let p = payload(&ctx, serde_json::json!({ "code": "SALE" }));
        assert!(p.contains("+447700900123") && p.contains("Asha"));
        let e = erased_payload(&p);
        assert!(!e.contains("447700900123") && !e.contains("Asha"), "{e}");
        let erased = CallContext {
            lead_id: None,
            phone: None,
            fields: None,
            ..ctx
        };
        assert_eq!(e, payload(&erased, serde_json::json!({ "code": "SALE" })));
        assert_eq!(
            erased_payload("not json"),
            r#"{"lead":{"fields":null,"id":null,"phone":null}}"#
        );
    }
}
