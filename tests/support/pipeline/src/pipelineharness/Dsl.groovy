package pipelineharness

import com.cloudbees.groovy.cps.NonCPS
import org.codehaus.groovy.runtime.InvokerHelper

import java.lang.reflect.Method
import java.util.regex.Matcher

/**
 * Method and property lookup of Pipeline scripts, and the recorded stubs of every step.
 *
 * Lookup follows workflow-cps CpsScript.invokeMethod (binding callables, global variables, then
 * DSL.invokeMethod: steps, then describable symbols, else NoSuchMethodError "No such DSL method")
 * and CpsScript.getProperty (global variables, then environment variables). Step arguments are
 * bound the way DSL.parseArgs and structs' DescribableModel bind them: one map of named
 * arguments, or a bare value for a step whose constructor takes exactly one parameter; unknown
 * names fail the step (DSLTest#strayParameters: "WARNING: Unknown parameter(s) found for class
 * type ..."). Each stub records one trace entry and imitates what its plugin does; the source it
 * follows is named next to it.
 */
class Dsl {
    protected final Build build
    final EnvAction env
    final RunWrapper currentBuild
    private final Map<Integer, Integer> ruleUses = [:]

    static final List<String> GLOBALS = ['currentBuild', 'env', 'params', 'pipeline', 'scm']

    Dsl(Build build) {
        this.build = build
        this.env = new EnvAction(build)
        this.currentBuild = new RunWrapper(build)
    }

    // ------------------------------------------------------------------------------------------
    // Lookup

    Object invoke(PipelineScript script, String name, Object argsObj) {
        Object[] args = argsObj instanceof Object[] ? (Object[]) argsObj : ([argsObj] as Object[])
        Binding binding = script.binding
        if (binding.hasVariable(name)) {
            Object o = binding.getVariable(name)
            if (!InvokerHelper.getMetaClass(o).respondsTo(o, 'call', args).isEmpty()) {
                return InvokerHelper.invokeMethod(o, 'call', args)
            }
        }
        if (build.library != null && name in build.library.varNames) {
            return callVar(name, args)
        }
        if (Catalog.STEPS.containsKey(name)) {
            return step(script, name, args)
        }
        if (Catalog.SYMBOLS.containsKey(name)) {
            return symbol(name, args)
        }
        List<String> globals = (GLOBALS + (build.library?.varNames ?: [])).sort()
        throw new NoSuchMethodError("No such DSL method '${name}' found among steps ${Catalog.STEPS.keySet().sort()} " +
                "or symbols ${Catalog.SYMBOLS.keySet().sort()} or globals ${globals}")
    }

    Object property(PipelineScript script, String name) {
        switch (name) {
            case 'env': return env
            case 'currentBuild': return currentBuild
            case 'params': return build.params
            case 'scm': return scm()
        }
        if (build.library != null && name in build.library.varNames) {
            return varInstance(name)
        }
        String value = build.effectiveEnv().get(name)
        if (value != null) {
            return value
        }
        throw new MissingPropertyException(name, script.getClass())
    }

    /** SCMVar (workflow-multibranch): the job's own SCM, only for jobs whose Jenkinsfile comes from SCM. */
    private Object scm() {
        Map s = (Map) build.job.scm
        if (build.job.fromScm == false || s == null) {
            throw new IllegalStateException('\u2018checkout scm\u2019 is only available when using \u201cMultibranch Pipeline\u201d or \u201cPipeline script from SCM\u201d')
        }
        Map remote = s.credentialsId ? [url: s.url, credentialsId: s.credentialsId] : [url: s.url]
        [$class: 'GitSCM', userRemoteConfigs: [remote], branches: [[name: s.branch ?: '*/main']]]
    }

    private Object varInstance(String name) {
        Object inst = build.varInstances[name]
        if (inst == null) {
            Class c = build.library.varClass(name)
            build.scriptClasses[c.name] = c
            inst = c.newInstance()
            ((PipelineScript) inst).bindBuild(build)
            build.varInstances[name] = inst
        }
        inst
    }

    /** UserDefinedGlobalVariable.getValue + InvokerHelper.invokeMethod(instance, "call", args). */
    private Object callVar(String name, Object[] args) {
        Object inst = varInstance(name)
        List<Object> shown = args.findAll { !(it instanceof Closure) } as List
        Map recorded = shown.size() == 1 && shown[0] instanceof Map ? (Map) shown[0] : [args: shown]
        Map e = build.record(name, recorded)
        e.global = true
        build.depth++
        try {
            Object r = InvokerHelper.invokeMethod(inst, 'call', args)
            e.returned = Json.clean(r)
            return r
        } finally {
            build.depth--
        }
    }

    private Describable symbol(String name, Object[] args) {
        Catalog.Spec spec = Catalog.SYMBOLS[name]
        Map named = namedArgs(spec, args as List)
        new Describable(name, named)
    }

    // ------------------------------------------------------------------------------------------
    // Step binding

    private Object step(PipelineScript script, String name, Object[] args) {
        Catalog.Spec spec = Catalog.STEPS[name]
        List<Object> rest = args as List
        Closure body = null
        if (spec.takesBlock && rest && rest.last() instanceof Closure) {
            body = (Closure) rest.remove(rest.size() - 1)
        }
        if (name == 'parallel') {
            return step_parallel(script, rest ? (Map) rest[0] : [:])
        }
        Map named = namedArgs(spec, rest)
        if (spec.takesBlock && body == null) {
            throw new IllegalStateException("${name} step must be called with a body")
        }
        if (spec.needsWorkspace && !build.inNode) {
            throw new MissingContextException('hudson.FilePath')
        }
        if (spec.needsWorkspace && build.inPod && build.nodeEnv.NODE_NAME in build.lostNodes) {
            // the pod is gone: every later step of its node block fails the same way
            throw FlowInterruptedException.agentRemoved(build.nodeEnv.NODE_NAME)
        }
        checkNonCps(name)
        if (build.pendingStop != null) {
            // the branch was stopped while it waited for its next step (ParallelStep failFast)
            FlowInterruptedException stop = build.pendingStop
            build.pendingStop = null
            throw stop
        }
        beforeStep(name)
        this."step_${name}"(script, named, body)
    }

