package pipelineharness

import java.nio.file.Files
import java.nio.file.LinkOption
import java.nio.file.NoSuchFileException
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.attribute.PosixFilePermissions
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ScheduledFuture
import java.util.concurrent.TimeUnit

/**
 * The steps of live mode (see Live): the same binding and recording as Dsl, but the workspace is
 * the real directory, `sh` and `checkout` run outside (callbacks to Python), time is real, and
 * `timeout`, `sleep` and aborts really interrupt. Steps not overridden here behave as in Dsl.
 */
class LiveDsl extends Dsl {
    final Live live

    LiveDsl(Build build, Live live) {
        super(build)
        this.live = live
    }

    @Override
    protected void beforeStep(String name) {
        live.checkInterrupted()
    }

    private File file(String path) {
        new File(build.resolve(path))
    }

    // ------------------------------------------------------------------------------------------
    // node, sh

    /**
     * node (ExecutorStep): the workspace directory exists for the body; the environment is the
     * agent's (Computer.getEnvironment) plus NODE_NAME, NODE_LABELS, EXECUTOR_NUMBER, WORKSPACE and
     * WORKSPACE_TMP.
     */
    @Override
    Object step_node(PipelineScript s, Map a, Closure body) {
        if (build.pod != null && a.label == build.pod.label) {
            return podNode(s, a, body)
        }
        Map e = build.record('node', a)
        Map agent = (Map) (build.scenario.agent ?: [:])
        String name = (agent.name ?: live.nodeName).toString()
        e.node = name
        new File(build.workspace).mkdirs()
        build.log("Running on ${name} in ${build.workspace}")
        Map<String, String> previousEnv = build.nodeEnv
        List<String> previousCwd = new ArrayList<>(build.cwd)
        Map<String, String> env = new LinkedHashMap<>(live.agentEnv)
        env.putAll([NODE_NAME: name, NODE_LABELS: (agent.labels ?: name).toString(), EXECUTOR_NUMBER: '0',
                    WORKSPACE: build.workspace, WORKSPACE_TMP: "${build.workspace}@tmp".toString()])
        build.nodeEnv = env
        build.cwd.clear()
        build.cwd << build.workspace
        try {
            return this.body(body)
        } finally {
            build.nodeEnv = previousEnv
            build.cwd.clear()
            build.cwd.addAll(previousCwd)
        }
    }

    // ------------------------------------------------------------------------------------------
    // kubernetes (jenkinsci/kubernetes-plugin): the pods are real objects of the Kubernetes test world

    /**
     * podTemplate (PodTemplateStepExecution.start): as Dsl, but the label is the plugin's
     * PodTemplateUtils.sanitizeLabel(run.getExternalizableId()) + '-' + 5 random characters of
     * "bcdfghjklmnpqrstvwxz0123456789", and the template's name is that label + '-' + 5 more
     * (NAME_FORMAT "%s-%s"): the pod's name derives from it (PodUtils.createNameWithRandomSuffix).
     */
    @Override
    Object step_podTemplate(PipelineScript s, Map a, Closure body) {
        Map e = build.record('podTemplate', a)
        build.podTemplates++
        String label = a.label ?: "${sanitizeLabel("${build.jobName}#${build.number}".toString())}-${randomSuffix()}".toString()
        String name = "${a.name ?: label}-${randomSuffix()}".toString()
        List<String> containers = a.yaml ? PodYaml.containerNames(a.yaml.toString()) : []
        if (!containers.contains('jnlp')) {
            containers << 'jnlp'
        }
        String namespace = a.namespace ?: (a.yaml ? PodYaml.namespace(a.yaml.toString()) : null)
        e.label = label
        e.name = name
        e.containers = containers
        Map previous = build.pod
        build.pod = [label: label, name: name, containers: containers, namespace: namespace, yaml: a.yaml]
        try {
            return withExpander([POD_LABEL: label], body)
        } finally {
            build.pod = previous
        }
    }

    /** PodTemplateUtils.sanitizeLabel: the last 57 characters, [^_a-zA-Z0-9-] as '_', a non-alphanumeric first or last character as 'x'. */
    static String sanitizeLabel(String input) {
        int max = 63 - 1 - 5
        String label = input.length() > max ? input.substring(input.length() - max) : input
        label.replaceAll('[^_a-zA-Z0-9-]', '_').replaceFirst('^[^a-zA-Z0-9]', 'x').replaceFirst('[^a-zA-Z0-9]$', 'x')
    }

    private static final Random RANDOM = new Random()

