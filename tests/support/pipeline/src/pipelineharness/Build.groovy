package pipelineharness

import java.security.MessageDigest

/**
 * The state of one emulated build: its environment, result, clock, workspace files, stages, and
 * the ordered trace every step call is recorded into.
 */
class Build {

    /** hudson.model.Result in ordinal order; combine() keeps the worse of two. */
    static final List<String> RESULTS = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']

    static String worse(String a, String b) {
        RESULTS.indexOf(a ?: 'SUCCESS') >= RESULTS.indexOf(b ?: 'SUCCESS') ? (a ?: 'SUCCESS') : b
    }

    static boolean isWorse(String a, String b) { RESULTS.indexOf(a) > RESULTS.indexOf(b) }

    static final int MAX_STEPS = 20000

    final Map scenario
    final Map job
    final Library library
    final Dsl dsl
    final Declarative declarative
    /** Live mode (real processes, workspace and time; see Live): null for the stub mode. */
    final Live live

    /** Run.getResult(): null while running until something sets it. */
    String result
    final long startTime
    long clock

    /** Run.getEnvironment() plus EnvActionImpl overrides (env.X = ...); case-insensitive like hudson.EnvVars. */
    final TreeMap<String, String> runEnv = new TreeMap<>(String.CASE_INSENSITIVE_ORDER)
    /** EnvironmentExpanders of enclosing withEnv/withCredentials blocks, innermost last. */
    final List<Map<String, String>> expanders = []
    /** The contextual environment of the enclosing node (Computer.getEnvironment + WORKSPACE). */
    Map<String, String> nodeEnv
    /** The enclosing podTemplate (kubernetes plugin): label, yaml, containers (names); null outside one. */
    Map pod
    /** Whether the enclosing node is a pod of that template (a KubernetesSlave), and the container step's choice. */
    boolean inPod
    String container
    int podsStarted = 0
    /** How many checkouts each scenario `checkout` answer gave (answers with `times`). */
    final Map<Map, Integer> checkoutsAnswered = new IdentityHashMap<>()
    /** podTemplate steps started so far: each gets a label of its own. */
    int podTemplates = 0
    /** A parallel branch stopped by failFast: its next step fails with this (ParallelStep's FailFastCause). */
    FlowInterruptedException pendingStop
    /** Agent pods that went away (a scenario sh rule's agentLost): their node blocks can do nothing more. */
    final Set<String> lostNodes = new HashSet<>()
    final List<String> cwd = []
    final Map<String, byte[]> files = new TreeMap<>()
    final Map<String, Map<String, byte[]>> stashes = [:]
    final List<List<Map>> changeSets = []
    final Map<String, Object> paramValues = new LinkedHashMap<>()
    /** Live mode: the SCMs checked out (what WorkflowJob.getSCMs() reports after the build). */
    final List<Map> scms = []

    final List<Map> trace = []
    final List<String> log = []
    final List<Map> leaks = []
    final List<Map> violations = []
    final List<Map> stages = []
    final List<Map> stageStack = []
    final List<Map> secrets = []
    final Map<String, Class> scriptClasses = [:]
    final Map<String, Object> varInstances = [:]
    int depth = 0
    int counter = 0

    Build(Map scenario, Library library, Live live = null) {
        this.scenario = scenario ?: [:]
        this.job = (Map) (this.scenario.job ?: [:])
        this.library = library
        this.live = live
        this.startTime = live != null ? System.currentTimeMillis() : (job.startTime ?: 1700000000000L) as long
        this.clock = startTime
        initEnvironment()
        addParameters([:])
        initSecrets()
        this.dsl = live != null ? new LiveDsl(this, live) : new Dsl(this)
        this.declarative = new Declarative(this)
        live?.attach(this)
    }

    /** The build's clock: simulated (advanced by steps' durations) in stub mode, the real one in live mode. */
    long now() {
        live != null ? System.currentTimeMillis() : clock
    }

    // ------------------------------------------------------------------------------------------
    // Environment

    String getJobName() { job.name ?: 'enadu/backend' }

    int getNumber() { (job.buildNumber ?: 1) as int }

    String getJenkinsUrl() { job.jenkinsUrl ?: 'https://jenkins.example.test/' }

    String getJobUrl() { jenkinsUrl + jobName.split('/').collect { "job/${it}/" }.join('') }

    String getBuildUrl() { "${jobUrl}${number}/" }

