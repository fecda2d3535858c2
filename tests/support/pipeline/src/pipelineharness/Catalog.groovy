package pipelineharness

/**
 * The signatures of the Jenkins steps and symbols the harness knows: which arguments each takes,
 * which are constructor (required) arguments, whether it takes a body and whether it needs a
 * workspace. Jenkins derives the same facts from each step's @DataBoundConstructor/@DataBoundSetter
 * (structs' DescribableModel) and from StepDescriptor.getRequiredContext()/takesImplicitBlockArgument();
 * each entry names the class it was read from. Which plugin provides a name is kept apart, in
 * plugins.json, and a test checks that the two lists agree.
 */
class Catalog {

    static class Param {
        String name
        String type        // String, int, boolean, Boolean, List, Map, Object, Describable
        boolean required   // a constructor parameter (DescribableParameter.isRequired)
    }

    static class Spec {
        String name
        String className
        List<Param> params = []
        boolean takesBlock
        boolean needsWorkspace   // getRequiredContext() contains FilePath/Launcher: only inside node
        String kind              // step, symbol

        Param param(String n) { params.find { it.name == n } }

        List<Param> getRequiredParams() { params.findAll { it.required } }

        /** DescribableModel.getSoleRequiredParameter(). */
        Param getSoleRequired() {
            List<Param> r = requiredParams
            r.size() == 1 ? r[0] : null
        }

        /** Set when the constructor's one parameter may be null (so it is not "required"). */
        String soleArgument

        /** DSL.loadSoleArgumentKey: a bare argument is allowed when the constructor takes exactly one. */
        String getSoleArgumentKey() { soleArgument ?: soleRequired?.name }
    }

    private static Map<String, Spec> index(List<Spec> specs) {
        Map<String, Spec> m = new LinkedHashMap<>()
        specs.each { m[it.name] = it }
        m
    }

    private static Spec step(String name, String cls, String sig, Map flags = [:]) {
        new Spec(name: name, className: cls, params: parse(sig), takesBlock: flags.block ?: false,
                needsWorkspace: flags.ws ?: false, kind: 'step', soleArgument: flags.sole)
    }

    private static Spec symbol(String name, String cls, String sig) {
        new Spec(name: name, className: cls, params: parse(sig), kind: 'symbol')
    }

    /** "script!:String returnStatus:boolean" - a trailing ! marks a constructor (required) parameter. */
    private static List<Param> parse(String sig) {
        if (!sig.trim()) {
            return []
        }
        sig.trim().split(/\s+/).collect { String p ->
            String[] parts = p.split(':')
            boolean req = parts[0].endsWith('!')
            new Param(name: parts[0].replace('!', ''), type: parts[1], required: req)
        }
    }

    static final String DS = 'org.jenkinsci.plugins.workflow.steps.'
    static final String K8S = 'org.csanchez.jenkins.plugins.kubernetes.pipeline.'

