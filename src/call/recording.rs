//! Callers' messages on their way from the media thread to disk, and the CDRs that wait for
//! them so a record lists exactly the messages that reached the disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Engine, InteractionId, MediaBackend, MediaCommand};
use crate::cdr::CdrRecord;
use crate::flow::{RecordOutcome, TaskId};
use crate::sip::CallRef;

/// How long a finished call's CDR waits for a recording still on its way (from the media
/// thread, then to disk). Both take milliseconds; this only bounds a lost media thread or a
/// hung file system.
pub(super) const RECORDING_HOLD: Duration = Duration::from_secs(10);

/// A caller's message to write to disk (8 kHz mono 16-bit WAV). The runtime reports the
/// outcome back through `Engine::handle_recording_written`.
#[derive(Debug)]
pub struct RecordingJob {
    pub call: InteractionId,
    pub task: TaskId,
    pub path: PathBuf,
    /// Interleaved when `channels` is 2 (a bridged call: caller left, agent right).
    pub samples: Vec<i16>,
    pub channels: u16,
}

/// Recordings of bridged conversations are numbered from here, apart from the flow's tasks.
const BRIDGE_RECORDING_BASE: u32 = 1 << 30;

/// A recording asked of the media and not yet written or given up. Its path is fixed when it
/// starts, so it is known wherever the call is by the time the samples arrive.
#[derive(Debug)]
pub(super) struct PendingRecording {
    pub task: TaskId,
    pub path: PathBuf,
    /// Set once the samples came with sound: the file is being written.
    pub duration_ms: Option<u64>,
}

/// The CDR of a call that ended while one of its recordings was on the way.
pub(super) struct HeldRecord {
    /// The caller's stream, which the media's `Recorded` names.
    pub dialog: CallRef,
    pub record: CdrRecord,
    pub pending: Vec<PendingRecording>,
    pub until: Instant,
}