    /**
     * The enclosing node block's workspace when it is not the job's own (WorkspaceList's `@2`; in live
     * mode an agent pod's, the workspace-volume's directory); null: the job's.
     */
    String nodeWorkspace

    String getWorkspace() { nodeWorkspace ?: (job.workspace ?: "/home/jenkins/agent/workspace/${jobName}") }

    /**
     * The variables every build has (Run.getEnvironment: BUILD_*, JOB_*, JENKINS_URL; plus
     * BRANCH_NAME/CHANGE_* only for multibranch jobs, which the scenario adds through `env`).
     */
    private void initEnvironment() {
        runEnv.putAll([
            BUILD_NUMBER: number.toString(),
            BUILD_ID: number.toString(),
            BUILD_DISPLAY_NAME: "#${number}".toString(),
            BUILD_TAG: "jenkins-${jobName.replace('/', '-')}-${number}".toString(),
            BUILD_URL: buildUrl.toString(),
            JOB_NAME: jobName,
            JOB_BASE_NAME: jobName.tokenize('/').last(),
            JOB_URL: jobUrl.toString(),
            JENKINS_URL: jenkinsUrl,
            RUN_DISPLAY_URL: "${buildUrl}display/redirect".toString(),
            HUDSON_URL: jenkinsUrl,
        ])
        ((Map) (scenario.env ?: [:])).each { k, v -> runEnv[k.toString()] = v.toString() }
    }

    /**
     * Build parameters: the `parameters { }` defaults overlaid by the scenario's values. Each also
     * becomes an environment variable (ParametersAction.buildEnvironment).
     */
    void addParameters(Map<String, Object> defaults) {
        paramValues.clear()
        paramValues.putAll(defaults)
        paramValues.putAll((Map) (scenario.params ?: [:]))
        paramValues.each { k, v -> runEnv[k.toString()] = String.valueOf(v) }
    }

    Map<String, Object> getParams() { Collections.unmodifiableMap(paramValues) }

    /** The effective environment: contextual < run environment < expanders (EnvironmentExpander.getEffectiveEnvironment). */
    TreeMap<String, String> effectiveEnv() {
        TreeMap<String, String> env = new TreeMap<>(String.CASE_INSENSITIVE_ORDER)
        if (nodeEnv != null) {
            env.putAll(nodeEnv)
        }
        env.putAll(runEnv)
        expanders.each { Map<String, String> ex -> ex.each { String k, String v -> override(env, k, v) } }
        env
    }

    /**
     * hudson.EnvVars.override: an empty value removes the variable, and PATH+NAME=value prepends
     * to PATH.
     */
    static void override(Map<String, String> env, String key, String value) {
        if (value == null || value.isEmpty()) {
            env.remove(key)
            return
        }
        int idx = key.indexOf('+')
        if (idx > 0) {
            String realKey = key.substring(0, idx)
            String old = env[realKey]
            env[realKey] = old == null ? value : value + ':' + old
            return
        }
        env[key] = value
    }

    /** EnvActionImpl.setProperty: env.put(name, String.valueOf(value)) - so null becomes "null". */
    void setEnv(String name, Object value) {
        String text = String.valueOf(value)
        runEnv[name] = text
        Map e = event('env', [name: name, value: text])
        scanForSecrets(e, 'value', text)
    }

    // ------------------------------------------------------------------------------------------
    // Results (hudson.model.Run.setResult only ever makes a result worse)

    void setResult(String r) {
        if (!(r in RESULTS)) {
            throw new IllegalArgumentException("${r} is not a build result")
        }
        if (result == null || isWorse(r, result)) {
            result = r
        }
    }

    String getCurrentResult() { result ?: 'SUCCESS' }

    // ------------------------------------------------------------------------------------------
    // Stages

    Map stageStart(String name) {
        Map s = [name: name, status: null, warnings: [], parent: stageStack ? stageStack.last().name : null]
        stages << s
        stageStack << s
        event('stage', [name: name])
        log("[Pipeline] stage (${name})")
        s
    }

    void stageEnd(Map s, Throwable error) {
        stageStack.remove(stageStack.size() - 1)
        if (s.status == null) {
            if (s.failed) {
                s.status = error instanceof FlowInterruptedException ? ((FlowInterruptedException) error).result : 'FAILURE'
            } else if (s.warnings) {
                s.status = s.warnings.inject('SUCCESS') { acc, w -> worse(acc, w) }
            } else {
                s.status = 'SUCCESS'
            }
        }
    }