    /** Called as each step starts (live mode: a pending interruption fails it here). */
    protected void beforeStep(String name) {
    }

    private static Map namedArgs(Catalog.Spec spec, List<Object> rest) {
        Map named
        if (rest.isEmpty()) {
            named = [:]
        } else if (rest.size() == 1 && rest[0] instanceof Map && ((Map) rest[0]).containsKey('$class') && spec.soleArgumentKey != null) {
            // A `[$class: 'GitSCM', ...]` map is one describable value (as `checkout scm` passes), not named arguments.
            named = [(spec.soleArgumentKey): coerce(rest[0])]
        } else if (rest.size() == 1 && rest[0] instanceof Map) {
            named = (Map) coerce(rest[0])
        } else if (rest.size() == 1 && spec.soleArgumentKey != null) {
            named = [(spec.soleArgumentKey): coerce(rest[0])]
        } else {
            throw new IllegalArgumentException("Expected named arguments but got ${rest}")
        }
        List<String> unknown = named.keySet().findAll { spec.param(it.toString()) == null }*.toString().sort()
        if (unknown) {
            throw new IllegalArgumentException("WARNING: Unknown parameter(s) found for class type '${spec.className}': ${unknown.join(',')}")
        }
        // A missing constructor argument is passed as null (DescribableModel.instantiate); the
        // steps that cannot take null say so themselves.
        if (spec.name == 'sh' && !named.script) {
            throw new IllegalArgumentException('script must not be empty')
        }
        named
    }

    /** GStrings reach steps as Strings (DescribableModel coerces them). */
    private static Object coerce(Object v) {
        if (v instanceof GString) {
            return v.toString()
        } else if (v instanceof Map && !(v instanceof Describable)) {
            Map out = new LinkedHashMap()
            ((Map) v).each { k, val -> out[k instanceof GString ? k.toString() : k] = coerce(val) }
            return out
        } else if (v instanceof List) {
            return ((List) v).collect { coerce(it) }
        }
        v
    }

    /**
     * A step called from inside a @NonCPS method: CPS cannot suspend there, and Jenkins warns
     * ("expected to call ... but wound up catching ...") and misbehaves. The style rule is that
     * @NonCPS methods call no steps, so the harness reports every such call.
     */
    private void checkNonCps(String stepName) {
        for (StackTraceElement f : Thread.currentThread().stackTrace) {
            String outer = f.className.split('\\$')[0]
            Class c = build.scriptClasses[outer]
            if (c == null) {
                continue
            }
            String method = f.methodName
            Matcher m = f.className =~ '\\$_(.+?)_closure\\d+'
            if (m.find()) {
                method = m.group(1)
            }
            boolean nonCps = c.declaredMethods.any { Method dm -> dm.name == method && dm.isAnnotationPresent(NonCPS) }
            if (nonCps) {
                build.violation('step-in-noncps', "step '${stepName}' called from @NonCPS method ${outer}.${method}")
                return
            }
        }
    }

    protected Object body(Closure body) {
        build.depth++
        try {
            return body.call()
        } finally {
            build.depth--
        }
    }

    protected Object withExpander(Map<String, String> vars, Closure body) {
        build.expanders << vars
        try {
            return this.body(body)
        } finally {
            build.expanders.remove(build.expanders.size() - 1)
        }
    }

    // ------------------------------------------------------------------------------------------
    // workflow-durable-task-step

    /**
     * sh (DurableTaskStep.handleExit): with returnStatus the exit code is returned; otherwise a
     * non-zero exit fails with "script returned exit code N"; with returnStdout the output is
     * returned. What each command prints and returns comes from the scenario's `sh` rules.
     */
    Object step_sh(PipelineScript s, Map a, Closure body) {
        String script = a.script.toString()
        TreeMap<String, String> env = build.effectiveEnv()
        Map e = build.record('sh', a)
        e.cwd = build.currentDir
        e.env = new LinkedHashMap(env)
        if (build.inPod) {
            // kubernetes plugin: outside a container step the agent's own launcher runs it, in jnlp
            e.container = build.container ?: 'jnlp'
        }
        Map rule = shRule(script, (String) a.label, env)
        int status = (rule?.status ?: 0) as int
        if (rule?.changedFiles != null) {
            status = changesStatus((List) rule.changedFiles, env[(rule.pathsVariable ?: 'ENADU_PATHS').toString()])
        }
        String stdout = (rule?.stdout ?: '').toString()
        long duration = (rule?.durationMs != null ? rule.durationMs : (build.scenario.shDurationMs != null ? build.scenario.shDurationMs : 1000)) as long
        build.log("[Pipeline] sh${a.label ? " (${a.label})" : ''}")
        script.readLines().findAll { it.trim() }.each { build.log("+ ${it.trim()}") }
        if (stdout && !a.returnStdout) {
            stdout.readLines().each { build.log(it) }
        }
        build.advance(duration)
        ((Map) (rule?.writes ?: [:])).each { String path, String text ->
            build.files[build.resolve(expand(path, env))] = text.getBytes('UTF-8')
        }
        e.rule = rule?.id
        e.status = status
        if (a.returnStdout) {
            e.stdout = stdout
        }
        if (rule?.interrupt) {
            throw new FlowInterruptedException(rule.interrupt.toString(), rule.message?.toString() ?: 'Timeout has been exceeded')
        }
        if (rule?.agentLost) {
            if (!build.inPod) {
                throw new HarnessError('harness: agentLost is for steps in an agent pod (agent { kubernetes { } })')
            }
            String node = build.nodeEnv.NODE_NAME
            build.lostNodes << node
            // the log line of kubernetes-plugin's Reaper when the pod is deleted (KubernetesDeclarativeAgentTest#declarativeRetries)
            build.log("Agent ${node} was deleted; cancelling node body")
            throw FlowInterruptedException.agentRemoved(node)
        }
        if (a.returnStatus) {
            return status
        }
        if (status != 0) {
            if (a.returnStdout) {
                build.log(stdout)
            }
            throw new AbortException("script returned exit code ${status}")
        }
        a.returnStdout ? stdout : null
    }

