//! Reading: the sums reports are made of, QA scores, and call records with their child
//! rows for the CLI and the API.

use super::*;

impl CdrStore {
    /// The rows of a grouping query whose first `keys` columns are text (NULL: None) and the
    /// rest integers (NULL: 0), for reports that sum in the database. The SQL must be the
    /// same on both backends and its integers BIGINT (PostgreSQL's SUM of a BIGINT is
    /// NUMERIC: cast it).
    pub async fn aggregate(
        &self,
        sql: &str,
        params: &[i64],
        keys: usize,
    ) -> Result<Vec<(Vec<Option<String>>, Vec<i64>)>, CdrError> {
        let mut query = sqlx::query(sql);
        for p in params {
            query = query.bind(*p);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "sum for a report",
                error,
            })?;
        rows.iter()
            .map(|row| {
                let failed = |error| CdrError::Query {
                    operation: "read a report row",
                    error,
                };
                let mut texts = Vec::with_capacity(keys);
                for i in 0..keys {
                    texts.push(row.try_get::<Option<String>, _>(i).map_err(failed)?);
                }
                let mut numbers = Vec::with_capacity(row.len().saturating_sub(keys));
                for i in keys..row.len() {
                    numbers.push(
                        row.try_get::<Option<i64>, _>(i)
                            .map_err(failed)?
                            .unwrap_or(0),
                    );
                }
                Ok((texts, numbers))
            })
            .collect()
    }

    /// Stores a supervisor's QA score of a call (0-100), replacing their earlier one.
    pub async fn score_call(
        &self,
        call_id: &str,
        scorer: &str,
        score: u8,
        notes: Option<&str>,
        scored_ms: i64,
    ) -> Result<(), CdrError> {
        let failed = |error| CdrError::Query {
            operation: "store a QA score",
            error,
        };
        sqlx::query(
            "INSERT INTO qa_scores (call_id, scorer, score, scored_ms, notes) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_id, scorer) DO UPDATE SET \
             score = excluded.score, scored_ms = excluded.scored_ms, notes = excluded.notes",
        )
        .bind(call_id)
        .bind(scorer)
        .bind(i32::from(score))
        .bind(scored_ms)
        .bind(notes)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    /// Calls grouped by the value of one label (a call type, a VIP tier), most calls first;
    /// calls without the label form the group `None`. The same SQL on both backends.
    pub async fn by_label(&self, name: &str) -> Result<Vec<LabelGroup>, CdrError> {
        let failed = |error| CdrError::Query {
            operation: "group calls by label",
            error,
        };
        // SUM over BIGINT is NUMERIC on PostgreSQL, which the Any driver does not read.
        let totals = "COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN c.agent IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
             CAST(SUM(c.abandoned) AS BIGINT) AS abandoned, \
             CAST(SUM(c.end_ms - c.start_ms) AS BIGINT) AS total_ms";
        let labelled = format!(
            "SELECT l.value AS value, {totals} FROM cdr_labels l JOIN cdr c ON c.id = l.call_id \
             WHERE l.name = $1 GROUP BY l.value ORDER BY calls DESC, value"
        );
        let unlabelled = format!(
            "SELECT {totals} FROM cdr c WHERE NOT EXISTS \
             (SELECT 1 FROM cdr_labels l WHERE l.call_id = c.id AND l.name = $1)"
        );
        let group = |row: &AnyRow, value: Option<String>| -> Result<LabelGroup, CdrError> {
            Ok(LabelGroup {
                value,
                calls: column(row, "calls")?,
                answered: column::<Option<i64>>(row, "answered")?.unwrap_or(0),
                abandoned: column::<Option<i64>>(row, "abandoned")?.unwrap_or(0),
                total_ms: column::<Option<i64>>(row, "total_ms")?.unwrap_or(0),
            })
        };
        let mut out = Vec::new();
        for row in sqlx::query(&labelled)
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?
        {
            let value: String = column(&row, "value")?;
            out.push(group(&row, Some(value))?);
        }
        let row = sqlx::query(&unlabelled)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(failed)?;
        let rest = group(&row, None)?;
        if rest.calls > 0 {
            out.push(rest);
        }
        Ok(out)
    }

    /// The latest calls an agent answered that have recordings, newest first (the QA list).
    pub async fn recorded(&self, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        self.newest(
            "WHERE agent IS NOT NULL AND recordings IS NOT NULL AND recordings <> '[]'",
            n,
            "read recorded calls",
        )
        .await
    }

    /// The `n` most recent calls by start time, newest first.
    pub async fn last(&self, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        self.newest("", n, "read last records").await
    }

    /// The `n` most recent calls that `filter` (a fixed WHERE clause) keeps.
    async fn newest(
        &self,
        filter: &str,
        n: u32,
        operation: &'static str,
    ) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!(
            "SELECT {} FROM cdr {filter} ORDER BY start_ms DESC, id DESC LIMIT $1",
            CDR.columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(n))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query { operation, error })?;
        self.records(&rows).await
    }

    pub async fn count(&self) -> Result<i64, CdrError> {
        self.count_rows("cdr").await
    }

    /// Rows in `cdr_offers`, `cdr_transfers` or `agent_states` (or `cdr`).
    pub async fn count_rows(&self, table: &'static str) -> Result<i64, CdrError> {
        debug_assert!(
            ["cdr", OFFERS.name, TRANSFERS.name, AGENT_STATES.name].contains(&table),
            "{table}"
        );
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "count records",
                error,
            })
    }

    /// Every record for one SIP Call-ID, oldest first. Usually one; more if a UA reused the id.
    pub async fn by_sip_call_id(&self, sip_call_id: &str) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!(
            "SELECT {} FROM cdr WHERE sip_call_id = $1 ORDER BY start_ms, id",
            CDR.columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(sip_call_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read records by SIP Call-ID",
                error,
            })?;
        self.records(&rows).await
    }

    /// A caller's `n` most recent calls, newest first (for the agent's screen pop).
    pub async fn by_caller(&self, caller: &str, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!(
            "SELECT {} FROM cdr WHERE caller = $1 ORDER BY start_ms DESC, id DESC LIMIT $2",
            CDR.columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(caller)
            .bind(i64::from(n))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read a caller's calls",
                error,
            })?;
        self.records(&rows).await
    }

    /// One call by hotline's call id, or else every call with that SIP Call-ID.
    pub async fn find(&self, call: &str) -> Result<Vec<CdrRecord>, CdrError> {
        match self.by_id(call).await? {
            Some(rec) => Ok(vec![rec]),
            None => self.by_sip_call_id(call).await,
        }
    }

    /// One call by hotline's call id.
    pub async fn by_id(&self, id: &str) -> Result<Option<CdrRecord>, CdrError> {
        let sql = format!("SELECT {} FROM cdr WHERE id = $1", CDR.columns.join(", "));
        let rows = sqlx::query(&sql)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read a record by id",
                error,
            })?;
        Ok(self.records(&rows).await?.pop())
    }

    /// Agent-state records in time order, of one agent or of all.
    /// For sticky routing at start: each caller's most recent answering agent among calls
    /// that ended at or after `since_ms`, newest first, at most `limit` callers.
    pub async fn last_agents(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String, i64)>, CdrError> {
        let rows = sqlx::query(
            "SELECT caller, agent, end_ms FROM cdr WHERE agent IS NOT NULL AND end_ms >= $1 \
             ORDER BY end_ms DESC LIMIT $2",
        )
        .bind(since_ms)
        .bind(limit.saturating_mul(4).min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|error| CdrError::Query {
            operation: "read last agents",
            error,
        })?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for row in rows {
            let caller: String = row.try_get("caller").unwrap_or_default();
            let agent: String = row.try_get("agent").unwrap_or_default();
            let end_ms: i64 = row.try_get("end_ms").unwrap_or_default();
            if !caller.is_empty() && !agent.is_empty() && seen.insert(caller.clone()) {
                out.push((caller, agent, end_ms));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub async fn agent_states(
        &self,
        agent: Option<&str>,
    ) -> Result<Vec<AgentStateRecord>, CdrError> {
        let columns = AGENT_STATES.columns.join(", ");
        let query_failed = |error| CdrError::Query {
            operation: "read agent states",
            error,
        };
        let rows = match agent {
            Some(agent) => {
                let sql = format!(
                    "SELECT {columns} FROM agent_states WHERE agent = $1 ORDER BY start_ms, id"
                );
                sqlx::query(&sql)
                    .bind(agent)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_failed)?
            }
            None => {
                let sql =
                    format!("SELECT {columns} FROM agent_states ORDER BY start_ms, agent, id");
                sqlx::query(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_failed)?
            }
        };
        rows.iter().map(agent_state_from_row).collect()
    }

    /// Call rows to records, with their offers and transfers.
    async fn records(&self, rows: &[AnyRow]) -> Result<Vec<CdrRecord>, CdrError> {
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let mut offers: HashMap<String, Vec<OfferRow>> = HashMap::new();
        for row in self.child_rows(&OFFERS, &ids).await? {
            let call_id: String = column(&row, "call_id")?;
            let offer = offer_from_row(&row, &call_id)?;
            offers.entry(call_id).or_default().push(offer);
        }
        let mut transfers: HashMap<String, Vec<TransferRow>> = HashMap::new();
        for row in self.child_rows(&TRANSFERS, &ids).await? {
            let call_id: String = column(&row, "call_id")?;
            let transfer = transfer_from_row(&row, &call_id)?;
            transfers.entry(call_id).or_default().push(transfer);
        }
        let mut labels: HashMap<String, Vec<CallLabel>> = HashMap::new();
        for row in self.child_rows(&LABELS, &ids).await? {
            let call_id: String = column(&row, "call_id")?;
            labels.entry(call_id).or_default().push(CallLabel {
                name: column(&row, "name")?,
                value: column(&row, "value")?,
            });
        }
        for rec in &mut records {
            rec.offers = offers.remove(&rec.id).unwrap_or_default();
            rec.transfers = transfers.remove(&rec.id).unwrap_or_default();
            rec.labels = labels.remove(&rec.id).unwrap_or_default();
        }
        Ok(records)
    }

    /// The child rows of these calls, in (call, sequence) order.
    async fn child_rows(&self, table: &Table, ids: &[&str]) -> Result<Vec<AnyRow>, CdrError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_PARAMS) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE call_id IN ({}) ORDER BY call_id, seq",
                table.columns.join(", "),
                table.name,
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            out.extend(
                query
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|error| CdrError::Query {
                        operation: "read offers, transfers and labels",
                        error,
                    })?,
            );
        }
        Ok(out)
    }
}

