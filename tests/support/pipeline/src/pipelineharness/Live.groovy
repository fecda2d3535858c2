package pipelineharness

import groovy.json.JsonOutput

import java.util.concurrent.CompletableFuture
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.ExecutionException
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledExecutorService
import java.util.concurrent.ScheduledFuture
import java.util.concurrent.ThreadFactory
import java.util.concurrent.TimeUnit

/**
 * Live mode: the build runs with real processes, a real workspace, real time and real aborts.
 * The harness JVM runs one build; work that needs the outside world is a callback to the Python
 * side (tests/support/pipeline/live.py) over the JSON-lines protocol:
 *
 *   harness -> python  {"callback": "sh"|"checkout", "cb": n, "args": {...}}   (answered once)
 *                      {"callback": "podStart"|"podStop", ...}                 (agent pods: LiveDsl.podNode)
 *                      {"signal": "stop"|"abandon", "target": n}              (no answer)
 *                      {"log": "line"}                                         (the console, as it grows)
 *                      the final answer (one line with "result")
 *   python -> harness  {"cb": n, "answer": {...}}
 *                      {"output": n, "lines": ["...", ...]}                    (output of callback n, for the log)
 *                      {"control": "abort", "user": "..."}                     (the abort button)
 *
 * Interruption follows workflow-cps: an abort (CpsFlowExecution.interrupt) or an expired timeout
 * (TimeoutStepExecution.cancel -> BodyExecution.cancel) calls stop(cause) on the innermost running
 * step only (getCurrentExecutions(true)); the step then fails with the FlowInterruptedException and
 * the build unwinds through its blocks (withCredentials unbinds, post runs). When no step is running
 * the interruption is kept and fails the next step that starts (within the interrupted block).
 */
class Live {
    final PrintStream out
    /** DurableTaskStep.REMOTE_TIMEOUT (default 20 s): a stopped sh fails this long after the stop even if the process lives on. */
    final long remoteTimeoutMs
    /** TimeoutStepExecution.GRACE_PERIOD (60 s outside unit tests): then the body's steps are failed forcibly. */
    final long gracePeriodMs
    /** The agent's own environment (Computer.getEnvironment(): the agent process' variables). */
    final Map<String, String> agentEnv
    final String nodeName

    Build build
    final ScheduledExecutorService timers = Executors.newScheduledThreadPool(1, { Runnable r ->
        Thread t = new Thread(r, 'live-timers')
        t.daemon = true
        t
    } as ThreadFactory)

    private final Map<Integer, Closure> pending = new ConcurrentHashMap<>()
    private final Set<Integer> abandoned = ConcurrentHashMap.newKeySet()
    private int nextCb = 0

    /** Open interruption scopes: [0] is the build itself (abort), then enclosing timeout blocks. */
    private final List<Scope> scopes = []
    private Leaf current
    final Scope buildScope = new Scope(name: 'build')

    Live(PrintStream out, Map options) {
        this.out = out
        Map o = options ?: [:]
        this.remoteTimeoutMs = seconds(o.remoteTimeoutSeconds, 20)
        this.gracePeriodMs = seconds(o.timeoutGraceSeconds, 60)
        this.agentEnv = ((Map) (o.agentEnv ?: [PATH: '/usr/local/bin:/usr/bin:/bin'])).collectEntries { k, v -> [(k.toString()): v.toString()] } as Map<String, String>
        this.nodeName = (o.nodeName ?: 'built-in').toString()
        scopes << buildScope
    }

    private static long seconds(Object value, long dflt) {
        BigDecimal v = value != null ? new BigDecimal(value.toString()) : new BigDecimal(dflt)
        (v * 1000).longValue()
    }

    void attach(Build b) {
        this.build = b
    }

    // ------------------------------------------------------------------------------------------
    // Protocol

    synchronized void send(Map message) {
        out.println(JsonOutput.toJson(message))
        out.flush()
    }

    void logLine(String line) {
        send([log: line])
    }

    /** Sends a callback; onAnswer runs on the reader thread with the answer map. */
    int callback(String kind, Map args, Closure onAnswer) {
        int cb
        synchronized (this) {
            cb = ++nextCb
        }
        pending[cb] = onAnswer
        send([callback: kind, cb: cb, args: Json.clean(args)])
        cb
    }

    void signal(String kind, int target) {
        send([signal: kind, target: target])
    }

