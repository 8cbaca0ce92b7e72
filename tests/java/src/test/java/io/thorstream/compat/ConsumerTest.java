package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Java consumer: groups (commit, resume, two members, a member killed), assign + seek, offset lookups. */
class ConsumerTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Duration T = Duration.ofSeconds(60);

    static void produce(String bootstrap, String topic, int partition, int from, int to, long baseTimestamp) throws Exception {
        try (KafkaProducer<String, String> producer = Clients.producer(bootstrap)) {
            for (int i = from; i < to; i++) {
                Long ts = baseTimestamp > 0 ? baseTimestamp + i * 1000L : null;
                producer.send(new ProducerRecord<>(topic, partition, ts, "k" + i, "v" + i));
            }
            producer.flush();
        }
    }

    static Properties earliest(String bootstrap, String group) {
        Properties p = Clients.consumerProps(bootstrap, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return p;
    }

    @Test
    void subscribeCommitSyncAndANewConsumerResumesFromTheCommit() throws Exception {
        String topic = Names.unique("resume");
        String group = Names.unique("g-resume");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        produce(BROKER.bootstrap(), topic, 0, 0, 10, 0);
        TopicPartition tp = new TopicPartition(topic, 0);

        Properties props = earliest(BROKER.bootstrap(), group);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 10, T);
            assertEquals("v0", got.get(0).value());
            c.commitSync(Map.of(tp, new OffsetAndMetadata(7, "seven")));
            OffsetAndMetadata committed = c.committed(Set.of(tp)).get(tp);
            assertEquals(7, committed.offset());
            assertEquals("seven", committed.metadata());
        }
        produce(BROKER.bootstrap(), topic, 0, 10, 12, 0);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 5, T);
            assertEquals(List.of(7L, 8L, 9L, 10L, 11L), got.stream().map(ConsumerRecord::offset).toList());
        }
    }

    @Test
    void autoCommitWithDefaultsCommitsOnCloseAndTheNextConsumerResumes() throws Exception {
        String topic = Names.unique("autocommit");
        String group = Names.unique("g-auto");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        produce(BROKER.bootstrap(), topic, 0, 0, 6, 0);
        Properties props = earliest(BROKER.bootstrap(), group);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic));
            Clients.pollExactly(c, 6, T);
        }
        produce(BROKER.bootstrap(), topic, 0, 6, 9, 0);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 3, T);
            assertEquals(List.of("v6", "v7", "v8"), got.stream().map(ConsumerRecord::value).toList());
        }
    }

    @Test
    void twoMembersSplitThePartitionsAndTheSurvivorTakesOverWhenOneIsKilled() throws Exception {
        String topic = Names.unique("split");
        String group = Names.unique("g-split");
        Clients.createTopic(BROKER.bootstrap(), topic, 4);
        int sessionTimeoutMs = 6000; // the broker's minimum, as Kafka's group.min.session.timeout.ms
        Properties props = earliest(BROKER.bootstrap(), group);
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, Integer.toString(sessionTimeoutMs));
        try (KafkaConsumer<String, String> local = new KafkaConsumer<>(props);
             ChildJvm remote = ChildJvm.start(GroupMemberMain.class.getName(),
                     List.of(BROKER.bootstrap(), group, topic, Integer.toString(sessionTimeoutMs)))) {
            local.subscribe(List.of(topic));
            Clients.awaitAssignment(local, T);
            // The child joins: a rebalance gives each member two of the four partitions.
            Wait.until("both members hold two partitions each", T, () -> {
                local.poll(Duration.ofMillis(100));
                List<String> lines = remote.stdoutLines();
                String last = lines.isEmpty() ? "" : lines.get(lines.size() - 1);
                return local.assignment().size() == 2 && last.startsWith("ASSIGNED ")
                        && last.substring("ASSIGNED ".length()).split(",").length == 2;
            });
            List<String> lines = remote.stdoutLines();
            Set<Integer> remoteParts = new HashSet<>();
            for (String p : lines.get(lines.size() - 1).substring("ASSIGNED ".length()).split(",")) {
                remoteParts.add(Integer.parseInt(p));
            }
            Set<Integer> localParts = local.assignment().stream().map(TopicPartition::partition).collect(Collectors.toSet());
            Set<Integer> all = new HashSet<>(remoteParts);
            all.addAll(localParts);
            assertEquals(Set.of(0, 1, 2, 3), all, "local " + localParts + " remote " + remoteParts);

            // SIGKILL: no LeaveGroup; the coordinator expires the member after its session timeout.
            remote.kill9();
            long killedAt = System.nanoTime();
            Wait.until("the survivor holds all four partitions", T, () -> {
                local.poll(Duration.ofMillis(100));
                return local.assignment().size() == 4;
            });
            long tookMs = (System.nanoTime() - killedAt) / 1_000_000;
            assertTrue(tookMs < sessionTimeoutMs + 20_000, "takeover took " + tookMs + " ms");

            for (int p = 0; p < 4; p++) {
                produce(BROKER.bootstrap(), topic, p, p * 10, p * 10 + 3, 0);
            }
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(local, 12, T);
            Set<String> values = got.stream().map(ConsumerRecord::value).collect(Collectors.toSet());
            assertEquals(12, values.size());
        }
    }

    @Test
    void assignSeekOffsetsForTimesAndBeginningEndOffsets() throws Exception {
        String topic = Names.unique("seek");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        long base = 1_700_000_000_000L;
        produce(BROKER.bootstrap(), topic, 0, 0, 20, base);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), null)) {
            c.assign(List.of(tp));
            assertEquals(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)));
            assertEquals(Map.of(tp, 20L), c.endOffsets(List.of(tp)));

            c.seek(tp, 7);
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 13, T);
            assertEquals(7, got.get(0).offset());
            assertEquals("v7", got.get(0).value());
            assertEquals(base + 7000, got.get(0).timestamp());
            assertEquals(20, c.position(tp));

            Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(Map.of(tp, base + 5500));
            assertEquals(6, found.get(tp).offset());
            assertEquals(base + 6000, found.get(tp).timestamp());
            assertEquals(0, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset());
            assertNull(c.offsetsForTimes(Map.of(tp, base + 1_000_000)).get(tp));

            c.seekToBeginning(List.of(tp));
            assertEquals(0, c.position(tp));
            c.seekToEnd(List.of(tp));
            assertEquals(20, c.position(tp));
            c.seek(tp, 18);
            List<Long> offsets = Clients.pollExactly(c, 2, T).stream().map(ConsumerRecord::offset).toList();
            assertEquals(List.of(18L, 19L), offsets);
        }
    }

    @Test
    void committedOffsetsAndAcksAllRecordsSurviveABrokerKill9() throws Exception {
        try (ThorstreamBroker broker = new ThorstreamBroker().start()) {
            String topic = Names.unique("kill9");
            String group = Names.unique("g-kill9");
            Clients.createTopic(broker.bootstrap(), topic, 2);
            for (int p = 0; p < 2; p++) {
                produce(broker.bootstrap(), topic, p, 0, 50, 0);
            }
            Properties props = earliest(broker.bootstrap(), group);
            props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
                c.subscribe(List.of(topic));
                Clients.pollExactly(c, 100, T);
                c.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(30),
                        new TopicPartition(topic, 1), new OffsetAndMetadata(45)));
            }
            broker.kill9();
            broker.start();
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
                c.subscribe(List.of(topic));
                List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 25, T);
                List<String> p0 = got.stream().filter(r -> r.partition() == 0).map(ConsumerRecord::value).toList();
                List<String> p1 = got.stream().filter(r -> r.partition() == 1).map(ConsumerRecord::value).toList();
                assertEquals(IntStream.range(30, 50).mapToObj(i -> "v" + i).toList(), p0);
                assertEquals(IntStream.range(45, 50).mapToObj(i -> "v" + i).toList(), p1);
            }
            List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
            try (KafkaConsumer<String, String> c = Clients.consumer(broker.bootstrap(), null)) {
                assertEquals(new ArrayList<>(List.of(50L, 50L)), new ArrayList<>(c.endOffsets(tps).values()));
            }
        }
    }
}
