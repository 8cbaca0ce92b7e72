'use strict'
// kafkajs driver for tests/kafka_client_compat/test_other_clients.py.
//
//   node kafkajs_driver.js <command> '<options as JSON>'     (or '-': the JSON on stdin)
//
// Every command prints JSON, one object per line, on stdout (kafkajs' own log goes to stderr).
// Keys, values and header values travel base64-encoded (null stays null) so bytes compare
// exactly. Options common to all commands: brokers (["host:port"]), clientId.
//
// One-shot commands print a single {"ok": true, ...} line and exit 0, or {"ok": false,
// "error": ..., "type": ...} and exit 1:
//   create-topic  {topic, partitions}          -> {created, partitions: [ids]}
//   produce       {topic, messages: [{key, value, headers: [[k, v], ...], partition?}],
//                  idempotent?, acks?, compression? ("none"|"gzip"), chunk? (records per
//                  send), pauseMs? (between sends), connectAttempts?}
//                                              -> {results: [RecordMetadata, ...]}
//                 (keyed records use Partitioners.JavaCompatiblePartitioner, i.e. murmur2)
//   offsets       {topic}                       -> {offsets: [{partition, low, high}]}
//   group-offsets {groupId, topic}              -> {offsets: {partition: offset}} (-1: none)
//
// member {topic, groupId, sessionTimeout?, heartbeatInterval?, fromBeginning?}: a long-lived
// subscribed group member. It prints events
//   {"event": "joined", memberId, leader, assignment: [partitions]}   after every rebalance
//   {"event": "record", partition, offset, timestamp, key, value, headers}
//   {"event": "committed", offsets: {partition: next offset}}
//   {"event": "stopped"}  /  {"event": "error", error, type}
// and reads commands, one JSON object per line, on stdin:
//   {"cmd": "commit"}  commits the next offset of every consumed, currently assigned partition
//   {"cmd": "stop"}    disconnects (LeaveGroup) and exits; so does the end of stdin.
const readline = require('readline')
const { Kafka, Partitioners, CompressionTypes, logLevel } = require('kafkajs')

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')
const b64 = buf => (buf == null ? null : Buffer.from(buf).toString('base64'))
const unb64 = s => (s == null ? null : Buffer.from(s, 'base64'))

