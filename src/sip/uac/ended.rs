//! Ended calls while they linger.
//!
//! An ended call is kept for 64*T1 to answer the far end's
//! retransmissions: a 2xx whose ACK was lost gets the ACK again (RFC 3261
//! 13.2.2.4), a final non-2xx its ACK (timer D, 17.1.1.3), a request we
//! answered the same reply (timer J, 17.2.2). Once nothing of the call's
//! own is in flight (its BYE, CANCEL and other transactions done), all it
//! needs for that is the messages it already built and the identifiers
//! that match them: an [`Ended`], a few hundred bytes where the whole
//! [`Call`] took a few thousand. At 2,000 calls a second that is what
//! keeps memory following the calls in flight, not the calls placed.
//!
//! A new answer on an ended call (another fork, or one after we gave up)
//! brings the call back whole ([`Ended::revive`]) so that the same code as
//! before ACKs it and hangs it up, with retransmissions and a digest
//! retry of its BYE.

use super::*;

/// The text fields of an [`Ended`], in the order [`Text`] keeps them.
#[derive(Clone, Copy)]
enum Field {
    CallId,
    LocalTag,
    RemoteTag,
    /// Every branch an INVITE of the call went with, space-separated.
    Branches,
    /// Our finished BYE's branch (empty: none).
    ByeBranch,
    From,
    To,
    RequestUri,
    FromUser,
}

const FIELDS: usize = 9;

/// An ended call's text in one allocation, each field a range of it: a
/// record lingers 64*T1 at 2,000 calls a second, and one allocation in
/// place of ten is a third of its memory.
struct Text {
    all: Box<str>,
    ends: [u32; FIELDS],
}

impl Text {
    fn new(parts: [&str; FIELDS]) -> Text {
        let mut all = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; FIELDS];
        for (end, part) in ends.iter_mut().zip(parts) {
            all.push_str(part);
            *end = u32::try_from(all.len()).unwrap_or(u32::MAX);
        }
        Text {
            all: all.into_boxed_str(),
            ends,
        }
    }

    fn get(&self, f: Field) -> &str {
        let i = f as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.all
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }
}

/// An ended, quiescent call (see the module's documentation).
pub(super) struct Ended {
    pub(super) id: CallId,
    /// Call-ID, tags, branches, and what bringing the call back takes.
    text: Text,
    has_remote_tag: bool,
    invite_cseq: u32,
    /// Our last CSeq number.
    cseq: u32,
    /// The 2xx's ACK and where it went (the dialog's next hop).
    ack_2xx: Option<(Option<SocketAddr>, Box<[u8]>)>,
    /// The final non-2xx's ACK (its code, the CSeq of the INVITE it
    /// acknowledges), sent to the INVITE's destination.
    ack_final: Option<(u16, u32, Box<[u8]>)>,
    /// The INVITE's destination.
    invite_dest: Option<SocketAddr>,
    /// Other answers already ACKed and hung up.
    forks: Box<[Fork]>,
    /// The peer's last request in the dialog and our reply to it.
    remote_cseq: Option<u32>,
    last_reply: Option<Box<(u32, Method, Vec<u8>)>>,
    /// Our BYE's CSeq, when it was sent (and is done).
    bye_cseq: Option<u32>,
    credentials: Option<Box<Credentials>>,
    /// Digest nonce counts so far (a challenged fork BYE goes on from them).
    nonce_counts: NonceCounts,
    pub(super) linger_until: Instant,
}

