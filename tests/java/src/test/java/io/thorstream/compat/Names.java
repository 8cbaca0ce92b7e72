package io.thorstream.compat;

import java.util.concurrent.atomic.AtomicInteger;

/** Fresh topic and group names, so tests sharing a broker never see each other's data. */
public final class Names {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final String RUN = Long.toString(System.currentTimeMillis() % 100000, 36);

    private Names() {}

    public static String unique(String prefix) {
        return prefix + "-" + RUN + "-" + SEQ.incrementAndGet();
    }
}
