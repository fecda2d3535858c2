package pipelineharness

/**
 * Runs a validated Declarative Pipeline the way pipeline-model-definition's ModelInterpreter does
 * (pipeline-model-definition/src/main/resources/.../ModelInterpreter.groovy): the agent wraps the
 * whole build including `post`; the implicit "Declarative: Checkout SCM" stage runs unless
 * skipDefaultCheckout; root environment, then option wrappers; stages run in order and, once one
 * failed, the rest are skipped with "Stage "X" skipped due to earlier failure(s)"; a false `when`
 * skips with "... skipped due to when conditional"; post conditions run in
 * BuildCondition.getOrderedConditionNames() order, each seeing the combined result (so
 * currentBuild.currentResult reads FAILURE in `post { always { } }` after a failed stage,
 * as runPostConditions sets it).
 *
 * The structure comes from running the pipeline closure against capture objects (Jenkins
 * transforms the AST instead); Validator has already rejected anything Jenkins would reject.
 */
class Declarative {
    private final Build build
    private Root root

    Declarative(Build build) {
        this.build = build
    }

    // ------------------------------------------------------------------------------------------
    // Model

    static class Agent {
        String type
        String label
        String customWorkspace
        Map<String, Object> options = [:]  // agent { kubernetes { yaml ...; retries 2 } }: option -> value
    }

    static class StageModel {
        String name
        Agent agent
        Closure when
        Closure environment
        List<Describable> options = []
        Closure steps
        List<StageModel> stages
        List<StageModel> parallel
        boolean failFast
        Map<String, Closure> post
        List<Describable> tools
    }

    static class Root {
        Agent agent
        Closure environment
        List<Describable> options = []
        List<Describable> triggers = []
        List<Describable> parameters = []
        List<StageModel> stages = []
        Map<String, Closure> post
        List<Describable> tools
    }

    static class Cond {
        String type
        Map args = [:]
        Closure block
        List<Cond> children = []
    }

    // ------------------------------------------------------------------------------------------
    // Capture

    private static Object runWith(Closure c, Object delegate) {
        Closure copy = (Closure) c.clone()
        copy.delegate = delegate
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        copy.call()
    }

    static class PipelineCapture {
        Root root = new Root()

        Object getAny() { 'any' }

        Object getNone() { 'none' }

        void agent(Object type) { root.agent = new Agent(type: type.toString()) }

        void agent(Closure c) { root.agent = captureAgent(c) }

        void environment(Closure c) { root.environment = c }

        void options(Closure c) { root.options = captureSection(c) }

        void triggers(Closure c) { root.triggers = captureSection(c) }

        void parameters(Closure c) { root.parameters = captureSection(c, Catalog.PARAMETER_TYPES) }

        void tools(Closure c) { root.tools = captureSection(c) }

        void libraries(Closure c) { throw new HarnessError('harness: the libraries directive is not emulated') }

        void stages(Closure c) { root.stages = captureStages(c) }

        void post(Closure c) { root.post = capturePost(c) }
    }

    static class AgentCapture {
        Agent agent

        void label(String l) { agent = new Agent(type: 'label', label: l) }

        void node(Closure c) {
            NodeCapture n = new NodeCapture()
            runWith(c, n)
            agent = new Agent(type: 'node', label: n.label, customWorkspace: n.customWorkspace)
        }

        /** KubernetesDeclarativeAgent: every option is a @DataBoundSetter (Validator checked the names). */
        void kubernetes(Closure c) {
            AgentOptionsCapture o = new AgentOptionsCapture()
            runWith(c, o)
            agent = new Agent(type: 'kubernetes', label: (String) o.options.label, options: o.options)
        }
    }

    static class NodeCapture {
        String label
        String customWorkspace

        void label(String l) { label = l }

        void customWorkspace(String w) { customWorkspace = w }
    }

    static Agent captureAgent(Closure c) {
        AgentCapture a = new AgentCapture()
        runWith(c, a)
        a.agent
    }

    static List<Describable> captureSection(Closure c, Map<String, Catalog.Spec> specs = null) {
        SectionCapture s = new SectionCapture(specs: specs)
        runWith(c, s)
        s.items
    }

