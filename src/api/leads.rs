//! Leads over the API, for a CRM: post leads (CSV or JSON) with the same
//! parsing, screening and rejects as `dialler leads import`, idempotent by
//! the caller's `Idempotency-Key`; look a lead up, change its priority,
//! fields or agreed callback; export the outcome of every lead, paged, as
//! JSON or CSV. Supervisor or admin tokens.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authenticated;
use super::{ApiError, ErrorBody};
use crate::leads::{ImportOptions, ImportReport, Screening};
use crate::service::{CampaignHandle, Shared};
use crate::store::{LeadChange, LeadChangeRefused, LeadView, Store};

/// Largest lead post, bytes: batches of thousands of rows.
pub const LEADS_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Most leads one JSON post may carry.
pub const MAX_JSON_LEADS: usize = 100_000;

use super::campaign_handle as handle;

/// Where to put posted leads.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PostQuery {
    /// The lead list (default `default`).
    list: Option<String>,
    /// For CSV: the phone column's name (found by name when absent).
    phone_column: Option<String>,
}

/// One refused row.
#[derive(Serialize, ToSchema)]
#[schema(as = LeadReject)]
struct RejectOut {
    /// CSV: the line (the header is line 1). JSON: the lead's index in
    /// the array, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    /// The field at fault, or `row`.
    field: String,
    /// Why.
    reason: String,
}

/// What a lead post did.
#[derive(Serialize, ToSchema)]
#[schema(as = LeadPostResult)]
struct PostOut {
    campaign: String,
    list: String,
    #[schema(value_type = Object)]
    report: ImportReport,
    rejects: Vec<RejectOut>,
}

/// The leads of a JSON body: `[{...}]` or `{"leads": [{...}]}`; each an
/// object with `phone` and other fields (strings, numbers, booleans or
/// null), turned into the CSV the import reads (each object's keys in
/// name order, new ones added at the end).
#[cfg(test)]
fn json_to_csv(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    Ok(json_to_csv_lines(body)?.0)
}