    /** The first scenario rule matching the command: `script`/`label` are regular expressions searched for, `env` exact values. */
    private Map shRule(String script, String label, Map<String, String> env) {
        List<Map> rules = (List<Map>) (build.scenario.sh ?: [])
        for (int i = 0; i < rules.size(); i++) {
            Map r = rules[i]
            if (r.script && !(script =~ r.script.toString()).find()) {
                continue
            }
            if (r.label && !(label != null && (label =~ r.label.toString()).find())) {
                continue
            }
            if (r.env && !((Map) r.env).every { k, v -> env[k.toString()] == v?.toString() }) {
                continue
            }
            int used = ruleUses[i] ?: 0
            if (r.times != null && used >= (r.times as int)) {
                continue
            }
            ruleUses[i] = used + 1
            Map out = new LinkedHashMap(r)
            out.id = r.id ?: i
            return out
        }
        if (build.scenario.strictSh) {
            throw new HarnessError("harness: no sh rule in the scenario matches: ${script}")
        }
        null
    }

    /**
     * A stand-in for the helper's `changes` decision, so one scenario ("common/x changed") can
     * drive every pipeline: exit 0 when a changed file matches one of the newline-separated path
     * globs in the environment variable, else 10 (helper/exitcodes.py UNCHANGED). The globs are
     * matched Ant-style ('**' spans directories), which is what enadu.yaml's globs mean.
     */
    private static int changesStatus(List changedFiles, String globs) {
        List<String> patterns = (globs ?: '').readLines().findAll { it }
        boolean changed = changedFiles.any { f -> patterns.any { p -> Glob.matches(p, f.toString(), true) } }
        changed ? 0 : 10
    }

    private static String expand(String text, Map<String, String> env) {
        text.replaceAll('\\$\\{?([A-Za-z_][A-Za-z0-9_]*)\\}?') { all, String n -> env[n] ?: '' }
    }

    /** node (ExecutorStep): the workspace and the agent's variables (WORKSPACE, NODE_NAME) for the body. */
    Object step_node(PipelineScript s, Map a, Closure body) {
        Map e = build.record('node', a)
        Map agent = (Map) (build.scenario.agent ?: [:])
        String name = agent.name ?: 'built-in'
        String labels = (agent.labels ?: name).toString()
        // A node labelled with the enclosing podTemplate's label is a new pod of it (KubernetesCloud
        // provisions one per node block; PodTemplateUtils/PodUtils name it <template name>-<random>).
        boolean pod = build.pod != null && a.label == build.pod.label
        if (pod) {
            build.podsStarted++
            name = "${build.pod.label}-pod${build.podsStarted}".toString()
            labels = build.pod.label.toString()
            build.log("Created Pod: kubernetes ${build.pod.namespace ?: 'default'}/${name}")
        }
        e.node = name
        build.log("Running on ${name} in ${build.workspace}")
        // A second node block on the node whose workspace an enclosing one holds gets <workspace>@2
        // (WorkspaceList.allocate: the next free "@<n>", COMBINATOR '@'); a pod has its own filesystem.
        String previousWorkspace = build.nodeWorkspace
        if (!pod && build.nodeEnv?.NODE_NAME == name) {
            String base = build.workspace.replaceFirst('@[0-9]+$', '')
            int n = build.workspace == base ? 2 : (build.workspace.substring(base.length() + 1) as int) + 1
            build.nodeWorkspace = "${base}@${n}".toString()
        }
        e.workspace = build.workspace
        Map<String, String> previousEnv = build.nodeEnv
        boolean previousInPod = build.inPod
        String previousContainer = build.container
        List<String> previousCwd = new ArrayList<>(build.cwd)
        build.nodeEnv = [NODE_NAME: name, NODE_LABELS: labels, EXECUTOR_NUMBER: '0',
                         PATH: (agent.path ?: '/usr/local/bin:/usr/bin:/bin').toString(), HOME: '/home/jenkins',
                         WORKSPACE: build.workspace, WORKSPACE_TMP: "${build.workspace}@tmp".toString()]
        build.inPod = pod
        build.container = null
        build.cwd.clear()
        build.cwd << build.workspace
        try {
            return this.body(body)
        } finally {
            build.nodeWorkspace = previousWorkspace
            build.nodeEnv = previousEnv
            build.inPod = previousInPod
            build.container = previousContainer
            build.cwd.clear()
            build.cwd.addAll(previousCwd)
        }
    }