    static class StagesCapture {
        List<StageModel> stages = []

        void stage(String name, Closure body) {
            StageCapture sc = new StageCapture(stage: new StageModel(name: name))
            runWith(body, sc)
            stages << sc.stage
        }
    }

    static List<StageModel> captureStages(Closure c) {
        StagesCapture s = new StagesCapture()
        runWith(c, s)
        s.stages
    }

    static class StageCapture {
        StageModel stage

        Object getAny() { 'any' }

        Object getNone() { 'none' }

        void agent(Object type) { stage.agent = new Agent(type: type.toString()) }

        void agent(Closure c) { stage.agent = captureAgent(c) }

        void when(Closure c) { stage.when = c }

        void steps(Closure c) { stage.steps = c }

        void environment(Closure c) { stage.environment = c }

        void options(Closure c) { stage.options = captureSection(c) }

        void post(Closure c) { stage.post = capturePost(c) }

        void stages(Closure c) { stage.stages = captureStages(c) }

        void parallel(Closure c) { stage.parallel = captureStages(c) }

        void failFast(boolean b) { stage.failFast = b }

        void tools(Closure c) { stage.tools = captureSection(c) }

        void input(Closure c) { throw new HarnessError('harness: stage input is not emulated') }

        void matrix(Closure c) { throw new HarnessError('harness: matrix stages are not emulated') }
    }

    static Map<String, Closure> capturePost(Closure c) {
        PostCapture p = new PostCapture()
        runWith(c, p)
        p.conditions
    }

    /** The conditions of a when block, and its beforeAgent/beforeInput/beforeOptions flags. */
    static class WhenCapture {
        List<Cond> conds = []
        boolean beforeAgent
        boolean beforeInput
        boolean beforeOptions

        void beforeAgent(boolean b) { beforeAgent = b }

        void beforeInput(boolean b) { beforeInput = b }

        void beforeOptions(boolean b) { beforeOptions = b }

        private void add(String type, Object arg, String sole) {
            conds << new Cond(type: type, args: arg instanceof Map ? new LinkedHashMap((Map) arg) : (arg == null ? [:] : [(sole): arg]))
        }

        void branch(Object p) { add('branch', p, 'pattern') }

        void environment(Map m) { add('environment', m, null) }

        void changeset(Object p) { add('changeset', p, 'pattern') }

        void changelog(Object p) { add('changelog', p, 'pattern') }

        void tag(Object p) { add('tag', p, 'pattern') }

        void triggeredBy(Object c) { add('triggeredBy', c, 'cause') }

        void buildingTag() { add('buildingTag', null, null) }

        void isRestartedRun() { add('isRestartedRun', null, null) }

        void changeRequest(Map m = [:]) { add('changeRequest', m, null) }

        boolean equals(Map m) {
            add('equals', m, null)
            true
        }

        void expression(Closure c) { conds << new Cond(type: 'expression', block: c) }

        void allOf(Closure c) { conds << new Cond(type: 'allOf', children: captureWhen(c).conds) }

        void anyOf(Closure c) { conds << new Cond(type: 'anyOf', children: captureWhen(c).conds) }

        void not(Closure c) { conds << new Cond(type: 'not', children: captureWhen(c).conds) }
    }

    static WhenCapture captureWhen(Closure c) {
        WhenCapture w = new WhenCapture()
        runWith(c, w)
        w
    }

    /** environment { } entries in order; credentials('id') values are bound through withCredentials. */
    static class EnvCapture extends GroovyObjectSupport {
        private final Map<String, Object> entries = new LinkedHashMap<>()

        Map<String, Object> values() { this.@entries }

        @Override
        void setProperty(String name, Object value) {
            this.@entries[name] = value instanceof GString ? value.toString() : value
        }

        @Override
        Object getProperty(String name) {
            if (this.@entries.containsKey(name)) {
                return this.@entries[name]
            }
            throw new MissingPropertyException(name, EnvCapture)
        }

        Object credentials(String id) { new CredentialsRef(id: id) }
    }

    static class CredentialsRef {
        String id
    }

    // ------------------------------------------------------------------------------------------
    // ModelInterpreter.call

