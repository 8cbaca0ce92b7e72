//! Raw limits of the machine, measured with the same process and clock as the broker runs:
//! loopback TCP bandwidth and fdatasync latency of the data directory's disk.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use crate::new_histogram;
use crate::report::Report;

#[derive(Args, Clone)]
pub struct TcpBwArgs {
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes per write() call.
    #[arg(long, default_value_t = 1 << 20)]
    chunk: usize,
}

/// One sender, one receiver over 127.0.0.1 (both on this machine's cores, as broker and
/// client are).
pub fn tcp_bw(a: &TcpBwArgs) -> Result<Report> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let addr = listener.local_addr()?;
    let chunk = a.chunk.max(1);
    let reader = thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; chunk];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut s = TcpStream::connect(addr).context("connect")?;
    s.set_nodelay(true)?;
    let buf = vec![7u8; chunk];
    let started = Instant::now();
    let until = Duration::from_secs_f64(a.seconds);
    while started.elapsed() < until {
        s.write_all(&buf)?;
    }
    drop(s);
    let total = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let elapsed = started.elapsed().as_secs_f64();
    let mut r = Report::new("tcp_bw", "");
    r.num("seconds", elapsed)
        .num("bytes", total as f64)
        .num("mb_per_s", total as f64 / elapsed / 1e6);
    Ok(r)
}

#[derive(Args, Clone)]
pub struct FsyncArgs {
    /// Directory on the disk to measure (the broker's data directory's disk).
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Append this many bytes before each fdatasync.
    #[arg(long, default_value_t = 4096)]
    block: usize,
    #[arg(long, default_value_t = 2000)]
    count: u64,
}

/// Append `block` bytes then `fdatasync`, `count` times: the cost of one group commit.
pub fn fsync_lat(a: &FsyncArgs) -> Result<Report> {
    let path = a.dir.join("loadgen-fsync.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let buf = vec![1u8; a.block];
    let mut hist = new_histogram();
    let started = Instant::now();
    for _ in 0..a.count {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    let mut r = Report::new("fsync_lat", "");
    r.num("block", a.block as f64)
        .num("count", a.count as f64)
        .num("fsyncs_per_s", a.count as f64 / elapsed)
        .latency("fsync", &hist);
    Ok(r)
}
