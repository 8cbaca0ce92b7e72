//! An embedded consumer-group member: it joins the broker's group coordinator directly (no
//! TCP), splits the topic's partitions with any other member of the group — embedded, or a
//! Kafka client connected to the same broker — and follows rebalances.
//!
//! ```text
//! # a lone embedded member: gets every partition
//! cargo run --example group_consumer -- --topic events --group demo
//!
//! # also serve the Kafka protocol, and share the group with kcat / kafka-python:
//! cargo run --example group_consumer -- --serve 127.0.0.1:9092 --topic events --group demo
//! kcat -b 127.0.0.1:9092 -G demo events        # takes half the partitions
//! printf 'a\nb\nc\nd\n' | kcat -b 127.0.0.1:9092 -P -t events
//! ```
//!
//! Flags: `--serve ADDR` (also serve the Kafka protocol on ADDR), `--data-dir DIR` (default
//! ./data/group-consumer), `--topic T` (default events), `--partitions N` (when creating
//! the topic, default 4), `--group G` (default demo), `--session-timeout-ms N` (default
//! 10000). Output, one line each: `serving ADDR`, `assigned P,P,...` when the assignment
//! changes, `record PARTITION OFFSET VALUE` per record. Positions are committed after each
//! poll. Stops cleanly on SIGINT/SIGTERM.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thorstream::server::{self, ServerConfig};
use thorstream::{Broker, BrokerConfig, Consumer, TopicConfig};

struct Args {
    serve: Option<String>,
    data_dir: String,
    topic: String,
    partitions: u32,
    group: String,
    session_timeout_ms: i32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        serve: None,
        data_dir: "./data/group-consumer".into(),
        topic: "events".into(),
        partitions: 4,
        group: "demo".into(),
        session_timeout_ms: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--serve" => a.serve = Some(value),
            "--data-dir" => a.data_dir = value,
            "--topic" => a.topic = value,
            "--partitions" => a.partitions = value.parse().map_err(bad)?,
            "--group" => a.group = value,
            "--session-timeout-ms" => a.session_timeout_ms = value.parse().map_err(bad)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = parse_args()?;
    let broker = Arc::new(Broker::new(BrokerConfig::with_data_dir(&args.data_dir))?);
    if !broker.topics().contains(&args.topic) {
        broker.create_topic(
            &args.topic,
            Some(TopicConfig::with_partitions(args.partitions)),
        )?;
    }
    let server = match &args.serve {
        Some(addr) => {
            let s = server::start(Arc::clone(&broker), ServerConfig::new(addr.parse()?))?;
            println!("serving {}", s.local_addr);
            Some(s)
        }
        None => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;

    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_group_id(&args.group);
    consumer.set_client_id("group-consumer-example");
    consumer.set_session_timeout_ms(args.session_timeout_ms);
    consumer.subscribe(vec![args.topic.clone()])?;
    let mut shown: Option<Vec<i32>> = None;
    let mut out = std::io::stdout();
    while !stop.load(Ordering::Relaxed) {
        let records = consumer.poll(Some(Duration::from_millis(200)))?;
        let assigned: Vec<i32> = consumer
            .assignment()
            .iter()
            .map(|tp| tp.partition)
            .collect();
        if shown.as_ref() != Some(&assigned) {
            let list: Vec<String> = assigned.iter().map(i32::to_string).collect();
            writeln!(out, "assigned {}", list.join(","))?;
            shown = Some(assigned);
        }
        for r in &records {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            writeln!(out, "record {} {} {value}", r.partition, r.offset)?;
        }
        out.flush()?;
        if !records.is_empty()
            && let Err(e) = consumer.commit()
        {
            // The group moved on (a rebalance); the next poll rejoins.
            eprintln!("commit refused: {e}");
        }
    }
    consumer.close();
    if let Some(s) = server {
        s.shutdown();
    }
    broker.close()?;
    println!("stopped cleanly");
    Ok(())
}
