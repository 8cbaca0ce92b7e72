'use strict'
// kafkajs over TLS / SASL for tests/kafka_client_compat/test_security.py. One-shot commands; the
// options come as JSON on stdin; the last stdout line is the result:
//   {"ok": true, ...} (exit 0) or {"ok": false, "error", "type", "name"} (exit 1), where `type` is
//   a KafkaJSProtocolError's Kafka error name (e.g. TOPIC_AUTHORIZATION_FAILED) and `name` the
//   kafkajs error class (e.g. KafkaJSSASLAuthenticationError).
// Common options: {brokers, ssl?: {ca, cert?, key?} (PEM file paths), sasl?: {mechanism
// ('plain' | 'scram-sha-256' | 'scram-sha-512'), username, password}}.
//
//   node kafkajs_security.js roundtrip -   {topic, groupId, values: [string]}: produces the
//       values to partition 0, then a group member subscribed from the beginning reads them,
//       commits and leaves: {records: [string], committed: offset of partition 0}
//   node kafkajs_security.js topics -      {}: admin.listTopics() -> {topics: [name]}
//   node kafkajs_security.js produce -     {topic, values}: one producer.send -> {offsets}
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

function makeKafka(opts) {
  let ssl
  if (opts.ssl) {
    ssl = { ca: [fs.readFileSync(opts.ssl.ca, 'utf8')] }
    if (opts.ssl.cert) {
      ssl.cert = fs.readFileSync(opts.ssl.cert, 'utf8')
      ssl.key = fs.readFileSync(opts.ssl.key, 'utf8')
    }
  }
  return new Kafka({
    clientId: 'compat-kafkajs-security',
    brokers: opts.brokers,
    ssl,
    sasl: opts.sasl || undefined,
    connectionTimeout: 5000,
    authenticationTimeout: 10000,
    requestTimeout: 15000,
    // A refused login or a denied request must surface, not be retried for minutes.
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: opts.retries === undefined ? 3 : opts.retries },
    logLevel: logLevel.NOTHING,
  })
}

async function roundtrip(opts) {
  const kafka = makeKafka(opts)
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    await producer.send({ topic: opts.topic, messages: opts.values.map(v => ({ value: v, partition: 0 })) })
  } finally {
    await producer.disconnect()
  }
  const consumer = kafka.consumer({ groupId: opts.groupId, sessionTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 100 })
  await consumer.connect()
  const records = []
  try {
    await consumer.subscribe({ topics: [opts.topic], fromBeginning: true })
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${records.length} records`)), opts.timeoutMs || 30000)
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ topic, partition, message }) => {
            records.push(message.value.toString())
            if (records.length === opts.values.length) {
              await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
              clearTimeout(timer)
              resolve()
            }
          },
        })
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  const admin = kafka.admin()
  await admin.connect()
  try {
    const got = await admin.fetchOffsets({ groupId: opts.groupId, topics: [opts.topic] })
    const p0 = got[0].partitions.find(p => p.partition === 0)
    return { records, committed: Number(p0.offset) }
  } finally {
    await admin.disconnect()
  }
}

async function topics(opts) {
  const admin = makeKafka(opts).admin()
  await admin.connect()
  try {
    return { topics: await admin.listTopics() }
  } finally {
    await admin.disconnect()
  }
}

async function produce(opts) {
  const producer = makeKafka(opts).producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    const res = await producer.send({ topic: opts.topic, messages: opts.values.map(v => ({ value: v, partition: 0 })) })
    return { offsets: res.map(r => Number(r.baseOffset)) }
  } finally {
    await producer.disconnect()
  }
}

async function main() {
  const [command] = process.argv.slice(2)
  const opts = JSON.parse(fs.readFileSync(0, 'utf8'))
  const fn = { roundtrip, topics, produce }[command]
  if (!fn) throw Object.assign(new Error(`unknown command ${command}`), { type: 'usage' })
  out({ ok: true, ...(await fn(opts)) })
  process.exit(0)
}

main().catch(e => {
  // kafkajs wraps the cause of exhausted retries (KafkaJSNumberOfRetriesExceeded).
  const cause = e.cause || e.originalError || e
  out({ ok: false, error: String(e), type: cause.type || e.type, name: cause.name || e.name })
  process.exit(1)
})
