package io.thorstream.compat;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * A consumer group member in its own JVM, so a test can kill it with SIGKILL (no LeaveGroup):
 * {@code GroupMemberMain BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS}. Prints
 * {@code ASSIGNED 0,2} after every rebalance, and polls until killed.
 */
public final class GroupMemberMain {
    private GroupMemberMain() {}

    public static void main(String[] args) {
        Properties props = Clients.consumerProps(args[0], args[1]);
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args[3]);
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(args[2]), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    TreeSet<Integer> ps = new TreeSet<>();
                    consumer.assignment().forEach(tp -> ps.add(tp.partition()));
                    StringBuilder sb = new StringBuilder("ASSIGNED ");
                    ps.forEach(p -> sb.append(p).append(','));
                    System.out.println(sb);
                    System.out.flush();
                }
            });
            while (true) {
                consumer.poll(Duration.ofMillis(200));
            }
        }
    }
}
