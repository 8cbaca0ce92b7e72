'use strict'
// kafkajs transactions driver for tests/kafka_client_compat/test_transactions.py.
//
//   node kafkajs_txn.js producer '{brokers, transactionalId}'
//     A transactional producer (idempotent, maxInFlightRequests 1, as kafkajs requires). Prints
//     {"ok": true, "cmd": "ready"} once connected, then reads one JSON command per line on stdin
//     and answers each with one line ({"ok": true, "cmd": ...} or {"ok": false, "error", "type"}):
//       {"cmd": "begin"}                                  producer.transaction()
//       {"cmd": "send", topic, values: [string], partition?}   transaction.send (partition 0)
//       {"cmd": "sendOffsets", groupId, topic, partition, offset}   transaction.sendOffsets
//       {"cmd": "commit"} / {"cmd": "abort"}
//     The end of stdin disconnects and exits.
//
//   node kafkajs_txn.js read '<options as JSON>'  (or '-': the JSON on stdin)
//     {brokers, topic, groupId, count, readUncommitted?, timeoutMs?}: a group member subscribed
//     from the beginning reads until `count` records arrived, then prints
//     {"ok": true, "records": [{partition, offset, value}]} (in arrival order) and exits 0; on
//     more than `count` before it stops, or the timeout, {"ok": false, ...} and exit 1.
//
//   node kafkajs_txn.js group-offsets '{brokers, groupId, topic}' -> {offsets: {partition: offset}}
const readline = require('readline')
const { Kafka, logLevel } = require('kafkajs')

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

function makeKafka(opts) {
  return new Kafka({
    clientId: 'compat-kafkajs-txn',
    brokers: opts.brokers,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 8 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, label, log }) => {
      const { message, ...rest } = log
      process.stderr.write(`[kafkajs ${label}] ${namespace}: ${message} ${JSON.stringify(rest)}\n`)
    },
  })
}

async function producerSession(opts) {
  const producer = makeKafka(opts).producer({
    transactionalId: opts.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  })
  await producer.connect()
  let txn = null
  const handle = async c => {
    switch (c.cmd) {
      case 'begin':
        txn = await producer.transaction()
        return {}
      case 'send': {
        const messages = c.values.map(v => ({ value: v, partition: c.partition || 0 }))
        const res = await txn.send({ topic: c.topic, messages })
        return { results: res }
      }
      case 'sendOffsets':
        await txn.sendOffsets({
          consumerGroupId: c.groupId,
          topics: [{ topic: c.topic, partitions: [{ partition: c.partition, offset: String(c.offset) }] }],
        })
        return {}
      case 'commit':
        await txn.commit()
        txn = null
        return {}
      case 'abort':
        await txn.abort()
        txn = null
        return {}
      default:
        throw Object.assign(new Error(`unknown command ${c.cmd}`), { type: 'usage' })
    }
  }
  out({ ok: true, cmd: 'ready' })
  const rl = readline.createInterface({ input: process.stdin })
  // Commands run one at a time, in order.
  let chain = Promise.resolve()
  rl.on('line', line => {
    if (!line.trim()) return
    chain = chain.then(async () => {
      const c = JSON.parse(line)
      try {
        out({ ok: true, cmd: c.cmd, ...(await handle(c)) })
      } catch (e) {
        out({ ok: false, cmd: c.cmd, error: String(e), type: e.type || e.name })
      }
    })
  })
  rl.on('close', () => {
    chain.then(() => producer.disconnect()).finally(() => process.exit(0))
  })
}

async function read(opts) {
  const consumer = makeKafka(opts).consumer({
    groupId: opts.groupId,
    readUncommitted: !!opts.readUncommitted,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 100,
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [opts.topic], fromBeginning: true })
  const records = []
  const result = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out with ${records.length} of ${opts.count} records: ${JSON.stringify(records)}`)),
      opts.timeoutMs || 30000)
    consumer
      .run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          records.push({
            partition,
            offset: Number(message.offset),
            value: message.value == null ? null : message.value.toString(),
          })
          if (records.length > opts.count) {
            clearTimeout(timer)
            reject(new Error(`more than ${opts.count} records: ${JSON.stringify(records)}`))
          } else if (records.length === opts.count) {
            clearTimeout(timer)
            resolve({ records: records.slice() })
          }
        },
      })
      .catch(reject)
  }).finally(() => consumer.disconnect())
  return result
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

async function main() {
  const [command, json] = process.argv.slice(2)
  if (command === 'producer') {
    await producerSession(JSON.parse(json))
    return
  }
  const opts = JSON.parse(json === '-' ? require('fs').readFileSync(0, 'utf8') : json || '{}')
  const fn = { read, 'group-offsets': groupOffsets }[command]
  if (!fn) throw Object.assign(new Error(`unknown command ${command}`), { type: 'usage' })
  out({ ok: true, ...(await fn(opts)) })
  process.exit(0)
}

main().catch(e => {
  out({ ok: false, error: String(e), type: e.type || e.name })
  process.exit(1)
})