    /** RandomStringUtils.random(5, "bcdfghjklmnpqrstvwxz0123456789"). */
    static String randomSuffix() {
        String chars = 'bcdfghjklmnpqrstvwxz0123456789'
        (1..5).collect { chars.charAt(RANDOM.nextInt(chars.length())) }.join('')
    }

    /**
     * node(POD_LABEL) of a podTemplate: the cloud provisions a KubernetesSlave, whose launcher creates
     * the pod and waits for it (KubernetesLauncher.launch): the Python callback 'podStart' does that
     * in the Kubernetes test world and answers the pod's name, its workspace directory (the
     * workspace-volume emptyDir, mapped to this machine) and the agent's environment (the jnlp
     * container's), or an error, with the lines the plugin prints to the build log. The body runs
     * on that agent; when the block ends, however it ends, the agent is terminated
     * (KubernetesSlave._terminate: the pod is deleted, callback 'podStop').
     */
    private Object podNode(PipelineScript s, Map a, Closure body) {
        Map e = build.record('node', a)
        Map pod = build.pod
        String podName = podName(pod.name.toString())
        Live.CallbackLeaf leaf = new Live.CallbackLeaf(live, 'podStart', [label: pod.label, name: pod.name, podName: podName,
                                                                          namespace: pod.namespace, yaml: pod.yaml,
                                                                          job: build.jobName, number: build.number])
        Map answer
        try {
            answer = (Map) live.await(leaf.start())
        } catch (FlowInterruptedException x) {
            // the build stopped waiting for its agent (an abort): the launch is cancelled, the pod terminated
            callNow('podStop', [podName: podName, namespace: pod.namespace ?: 'default', cancelled: true])
            throw x
        }
        ((List) (answer.log ?: [])).each { build.log(it.toString()) }
        if (answer.cancelled) {
            // the cloud cancelled the queue item (a pod the API server refused): ExecutorStepExecution's
            // CancelledItemListener fails the step with FlowInterruptedException(ABORTED, QueueTaskCancelled)
            throw new FlowInterruptedException('ABORTED', answer.error.toString(), 'QueueTaskCancelled', null)
        }
        if (answer.error) {
            throw new AbortException(answer.error.toString())
        }
        String name = answer.podName.toString()
        e.node = name
        e.pod = [name: name, namespace: answer.namespace]
        build.podsStarted++
        Map<String, String> previousEnv = build.nodeEnv
        boolean previousInPod = build.inPod
        String previousContainer = build.container
        String previousWorkspace = build.nodeWorkspace
        List<String> previousCwd = new ArrayList<>(build.cwd)
        build.nodeWorkspace = answer.workspace.toString()
        new File(build.workspace).mkdirs()
        build.log("Running on ${name} in ${build.workspace}")
        Map<String, String> env = new LinkedHashMap<>()
        ((Map) (answer.agentEnv ?: [:])).each { k, v -> env[k.toString()] = v.toString() }
        env.putAll([NODE_NAME: name, NODE_LABELS: "${pod.label} ${name}".toString(), EXECUTOR_NUMBER: '0',
                    WORKSPACE: build.workspace, WORKSPACE_TMP: "${build.workspace}@tmp".toString()])
        build.nodeEnv = env
        build.inPod = true
        build.container = null
        build.cwd.clear()
        build.cwd << build.workspace
        try {
            return this.body(body)
        } finally {
            build.nodeEnv = previousEnv
            build.inPod = previousInPod
            build.container = previousContainer
            build.nodeWorkspace = previousWorkspace
            build.cwd.clear()
            build.cwd.addAll(previousCwd)
            Map stopped = callNow('podStop', [podName: name, namespace: answer.namespace])
            ((List) (stopped.log ?: [])).each { build.log(it.toString()) }
        }
    }

    /** KubernetesSlave.getSlaveName: PodUtils.createNameWithRandomSuffix(template name). */
    static String podName(String templateName) {
        String suffix = randomSuffix()
        String name = templateName.replaceAll('[ _]', '-').toLowerCase(Locale.ROOT)
        "${name.substring(0, Math.min(name.length(), 62 - suffix.length()))}-${suffix}".toString()
    }

    /** A callback that no interruption stops (the agent's termination when its block ends). */
    private Map callNow(String kind, Map args) {
        CompletableFuture<Map> done = new CompletableFuture<Map>()
        live.callback(kind, args) { Map answer -> done.complete(answer) }
        done.get(120, TimeUnit.SECONDS)
    }