    void run(PipelineScript script, Closure body) {
        PipelineCapture capture = new PipelineCapture()
        runWith(body, capture)
        Root root = capture.root
        this.root = root
        Throwable firstError = null
        boolean postBuildRun = false
        boolean harnessFailure = false
        try {
            executeProperties(root)
            inAgent(script, root, root.agent, null) {
                withEnvironment(script, root.environment) {
                    inWrappers(script, root.options) {
                        toolsBlock(script, root.tools, root.agent, null, false) {
                            firstError = evaluateSequentialStages(script, root, root.stages, null, null, null)
                            try {
                                postBuildRun = true
                                executePostBuild(script, root, firstError)
                            } catch (Throwable e) {
                                rethrowHarness(e)
                                if (firstError == null) {
                                    firstError = e
                                }
                            }
                        }
                        if (firstError != null) {
                            throw firstError
                        }
                    }
                }
            }
        } catch (HarnessError e) {
            harnessFailure = true
            throw e
        } catch (Throwable e) {
            if (firstError == null) {
                firstError = e
            }
        } finally {
            if (!postBuildRun && !harnessFailure) {
                try {
                    executePostBuild(script, root, firstError)
                } catch (Throwable e) {
                    rethrowHarness(e)
                    if (firstError == null) {
                        firstError = e
                    }
                }
            }
        }
        if (firstError != null) {
            throw firstError
        }
    }

    private static void rethrowHarness(Throwable t) {
        if (t instanceof HarnessError) {
            throw t
        }
    }

    /** Utils.updateJobProperties: job properties, triggers and parameters change the job, not the build. */
    private void executeProperties(Root root) {
        List<Describable> props = root.options.findAll { it.symbol in Catalog.JOB_PROPERTIES }
        build.event('properties', [options: props, triggers: root.triggers, parameters: root.parameters])
        Map<String, Object> defaults = [:]
        root.parameters.each { Describable d -> defaults[d.args.name.toString()] = d.args.defaultValue }
        if (root.parameters) {
            build.addParameters(defaults)
        }
    }

    private static boolean skipDefaultCheckout(List<Describable> options) {
        Describable d = options.find { it.symbol == 'skipDefaultCheckout' }
        d != null && d.args.skipDefaultCheckout != false
    }

    /**
     * inDeclarativeAgent + AnyScript/LabelScript + CheckoutScript.checkoutAndRun: a node, then
     * (for jobs whose Jenkinsfile comes from SCM, unless skipDefaultCheckout) `checkout scm` in a
     * "Declarative: Checkout SCM" stage, whose variables wrap the body in withEnv - which
     * shadows later env.GIT_COMMIT = ... assignments (EnvironmentExpander wins over EnvActionImpl).
     */
    private void inAgent(PipelineScript script, Root root, Agent agent, StageModel stage, Closure body) {
        if (agent == null || agent.type == 'none') {
            body.call()
            return
        }
        String defaultContainer = (agent.options.defaultContainer ?: 'jnlp').toString()
        if (agent.type == 'kubernetes' && defaultContainer != 'jnlp') {
            // KubernetesDeclarativeAgentScript: the checkout runs in jnlp, the body in container(defaultContainer)
            Closure outer = body
            body = { build.dsl.invoke(script, 'container', [defaultContainer, outer] as Object[]) }
        }
        Closure inNode = {
            Map checkoutMap = [:]
            boolean skip = skipDefaultCheckout(root.options) || (stage != null && skipDefaultCheckout(stage.options))
            if (!skip && build.job.fromScm != false && build.job.scm != null) {
                Closure perform = {
                    Object scm = build.dsl.property(script, 'scm')
                    checkoutMap.putAll((Map) (build.dsl.invoke(script, 'checkout', [scm] as Object[]) ?: [:]))
                }
                if (stage == null) {
                    build.dsl.invoke(script, 'stage', ['Declarative: Checkout SCM', perform] as Object[])
                } else {
                    perform.call()
                }
            }
            if (checkoutMap) {
                build.dsl.invoke(script, 'withEnv', [checkoutMap.collect { k, v -> "${k}=${v}".toString() }, body] as Object[])
            } else {
                body.call()
            }
        }
        if (agent.type == 'kubernetes') {
            kubernetesAgent(script, agent, inNode)
            return
        }
        List<Object> args = agent.label ? [agent.label] : []
        build.dsl.invoke(script, 'node', (args + [inNode]) as Object[])
    }

