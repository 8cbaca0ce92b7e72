//! Both faces at once: an embedded broker that also serves the Kafka protocol.
//!
//! ```text
//! cargo run --example embedded_server            # serves on 127.0.0.1:9092 until Ctrl-C
//! kcat -b 127.0.0.1:9092 -C -t greetings -o beginning -e   # reads what the example produced
//! printf 'from-kcat\n' | kcat -b 127.0.0.1:9092 -P -t greetings   # the example prints it
//! ```
//! Env: `THORSTREAM_ADDR` (listen address), `THORSTREAM_DATA_DIR` (default ./data/embedded).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thorstream::server::{self, ServerConfig};
use thorstream::{Broker, BrokerConfig, Consumer, Producer, Record, TopicPartition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let addr = std::env::var("THORSTREAM_ADDR").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let dir = std::env::var("THORSTREAM_DATA_DIR").unwrap_or_else(|_| "./data/embedded".into());
    let broker = Arc::new(Broker::new(BrokerConfig::with_data_dir(&dir))?);
    if !broker.topics().contains(&"greetings".to_string()) {
        broker.create_topic("greetings", None)?;
    }
    let server = server::start(Arc::clone(&broker), ServerConfig::new(addr.parse()?))?;
    println!(
        "serving the Kafka protocol on {} (data in {dir})",
        server.local_addr
    );

    let producer = Producer::new(Arc::clone(&broker));
    let (p, off) = producer.send(
        "greetings",
        Record::with_key(
            b"embedded".to_vec(),
            b"hello from the embedded producer".to_vec(),
        ),
        None,
    )?;
    println!("embedded producer wrote greetings-{p} offset {off}");
    println!(
        "try: kcat -b {} -C -t greetings -o beginning -e",
        server.local_addr
    );
    println!(
        "and: printf 'from-kcat\\n' | kcat -b {} -P -t greetings",
        server.local_addr
    );

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.assign(vec![TopicPartition::new("greetings", 0)])?;
    consumer.seek_to_end(&[])?;
    println!("embedded consumer is following greetings-0; Ctrl-C to stop");
    while !stop.load(Ordering::Relaxed) {
        for r in consumer.poll(Some(Duration::from_millis(500)))? {
            println!(
                "embedded consumer read offset {}: {}",
                r.offset,
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
            );
        }
    }
    server.shutdown();
    broker.close()?;
    println!("stopped cleanly");
    Ok(())
}