    // ------------------------------------------------------------------------------------------
    // kubernetes (jenkinsci/kubernetes-plugin, org.csanchez.jenkins.plugins.kubernetes.pipeline)

    /**
     * podTemplate (PodTemplateStepExecution.start): a pod template for the body's node blocks, labelled
     * sanitizeLabel(run.getExternalizableId()) + '-' + 5 random characters (here 'b0b0b' for the first
     * podTemplate of a build, 'b0b0c', 'b0b0d', ... for later ones, such as a stage's own kubernetes agent), which
     * the body sees as POD_LABEL. The pod is the `yaml` (PodTemplateBuilder.build: the YAML's containers,
     * plus the agent container jnlp when the YAML has none of that name). Which containers exist is read
     * from the YAML's spec.containers (PodYaml), so container('x') fails for a container the pod lacks.
     */
    Object step_podTemplate(PipelineScript s, Map a, Closure body) {
        Map e = build.record('podTemplate', a)
        build.podTemplates++
        String suffix = 'b0b0' + 'bcdfghjklmnpqrstvwxz'[(build.podTemplates - 1) % 20]
        String label = a.label ?: "${build.jobName}_${build.number}".replaceAll('[^A-Za-z0-9._-]', '_') + '-' + suffix
        List<String> containers = a.yaml ? PodYaml.containerNames(a.yaml.toString()) : []
        if (!containers.contains('jnlp')) {
            containers << 'jnlp'
        }
        String namespace = a.namespace ?: (a.yaml ? PodYaml.namespace(a.yaml.toString()) : null)
        e.label = label
        e.containers = containers
        Map previous = build.pod
        build.pod = [label: label, containers: containers, namespace: namespace, yaml: a.yaml]
        try {
            return withExpander([POD_LABEL: label], body)
        } finally {
            build.pod = previous
        }
    }

    /**
     * container (ContainerStep, ContainerStepExecution.start): only on a pod's node (KubernetesNodeContext:
     * "Node is not a Kubernetes node: <name>"); the body's sh steps run in that container
     * (ContainerExecDecorator, which also exports POD_CONTAINER=<name>, an EnvironmentExpander.constant).
     * A name the pod lacks fails the first command: "container <name> not found in pod <pod>" (the API
     * server's answer to the exec, which ContainerExecDecorator.launch rethrows without retrying).
     */
    Object step_container(PipelineScript s, Map a, Closure body) {
        build.record('container', a)
        String name = a.name.toString()
        if (!build.inPod) {
            throw new AbortException("Node is not a Kubernetes node: ${build.nodeEnv?.NODE_NAME}")
        }
        if (!(name in (List) build.pod.containers)) {
            throw new AbortException("container ${name} not found in pod ${build.nodeEnv.NODE_NAME}")
        }
        String previous = build.container
        build.container = name
        try {
            return withExpander([POD_CONTAINER: name], body)
        } finally {
            build.container = previous
        }
    }

    // ------------------------------------------------------------------------------------------
    // workflow-basic-steps

    Object step_echo(PipelineScript s, Map a, Closure body) {
        build.record('echo', a)
        build.log(a.message.toString())
        null
    }

    /** ErrorStep: throws AbortException(message). */
    Object step_error(PipelineScript s, Map a, Closure body) {
        build.record('error', a)
        throw new AbortException(a.message.toString())
    }

    /** UnstableStep: the build (and the stage, through a WarningAction) becomes UNSTABLE. */
    Object step_unstable(PipelineScript s, Map a, Closure body) {
        build.record('unstable', a)
        build.log("WARNING: ${a.message}")
        build.setResult('UNSTABLE')
        build.stageWarning('UNSTABLE')
        null
    }

    /** WriteFileStep: text, or bytes when encoding is Base64. */
    Object step_writeFile(PipelineScript s, Map a, Closure body) {
        String text = a.text.toString()
        byte[] data = a.encoding == 'Base64' ? Base64.decoder.decode(text.replaceAll(/\s/, '')) : text.getBytes('UTF-8')
        Map shown = [file: a.file, encoding: a.encoding, size: data.length, sha256: Build.sha256(data)]
        if (a.encoding != 'Base64' && text.length() <= 4096) {
            shown.text = text
        }
        Map e = build.record('writeFile', shown, false)
        build.scanForSecrets(e, 'file', a.file)
        build.scanForSecrets(e, 'text', a.encoding == 'Base64' ? new String(data, 'ISO-8859-1') : text)
        build.files[build.resolve(a.file.toString())] = data
        null
    }

    Object step_readFile(PipelineScript s, Map a, Closure body) {
        build.record('readFile', a)
        String path = build.resolve(a.file.toString())
        byte[] data = build.files[path]
        if (data == null) {
            throw new java.nio.file.NoSuchFileException(path)
        }
        a.encoding == 'Base64' ? Base64.encoder.encodeToString(data) : new String(data, 'UTF-8')
    }

    Object step_fileExists(PipelineScript s, Map a, Closure body) {
        Map e = build.record('fileExists', a)
        String path = build.resolve(a.file.toString())
        boolean exists = build.files.containsKey(path) || build.files.keySet().any { it.startsWith(path + '/') }
        e.returned = exists
        exists
    }

    /** PwdStep: the current directory, or its temporary sibling <dir>@tmp (WorkspaceList.tempDir). */
    Object step_pwd(PipelineScript s, Map a, Closure body) {
        Map e = build.record('pwd', a)
        String dir = a.tmp ? "${build.currentDir}@tmp".toString() : build.currentDir
        e.returned = dir
        dir
    }

