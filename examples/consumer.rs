//! Embedded consumer: joins group `example-group` on the topic the producer example writes,
//! prints every record it has not consumed yet, commits, and prints the committed offsets.
//!
//! ```text
//! cargo run --example producer && cargo run --example consumer
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thorstream::{Broker, BrokerConfig, Consumer, TopicPartition};

const TOPIC: &str = "example-events";
const GROUP: &str = "example-group";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var_os("THORSTREAM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./data/example"));
    let config = BrokerConfig {
        // Do not silently create the topic: tell the user to run the producer first.
        auto_create_topics: false,
        ..BrokerConfig::with_data_dir(&data_dir)
    };
    let broker = Arc::new(Broker::new(config)?);
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_group_id(GROUP);
    if let Err(e) = consumer.subscribe(vec![TOPIC.to_string()]) {
        eprintln!("cannot subscribe to {TOPIC} ({e}); run `cargo run --example producer` first");
        return Err(e.into());
    }
    for tp in consumer.assignment() {
        println!("{tp}: starting at offset {}", consumer.position(&tp)?);
    }

    let mut total = 0;
    loop {
        let records = consumer.poll(Some(Duration::from_millis(500)))?;
        if records.is_empty() {
            break;
        }
        for r in &records {
            let key = r.key.as_deref().map(String::from_utf8_lossy);
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default()
                    )
                })
                .collect();
            println!(
                "{}-{} offset {} ts {} key={:?} value={:?} headers=[{}]",
                r.topic,
                r.partition,
                r.offset,
                r.timestamp,
                key.unwrap_or_default(),
                value.unwrap_or_default(),
                headers.join(", ")
            );
        }
        total += records.len();
    }
    consumer.commit()?;
    println!("consumed {total} record(s); committed offsets for group {GROUP}:");
    let partitions = broker.partition_count(TOPIC)? as i32;
    for p in 0..partitions {
        let tp = TopicPartition::new(TOPIC, p);
        println!("  {tp}: {:?}", consumer.committed(&tp)?);
    }
    Ok(())
}