    /**
     * kubernetes-plugin's KubernetesDeclarativeAgentScript.run: podTemplate(getAsArgs()) around
     * (with retries > 1) retry(count: retries, conditions: [kubernetesAgent(), nonresumable()]) around
     * node(POD_LABEL) around the checkout and the body, the body inside container(defaultContainer)
     * unless that is jnlp (or not set). inheritFrom is set to '' (no implicit inheritance), as the script does.
     */
    private void kubernetesAgent(PipelineScript script, Agent agent, Closure inNode) {
        Map<String, Object> o = agent.options
        Map<String, Object> args = new TreeMap<>()  // getAsArgs() is a TreeMap
        ['label', 'yaml', 'namespace', 'serviceAccount', 'nodeSelector', 'workingDir', 'cloud', 'showRawYaml',
         'workspaceVolume', 'podRetention', 'activeDeadlineSeconds', 'idleMinutes', 'instanceCap', 'supplementalGroups',
         'agentContainer', 'agentInjection', 'yamlMergeStrategy'].each { String k ->
            if (o[k] != null && o[k] != '') {
                args[k] = o[k]
            }
        }
        args.inheritFrom = o.inheritFrom != null ? o.inheritFrom : ''
        int retries = o.retries != null ? (o.retries as int) : 1
        Closure run = {
            String podLabel = build.effectiveEnv().get('POD_LABEL')
            build.dsl.invoke(script, 'node', [o.label ?: podLabel, inNode] as Object[])
        }
        Closure retried = retries > 1 ? {
            List conditions = [build.dsl.invoke(script, 'kubernetesAgent', [] as Object[]),
                               build.dsl.invoke(script, 'nonresumable', [] as Object[])]
            build.dsl.invoke(script, 'retry', [[count: retries, conditions: conditions], run] as Object[])
        } : run
        build.dsl.invoke(script, 'podTemplate', [args, retried] as Object[])
    }

    /** withCredentialsBlock + withEnvBlock: credentials('id') becomes a withCredentials binding, the rest withEnv. */
    private void withEnvironment(PipelineScript script, Closure environment, Closure body) {
        if (environment == null) {
            body.call()
            return
        }
        EnvCapture env = new EnvCapture()
        runWith(environment, env)
        List<Describable> bindings = []
        List<String> entries = []
        env.values().each { String k, Object v ->
            if (v instanceof CredentialsRef) {
                Map cred = ((Map) (build.scenario.credentials ?: [:]))[v.id]
                String type = cred?.type ?: 'string'
                // CredentialsBindingHandler: username/password gives K (user:pass), K_USR and K_PSW.
                if (type == 'usernamePassword') {
                    bindings << new Describable('usernameColonPassword', [credentialsId: v.id, variable: k])
                    bindings << new Describable('usernamePassword', [credentialsId: v.id, usernameVariable: "${k}_USR".toString(),
                                                                      passwordVariable: "${k}_PSW".toString()])
                } else {
                    bindings << new Describable(type == 'file' ? 'file' : 'string', [credentialsId: v.id, variable: k])
                }
            } else {
                entries << "${k}=${v}".toString()
            }
        }
        Closure withEnvBlock = {
            if (entries) {
                build.dsl.invoke(script, 'withEnv', [entries, body] as Object[])
            } else {
                body.call()
            }
        }
        if (bindings) {
            build.dsl.invoke(script, 'withCredentials', [bindings, withEnvBlock] as Object[])
        } else {
            withEnvBlock.call()
        }
    }

