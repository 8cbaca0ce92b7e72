package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The Java producer with its defaults (idempotent, acks=all): keys, headers, every codec. */
class ProducerTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    @Test
    void defaultsAreIdempotentAcksAllAndKeysGoWhereJavaPartitionerSays() throws Exception {
        String topic = Names.unique("keys");
        int partitions = 4;
        Clients.createTopic(BROKER.bootstrap(), topic, partitions);
        Map<String, List<Long>> offsetsByKey = new HashMap<>();
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, "key-" + (i % 5), "value-" + i)));
            }
            for (int i = 0; i < 40; i++) {
                RecordMetadata md = sent.get(i).get();
                String key = "key-" + (i % 5);
                int expected = Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % partitions;
                assertEquals(expected, md.partition(), "partition of " + key);
                offsetsByKey.computeIfAbsent(key, k -> new ArrayList<>()).add(md.offset());
            }
        }
        // Each key's records are in its partition in send order, with consecutive offsets
        // per partition (no duplicates, no gaps: what idempotence and acks=all promise).
        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER.bootstrap(), null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(consumer, 40, Duration.ofSeconds(30));
            Map<Integer, Long> nextOffset = new HashMap<>();
            Map<String, Integer> lastValue = new HashMap<>();
            for (ConsumerRecord<String, String> r : got) {
                long expectedOffset = nextOffset.getOrDefault(r.partition(), 0L);
                assertEquals(expectedOffset, r.offset());
                nextOffset.put(r.partition(), expectedOffset + 1);
                int v = Integer.parseInt(r.value().substring("value-".length()));
                assertEquals("key-" + (v % 5), r.key());
                assertTrue(v > lastValue.getOrDefault(r.key(), -1), "per-key order");
                lastValue.put(r.key(), v);
            }
        }
        assertEquals(5, offsetsByKey.size());
    }

    @Test
    void headersNullKeysAndNullValuesRoundTrip() throws Exception {
        String topic = Names.unique("headers");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap())) {
            List<Header> headers = List.of(
                    new RecordHeader("trace", "abc".getBytes(StandardCharsets.UTF_8)),
                    new RecordHeader("empty", new byte[0]),
                    new RecordHeader("null", null),
                    new RecordHeader("trace", "second".getBytes(StandardCharsets.UTF_8)));
            producer.send(new ProducerRecord<>(topic, 0, 1_700_000_000_000L, "k", "v", headers)).get();
            producer.send(new ProducerRecord<>(topic, 0, null, (String) null, "no key")).get();
            producer.send(new ProducerRecord<>(topic, 0, "tombstone", (String) null)).get();
        }
        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER.bootstrap(), null)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(consumer, 3, Duration.ofSeconds(30));
            ConsumerRecord<String, String> first = got.get(0);
            assertEquals("k", first.key());
            assertEquals("v", first.value());
            assertEquals(1_700_000_000_000L, first.timestamp());
            Header[] hs = first.headers().toArray();
            assertEquals(4, hs.length);
            assertEquals("trace", hs[0].key());
            assertArrayEquals("abc".getBytes(StandardCharsets.UTF_8), hs[0].value());
            assertArrayEquals(new byte[0], hs[1].value());
            assertEquals(null, hs[2].value());
            assertArrayEquals("second".getBytes(StandardCharsets.UTF_8), first.headers().lastHeader("trace").value());
            assertEquals(null, got.get(1).key());
            assertEquals("no key", got.get(1).value());
            assertEquals("tombstone", got.get(2).key());
            assertEquals(null, got.get(2).value());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void everyCompressionCodecRoundTrips(String codec) throws Exception {
        String topic = Names.unique("codec-" + codec);
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        Properties props = Clients.producerProps(BROKER.bootstrap());
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "50"); // batches of several records
        int n = 500;
        String payload = "compressible payload ".repeat(20);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, "k" + i, payload + i)));
            }
            producer.flush();
            for (int i = 0; i < n; i++) {
                assertEquals(i, sent.get(i).get().offset());
            }
        }
        Properties cprops = Clients.consumerProps(BROKER.bootstrap(), null);
        cprops.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1000");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cprops)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(consumer, n, Duration.ofSeconds(30));
            for (int i = 0; i < n; i++) {
                assertEquals(i, got.get(i).offset());
                assertEquals("k" + i, got.get(i).key());
                assertEquals(payload + i, got.get(i).value());
            }
        }
    }
}