pub(super) fn corrupt(id: &str, reason: String) -> CdrError {
    CdrError::CorruptRow {
        id: id.to_owned(),
        reason,
    }
}

pub(super) fn parsed<T: std::str::FromStr>(id: &str, text: String) -> Result<T, CdrError>
where
    T::Err: fmt::Display,
{
    text.parse().map_err(|e: T::Err| corrupt(id, e.to_string()))
}

pub(super) fn record_from_row(row: &AnyRow) -> Result<CdrRecord, CdrError> {
    let id: String = column(row, "id")?;
    let corrupt = |reason: String| corrupt(&id, reason);

    let path_text: String = column(row, "ivr_path")?;
    let ivr_path: Vec<String> = serde_json::from_str(&path_text)
        .map_err(|e| corrupt(format!("ivr_path is not a JSON array of strings: {e}")))?;
    let disposition = parsed(&id, column(row, "disposition")?)?;
    let hangup_by = parsed(&id, column(row, "hangup_by")?)?;
    let code: i64 = column(row, "sip_code")?;
    let sip_code = u16::try_from(code)
        .map_err(|_| corrupt(format!("sip_code {code} is not a SIP status code")))?;
    let abandoned: i64 = column(row, "abandoned")?;

    Ok(CdrRecord {
        sip_call_id: column(row, "sip_call_id")?,
        caller: column(row, "caller")?,
        dialled: column(row, "dialled")?,
        start_ms: column(row, "start_ms")?,
        answer_ms: column(row, "answer_ms")?,
        end_ms: column(row, "end_ms")?,
        flow: column(row, "flow")?,
        ivr_path,
        digits: column(row, "digits")?,
        disposition,
        hangup_by,
        sip_code,
        end_reason: column(row, "end_reason")?,
        language: column(row, "language")?,
        survey: match column::<Option<String>>(row, "survey")? {
            None => Vec::new(),
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| corrupt(format!("survey is not a JSON list of pairs: {e}")))?,
        },
        recordings: match column::<Option<String>>(row, "recordings")? {
            None => Vec::new(),
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| corrupt(format!("recordings is not a JSON array: {e}")))?,
        },
        queue: column(row, "queue")?,
        queue_enter_ms: column(row, "queue_enter_ms")?,
        queue_leave_ms: column(row, "queue_leave_ms")?,
        wait_ms: column(row, "wait_ms")?,
        agent: column(row, "agent")?,
        team: column(row, "team")?,
        talk_ms: column(row, "talk_ms")?,
        hold_ms: column(row, "hold_ms")?,
        wrap_up_ms: column(row, "wrap_up_ms")?,
        abandoned: abandoned != 0,
        flow_version: column(row, "flow_version")?,
        wrap_disposition: column(row, "wrap_disposition")?,
        wrap_notes: column(row, "wrap_notes")?,
        resolved: column::<Option<i64>>(row, "resolved")?.map(|r| r != 0),
        // Filled in by `records`.
        offers: Vec::new(),
        transfers: Vec::new(),
        labels: Vec::new(),
        id,
    })
}