impl<M: MediaBackend> Engine<M> {
    pub(super) fn start_recording(
        &mut self,
        now: Instant,
        id: InteractionId,
        task: TaskId,
        max_length: Duration,
        silence: Duration,
    ) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.negotiated.is_none() {
            tracing::info!(sip_call_id = %call.sip_call_id, "no media to record from; taking the record node's failure exit");
            call.interpreter
                .on_record_done(now, task, RecordOutcome::Nothing);
            return;
        }
        call.recordings.push(PendingRecording {
            task,
            path: recording_path(&self.cfg.recordings_dir, wall, &call.record_id, task),
            duration_ms: None,
        });
        self.media.command(MediaCommand::Record {
            call: call.dialog,
            id: task.0,
            max_length,
            silence,
        });
    }

    /// Record the conversation between the caller and the agent leg just bridged (the
    /// queue's `record`): a stereo WAV named in the CDR.
    pub(super) fn record_bridge(&mut self, now: Instant, id: InteractionId) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let n = call
            .recordings
            .iter()
            .filter(|p| p.task.0 >= BRIDGE_RECORDING_BASE)
            .count() as u32
            + call.bridge_recordings;
        call.bridge_recordings += 1;
        let task = TaskId(BRIDGE_RECORDING_BASE + n);
        let path = recording_path(&self.cfg.recordings_dir, wall, &call.record_id, task)
            .with_file_name(format!("{}-agent-{}.wav", call.record_id, n + 1));
        call.recordings.push(PendingRecording {
            task,
            path,
            duration_ms: None,
        });
        self.media.command(MediaCommand::RecordBridge {
            call: call.dialog,
            id: task.0,
        });
    }

    /// The interaction a caller stream's recording belongs to, live or with its CDR held.
    pub(super) fn recording_owner(&self, dialog: CallRef) -> Option<InteractionId> {
        if let Some(super::Party::Caller(id)) = self.dialogs.get(&dialog) {
            return Some(*id);
        }
        self.held
            .iter()
            .find(|(_, h)| h.dialog == dialog)
            .map(|(id, _)| *id)
    }

    /// The media ended a recording: with sound, it goes to disk; without, the flow hears
    /// there is no message. The call may have ended meanwhile; its CDR is held for this.
    pub(super) fn on_recorded(
        &mut self,
        now: Instant,
        id: InteractionId,
        task: TaskId,
        samples: Vec<i16>,
        heard: bool,
    ) {
        let live = self.calls.contains_key(&id);
        let pending = match (self.calls.get_mut(&id), self.held.get_mut(&id)) {
            (Some(call), _) => &mut call.recordings,
            (None, Some(held)) => &mut held.pending,
            (None, None) => return,
        };
        let Some(i) = pending
            .iter()
            .position(|p| p.task == task && p.duration_ms.is_none())
        else {
            return;
        };
        if heard {
            let p = &mut pending[i];
            let channels = if task.0 >= BRIDGE_RECORDING_BASE {
                2
            } else {
                1
            };
            p.duration_ms = Some(
                samples.len() as u64 * 1000
                    / u64::from(crate::media::SAMPLE_RATE)
                    / u64::from(channels),
            );
            self.jobs.push_back(RecordingJob {
                call: id,
                task,
                path: p.path.clone(),
                samples,
                channels,
            });
            return;
        }
        pending.remove(i);
        if live {
            if let Some(call) = self.calls.get_mut(&id) {
                tracing::info!(sip_call_id = %call.sip_call_id, "the caller left no message");
                call.interpreter
                    .on_record_done(now, task, RecordOutcome::Nothing);
            }
            self.run_flow(now, id);
        } else {
            self.release_held(now, id);
        }
    }

    /// The runtime wrote (or failed to write) a `RecordingJob`. A call still running goes on
    /// in its flow; one that ended gets the file into its held CDR. A failure is no message.
    pub fn handle_recording_written(
        &mut self,
        now: Instant,
        id: InteractionId,
        task: TaskId,
        result: Result<PathBuf, String>,
    ) {
        let live = self.calls.contains_key(&id);
        let pending = match (self.calls.get_mut(&id), self.held.get_mut(&id)) {
            (Some(call), _) => Some(&mut call.recordings),
            (None, Some(held)) => Some(&mut held.pending),
            (None, None) => None,
        };
        let done = pending.and_then(|pending| {
            let i = pending
                .iter()
                .position(|p| p.task == task && p.duration_ms.is_some())?;
            Some(pending.remove(i))
        });
        let saved = match result {
            Ok(path) => {
                let duration_ms = done.as_ref().and_then(|p| p.duration_ms).unwrap_or(0);
                tracing::info!(path = %path.display(), duration_ms, live, "recording saved");
                Some((path_text(&path), duration_ms))
            }
            Err(error) => {
                let path = done.as_ref().map(|p| p.path.display().to_string());
                tracing::warn!(path, %error, "recording could not be written; no message");
                None
            }
        };
        if done.is_none() {
            // The CDR went out without waiting any longer (RECORDING_HOLD), listing the path.
            return;
        }
        if let Some(call) = self.calls.get_mut(&id) {
            let outcome = match &saved {
                Some((path, duration_ms)) => RecordOutcome::Saved {
                    path: path.clone(),
                    duration_ms: *duration_ms,
                },
                None => RecordOutcome::Nothing,
            };
            call.interpreter.on_record_done(now, task, outcome);
            if let Some((path, _)) = saved
                && !call.interpreter.recordings().contains(&path)
            {
                call.late_recordings.push(path);
            }
            self.run_flow(now, id);
        } else if let Some(held) = self.held.get_mut(&id) {
            held.record.recordings.extend(saved.map(|(path, _)| path));
            self.release_held(now, id);
        }
    }

    /// Send a held CDR once nothing it waits for is left.
    fn release_held(&mut self, now: Instant, id: InteractionId) {
        if self.held.get(&id).is_some_and(|h| h.pending.is_empty())
            && let Some(held) = self.held.remove(&id)
        {
            self.release_record(now, id, held.record);
        }
    }

    /// Held CDRs whose recordings took too long: out they go. A file still being written is
    /// listed (it is there in all likelihood); one the media never delivered is not.
    pub(super) fn expire_held(&mut self, now: Instant) {
        let expired: Vec<InteractionId> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(c, _)| *c)
            .collect();
        for id in expired {
            let Some(mut held) = self.held.remove(&id) else {
                continue;
            };
            for p in held.pending {
                let path = p.path.display().to_string();
                if p.duration_ms.is_some() {
                    tracing::warn!(%path, "recording still being written; listed in the CDR anyway");
                    held.record.recordings.push(path_text(&p.path));
                } else {
                    tracing::warn!(%path, "recording never came back from the media; not in the CDR");
                }
            }
            self.release_record(now, id, held.record);
        }
        let late: Vec<InteractionId> = self
            .wrap_held
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some((mut record, _)) = self.wrap_held.remove(&id) {
                tracing::warn!(record = %record.id, "wrap-up never ended; the CDR goes out without its length");
                // What the agent recorded so far still goes with it.
                let agents: Vec<_> = self
                    .wrapping
                    .iter()
                    .filter(|(_, w)| w.interaction == id)
                    .map(|(a, _)| *a)
                    .collect();
                for agent in agents {
                    let answering = self.acd.agent_def(agent).map(|d| d.id.clone()) == record.agent;
                    if let Some(w) = self.wrapping.remove(&agent)
                        && (answering || record.agent.is_none())
                    {
                        w.note.merge_into(&mut record);
                    }
                }
                self.records.push_back(record);
            }
        }
    }
}

/// `<dir>/<YYYY-MM-DD>/<call id>-<task>.wav`, the date in UTC: one directory a day keeps
/// directories small, and the call id ties the file to its CDR.
fn recording_path(dir: &Path, wall_ms: i64, call_id: &str, task: TaskId) -> PathBuf {
    let date = jiff::Timestamp::from_millisecond(wall_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    dir.join(date.to_string())
        .join(format!("{call_id}-{}.wav", task.0))
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