/// [`json_to_csv`], with the CSV line each lead starts on (a field with a
/// line break spans several lines, quoted), so that a refused row's line
/// gives back the lead's index.
fn json_to_csv_lines(body: &[u8]) -> Result<(Vec<u8>, Vec<u64>), ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let leads = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("leads") {
            Some(serde_json::Value::Array(a)) if o.is_empty() => a,
            _ => {
                return Err(ApiError::bad_request(
                    "give an array of leads, or {\"leads\": [...]}",
                ));
            }
        },
        _ => {
            return Err(ApiError::bad_request(
                "give an array of leads, or {\"leads\": [...]}",
            ));
        }
    };
    if leads.is_empty() {
        return Err(ApiError::bad_request("no leads in the body"));
    }
    if leads.len() > MAX_JSON_LEADS {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_JSON_LEADS} leads a request"),
        ));
    }
    let mut columns: Vec<String> = Vec::new();
    for (i, l) in leads.iter().enumerate() {
        let serde_json::Value::Object(o) = l else {
            return Err(ApiError::bad_request(format!(
                "lead {i}: an object with phone and fields"
            ))
            .with_field(format!("leads[{i}]")));
        };
        for (k, v) in o {
            if k.trim().is_empty() {
                return Err(ApiError::bad_request(format!(
                    "lead {i}: a field with no name; every field needs one"
                ))
                .with_field(format!("leads[{i}]")));
            }
            if v.is_object() || v.is_array() {
                return Err(ApiError::bad_request(format!(
                    "lead {i}: {k} must be a string, number, boolean or null"
                ))
                .with_field(format!("leads[{i}].{k}")));
            }
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    if !columns.iter().any(|c| c == "phone") {
        return Err(ApiError::bad_request("no lead has a phone").with_field("phone"));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| ApiError::internal(e);
    // Lines are counted as the import counts them: by line breaks.
    let mut counted = 0;
    let mut advance = |w: &mut csv::Writer<Vec<u8>>| -> Result<u64, ApiError> {
        w.flush().map_err(ApiError::internal)?;
        let out = w.get_ref();
        let breaks = out[counted..].iter().filter(|b| **b == b'\n').count() as u64;
        counted = out.len();
        Ok(breaks)
    };
    w.write_record(&columns).map_err(io)?;
    let mut line = 1 + advance(&mut w)?;
    let mut starts = Vec::with_capacity(leads.len());
    for l in &leads {
        starts.push(line);
        let row = columns.iter().map(|c| match l.get(c) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
        w.write_record(row).map_err(io)?;
        line += advance(&mut w)?;
    }
    Ok((w.into_inner().map_err(ApiError::internal)?, starts))
}

#[utoipa::path(post, path = "/api/campaigns/{name}/leads", tag = "service",
    summary = "Add leads",
    description = "Leads as CSV (`Content-Type: text/csv`, a header row first) or JSON (`application/json`: an array of objects with `phone` and other fields, or `{\"leads\": [...]}`), parsed, screened and deduplicated exactly as `dialler leads import` does; refused rows come back with their line (CSV) or index (JSON) and reason, and the rest are added. With an `Idempotency-Key` header (1-100 characters), the same request again gets the first answer (header `Idempotent-Replayed: true`) and adds nothing; the key with another body is a 422. Up to 16 MiB. Supervisor or admin; audited.",
    params(("name" = String, Path, description = "Campaign name."), PostQuery),
    request_body(content = String, description = "CSV or JSON leads.", content_type = "text/csv"),
    responses((status = 200, description = "What the import did.", body = PostOut),
        (status = 400, description = "A bad body or list name.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here.", body = ErrorBody),
        (status = 409, description = "A request with this key is still running.", body = ErrorBody),
        (status = 413, description = "Too large.", body = ErrorBody),
        (status = 415, description = "Neither CSV nor JSON.", body = ErrorBody),
        (status = 422, description = "The key was used with another body.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn leads_post(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<PostQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require_supervisor()?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let h = handle(&shared, &name)?;
    let list = q
        .list
        .unwrap_or_else(|| crate::store::DEFAULT_LIST.to_string());
    if !crate::store::valid_list_name(&list) {
        return Err(
            ApiError::bad_request("list: 1-64 letters, digits, '-', '_' or '.'").with_field("list"),
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = content_type.split(';');
    let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    // The media type's charset (RFC 9110 8.3.2): CSV in any encoding the
    // command line reads; JSON only in UTF-8 (RFC 8259 8.1).
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    });
    let unsupported =
        |why: String| ApiError::new(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    let json = match kind.as_str() {
        "application/json" => true,
        "text/csv" | "application/csv" => false,
        _ => return Err(unsupported("send text/csv or application/json".into())),
    };
    let encoding = match charset.as_deref() {
        None => None,
        Some(c) => match crate::leads::encoding_arg(c) {
            Some(e) if json && e != encoding_rs::UTF_8 => {
                return Err(unsupported(format!(
                    "charset {c}: JSON is read as UTF-8 only (RFC 8259)"
                )));
            }
            Some(e) => Some(e),
            None => {
                return Err(unsupported(format!(
                    "charset {c}: not an encoding the dialler reads (any WHATWG label, e.g. utf-8, windows-1252, iso-8859-1)"
                )));
            }
        },
    };
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().unwrap_or("").trim();
            if k.is_empty() || k.len() > 100 {
                return Err(ApiError::bad_request("Idempotency-Key: 1-100 characters")
                    .with_field("Idempotency-Key"));
            }
            Some(k.to_string())
        }
    };
    let store = &shared.store;
    let now = shared.clock.now().ms();
    let hash = {
        let mut d = sha2::Sha256::new();
        d.update(list.as_bytes());
        d.update([0]);
        d.update(q.phone_column.as_deref().unwrap_or("").as_bytes());
        d.update([0, u8::from(json)]);
        d.update(encoding.map_or("", |e| e.name()).as_bytes());
        d.update(&body);
        hex::encode(d.finalize())
    };
    if let Some(k) = &key {
        match store
            .idempotency_begin(h.id, k, &hash, now)
            .await
            .map_err(ApiError::internal)?
        {
            None => {}
            Some((seen, _)) if seen != hash => {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "this Idempotency-Key was used with another request",
                ));
            }
            Some((_, None)) => {
                return Err(ApiError::conflict(
                    "a request with this Idempotency-Key is still running",
                ));
            }
            Some((_, Some(first))) => {
                auth.note("a repeat: the first answer given again");
                let mut r = ([(header::CONTENT_TYPE, "application/json")], first).into_response();
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(r);
            }
        }
    }
    let result = import(
        &shared,
        h,
        &list,
        q.phone_column,
        Format { json, encoding },
        &body,
        now,
    )
    .await;
    match (&key, &result) {
        (Some(k), Ok(out)) => {
            let text = serde_json::to_string(out).map_err(ApiError::internal)?;
            store
                .idempotency_finish(h.id, k, Some(&text))
                .await
                .map_err(ApiError::internal)?;
        }
        (Some(k), Err(_)) => {
            // A refused request may be made again with the same key.
            let _ = store.idempotency_finish(h.id, k, None).await;
        }
        _ => {}
    }
    let out = result?;
    auth.note(format!(
        "list {list}; {} rows, {} added, {} refused",
        out.report.rows, out.report.imported, out.report.rejected
    ));
    Ok(Json(out).into_response())
}

/// What an upload's Content-Type says of its body.
#[derive(Clone, Copy)]
struct Format {
    /// JSON (else CSV).
    json: bool,
    /// A CSV body's charset; UTF-8 when `None`.
    encoding: Option<&'static encoding_rs::Encoding>,
}

async fn import(
    shared: &Shared,
    h: &CampaignHandle,
    list: &str,
    phone_column: Option<String>,
    Format { json, encoding }: Format,
    body: &[u8],
    now: i64,
) -> Result<PostOut, ApiError> {
    let (csv, starts) = if json {
        json_to_csv_lines(body)?
    } else {
        (body.to_vec(), Vec::new())
    };
    let c = &h.campaign;
    let opts = ImportOptions {
        phone_column: if json {
            Some("phone".into())
        } else {
            phone_column
        },
        rejects: None,
        progress: false,
        screening: Some(Screening {
            registries: shared.registries(),
            campaign: c.name.clone(),
            country: c.country(),
            category: c.dnd_category,
        }),
        delimiter: if json { Some(b',') } else { None },
        // JSON becomes UTF-8 CSV; CSV is read in its charset.
        encoding: if json { None } else { encoding },
        list: Some(list.to_string()),
    };
    let size = csv.len() as u64;
    let (report, rejects) = crate::leads::import_reader(
        &shared.store,
        h.id,
        c.country(),
        std::io::Cursor::new(csv),
        size,
        std::path::Path::new("request body"),
        &opts,
        now,
    )
    .await
    .map_err(|e| match e {
        crate::leads::ImportError::Store(e) => ApiError::internal(e),
        // The command line's flag is this route's query parameter.
        other => ApiError::bad_request(
            other
                .to_string()
                .replace("--phone-column", "the phone_column query parameter"),
        ),
    })?;
    Ok(PostOut {
        campaign: c.name.clone(),
        list: list.to_string(),
        report,
        rejects: rejects
            .into_iter()
            .map(|r| RejectOut {
                line: (!json).then_some(r.line),
                // The lead whose row starts on or before the line.
                index: json.then(|| {
                    starts
                        .partition_point(|start| *start <= r.line)
                        .saturating_sub(1) as u64
                }),
                field: r.field,
                reason: r.reason,
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/campaigns/{name}/leads/{id}", tag = "service",
    summary = "A lead",
    description = "The lead with its list, status, attempts, next attempt, last outcome, last disposition and fields. Supervisor or admin.",
    params(("name" = String, Path, description = "Campaign name."), ("id" = i64, Path, description = "Lead id.")),
    responses((status = 200, description = "The lead.", body = LeadView),
        (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign or lead.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn lead_get(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<LeadView>, ApiError> {
    auth.require_supervisor()?;
    let h = handle(&shared, &name)?;
    lead_out(&shared, h.id, id).await
}

/// Lead `id` of campaign `campaign_id` as the API answers it, or a 404.
async fn lead_out(shared: &Shared, campaign_id: i64, id: i64) -> Result<Json<LeadView>, ApiError> {
    shared
        .store
        .lead_view(campaign_id, id)
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such lead in the campaign"))
}

/// A change to a lead.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LeadUpdate)]
struct LeadPatch {
    /// Higher dials first: -1000 to 1000.
    priority: Option<i64>,
    /// The lead's fields, replacing the old (an object of strings,
    /// numbers, booleans or nulls).
    #[schema(value_type = Option<Object>)]
    fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// An agreed callback, ms since the epoch (from now to 90 days
    /// ahead); the lead waits for it (compliance still checks the call).
    callback_at: Option<i64>,
}

#[utoipa::path(patch, path = "/api/campaigns/{name}/leads/{id}", tag = "service",
    summary = "Change a lead",
    description = "Priority, fields (replaced whole) and an agreed callback time; a callback is refused (409) for a lead not waiting to be called (opted out, erased, done with, or claimed by a node for dialling now). The number and zones cannot change: post the lead again. Supervisor or admin; audited.",
    params(("name" = String, Path, description = "Campaign name."), ("id" = i64, Path, description = "Lead id.")),
    request_body = LeadPatch,
    responses((status = 200, description = "The lead afterwards.", body = LeadView),
        (status = 400, description = "A bad body.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign or lead.", body = ErrorBody),
        (status = 409, description = "The lead may not be called back.", body = ErrorBody),
        (status = 422, description = "A field that cannot be changed (the number, the zones).", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn lead_patch(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path((name, id)): Path<(String, i64)>,
    body: Result<Json<LeadPatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LeadView>, ApiError> {
    auth.require_supervisor()?;
    let h = handle(&shared, &name)?;
    let p = super::json_body(body)?;
    if let Some(pr) = p.priority
        && !(-1000..=1000).contains(&pr)
    {
        return Err(ApiError::bad_request("priority: -1000 to 1000").with_field("priority"));
    }
    let now = shared.clock.now().ms();
    if let Some(at) = p.callback_at
        && !(now - 60_000..=now + 90 * 86_400_000).contains(&at)
    {
        return Err(ApiError::bad_request(
            "callback_at: a time (ms since the epoch) from now to 90 days ahead",
        )
        .with_field("callback_at"));
    }
    let fields = match p.fields {
        None => None,
        Some(m) => {
            if let Some((k, _)) = m.iter().find(|(_, v)| v.is_object() || v.is_array()) {
                return Err(ApiError::bad_request(format!(
                    "fields.{k}: a string, number, boolean or null"
                ))
                .with_field(format!("fields.{k}")));
            }
            Some(serde_json::Value::Object(m).to_string())
        }
    };
    if p.priority.is_none() && fields.is_none() && p.callback_at.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give priority, fields or callback_at",
        ));
    }
    let mut said = Vec::new();
    if let Some(pr) = p.priority {
        said.push(format!("priority {pr}"));
    }
    if fields.is_some() {
        said.push("fields".to_string());
    }
    if let Some(at) = p.callback_at {
        said.push(format!("callback {}", crate::webhooks::time(at)));
    }
    auth.note(format!("lead {id}: {}", said.join(", ")));
    let change = LeadChange {
        priority: p.priority,
        fields,
        callback_at: p.callback_at,
    };
    match shared
        .store
        .lead_change(h.id, id, &change)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(()) => {}
        Err(LeadChangeRefused::NotFound) => {
            return Err(ApiError::not_found("no such lead in the campaign"));
        }
        Err(LeadChangeRefused::Status(s)) => {
            return Err(ApiError::conflict(format!(
                "the lead is {s}: only a lead waiting to be called (new or retry) takes a callback"
            )));
        }
    }
    lead_out(&shared, h.id, id).await
}

/// A page of the export.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// Leads after this id (page on with `next_after_id`).
    after_id: Option<i64>,
    /// At most this many, 1-10000 (default 1000).
    limit: Option<i64>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// A page of leads with their outcomes.
#[derive(Serialize, ToSchema)]
#[schema(as = LeadPage)]
struct ExportOut {
    leads: Vec<LeadView>,
    /// Pass as `after_id` for the next page; absent on the last.
    next_after_id: Option<i64>,
}

const CSV_COLUMNS: [&str; 15] = [
    "id",
    "phone",
    "country",
    "timezones",
    "list",
    "status",
    "priority",
    "attempts",
    "next_attempt_at",
    "last_outcome",
    "disposition",
    "conversion",
    "amount_minor",
    "disposition_at",
    "fields",
];

fn export_csv(leads: &[LeadView]) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS).map_err(ApiError::internal)?;
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for l in leads {
        w.write_record([
            l.id.to_string(),
            l.phone.clone(),
            l.country.clone(),
            l.timezones.clone().unwrap_or_default(),
            l.list.clone(),
            l.status.clone(),
            l.priority.to_string(),
            l.attempts.to_string(),
            opt(l.next_attempt_at),
            l.last_outcome.clone().unwrap_or_default(),
            l.disposition.clone().unwrap_or_default(),
            l.conversion.map(|c| c.to_string()).unwrap_or_default(),
            opt(l.amount_minor),
            opt(l.disposition_at),
            l.fields.to_string(),
        ])
        .map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/campaigns/{name}/leads", tag = "service",
    summary = "Export leads with their outcomes",
    description = "Every lead of the campaign by id, paged: status, attempts, last outcome, last disposition (code, conversion, amount), list and fields. JSON (with `next_after_id`) or CSV (`format=csv`; the next page's `after_id` in the `X-Next-After-Id` header). Supervisor or admin.",
    params(("name" = String, Path, description = "Campaign name."), ExportQuery),
    responses((status = 200, description = "A page of leads.", body = ExportOut),
        (status = 400, description = "A bad query.", body = ErrorBody), (status = 401, description = "No valid token.", body = ErrorBody), (status = 403, description = "The token may not do this.", body = ErrorBody),
        (status = 404, description = "No such campaign runs here.", body = ErrorBody)),
    security(("bearerAuth" = [])))]
async fn leads_export(
    auth: Authenticated,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require_supervisor()?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let h = handle(&shared, &name)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1-10000").with_field("limit"));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad_request("format: json or csv").with_field("format")),
    };
    let leads = shared
        .store
        .leads_export(h.id, q.after_id.unwrap_or(0), limit)
        .await
        .map_err(ApiError::internal)?;
    let next_after_id = if leads.len() as i64 == limit {
        leads.last().map(|l| l.id)
    } else {
        None
    };
    if csv {
        let mut r = (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            export_csv(&leads)?,
        )
            .into_response();
        if let Some(n) = next_after_id
            && let Ok(v) = HeaderValue::from_str(&n.to_string())
        {
            r.headers_mut().insert("x-next-after-id", v);
        }
        return Ok(r);
    }
    Ok(Json(ExportOut {
        leads,
        next_after_id,
    })
    .into_response())
}

/// The leads routes, registered with their descriptions; a lead file may
/// be up to [`LEADS_BODY_LIMIT`], one lead's change the API's 16 KiB.
pub(crate) fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    Arc<Shared>: FromRef<S>,
{
    // Each group its own limit: the innermost `DefaultBodyLimit` wins, so
    // a lead file's limit on the whole router would also let a PATCH of
    // one lead carry 16 MiB of fields past the API's 16 KiB.
    OpenApiRouter::new()
        .routes(routes!(leads_post, leads_export))
        .layer(DefaultBodyLimit::max(LEADS_BODY_LIMIT))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(lead_get, lead_patch))
                .layer(DefaultBodyLimit::max(super::agents::BODY_LIMIT)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_leads_become_the_csv_the_import_reads() {
        let csv = json_to_csv(
            br#"[{"phone":"+447700900123","name":"Ann, Jr","n":3},{"phone":"07700 900124","city":null,"vip":true}]"#,
        )
        .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&csv),
            "n,name,phone,city,vip\n3,\"Ann, Jr\",+447700900123,,\n,,07700 900124,,true\n"
        );
        // A field with a line break spans two lines: the next lead starts
        // one line later.
        let (_, starts) =
            json_to_csv_lines(br#"[{"phone":"+447700900123","note":"a\nb"},{"phone":"bad"}]"#)
                .unwrap_or_default();
        assert_eq!(starts, [2, 4]);
        assert!(json_to_csv(br#"{"leads": []}"#).is_err());
        assert!(json_to_csv(br#"[{"name":"x"}]"#).is_err());
        assert!(json_to_csv(br#"[{"phone":"1","x":{"a":1}}]"#).is_err());
        assert!(json_to_csv(br#"[1]"#).is_err());
        assert!(json_to_csv(br#"[{"phone":"1","":"x"}]"#).is_err());
        assert!(json_to_csv(br#"[{"phone":"1"," ":"x"}]"#).is_err());
        assert!(json_to_csv(br#"{"leads": [{"phone":"1"}], "more": 1}"#).is_err());
    }
}
