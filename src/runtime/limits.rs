//! File descriptors: every call needs sockets, the database and reload need files, and a
//! flood of TCP connections must not take them away. At start the soft limit is raised to
//! the hard one, and the descriptors are budgeted: calls first (their RTP sockets), a fixed
//! reserve for the database, reload, the journal and the runtime, and TCP connections get
//! what is left.

/// Sockets one call can hold at once: the caller's RTP and RTCP, an agent's or transfer
/// target's, and a consultation's two more legs (hotline's side of an agent's second call and
/// the colleague's) at worst share the budget of calls that have fewer.
pub const FDS_PER_CALL: u64 = 6;
/// The database pool, the SIP sockets, the journal, reload's directory walks, log files and
/// the runtime's own (epoll, eventfds, timers).
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft RLIMIT_NOFILE to the hard limit; the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return lim.rlim_max;
            }
            tracing::warn!(
                soft = lim.rlim_cur,
                hard = lim.rlim_max,
                "cannot raise the open-file limit"
            );
        }
    }
    lim.rlim_cur
}

/// How the descriptors are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    pub max_calls: u32,
    pub tcp_connections: usize,
}

/// The reserve comes off the top; TCP connections are promised at most a quarter of the
/// rest, calls get their sockets from what remains (fewer calls than configured if the
/// limit is too low for them), and TCP gets whatever the calls leave, up to `tcp_wanted`.
pub fn budget(fd_limit: u64, max_calls: u32, tcp_wanted: usize) -> FdBudget {
    let usable = fd_limit.saturating_sub(RESERVED_FDS);
    let tcp_floor = (tcp_wanted as u64).min(usable / 4);
    let calls = u64::from(max_calls).min((usable - tcp_floor) / FDS_PER_CALL);
    let left = usable - calls * FDS_PER_CALL;
    FdBudget {
        max_calls: calls.max(1) as u32,
        tcp_connections: (left as usize).min(tcp_wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_come_first_then_tcp_gets_what_is_left() {
        // A generous limit: everything as configured.
        assert_eq!(
            budget(1 << 20, 2000, 4096),
            FdBudget {
                max_calls: 2000,
                tcp_connections: 4096
            }
        );
        // 1024: a quarter of what the reserve leaves for TCP, the rest for 96 calls.
        assert_eq!(
            budget(1024, 2000, 4096),
            FdBudget {
                max_calls: 96,
                tcp_connections: 768 - 96 * 6
            }
        );
        // Room for the calls and every connection wanted.
        assert_eq!(
            budget(8192, 500, 4096),
            FdBudget {
                max_calls: 500,
                tcp_connections: 4096
            }
        );
        // Tight: TCP keeps its quarter, the calls get the rest.
        assert_eq!(
            budget(4096, 500, 4096),
            FdBudget {
                max_calls: 480,
                tcp_connections: 960
            }
        );
        // Absurdly low limits still leave one call, never an underflow.
        assert_eq!(budget(10, 2000, 4096).max_calls, 1);
        assert_eq!(budget(10, 2000, 4096).tcp_connections, 0);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_fd_limit();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads into our struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(limit, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
