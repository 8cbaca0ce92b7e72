package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka Streams, at_least_once, stateful: a KTable count, a windowed count and a stream-table
 * join, checked record by record; a restart with an empty state dir restores its stores from
 * the changelog topics; two instances of the application split its tasks.
 */
class StreamsTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Duration T = Duration.ofSeconds(90);
    /** A multiple of the 60 s window size, so windows start at BASE. */
    private static final long BASE = 1_700_000_040_000L;
    private static final int PARTITIONS = 2;

    private static final Map<KafkaStreams, Throwable> FAILURES = new java.util.concurrent.ConcurrentHashMap<>();
    private final List<KafkaStreams> running = new ArrayList<>();
    private final List<Path> stateDirs = new ArrayList<>();

    @AfterEach
    void closeAll() {
        running.forEach(s -> s.close(Duration.ofSeconds(30)));
        stateDirs.forEach(ThorstreamBroker::deleteTree);
    }

    record Topics(String clicks, String users, String counts, String windowed, String enriched) {
        static Topics fresh() {
            return new Topics(Names.unique("clicks"), Names.unique("users"), Names.unique("click-counts"),
                    Names.unique("windowed-counts"), Names.unique("enriched"));
        }
    }

    static Topology topology(Topics t) {
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> clicks = b.stream(t.clicks(), Consumed.with(Serdes.String(), Serdes.String()));
        KTable<String, String> users = b.table(t.users(), Consumed.with(Serdes.String(), Serdes.String()),
                Materialized.as("users"));
        clicks.groupByKey().count(Materialized.as("click-counts"))
                .toStream().to(t.counts(), Produced.with(Serdes.String(), Serdes.Long()));
        clicks.groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(60), Duration.ofHours(1)))
                .count(Materialized.as("windowed-click-counts"))
                .toStream((wk, v) -> wk.key() + "@" + (wk.window().start() - BASE) / 1000)
                .to(t.windowed(), Produced.with(Serdes.String(), Serdes.Long()));
        clicks.join(users, (page, region) -> page + "@" + region)
                .to(t.enriched(), Produced.with(Serdes.String(), Serdes.String()));
        return b.build();
    }

    KafkaStreams start(String appId, Topics t) throws Exception {
        Path stateDir = Files.createTempDirectory("streams-state-");
        stateDirs.add(stateDir);
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, BROKER.bootstrap());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0"); // every update goes downstream
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        KafkaStreams streams = new KafkaStreams(topology(t), p);
        streams.setUncaughtExceptionHandler(e -> {
            FAILURES.put(streams, e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        running.add(streams);
        streams.start();
        return streams;
    }

    static void awaitRunning(KafkaStreams... all) {
        Wait.until("Kafka Streams RUNNING", T, () -> {
            for (KafkaStreams s : all) {
                if (s.state() == KafkaStreams.State.ERROR || s.state() == KafkaStreams.State.NOT_RUNNING) {
                    throw new IllegalStateException("Kafka Streams went " + s.state(), FAILURES.get(s));
                }
                if (s.state() != KafkaStreams.State.RUNNING) {
                    return false;
                }
            }
            return true;
        });
    }

    static Set<String> activeTasks(KafkaStreams s) {
        return s.metadataForLocalThreads().stream()
                .flatMap(th -> th.activeTasks().stream())
                .map(task -> task.taskId().toString())
                .collect(Collectors.toSet());
    }

    static void send(String topic, String key, String value, long ts) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap())) {
            p.send(new ProducerRecord<>(topic, null, ts, key, value)).get();
        }
    }

    /** Reads an output topic from the start into key → values in arrival order, until {@code n} records. */
    static <V> Map<String, List<V>> readOutput(String topic, int n, Class<?> valueDeserializer) {
        Properties props = Clients.consumerProps(BROKER.bootstrap(), null);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, valueDeserializer.getName());
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Map<String, List<V>> out = new LinkedHashMap<>();
        try (KafkaConsumer<String, V> c = new KafkaConsumer<>(props)) {
            List<TopicPartition> tps = c.partitionsFor(topic).stream()
                    .map(pi -> new TopicPartition(topic, pi.partition())).toList();
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<String, V>> all = new ArrayList<>();
            Wait.until(n + " records on " + topic + " (have " + all.size() + ": " + all + ")", T, () -> {
                c.poll(Duration.ofMillis(200)).forEach(all::add);
                if (all.size() > n) {
                    throw new IllegalStateException("more than " + n + " records on " + topic + ": " + all);
                }
                return all.size() == n;
            });
            all.forEach(r -> out.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value()));
        }
        return out;
    }

    static int partitionOf(String key) {
        return Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % PARTITIONS;
    }

    @Test
    void countWindowedCountAndJoinAreExactRestoreFromChangelogsAndTwoInstancesSplitTasks() throws Exception {
        Topics t = Topics.fresh();
        String appId = Names.unique("streams-app");
        // Two keys that land on different partitions, so the two instances each get one's task.
        String alice = "alice";
        String bob = "bob";
        for (int i = 0; partitionOf(alice) == partitionOf(bob); i++) {
            bob = "bob" + i;
        }
        Clients.createTopic(BROKER.bootstrap(), t.clicks(), PARTITIONS);
        Clients.createTopic(BROKER.bootstrap(), t.users(), PARTITIONS);
        for (String out : List.of(t.counts(), t.windowed(), t.enriched())) {
            Clients.createTopic(BROKER.bootstrap(), out, 1);
        }
        send(t.users(), alice, "eu", BASE - 1000);
        send(t.users(), bob, "us", BASE - 1000);

        // 1. One instance: exact output of all three.
        KafkaStreams first = start(appId, t);
        awaitRunning(first);
        send(t.clicks(), alice, "/home", BASE + 1000);
        send(t.clicks(), bob, "/cart", BASE + 2000);
        send(t.clicks(), alice, "/pay", BASE + 3000);
        send(t.clicks(), alice, "/home", BASE + 61_000);
        assertEquals(Map.of(alice, List.of(1L, 2L, 3L), bob, List.of(1L)), readOutput(t.counts(), 4, LongDeserializer.class));
        assertEquals(Map.of(alice + "@0", List.of(1L, 2L), bob + "@0", List.of(1L), alice + "@60", List.of(1L)),
                readOutput(t.windowed(), 4, LongDeserializer.class));
        assertEquals(Map.of(alice, List.of("/home@eu", "/pay@eu", "/home@eu"), bob, List.of("/cart@us")),
                readOutput(t.enriched(), 4, StringDeserializer.class));

        // Its stores' changelogs are compacted topics (the windowed one compact,delete).
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            String countsLog = appId + "-click-counts-changelog";
            String windowedLog = appId + "-windowed-click-counts-changelog";
            Set<String> topics = admin.listTopics().names().get();
            assertTrue(topics.containsAll(Set.of(countsLog, windowedLog)), topics.toString());
            ConfigResource c1 = new ConfigResource(ConfigResource.Type.TOPIC, countsLog);
            ConfigResource c2 = new ConfigResource(ConfigResource.Type.TOPIC, windowedLog);
            Map<ConfigResource, Config> cfg = admin.describeConfigs(List.of(c1, c2)).all().get();
            assertEquals("compact", cfg.get(c1).get("cleanup.policy").value());
            assertEquals("compact,delete", cfg.get(c2).get("cleanup.policy").value());
        }

        // 2. Restart with an empty state dir: the stores come back from the changelogs.
        first.close(Duration.ofSeconds(30));
        assertEquals(KafkaStreams.State.NOT_RUNNING, first.state());
        KafkaStreams second = start(appId, t);
        awaitRunning(second);
        send(t.users(), bob, "apac", BASE + 5000);
        send(t.clicks(), alice, "/x", BASE + 4000);
        send(t.clicks(), bob, "/y", BASE + 6000);
        assertEquals(Map.of(alice, List.of(1L, 2L, 3L, 4L), bob, List.of(1L, 2L)), readOutput(t.counts(), 6, LongDeserializer.class));
        assertEquals(Map.of(alice + "@0", List.of(1L, 2L, 3L), bob + "@0", List.of(1L, 2L), alice + "@60", List.of(1L)),
                readOutput(t.windowed(), 6, LongDeserializer.class));
        assertEquals(Map.of(alice, List.of("/home@eu", "/pay@eu", "/home@eu", "/x@eu"), bob, List.of("/cart@us", "/y@apac")),
                readOutput(t.enriched(), 6, StringDeserializer.class));

        // 3. A second instance joins: the two tasks (one per input partition) are split.
        KafkaStreams third = start(appId, t);
        Wait.until("each instance runs one of the two tasks", T, () -> {
            awaitRunning(second, third);
            Set<String> a = activeTasks(second);
            Set<String> b = activeTasks(third);
            return a.size() == 1 && b.size() == 1;
        });
        Set<String> union = new HashSet<>(activeTasks(second));
        union.addAll(activeTasks(third));
        assertEquals(Set.of("0_0", "0_1"), union);
        assertNotEquals(activeTasks(second), activeTasks(third));
        send(t.clicks(), alice, "/z", BASE + 7000);
        send(t.clicks(), bob, "/z", BASE + 8000);
        assertEquals(Map.of(alice, List.of(1L, 2L, 3L, 4L, 5L), bob, List.of(1L, 2L, 3L)), readOutput(t.counts(), 8, LongDeserializer.class));
        Map<String, List<String>> enriched = readOutput(t.enriched(), 8, StringDeserializer.class);
        assertEquals(List.of("/home@eu", "/pay@eu", "/home@eu", "/x@eu", "/z@eu"), enriched.get(alice));
        assertEquals(List.of("/cart@us", "/y@apac", "/z@apac"), enriched.get(bob));
        assertFalse(third.state() == KafkaStreams.State.ERROR);
    }
}