pub(super) fn offer_from_row(row: &AnyRow, call_id: &str) -> Result<OfferRow, CdrError> {
    let sip_code = match column::<Option<i64>>(row, "sip_code")? {
        None => None,
        Some(code) => Some(u16::try_from(code).map_err(|_| {
            corrupt(
                call_id,
                format!("offer sip_code {code} is not a SIP status code"),
            )
        })?),
    };
    Ok(OfferRow {
        agent: column(row, "agent")?,
        queue: column(row, "queue")?,
        ring_start_ms: column(row, "ring_start_ms")?,
        ring_end_ms: column(row, "ring_end_ms")?,
        outcome: parsed(call_id, column(row, "outcome")?)?,
        sip_code,
    })
}

pub(super) fn transfer_from_row(row: &AnyRow, call_id: &str) -> Result<TransferRow, CdrError> {
    Ok(TransferRow {
        at_ms: column(row, "at_ms")?,
        kind: parsed(call_id, column(row, "kind")?)?,
        target: column(row, "target")?,
        target_kind: parsed(call_id, column(row, "target_kind")?)?,
        by: column(row, "transferred_by")?,
        reason: column(row, "reason")?,
    })
}

pub(super) fn agent_state_from_row(row: &AnyRow) -> Result<AgentStateRecord, CdrError> {
    let id: String = column(row, "id")?;
    Ok(AgentStateRecord {
        agent: column(row, "agent")?,
        state: parsed(&id, column(row, "state")?)?,
        reason: column(row, "reason")?,
        start_ms: column(row, "start_ms")?,
        id,
    })
}

pub(super) fn column<'r, T>(row: &'r AnyRow, name: &'static str) -> Result<T, CdrError>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(name).map_err(|error| CdrError::Query {
        operation: "decode a cdr row",
        error,
    })
}
