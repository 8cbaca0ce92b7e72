package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.LongStream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.Test;

/**
 * Kafka Streams {@code processing.guarantee=exactly_once_v2}, stateful (a count per key, its
 * store changelogged), run in a child JVM ({@link StreamsEosMain}). Input arrives paced while,
 * in turn, the Streams instance is killed with SIGKILL (a new instance on the same state dir
 * takes over and fences it) and the broker is killed with SIGKILL (restarted on the same data
 * dir). The output topic read with read_committed must hold, for every key, exactly the counts
 * 1, 2, ..., N once each and in order, N being the number of inputs with that key: nothing
 * lost, nothing counted twice, nothing of an aborted transaction visible.
 */
class StreamsEosTest {
    private static final Duration T = Duration.ofSeconds(120);
    private static final int KEYS = 8;
    private static final int PARTITIONS = 2;

    /** Accumulates every record of the output topic seen through one consumer. */
    static final class OutputReader implements AutoCloseable {
        final KafkaConsumer<String, Long> consumer;
        final Map<String, List<Long>> perKey = new TreeMap<>();
        long records;

        OutputReader(String bootstrap, String topic, String isolation) {
            Properties p = Clients.consumerProps(bootstrap, null);
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
            consumer = new KafkaConsumer<>(p);
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
        }

