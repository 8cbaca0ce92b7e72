package io.thorstream.compat;

import java.time.Duration;
import java.util.concurrent.Callable;

/** Waiting for a state, never for a fixed time: polls a condition until it holds or a deadline passes. */
public final class Wait {
    private Wait() {}

    public static void until(String what, Duration timeout, Callable<Boolean> condition) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Exception last = null;
        while (true) {
            try {
                if (Boolean.TRUE.equals(condition.call())) {
                    return;
                }
                last = null;
            } catch (IllegalStateException e) {
                throw e;
            } catch (Exception e) {
                last = e;
            }
            if (System.nanoTime() > deadline) {
                AssertionError err = new AssertionError("timed out after " + timeout.toMillis() + " ms waiting until " + what);
                if (last != null) {
                    err.initCause(last);
                }
                throw err;
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting until " + what, e);
            }
        }
    }
}
