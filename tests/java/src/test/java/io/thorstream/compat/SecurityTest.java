package io.thorstream.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * The Java clients and Kafka's CLI tools over SASL_SSL with SCRAM-SHA-512 against a broker with
 * ACLs on: the first admin is created with {@code thorstream users add} before the first start
 * and is the super user; the server certificate (SAN IP:127.0.0.1) is made with the openssl CLI
 * and trusted by the clients as a PEM truststore. {@code kafka-configs --alter --add-config
 * 'SCRAM-SHA-512=[password=...]' --entity-type users} creates a user who then logs in;
 * {@code kafka-acls --add/--list/--remove} grants and withdraws its rights. Validated against
 * Apache Kafka 4.4 configured the same way (-Dthorstream.bin=a wrapper speaking this CLI).
 */
class SecurityTest {
    private static final Duration T = Duration.ofSeconds(90);
    private static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    private static final String ACLS = "org.apache.kafka.tools.AclCommand";
    private static final String ADMIN = "admin";
    private static final String ADMIN_PASSWORD = "admin-secret";

    private static Path certDir;
    private static Path ca;
    private static ThorstreamBroker broker;
    private static Path adminProperties;

    @RegisterExtension
    static final TestWatcher LOG_ON_FAILURE = new TestWatcher() {
        @Override
        public void testFailed(ExtensionContext context, Throwable cause) {
            if (broker != null) {
                System.err.println("---- broker log tail (" + broker.logFile() + ") ----\n" + broker.logTail());
            }
        }
    };

    @BeforeAll
    static void start() throws IOException {
        certDir = Files.createTempDirectory("thorstream-java-certs-");
        ca = makeCa(certDir);
        Path[] server = makeServerCert(certDir, ca);
        broker = new ThorstreamBroker(List.of("SASL_SSL"),
                "--ssl-cert", server[0].toString(), "--ssl-key", server[1].toString(),
                "--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
                "--authorizer", "acl", "--super-users", "User:" + ADMIN);
        broker.addUserOffline(ADMIN, "SCRAM-SHA-512", ADMIN_PASSWORD);
        broker.start();
        adminProperties = certDir.resolve("admin.properties");
        Properties p = new Properties();
        clientConfig(ADMIN, ADMIN_PASSWORD).forEach((k, v) -> p.setProperty(k, String.valueOf(v)));
        p.remove(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG);
        try (var w = Files.newBufferedWriter(adminProperties)) {
            p.store(w, "the super user's SASL_SSL settings (--command-config)");
        }
        // Ready = the super user's authenticated Metadata request is answered.
        Wait.until("an authenticated Metadata answer", T, () -> {
            try (Admin a = Admin.create(clientConfig(ADMIN, ADMIN_PASSWORD))) {
                a.listTopics().names().get(10, TimeUnit.SECONDS);
                return true;
            }
        });
    }

    @AfterAll
    static void stop() {
        if (broker != null) {
            broker.close();
        }
        if (certDir != null) {
            ThorstreamBroker.deleteTree(certDir);
        }
    }

    // ---- certificates (openssl CLI) ------------------------------------------------------

    private static void openssl(Path dir, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add("openssl");
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + " failed:\n" + out);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static Path makeCa(Path dir) {
        openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Thorstream test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
        return dir.resolve("ca.pem");
    }

    private static Path[] makeServerCert(Path dir, Path caPem) throws IOException {
        openssl(dir, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
        Files.writeString(dir.resolve("server.ext"), "basicConstraints=CA:FALSE\n"
                + "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                + "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", caPem.toString(), "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "825", "-sha256", "-extfile", "server.ext");
        return new Path[] {dir.resolve("server.pem"), dir.resolve("server.key")};
    }

    // ---- clients -------------------------------------------------------------------------

    static Map<String, Object> clientConfig(String user, String password) {
        return Map.of(
                CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap("SASL_SSL"),
                CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_SSL",
                SaslConfigs.SASL_MECHANISM, "SCRAM-SHA-512",
                SaslConfigs.SASL_JAAS_CONFIG, "org.apache.kafka.common.security.scram.ScramLoginModule required"
                        + " username=\"" + user + "\" password=\"" + password + "\";",
                SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
                SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, ca.toString(),
                CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, 15000,
                CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
    }

    static KafkaProducer<String, String> producer(String user, String password) {
        Map<String, Object> c = new java.util.HashMap<>(clientConfig(user, password));
        c.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        c.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        c.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 20000);
        c.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20000);
        return new KafkaProducer<>(c);
    }

    static ChildJvm.Result tool(String main, String... args) {
        List<String> all = new ArrayList<>(List.of("--bootstrap-server", broker.bootstrap("SASL_SSL"),
                "--command-config", adminProperties.toString()));
        all.addAll(List.of(args));
        return ChildJvm.run(T, main, all.toArray(String[]::new));
    }

