package io.thorstream.compat;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.sink.SinkConnector;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;

/** A file sink connector: appends each record's value and a newline to {@code file}. */
public final class LineFileSinkConnector extends SinkConnector {
    static final ConfigDef CONFIG = new ConfigDef()
            .define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "file to append lines to");

    private Map<String, String> props;

    @Override
    public void start(Map<String, String> props) {
        this.props = props;
    }

    @Override
    public Class<? extends Task> taskClass() {
        return LineFileSinkTask.class;
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

    public static final class LineFileSinkTask extends SinkTask {
        private String file;
        private Writer out;

        @Override
        public void start(Map<String, String> props) {
            file = props.get("file");
            try {
                out = new OutputStreamWriter(new FileOutputStream(file, true), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new ConnectException("open " + file, e);
            }
        }

        @Override
        public void put(Collection<SinkRecord> records) {
            try {
                for (SinkRecord r : records) {
                    out.write(String.valueOf(r.value()));
                    out.write('\n');
                }
                out.flush(); // whole lines only, visible to the test at once
            } catch (IOException e) {
                throw new ConnectException("write " + file, e);
            }
        }

        @Override
        public void flush(Map<TopicPartition, OffsetAndMetadata> offsets) {
            try {
                out.flush();
            } catch (IOException e) {
                throw new ConnectException("flush " + file, e);
            }
        }

        @Override
        public void stop() {
            try {
                if (out != null) {
                    out.close();
                }
            } catch (IOException e) {
                throw new ConnectException("close " + file, e);
            }
        }

        @Override
        public String version() {
            return "1";
        }
    }
}