    /** Steps (StepDescriptor.getFunctionName()). */
    static final Map<String, Spec> STEPS = index([
        step('sh', DS + 'durable_task.ShellStep', 'script!:String returnStatus:boolean returnStdout:boolean label:String encoding:String', [ws: true]),
        // ExecutorStep(@CheckForNull String label): `node { }` and `node('linux') { }` are both fine.
        step('node', 'org.jenkinsci.plugins.workflow.support.steps.ExecutorStep', 'label:String', [block: true, sole: 'label']),
        step('echo', DS + 'EchoStep', 'message!:String'),
        step('error', DS + 'ErrorStep', 'message!:String'),
        step('unstable', DS + 'UnstableStep', 'message!:String'),
        step('writeFile', DS + 'WriteFileStep', 'file!:String text!:String encoding:String', [ws: true]),
        step('readFile', DS + 'ReadFileStep', 'file!:String encoding:String', [ws: true]),
        step('fileExists', DS + 'FileExistsStep', 'file!:String', [ws: true]),
        step('pwd', DS + 'PwdStep', 'tmp:boolean', [ws: true]),
        step('dir', DS + 'PushdStep', 'path!:String', [block: true, ws: true]),
        step('deleteDir', DS + 'DeleteDirStep', '', [ws: true]),
        step('isUnix', DS + 'IsUnixStep', '', [ws: true]),
        step('withEnv', DS + 'EnvStep', 'overrides!:List', [block: true]),
        // pipeline-input-step-plugin InputStep: message (constructor), @DataBoundSetter id, submitter,
        // submitterParameter, ok, cancel, parameters.
        step('input', 'org.jenkinsci.plugins.workflow.support.steps.input.InputStep', 'message!:String id:String ok:String submitter:String submitterParameter:String cancel:String parameters:List'),
        step('timeout', DS + 'TimeoutStep', 'time!:int unit:String activity:boolean', [block: true]),
        step('retry', DS + 'RetryStep', 'count!:int conditions:List', [block: true]),
        step('sleep', DS + 'SleepStep', 'time!:int unit:String'),
        step('tool', DS + 'ToolStep', 'name!:String type:String'),
        step('catchError', DS + 'CatchErrorStep', 'message:String buildResult:String stageResult:String catchInterruptions:boolean', [block: true]),
        step('warnError', DS + 'WarnErrorStep', 'message!:String catchInterruptions:boolean', [block: true]),
        step('stash', 'org.jenkinsci.plugins.workflow.support.steps.stash.StashStep', 'name!:String includes:String excludes:String useDefaultExcludes:boolean allowEmpty:boolean', [ws: true]),
        step('unstash', 'org.jenkinsci.plugins.workflow.support.steps.stash.UnstashStep', 'name!:String', [ws: true]),
        step('checkout', 'org.jenkinsci.plugins.workflow.steps.scm.GenericSCMStep', 'scm!:Object changelog:boolean poll:boolean', [ws: true]),
        step('stage', 'org.jenkinsci.plugins.workflow.support.steps.StageStep', 'name!:String', [block: true]),
        step('parallel', 'org.jenkinsci.plugins.workflow.cps.steps.ParallelStep', ''),
        step('script', 'org.jenkinsci.plugins.pipeline.modeldefinition.steps.ScriptStep', '', [block: true]),
        step('libraryResource', 'org.jenkinsci.plugins.workflow.libs.ResourceStep', 'resource!:String encoding:String'),
        step('junit', 'hudson.tasks.junit.pipeline.JUnitResultsStep', 'testResults!:String allowEmptyResults:boolean keepLongStdio:boolean skipPublishingChecks:boolean skipMarkingBuildUnstable:boolean healthScaleFactor:Object testDataPublishers:List', [ws: true]),
        step('sha256', 'org.jenkinsci.plugins.pipeline.utility.steps.fs.FileSha256Step', 'file!:String', [ws: true]),
        step('withCredentials', 'org.jenkinsci.plugins.credentialsbinding.impl.BindingStep', 'bindings!:List', [block: true]),
        step('timestamps', 'hudson.plugins.timestamper.pipeline.TimestamperStep', '', [block: true]),
        // kubernetes-plugin: PodTemplateStep (its @DataBoundSetters; the Declarative kubernetes agent calls it with
        // KubernetesDeclarativeAgent.getAsArgs) and ContainerStep(name) with setShell; container needs a node
        // (getRequiredContext: Node, FilePath, TaskListener).
        step('podTemplate', K8S + 'PodTemplateStep', 'label:String name:String namespace:String cloud:String inheritFrom:String yaml:String yamlMergeStrategy:Object inheritYamlMergeStrategy:boolean showRawYaml:boolean serviceAccount:String nodeSelector:String workingDir:String activeDeadlineSeconds:int idleMinutes:int instanceCap:int podRetention:Object workspaceVolume:Object containers:List volumes:List supplementalGroups:String agentContainer:String agentInjection:boolean', [block: true]),
        step('container', K8S + 'ContainerStep', 'name!:String shell:String', [block: true, ws: true]),
    ])