    /** One line from Python (called on the reader thread). */
    void receive(Map message) {
        if (message.control == 'abort') {
            abort((message.user ?: 'anonymous').toString())
        } else if (message.output != null) {
            int target = message.output as int
            if (!abandoned.contains(target)) {
                ((List) (message.lines ?: [])).each { build.log(it.toString()) }
            }
        } else if (message.cb != null) {
            Closure c = pending.remove(message.cb as int)
            c?.call((Map) (message.answer ?: [:]))
        }
    }

    void abandon(int cb) {
        abandoned << cb
        signal('abandon', cb)
    }

    // ------------------------------------------------------------------------------------------
    // Interruption

    static class Scope {
        String name
        FlowInterruptedException pendingInterruption
        boolean closed
    }

    /** A running step execution that another thread may stop (sh, checkout, sleep). */
    abstract static class Leaf {
        final CompletableFuture<Object> outcome = new CompletableFuture<>()
        List<Scope> scopes = []
        FlowInterruptedException stoppedBy

        /** StepExecution.stop(cause). */
        abstract void stop(FlowInterruptedException cause)

        void fail(Throwable t) {
            outcome.completeExceptionally(t)
        }
    }

    /**
     * The abort button: Executor.interrupt(ABORTED, UserInterruption) -> CpsFlowExecution.interrupt,
     * which sets the build result and calls CpsThread.stop on the innermost thread: its running
     * step's StepExecution.stop, or, with no step running, an outcome thrown at the next step.
     */
    void abort(String user) {
        build.log("Aborted by ${user}")
        build.setResult('ABORTED')  // CpsFlowExecution.interrupt: setResult(result) first
        interrupt(buildScope, new FlowInterruptedException('ABORTED', "Aborted by ${user}", 'UserInterruption', buildScope))
    }

    /** Stops the innermost running step if it runs inside the scope, else keeps the interruption for the next step. */
    void interrupt(Scope scope, FlowInterruptedException cause) {
        Leaf leaf = null
        synchronized (this) {
            if (scope.closed) {
                return
            }
            if (current != null && current.scopes.contains(scope)) {
                leaf = current
            } else if (scope.pendingInterruption == null) {
                scope.pendingInterruption = cause
            }
        }
        leaf?.stop(cause)
    }

    /** TimeoutStepExecution.cancel when forcible: the body's running step fails at once (StepContext.onFailure). */
    void force(Scope scope, FlowInterruptedException death) {
        Leaf leaf = null
        synchronized (this) {
            if (!scope.closed && current != null && current.scopes.contains(scope)) {
                leaf = current
            }
        }
        leaf?.fail(death)
    }

    /** A step starts: an interruption kept for an open scope fails it. */
    void checkInterrupted() {
        FlowInterruptedException pendingCause = null
        synchronized (this) {
            Scope s = scopes.find { it.pendingInterruption != null }
            if (s != null) {
                pendingCause = s.pendingInterruption
                s.pendingInterruption = null
            }
        }
        if (pendingCause != null) {
            throw pendingCause
        }
    }

    synchronized Scope openScope(String name) {
        Scope s = new Scope(name: name)
        scopes << s
        s
    }

    synchronized void closeScope(Scope s) {
        s.closed = true
        scopes.remove(s)
    }

    /** Runs a leaf step on the pipeline thread: registers it as the innermost execution, then waits for its outcome. */
    Object await(Leaf leaf) {
        FlowInterruptedException pendingCause = null
        synchronized (this) {
            leaf.scopes = new ArrayList<>(scopes)
            current = leaf
            Scope s = scopes.find { it.pendingInterruption != null }
            if (s != null) {
                pendingCause = s.pendingInterruption
                s.pendingInterruption = null
            }
        }
        if (pendingCause != null) {
            leaf.stop(pendingCause)
        }
        try {
            while (true) {
                try {
                    return leaf.outcome.get()
                } catch (InterruptedException ignored) {
                    // only a step's outcome ends the wait
                }
            }
        } catch (ExecutionException e) {
            throw e.cause
        } finally {
            synchronized (this) {
                current = null
            }
        }
    }

    ScheduledFuture<?> schedule(long delayMs, Closure action) {
        timers.schedule({
            try {
                action.call()
            } catch (Throwable t) {
                System.err.println("live timer: ${t}")
                t.printStackTrace()
            }
        } as Runnable, Math.max(0L, delayMs), TimeUnit.MILLISECONDS)
    }

    /** A leaf answered by one Python callback (checkout): stopping it fails it at once; a later answer is ignored. */
    static class CallbackLeaf extends Leaf {
        final Live live
        final String kind
        final Map args
        int cb

        CallbackLeaf(Live live, String kind, Map args) {
            this.live = live
            this.kind = kind
            this.args = args
        }