impl Ended {
    /// The lingering record of `call`, when it is over and nothing of its
    /// own is in flight; else the call back.
    pub(super) fn from_call(call: Box<Call>) -> Result<Ended, Box<Call>> {
        let quiescent = call.state == State::Done
            && !call.resumed
            // The last INVITE's final response was ACKed (one that ended
            // on a timer stays whole: a late final needs its INVITE).
            && (call.ack_2xx.is_some()
                || (call.ack_final.is_some() && call.ack_final_cseq == call.invite_cseq))
            && call.bye.as_ref().is_none_or(|b| b.done)
            && call.cancel.as_ref().is_none_or(|c| c.done)
            // A refresh re-INVITE's ACK answers its retransmitted 2xx.
            && call.others.iter().all(|t| t.done && t.ack.is_none())
            && call.kept_finals.is_empty();
        let Some(linger_until) = call.linger_until.filter(|_| quiescent) else {
            return Err(call);
        };
        let mut c = *call;
        let branches = c.invite_branches.join(" ");
        let text = Text::new([
            &c.call_id,
            &c.local_tag,
            c.remote_tag.as_deref().unwrap_or_default(),
            &branches,
            c.bye.as_ref().map_or("", |b| b.branch.as_str()),
            &c.from,
            &c.to,
            &c.invite.uri,
            &c.params.from_user,
        ]);
        Ok(Ended {
            id: c.id,
            text,
            has_remote_tag: c.remote_tag.is_some(),
            invite_cseq: c.invite_cseq,
            cseq: c.cseq,
            // Where the 2xx's ACK went: the dialog's next hop.
            ack_2xx: c.ack_2xx.take().map(|a| (c.dest(), shrunk(a))),
            ack_final: c.ack_final.take().map(|a| {
                (
                    c.summary.final_code.unwrap_or_default(),
                    c.ack_final_cseq,
                    shrunk(a),
                )
            }),
            invite_dest: c.invite_dest(),
            forks: std::mem::take(&mut c.forks)
                .into_iter()
                .map(|f| Fork {
                    ack: shrunk(f.ack).into_vec(),
                    ..f
                })
                .collect(),
            remote_cseq: c.remote_cseq,
            last_reply: c
                .last_reply
                .take()
                .map(|(n, m, b)| Box::new((n, m, shrunk(b).into_vec()))),
            bye_cseq: c.bye.as_ref().map(|b| b.cseq),
            credentials: c.params.credentials.take().map(Box::new),
            nonce_counts: std::mem::take(&mut c.nonce_counts),
            linger_until,
        })
    }

    /// The call's Call-ID.
    pub(super) fn call_id(&self) -> &str {
        self.text.get(Field::CallId)
    }

    fn remote_tag(&self) -> Option<&str> {
        self.has_remote_tag.then(|| self.text.get(Field::RemoteTag))
    }

    /// A response for the call. `Err(())`: it is a new answer, which takes
    /// the whole call back ([`Ended::revive`]).
    pub(super) fn on_response(&self, r: &Response, out: &mut Out<'_>) -> Result<(), ()> {
        let Ok((n, method)) = message::cseq(&r.headers) else {
            return Ok(());
        };
        let branch = message::top_branch(&r.headers).unwrap_or_default();
        match method {
            Method::Invite
                if self
                    .text
                    .get(Field::Branches)
                    .split(' ')
                    .any(|b| b == branch) =>
            {
                if r.code < 200 {
                    out.stats.retransmissions += 1;
                    return Ok(());
                }
                if r.code >= 300 {
                    // The non-2xx's ACK again, to the INVITE it answered
                    // (a challenge to an earlier INVITE whose ACK was
                    // replaced gets none: its transaction times out).
                    out.stats.retransmissions += 1;
                    if let Some((_, cseq, ack)) = &self.ack_final
                        && *cseq == n
                    {
                        out.send(self.invite_dest, ack.to_vec());
                    }
                    return Ok(());
                }
                let tag = r.headers.get("To").and_then(message::tag_of);
                if let Some((dest, ack)) = &self.ack_2xx
                    && tag == self.remote_tag()
                {
                    out.stats.retransmissions += 1;
                    out.send(*dest, ack.to_vec());
                    return Ok(());
                }
                if let Some(f) = self.forks.iter().find(|f| f.tag.as_deref() == tag) {
                    out.stats.retransmissions += 1;
                    out.send(f.dest, f.ack.clone());
                    return Ok(());
                }
                Err(())
            }
            Method::Bye
                if self.bye_cseq == Some(n) && self.text.get(Field::ByeBranch) == branch =>
            {
                out.stats.retransmissions += 1;
                Ok(())
            }
            _ => {
                out.stats.stray += 1;
                tracing::debug!(call_id = %self.call_id(), code = r.code, "response matching no transaction dropped");
                Ok(())
            }
        }
    }