    /** Describable symbols (@Symbol) usable as arguments, options, triggers and when conditions. */
    static final Map<String, Spec> SYMBOLS = index([
        symbol('usernamePassword', 'org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding', 'credentialsId!:String usernameVariable!:String passwordVariable!:String'),
        symbol('usernameColonPassword', 'org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordBinding', 'variable!:String credentialsId!:String'),
        symbol('file', 'org.jenkinsci.plugins.credentialsbinding.impl.FileBinding', 'variable!:String credentialsId!:String'),
        symbol('string', 'org.jenkinsci.plugins.credentialsbinding.impl.StringBinding', 'variable!:String credentialsId!:String'),
        symbol('buildDiscarder', 'jenkins.model.BuildDiscarderProperty', 'strategy!:Describable'),
        symbol('logRotator', 'hudson.tasks.LogRotator', 'daysToKeepStr:String numToKeepStr:String artifactDaysToKeepStr:String artifactNumToKeepStr:String'),
        symbol('disableConcurrentBuilds', 'org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty', 'abortPrevious:boolean'),
        symbol('disableResume', 'org.jenkinsci.plugins.workflow.job.properties.DisableResumeJobProperty', ''),
        symbol('skipDefaultCheckout', 'org.jenkinsci.plugins.pipeline.modeldefinition.options.impl.SkipDefaultCheckout', 'skipDefaultCheckout!:Boolean'),
        symbol('skipStagesAfterUnstable', 'org.jenkinsci.plugins.pipeline.modeldefinition.options.impl.SkipStagesAfterUnstable', ''),
        symbol('checkoutToSubdirectory', 'org.jenkinsci.plugins.pipeline.modeldefinition.options.impl.CheckoutToSubdirectory', 'subdirectory!:String'),
        symbol('quietPeriod', 'org.jenkinsci.plugins.pipeline.modeldefinition.options.impl.QuietPeriod', 'quietPeriod!:int'),
        symbol('parallelsAlwaysFailFast', 'org.jenkinsci.plugins.pipeline.modeldefinition.options.impl.ParallelsAlwaysFailFast', ''),
        symbol('githubPush', 'com.cloudbees.jenkins.GitHubPushTrigger', ''),
        symbol('cron', 'hudson.triggers.TimerTrigger', 'spec!:String'),
        symbol('pollSCM', 'hudson.triggers.SCMTrigger', 'scmpoll_spec!:String ignorePostCommitHooks:boolean'),
        symbol('upstream', 'jenkins.triggers.ReverseBuildTrigger', 'upstreamProjects!:String threshold:String'),
        symbol('booleanParam', 'hudson.model.BooleanParameterDefinition', 'name!:String defaultValue:boolean description:String'),
        symbol('choice', 'hudson.model.ChoiceParameterDefinition', 'name!:String choices:Object description:String'),
        symbol('text', 'hudson.model.TextParameterDefinition', 'name!:String defaultValue:String description:String trim:boolean'),
        // `string` is both a credentials binding and a parameter type; Jenkins resolves it by context.
        // When conditions (DeclarativeStageConditional descriptors, pipeline-model-definition when/impl).
        symbol('branch', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.BranchConditional', 'pattern!:String comparator:String'),
        symbol('environment', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.EnvironmentConditional', 'name!:String value!:String ignoreCase:boolean'),
        symbol('changeset', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.ChangeSetConditional', 'pattern!:String comparator:String caseSensitive:boolean'),
        symbol('changelog', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.ChangeLogConditional', 'pattern!:String'),
        symbol('equals', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.EqualsConditional', 'expected!:Object actual!:Object'),
        symbol('tag', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.TagConditional', 'pattern!:String comparator:String'),
        symbol('buildingTag', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.BuildingTagConditional', ''),
        symbol('changeRequest', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.ChangeRequestConditional', 'id:String target:String branch:String fork:String url:String title:String author:String authorDisplayName:String authorEmail:String comparator:String'),
        symbol('triggeredBy', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.TriggeredByConditional', 'cause!:String detail:String'),
        symbol('isRestartedRun', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.IsRestartedRunConditional', ''),
        symbol('expression', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.ExpressionConditional', ''),
        symbol('allOf', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.AllOfConditional', ''),
        symbol('anyOf', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.AnyOfConditional', ''),
        symbol('not', 'org.jenkinsci.plugins.pipeline.modeldefinition.when.impl.NotConditional', ''),
        // retry's error conditions, as KubernetesDeclarativeAgentScript passes them (retries > 1).
        symbol('kubernetesAgent', K8S + 'KubernetesAgentErrorCondition', 'handleNonKubernetes:boolean'),
        symbol('nonresumable', DS + 'SynchronousResumeNotSupportedErrorCondition', ''),
    ])

    /** Parameter types for `parameters { }`; `string` is StringParameterDefinition there. */
    static final Map<String, Spec> PARAMETER_TYPES = index([
        symbol('string', 'hudson.model.StringParameterDefinition', 'name!:String defaultValue:String description:String trim:boolean'),
        symbol('booleanParam', 'hudson.model.BooleanParameterDefinition', 'name!:String defaultValue:boolean description:String'),
        symbol('choice', 'hudson.model.ChoiceParameterDefinition', 'name!:String choices:Object description:String'),
        symbol('text', 'hudson.model.TextParameterDefinition', 'name!:String defaultValue:String description:String trim:boolean'),
    ])

    /** Job properties allowed in pipeline `options` (Options.propertyTypeCache minus pipelineTriggers, parameters). */
    static final List<String> JOB_PROPERTIES = ['buildDiscarder', 'disableConcurrentBuilds', 'disableResume']

    /** DeclarativeOption symbols: name -> usable in a stage's options (DeclarativeOptionDescriptor.canUseInStage). */
    static final Map<String, Boolean> DECLARATIVE_OPTIONS = [
        skipDefaultCheckout: true, checkoutToSubdirectory: true, skipStagesAfterUnstable: false,
        quietPeriod: false, parallelsAlwaysFailFast: false,
    ]

    /** Triggers allowed in `triggers` (Triggers.getAllowedTriggerTypes: every Trigger symbol). */
    static final List<String> TRIGGERS = ['cron', 'githubPush', 'pollSCM', 'upstream']

    /** Agent types of the installed DeclarativeAgentDescriptors: core's, and the Kubernetes plugin's (no Docker plugin). */
    static final List<String> AGENT_TYPES = ['any', 'kubernetes', 'label', 'none', 'node']

    /**
     * Options of `agent { kubernetes { ... } }`: the @DataBoundSetters of kubernetes-plugin's
     * KubernetesDeclarativeAgent (pipeline/KubernetesDeclarativeAgent.java) and `retries` of its superclass
     * RetryableDeclarativeAgent (pipeline-model-definition).
     */
    static final List<String> KUBERNETES_AGENT_PARAMS = ['activeDeadlineSeconds', 'agentContainer', 'agentInjection',
            'cloud', 'containerTemplate', 'containerTemplates', 'customWorkspace', 'defaultContainer', 'idleMinutes',
            'inheritFrom', 'inheritYamlMergeStrategy', 'instanceCap', 'label', 'namespace', 'nodeSelector', 'podRetention',
            'retries', 'schedulerName', 'serviceAccount', 'showRawYaml', 'slaveConnectTimeout', 'supplementalGroups',
            'workingDir', 'workspaceVolume', 'yaml', 'yamlFile', 'yamlMergeStrategy']

    /** When conditions (DeclarativeStageConditionalDescriptor.allNames()) and their child counts. */
    static final Map<String, Integer> WHEN_CHILDREN = [allOf: -1, anyOf: -1, not: 1]
    static final List<String> WHEN_CONDITIONS = ['allOf', 'anyOf', 'branch', 'buildingTag', 'changeRequest',
                                                 'changelog', 'changeset', 'environment', 'equals', 'expression',
                                                 'isRestartedRun', 'not', 'tag', 'triggeredBy']

    /**
     * Post conditions in the order Jenkins runs them: BuildCondition.getOrderedConditionNames()
     * sorts the @Extension ordinals descending - always 1000, changed 900, fixed 890, regression 880,
     * aborted 800, success 700, unsuccessful 650, unstable 600, failure 500, notBuilt 400,
     * cleanup -10000 (pipeline-model-definition model/conditions/*.groovy).
     */
    static final List<String> POST_CONDITIONS = ['always', 'changed', 'fixed', 'regression', 'aborted', 'success',
                                                 'unsuccessful', 'unstable', 'failure', 'notBuilt', 'cleanup']

    /** BlockedStepsAndMethodCalls.blockedInSteps() and its messages (validator/Messages.properties). */
    static final Map<String, String> BLOCKED_IN_STEPS = [
        stage: 'The stage step cannot be used in Declarative Pipelines',
        properties: 'The properties step cannot be used in Declarative Pipelines',
        parallel: "The parallel step can only be used as the only top-level step in a stage's step block",
    ]

    /** Wrapper steps usable as options: block steps needing no workspace, minus node/stage/parallel/properties. */
    static List<String> getWrapperSteps() {
        STEPS.values().findAll { it.takesBlock && !it.needsWorkspace && !(it.name in ['node', 'stage', 'script']) }*.name.sort()
    }

    static List<String> getAllowedOptions() {
        (JOB_PROPERTIES + DECLARATIVE_OPTIONS.keySet() + wrapperSteps).unique().sort()
    }

    static List<String> getAllowedStageOptions() {
        (DECLARATIVE_OPTIONS.findAll { it.value }.keySet() + wrapperSteps).unique().sort()
    }

    /** Jenkins' EditDistance.findNearest, used in "did you mean" messages. */
    static String nearest(String key, Collection<String> candidates) {
        String best = null
        int bestDistance = Integer.MAX_VALUE
        candidates.each { String c ->
            int d = levenshtein(key, c)
            if (d < bestDistance) {
                best = c
                bestDistance = d
            }
        }
        best
    }

    private static int levenshtein(String a, String b) {
        int[] prev = (0..b.length()) as int[]
        for (int i = 1; i <= a.length(); i++) {
            int[] cur = new int[b.length() + 1]
            cur[0] = i
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost)
            }
            prev = cur
        }
        prev[b.length()]
    }

    /** How Class.toString() prints a parameter's erased type in ModelValidatorImpl messages. */
    static String erasedTypeName(String type) {
        switch (type) {
            case 'int': return 'int'
            case 'boolean': return 'boolean'
            case 'Boolean': return 'class java.lang.Boolean'
            case 'String': return 'class java.lang.String'
            case 'List': return 'interface java.util.List'
            case 'Map': return 'interface java.util.Map'
            default: return 'class java.lang.Object'
        }
    }
}
