package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java transactional producer (Kafka 4.x clients, transaction protocol v1 as the broker
 * advertises no {@code transaction.version}): commit and abort visibility under both isolation
 * levels, an open transaction holding back the last stable offset, consume-transform-produce with
 * {@code sendOffsetsToTransaction(offsets, consumer.groupMetadata())}, zombie fencing and the
 * broker aborting a transaction past its {@code transaction.timeout.ms}.
 *
 * <p>Absence is checked as a state: a read_committed consumer's {@code endOffsets} is the LSO, and
 * after reading up to it, its position equals it; a committed transaction following an aborted one
 * proves the aborted records were skipped (they come first in the log).
 */
class TransactionsTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Duration T = Duration.ofSeconds(60);

    static KafkaProducer<String, String> txnProducer(String txnId, Map<String, String> extra) {
        Properties p = Clients.producerProps(BROKER.bootstrap());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.putAll(extra);
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    static KafkaConsumer<String, String> consumer(String isolation, String group) {
        Properties p = Clients.consumerProps(BROKER.bootstrap(), group);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return new KafkaConsumer<>(p);
    }

    static void send(KafkaProducer<String, String> p, String topic, List<String> values) throws Exception {
        List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
        for (String v : values) {
            acks.add(p.send(new ProducerRecord<>(topic, 0, null, v)));
        }
        p.flush();
        for (var f : acks) {
            f.get();
        }
    }

    static List<String> values(String prefix, int n) {
        return IntStream.range(0, n).mapToObj(i -> prefix + "-" + i).toList();
    }

    static long endOffset(KafkaConsumer<String, String> c, TopicPartition tp) {
        return c.endOffsets(List.of(tp)).get(tp);
    }

    /**
     * Waits until the consumer's end offset (read_committed: the LSO) is {@code offset}: Kafka
     * answers EndTxn once its decision is logged and writes the markers after, so the LSO (and the
     * group's offsets) move a moment after commitTransaction()/abortTransaction() return.
     */
    static void awaitEnd(KafkaConsumer<String, String> c, TopicPartition tp, long offset) {
        Wait.until("end offset of " + tp + " == " + offset, T, () -> endOffset(c, tp) == offset);
    }

    static void awaitGroupOffset(Admin admin, String group, TopicPartition tp, long offset) {
        Wait.until("committed offset of " + group + " " + tp + " == " + offset, T,
                () -> Long.valueOf(offset).equals(groupOffset(admin, group, tp)));
    }

    /** Reads from {@code from} until the position reaches the consumer's end offset (LSO or HW). */
    static List<String> readToEnd(KafkaConsumer<String, String> c, TopicPartition tp, Long from) {
        if (from != null) {
            c.assign(List.of(tp));
            c.seek(tp, from);
        }
        List<String> out = new ArrayList<>();
        long end = endOffset(c, tp);
        Wait.until("position reaches the end offset " + end + " (read " + out + ")", T, () -> {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                out.add(r.value());
            }
            return c.position(tp) >= end;
        });
        return out;
    }

    @Test
    void commitIsVisibleToBothLevelsAbortOnlyToReadUncommitted() throws Exception {
        String topic = Names.unique("txn-vis");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = txnProducer(Names.unique("tid"), Map.of());
             KafkaConsumer<String, String> rc = consumer("read_committed", null);
             KafkaConsumer<String, String> ru = consumer("read_uncommitted", null)) {
            p.beginTransaction();
            send(p, topic, values("a", 3));   // 0-2, abort marker 3
            p.abortTransaction();
            p.beginTransaction();
            send(p, topic, values("c", 4));   // 4-7, commit marker 8
            p.commitTransaction();
            p.beginTransaction();
            send(p, topic, values("a2", 2));  // 9-10, abort marker 11
            p.abortTransaction();

            awaitEnd(rc, tp, 12);
            assertEquals(12, endOffset(ru, tp));
            assertEquals(values("c", 4), readToEnd(rc, tp, 0L));
            List<String> all = new ArrayList<>(values("a", 3));
            all.addAll(values("c", 4));
            all.addAll(values("a2", 2));
            assertEquals(all, readToEnd(ru, tp, 0L), "markers never come back as records");
        }
    }

    @Test
    void openTransactionHoldsBackTheLastStableOffset() throws Exception {
        String topic = Names.unique("txn-lso");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> plain = Clients.producer(BROKER.bootstrap());
             KafkaProducer<String, String> p = txnProducer(Names.unique("tid"), Map.of());
             KafkaConsumer<String, String> rc = consumer("read_committed", null);
             KafkaConsumer<String, String> ru = consumer("read_uncommitted", null)) {
            send(plain, topic, values("before", 2));   // 0-1
            p.beginTransaction();
            send(p, topic, values("t", 3));            // 2-4
            send(plain, topic, values("after", 2));    // 5-6

            assertEquals(7, endOffset(ru, tp));
            assertEquals(2, endOffset(rc, tp), "LSO = first offset of the open transaction");
            assertEquals(values("before", 2), readToEnd(rc, tp, 0L));
            assertEquals(2, rc.position(tp));
            List<String> all = new ArrayList<>(values("before", 2));
            all.addAll(values("t", 3));
            all.addAll(values("after", 2));
            assertEquals(all, readToEnd(ru, tp, 0L));

            p.commitTransaction();                     // marker 7
            awaitEnd(rc, tp, 8);
            List<String> rest = new ArrayList<>(values("t", 3));
            rest.addAll(values("after", 2));
            assertEquals(rest, readToEnd(rc, tp, null));
        }
    }

    static Long groupOffset(Admin admin, String group, TopicPartition tp) throws Exception {
        OffsetAndMetadata o = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().get(tp);
        return o == null ? null : o.offset();
    }

    @Test
    void sendOffsetsToTransactionCommitsTheGroupsOffsetsWithTheTransactionOnly() throws Exception {
        String in = Names.unique("ctp-in");
        String out = Names.unique("ctp-out");
        String group = Names.unique("g-ctp");
        Clients.createTopic(BROKER.bootstrap(), in, 1);
        Clients.createTopic(BROKER.bootstrap(), out, 1);
        TopicPartition inTp = new TopicPartition(in, 0);
        TopicPartition outTp = new TopicPartition(out, 0);
        try (KafkaProducer<String, String> plain = Clients.producer(BROKER.bootstrap())) {
            send(plain, in, values("in", 10));
        }
        try (KafkaConsumer<String, String> app = consumer("read_committed", group);
             KafkaProducer<String, String> p = txnProducer(Names.unique("tid-ctp"), Map.of());
             KafkaConsumer<String, String> outReader = consumer("read_committed", null);
             Admin admin = Clients.admin(BROKER.bootstrap())) {
            app.subscribe(List.of(in));
            // Round 1: 6 records processed, committed with their offsets.
            List<ConsumerRecord<String, String>> got = pollAtMost(app, 6);
            p.beginTransaction();
            send(p, out, got.stream().map(r -> r.value().toUpperCase()).toList());
            p.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(got.get(5).offset() + 1)),
                    app.groupMetadata());
            assertNull(groupOffset(admin, group, inTp), "pending offsets are not visible");
            p.commitTransaction();
            awaitGroupOffset(admin, group, inTp, 6);
            assertEquals(6L, app.committed(Set.of(inTp)).get(inTp).offset(), "read_committed: require_stable");

            // Round 2: aborted; the group's offset stays; rewind and redo.
            got = pollAtMost(app, 4);
            p.beginTransaction();
            send(p, out, got.stream().map(r -> r.value().toUpperCase()).toList());
            p.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(10)), app.groupMetadata());
            p.abortTransaction();
            awaitEnd(outReader, outTp, 12);            // 6 + marker, 4 aborted + marker
            assertEquals(6L, app.committed(Set.of(inTp)).get(inTp).offset(), "stable again, unchanged");
            assertEquals(6L, groupOffset(admin, group, inTp));
            app.seek(inTp, 6);
            got = pollAtMost(app, 4);
            assertEquals(values("in", 10).subList(6, 10), got.stream().map(ConsumerRecord::value).toList());
            p.beginTransaction();
            send(p, out, got.stream().map(r -> r.value().toUpperCase()).toList());
            p.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(10)), app.groupMetadata());
            p.commitTransaction();
            awaitGroupOffset(admin, group, inTp, 10);
            awaitEnd(outReader, outTp, 17);

            List<String> expected = values("in", 10).stream().map(String::toUpperCase).toList();
            assertEquals(expected, readToEnd(outReader, outTp, 0L), "each output once, nothing of the abort");
        }
    }

    static List<ConsumerRecord<String, String>> pollAtMost(KafkaConsumer<String, String> c, int n) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        Wait.until(n + " records", T, () -> {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                if (out.size() < n) {
                    out.add(r);
                }
            }
            return out.size() >= n;
        });
        // Records polled past n stay unprocessed: rewind to just after the n-th.
        ConsumerRecord<String, String> last = out.get(n - 1);
        c.seek(new TopicPartition(last.topic(), last.partition()), last.offset() + 1);
        return out;
    }

    @Test
    void aSecondInstanceFencesTheZombie() throws Exception {
        String topic = Names.unique("txn-fence");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String txnId = Names.unique("tid-fence");
        try (KafkaProducer<String, String> zombie = txnProducer(txnId, Map.of());
             KafkaConsumer<String, String> rc = consumer("read_committed", null);
             KafkaConsumer<String, String> ru = consumer("read_uncommitted", null)) {
            zombie.beginTransaction();
            send(zombie, topic, values("zombie", 3));
            try (KafkaProducer<String, String> fresh = txnProducer(txnId, Map.of())) {
                assertThrows(ProducerFencedException.class, zombie::commitTransaction);
                fresh.beginTransaction();
                send(fresh, topic, values("new", 2));
                fresh.commitTransaction();
            }
            awaitEnd(rc, tp, 7);
            assertEquals(values("new", 2), readToEnd(rc, tp, 0L));
            List<String> all = new ArrayList<>(values("zombie", 3));
            all.addAll(values("new", 2));
            assertEquals(all, readToEnd(ru, tp, 0L));
            assertEquals(7, endOffset(ru, tp), "3 records, abort marker, 2 records, commit marker");
        }
    }

    @Test
    void theBrokerAbortsATransactionOpenPastItsTimeout() throws Exception {
        String topic = Names.unique("txn-timeout");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String txnId = Names.unique("tid-timeout");
        try (KafkaProducer<String, String> p = txnProducer(txnId, Map.of(
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "3000",
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "3000",
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "2000"));
             KafkaConsumer<String, String> rc = consumer("read_committed", null);
             KafkaConsumer<String, String> ru = consumer("read_uncommitted", null)) {
            p.beginTransaction();
            send(p, topic, values("late", 3));
            assertEquals(0, endOffset(rc, tp));
            // Kafka checks for timed-out transactions every 10 s: allow timeout + interval + slack.
            Wait.until("the broker writes the abort marker (high watermark 4)", Duration.ofSeconds(45),
                    () -> endOffset(ru, tp) == 4);
            Wait.until("the LSO passes it", Duration.ofSeconds(10), () -> endOffset(rc, tp) == 4);
            assertEquals(List.of(), readToEnd(rc, tp, 0L));
            KafkaException e = assertThrows(KafkaException.class, p::commitTransaction);
            assertTrue(e instanceof ProducerFencedException || e instanceof InvalidProducerEpochException
                    || e.getCause() instanceof ProducerFencedException
                    || e.getCause() instanceof InvalidProducerEpochException, e.toString());
        }
        try (KafkaProducer<String, String> q = txnProducer(txnId, Map.of());
             KafkaConsumer<String, String> rc = consumer("read_committed", null)) {
            q.beginTransaction();
            send(q, topic, values("ok", 1));
            q.commitTransaction();
            awaitEnd(rc, tp, 6);
            assertEquals(values("ok", 1), readToEnd(rc, tp, 0L));
        }
    }

    /** Kafka's kafka-transactions tool (TransactionsCommand) on an open, then committed, transaction. */
    @Test
    void kafkaTransactionsListsDescribesAndShowsTheOpenTransactionsStartOffset() throws Exception {
        String topic = Names.unique("txn-tool");
        String id = Names.unique("tool-tid");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        String main = "org.apache.kafka.tools.TransactionsCommand";
        Duration toolT = Duration.ofSeconds(90);
        try (KafkaProducer<String, String> p = txnProducer(id, Map.of())) {
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 1, null, "open")).get();

            String list = ChildJvm.run(toolT, main, "--bootstrap-server", BROKER.bootstrap(), "list")
                    .assertSuccess().stdout();
            assertTrue(list.lines().anyMatch(l -> l.trim().split("\\s+")[0].equals(id) && l.contains("Ongoing")), list);

            String describe = ChildJvm.run(toolT, main, "--bootstrap-server", BROKER.bootstrap(),
                    "describe", "--transactional-id", id).assertSuccess().stdout();
            assertTrue(describe.contains("Ongoing") && describe.contains(topic + "-1"), describe);

            String producers = ChildJvm.run(toolT, main, "--bootstrap-server", BROKER.bootstrap(),
                    "describe-producers", "--topic", topic, "--partition", "1").assertSuccess().stdout();
            List<String> row = producers.lines().filter(l -> !l.isBlank() && !l.startsWith("ProducerId"))
                    .map(String::trim).findFirst().map(l -> List.of(l.split("\\s+"))).orElseThrow();
            assertEquals("0", row.get(row.size() - 1), "CurrentTransactionStartOffset: " + producers);

            p.commitTransaction();
            String after = ChildJvm.run(toolT, main, "--bootstrap-server", BROKER.bootstrap(), "list")
                    .assertSuccess().stdout();
            assertTrue(after.lines().anyMatch(l -> l.trim().split("\\s+")[0].equals(id) && l.contains("CompleteCommit")), after);
        }
    }
}
