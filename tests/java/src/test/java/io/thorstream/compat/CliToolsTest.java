package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka's own command-line tools, each run from its main class in the Maven-resolved jars (what
 * bin/kafka-topics.sh etc. run), in a child JVM; asserts on their output and exit codes.
 */
class CliToolsTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance";
    static final String CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance";

    private static final Duration T = Duration.ofSeconds(90);

    static ChildJvm.Result tool(String main, String... args) {
        String[] all = new String[args.length + 2];
        all[0] = "--bootstrap-server";
        all[1] = BROKER.bootstrap();
        System.arraycopy(args, 0, all, 2, args.length);
        return ChildJvm.run(T, main, all);
    }

    /** Rows of whitespace-separated columns, without the header row and blank lines. */
    static List<List<String>> rows(ChildJvm.Result r, String headerFirstColumn) {
        return r.lines().stream()
                .map(l -> Arrays.asList(l.trim().split("\\s+")))
                .filter(cols -> !cols.get(0).equals(headerFirstColumn))
                .toList();
    }

    @Test
    void kafkaTopicsCreatesListsDescribesAltersAndDeletes() {
        String t = Names.unique("cli-topics");
        ChildJvm.Result create = tool(TOPICS, "--create", "--topic", t, "--partitions", "2",
                "--replication-factor", "1", "--config", "retention.ms=86400000").assertSuccess();
        assertTrue(create.stdout().contains("Created topic " + t + "."), create.stdout());

        assertTrue(tool(TOPICS, "--list").assertSuccess().lines().contains(t));

        ChildJvm.Result describe = tool(TOPICS, "--describe", "--topic", t).assertSuccess();
        String out = describe.stdout();
        assertTrue(out.contains("Topic: " + t), out);
        assertTrue(out.contains("PartitionCount: 2"), out);
        assertTrue(out.contains("ReplicationFactor: 1"), out);
        assertTrue(out.contains("retention.ms=86400000"), out);
        assertTrue(out.contains("Partition: 0") && out.contains("Partition: 1"), out);

        tool(TOPICS, "--alter", "--topic", t, "--partitions", "5").assertSuccess();
        assertTrue(tool(TOPICS, "--describe", "--topic", t).assertSuccess().stdout().contains("PartitionCount: 5"));

        ChildJvm.Result dup = tool(TOPICS, "--create", "--topic", t, "--partitions", "1");
        assertEquals(1, dup.exitCode(), dup.stdout() + dup.stderr());
        assertTrue((dup.stdout() + dup.stderr()).contains("already exists"), dup.stdout() + dup.stderr());

        tool(TOPICS, "--delete", "--topic", t).assertSuccess();
        Wait.until("topic gone from kafka-topics --list", T,
                () -> !tool(TOPICS, "--list").assertSuccess().lines().contains(t));
    }

    @Test
    void kafkaConfigsDescribesTopicConfigs() {
        String t = Names.unique("cli-cfg-describe");
        Clients.createTopic(BROKER.bootstrap(), t, 1, Map.of("retention.ms", "3600000"));
        ChildJvm.Result all = tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--describe", "--all").assertSuccess();
        assertTrue(all.stdout().contains("All configs for topic " + t + " are:"), all.stdout());
        assertTrue(all.stdout().contains("cleanup.policy=delete"), all.stdout());
        assertTrue(all.stdout().contains("segment.bytes=1073741824"), all.stdout());

        ChildJvm.Result r = tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--describe").assertSuccess();
        assertTrue(r.stdout().contains("Dynamic configs for topic " + t + " are:"), r.stdout());
        assertTrue(r.stdout().contains("retention.ms=3600000 sensitive=false"), r.stdout());
        // The tool asks for synonyms; Kafka lists the topic override, then the broker default.
        assertTrue(r.stdout().contains("synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000, DEFAULT_CONFIG:"), r.stdout());
    }

    @Test
    void kafkaConfigsAltersTopicConfigs() throws Exception {
        String t = Names.unique("cli-cfg-alter");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        ChildJvm.Result r = tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--alter",
                "--add-config", "retention.ms=1000,max.message.bytes=2000000").assertSuccess();
        assertTrue(r.stdout().contains("Completed updating config for topic " + t + "."), r.stdout());
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, t);
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            Config c = admin.describeConfigs(List.of(res)).all().get().get(res);
            assertEquals("1000", c.get("retention.ms").value());
            assertEquals("2000000", c.get("max.message.bytes").value());
        }
        tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--alter", "--delete-config", "retention.ms").assertSuccess();
        ChildJvm.Result d = tool(CONFIGS, "--entity-type", "topics", "--entity-name", t, "--describe").assertSuccess();
        assertFalse(d.stdout().contains("retention.ms="), d.stdout());
        assertTrue(d.stdout().contains("max.message.bytes=2000000"), d.stdout());
    }

    @Test
    void kafkaConsumerGroupsListsDescribesResetsAndDeletes() throws Exception {
        String t = Names.unique("cli-groups");
        String g = Names.unique("g-cli");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(t, i % 2, "k", "v" + i));
            }
            p.flush();
        }
        Properties props = Clients.consumerProps(BROKER.bootstrap(), g);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.assign(List.of(new TopicPartition(t, 0), new TopicPartition(t, 1)));
            c.commitSync(Map.of(new TopicPartition(t, 0), new OffsetAndMetadata(2),
                    new TopicPartition(t, 1), new OffsetAndMetadata(5)));
        }
        assertTrue(tool(GROUPS, "--list").assertSuccess().lines().contains(g));

        ChildJvm.Result d = tool(GROUPS, "--describe", "--group", g).assertSuccess();
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
        Map<String, List<String>> byPartition = rows(d, "GROUP").stream()
                .filter(cols -> cols.size() >= 6 && cols.get(0).equals(g))
                .collect(Collectors.toMap(cols -> cols.get(2), cols -> cols));
        assertEquals(List.of(g, t, "0", "2", "5", "3"), byPartition.get("0").subList(0, 6), d.stdout());
        assertEquals(List.of(g, t, "1", "5", "5", "0"), byPartition.get("1").subList(0, 6), d.stdout());

        ChildJvm.Result dry = tool(GROUPS, "--reset-offsets", "--group", g, "--topic", t, "--to-earliest", "--dry-run").assertSuccess();
        assertTrue(rows(dry, "GROUP").stream().anyMatch(cols -> cols.equals(List.of(g, t, "1", "0"))), dry.stdout());
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            assertEquals(5, admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get()
                    .get(new TopicPartition(t, 1)).offset(), "--dry-run changed nothing");

            tool(GROUPS, "--reset-offsets", "--group", g, "--topic", t + ":1", "--to-offset", "3", "--execute").assertSuccess();
            tool(GROUPS, "--reset-offsets", "--group", g, "--topic", t + ":0", "--to-latest", "--execute").assertSuccess();
            Map<TopicPartition, OffsetAndMetadata> now = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
            assertEquals(5, now.get(new TopicPartition(t, 0)).offset());
            assertEquals(3, now.get(new TopicPartition(t, 1)).offset());
        }

        ChildJvm.Result del = tool(GROUPS, "--delete", "--group", g).assertSuccess();
        assertTrue(del.stdout().contains("Deletion of requested consumer groups ('" + g + "') was successful."), del.stdout());
        assertFalse(tool(GROUPS, "--list").assertSuccess().lines().contains(g));
    }

    @Test
    void consoleProducerAndConsoleConsumerRoundTripKeysAndValues() throws Exception {
        String t = Names.unique("cli-console");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        Path input = Files.createTempFile("console-producer-", ".txt");
        Files.writeString(input, "k1:hello\nk2:world\nk3:again\n");
        ChildJvm.runWithInput(T, input, CONSOLE_PRODUCER, "--bootstrap-server", BROKER.bootstrap(), "--topic", t,
                "--reader-property", "parse.key=true", "--reader-property", "key.separator=:").assertSuccess();
        Files.delete(input);

        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), null)) {
            TopicPartition tp = new TopicPartition(t, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 3, T);
            assertEquals(List.of("k1", "k2", "k3"), got.stream().map(ConsumerRecord::key).toList());
        }

        String g = Names.unique("g-console");
        ChildJvm.Result consumed = tool(CONSOLE_CONSUMER, "--topic", t, "--from-beginning", "--max-messages", "3",
                "--group", g, "--formatter-property", "print.key=true", "--formatter-property", "key.separator==").assertSuccess();
        assertEquals(List.of("k1=hello", "k2=world", "k3=again"), consumed.lines(), consumed.stderr());
        assertTrue(consumed.stderr().contains("Processed a total of 3 messages"), consumed.stderr());
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            assertEquals(3, admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get()
                    .get(new TopicPartition(t, 0)).offset(), "console consumer committed on exit");
        }
    }

    @Test
    void producerAndConsumerPerfTestsRunToCompletion() {
        String t = Names.unique("cli-perf");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        ChildJvm.Result prod = tool(PRODUCER_PERF, "--topic", t, "--num-records", "5000", "--record-size", "100",
                "--throughput", "-1").assertSuccess();
        List<String> lines = prod.lines();
        String last = lines.get(lines.size() - 1);
        assertTrue(last.startsWith("5000 records sent,"), prod.stdout());

        ChildJvm.Result cons = tool(CONSUMER_PERF, "--topic", t, "--num-records", "5000", "--timeout", "30000").assertSuccess();
        assertFalse(cons.stdout().contains("WARNING: Exiting before consuming"), cons.stdout());
        List<String> cl = cons.lines();
        int header = cl.indexOf(cl.stream().filter(l -> l.startsWith("start.time, end.time, data.consumed.in.MB"))
                .findFirst().orElseThrow(() -> new AssertionError(cons.stdout())));
        String[] cols = cl.get(header + 1).split(",\\s*");
        assertEquals("5000", cols[4], cons.stdout()); // data.consumed.in.nMsg
    }
}