    /**
     * toolsBlock + actualToolsInstall: the stage's tools merged over the parent's (a stage re-installs
     * the pipeline's tools, as it may run on another agent), each installed with the `tool` step and
     * put on the PATH (ToolInstallation.buildEnvVars: PATH+<TYPE>, plus JAVA_HOME for a JDK); at
     * pipeline level inside a "Declarative: Tool Install" stage. Nothing is installed without an agent.
     */
    private void toolsBlock(PipelineScript script, List<Describable> tools, Agent agent, List<Describable> parentTools,
                            boolean inStage, Closure body) {
        Map<String, String> merged = new LinkedHashMap<>()
        (parentTools ?: []).each { merged[it.symbol] = it.args.value.toString() }
        (tools ?: []).each { merged[it.symbol] = it.args.value.toString() }
        if (merged.isEmpty() || agent == null || agent.type == 'none') {
            body.call()
            return
        }
        List<String> toolEnv = []
        Closure install = {
            merged.each { String type, String name ->
                String home = build.dsl.invoke(script, 'tool', [[name: name, type: type]] as Object[]).toString()
                toolEnv << "PATH+${type.toUpperCase()}=${home}/bin".toString()
                if (type == 'jdk') {
                    toolEnv << "JAVA_HOME=${home}".toString()
                }
            }
        }
        if (inStage) {
            install.call()
        } else {
            build.dsl.invoke(script, 'stage', ['Declarative: Tool Install', install] as Object[])
        }
        build.dsl.invoke(script, 'withEnv', [toolEnv, body] as Object[])
    }

    /** inWrappers/recursiveWrappers: option wrappers nest in the order they are written. */
    private void inWrappers(PipelineScript script, List<Describable> options, Closure body) {
        List<Describable> wrappers = options.findAll { it.symbol in Catalog.wrapperSteps }
        if (wrappers.isEmpty()) {
            body.call()
            return
        }
        Describable first = wrappers[0]
        List<Describable> rest = options - first
        List<Object> args = first.args ? [first.args] : []
        build.dsl.invoke(script, first.symbol, (args + [{ inWrappers(script, rest, body) }]) as Object[])
    }

    // ------------------------------------------------------------------------------------------
    // Stages: evaluateSequentialStages, evaluateStage, skipStage, executeSingleStage

    private Throwable evaluateSequentialStages(PipelineScript script, Root root, List<StageModel> stages, Throwable firstError,
                                               StageModel parent, String skippedReason) {
        boolean harness = false
        try {
            stages.each { StageModel st ->
                try {
                    evaluateStage(script, root, st, firstError, parent, skippedReason)
                } catch (HarnessError e) {
                    harness = true
                    throw e
                } catch (Throwable e) {
                    if (firstError == null) {
                        firstError = e
                    }
                }
            }
        } finally {
            if (!harness && skippedReason == null && parent != null && hasSatisfiedConditions(parent.post, parent.name, firstError)) {
                build.log('Post stage')
                firstError = runPostConditions(script, parent.post, firstError, parent.name)
            }
        }
        firstError
    }

