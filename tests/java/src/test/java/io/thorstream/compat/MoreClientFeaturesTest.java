package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Client features users turn on: read_committed, static membership, cooperative rebalancing, topic ids, group admin. */
class MoreClientFeaturesTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Duration T = Duration.ofSeconds(60);

    static void produce(String topic, int partition, int n) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap())) {
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, partition, "k" + i, "v" + i));
            }
            p.flush();
        }
    }

    @Test
    void readCommittedConsumerSeesNonTransactionalRecords() throws Exception {
        String t = Names.unique("read-committed");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        produce(t, 0, 5);
        Properties props = Clients.consumerProps(BROKER.bootstrap(), null);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            TopicPartition tp = new TopicPartition(t, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            assertEquals(5, Clients.pollExactly(c, 5, T).size());
            assertEquals(Map.of(tp, 5L), c.endOffsets(List.of(tp)), "last stable offset = high watermark");
        }
    }

    @Test
    void aRecordAboveMaxMessageBytesIsRefusedWithRecordTooLarge() throws Exception {
        String t = Names.unique("too-large");
        Clients.createTopic(BROKER.bootstrap(), t, 1, Map.of("max.message.bytes", "10000"));
        Properties props = Clients.producerProps(BROKER.bootstrap());
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(t, 0, "k", "x".repeat(20_000))).get());
            assertInstanceOf(RecordTooLargeException.class, e.getCause());
            assertEquals(0, p.send(new ProducerRecord<>(t, 0, "k", "small")).get().offset());
        }
    }

    @Test
    void aStaticMemberRestartedWithinItsSessionKeepsItsPartitionsWithoutARebalance() throws Exception {
        String t = Names.unique("static");
        String g = Names.unique("g-static");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        Properties props = Clients.consumerProps(BROKER.bootstrap(), g);
        props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-1");
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
                c.subscribe(List.of(t));
                assertEquals(2, Clients.awaitAssignment(c, T).size());
            }
            // A static member does not leave on close: it stays in the group until its session ends.
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).all().get().get(g);
            assertEquals(1, d.members().size(), d.toString());
            MemberDescription m = d.members().iterator().next();
            assertEquals("instance-1", m.groupInstanceId().orElse(null));
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
                c.subscribe(List.of(t));
                assertEquals(2, Clients.awaitAssignment(c, T).size());
                ConsumerGroupDescription after = admin.describeConsumerGroups(List.of(g)).all().get().get(g);
                assertEquals(1, after.members().size(), after.toString());
                assertEquals(GroupState.STABLE, after.groupState());
            }
            // removeMembersFromConsumerGroup: LeaveGroup naming the static member.
            admin.removeMembersFromConsumerGroup(g, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("instance-1")))).all().get();
            assertEquals(GroupState.EMPTY, admin.describeConsumerGroups(List.of(g)).all().get().get(g).groupState());
        }
    }

    @Test
    void cooperativeStickyMembersSplitAndKeepTheirPartitions() throws Exception {
        String t = Names.unique("coop");
        String g = Names.unique("g-coop");
        Clients.createTopic(BROKER.bootstrap(), t, 4);
        Properties props = Clients.consumerProps(BROKER.bootstrap(), g);
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<String, String> a = new KafkaConsumer<>(props);
             KafkaConsumer<String, String> b = new KafkaConsumer<>(props)) {
            a.subscribe(List.of(t));
            Wait.until("a alone holds all four", T, () -> {
                a.poll(Duration.ofMillis(100));
                return a.assignment().size() == 4;
            });
            b.subscribe(List.of(t));
            Wait.until("two each (incremental: a revokes two, b gets them in a second round)", T, () -> {
                a.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
                return a.assignment().size() == 2 && b.assignment().size() == 2;
            });
            Set<TopicPartition> kept = Set.copyOf(a.assignment());
            for (int p = 0; p < 4; p++) {
                produce(t, p, 2);
            }
            int[] got = {0};
            Wait.until("all 8 records consumed by the two", T, () -> {
                got[0] += a.poll(Duration.ofMillis(100)).count();
                got[0] += b.poll(Duration.ofMillis(100)).count();
                return got[0] == 8;
            });
            assertEquals(kept, a.assignment());
            try (Admin admin = Clients.admin(BROKER.bootstrap())) {
                assertEquals("cooperative-sticky", admin.describeConsumerGroups(List.of(g)).all().get().get(g).partitionAssignor());
            }
        }
    }

    @Test
    void topicsDescribedAndDeletedByTopicId() throws Exception {
        String t = Names.unique("by-id");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            TopicDescription byName = admin.describeTopics(List.of(t)).allTopicNames().get().get(t);
            Uuid id = byName.topicId();
            assertFalse(id.equals(Uuid.ZERO_UUID), "a topic id");
            Map<Uuid, TopicDescription> byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get();
            assertEquals(t, byId.get(id).name());
            assertEquals(2, byId.get(id).partitions().size());
            Uuid unknown = Uuid.randomUuid();
            ExecutionException e = assertThrows(ExecutionException.class, () -> admin.describeTopics(
                    TopicCollection.ofTopicIds(List.of(unknown))).allTopicIds().get());
            assertInstanceOf(UnknownTopicIdException.class, e.getCause());
            admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get();
            Wait.until("topic gone", T, () -> !admin.listTopics().names().get().contains(t));
        }
    }

    @Test
    void deleteConsumerGroupOffsetsForOnePartitionAndDescribeAnUnknownGroup() throws Exception {
        String t = Names.unique("offset-delete");
        String g = Names.unique("g-offdel");
        Clients.createTopic(BROKER.bootstrap(), t, 2);
        TopicPartition p0 = new TopicPartition(t, 0);
        TopicPartition p1 = new TopicPartition(t, 1);
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            admin.alterConsumerGroupOffsets(g, Map.of(p0, new OffsetAndMetadata(0), p1, new OffsetAndMetadata(0))).all().get();
            admin.deleteConsumerGroupOffsets(g, Set.of(p0)).all().get();
            Map<TopicPartition, OffsetAndMetadata> left = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
            assertEquals(Set.of(p1), left.keySet());

            // DescribeGroups v6 (KIP-1043): an unknown group is GROUP_ID_NOT_FOUND.
            String unknown = Names.unique("g-never");
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.describeConsumerGroups(List.of(unknown)).all().get());
            assertInstanceOf(GroupIdNotFoundException.class, e.getCause());
        }
    }

    @Test
    void consumerReadsAcrossRecordsDeletedUnderIt() throws Exception {
        String t = Names.unique("reset-after-delete");
        String g = Names.unique("g-reset");
        Clients.createTopic(BROKER.bootstrap(), t, 1);
        produce(t, 0, 10);
        TopicPartition tp = new TopicPartition(t, 0);
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            admin.alterConsumerGroupOffsets(g, Map.of(tp, new OffsetAndMetadata(2))).all().get();
            admin.deleteRecords(Map.of(tp, org.apache.kafka.clients.admin.RecordsToDelete.beforeOffset(6))).all().get();
        }
        // Its committed offset 2 is now below the log start: auto.offset.reset=earliest → offset 6.
        Properties props = Clients.consumerProps(BROKER.bootstrap(), g);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(t));
            List<ConsumerRecord<String, String>> got = Clients.pollExactly(c, 4, T);
            assertEquals(6, got.get(0).offset());
        }
    }
}