        CallbackLeaf start() {
            CompletableFuture<Object> done = outcome
            cb = live.callback(kind, args) { Map answer -> done.complete(answer) }
            this
        }

        void stop(FlowInterruptedException cause) {
            stoppedBy = cause
            live.abandon(cb)
            fail(cause)
        }
    }

    /**
     * sh (DurableTaskStep.Execution): the Python executor runs the process; stop() is
     * Execution.stop: "Sending interrupt signal to process", Controller.stop (the executor kills by
     * JENKINS_SERVER_COOKIE like ProcessTree.killAll), and a stopTask that after REMOTE_TIMEOUT
     * prints "After 20s process did not stop" and fails the step with the cause (then cleans up the
     * control directory: 'abandon'). When the process exits first, handleExit fails the step with
     * causeOfStoppage whatever the exit code.
     */
    static class ShLeaf extends Leaf {
        final Live live
        final Map args
        int cb
        Map answer
        ScheduledFuture<?> stopTask

        ShLeaf(Live live, Map args) {
            this.live = live
            this.args = args
        }

        ShLeaf start() {
            ShLeaf self = this
            cb = live.callback('sh', args) { Map a -> self.exited(a) }
            this
        }

        synchronized void exited(Map a) {
            if (outcome.isDone()) {
                return
            }
            answer = a
            stopTask?.cancel(false)
            if (stoppedBy != null) {
                fail(stoppedBy)
            } else {
                outcome.complete(a)
            }
        }

        void stop(FlowInterruptedException cause) {
            synchronized (this) {
                if (stoppedBy != null || outcome.isDone()) {
                    return
                }
                stoppedBy = cause
            }
            live.build.log('Sending interrupt signal to process')
            ShLeaf self = this
            stopTask = live.schedule(live.remoteTimeoutMs) { self.remoteTimeout(cause) }
            live.signal('stop', cb)
        }

        void remoteTimeout(FlowInterruptedException cause) {
            synchronized (this) {
                if (outcome.isDone()) {
                    return
                }
                long ms = live.remoteTimeoutMs
                live.build.log("After ${ms % 1000 == 0 ? ms.intdiv(1000) : ms / 1000.0d}s process did not stop".toString())
                fail(cause)
            }
            live.abandon(cb)
        }
    }

    /** SleepStep: a real wait; stop fails it at once (SleepStepExecution.stop). */
    static class SleepLeaf extends Leaf {
        final Live live
        ScheduledFuture<?> task

        SleepLeaf(Live live) {
            this.live = live
        }

        SleepLeaf start(long millis) {
            CompletableFuture<Object> done = outcome
            task = live.schedule(millis) { done.complete(null) }
            this
        }

        void stop(FlowInterruptedException cause) {
            task?.cancel(false)
            stoppedBy = cause
            fail(cause)
        }
    }

    // ------------------------------------------------------------------------------------------

    /** hudson.Util.getTimeSpanString with the English messages of hudson/Messages.properties. */
    static String timeSpan(long duration) {
        long[] sizes = [365L * 24 * 3600 * 1000, 30L * 24 * 3600 * 1000, 24L * 3600 * 1000, 3600L * 1000, 60L * 1000, 1000L]
        List<String> names = ['yr', 'mo', 'day', 'hr', 'min', 'sec']
        long rest = duration
        long[] q = new long[6]
        for (int i = 0; i < 6; i++) {
            q[i] = rest.intdiv(sizes[i])
            rest = rest % sizes[i]
        }
        long millis = rest
        Closure<String> unit = { int i, long n ->
            String name = names[i]
            if (name == 'day') {
                name = n == 1 ? 'day' : 'days'
            }
            "${n} ${name}".toString()
        }
        for (int i = 0; i < 5; i++) {
            if (q[i] > 0) {
                // makeTimeSpanString: only the big unit from 10 on, else big and small
                return q[i] >= 10 ? unit(i, q[i]) : "${unit(i, q[i])} ${unit(i + 1, q[i + 1])}".toString()
            }
        }
        long seconds = q[5]
        if (seconds >= 10) {
            return "${seconds} sec".toString()
        } else if (seconds >= 1) {
            return "${formatFloat(seconds + millis.intdiv(100) / 10.0f)} sec".toString()
        } else if (millis >= 100) {
            return "${formatFloat(millis.intdiv(10) / 100.0f)} sec".toString()
        }
        "${millis} ms".toString()
    }

    private static String formatFloat(Number f) {
        java.text.MessageFormat.format('{0}', f.floatValue())
    }
}
