package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** A compacted topic as the Java clients see it: the latest value per key, tombstones, keyless records refused. */
class CompactionTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension("--log-cleaner-backoff-ms", "100");

    private static final Duration T = Duration.ofSeconds(60);

    /** Everything from the log start to the end, in offset order. */
    static List<ConsumerRecord<String, String>> readAll(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), null)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            List<ConsumerRecord<String, String>> out = new ArrayList<>();
            Wait.until("read to the end offset " + end, T, () -> {
                c.poll(Duration.ofMillis(100)).forEach(out::add);
                return c.position(tp) >= end;
            });
            return out;
        }
    }

    @Test
    void aConsumerFromTheStartSeesTheLatestValuePerKeyAtTheirOriginalOffsets() throws Exception {
        String t = Names.unique("compacted");
        Clients.createTopic(BROKER.bootstrap(), t, 1, Map.of(
                "cleanup.policy", "compact",
                "segment.ms", "100",
                "min.cleanable.dirty.ratio", "0.01",
                "delete.retention.ms", "0"));
        Map<String, Long> lastOffset = new LinkedHashMap<>();
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap())) {
            for (int round = 0; round < 3; round++) {
                for (int k = 0; k < 5; k++) {
                    long off = p.send(new ProducerRecord<>(t, 0, "k" + k, "v" + round)).get().offset();
                    lastOffset.put("k" + k, off);
                }
            }
            p.send(new ProducerRecord<>(t, 0, "k4", null)).get(); // tombstone: k4 goes away
            lastOffset.remove("k4");
            // The active segment is never cleaned: keep appending a filler (which rolls the
            // segment once segment.ms passed) until the cleaner has cleaned what is behind it.
            Wait.until("the cleaner kept only the latest k0..k3", T, () -> {
                p.send(new ProducerRecord<>(t, 0, "filler", "f")).get();
                List<ConsumerRecord<String, String>> all = readAll(t);
                long ks = all.stream().filter(r -> r.key().startsWith("k")).count();
                return ks == 4;
            });
        }
        List<ConsumerRecord<String, String>> all = readAll(t);
        Map<String, Long> seen = new LinkedHashMap<>();
        for (ConsumerRecord<String, String> r : all) {
            if (r.key().startsWith("k")) {
                assertEquals("v2", r.value(), r.toString());
                seen.put(r.key(), r.offset());
            }
        }
        assertEquals(lastOffset, seen, "the latest record of each key, at its original offset");
    }

    @Test
    void aKeylessRecordToACompactedTopicIsRefused() throws Exception {
        String t = Names.unique("compacted-keyless");
        Clients.createTopic(BROKER.bootstrap(), t, 1, Map.of("cleanup.policy", "compact"));
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap())) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(t, 0, null, "no key")).get());
            assertInstanceOf(InvalidRecordException.class, e.getCause());
            assertEquals(0, p.send(new ProducerRecord<>(t, 0, "k", "keyed")).get().offset());
        }
    }
}
