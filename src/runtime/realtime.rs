//! Scheduling for threads that pace media: hotline's media threads, and the load tool's
//! callers and agents, which stand for phones on hardware of their own and so must not pick
//! up jitter from sharing the CPU with the server they measure, and its floor, which stands
//! for the server and is paced as hotline's media threads are.

/// Ask for real-time scheduling: on a busy machine a pacing thread must wake on time even
/// when signalling, the database or other programs want the CPU, or callers hear jitter.
/// Where that is not allowed (no CAP_SYS_NICE), fall back to the best ordinary priority we
/// may have. Also narrows the thread's timer slack to 1 µs (the default is 50 µs).
pub(crate) fn raise_priority() -> Priority {
    // Wake within microseconds of the deadline rather than the default 50 µs slack.
    // SAFETY: prctl with PR_SET_TIMERSLACK only affects this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
    // SAFETY: plain syscalls on the calling thread with a valid, initialised sched_param.
    let real_time = unsafe {
        let param = libc::sched_param { sched_priority: 10 };
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0
    };
    if real_time {
        return Priority::RealTime;
    }
    // SAFETY: setpriority on this thread's id only lowers or raises its nice value.
    let reniced =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) == 0 };
    if reniced {
        Priority::Reniced
    } else {
        Priority::Ordinary
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// SCHED_FIFO 10.
    RealTime,
    /// Not permitted real-time; nice -10 instead.
    Reniced,
    /// Neither was permitted.
    Ordinary,
}