    Object step_dir(PipelineScript s, Map a, Closure body) {
        build.record('dir', a)
        build.cwd << build.resolve(a.path.toString())
        try {
            return this.body(body)
        } finally {
            build.cwd.remove(build.cwd.size() - 1)
        }
    }

    Object step_deleteDir(PipelineScript s, Map a, Closure body) {
        build.record('deleteDir', a)
        String dir = build.currentDir
        build.files.keySet().removeAll { it == dir || it.startsWith(dir + '/') }
        null
    }

    Object step_isUnix(PipelineScript s, Map a, Closure body) {
        build.record('isUnix', a)
        true
    }

    /** EnvStep: every entry must contain '=' (else IllegalArgumentException(entry)); applied with EnvVars.override. */
    Object step_withEnv(PipelineScript s, Map a, Closure body) {
        List<String> overrides = ((List) a.overrides).collect { it.toString() }
        overrides.each { String pair ->
            if (pair.indexOf('=') == -1) {
                throw new IllegalArgumentException(pair)
            }
        }
        build.record('withEnv', [overrides: overrides])
        Map<String, String> vars = new LinkedHashMap<>()
        overrides.each { String pair ->
            int i = pair.indexOf('=')
            vars[pair.substring(0, i)] = pair.substring(i + 1)
        }
        withExpander(vars, body)
    }

    /**
     * InputStep (pipeline-input-step-plugin InputStepExecution): the build waits for an answer. The
     * scenario's `input` list answers the calls in order: `{"answer": "proceed"|"abort"|"timeout"|"outer-timeout"|"stop",
     * "user": "alice", "groups": [...]}`. Proceed returns null (no parameters); abort is
     * `doAbort`: FlowInterruptedException(Result.ABORTED, new Rejection(User.current())), logged
     * "Rejected by <user>"; timeout is the enclosing timeout step's ExceededTimeout ("Timeout has been
     * exceeded"; workflow-basic-steps TimeoutStepExecution.cancel: body.cancel(new ExceededTimeout(nodeId)),
     * actualInterruption cleared by that step's Callback.onFailure as the nodeId is its own); outer-timeout
     * is an enclosing timeout's ExceededTimeout (another nodeId: actualInterruption stays true).
     * stop is the build's Stop button while the input waits, from any user with Job/Cancel (no submitter
     * check): workflow-job WorkflowRun.doStop -> core hudson.model.Executor.doStopBuild -> interrupt(ABORTED,
     * new CauseOfInterruption.UserInterruption(user)) -> CpsFlowExecution.interrupt, which stops the running
     * input (InputStepExecution.stop(cause): the input fails with that FlowInterruptedException); logged
     * "Aborted by <user>" (Executor.recordCauseOfInterruption), the build's result set ABORTED. An answer from a user who is neither a submitter nor in a submitter group
     * (InputStepExecution.canSettle: submitter split on ',' and trimmed) is refused - Jenkins answers
     * 403 and the input keeps waiting - so the next answer is taken; none left is a harness error.
     */
    private int inputAnswered = 0  // answers of the scenario's `input` list used so far

    Object step_input(PipelineScript s, Map a, Closure body) {
        build.record('input', a)
        build.log(a.message.toString())
        build.log("${a.ok ?: 'Proceed'} or Abort")
        List answers = (List) (build.scenario.input ?: [])
        int taken = inputAnswered
        while (true) {
            if (taken >= answers.size()) {
                throw new HarnessError("harness: input '${a.message}' was reached but the scenario has no answer for it")
            }
            Map answer = (Map) answers[taken++]
            inputAnswered = taken
            String user = (answer.user ?: 'anonymous').toString()
            if (answer.answer == 'timeout') {
                build.log('Timeout has been exceeded')
                FlowInterruptedException e = new FlowInterruptedException('ABORTED', 'Timeout has been exceeded',
                                                                          'ExceededTimeout', null)
                e.actualInterruption = false
                throw e
            }
            if (answer.answer == 'outer-timeout') {
                // A timeout step enclosing this one (the Jenkinsfile's whole-build `timeout`) expired: its
                // body.cancel(new ExceededTimeout(outerNodeId)) fails the input; the input's own timeout
                // step's Callback.onFailure clears actualInterruption only when the ExceededTimeout's
                // nodeId is its own block (workflow-basic-steps TimeoutStepExecution.Callback.onFailure),
                // so it is still set when the exception passes that step.
                build.log('Timeout has been exceeded')
                throw new FlowInterruptedException('ABORTED', 'Timeout has been exceeded', 'ExceededTimeout', null)
            }
            if (answer.answer == 'stop') {
                build.log("Aborted by ${user}")
                build.setResult('ABORTED')  // CpsFlowExecution.interrupt: setResult(result) first
                throw new FlowInterruptedException('ABORTED', "Aborted by ${user}".toString(), 'UserInterruption', null)
            }
            if (a.submitter) {
                Set<String> allowed = a.submitter.toString().split(',').collect { it.trim() } as Set
                List groups = (List) (answer.groups ?: [])
                if (!(user in allowed) && !groups.any { it in allowed }) {
                    build.log("harness: ${user} may not answer this input (submitter: ${a.submitter}); still waiting")
                    continue
                }
            }
            if (answer.answer == 'proceed') {
                build.log("Approved by ${user}")
                return null
            }
            if (answer.answer == 'abort') {
                build.log("Rejected by ${user}")
                throw new FlowInterruptedException('ABORTED', "Rejected by ${user}".toString(), 'Rejection', null)
            }
            throw new HarnessError("harness: input answer must be proceed, abort, timeout, outer-timeout or stop, not ${answer.answer}")
        }
    }

