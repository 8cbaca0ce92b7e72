package io.thorstream.compat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A main class run in a child JVM on the test classpath (target/test-classes plus the jars in
 * target/classpath.txt, which the pom's dependency plugin writes): Kafka's CLI tools, the Connect
 * worker, a group member the tests kill with SIGKILL. Its stdout and stderr go to files.
 */
public final class ChildJvm implements AutoCloseable {
    private final Process process;
    private final Path out;
    private final Path err;
    private final String description;

    private ChildJvm(Process process, Path out, Path err, String description) {
        this.process = process;
        this.out = out;
        this.err = err;
        this.description = description;
    }

    public static String classpath() {
        Path base = Path.of(System.getProperty("user.dir"));
        Path cpFile = base.resolve("target").resolve("classpath.txt");
        try {
            return base.resolve("target").resolve("test-classes") + java.io.File.pathSeparator
                    + Files.readString(cpFile).trim();
        } catch (IOException e) {
            throw new UncheckedIOException("read " + cpFile + " (written by mvn's generate-test-resources)", e);
        }
    }

    public static ChildJvm start(String mainClass, List<String> args) {
        return start(mainClass, args, null);
    }

    /** Starts {@code mainClass args}; {@code stdin} (may be null) is fed to it, then closed. */
    public static ChildJvm start(String mainClass, List<String> args, Path stdin) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx512m");
        cmd.add("-XX:TieredStopAtLevel=1"); // short-lived tools: start fast
        cmd.add("-XX:+UseSerialGC");
        cmd.add("-cp");
        cmd.add(classpath());
        cmd.add(mainClass);
        cmd.addAll(args);
        try {
            Path out = Files.createTempFile("child-jvm-", ".out");
            Path err = Files.createTempFile("child-jvm-", ".err");
            ProcessBuilder pb = new ProcessBuilder(cmd)
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile());
            if (stdin != null) {
                pb.redirectInput(stdin.toFile());
            } else {
                pb.redirectInput(ProcessBuilder.Redirect.PIPE);
            }
            Process p = pb.start();
            if (stdin == null) {
                p.getOutputStream().close();
            }
            String simpleName = mainClass.substring(mainClass.lastIndexOf('.') + 1);
            return new ChildJvm(p, out, err, simpleName + " " + String.join(" ", args));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Output of a finished tool run. */
    public record Result(int exitCode, String stdout, String stderr, String description) {
        public Result assertSuccess() {
            if (exitCode != 0) {
                throw new AssertionError(description + " exited with " + exitCode
                        + "\n--- stdout ---\n" + stdout + "\n--- stderr ---\n" + stderr);
            }
            return this;
        }

        public List<String> lines() {
            return stdout.lines().filter(l -> !l.isBlank()).toList();
        }
    }

    /** Runs a tool to completion (killing it after {@code timeout}). */
    public static Result run(Duration timeout, String mainClass, String... args) {
        return runWithInput(timeout, null, mainClass, args);
    }

    public static Result runWithInput(Duration timeout, Path stdin, String mainClass, String... args) {
        try (ChildJvm jvm = start(mainClass, List.of(args), stdin)) {
            return jvm.await(timeout);
        }
    }

    public Result await(Duration timeout) {
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                kill9();
                throw new AssertionError(description + " did not finish within " + timeout
                        + "\n--- stdout ---\n" + stdout() + "\n--- stderr ---\n" + stderr());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
        return new Result(process.exitValue(), stdout(), stderr(), description);
    }

    public String stdout() {
        return read(out);
    }

    public String stderr() {
        return read(err);
    }

    public List<String> stdoutLines() {
        return stdout().lines().toList();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    public long pid() {
        return process.pid();
    }

    /** SIGTERM and wait: the JVM's shutdown hooks run (Connect's graceful stop). */
    public void stop(Duration timeout) {
        process.destroy();
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError(description + " did not stop within " + timeout + "\n" + stderr());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** SIGKILL: nothing of the child's shutdown path runs. */
    public void kill9() {
        process.destroyForcibly();
        try {
            process.waitFor(20, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            kill9();
        }
        try {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        } catch (IOException e) {
            // temp files; nothing to do
        }
    }
}
