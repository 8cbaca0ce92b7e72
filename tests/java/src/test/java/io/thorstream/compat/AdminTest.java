package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Java AdminClient: topics, partitions, configs, records, offsets, groups, cluster, log dirs. */
class AdminTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Duration T = Duration.ofSeconds(60);
    private static Admin admin;

    @BeforeAll
    static void open() {
        admin = Clients.admin(BROKER.bootstrap());
    }

    @AfterAll
    static void close() {
        admin.close();
    }

    private static void produce(String topic, int partition, int n) throws Exception {
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap())) {
            for (int i = 0; i < n; i++) {
                producer.send(new ProducerRecord<>(topic, partition, "k" + i, "v" + i));
            }
            producer.flush();
        }
    }

    @Test
    void createListDescribeAndDeleteTopics() throws Exception {
        String a = Names.unique("admin-a");
        String b = Names.unique("admin-b");
        admin.createTopics(List.of(new NewTopic(a, 3, (short) 1),
                new NewTopic(b, 1, (short) 1).configs(Map.of("retention.ms", "3600000")))).all().get();
        Set<String> names = admin.listTopics().names().get();
        assertTrue(names.containsAll(Set.of(a, b)), names.toString());

        ExecutionException dup = assertThrows(ExecutionException.class,
                () -> admin.createTopics(List.of(new NewTopic(a, 1, (short) 1))).all().get());
        assertInstanceOf(TopicExistsException.class, dup.getCause());

        TopicDescription d = admin.describeTopics(List.of(a)).allTopicNames().get().get(a);
        assertEquals(3, d.partitions().size());
        Node node = admin.describeCluster().nodes().get().iterator().next();
        d.partitions().forEach(p -> {
            assertEquals(node.id(), p.leader().id());
            assertEquals(1, p.replicas().size());
            assertEquals(1, p.isr().size());
        });
        assertFalse(d.isInternal());

        admin.deleteTopics(List.of(a, b)).all().get();
        Wait.until("deleted topics gone from listTopics", T,
                () -> !admin.listTopics().names().get().contains(a));
        ExecutionException gone = assertThrows(ExecutionException.class,
                () -> admin.describeTopics(List.of(a)).allTopicNames().get());
        assertInstanceOf(UnknownTopicOrPartitionException.class, gone.getCause());
    }

    @Test
    void invalidRequestsGetKafkasErrors() throws Exception {
        String t = Names.unique("admin-errors");
        ExecutionException rf = assertThrows(ExecutionException.class,
                () -> admin.createTopics(List.of(new NewTopic(t, 1, (short) 3))).all().get());
        assertInstanceOf(InvalidReplicationFactorException.class, rf.getCause());
        ExecutionException parts = assertThrows(ExecutionException.class,
                () -> admin.createTopics(List.of(new NewTopic(t, 0, (short) 1))).all().get());
        assertInstanceOf(InvalidPartitionsException.class, parts.getCause());

        admin.createTopics(List.of(new NewTopic(t, 2, (short) 1)), new CreateTopicsOptions().validateOnly(true)).all().get();
        assertFalse(admin.listTopics().names().get().contains(t), "validateOnly created nothing");

        Clients.createTopic(BROKER.bootstrap(), t, 2);
        ExecutionException shrink = assertThrows(ExecutionException.class,
                () -> admin.createPartitions(Map.of(t, NewPartitions.increaseTo(1))).all().get());
        assertInstanceOf(InvalidPartitionsException.class, shrink.getCause());

        produce(t, 0, 3);
        TopicPartition tp = new TopicPartition(t, 0);
        ExecutionException beyond = assertThrows(ExecutionException.class, () -> admin.deleteRecords(
                Map.of(tp, RecordsToDelete.beforeOffset(10))).lowWatermarks().get(tp).get());
        assertInstanceOf(OffsetOutOfRangeException.class, beyond.getCause());

        ExecutionException unknown = assertThrows(ExecutionException.class, () -> admin.deleteTopics(
                List.of(Names.unique("never-created"))).all().get());
        assertInstanceOf(UnknownTopicOrPartitionException.class, unknown.getCause());
    }

    @Test
    void createPartitionsAddsPartitionsThatTakeRecords() throws Exception {
        String t = Names.unique("admin-parts");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        admin.createPartitions(Map.of(t, NewPartitions.increaseTo(3))).all().get();
        assertEquals(3, admin.describeTopics(List.of(t)).allTopicNames().get().get(t).partitions().size());
        produce(t, 2, 2);
        ListOffsetsResult.ListOffsetsResultInfo end = admin.listOffsets(
                Map.of(new TopicPartition(t, 2), OffsetSpec.latest())).all().get().get(new TopicPartition(t, 2));
        assertEquals(2, end.offset());
    }

    @Test
    void describeConfigsReportsKafkasTopicDefaults() throws Exception {
        String t = Names.unique("admin-describe-cfg");
        Clients.createTopic(BROKER.bootstrap(), t, 1, Map.of("retention.ms", "7200000"));
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        Config c = admin.describeConfigs(List.of(r)).all().get().get(r);
        ConfigEntry retention = c.get("retention.ms");
        assertEquals("7200000", retention.value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
        ConfigEntry cleanup = c.get("cleanup.policy");
        assertEquals("delete", cleanup.value());
        assertTrue(cleanup.isDefault(), cleanup.toString());
        assertEquals("1048588", c.get("max.message.bytes").value());
        assertEquals("1073741824", c.get("segment.bytes").value());
    }

    @Test
    void incrementalAlterConfigsSetsDeletesAndIsSeenByDescribe() throws Exception {
        String t = Names.unique("admin-alter-cfg");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "123456"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("compression.type", "zstd"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SET))))
                .all().get();
        Config c = admin.describeConfigs(List.of(r)).all().get().get(r);
        assertEquals("123456", c.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source());
        assertEquals("zstd", c.get("compression.type").value());
        assertEquals("compact", c.get("cleanup.policy").value());

        admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.APPEND))))
                .all().get();
        c = admin.describeConfigs(List.of(r)).all().get().get(r);
        assertEquals("604800000", c.get("retention.ms").value());
        assertTrue(c.get("retention.ms").isDefault());
        assertEquals("compact,delete", c.get("cleanup.policy").value());

        ExecutionException bad = assertThrows(ExecutionException.class, () -> admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)))).all().get());
        assertInstanceOf(InvalidConfigurationException.class, bad.getCause());
    }

    @Test
    void deleteRecordsMovesTheLogStartOffset() throws Exception {
        String t = Names.unique("admin-delrec");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        produce(t, 0, 10);
        TopicPartition tp = new TopicPartition(t, 0);
        long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get().lowWatermark();
        assertEquals(4, low);
        assertEquals(4, admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all().get().get(tp).offset());
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), null)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 6, T);
            assertEquals(4, got.get(0).offset());
        }
    }

    @Test
    void listOffsetsEarliestLatestAndForTimestamp() throws Exception {
        String t = Names.unique("admin-listoff");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        TopicPartition tp = new TopicPartition(t, 0);
        long base = 1_700_000_000_000L;
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap())) {
            long[] ts = {base, base + 5000, base + 2000, base + 3000};
            for (long x : ts) {
                producer.send(new ProducerRecord<>(t, 0, x, "k", "v"));
            }
            producer.flush();
        }
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> r;
        r = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all().get();
        assertEquals(0, r.get(tp).offset());
        r = admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get();
        assertEquals(4, r.get(tp).offset());
        r = admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 2500))).all().get();
        assertEquals(1, r.get(tp).offset()); // the first record at or after the time
        assertEquals(base + 5000, r.get(tp).timestamp());
    }

    @Test
    void listOffsetsMaxTimestampFindsTheRecordWithTheLargestTimestamp() throws Exception {
        String t = Names.unique("admin-maxts");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        TopicPartition tp = new TopicPartition(t, 0);
        long base = 1_700_000_000_000L;
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap())) {
            for (long x : new long[] {base, base + 5000, base + 2000}) {
                producer.send(new ProducerRecord<>(t, 0, x, "k", "v"));
            }
            producer.flush();
        }
        ListOffsetsResult.ListOffsetsResultInfo r =
                admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).all().get().get(tp);
        assertEquals(1, r.offset());
        assertEquals(base + 5000, r.timestamp());
    }

    @Test
    void consumerGroupsListDescribeAlterOffsetsAndDelete() throws Exception {
        String t = Names.unique("admin-groups");
        String g = Names.unique("g-admin");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        produce(t, 0, 5);
        produce(t, 1, 5);
        Properties props = Clients.consumerProps(BROKER.bootstrap(), g);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "admin-test-client");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(t));
            Clients.pollExactly(c, 10, T);
            c.commitSync();

            Collection<GroupListing> groups = admin.listGroups().all().get();
            assertTrue(groups.stream().anyMatch(l -> l.groupId().equals(g)), groups.toString());
            Collection<ConsumerGroupListing> consumerGroups = admin.listConsumerGroups().all().get();
            assertTrue(consumerGroups.stream().anyMatch(l -> l.groupId().equals(g)), consumerGroups.toString());

            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).all().get().get(g);
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals(1, d.members().size());
            assertEquals("admin-test-client", d.members().iterator().next().clientId());
            assertEquals(Set.of(new TopicPartition(t, 0), new TopicPartition(t, 1)),
                    d.members().iterator().next().assignment().topicPartitions());
            assertEquals("range", d.partitionAssignor());

            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
            assertEquals(5, offsets.get(new TopicPartition(t, 0)).offset());
            assertEquals(5, offsets.get(new TopicPartition(t, 1)).offset());
        }
        // The member left on close: the group is empty, its offsets can be altered and it can be deleted.
        Wait.until("group empty", T, () ->
                admin.describeConsumerGroups(List.of(g)).all().get().get(g).groupState() == GroupState.EMPTY);
        admin.alterConsumerGroupOffsets(g, Map.of(new TopicPartition(t, 0), new OffsetAndMetadata(1))).all().get();
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
        assertEquals(1, offsets.get(new TopicPartition(t, 0)).offset());
        assertEquals(5, offsets.get(new TopicPartition(t, 1)).offset());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(t));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 4, T);
            assertTrue(got.stream().allMatch(r -> r.partition() == 0 && r.offset() >= 1), got.toString());
        }
        Wait.until("group empty again", T, () ->
                admin.describeConsumerGroups(List.of(g)).all().get().get(g).groupState() == GroupState.EMPTY);
        admin.deleteConsumerGroups(List.of(g)).all().get();
        Set<String> left = admin.listConsumerGroups().all().get().stream().map(ConsumerGroupListing::groupId).collect(Collectors.toSet());
        assertFalse(left.contains(g));
    }

    @Test
    void describeClusterNamesOneControllerNodeAndAClusterId() throws Exception {
        DescribeClusterResult c = admin.describeCluster();
        Collection<Node> nodes = c.nodes().get();
        assertEquals(1, nodes.size());
        Node n = nodes.iterator().next();
        assertEquals("127.0.0.1", n.host());
        assertEquals(BROKER.broker().port(), n.port());
        assertFalse(c.clusterId().get().isEmpty());
        assertEquals(n.id(), c.controller().get().id());
    }

    @Test
    void describeLogDirsShowsPartitionSizes() throws Exception {
        String t = Names.unique("admin-logdirs");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        produce(t, 0, 10);
        int node = admin.describeCluster().nodes().get().iterator().next().id();
        Map<String, LogDirDescription> dirs = admin.describeLogDirs(List.of(node)).allDescriptions().get().get(node);
        assertEquals(1, dirs.size(), dirs.toString());
        LogDirDescription dir = dirs.values().iterator().next();
        assertEquals(null, dir.error());
        ReplicaInfo p0 = dir.replicaInfos().get(new TopicPartition(t, 0));
        ReplicaInfo p1 = dir.replicaInfos().get(new TopicPartition(t, 1));
        assertTrue(p0.size() > 0, "partition 0 size " + p0.size());
        assertEquals(0, p1.size());
        assertTrue(dir.totalBytes().isPresent() && dir.usableBytes().isPresent());
    }
}