    Object step_timeout(PipelineScript s, Map a, Closure body) {
        build.record('timeout', a)
        this.body(body)
    }

    /**
     * RetryStep: runs the body again after a failure, up to count times; interruptions are not retried.
     * With `conditions` (ErrorCondition) only a failure one of them accepts is retried: kubernetesAgent()
     * (KubernetesAgentErrorCondition, via AgentErrorCondition) accepts a lost agent pod (RemovedNodeCause),
     * nonresumable() (SynchronousResumeNotSupportedErrorCondition) a step that could not resume after a
     * controller restart, which the harness never has.
     */
    Object step_retry(PipelineScript s, Map a, Closure body) {
        build.record('retry', a)
        int count = a.count as int
        List<Describable> conditions = (List<Describable>) (a.conditions ?: [])
        for (int attempt = 1; ; attempt++) {
            try {
                return this.body(body)
            } catch (HarnessError e) {
                throw e
            } catch (Throwable t) {
                // RetryStepExecution: an actual interruption (abort) is not retried; a timeout's own is.
                if (t instanceof FlowInterruptedException && ((FlowInterruptedException) t).actualInterruption) {
                    throw t
                }
                if (conditions && !conditions.any { Describable c -> c.symbol == 'kubernetesAgent' &&
                        t instanceof FlowInterruptedException && ((FlowInterruptedException) t).causeType == 'RemovedNodeCause' }) {
                    throw t
                }
                if (attempt >= count) {
                    throw t
                }
                build.log("ERROR: ${t.message}")
                build.log('Retrying')
            }
        }
    }

    Object step_sleep(PipelineScript s, Map a, Closure body) {
        build.record('sleep', a)
        long unit = ['MILLISECONDS': 1L, 'SECONDS': 1000L, 'MINUTES': 60000L, 'HOURS': 3600000L][(a.unit ?: 'SECONDS').toString()] ?: 1000L
        build.advance((a.time as long) * unit)
        null
    }

    /** ToolStep: the home of a configured tool installation ("No <type> named <name> found" otherwise). */
    Object step_tool(PipelineScript s, Map a, Closure body) {
        Map e = build.record('tool', a)
        Map<String, List> installed = (Map) (build.scenario.tools ?: [:])
        String type = (a.type ?: '').toString()
        if (!(installed[type]?.contains(a.name))) {
            throw new AbortException("No ${type ?: 'tool'} named ${a.name} found")
        }
        String home = "/home/jenkins/tools/${type}/${a.name}".toString()
        e.returned = home
        home
    }

    /**
     * CatchErrorStep: a failure in the body is caught; the build result becomes buildResult
     * (default FAILURE) and the stage gets stageResult (default SUCCESS) as a warning.
     * Interruptions are caught only with catchInterruptions (default true).
     */
    Object step_catchError(PipelineScript s, Map a, Closure body) {
        build.record('catchError', a)
        catching(body, (a.buildResult ?: 'FAILURE').toString(), (a.stageResult ?: 'SUCCESS').toString(),
                (String) a.message, a.catchInterruptions != false)
    }

    /** WarnErrorStep: catchError(buildResult: 'UNSTABLE', stageResult: 'UNSTABLE', message: message). */
    Object step_warnError(PipelineScript s, Map a, Closure body) {
        build.record('warnError', a)
        catching(body, 'UNSTABLE', 'UNSTABLE', (String) a.message, a.catchInterruptions != false)
    }

    private Object catching(Closure body, String buildResult, String stageResult, String message, boolean catchInterruptions) {
        try {
            return this.body(body)
        } catch (HarnessError e) {
            throw e
        } catch (Throwable t) {
            if (t instanceof FlowInterruptedException && ((FlowInterruptedException) t).actualInterruption && !catchInterruptions) {
                throw t
            }
            if (message) {
                build.log(message)
            }
            build.log("ERROR: ${t.message}")
            if (buildResult != 'SUCCESS') {
                build.setResult(buildResult)
            }
            if (stageResult != 'SUCCESS') {
                build.stageWarning(stageResult)
            }
            return null
        }
    }

    Object step_stash(PipelineScript s, Map a, Closure body) {
        build.record('stash', a)
        String dir = build.currentDir
        Map<String, byte[]> saved = [:]
        build.files.each { String path, byte[] data ->
            if (path.startsWith(dir + '/')) {
                String rel = path.substring(dir.length() + 1)
                if (!a.includes || Glob.matches(a.includes.toString(), rel, true)) {
                    saved[rel] = data
                }
            }
        }
        if (saved.isEmpty() && !a.allowEmpty) {
            throw new AbortException('No files included in stash \u2018' + a.name + '\u2019')
        }
        build.stashes[a.name.toString()] = saved
        null
    }

    Object step_unstash(PipelineScript s, Map a, Closure body) {
        build.record('unstash', a)
        Map<String, byte[]> saved = build.stashes[a.name.toString()]
        if (saved == null) {
            throw new AbortException('No such saved stash \u2018' + a.name + '\u2019')
        }
        saved.each { rel, data -> build.files[build.resolve(rel)] = data }
        null
    }

    // ------------------------------------------------------------------------------------------
    // workflow-scm-step / git

