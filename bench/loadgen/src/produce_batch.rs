//! Handing librdkafka records in batches: `rd_kafka_produce_batch`, librdkafka's own call for
//! enqueueing many messages at once (the one `rdkafka_performance` uses with `-B`).
//!
//! Why not one `BaseProducer::send` per record: `rd_kafka_producev` reads the monotonic clock
//! for every message it enqueues (its timeout stamp), takes the topic's lock and parses its
//! variadic arguments per call. At 100 B records the sending thread is what limits the
//! produce cells on 2 cores, and `clock_gettime` alone was 11 % of the tool's CPU in a profile
//! after the tool's own reads were gone (BENCHMARKS.md, "The load tool's own per-record
//! cost"). A batch call reads the clocks once (the CreateTime of a batch's records is that
//! read) and takes the topic lock once; librdkafka still copies each payload
//! (`RD_KAFKA_MSG_F_COPY`) and runs its partitioner per record, as for single sends.
//!
//! Invariant: the topic handle is destroyed before the producer it came from (`BatchSender`
//! borrows the producer), and every message slot passed to librdkafka points at memory that
//! outlives the call (`F_COPY`: librdkafka keeps no pointer into it afterwards).

use std::ffi::{CStr, CString};
use std::marker::PhantomData;

use anyhow::{Context, Result, bail};
use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// At most this many records per `rd_kafka_produce_batch` call.
pub const BATCH_RECORDS_MAX: usize = 64;

/// A producer's topic, fed in batches of one payload repeated.
pub struct BatchSender<'p> {
    topic: TopicHandle,
    slots: Vec<rd::rd_kafka_message_t>,
    _producer: PhantomData<&'p ()>,
}

/// A librdkafka topic handle (`rd_kafka_topic_new`), owned.
struct TopicHandle(*mut rd::rd_kafka_topic_t);

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_topic_new, is non-null (checked at
        // construction), is destroyed only here, once, and its client outlives it (the
        // `'p` borrow of the producer).
        unsafe { rd::rd_kafka_topic_destroy(self.0) }
    }
}

/// What one batch call did.
pub enum Sent {
    /// All records are queued.
    All,
    /// The first `n` are queued; the queue is full for the rest (serve deliveries, retry).
    QueueFull(usize),
}

impl<'p> BatchSender<'p> {
    pub fn new<C: ProducerContext>(producer: &'p BaseProducer<C>, topic: &str) -> Result<Self> {
        let name = CString::new(topic).context("topic name has a NUL byte")?;
        // SAFETY: the client pointer is valid while `producer` lives, which the returned
        // value's borrow guarantees; a null configuration means the topic's defaults, and
        // `name` is a valid NUL-terminated string for the call's duration.
        let rkt = unsafe {
            rd::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if rkt.is_null() {
            bail!("rd_kafka_topic_new({topic}) failed");
        }
        Ok(BatchSender {
            topic: TopicHandle(rkt),
            slots: Vec::with_capacity(BATCH_RECORDS_MAX),
            _producer: PhantomData,
        })
    }

    /// Queues `count` (≤ `BATCH_RECORDS_MAX`) records of `payload`, keyless, to the
    /// partitioner's choice.
    pub fn send(&mut self, payload: &[u8], count: usize) -> Result<Sent> {
        let count = count.min(BATCH_RECORDS_MAX);
        self.slots.clear();
        for _ in 0..count {
            self.slots.push(rd::rd_kafka_message_t {
                err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                rkt: std::ptr::null_mut(),
                partition: rdkafka::producer::PARTITION_UA,
                // librdkafka takes a mutable pointer but, with F_COPY, only reads from it.
                payload: payload.as_ptr() as *mut std::ffi::c_void,
                len: payload.len(),
                key: std::ptr::null_mut(),
                key_len: 0,
                offset: 0,
                // The delivery opaque: `()` for `ArcDeliveries`, which ignores the pointer.
                _private: std::ptr::null_mut(),
            });
        }
        // SAFETY: the topic handle is valid (see `TopicHandle`); `slots` holds `count`
        // initialised messages whose payload pointers stay valid for the call, and F_COPY
        // makes librdkafka copy them before it returns; it writes only each slot's `err`.
        let queued = unsafe {
            rd::rd_kafka_produce_batch(
                self.topic.0,
                rdkafka::producer::PARTITION_UA,
                rd::RD_KAFKA_MSG_F_COPY,
                self.slots.as_mut_ptr(),
                count as i32,
            )
        };
        let queued = usize::try_from(queued).unwrap_or(0);
        if queued == count {
            return Ok(Sent::All);
        }
        // librdkafka stops queueing at the first full queue and marks every later record
        // with the same error, so the queued ones are a prefix; anything else is a failure.
        let first = self
            .slots
            .iter()
            .position(|m| m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .unwrap_or(queued);
        let full = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL;
        if first == queued && self.slots[first..].iter().all(|m| m.err == full) {
            return Ok(Sent::QueueFull(queued));
        }
        let err = self.slots[first].err;
        // SAFETY: rd_kafka_err2str returns a static, NUL-terminated string.
        let text = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(err)) };
        bail!("produce failed: {}", text.to_string_lossy())
    }
}