    private void evaluateStage(PipelineScript script, Root root, StageModel st, Throwable firstError, StageModel parent,
                               String skippedReason) {
        Map record = build.stageStart(st.name)
        Throwable escaped = null
        boolean harness = false
        try {
            if (skippedReason != null) {
                skipStage(script, root, st, firstError, skippedReason, record)
            } else if (firstError != null) {
                skippedReason = 'SKIPPED_FOR_FAILURE'
                skipStage(script, root, st, firstError, skippedReason, record)
            } else if (build.result == 'UNSTABLE' && root.options.any { it.symbol == 'skipStagesAfterUnstable' }) {
                skippedReason = 'SKIPPED_FOR_UNSTABLE'
                skipStage(script, root, st, firstError, skippedReason, record)
            } else {
                WhenEvaluator when = new WhenEvaluator(this, script, st.when)
                if (when.passedOrNotEvaluated(when.beforeOptions)) {
                    inWrappers(script, st.options) {
                        if (st.parallel != null) {
                            if (when.passedOrNotEvaluated(true)) {
                                withEnvironment(script, st.environment) {
                                    Map<String, Object> branches = new LinkedHashMap<>()
                                    st.parallel.each { StageModel child ->
                                        branches[child.name] = { evaluateStage(script, root, child, null, st, null) }
                                    }
                                    if (st.failFast || root.options.any { it.symbol == 'parallelsAlwaysFailFast' }) {
                                        branches.failFast = true
                                    }
                                    build.dsl.invoke(script, 'parallel', [branches] as Object[])
                                }
                            }
                        } else if (when.passedOrNotEvaluated(when.beforeAgent)) {
                            inAgent(script, root, st.agent, st) {
                                if (when.passedOrNotEvaluated(true)) {
                                    withEnvironment(script, st.environment) {
                                        toolsBlock(script, st.tools, st.agent ?: root.agent, parent?.tools ?: root.tools, true) {
                                            if (st.stages) {
                                                Throwable nested = evaluateSequentialStages(script, root, st.stages, null, st, null)
                                                if (nested != null) {
                                                    throw nested
                                                }
                                            } else {
                                                executeSingleStage(script, root, st, record)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                if (!when.passed) {
                    skippedReason = 'SKIPPED_FOR_CONDITIONAL'
                    skipStage(script, root, st, firstError, skippedReason, record)
                }
            }
        } catch (HarnessError e) {
            harness = true
            throw e
        } catch (Throwable e) {
            record.failed = true
            escaped = e
            if (firstError == null) {
                firstError = e
            }
        } finally {
            if (!harness && skippedReason == null && st.parallel != null && hasSatisfiedConditions(st.post, st.name, firstError)) {
                build.log('Post stage')
                firstError = runPostConditions(script, st.post, firstError, st.name)
            }
            if (!harness) {
                build.stageEnd(record, escaped)
            }
        }
        if (firstError != null) {
            throw firstError
        }
    }

    private static final Map<String, String> SKIP_MESSAGES = [
        SKIPPED_FOR_FAILURE: 'Stage "%s" skipped due to earlier failure(s)',
        SKIPPED_FOR_UNSTABLE: 'Stage "%s" skipped due to earlier stage(s) marking the build as unstable',
        SKIPPED_FOR_CONDITIONAL: 'Stage "%s" skipped due to when conditional',
    ]

    /** skipStage: log SkippedStageReason's message, tag the stage, and skip nested stages the same way. */
    private void skipStage(PipelineScript script, Root root, StageModel st, Throwable firstError, String reason, Map record) {
        build.log(String.format(SKIP_MESSAGES[reason], st.name))
        record.status = reason
        if (st.parallel != null) {
            st.parallel.each { StageModel child -> evaluateStage(script, root, child, firstError, st, reason) }
        } else if (st.stages != null) {
            evaluateSequentialStages(script, root, st.stages, firstError, st, reason)
        }
    }

    private void executeSingleStage(PipelineScript script, Root root, StageModel st, Map record) {
        Throwable stageError = null
        boolean harness = false
        try {
            catchRequiredContextForNode(script) { delegateAndExecute(script, st.steps) }
        } catch (HarnessError e) {
            harness = true
            throw e
        } catch (Throwable e) {
            record.failed = true
            stageError = e
        } finally {
            if (!harness && hasSatisfiedConditions(st.post, st.name, stageError)) {
                build.log('Post stage')
                stageError = runPostConditions(script, st.post, stageError, st.name)
            }
        }
        if (stageError != null) {
            throw stageError
        }
    }

    /** delegateAndExecute: closures of steps, post conditions and expressions run with the script as delegate. */
    private static Object delegateAndExecute(PipelineScript script, Closure c) {
        Closure copy = (Closure) c.clone()
        copy.delegate = script
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        copy.call()
    }

    /** catchRequiredContextForNode: a workspace step under `agent none` fails with Declarative's own message. */
    private void catchRequiredContextForNode(PipelineScript script, Closure body) {
        try {
            body.call()
        } catch (MissingContextException e) {
            if (root?.agent?.type == 'none' && !build.inNode) {
                build.dsl.invoke(script, 'error', ['Attempted to execute a step that requires a node context while \u2018agent none\u2019 was specified. Be sure to specify your own \u2018node { ... }\u2019 blocks when using \u2018agent none\u2019.'] as Object[])
            }
            throw e
        }
    }

    // ------------------------------------------------------------------------------------------
    // post: executePostBuild, runPostConditions and the BuildCondition classes

    private void executePostBuild(PipelineScript script, Root root, Throwable stageError) {
        if (hasSatisfiedConditions(root.post, null, stageError)) {
            Map record = build.stageStart('Declarative: Post Actions')
            try {
                stageError = runPostConditions(script, root.post, stageError, null)
            } finally {
                build.stageEnd(record, null)
            }
        }
        if (stageError != null) {
            throw stageError
        }
    }

    private boolean hasSatisfiedConditions(Map<String, Closure> post, String stageName, Throwable error) {
        post != null && Catalog.POST_CONDITIONS.any { post.containsKey(it) && conditionMet(it, error, stageName) }
    }

    private Throwable runPostConditions(PipelineScript script, Map<String, Closure> post, Throwable stageError, String stageName) {
        for (String condition : Catalog.POST_CONDITIONS) {
            String original = build.result
            String logical = combinedResult(stageError, stageName)
            try {
                if (post.containsKey(condition) && conditionMet(condition, stageError, stageName)) {
                    build.event('post', [condition: condition, result: logical])
                    build.@result = logical
                    catchRequiredContextForNode(script) { delegateAndExecute(script, post[condition]) }
                }
            } catch (HarnessError e) {
                throw e
            } catch (Throwable e) {
                if (stageName != null) {
                    build.stages.findAll { it.name == stageName }*.failed = true
                }
                build.log("Error when executing ${condition} post condition:")
                build.log(e.toString())
                if (stageError == null) {
                    stageError = e
                }
            } finally {
                // runPostConditions resets the result unless the condition's own steps changed it.
                if (build.currentResult == logical && logical != original) {
                    build.@result = original
                }
            }
        }
        stageError
    }

    /**
     * BuildCondition.getCombinedResult: the execution result, the run's result and the error's
     * (FAILURE, or the result of an interruption), plus - for a stage - its warnings.
     */
    private String combinedResult(Throwable error, String stageName) {
        String errorResult = 'SUCCESS'
        if (stageName != null) {
            build.stages.findAll { it.name == stageName }.each { Map s ->
                ((List<String>) s.warnings).each { String w -> errorResult = Build.worse(errorResult, w) }
            }
        }
        if (error != null) {
            errorResult = error instanceof FlowInterruptedException ? ((FlowInterruptedException) error).result : 'FAILURE'
        }
        Build.worse(build.currentResult, errorResult)
    }

    /** meetsCondition of model/conditions/*.groovy; changed/fixed/regression look at the previous completed build. */
    private boolean conditionMet(String condition, Throwable error, String stageName) {
        String prev = build.job.previousResult
        switch (condition) {
            case 'always':
            case 'cleanup':
                return true
            case 'success':
                return combinedResult(error, stageName) == 'SUCCESS'
            case 'failure':
                return combinedResult(error, stageName) == 'FAILURE'
            case 'unstable':
                return combinedResult(error, stageName) == 'UNSTABLE'
            case 'aborted':
                return combinedResult(error, stageName) == 'ABORTED'
            case 'notBuilt':
                return combinedResult(error, stageName) == 'NOT_BUILT'
            case 'unsuccessful':
                return combinedResult(error, stageName) != 'SUCCESS'
            case 'changed':
                return prev == null || combinedResult(error, null) != prev
            case 'fixed':
                return prev != null && combinedResult(error, null) == 'SUCCESS' && prev in ['FAILURE', 'UNSTABLE']
            case 'regression':
                return prev != null && Build.isWorse(combinedResult(error, null), prev)
        }
        throw new HarnessError("harness: unknown post condition ${condition}")
    }

    // ------------------------------------------------------------------------------------------
    // when: ModelInterpreter.WhenEvaluator and the when/impl/*ConditionalScript classes

    static class WhenEvaluator {
        private final Declarative interpreter
        private final PipelineScript script
        private final WhenCapture when
        boolean passed

        WhenEvaluator(Declarative owner, PipelineScript script, Closure whenClosure) {
            this.interpreter = owner
            this.script = script
            this.when = whenClosure == null ? null : captureWhen(whenClosure)
            this.passed = whenClosure == null
        }

        boolean getBeforeOptions() { when?.beforeOptions ?: false }

        boolean getBeforeAgent() { when?.beforeAgent ?: false }

        boolean passedOrNotEvaluated(boolean evaluateNow) {
            if (passed || !evaluateNow) {
                return true
            }
            passed = when.conds.every { Cond c -> interpreter.evaluate(script, c) }
            interpreter.build.event('when', [passed: passed, conditions: when.conds.collect { it.type }])
            passed
        }
    }

    boolean evaluate(PipelineScript script, Cond c) {
        Map<String, String> env = build.effectiveEnv()
        switch (c.type) {
            case 'environment':
                // EnvironmentConditional.environmentMatches
                String actual = env[c.args.name.toString()]
                String expected = c.args.value?.toString()
                if (!actual && !expected) {
                    return true
                } else if (!actual) {
                    return false
                }
                return c.args.ignoreCase ? actual.equalsIgnoreCase(expected) : actual == expected
            case 'branch':
                // BranchConditionalScript: BRANCH_NAME, else GIT_LOCAL_BRANCH
                String branch = env.BRANCH_NAME ?: env.GIT_LOCAL_BRANCH
                return compare(c.args.pattern?.toString(), branch, c.args.comparator?.toString(), false)
            case 'tag':
                String tag = env.TAG_NAME
                return tag && compare(c.args.pattern?.toString(), tag, c.args.comparator?.toString(), false)
            case 'buildingTag':
                return env.TAG_NAME as boolean
            case 'changeRequest':
                if (!env.CHANGE_ID) {
                    return false
                }
                return c.args.findAll { k, v -> k != 'comparator' }.every { k, v ->
                    compare(v.toString(), env["CHANGE_${k.toString().replaceAll(/([A-Z])/, '_$1').toUpperCase()}"], c.args.comparator?.toString() ?: 'EQUALS', false)
                }
            case 'changeset':
            case 'changelog':
                return changelogMatches(script, c)
            case 'equals':
                return c.args.expected == c.args.actual || c.args.expected?.toString() == c.args.actual?.toString()
            case 'triggeredBy':
                List causes = (List) (build.scenario.causes ?: [])
                return causes.any { Map cause -> cause._class?.toString()?.endsWith(c.args.cause.toString()) || cause.type == c.args.cause }
            case 'isRestartedRun':
                return false
            case 'expression':
                Object r = delegateAndExecute(script, c.block)
                return r as boolean
            case 'allOf':
                return c.children.every { evaluate(script, it) }
            case 'anyOf':
                return c.children.any { evaluate(script, it) }
            case 'not':
                return !evaluate(script, c.children[0])
        }
        throw new HarnessError("harness: when condition ${c.type} is not emulated")
    }

    /** when/utils/Comparator: GLOB (Ant path matching, case-insensitive unless asked), REGEXP, EQUALS. */
    private static boolean compare(String pattern, String actual, String comparator, boolean caseSensitive) {
        if (!actual && !pattern) {
            return true
        } else if (!actual || !pattern) {
            return false
        }
        switch (comparator ?: 'GLOB') {
            case 'REGEXP': return actual ==~ pattern
            case 'EQUALS': return actual == pattern
            default: return Glob.matches(pattern, actual, caseSensitive)
        }
    }

    /** AbstractChangelogConditionalScript: an empty changelog is a warning and false. */
    private boolean changelogMatches(PipelineScript script, Cond c) {
        if (build.changeSets.isEmpty()) {
            build.dsl.invoke(script, 'echo', [build.number <= 1 ? 'Warning, empty changelog. Probably because this is the first build.'
                    : 'Warning, empty changelog. Have you run checkout?'] as Object[])
            return false
        }
        build.changeSets.any { List<Map> set ->
            set.any { Map change ->
                if (c.type == 'changeset') {
                    ((List) (change.affectedPaths ?: [])).any { String p ->
                        compare(c.args.pattern.toString(), p, c.args.comparator?.toString(), c.args.caseSensitive as boolean)
                    }
                } else {
                    java.util.regex.Pattern.compile(c.args.pattern.toString(), java.util.regex.Pattern.MULTILINE | java.util.regex.Pattern.DOTALL)
                            .matcher((change.msg ?: '').toString()).matches()
                }
            }
        }
    }
}
