package io.thorstream.compat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.source.SourceConnector;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

/**
 * A file source connector (connect-file is not in Maven Central for Kafka 4.x): each complete line
 * of {@code file} becomes a record on {@code topic}; the source offset is the byte position after
 * the line, so a restarted task resumes where the committed offset says.
 */
public final class LineFileSourceConnector extends SourceConnector {
    static final ConfigDef CONFIG = new ConfigDef()
            .define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "file to read lines from")
            .define("topic", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "topic to write them to");

    private Map<String, String> props;

    @Override
    public void start(Map<String, String> props) {
        this.props = props;
    }

    @Override
    public Class<? extends Task> taskClass() {
        return LineFileSourceTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        return List.of(props);
    }

    @Override
    public void stop() {}

    @Override
    public ConfigDef config() {
        return CONFIG;
    }

    @Override
    public String version() {
        return "1";
    }

    public static final class LineFileSourceTask extends SourceTask {
        private String file;
        private String topic;
        private long position;

        @Override
        public void start(Map<String, String> props) {
            file = props.get("file");
            topic = props.get("topic");
            Map<String, Object> stored = context.offsetStorageReader().offset(Map.of("file", file));
            position = stored == null ? 0 : ((Number) stored.get("position")).longValue();
        }

        @Override
        public List<SourceRecord> poll() throws InterruptedException {
            List<SourceRecord> out = new ArrayList<>();
            try (RandomAccessFile f = new RandomAccessFile(file, "r")) {
                long length = f.length();
                if (length > position) {
                    byte[] buf = new byte[(int) Math.min(length - position, 1 << 20)];
                    f.seek(position);
                    f.readFully(buf);
                    int lineStart = 0;
                    for (int i = 0; i < buf.length; i++) {
                        if (buf[i] == '\n') {
                            String line = new String(buf, lineStart, i - lineStart, StandardCharsets.UTF_8);
                            long next = position + i + 1;
                            out.add(new SourceRecord(Map.of("file", file), Map.of("position", next),
                                    topic, null, null, null, Schema.STRING_SCHEMA, line));
                            lineStart = i + 1;
                        }
                    }
                    position += lineStart;
                }
            } catch (IOException e) {
                throw new ConnectException("read " + file, e);
            }
            if (out.isEmpty()) {
                Thread.sleep(100); // poll interval: the worker expects poll() to block a little when idle
                return null;
            }
            return out;
        }

        @Override
        public void stop() {}

        @Override
        public String version() {
            return "1";
        }
    }
}
