//! Writing: call records with their labels, offers and transfers, agent states and agents'
//! time, in batches a retry may replay, each call linked to the same number's calls.

use super::*;

impl CdrStore {
    /// Inserts call records, with their offer and transfer rows, and agent-state records, all
    /// in one transaction. Rows whose key is already stored (a call's id, a child's (call id,
    /// sequence), an agent state's id) are skipped, which is what makes retrying a batch after
    /// an ambiguous failure (a timeout during commit, a crash before the spool was removed)
    /// safe, and fills in child rows a call row may be missing.
    pub async fn write_batch(
        &self,
        calls: &[CdrRecord],
        agent_states: &[AgentStateRecord],
    ) -> Result<(), CdrError> {
        self.write_rows(calls, agent_states, &[]).await
    }

    /// Like [`CdrStore::write_batch`], with agents' time rows too.
    pub async fn write_rows(
        &self,
        calls: &[CdrRecord],
        agent_states: &[AgentStateRecord],
        agent_time: &[AgentTimeRecord],
    ) -> Result<(), CdrError> {
        if calls.is_empty() && agent_states.is_empty() && agent_time.is_empty() {
            return Ok(());
        }
        let failed = |error| CdrError::Query {
            operation: "insert batch",
            error,
        };
        let mut tx = self.pool.begin().await.map_err(failed)?;
        insert_rows(&mut tx, &CDR, calls, bind_call)
            .await
            .map_err(failed)?;
        let offers = children(calls, |rec| &rec.offers);
        insert_rows(&mut tx, &OFFERS, &offers, bind_offer)
            .await
            .map_err(failed)?;
        let transfers = children(calls, |rec| &rec.transfers);
        insert_rows(&mut tx, &TRANSFERS, &transfers, bind_transfer)
            .await
            .map_err(failed)?;
        let labels = children(calls, |rec| &rec.labels);
        insert_rows(&mut tx, &LABELS, &labels, bind_label)
            .await
            .map_err(failed)?;
        for rec in calls
            .iter()
            .filter(|r| crate::cdr::record::has_number(&r.caller))
        {
            link_caller(&mut tx, rec).await.map_err(failed)?;
        }
        insert_rows(&mut tx, &AGENT_STATES, agent_states, bind_agent_state)
            .await
            .map_err(failed)?;
        insert_rows(&mut tx, &AGENT_TIME, agent_time, bind_agent_time)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    /// Call records only; see [`CdrStore::write_batch`].
    pub async fn insert_batch(&self, records: &[CdrRecord]) -> Result<(), CdrError> {
        self.write_batch(records, &[]).await
    }

    /// Agent-state records only; see [`CdrStore::write_batch`].
    pub async fn insert_agent_states(&self, states: &[AgentStateRecord]) -> Result<(), CdrError> {
        self.write_batch(&[], states).await
    }
}

/// Inserts `rows` into `table` in as few statements as the parameter limit allows.
pub(super) async fn insert_rows<R>(
    conn: &mut AnyConnection,
    table: &Table,
    rows: &[R],
    bind: for<'q> fn(AnyQuery<'q>, &'q R) -> AnyQuery<'q>,
) -> Result<(), sqlx::Error> {
    let per_statement = MAX_PARAMS / table.columns.len();
    for chunk in rows.chunks(per_statement) {
        let sql = insert_sql(table, chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `$n` placeholders: PostgreSQL's native form, and SQLite accepts `$NNN` as numbered
/// parameters too (sqlx binds them by number), so one statement text serves both.
pub(super) fn insert_sql(table: &Table, rows: usize) -> String {
    let width = table.columns.len();
    let mut sql = String::with_capacity(100 + rows * width * 5);
    sql.push_str("INSERT INTO ");
    sql.push_str(table.name);
    sql.push_str(" (");
    sql.push_str(&table.columns.join(", "));
    sql.push_str(") VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * width + col + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (");
    sql.push_str(table.key);
    sql.push_str(") DO NOTHING");
    sql
}

/// In the order of `CDR.columns`.
pub(super) fn bind_call<'q>(query: AnyQuery<'q>, rec: &'q CdrRecord) -> AnyQuery<'q> {
    query
        .bind(rec.id.as_str())
        .bind(rec.sip_call_id.as_str())
        .bind(rec.caller.as_str())
        .bind(rec.dialled.as_str())
        .bind(rec.start_ms)
        .bind(rec.answer_ms)
        .bind(rec.end_ms)
        .bind(rec.flow.as_deref())
        .bind(encode_path(&rec.ivr_path))
        .bind(rec.digits.as_str())
        .bind(rec.disposition.as_str())
        .bind(rec.hangup_by.as_str())
        // The Any driver has no unsigned types.
        .bind(i32::from(rec.sip_code))
        .bind(rec.end_reason.as_str())
        .bind(rec.language.as_deref())
        .bind(encode_pairs(&rec.survey))
        .bind(encode_path(&rec.recordings))
        .bind(rec.queue.as_deref())
        .bind(rec.queue_enter_ms)
        .bind(rec.queue_leave_ms)
        .bind(rec.wait_ms)
        .bind(rec.agent.as_deref())
        .bind(rec.team.as_deref())
        .bind(rec.talk_ms)
        .bind(rec.hold_ms)
        .bind(rec.wrap_up_ms)
        .bind(i32::from(rec.abandoned))
        .bind(rec.flow_version.as_deref())
        .bind(rec.wrap_disposition.as_deref())
        .bind(rec.wrap_notes.as_deref())
        .bind(rec.resolved.map(i32::from))
        .bind(answer_ring_ms(rec))
        .bind(i32::try_from(rec.transfers.len()).unwrap_or(i32::MAX))
}

/// Links a stored call with the same number's calls before and after it (`prev_ms`: the
/// latest earlier call that was not blocked; `next_ms`: the earliest later call of any kind),
/// in both directions, so the links are right whatever order calls are stored in. Each
/// statement touches the new row and its neighbours only (the call just before it; the
/// calls after it up to the first that got in), found on the (caller, start_ms) index, and
/// running them again changes nothing.
pub(super) async fn link_caller(
    tx: &mut sqlx::Transaction<'_, Any>,
    rec: &CdrRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cdr SET \
         prev_ms = (SELECT MAX(p.start_ms) FROM cdr p WHERE p.caller = $1 AND p.start_ms < $2 \
                    AND p.disposition <> 'blocked'), \
         next_ms = (SELECT MIN(n.start_ms) FROM cdr n WHERE n.caller = $1 AND n.start_ms > $2) \
         WHERE id = $3",
    )
    .bind(rec.caller.as_str())
    .bind(rec.start_ms)
    .bind(rec.id.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE cdr SET next_ms = $2 WHERE caller = $1 \
         AND start_ms = (SELECT MAX(p.start_ms) FROM cdr p WHERE p.caller = $1 AND p.start_ms < $2) \
         AND (next_ms IS NULL OR next_ms > $2)",
    )
    .bind(rec.caller.as_str())
    .bind(rec.start_ms)
    .execute(&mut **tx)
    .await?;
    if rec.disposition != crate::cdr::record::Disposition::Blocked {
        sqlx::query(
            "UPDATE cdr SET prev_ms = $2 WHERE caller = $1 AND start_ms > $2 \
             AND start_ms <= COALESCE((SELECT MIN(n.start_ms) FROM cdr n WHERE n.caller = $1 \
                 AND n.start_ms > $2 AND n.disposition <> 'blocked'), 9223372036854775807) \
             AND (prev_ms IS NULL OR prev_ms < $2)",
        )
        .bind(rec.caller.as_str())
        .bind(rec.start_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// How long the answering agent's phone rang: the ring time before answer of the indicators.
pub(super) fn answer_ring_ms(rec: &CdrRecord) -> Option<i64> {
    rec.offers
        .iter()
        .rev()
        .find(|o| o.outcome == OfferOutcome::Answered)
        .map(|o| o.ring_end_ms - o.ring_start_ms)
}

pub(super) fn bind_label<'q, 'a>(
    query: AnyQuery<'q>,
    label: &'q Child<'a, CallLabel>,
) -> AnyQuery<'q> {
    query
        .bind(label.call_id)
        .bind(label.seq)
        .bind(label.row.name.as_str())
        .bind(label.row.value.as_str())
}

pub(super) fn bind_offer<'q, 'a>(
    query: AnyQuery<'q>,
    offer: &'q Child<'a, OfferRow>,
) -> AnyQuery<'q> {
    let row = offer.row;
    query
        .bind(offer.call_id)
        .bind(offer.seq)
        .bind(row.agent.as_str())
        .bind(row.queue.as_deref())
        .bind(row.ring_start_ms)
        .bind(row.ring_end_ms)
        .bind(row.outcome.as_str())
        .bind(row.sip_code.map(i32::from))
}

pub(super) fn bind_transfer<'q, 'a>(
    query: AnyQuery<'q>,
    transfer: &'q Child<'a, TransferRow>,
) -> AnyQuery<'q> {
    let row = transfer.row;
    query
        .bind(transfer.call_id)
        .bind(transfer.seq)
        .bind(row.at_ms)
        .bind(row.kind.as_str())
        .bind(row.target.as_str())
        .bind(row.target_kind.as_str())
        .bind(row.by.as_str())
        .bind(row.reason.as_deref())
}

pub(super) fn bind_agent_time<'q>(query: AnyQuery<'q>, time: &'q AgentTimeRecord) -> AnyQuery<'q> {
    query
        .bind(time.id.as_str())
        .bind(time.agent.as_str())
        .bind(time.team.as_deref())
        .bind(time.cell_ms)
        .bind(time.available_ms)
        .bind(time.ringing_ms)
        .bind(time.on_call_ms)
        .bind(time.on_hold_ms)
        .bind(time.wrap_up_ms)
        .bind(time.not_ready_ms)
}

pub(super) fn bind_agent_state<'q>(
    query: AnyQuery<'q>,
    state: &'q AgentStateRecord,
) -> AnyQuery<'q> {
    query
        .bind(state.id.as_str())
        .bind(state.agent.as_str())
        .bind(state.state.as_str())
        .bind(state.reason.as_deref())
        .bind(state.start_ms)
}

/// Built through `Value` rather than `serde_json::to_string`, whose error case cannot happen
/// for a list of strings but would still need handling.
pub(super) fn encode_path(path: &[String]) -> String {
    serde_json::Value::Array(
        path.iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
    .to_string()
}

pub(super) fn encode_pairs(pairs: &[(String, String)]) -> String {
    serde_json::Value::Array(
        pairs
            .iter()
            .map(|(k, v)| {
                serde_json::Value::Array(vec![
                    serde_json::Value::String(k.clone()),
                    serde_json::Value::String(v.clone()),
                ])
            })
            .collect(),
    )
    .to_string()
}
