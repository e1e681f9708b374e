//! Per-source admission of new calls at the front door: a hotline's number is public, and one
//! sender must not be able to take every call slot or keep the server parsing its INVITEs.
//!
//! Each source address has a token bucket of new calls (INVITEs without a To tag that open a
//! transaction). Over its rate a source gets a stateless 503 with Retry-After, a few per
//! second, and after those nothing: its further INVITEs are dropped before they are parsed,
//! so a flood costs a receive and a table lookup per datagram and leaves no transaction
//! behind. Trusted networks (trunks, gateways) are never limited. The table is bounded: idle
//! sources are forgotten, and while it is full of busy ones a new source is refused.
//! Sans-IO: `now` in, verdicts out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One call's worth of tokens: buckets count thousandths of a call.
const CALL: u64 = 1000;
/// A full table is swept for idle sources at most this often.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Addresses exempt from per-source limits: single addresses or CIDR networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNets(Vec<(IpAddr, u8)>);

impl TrustedNets {
    /// `entries` as written in the configuration: "192.0.2.7", "10.0.0.0/8", "2001:db8::/32".
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedNets, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (entry, None),
            };
            let ip = IpAddr::from_str(addr)
                .map_err(|_| format!("{entry:?} is not an IP address or network"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => match p.parse::<u8>() {
                    Ok(p) if p <= max => p,
                    _ => return Err(format!("{entry:?}: the prefix length must be 0 to {max}")),
                },
            };
            // An IPv4-mapped network is the IPv4 network it maps; shorter prefixes reach
            // past the mapping into other IPv6 space, which is not what anyone means.
            let net = match (ip, canonical(ip)) {
                (IpAddr::V6(_), IpAddr::V4(v4)) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                (IpAddr::V6(_), IpAddr::V4(_)) => {
                    return Err(format!(
                        "{entry:?}: an IPv4-mapped network needs a prefix of 96 or more"
                    ));
                }
                _ => (ip, prefix),
            };
            nets.push(net);
        }
        Ok(TrustedNets(nets))
    }

    /// Trust one more address.
    pub fn add(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        self.0.push((ip, prefix));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|&(net, prefix)| match (canonical(net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            })
    }
}

/// Whose bucket a source uses: its IPv4 address, or its IPv6 /64 (one subscriber's network:
/// a single sender can pick any address inside it).
fn source_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// An IPv4 client seen through an IPv6 socket is the same client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// New calls one source may start per second, sustained; 0: no limit.
    pub calls_per_second: u32,
    /// New calls one source may start at once before the rate applies.
    pub burst: u32,
    /// 503s per second a source over its rate is answered with; its other INVITEs are dropped.
    pub refusals_per_second: u32,
    pub trusted: TrustedNets,
    /// Sources remembered at once.
    pub max_sources: usize,
}

