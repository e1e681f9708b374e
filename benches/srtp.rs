//! What SRTP costs per packet on the media path: sealing one 20 ms G.711 packet (172 bytes)
//! and opening it again, against the copy a plain forward does anyway. The figure to compare
//! with is a media thread's budget: 1,000 bridged calls move 100,000 packets a second
//! through each direction.
//!
//! `cargo bench --bench srtp` (or with `-- <packets per run>`).

use std::hint::black_box;
use std::time::Instant;

use hotline::media::srtp::{MasterKey, Protector, SrtpKeys, Suite, Unprotector};

const RUNS: usize = 7;

fn packet(seq: u16) -> [u8; 172] {
    let mut p = [0x55u8; 172];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    for suite in Suite::ALL {
        let keys = SrtpKeys {
            suite,
            send: MasterKey([1; 30]),
            receive: MasterKey([1; 30]),
        };
        let (mut copy, mut seal, mut open) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let mut out = [0u8; 2048];
            let start = Instant::now();
            for i in 0..n {
                let p = packet(i as u16);
                out[..p.len()].copy_from_slice(black_box(&p));
                black_box(&out);
            }
            copy.push(start.elapsed().as_nanos() as f64 / n as f64);

            let mut protector = Protector::new(&keys).unwrap();
            let start = Instant::now();
            for i in 0..n {
                let p = packet(i as u16);
                black_box(protector.protect(black_box(&p)));
            }
            seal.push(start.elapsed().as_nanos() as f64 / n as f64);

            // The same packets again under a fresh context, kept (untimed) to be opened.
            let mut protector = Protector::new(&keys).unwrap();
            let mut sealed: Vec<Vec<u8>> = (0..n)
                .map(|i| protector.protect(&packet(i as u16)).unwrap().to_vec())
                .collect();

            let mut unprotector = Unprotector::new(&keys).unwrap();
            let start = Instant::now();
            for s in &mut sealed {
                black_box(unprotector.unprotect(s));
            }
            open.push(start.elapsed().as_nanos() as f64 / n as f64);
        }
        let (copy, seal, open) = (median(copy), median(seal), median(open));
        println!(
            "{}: copy {copy:.0} ns, seal {seal:.0} ns, open {open:.0} ns per packet (median of {RUNS} runs of {n}); seal+open at 100,000 packets/s: {:.1}% of one core",
            suite.name(),
            (seal + open) * 100_000.0 / 1e9 * 100.0
        );
    }
}