    /// A request for the call: the same reply to a retransmission, 481 or
    /// 501 to anything new (as the ended call itself answers).
    pub(super) fn on_request(&self, req: &Request, out: &mut Out<'_>) {
        let n = message::cseq(&req.headers).map_or(0, |(n, _)| n);
        let (in_dialog, fork) = dialog_of(
            req,
            self.text.get(Field::LocalTag),
            self.remote_tag().filter(|_| self.ack_2xx.is_some()),
            &self.forks,
        );
        let reply = match req.method {
            Method::Ack => return,
            Method::Options => super::options_reply(req),
            Method::Bye if !in_dialog && fork => Response::to(req, 200, "OK", None),
            _ if !in_dialog => {
                out.stats.stray += 1;
                tracing::debug!(call_id = %self.call_id(), method = %req.method, "request outside the dialog refused");
                Response::to(req, 481, "Call/Transaction Does Not Exist", None)
            }
            _ => {
                if answered_as_old(self.remote_cseq, self.last_reply.as_deref(), req, n, out) {
                    return;
                }
                match req.method {
                    Method::Bye | Method::Invite | Method::Update => {
                        Response::to(req, 481, "Call/Transaction Does Not Exist", None)
                    }
                    _ => {
                        let mut r = Response::to(req, 501, "Not Implemented", None);
                        r.headers.push("Allow", ALLOW);
                        r
                    }
                }
            }
        };
        out.reply(reply.encode());
    }

    /// The whole call back, ended, as it was before it became this record
    /// (less what an ended call drops anyway), to take a new answer.
    pub(super) fn revive(self, now: Instant, out: &mut Out<'_>) -> Call {
        let remote_tag = self.remote_tag().map(str::to_string);
        let t = &self.text;
        let rec = LegRecord {
            call_id: t.get(Field::CallId).to_string(),
            request_uri: t.get(Field::RequestUri).to_string(),
            via: String::new(),
            from: t.get(Field::From).to_string(),
            to: t.get(Field::To).to_string(),
            invite_cseq: self.invite_cseq,
            dest: self.invite_dest,
            dialog: None,
        };
        let params = ending_params(
            &rec,
            t.get(Field::FromUser).to_string(),
            self.credentials.map(|c| *c),
        );
        let local_tag = t.get(Field::LocalTag).to_string();
        let mut call = Call::build(self.id, now, params, local_tag, &rec, out);
        call.state = State::Done;
        call.invite_bytes = Vec::new();
        call.invite.body = Vec::new();
        call.invite.headers = Headers::new();
        call.sdp_sent.0 = Vec::new();
        call.invite_branches = t
            .get(Field::Branches)
            .split(' ')
            .map(str::to_string)
            .collect();
        call.cseq = self.cseq;
        call.remote_tag = remote_tag;
        call.dialog_hop = self.ack_2xx.as_ref().and_then(|(d, _)| *d);
        call.ack_2xx = self.ack_2xx.map(|(_, a)| a.into_vec());
        call.summary.final_code = self.ack_final.as_ref().map(|(c, _, _)| *c);
        call.ack_final_cseq = self.ack_final.as_ref().map_or(0, |(_, n, _)| *n);
        call.ack_final = self.ack_final.map(|(_, _, a)| a.into_vec());
        call.nonce_counts = self.nonce_counts;
        call.forks = self.forks.into_vec();
        call.remote_cseq = self.remote_cseq;
        call.last_reply = self.last_reply.map(|b| *b);
        call.linger_until = Some(self.linger_until);
        call
    }
}

/// `bytes` without spare capacity (an encoded message is built in a
/// 512-byte buffer).
fn shrunk(bytes: Vec<u8>) -> Box<[u8]> {
    bytes.into_boxed_slice()
}