    Map getCurrentStage() { stageStack ? stageStack.last() : null }

    String getCurrentStageName() { currentStage?.name }

    /** A WarningAction on the current stage (unstable, catchError with stageResult, failed tests). */
    void stageWarning(String r) {
        currentStage?.warnings?.add(r)
    }

    // ------------------------------------------------------------------------------------------
    // Trace and log

    Map record(String step, Map args, boolean scan = true) {
        if (trace.size() >= MAX_STEPS) {
            throw new HarnessError("harness: more than ${MAX_STEPS} steps; is the pipeline looping?")
        }
        Map e = [seq: trace.size() + 1, step: step, stage: currentStageName, depth: depth, clock: now() - startTime,
                 args: Json.clean(args)]
        trace << e
        if (scan) {
            scanForSecrets(e, 'args', e.args)
        }
        e
    }

    Map event(String kind, Map data) {
        Map e = [seq: trace.size() + 1, event: kind, stage: currentStageName, depth: depth, clock: now() - startTime]
        e.putAll(Json.clean(data) as Map)
        trace << e
        e
    }

    synchronized void log(String line) {
        String masked = line
        secrets.each { Map s -> masked = masked.replace((String) s.value, '****') }
        log << masked
        live?.logLine(masked)
    }

    // ------------------------------------------------------------------------------------------
    // Secrets: every secret value of the scenario's credentials (the username of a usernamePassword
    // credential only when it is marked secret, as UsernamePasswordMultiBinding does).

    private void initSecrets() {
        ((Map) (scenario.credentials ?: [:])).each { String id, Map c ->
            ['password', 'secret', 'content'].each { String field ->
                if (c[field]) {
                    secrets << [credentialsId: id, value: c[field].toString()]
                }
            }
            if (c.usernameSecret && c.username) {
                secrets << [credentialsId: id, value: c.username.toString()]
            }
        }
    }

    /**
     * Records a leak when a recorded value contains a secret. Jenkins masks bound secrets in the
     * log, but a secret inside a command line is visible in the process table, and one inside a
     * step argument got there by Groovy interpolation (DSL.logInterpolationWarnings warns about
     * exactly that); a file or env.X assignment keeps it beyond the block that bound it.
     */
    void scanForSecrets(Map entry, String field, Object value) {
        if (!secrets) {
            return
        }
        collectStrings(value).each { String text ->
            secrets.each { Map s ->
                if (text.contains((String) s.value)) {
                    Map leak = [seq: entry.seq, step: entry.step ?: entry.event, stage: entry.stage, field: field,
                                credentialsId: s.credentialsId]
                    if (!leaks.contains(leak)) {
                        leaks << leak
                    }
                }
            }
        }
    }

    private static List<String> collectStrings(Object v) {
        if (v == null) {
            return []
        } else if (v instanceof CharSequence) {
            return [v.toString()]
        } else if (v instanceof Map) {
            return ((Map) v).values().collectMany { collectStrings(it) }
        } else if (v instanceof Collection) {
            return ((Collection) v).collectMany { collectStrings(it) }
        }
        [v.toString()]
    }

    void violation(String kind, String message) {
        violations << [kind: kind, message: message, stage: currentStageName, seq: trace.size()]
    }

    // ------------------------------------------------------------------------------------------
    // Workspace files

    boolean isInNode() { nodeEnv != null }

    String getCurrentDir() { cwd ? cwd.last() : workspace }

    String resolve(String path) {
        String p = path.startsWith('/') ? path : "${currentDir}/${path}"
        List<String> parts = []
        p.split('/').each { String seg ->
            if (seg == '' || seg == '.') {
                return
            }
            if (seg == '..') {
                if (parts) {
                    parts.remove(parts.size() - 1)
                }
            } else {
                parts << seg
            }
        }
        '/' + parts.join('/')
    }

    static String sha256(byte[] data) {
        MessageDigest.getInstance('SHA-256').digest(data).collect { String.format('%02x', it) }.join('')
    }

    long advance(long millis) {
        if (live != null) {
            return now()
        }
        clock += millis
        clock
    }

    String nextId() {
        counter++
        String.format('%08x-0000-4000-8000-%012x', counter, counter)
    }
}