impl AdmissionConfig {
    /// No limit at all: for tools and tests that speak SIP as one busy source.
    pub fn unlimited() -> AdmissionConfig {
        AdmissionConfig {
            calls_per_second: 0,
            burst: 0,
            refusals_per_second: 0,
            trusted: TrustedNets::default(),
            max_sources: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Answer 503 with Retry-After, without a transaction.
    Refuse,
    /// Say nothing.
    Drop,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionStats {
    pub refused: u64,
    pub dropped: u64,
}

struct Source {
    /// Thousandths of a call, at `filled`.
    tokens: u64,
    filled: Instant,
    refusals: u32,
    refusals_since: Instant,
}

pub struct Admission {
    cfg: AdmissionConfig,
    sources: HashMap<IpAddr, Source>,
    swept: Option<Instant>,
    stats: AdmissionStats,
}

impl Admission {
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            cfg,
            sources: HashMap::new(),
            swept: None,
            stats: AdmissionStats::default(),
        }
    }

    pub fn stats(&self) -> AdmissionStats {
        self.stats
    }

    fn limited(&self, ip: IpAddr) -> bool {
        self.cfg.calls_per_second > 0 && !self.cfg.trusted.contains(ip)
    }

    fn capacity(&self) -> u64 {
        u64::from(self.cfg.burst.max(1)) * CALL
    }

    fn refill(cfg: &AdmissionConfig, capacity: u64, s: &mut Source, now: Instant) {
        let rate = u64::from(cfg.calls_per_second.max(1));
        let elapsed = now.saturating_duration_since(s.filled);
        // Thousandths of a call per microsecond is rate / 1000.
        let earned = elapsed.as_micros().min(u128::from(u32::MAX)) as u64 * rate / 1000;
        if s.tokens + earned >= capacity {
            s.tokens = capacity;
            s.filled = now;
        } else {
            // Only the time that earned whole thousandths is spent: a source asking more
            // often than that still earns its rate.
            s.tokens += earned;
            s.filled += Duration::from_micros(earned * 1000 / rate);
        }
    }

    /// True when `ip` has spent both its calls and its refusals: an INVITE from it would be
    /// dropped, so it need not even be parsed. (Its re-INVITEs are dropped too while it
    /// floods; its other requests still count.)
    pub fn flooding(&mut self, now: Instant, ip: IpAddr) -> bool {
        if !self.limited(ip) {
            return false;
        }
        let capacity = self.capacity();
        let Some(s) = self.sources.get_mut(&source_key(ip)) else {
            return false;
        };
        Self::refill(&self.cfg, capacity, s, now);
        let flooding = s.tokens < CALL
            && now.saturating_duration_since(s.refusals_since) < Duration::from_secs(1)
            && s.refusals >= self.cfg.refusals_per_second;
        if flooding {
            self.stats.dropped += 1;
        }
        flooding
    }

    /// A new call from `ip` asks to come in.
    pub fn new_call(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if !self.limited(ip) {
            return Verdict::Admit;
        }
        let capacity = self.capacity();
        let key = source_key(ip);
        if !self.sources.contains_key(&key) && !self.make_room(now) {
            // Full of sources still paying off calls (spoofed ones, likely): answering
            // each newcomer would make this a reflector.
            self.stats.dropped += 1;
            return Verdict::Drop;
        }
        let s = self.sources.entry(key).or_insert(Source {
            tokens: capacity,
            filled: now,
            refusals: 0,
            refusals_since: now,
        });
        Self::refill(&self.cfg, capacity, s, now);
        if s.tokens >= CALL {
            s.tokens -= CALL;
            return Verdict::Admit;
        }
        if now.saturating_duration_since(s.refusals_since) >= Duration::from_secs(1) {
            s.refusals_since = now;
            s.refusals = 0;
        }
        if s.refusals < self.cfg.refusals_per_second {
            s.refusals += 1;
            self.stats.refused += 1;
            Verdict::Refuse
        } else {
            self.stats.dropped += 1;
            Verdict::Drop
        }
    }

    /// Room for one more source: forget those whose bucket has filled up again (they are
    /// as good as new). False while the table is full of sources still paying off calls.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.sources.len() < self.cfg.max_sources.max(1) {
            return true;
        }
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return false;
        }
        self.swept = Some(now);
        let capacity = self.capacity();
        let cfg = &self.cfg;
        self.sources.retain(|_, s| {
            Self::refill(cfg, capacity, s, now);
            s.tokens < capacity
        });
        self.sources.len() < self.cfg.max_sources.max(1)
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: u32, burst: u32, refusals: u32) -> AdmissionConfig {
        AdmissionConfig {
            calls_per_second: rate,
            burst,
            refusals_per_second: refusals,
            trusted: TrustedNets::parse(&["10.0.0.0/8", "2001:db8::1"]).unwrap(),
            max_sources: 4,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_then_a_few_503s_then_silence() {
        let mut a = Admission::new(cfg(10, 20, 3));
        let t0 = Instant::now();
        let flooder = ip("192.0.2.1");
        let verdicts: Vec<_> = (0..30).map(|_| a.new_call(t0, flooder)).collect();
        assert!(verdicts[..20].iter().all(|v| *v == Verdict::Admit));
        assert_eq!(verdicts[20..23], [Verdict::Refuse; 3]);
        assert!(verdicts[23..].iter().all(|v| *v == Verdict::Drop));
        assert!(a.flooding(t0, flooder), "nothing left: skip parsing");
        assert!(
            !a.flooding(t0, ip("192.0.2.2")),
            "another source is untouched"
        );
        assert_eq!(a.new_call(t0, ip("192.0.2.2")), Verdict::Admit);
        // A tenth of a second earns one call at 10/s; a second later the refusals return.
        let t1 = t0 + Duration::from_millis(100);
        assert!(!a.flooding(t1, flooder));
        assert_eq!(a.new_call(t1, flooder), Verdict::Admit);
        assert_eq!(a.new_call(t1, flooder), Verdict::Drop);
        let t2 = t0 + Duration::from_millis(1050);
        let later: Vec<_> = (0..14).map(|_| a.new_call(t2, flooder)).collect();
        assert_eq!(later.iter().filter(|v| **v == Verdict::Admit).count(), 9);
        assert_eq!(later.iter().filter(|v| **v == Verdict::Refuse).count(), 3);
        assert_eq!(
            a.stats(),
            AdmissionStats {
                refused: 6,
                dropped: 7 + 1 + 1 + 2
            }
        );
    }

    #[test]
    fn trusted_networks_and_no_rate_are_never_limited() {
        let mut a = Admission::new(cfg(1, 1, 0));
        let t0 = Instant::now();
        for source in ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1"] {
            for _ in 0..100 {
                assert_eq!(a.new_call(t0, ip(source)), Verdict::Admit, "{source}");
            }
            assert!(!a.flooding(t0, ip(source)));
        }
        assert_eq!(a.new_call(t0, ip("2001:db8::2")), Verdict::Admit);
        assert_eq!(a.new_call(t0, ip("2001:db8::2")), Verdict::Drop);
        let mut open = Admission::new(AdmissionConfig::unlimited());
        for _ in 0..1000 {
            assert_eq!(open.new_call(t0, ip("192.0.2.1")), Verdict::Admit);
        }
        assert_eq!(open.remembered(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_sources_that_are_quiet_again() {
        let mut a = Admission::new(cfg(10, 2, 1));
        let t0 = Instant::now();
        for k in 1..=4 {
            assert_eq!(a.new_call(t0, ip(&format!("192.0.2.{k}"))), Verdict::Admit);
        }
        assert_eq!(
            a.new_call(t0, ip("192.0.2.5")),
            Verdict::Drop,
            "full of sources still paying off calls: not even a 503"
        );
        assert_eq!(a.remembered(), 4);
        // A tenth of a second later every bucket is full again: all four are forgotten.
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(a.new_call(t1, ip("192.0.2.5")), Verdict::Admit);
        assert_eq!(a.remembered(), 1);
    }

    #[test]
    fn trusted_entries_are_checked() {
        assert!(TrustedNets::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedNets::parse(&["trunk.example.com"]).is_err());
        let nets = TrustedNets::parse(&["0.0.0.0/0"]).unwrap();
        assert!(nets.contains(ip("203.0.113.9")));
        assert!(!nets.contains(ip("2001:db8::9")));
        let v6 = TrustedNets::parse(&["2001:db8::/32"]).unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn mapped_trusted_entries_mean_their_ipv4_network_only() {
        let nets = TrustedNets::parse(&["::ffff:192.0.2.7", "::ffff:198.51.100.0/120"]).unwrap();
        assert!(nets.contains(ip("192.0.2.7")));
        assert!(nets.contains(ip("198.51.100.200")));
        assert!(!nets.contains(ip("203.0.113.1")), "not every IPv4 address");
        assert!(TrustedNets::parse(&["::ffff:0.0.0.0/64"]).is_err());
        let mut gateway = TrustedNets::default();
        gateway.add(ip("::ffff:192.0.2.9"));
        assert!(gateway.contains(ip("192.0.2.9")));
        assert!(!gateway.contains(ip("192.0.2.10")));
    }

    #[test]
    fn one_ipv6_network_is_one_source() {
        let mut a = Admission::new(cfg(10, 2, 0));
        let t0 = Instant::now();
        assert_eq!(a.new_call(t0, ip("2001:db8:1:1::1")), Verdict::Admit);
        assert_eq!(a.new_call(t0, ip("2001:db8:1:1::2")), Verdict::Admit);
        assert_eq!(
            a.new_call(t0, ip("2001:db8:1:1:ffff::9")),
            Verdict::Drop,
            "another address in the same /64"
        );
        assert_eq!(a.new_call(t0, ip("2001:db8:1:2::1")), Verdict::Admit);
    }

    #[test]
    fn asking_often_does_not_stop_the_refill() {
        // At 1 call/s, polled every 100 us for two seconds: two calls earned, not none.
        let mut a = Admission::new(cfg(1, 1, 0));
        let t0 = Instant::now();
        let source = ip("192.0.2.1");
        assert_eq!(a.new_call(t0, source), Verdict::Admit);
        let mut admitted = 0;
        for k in 1..=20_000u64 {
            let now = t0 + Duration::from_micros(100 * k);
            a.flooding(now, source);
            if a.new_call(now, source) == Verdict::Admit {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 2);
    }
}