function logCreator() {
  return ({ namespace, label, log }) => {
    const { message, ...rest } = log
    process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(rest)}\n`)
  }
}

function makeKafka(opts) {
  return new Kafka({
    clientId: opts.clientId || 'compat-kafkajs',
    brokers: opts.brokers,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 8 },
    logLevel: logLevel[opts.logLevel || 'WARN'],
    logCreator,
  })
}

// [[k, v], ...] -> kafkajs headers object (a repeated key becomes an array of values)
function encodeHeaders(pairs) {
  const headers = {}
  for (const [k, v] of pairs || []) {
    const value = unb64(v)
    if (!(k in headers)) headers[k] = value
    else if (Array.isArray(headers[k])) headers[k].push(value)
    else headers[k] = [headers[k], value]
  }
  return headers
}

function decodeHeaders(headers) {
  const pairs = []
  for (const [k, v] of Object.entries(headers || {})) {
    for (const value of Array.isArray(v) ? v : [v]) pairs.push([k, b64(value)])
  }
  return pairs
}

async function createTopic(opts) {
  const admin = makeKafka(opts).admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      topics: [{ topic: opts.topic, numPartitions: opts.partitions || 1, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 10000,
    })
    const meta = await admin.fetchTopicMetadata({ topics: [opts.topic] })
    const partitions = meta.topics[0].partitions.map(p => p.partitionId).sort((a, b) => a - b)
    return { created, partitions }
  } finally {
    await admin.disconnect()
  }
}

async function produce(opts) {
  const producer = makeKafka(opts).producer({
    createPartitioner: Partitioners.JavaCompatiblePartitioner,
    idempotent: !!opts.idempotent,
    maxInFlightRequests: opts.idempotent ? 1 : undefined,
    // kafkajs warns that limited retries may break idempotence; the test's timeout bounds it
    retry: opts.idempotent
      ? { initialRetryTime: 100, maxRetryTime: 1000, retries: Number.MAX_SAFE_INTEGER }
      : undefined,
    allowAutoTopicCreation: false,
  })
  // kafkajs does not retry a connect (metadata, InitProducerId) that loses its connection;
  // connectAttempts > 1 retries it here (for a proxy that cuts connections)
  for (let attempt = 1; ; attempt++) {
    try {
      await producer.connect()
      break
    } catch (e) {
      if (attempt >= (opts.connectAttempts || 1)) throw e
      process.stderr.write(`[driver] connect attempt ${attempt} failed: ${e}\n`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
  try {
    const messages = opts.messages.map(m => {
      const msg = { key: unb64(m.key), value: unb64(m.value), headers: encodeHeaders(m.headers) }
      if (m.partition != null) msg.partition = m.partition
      if (m.timestamp != null) msg.timestamp = String(m.timestamp)
      return msg
    })
    const chunk = opts.chunk || messages.length || 1
    const acks = opts.acks == null ? -1 : opts.acks
    // kafkajs itself only ships gzip; the other codecs need plugins
    const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[opts.compression || 'none']
    if (compression === undefined) throw new Error(`unsupported compression ${opts.compression}`)
    const results = []
    for (let i = 0; i < messages.length; i += chunk) {
      const batch = messages.slice(i, i + chunk)
      results.push(...(await producer.send({ topic: opts.topic, acks, compression, messages: batch })))
      if (opts.pauseMs) await new Promise(resolve => setTimeout(resolve, opts.pauseMs))
    }
    return { results }
  } finally {
    await producer.disconnect()
  }
}

async function offsets(opts) {
  const admin = makeKafka(opts).admin()
  await admin.connect()
  try {
    const got = await admin.fetchTopicOffsets(opts.topic)
    return {
      offsets: got
        .map(p => ({ partition: p.partition, low: Number(p.low), high: Number(p.high) }))
        .sort((a, b) => a.partition - b.partition),
    }
  } finally {
    await admin.disconnect()
  }
}

async function groupOffsets(opts) {
  const admin = makeKafka(opts).admin()
  await admin.connect()
  try {
    const got = await admin.fetchOffsets({ groupId: opts.groupId, topics: [opts.topic] })
    const result = {}
    for (const t of got) for (const p of t.partitions) result[p.partition] = Number(p.offset)
    return { offsets: result }
  } finally {
    await admin.disconnect()
  }
}

async function member(opts) {
  const consumer = makeKafka(opts).consumer({
    groupId: opts.groupId,
    sessionTimeout: opts.sessionTimeout || 6000,
    heartbeatInterval: opts.heartbeatInterval || 1000,
    rebalanceTimeout: opts.rebalanceTimeout || 20000,
    maxWaitTimeInMs: 100,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 8 },
  })
  const { GROUP_JOIN, CRASH } = consumer.events
  let assignment = []
  const next = new Map() // partition -> next offset to commit
  let stopping = null

  const stop = () => {
    if (!stopping) {
      stopping = consumer
        .disconnect()
        .then(() => out({ event: 'stopped' }))
        .catch(e => out({ event: 'error', error: String(e), type: e.type || e.name }))
        .finally(() => process.exit(0))
    }
    return stopping
  }

  consumer.on(GROUP_JOIN, ({ payload }) => {
    assignment = (payload.memberAssignment[opts.topic] || []).slice().sort((a, b) => a - b)
    out({ event: 'joined', memberId: payload.memberId, leader: payload.isLeader, assignment })
  })
  consumer.on(CRASH, ({ payload }) => {
    out({ event: 'error', error: String(payload.error), type: payload.error && payload.error.type })
  })

  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async line => {
    if (!line.trim()) return
    const { cmd } = JSON.parse(line)
    try {
      if (cmd === 'commit') {
        const offsets = {}
        const list = []
        for (const p of assignment) {
          if (next.has(p)) {
            offsets[p] = next.get(p)
            list.push({ topic: opts.topic, partition: p, offset: String(next.get(p)) })
          }
        }
        await consumer.commitOffsets(list)
        out({ event: 'committed', offsets })
      } else if (cmd === 'stop') {
        await stop()
      } else {
        out({ event: 'error', error: `unknown command ${cmd}`, type: 'usage' })
      }
    } catch (e) {
      out({ event: 'error', error: String(e), type: e.type || e.name, cmd })
    }
  })
  rl.on('close', () => stop())

  await consumer.connect()
  await consumer.subscribe({ topics: [opts.topic], fromBeginning: opts.fromBeginning !== false })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      next.set(partition, Number(message.offset) + 1)
      out({
        event: 'record',
        partition,
        offset: Number(message.offset),
        timestamp: Number(message.timestamp),
        key: b64(message.key),
        value: b64(message.value),
        headers: decodeHeaders(message.headers),
      })
    },
  })
}

const COMMANDS = {
  'create-topic': createTopic,
  produce,
  offsets,
  'group-offsets': groupOffsets,
}

async function main() {
  const [command, json] = process.argv.slice(2)
  if (command === 'member') {
    await member(JSON.parse(json))
    return
  }
  // one-shot commands: options on the command line, or on stdin when it says '-' (too big
  // for one argument: Linux limits each to 128 KiB)
  const opts = JSON.parse(json === '-' ? require('fs').readFileSync(0, 'utf8') : json || '{}')
  const fn = COMMANDS[command]
  if (!fn) throw Object.assign(new Error(`unknown command ${command}`), { type: 'usage' })
  out({ ok: true, ...(await fn(opts)) })
  process.exit(0)
}

main().catch(e => {
  out({ ok: false, event: 'error', error: String(e), type: e.type || e.name })
  process.exit(1)
})
