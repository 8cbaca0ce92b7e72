package io.thorstream.compat;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * One broker per test class: {@code @RegisterExtension static final BrokerExtension BROKER = new BrokerExtension();}.
 * Tests in the class are independent and use fresh topic names ({@link Names}). A failing test
 * gets the broker log's tail in the test output.
 */
public final class BrokerExtension implements BeforeAllCallback, AfterAllCallback, TestWatcher {
    private final String[] extraArgs;
    private ThorstreamBroker broker;

    public BrokerExtension(String... extraArgs) {
        this.extraArgs = extraArgs;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        broker = new ThorstreamBroker(extraArgs).start();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        if (broker != null) {
            broker.close();
        }
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        if (broker != null) {
            System.err.println("---- broker log tail (" + broker.logFile() + ") ----\n" + broker.logTail());
        }
    }

    public ThorstreamBroker broker() {
        return broker;
    }

    public String bootstrap() {
        return broker.bootstrap();
    }
}
