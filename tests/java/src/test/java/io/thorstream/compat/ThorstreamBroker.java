package io.thorstream.compat;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The real release broker binary as a child process: a free loopback port, a temporary data
 * directory, started and waited for until it accepts connections, stopped (SIGTERM) or killed
 * (SIGKILL) and restarted on the same port and data directory.
 *
 * <p>The binary is {@code -Dthorstream.bin} if set, else {@code $CARGO_TARGET_DIR/release/thorstream},
 * else {@code target/release/thorstream} of the repository (tests/java/run.sh builds it).
 */
public final class ThorstreamBroker implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(30);

    private final Path binary;
    private final Path dataDir;
    private final Path logFile;
    private final int port;
    private final List<String> extraArgs;
    /** Security protocol -> port when started with {@code --listeners}; empty: {@code --listen}. */
    private final java.util.LinkedHashMap<String, Integer> listeners = new java.util.LinkedHashMap<>();
    private Process process;

    public ThorstreamBroker(String... extraArgs) {
        this(List.of(), extraArgs);
    }

    /**
     * A broker with one listener per protocol in {@code protocols} (e.g. SASL_SSL), each on a free
     * loopback port, started with {@code --listeners PROTOCOL://127.0.0.1:PORT,...};
     * {@link #port()} is the first one's.
     */
    public ThorstreamBroker(List<String> protocols, String... extraArgs) {
        this.binary = binaryPath();
        for (String protocol : protocols) {
            listeners.put(protocol, freePort());
        }
        this.port = listeners.isEmpty() ? freePort() : listeners.values().iterator().next();
        this.extraArgs = List.of(extraArgs);
        try {
            this.dataDir = Files.createTempDirectory("thorstream-java-data-");
            this.logFile = Files.createTempFile("thorstream-java-broker-", ".log");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path binaryPath() {
        String explicit = System.getProperty("thorstream.bin");
        if (explicit != null && !explicit.isEmpty()) {
            return Path.of(explicit);
        }
        String targetDir = System.getenv("CARGO_TARGET_DIR");
        Path root = Path.of(System.getProperty("user.dir")).toAbsolutePath().getParent().getParent();
        Path target = targetDir != null && !targetDir.isEmpty() ? Path.of(targetDir) : root.resolve("target");
        if (!target.isAbsolute()) {
            target = root.resolve(target);
        }
        return target.resolve("release").resolve("thorstream");
    }

    /** A loopback port nobody listens on right now (the OS picks it). */
    public static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String bootstrap() {
        return "127.0.0.1:" + port;
    }

    public int port() {
        return port;
    }

    /** The address of the listener of {@code protocol} (a broker made with protocols). */
    public String bootstrap(String protocol) {
        Integer p = listeners.get(protocol);
        if (p == null) {
            throw new IllegalArgumentException("no " + protocol + " listener");
        }
        return "127.0.0.1:" + p;
    }

    /**
     * {@code thorstream users add NAME --mechanism M --password-stdin --data-dir D} on the stopped
     * broker's data directory (the first admin, before the first start).
     */
    public void addUserOffline(String name, String mechanism, String password) {
        List<String> cmd = List.of(binary.toString(), "users", "add", name, "--mechanism", mechanism,
                "--password-stdin", "--data-dir", dataDir.toString());
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile())).start();
            p.getOutputStream().write((password + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            p.getOutputStream().close();
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + " failed:\n" + logTail());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public Path dataDir() {
        return dataDir;
    }

    public Path logFile() {
        return logFile;
    }

    /** Starts the broker and returns once it accepts TCP connections on its port. */
    public synchronized ThorstreamBroker start() {
        if (process != null && process.isAlive()) {
            throw new IllegalStateException("broker already running");
        }
        if (!Files.isExecutable(binary)) {
            throw new IllegalStateException("no broker binary at " + binary
                    + " (build it: cargo build --release --bin thorstream)");
        }
        List<String> cmd = new ArrayList<>();
        cmd.add(binary.toString());
        if (listeners.isEmpty()) {
            cmd.add("--listen");
            cmd.add(bootstrap());
        } else {
            cmd.add("--listeners");
            cmd.add(String.join(",", listeners.entrySet().stream()
                    .map(e -> e.getKey() + "://127.0.0.1:" + e.getValue()).toList()));
        }
        cmd.add("--data-dir");
        cmd.add(dataDir.toString());
        cmd.add("--workers");
        cmd.add("2");
        cmd.addAll(extraArgs);
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "warn");
        try {
            process = pb.start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Process p = process;
        List<Integer> ports = listeners.isEmpty() ? List.of(port) : List.copyOf(listeners.values());
        Wait.until("broker accepts connections on " + ports, START_TIMEOUT, () -> {
            if (!p.isAlive()) {
                throw new IllegalStateException("broker exited with " + p.exitValue() + ":\n" + logTail());
            }
            for (int each : ports) {
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress("127.0.0.1", each), 500);
                } catch (IOException e) {
                    return false;
                }
            }
            return true;
        });
        return this;
    }

    /** SIGTERM, and waits for the process to exit. */
    public synchronized void stop() {
        if (process == null) {
            return;
        }
        process.destroy();
        waitExit(process);
        process = null;
    }

    /** SIGKILL: no shutdown path runs. */
    public synchronized void kill9() {
        if (process == null) {
            return;
        }
        process.destroyForcibly();
        waitExit(process);
        process = null;
    }

    private static void waitExit(Process p) {
        try {
            if (!p.waitFor(20, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
        }
    }

    public String logTail() {
        try {
            List<String> lines = Files.readAllLines(logFile);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no broker log: " + e + ")";
        }
    }

    @Override
    public synchronized void close() {
        kill9();
        deleteTree(dataDir);
        try {
            Files.deleteIfExists(logFile);
        } catch (IOException e) {
            // a temp file: nothing else to do
        }
    }

    static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