        void poll() {
            for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(100))) {
                perKey.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                records++;
            }
        }

        /** End offsets: the LSO under read_committed, the high watermark under read_uncommitted. */
        Map<TopicPartition, Long> ends() {
            return consumer.endOffsets(consumer.assignment());
        }

        Map<String, Long> latest() {
            Map<String, Long> m = new TreeMap<>();
            perKey.forEach((k, v) -> m.put(k, v.get(v.size() - 1)));
            return m;
        }

        /** Polls until the position of every partition reaches its end offset (read_committed: the LSO). */
        void readToEnd() {
            Wait.until("the output read to its end", T, () -> {
                poll();
                Map<TopicPartition, Long> end = consumer.endOffsets(consumer.assignment());
                for (var e : end.entrySet()) {
                    if (consumer.position(e.getKey()) < e.getValue()) {
                        return false;
                    }
                }
                return true;
            });
        }

        @Override
        public void close() {
            consumer.close(Duration.ofSeconds(5));
        }
    }

    /** Sends {@code perKey} records for each key, paced (~1 ms apart) so a kill lands mid-stream. */
    static Thread pacedInput(String bootstrap, String topic, int perKey, Map<String, Long> expected,
                             AtomicReference<Throwable> failure) {
        for (int k = 0; k < KEYS; k++) {
            expected.merge("k" + k, (long) perKey, Long::sum);
        }
        Thread t = new Thread(() -> {
            try (KafkaProducer<String, String> p = Clients.producer(bootstrap)) {
                List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
                for (int i = 0; i < perKey; i++) {
                    for (int k = 0; k < KEYS; k++) {
                        acks.add(p.send(new ProducerRecord<>(topic, "k" + k, "v" + i)));
                    }
                    Thread.sleep(1); // load shaping (spreads the input over time), not synchronisation
                }
                p.flush();
                for (var f : acks) {
                    f.get();
                }
            } catch (Throwable e) {
                failure.set(e);
            }
        }, "paced-input");
        t.start();
        return t;
    }

    /** Some output partition has records above its LSO: a transaction with output is open. */
    static boolean openTransaction(OutputReader committed, OutputReader uncommitted) {
        Map<TopicPartition, Long> lso = committed.ends();
        Map<TopicPartition, Long> hw = uncommitted.ends();
        return hw.entrySet().stream().anyMatch(e -> e.getValue() > lso.getOrDefault(e.getKey(), Long.MAX_VALUE));
    }

    static ChildJvm startStreams(ThorstreamBroker broker, String appId, String in, String out, Path stateDir) {
        ChildJvm jvm = ChildJvm.start(StreamsEosMain.class.getName(),
                List.of(broker.bootstrap(), appId, in, out, stateDir.toString()));
        Wait.until("Kafka Streams RUNNING", T, () -> {
            if (!jvm.isAlive()) {
                throw new IllegalStateException("Streams JVM exited:\n" + jvm.stderr());
            }
            return jvm.stdoutLines().contains("STATE RUNNING");
        });
        return jvm;
    }

    static void awaitCounts(OutputReader committed, Map<String, Long> expected, ChildJvm streams, String what) {
        Wait.until(what + ": committed counts " + expected + " (have " + committed.latest() + ")", T, () -> {
            if (!streams.isAlive()) {
                throw new IllegalStateException("Streams JVM exited:\n" + streams.stderr());
            }
            committed.poll();
            return committed.latest().equals(expected);
        });
    }

    static void join(Thread t, AtomicReference<Throwable> failure) throws InterruptedException {
        t.join(T.toMillis());
        if (t.isAlive() || failure.get() != null) {
            throw new AssertionError("input producer did not finish cleanly", failure.get());
        }
    }

    @Test
    void countsAreExactlyOnceAcrossKill9OfTheStreamsInstanceAndOfTheBroker() throws Exception {
        Path stateDir = Files.createTempDirectory("streams-eos-state-");
        try (ThorstreamBroker broker = new ThorstreamBroker().start()) {
            String in = Names.unique("eos-in");
            String out = Names.unique("eos-counts");
            String appId = Names.unique("eos-app");
            Clients.createTopic(broker.bootstrap(), in, PARTITIONS);
            Clients.createTopic(broker.bootstrap(), out, PARTITIONS);
            Map<String, Long> expected = new TreeMap<>();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            ChildJvm streams = startStreams(broker, appId, in, out, stateDir);
            try (OutputReader committed = new OutputReader(broker.bootstrap(), out, "read_committed");
                 OutputReader uncommitted = new OutputReader(broker.bootstrap(), out, "read_uncommitted")) {
                // 1. Steady state.
                join(pacedInput(broker.bootstrap(), in, 40, expected, failure), failure);
                awaitCounts(committed, expected, streams, "first batch");

                // 2. SIGKILL the Streams instance while it processes (its transaction open).
                long seen = uncommitted.records;
                Thread input = pacedInput(broker.bootstrap(), in, 200, expected, failure);
                Wait.until("Streams writes output of the second batch, in an open transaction", T, () -> {
                    uncommitted.poll();
                    return uncommitted.records > seen + 100 && openTransaction(committed, uncommitted);
                });
                streams.kill9();
                streams = startStreams(broker, appId, in, out, stateDir);
                join(input, failure);
                awaitCounts(committed, expected, streams, "after the Streams instance's SIGKILL");

                // 3. SIGKILL the broker mid-stream; restart it on the same data dir.
                long seen2 = uncommitted.records;
                input = pacedInput(broker.bootstrap(), in, 200, expected, failure);
                Wait.until("Streams writes output of the third batch, in an open transaction", T, () -> {
                    uncommitted.poll();
                    return uncommitted.records > seen2 + 100 && openTransaction(committed, uncommitted);
                });
                broker.kill9();
                broker.start();
                join(input, failure);
                awaitCounts(committed, expected, streams, "after the broker's SIGKILL");
                uncommitted.readToEnd();
                // More under read_uncommitted: output of transactions the kills aborted, redone.
                System.out.println("output records: read_uncommitted " + uncommitted.records
                        + ", read_committed " + committed.records);
            } finally {
                streams.kill9();
                System.out.println("---- Streams stderr tail ----\n" + tail(streams.stderr()));
                streams.close();
            }

            // 4. The whole output, read_committed from the start: exactly 1..N per key.
            try (OutputReader fresh = new OutputReader(broker.bootstrap(), out, "read_committed")) {
                fresh.readToEnd();
                Map<String, List<Long>> want = new TreeMap<>();
                expected.forEach((k, n) -> want.put(k, LongStream.rangeClosed(1, n).boxed().toList()));
                assertEquals(want.keySet(), fresh.perKey.keySet());
                for (String k : want.keySet()) {
                    assertEquals(want.get(k), fresh.perKey.get(k), "counts of " + k + ": each exactly once, in order");
                }
            }
        } finally {
            ThorstreamBroker.deleteTree(stateDir);
        }
    }

    static String tail(String s) {
        List<String> lines = s.lines().toList();
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    }
}
