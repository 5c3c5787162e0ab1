package kops.test;

import java.util.Collections;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.source.SourceConnector;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

/** A source connector kops's tests build into a local jar: it writes `count` greetings to `topic`. */
public class HelloSource extends SourceConnector {
    private Map<String, String> props;

    @Override public String version() { return "1.0-kops-test"; }
    @Override public void start(Map<String, String> p) { props = p; }
    @Override public Class<? extends Task> taskClass() { return HelloTask.class; }
    @Override public List<Map<String, String>> taskConfigs(int max) { return Collections.singletonList(props); }
    @Override public void stop() { }
    @Override public ConfigDef config() {
        return new ConfigDef()
            .define("topic", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "where the greetings go")
            .define("count", ConfigDef.Type.INT, 3, ConfigDef.Importance.LOW, "how many");
    }

    public static class HelloTask extends SourceTask {
        private String topic;
        private int count;
        private int sent;

        @Override public String version() { return "1.0-kops-test"; }
        @Override public void start(Map<String, String> p) {
            topic = p.get("topic");
            count = Integer.parseInt(p.getOrDefault("count", "3"));
        }
        @Override public List<SourceRecord> poll() throws InterruptedException {
            if (sent >= count) { Thread.sleep(500); return null; }
            sent++;
            return Collections.singletonList(new SourceRecord(Collections.singletonMap("hello", 0),
                Collections.singletonMap("n", sent), topic, Schema.STRING_SCHEMA, "hello " + sent + " from a local plugin"));
        }
        @Override public void stop() { }
    }
}
