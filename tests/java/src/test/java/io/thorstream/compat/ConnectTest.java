package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka Connect distributed: one worker (ConnectDistributed in a child JVM, as
 * bin/connect-distributed.sh runs it) with a file source and a file sink connector; its internal
 * topics are created compacted; lines go file → topic → file; after a restart the worker resumes
 * from its committed offsets without duplicating a line.
 */
class ConnectTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static final Duration T = Duration.ofSeconds(120);
    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newHttpClient();
    private final List<ChildJvm> workers = new ArrayList<>();
    private Path dir;

    @AfterEach
    void cleanup() {
        workers.forEach(ChildJvm::close);
        if (dir != null) {
            ThorstreamBroker.deleteTree(dir);
        }
    }

    ChildJvm startWorker(Path props, int restPort) {
        ChildJvm w = ChildJvm.start("org.apache.kafka.connect.cli.ConnectDistributed", List.of(props.toString()));
        workers.add(w);
        Wait.until("the Connect worker's REST API answers", T, () -> {
            String err = w.stderr();
            if (!w.isAlive() || err.contains("Failed to start Connect") || err.contains("exiting:")) {
                throw new IllegalStateException("Connect worker failed to start:\n" + w.stdout() + err);
            }
            return get(restPort, "/").statusCode() == 200;
        });
        return w;
    }

    HttpResponse<String> get(int port, String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    }

    void createConnector(int port, String name, Map<String, String> config) throws Exception {
        String body = JSON.writeValueAsString(Map.of("name", name, "config", config));
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/connectors"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(201, r.statusCode(), r.body());
    }

    void awaitRunning(int port, String name, ChildJvm worker) {
        Wait.until("connector " + name + " and its task RUNNING", T, () -> {
            if (!worker.isAlive()) {
                throw new IllegalStateException("Connect worker exited:\n" + worker.stderr());
            }
            HttpResponse<String> r = get(port, "/connectors/" + name + "/status");
            if (r.statusCode() != 200) {
                return false;
            }
            JsonNode s = JSON.readTree(r.body());
            if (r.body().contains("FAILED")) {
                throw new IllegalStateException("connector " + name + " failed: " + r.body());
            }
            return s.path("connector").path("state").asText().equals("RUNNING")
                    && s.path("tasks").size() == 1
                    && s.path("tasks").get(0).path("state").asText().equals("RUNNING");
        });
    }

    static List<String> lines(Path p) throws Exception {
        return Files.exists(p) ? Files.readAllLines(p, StandardCharsets.UTF_8) : List.of();
    }

    static void append(Path p, int from, int to) throws Exception {
        StringBuilder sb = new StringBuilder();
        IntStream.range(from, to).forEach(i -> sb.append("line-").append(i).append('\n'));
        Files.writeString(p, sb, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    static List<String> expected(int n) {
        return IntStream.range(0, n).mapToObj(i -> "line-" + i).toList();
    }

    /** {@code kill9}: the worker dies by SIGKILL (no final commit) after its offsets were committed. */
    @ParameterizedTest(name = "worker restarted after {0}")
    @ValueSource(strings = {"SIGTERM", "SIGKILL"})
    void fileToTopicToFileWithCompactedInternalTopicsAndResumeAfterRestart(String signal) throws Exception {
        dir = Files.createTempDirectory("connect-test-");
        Path source = dir.resolve("source.txt");
        Path sink = dir.resolve("sink.txt");
        String topic = Names.unique("connect-data");
        String configs = Names.unique("connect-configs");
        String offsets = Names.unique("connect-offsets");
        String statuses = Names.unique("connect-status");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        append(source, 0, 50);

        String sourceName = Names.unique("file-source");
        String sinkName = Names.unique("file-sink");
        int restPort = ThorstreamBroker.freePort();
        Path props = dir.resolve("worker.properties");
        Files.writeString(props, String.join("\n",
                "bootstrap.servers=" + BROKER.bootstrap(),
                "group.id=" + Names.unique("connect-cluster"),
                "key.converter=org.apache.kafka.connect.storage.StringConverter",
                "value.converter=org.apache.kafka.connect.storage.StringConverter",
                "config.storage.topic=" + configs,
                "offset.storage.topic=" + offsets,
                "status.storage.topic=" + statuses,
                "config.storage.replication.factor=1",
                "offset.storage.replication.factor=1",
                "status.storage.replication.factor=1",
                "offset.flush.interval.ms=500",
                "listeners=http://127.0.0.1:" + restPort,
                "rest.advertised.host.name=127.0.0.1",
                "plugin.discovery=service_load",
                // After a SIGKILL the dead worker and its sink consumer stay in their groups until
                // their sessions expire: keep those short, and reassign lost tasks at once.
                "session.timeout.ms=6000",
                "heartbeat.interval.ms=1000",
                "scheduled.rebalance.max.delay.ms=0",
                "connector.client.config.override.policy=All",
                ""));

        ChildJvm worker = startWorker(props, restPort);
        createConnector(restPort, sourceName, Map.of(
                "connector.class", LineFileSourceConnector.class.getName(), "tasks.max", "1",
                "file", source.toString(), "topic", topic));
        createConnector(restPort, sinkName, Map.of(
                "connector.class", LineFileSinkConnector.class.getName(), "tasks.max", "1",
                "file", sink.toString(), "topics", topic,
                "consumer.override.session.timeout.ms", "6000"));
        awaitRunning(restPort, sourceName, worker);
        awaitRunning(restPort, sinkName, worker);
        Wait.until("the sink file has the source's 50 lines", T, () -> lines(sink).size() >= 50);
        assertEquals(expected(50), lines(sink));

        // The worker created its three internal topics compacted (Connect refuses anything else).
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            for (String internal : List.of(configs, offsets, statuses)) {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, internal);
                Config c = admin.describeConfigs(List.of(r)).all().get().get(r);
                assertEquals("compact", c.get("cleanup.policy").value(), internal);
            }
            // Wait until both connectors' offsets are committed, then stop the worker gracefully.
            long sourceSize = Files.size(source);
            Wait.until("the source offset is committed at the end of the file", T, () -> {
                JsonNode o = JSON.readTree(get(restPort, "/connectors/" + sourceName + "/offsets").body());
                return o.path("offsets").size() == 1
                        && o.path("offsets").get(0).path("offset").path("position").asLong() == sourceSize;
            });
            TopicPartition tp = new TopicPartition(topic, 0);
            assertEquals(50, admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get().get(tp).offset());
            Wait.until("the sink's group committed offset 50", T, () -> {
                OffsetAndMetadata om = admin.listConsumerGroupOffsets("connect-" + sinkName)
                        .partitionsToOffsetAndMetadata().get().get(tp);
                return om != null && om.offset() == 50;
            });

            if (signal.equals("SIGKILL")) {
                worker.kill9();
            } else {
                worker.stop(Duration.ofSeconds(60));
            }
            append(source, 50, 80);

            // Restarted, it reads its connectors from the config topic and resumes from the offsets.
            ChildJvm again = startWorker(props, restPort);
            awaitRunning(restPort, sourceName, again);
            awaitRunning(restPort, sinkName, again);
            Wait.until("the sink file has 80 lines", T, () -> lines(sink).size() >= 80);
            Wait.until("the sink's group committed offset 80", T, () -> {
                OffsetAndMetadata om = admin.listConsumerGroupOffsets("connect-" + sinkName)
                        .partitionsToOffsetAndMetadata().get().get(tp);
                return om != null && om.offset() == 80;
            });
            assertEquals(expected(80), lines(sink), "each line exactly once after the restart");
            assertEquals(80, admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all().get().get(tp).offset(),
                    "the source did not send a line twice");
            assertTrue(again.isAlive());
        }
    }
}
