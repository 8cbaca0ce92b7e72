//! Reading a consumer's messages in batches: librdkafka's `rd_kafka_consume_batch_queue`, the
//! call behind confluent-kafka-python's `Consumer.consume(num_messages)` and librdkafka's own
//! `rdkafka_performance -B`.
//!
//! Why not rust-rdkafka's `BaseConsumer::poll`: it hands out one message per call, and each
//! call reads the clock, pops one event, allocates an `Arc` for it and destroys the event when
//! the message drops. At 100 B records that per-message path was most of the consuming
//! client's CPU, and on a 2-core machine the client's CPU is what the broker's consume figure
//! was then limited by (BENCHMARKS.md, "Thorstream vs Apache Kafka"): the tool, not the broker,
//! was being measured. A batch call pops up to `capacity` messages under one queue lock.
//!
//! Invariant: every message pointer a batch call returns is destroyed exactly once, before the
//! next call (`Batch` owns them until then), and the queue handle is destroyed before the
//! consumer it came from (field order of `BatchConsumer`).

use std::ffi::CStr;
use std::time::Duration;

use anyhow::{Result, bail};
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// One consumer read through its librdkafka consumer queue in batches.
pub struct BatchConsumer {
    // Dropped first: the queue handle refers to the client below.
    queue: Queue,
    _consumer: BaseConsumer,
    slots: Vec<*mut rd::rd_kafka_message_t>,
    filled: usize,
}

/// The consumer queue handle (`rd_kafka_queue_get_consumer`), owned.
struct Queue(*mut rd::rd_kafka_queue_t);

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_get_consumer, is non-null (checked at
        // construction) and is destroyed only here, once.
        unsafe { rd::rd_kafka_queue_destroy(self.0) }
    }
}

impl BatchConsumer {
    /// Takes over an assigned consumer; reads at most `capacity` messages per batch.
    pub fn new(consumer: BaseConsumer, capacity: usize) -> Result<Self> {
        // SAFETY: the client pointer is valid while `consumer` lives, and it lives in the
        // returned value, which drops the queue first.
        let q = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        if q.is_null() {
            bail!("librdkafka has no consumer queue for this client");
        }
        Ok(BatchConsumer {
            queue: Queue(q),
            _consumer: consumer,
            slots: vec![std::ptr::null_mut(); capacity.max(1)],
            filled: 0,
        })
    }

    /// Waits up to `timeout` for messages; returns the payload lengths of the batch (empty if
    /// none arrived), or the first error a message carries.
    pub fn next_batch(&mut self, timeout: Duration, lens: &mut Vec<usize>) -> Result<()> {
        self.release();
        lens.clear();
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `slots` has room for `slots.len()` pointers; librdkafka writes at most that
        // many and returns how many it wrote (or -1 on error).
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.0,
                timeout_ms,
                self.slots.as_mut_ptr(),
                self.slots.len(),
            )
        };
        if n < 0 {
            bail!("rd_kafka_consume_batch_queue failed");
        }
        self.filled = (n as usize).min(self.slots.len());
        for &m in &self.slots[..self.filled] {
            // SAFETY: each of the first `filled` slots holds a valid message owned by us
            // until `release` destroys it.
            let msg = unsafe { &*m };
            if msg.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // SAFETY: rd_kafka_err2str returns a static, NUL-terminated string.
                let text = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(msg.err)) };
                bail!("consume failed: {}", text.to_string_lossy());
            }
            lens.push(msg.len);
        }
        Ok(())
    }

    /// Destroys the messages of the last batch.
    fn release(&mut self) {
        for &m in &self.slots[..self.filled] {
            // SAFETY: each of the first `filled` slots holds a message returned by the last
            // batch call and not yet destroyed; `filled` is reset right after.
            unsafe { rd::rd_kafka_message_destroy(m) }
        }
        self.filled = 0;
    }
}

impl Drop for BatchConsumer {
    fn drop(&mut self) {
        self.release();
    }
}
