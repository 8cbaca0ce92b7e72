package io.thorstream.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Java clients with their default settings, pointed at a broker; helpers shared by the tests. */
public final class Clients {
    private Clients() {}

    public static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return p;
    }

    public static KafkaProducer<String, String> producer(String bootstrap) {
        return new KafkaProducer<>(producerProps(bootstrap));
    }

    public static Properties consumerProps(String bootstrap, String groupId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        if (groupId != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        }
        return p;
    }

    public static KafkaConsumer<String, String> consumer(String bootstrap, String groupId) {
        return new KafkaConsumer<>(consumerProps(bootstrap, groupId));
    }

    public static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    public static void createTopic(String bootstrap, String topic, int partitions) {
        createTopic(bootstrap, topic, partitions, Map.of());
    }

    public static void createTopic(String bootstrap, String topic, int partitions, Map<String, String> configs) {
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(configs))).all().get();
        } catch (InterruptedException | ExecutionException e) {
            throw new AssertionError("create topic " + topic, e);
        }
    }

    /** Polls until {@code count} records arrived (fails on more, or on the deadline). */
    public static List<ConsumerRecord<String, String>> pollExactly(
            KafkaConsumer<String, String> consumer, int count, Duration timeout) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        Wait.until(count + " records (have " + out.size() + ")", timeout, () -> {
            consumer.poll(Duration.ofMillis(200)).forEach(out::add);
            if (out.size() > count) {
                throw new IllegalStateException("expected " + count + " records, got " + out.size() + ": " + out);
            }
            return out.size() == count;
        });
        return out;
    }

    /** Polls until the consumer's assignment is non-empty (a group join completed). */
    public static Set<TopicPartition> awaitAssignment(KafkaConsumer<?, ?> consumer, Duration timeout) {
        Wait.until("a partition assignment", timeout, () -> {
            consumer.poll(Duration.ofMillis(100));
            return !consumer.assignment().isEmpty();
        });
        return consumer.assignment();
    }
}
