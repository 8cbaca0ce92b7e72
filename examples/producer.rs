//! Embedded producer: opens a broker on a local data directory and sends ten keyed records with
//! headers, printing where each one landed.
//!
//! ```text
//! cargo run --example producer      # then: cargo run --example consumer
//! THORSTREAM_DATA_DIR=/tmp/ts cargo run --example producer
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use thorstream::{Broker, BrokerConfig, Error, Producer, Record, TopicConfig};

const TOPIC: &str = "example-events";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var_os("THORSTREAM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./data/example"));
    let broker = Arc::new(Broker::new(BrokerConfig::with_data_dir(&data_dir))?);
    match broker.create_topic(TOPIC, Some(TopicConfig::with_partitions(3))) {
        Ok(()) => println!("created topic {TOPIC} with 3 partitions"),
        Err(Error::TopicAlreadyExists(_)) => println!("topic {TOPIC} already exists"),
        Err(e) => return Err(e.into()),
    }
    println!("data directory: {}", data_dir.display());

    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..10 {
        let user = format!("user-{}", i % 4);
        let record = Record::with_key(
            user.clone().into_bytes(),
            format!("{{\"event\":\"click\",\"n\":{i}}}").into_bytes(),
        )
        .header("source", "examples/producer.rs")
        .header("seq", i.to_string());
        let (partition, offset) = producer.send(TOPIC, record, None)?;
        println!("sent key={user:<7} -> partition {partition} offset {offset}");
    }
    for d in broker.describe(TOPIC)?.partitions {
        println!(
            "partition {}: log start {} high watermark {}",
            d.partition, d.log_start_offset, d.high_watermark
        );
    }
    // Dropping the last handle closes the broker cleanly (fsync, checkpoints).
    Ok(())
}