    /**
     * sh (DurableTaskStep + BourneShellScript): the Python executor runs the script in the current
     * directory with the step's environment and streams its output to the log; handleExit decides
     * what the step returns: the status with returnStatus, "script returned exit code N" for a
     * non-zero exit, the output with returnStdout. A stopped step fails with the interruption.
     */
    @Override
    Object step_sh(PipelineScript s, Map a, Closure body) {
        TreeMap<String, String> env = build.effectiveEnv()
        Map e = build.record('sh', a)
        e.cwd = build.currentDir
        e.env = new LinkedHashMap(env)
        Map shArgs = [script: a.script, returnStdout: a.returnStdout ?: false, returnStatus: a.returnStatus ?: false,
                      label: a.label, encoding: a.encoding, cwd: build.currentDir, env: env]
        if (build.inPod) {
            // kubernetes plugin: in container('x') ContainerExecDecorator runs it in x; outside one the agent's own launcher, in jnlp
            e.container = build.container ?: 'jnlp'
            e.pod = build.nodeEnv.NODE_NAME
            shArgs.container = e.container
            shArgs.pod = e.pod
            shArgs.namespace = build.pod?.namespace
            shArgs.agentEnv = build.nodeEnv
        }
        build.log("[Pipeline] sh${a.label ? " (${a.label})" : ''}")
        Live.ShLeaf leaf = new Live.ShLeaf(live, shArgs)
        Map answer
        try {
            answer = (Map) live.await(leaf.start())
        } catch (FlowInterruptedException x) {
            e.interrupted = x.message
            e.status = leaf.answer?.status
            throw x
        }
        if (answer.error) {
            throw new AbortException(answer.error.toString())
        }
        int status = answer.status as int
        e.status = status
        e.cookie = answer.cookie
        e.controlDir = answer.controlDir
        e.durationMs = answer.durationMs
        String stdout = (answer.stdout ?: '').toString()
        if (a.returnStdout) {
            e.stdout = stdout
        }
        if (a.returnStatus) {
            return status
        }
        if (status != 0) {
            if (a.returnStdout) {
                stdout.readLines().each { build.log(it) }
            }
            throw new AbortException("script returned exit code ${status}")
        }
        a.returnStdout ? stdout : null
    }

    // ------------------------------------------------------------------------------------------
    // Workspace files (FilePath on the real directory)

