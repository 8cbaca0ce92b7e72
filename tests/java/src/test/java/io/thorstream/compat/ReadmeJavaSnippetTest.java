package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The README's "Use it from Java" snippet runs as written, and the README still shows it verbatim. */
class ReadmeJavaSnippetTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Path SELF = Path.of("src/test/java/io/thorstream/compat/ReadmeJavaSnippetTest.java");
    private static final Path README = Path.of("../../README.md");

    @Test
    void snippetProducesConsumesAndCommits() throws Exception {
        String bootstrap = BROKER.bootstrap();
        // ---- README snippet ----
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap); // e.g. "localhost:9092"
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) { // idempotent, acks=all
            producer.send(new ProducerRecord<>("events", "user-1", "hello")).get();
        }

        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", "my-group");
        c.put("auto.offset.reset", "earliest");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of("events"));
            ConsumerRecords<String, String> records = consumer.poll(Duration.ofSeconds(10));
            records.forEach(r -> System.out.println(r.key() + " = " + r.value()));
            consumer.commitSync();
        }
        // ---- end of snippet ----
        try (Admin admin = Clients.admin(bootstrap)) {
            assertEquals(1, admin.listConsumerGroupOffsets("my-group").partitionsToOffsetAndMetadata().get()
                    .get(new TopicPartition("events", 0)).offset(), "the snippet's consumer read and committed the record");
        }
    }

    @Test
    void readmeShowsTheSnippetVerbatim() throws Exception {
        String src = Files.readString(SELF);
        String begin = "// ---- README snippet ----\n";
        String snippet = src.substring(src.indexOf(begin) + begin.length(), src.indexOf("        // ---- end of snippet ----"));
        String unindented = snippet.lines().map(l -> l.length() >= 8 ? l.substring(8) : l.strip())
                .reduce("", (a, l) -> a + l + "\n");
        String readme = Files.readString(README);
        assertTrue(readme.contains("```java\n" + unindented + "```"),
                "README.md's Java snippet differs from this test's; it should read:\n" + unindented);
    }
}