    /**
     * checkout (SCMStep): returns the SCM's variables (for Git: GIT_COMMIT, GIT_PREVIOUS_COMMIT,
     * GIT_PREVIOUS_SUCCESSFUL_COMMIT, GIT_BRANCH, GIT_LOCAL_BRANCH, GIT_URL, ...) and, with
     * changelog (the default), adds the change set to currentBuild.changeSets. The scenario's
     * `checkout` answers are matched on the repository URL; one with `times: n` answers n checkouts,
     * then the next one for that URL answers (the branch moved on between two checkouts of a build).
     *
     * A GitSCM branch specifier that is a SHA-1 checks out that commit, detached (git-plugin
     * DefaultBuildChooser.getCandidateRevisions: `[0-9a-f]{6,40}` is rev-parsed; one the clone does not
     * have falls through to the branch search, and GitSCM.determineRevisionToBuild fails with
     * "Couldn't find any revision to build. ..."): here a commit is known when one of the URL's answers
     * returns it as GIT_COMMIT, or lists it in `commits`. GIT_BRANCH is then "detached" (the Branch the
     * chooser gives the revision, which GitSCM.buildEnvironment reports).
     */
    Object step_checkout(PipelineScript s, Map a, Closure body) {
        Map e = build.record('checkout', a)
        String url = checkoutUrl(a.scm)
        List<Map> answers = ((List<Map>) (build.scenario.checkout ?: [])).findAll { Map c -> c.url == url }
        Map answer = answers.find { Map c -> c.times == null || (build.checkoutsAnswered[c] ?: 0) < (c.times as int) }
        if (answer == null) {
            throw new HarnessError("harness: the scenario has no checkout answer for ${url}")
        }
        build.checkoutsAnswered[answer] = (build.checkoutsAnswered[answer] ?: 0) + 1
        if (answer.error) {
            throw new AbortException(answer.error.toString())
        }
        Map returned = new LinkedHashMap((Map) (answer.returns ?: [:]))
        String spec = (a.scm instanceof Map && ((Map) a.scm).branches) ? ((Map) ((List) ((Map) a.scm).branches)[0]).name?.toString() : null
        if (spec ==~ /[0-9a-f]{6,40}/) {
            String commit = answers.collectMany { Map c -> [((Map) (c.returns ?: [:])).GIT_COMMIT] + ((List) (c.commits ?: [])) }
                                   .find { it?.toString()?.startsWith(spec) }
            if (commit == null) {
                throw new AbortException("Couldn't find any revision to build. Verify the repository and branch configuration for this job.")
            }
            returned.GIT_COMMIT = commit
            returned.GIT_BRANCH = 'detached'
        }
        if (a.changelog != false && answer.changeSet) {
            build.changeSets << ((List<Map>) answer.changeSet).collect { new LinkedHashMap(it) }
        }
        ((Map) (answer.files ?: [:])).each { String path, String text -> build.files[build.resolve(path)] = text.getBytes('UTF-8') }
        build.advance((answer.durationMs ?: 0) as long)
        e.returned = Json.clean(returned)
        returned
    }

    private static String checkoutUrl(Object scm) {
        if (scm instanceof Map) {
            List remotes = (List) ((Map) scm).userRemoteConfigs
            if (remotes) {
                return ((Map) remotes[0]).url?.toString()
            }
        }
        throw new HarnessError("harness: cannot find the repository URL in checkout scm: ${Json.clean(scm)}")
    }

    // ------------------------------------------------------------------------------------------
    // pipeline-stage-step, workflow-cps parallel, pipeline-model-definition script

    Object step_stage(PipelineScript s, Map a, Closure body) {
        Map st = build.stageStart(a.name.toString())
        Throwable error = null
        try {
            return this.body(body)
        } catch (Throwable t) {
            error = t
            st.failed = !(t instanceof HarnessError)
            throw t
        } finally {
            build.stageEnd(st, error)
        }
    }

    /**
     * ParallelStep: every branch runs (here one after another, in order); each failure logs "Failed in
     * branch <name>" (ParallelStepExecution.ResultHandler.Callback.onFailure) and the first failure is
     * rethrown at the end with the others suppressed (checkAllDone: with failFast in the order they
     * failed, without it sorted by ThrowableComparator: other exceptions before AbortException before
     * FlowInterruptedException, which compare by their results; ties in the order they failed). With
     * failFast the first failure stops the branches still running (checkAllDone: stop(new
     * FlowInterruptedException(ABORTED, true, new FailFastCause(name)))): all branches start at once in
     * Jenkins, so here each later branch starts and its first step fails with that interruption.
     */
    Object step_parallel(PipelineScript s, Map branches) {
        Map args = branches.findAll { k, v -> k != 'failFast' }
        build.record('parallel', [branches: args.keySet().collect { it.toString() }, failFast: branches.failFast ?: false])
        List<Throwable> failures = []
        String failedBranch = null
        Map results = [:]
        args.each { k, v ->
            build.event('branch', [name: k.toString()])
            if (failedBranch != null && branches.failFast) {
                build.pendingStop = FlowInterruptedException.failFast(failedBranch)
            }
            try {
                results[k] = this.body((Closure) v)
            } catch (HarnessError e) {
                throw e
            } catch (Throwable t) {
                build.log("Failed in branch ${k}")
                failures << t
                failedBranch = failedBranch ?: k.toString()
            } finally {
                build.pendingStop = null
            }
        }
        if (failures) {
            if (!branches.failFast) {
                // ThrowableComparator as a rank (stable: ties keep the order they failed in)
                List<String> severity = ['ABORTED', 'NOT_BUILT', 'FAILURE', 'UNSTABLE', 'SUCCESS']
                Closure<Integer> rank = { Throwable t ->
                    t instanceof FlowInterruptedException ? 20 + severity.indexOf(((FlowInterruptedException) t).result)
                        : t instanceof AbortException ? 10 : 0
                }
                failures = failures.withIndex().sort { a, b -> rank(a[0]) <=> rank(b[0]) ?: a[1] <=> b[1] }.collect { it[0] }
            }
            Throwable head = failures[0]
            failures.drop(1).each { Throwable t -> if (t != head) { head.addSuppressed(t) } }
            throw head
        }
        results
    }