    static void createTopic(String topic) throws Exception {
        try (Admin a = Admin.create(clientConfig(ADMIN, ADMIN_PASSWORD))) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    /** "MECHANISM:iterations" of each credential of {@code user} (empty: no such user). */
    static List<String> scramIterations(String user) throws Exception {
        try (Admin a = Admin.create(clientConfig(ADMIN, ADMIN_PASSWORD))) {
            var all = a.describeUserScramCredentials().all().get(30, TimeUnit.SECONDS);
            var d = all.get(user);
            return d == null ? List.of() : d.credentialInfos().stream()
                    .map(i -> i.mechanism() + ":" + i.iterations()).sorted().toList();
        }
    }

    // ---- tests ---------------------------------------------------------------------------

    @Test
    void producerAndGroupConsumerOverSaslSslScramSha512() throws Exception {
        String topic = Names.unique("sec-rt");
        String group = Names.unique("sec-g");
        createTopic(topic);
        try (KafkaProducer<String, String> p = producer(ADMIN, ADMIN_PASSWORD)) {
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get(30, TimeUnit.SECONDS);
            }
        }
        Map<String, Object> c = new java.util.HashMap<>(clientConfig(ADMIN, ADMIN_PASSWORD));
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            Wait.until("3 records consumed", T, () -> {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    got.add(r.value());
                }
                return got.size() >= 3;
            });
            consumer.commitSync();
            OffsetAndMetadata committed = consumer.committed(Set.of(new TopicPartition(topic, 0)))
                    .get(new TopicPartition(topic, 0));
            assertEquals(3, committed.offset());
        }
        assertEquals(List.of("v0", "v1", "v2"), got);
    }

    @Test
    void wrongPasswordIsAnAuthenticationErrorAndTheBrokerKeepsServing() throws Exception {
        try (Admin a = Admin.create(clientConfig(ADMIN, "not-" + ADMIN_PASSWORD))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> a.describeCluster().clusterId().get(30, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("invalid credentials"), e.getCause().getMessage());
        }
        try (Admin a = Admin.create(clientConfig(ADMIN, ADMIN_PASSWORD))) {
            assertFalse(a.describeCluster().nodes().get(30, TimeUnit.SECONDS).isEmpty());
        }
    }

    @Test
    void kafkaConfigsCreatesAUserAndKafkaAclsGrantsThenWithdrawsItsRights() throws Exception {
        String user = Names.unique("carol").replace('_', '-');
        String password = "carol-secret";
        String topic = Names.unique("sec-acl");
        createTopic(topic);

        tool(CONFIGS, "--alter", "--add-config", "SCRAM-SHA-512=[iterations=8192,password=" + password + "]",
                "--entity-type", "users", "--entity-name", user).assertSuccess();
        // (Waited for through the Admin API: `kafka-configs --describe --entity-type users` also
        // asks DescribeClientQuotas, which Thorstream does not implement.)
        Wait.until("the user's SCRAM-SHA-512 credential is described", T, () ->
                scramIterations(user).equals(List.of("SCRAM_SHA_512:8192")));

        // The new user logs in; without an ACL it sees no topic and may not write.
        try (Admin a = Admin.create(clientConfig(user, password))) {
            assertFalse(a.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));
        }
        try (KafkaProducer<String, String> p = producer(user, password)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(topic, 0, "k", "denied")).get(30, TimeUnit.SECONDS));
            assertInstanceOf(TopicAuthorizationException.class, e.getCause());
        }

        tool(ACLS, "--add", "--allow-principal", "User:" + user, "--operation", "Write",
                "--topic", topic).assertSuccess();
        Wait.until("kafka-acls --list shows the ACL", T, () -> {
            String out = tool(ACLS, "--list", "--topic", topic).assertSuccess().stdout();
            return out.contains("principal=User:" + user) && out.contains("operation=WRITE")
                    && out.contains("permissionType=ALLOW");
        });
        try (KafkaProducer<String, String> p = producer(user, password)) {
            assertEquals(0, p.send(new ProducerRecord<>(topic, 0, "k", "allowed")).get(30, TimeUnit.SECONDS).offset());
        }

        tool(ACLS, "--remove", "--force", "--allow-principal", "User:" + user, "--operation", "Write",
                "--topic", topic).assertSuccess();
        Wait.until("kafka-acls --list shows no ACL for the topic", T, () ->
                !tool(ACLS, "--list", "--topic", topic).assertSuccess().stdout().contains("User:" + user));
        try (KafkaProducer<String, String> p = producer(user, password)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(topic, 0, "k", "denied again")).get(30, TimeUnit.SECONDS));
            assertInstanceOf(TopicAuthorizationException.class, e.getCause());
        }

        // kafka-configs --delete-config removes the credential: the login is refused.
        tool(CONFIGS, "--alter", "--delete-config", "SCRAM-SHA-512", "--entity-type", "users",
                "--entity-name", user).assertSuccess();
        Wait.until("the credential is no longer described", T, () -> scramIterations(user).isEmpty());
        try (Admin a = Admin.create(clientConfig(user, password))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> a.listTopics().names().get(30, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause());
        }
    }
}