    /** WriteFileStep: FilePath.write creates the parent directories. */
    @Override
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
        File f = file(a.file.toString())
        f.parentFile?.mkdirs()
        f.bytes = data
        null
    }

    @Override
    Object step_readFile(PipelineScript s, Map a, Closure body) {
        build.record('readFile', a)
        File f = file(a.file.toString())
        if (!f.isFile()) {
            throw new NoSuchFileException(f.path)
        }
        byte[] data = f.bytes
        a.encoding == 'Base64' ? Base64.encoder.encodeToString(data) : new String(data, 'UTF-8')
    }

    @Override
    Object step_fileExists(PipelineScript s, Map a, Closure body) {
        Map e = build.record('fileExists', a)
        boolean exists = file(a.file.toString()).exists()
        e.returned = exists
        exists
    }

    /** DeleteDirStep: FilePath.deleteRecursive of the current directory. */
    @Override
    Object step_deleteDir(PipelineScript s, Map a, Closure body) {
        build.record('deleteDir', a)
        File dir = new File(build.currentDir)
        if (dir.exists()) {
            dir.deleteDir()
        }
        null
    }

    @Override
    Object step_sha256(PipelineScript s, Map a, Closure body) {
        Map e = build.record('sha256', a)
        File f = file(a.file.toString())
        String digest = f.isFile() ? Build.sha256(f.bytes) : null
        e.returned = digest
        digest
    }

    /** The files under dir (relative paths, '/'-separated) matching Ant patterns; .git is never included. */
    static List<String> matching(File dir, String includes, String excludes = null) {
        if (!dir.isDirectory()) {
            return []
        }
        List<String> inc = (includes ?: '**').split(',')*.trim().findAll { it }
        List<String> exc = (excludes ?: '').split(',')*.trim().findAll { it }
        List<String> out = []
        walk(dir, '', inc, exc, out)
        out.sort()
    }

    private static void walk(File dir, String prefix, List<String> inc, List<String> exc, List<String> out) {
        (dir.listFiles() ?: new File[0]).each { File f ->
            String rel = prefix + f.name
            if (Files.isSymbolicLink(f.toPath())) {
                return
            }
            if (f.isDirectory()) {
                if (f.name != '.git') {
                    walk(f, rel + '/', inc, exc, out)
                }
            } else if (f.isFile() && inc.any { Glob.matches(it, rel, true) } && !exc.any { Glob.matches(it, rel, true) }) {
                out << rel
            }
        }
    }

    @Override
    Object step_stash(PipelineScript s, Map a, Closure body) {
        build.record('stash', a)
        File dir = new File(build.currentDir)
        Map<String, byte[]> saved = [:]
        matching(dir, (String) a.includes, (String) a.excludes).each { String rel -> saved[rel] = new File(dir, rel).bytes }
        if (saved.isEmpty() && !a.allowEmpty) {
            throw new AbortException('No files included in stash \u2018' + a.name + '\u2019')
        }
        build.stashes[a.name.toString()] = saved
        null
    }

    @Override
    Object step_unstash(PipelineScript s, Map a, Closure body) {
        build.record('unstash', a)
        Map<String, byte[]> saved = build.stashes[a.name.toString()]
        if (saved == null) {
            throw new AbortException('No such saved stash \u2018' + a.name + '\u2019')
        }
        saved.each { String rel, byte[] data ->
            File f = file(rel)
            f.parentFile?.mkdirs()
            f.bytes = data
        }
        null
    }

    // ------------------------------------------------------------------------------------------
    // checkout

    /**
     * checkout (SCMStep): Python checks out for real and answers the SCM's variables (returned,
     * as GitSCM.buildEnvironment gives them) and the change set; the SCM is recorded in `scms`
     * (WorkflowRun.onCheckout keeps every checkout; WorkflowJob.getSCMs() lists them by SCM key).
     */
    @Override
    Object step_checkout(PipelineScript s, Map a, Closure body) {
        Map e = build.record('checkout', a)
        Map scm = a.scm instanceof Map ? (Map) Json.clean(a.scm) : [value: Json.clean(a.scm)]
        List remotes = (List) (scm.userRemoteConfigs ?: [])
        Map remote = remotes ? (Map) remotes[0] : [:]
        Map record = [url: remote.url, credentialsId: remote.credentialsId,
                      branches: ((List) (scm.branches ?: [])).collect { ((Map) it).name },
                      poll: a.poll != false, changelog: a.changelog != false]
        Live.CallbackLeaf leaf = new Live.CallbackLeaf(live, 'checkout', [scm: scm, cwd: build.currentDir, env: build.effectiveEnv(),
                                                                          changelog: a.changelog != false, poll: a.poll != false])
        Map answer = (Map) live.await(leaf.start())
        if (answer.error) {
            throw new AbortException(answer.error.toString())
        }
        if (!build.scms.any { it.url == record.url && it.branches == record.branches }) {
            build.scms << record
        }
        Map returned = new LinkedHashMap((Map) (answer.returns ?: [:]))
        if (a.changelog != false && answer.changeSet) {
            build.changeSets << ((List<Map>) answer.changeSet).collect { new LinkedHashMap(it) }
        }
        e.returned = Json.clean(returned)
        returned
    }

    // ------------------------------------------------------------------------------------------
    // junit

    /**
     * junit (JUnitResultsStepExecution.run + JUnitResultArchiver.parseAndSummarize): the report
     * files matching the pattern (comma-separated Ant globs) are parsed; a testcase with <failure>
     * or <error> failed, one with <skipped> was skipped. No files: "No test report files were
     * found. Configuration error?"; no tests: "None of the test reports contained any result"
     * (only a log line with allowEmptyResults). Failed tests add WarningAction(UNSTABLE) to the
     * stage and make the build UNSTABLE (unless skipMarkingBuildUnstable).
     */
    @Override
    Object step_junit(PipelineScript s, Map a, Closure body) {
        Map e = build.record('junit', a)
        build.log('Recording test results')
        File dir = new File(build.currentDir)
        List<String> files = matching(dir, a.testResults.toString())
        e.files = files
        if (files.isEmpty() && !a.allowEmptyResults) {
            throw new AbortException('No test report files were found. Configuration error?')
        }
        int total = 0
        int failed = 0
        int skipped = 0
        files.each { String rel ->
            def xml = new XmlSlurper(false, false).parse(new File(dir, rel))
            xml.depthFirst().findAll { it.name() == 'testcase' }.each { tc ->
                total++
                if (tc.children().any { it.name() in ['failure', 'error'] }) {
                    failed++
                } else if (tc.children().any { it.name() == 'skipped' }) {
                    skipped++
                }
            }
        }
        Map summary = [totalCount: total, failCount: failed, skipCount: skipped, passCount: total - failed - skipped]
        if (total == 0) {
            if (!a.allowEmptyResults) {
                throw new AbortException('None of the test reports contained any result')
            }
            build.log('None of the test reports contained any result')
        }
        if (failed > 0) {
            build.stageWarning('UNSTABLE')
            if (!a.skipMarkingBuildUnstable) {
                build.setResult('UNSTABLE')
            }
        }
        e.returned = summary
        summary
    }

    // ------------------------------------------------------------------------------------------
    // credentials-binding

    /**
     * withCredentials (BindingStep): as Dsl, but a `file` credential is written for real, as
     * FileBinding.write and UnbindableDir.create do: a directory
     * <current dir>@tmp/secretFiles/<UUID> (secretFiles and it chmod 700), in it
     * File.createTempFile("file", null) (file<random>.tmp, chmod 400); the directory is deleted
     * when the block ends, however it ends (UnbindableDir.UnbinderImpl.unbind: deleteRecursive).
     */
    @Override
    Object step_withCredentials(PipelineScript s, Map a, Closure body) {
        List bindings = (List) a.bindings
        build.record('withCredentials', [bindings: bindings])
        Map<String, String> vars = new LinkedHashMap<>()
        List<File> tempDirs = []
        try {
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
                        File secrets = new File("${build.currentDir}@tmp/secretFiles")
                        File dir = new File(secrets, UUID.randomUUID().toString())
                        dir.mkdirs()
                        tempDirs << dir
                        Files.setPosixFilePermissions(secrets.toPath(), PosixFilePermissions.fromString('rwx------'))
                        Files.setPosixFilePermissions(dir.toPath(), PosixFilePermissions.fromString('rwx------'))
                        File secret = File.createTempFile('file', null, dir)
                        secret.bytes = cred.content.toString().getBytes('UTF-8')
                        Files.setPosixFilePermissions(secret.toPath(), PosixFilePermissions.fromString('r--------'))
                        vars[d.args.variable.toString()] = secret.path
                        break
                }
            }
            return withExpander(vars, body)
        } finally {
            tempDirs.each { File dir ->
                dir.setWritable(true, true)
                dir.deleteDir()
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // timeout, sleep

    private static long unitMillis(Object unit) {
        Map<String, Long> units = [NANOSECONDS: 0L, MICROSECONDS: 0L, MILLISECONDS: 1L, SECONDS: 1000L, MINUTES: 60000L,
                                   HOURS: 3600000L, DAYS: 86400000L]
        Long m = units[(unit ?: 'MINUTES').toString()]
        if (m == null) {
            throw new IllegalArgumentException("No enum constant java.util.concurrent.TimeUnit.${unit}")
        }
        m
    }

    /**
     * timeout (TimeoutStepExecution): "Timeout set to expire in <span>"; when it expires, "Cancelling
     * nested steps due to timeout" and the body is cancelled with ExceededTimeout (the running step
     * is stopped: FlowInterruptedException(ABORTED), "Timeout has been exceeded"); if the body has
     * not finished GRACE_PERIOD later, "Body did not finish within grace period; terminating with
     * extreme prejudice" and its running step fails at once. Callback.onFailure marks an
     * interruption of its own timeout as not an actual interruption.
     */
    @Override
    Object step_timeout(PipelineScript s, Map a, Closure body) {
        build.record('timeout', a)
        if (a.activity) {
            throw new HarnessError('harness: timeout(activity: true) is not emulated in live mode')
        }
        long ms = unitMillis(a.unit) * (a.time as long)
        Live.Scope scope = live.openScope('timeout')
        build.log("Timeout set to expire in ${Live.timeSpan(ms)}")
        List<ScheduledFuture> timers = [].asSynchronized()
        timers << live.schedule(ms) {
            if (scope.closed) {
                return
            }
            build.log('Cancelling nested steps due to timeout')
            live.interrupt(scope, new FlowInterruptedException('ABORTED', 'Timeout has been exceeded', 'ExceededTimeout', scope))
            timers << live.schedule(live.gracePeriodMs) {
                if (!scope.closed) {
                    build.log('Body did not finish within grace period; terminating with extreme prejudice')
                    live.force(scope, new FlowInterruptedException('ABORTED', 'Timeout has been exceeded', 'ExceededTimeout', scope))
                }
            }
        }
        try {
            return this.body(body)
        } catch (FlowInterruptedException x) {
            if (x.scope.is(scope)) {
                x.actualInterruption = false
            }
            throw x
        } finally {
            live.closeScope(scope)
            new ArrayList<>(timers).each { it.cancel(false) }
        }
    }

    /** SleepStep: "Sleeping for <span>", a real wait that an interruption ends at once. */
    @Override
    Object step_sleep(PipelineScript s, Map a, Closure body) {
        build.record('sleep', a)
        long ms = unitMillis(a.unit ?: 'SECONDS') * (a.time as long)
        build.log("Sleeping for ${Live.timeSpan(ms)}")
        live.await(new Live.SleepLeaf(live).start(ms))
        null
    }
}