    Object step_script(PipelineScript s, Map a, Closure body) {
        build.record('script', a)
        this.body(body)
    }

    // ------------------------------------------------------------------------------------------
    // pipeline-groovy-lib

    /** ResourceStep: a library resource as text, or Base64 with encoding: 'Base64'. */
    Object step_libraryResource(PipelineScript s, Map a, Closure body) {
        Map e = build.record('libraryResource', a)
        byte[] data = build.library?.resource(a.resource.toString())
        if (data == null) {
            throw new AbortException("No such library resource ${a.resource} could be found.")
        }
        e.size = data.length
        e.sha256 = Build.sha256(data)
        a.encoding == 'Base64' ? Base64.encoder.encodeToString(data) : new String(data, (a.encoding ?: 'UTF-8').toString())
    }

    // ------------------------------------------------------------------------------------------
    // junit, pipeline-utility-steps, timestamper

    /**
     * junit (JUnitResultsStepExecution): failed tests make the build and the stage UNSTABLE; no
     * report files fail the step ("No test report files were found. Configuration error?")
     * unless allowEmptyResults. The scenario's `junit` answers say what the files contain.
     */
    Object step_junit(PipelineScript s, Map a, Closure body) {
        Map e = build.record('junit', a)
        Map answer = ((List<Map>) (build.scenario.junit ?: [])).find { Map j -> !j.testResults || j.testResults == a.testResults }
        if (answer == null || answer.files == 0) {
            if (!a.allowEmptyResults) {
                throw new AbortException('No test report files were found. Configuration error?')
            }
            e.returned = [totalCount: 0, failCount: 0, skipCount: 0, passCount: 0]
            return e.returned
        }
        int total = (answer.total ?: 0) as int
        int failed = (answer.failed ?: 0) as int
        int skipped = (answer.skipped ?: 0) as int
        if (failed > 0 && !a.skipMarkingBuildUnstable) {
            build.log("${failed} tests failed")
            build.setResult('UNSTABLE')
            build.stageWarning('UNSTABLE')
        }
        e.returned = [totalCount: total, failCount: failed, skipCount: skipped, passCount: total - failed - skipped]
        e.returned
    }

    /** FileSha256Step: lower-case hex digest of the file, or null when there is no such file (ComputeHashCallable). */
    Object step_sha256(PipelineScript s, Map a, Closure body) {
        Map e = build.record('sha256', a)
        byte[] data = build.files[build.resolve(a.file.toString())]
        String digest = data == null ? null : Build.sha256(data)
        e.returned = digest
        digest
    }

    Object step_timestamps(PipelineScript s, Map a, Closure body) {
        build.record('timestamps', a)
        this.body(body)
    }

    // ------------------------------------------------------------------------------------------
    // credentials-binding

    /**
     * withCredentials (BindingStep): looks each credential up (MultiBinding.getCredentials:
     * "Could not find credentials entry with ID '...'", or "... is of type ... where ... was
     * expected"), binds the values as environment variables for the body only, and writes file
     * credentials to <workspace>@tmp/secretFiles/<uuid>/ (UnbindableDir), deleted afterwards.
     */
    Object step_withCredentials(PipelineScript s, Map a, Closure body) {
        List bindings = (List) a.bindings
        build.record('withCredentials', [bindings: bindings])
        Map<String, String> vars = new LinkedHashMap<>()
        List<String> tempFiles = []
        bindings.each { Object b ->
            if (!(b instanceof Describable)) {
                throw new IllegalArgumentException("withCredentials expects bindings such as usernamePassword(...), got ${b}")
            }
            Describable d = (Describable) b
            String id = d.args.credentialsId?.toString()
            Map cred = ((Map) (build.scenario.credentials ?: [:]))[id]
            if (cred == null) {
                throw new AbortException("Could not find credentials entry with ID '${id}'")
            }
            Map<String, String> expected = [usernamePassword: 'usernamePassword', usernameColonPassword: 'usernamePassword',
                                             string: 'string', file: 'file']
            Map<String, String> names = [usernamePassword: 'Username with password', string: 'Secret text', file: 'Secret file']
            if (cred.type != expected[d.symbol]) {
                throw new AbortException("Credentials '${id}' is of type '${names[cred.type] ?: cred.type}' where '${names[expected[d.symbol]]}' was expected")
            }
            switch (d.symbol) {
                case 'usernamePassword':
                    vars[d.args.usernameVariable.toString()] = cred.username.toString()
                    vars[d.args.passwordVariable.toString()] = cred.password.toString()
                    break
                case 'usernameColonPassword':
                    vars[d.args.variable.toString()] = "${cred.username}:${cred.password}".toString()
                    break
                case 'string':
                    vars[d.args.variable.toString()] = cred.secret.toString()
                    break
                case 'file':
                    if (!build.inNode) {
                        throw new MissingContextException('hudson.FilePath')
                    }
                    String path = "${build.workspace}@tmp/secretFiles/${build.nextId()}/${cred.fileName ?: "file${build.counter}.tmp"}".toString()
                    build.files[path] = cred.content.toString().getBytes('UTF-8')
                    tempFiles << path
                    vars[d.args.variable.toString()] = path
                    break
            }
        }
        try {
            return withExpander(vars, body)
        } finally {
            tempFiles.each { build.files.remove(it) }
        }
    }
}
