package pipelineharness

import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.ModuleNode
import org.codehaus.groovy.ast.expr.BinaryExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MapEntryExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.NamedArgumentListExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.syntax.Types

/**
 * Rejects what Jenkins rejects when it compiles a Declarative Pipeline.
 *
 * Jenkins does this at compile time: ModelParser walks the Groovy AST of the `pipeline { }` block
 * and ModelValidatorImpl checks the resulting model, both reporting into the SourceUnit's error
 * collector, so a bad pipeline fails with "WorkflowScript: 12: <message> @ line 12, column 9."
 * before any step runs. This class follows jenkinsci/pipeline-model-definition-plugin
 * (pipeline-model-definition/src/main/groovy/.../parser/ModelParser.groovy and
 * .../validator/ModelValidatorImpl.groovy, plus validator/BlockedStepsAndMethodCalls.java) method
 * by method; each check names the method it imitates, and the messages are the plugin's
 * Messages.properties texts. Where Jenkins consults installed plugins (step signatures, option,
 * trigger, agent and tool types) the harness consults Catalog instead.
 */
class Validator {

    static class Problem {
        int line
        int column
        String message

        String toString() { "WorkflowScript: ${line}: ${message} @ line ${line}, column ${column}." }
    }

    private final List<String> lines
    private final Set<String> globalVars
    private final Map<String, List<String>> toolInstallations
    final List<Problem> problems = []

    Validator(String source, Collection<String> globalVars, Map<String, List<String>> toolInstallations = [:]) {
        this.lines = source.readLines()
        this.globalVars = new HashSet<>(globalVars)
        this.toolInstallations = toolInstallations ?: [:]
    }

    // ------------------------------------------------------------------------------------------
    // Entry point: ModelParser.parse(ModuleNode)

    /** Returns true if the module contains a Declarative Pipeline (valid or not). */
    boolean validate(ModuleNode module) {
        Statement pst = module.statementBlock.statements.find { isDeclarativePipelineStep(it, true) }
        if (pst != null) {
            parsePipelineStep(pst)
            return true
        }
        MethodNode callMethod = module.methods.find { it.name == 'call' }
        if (callMethod != null) {
            List<Statement> found = []
            findPipelineSteps(callMethod.code, found)
            if (found) {
                parsePipelineStep(found[0])
                return true
            }
        }
        module.statementBlock.statements.each { checkForNestedPipelineStep(it) }
        return false
    }

    private void findPipelineSteps(Statement code, List<Statement> found) {
        if (code == null) {
            return
        }
        statements(code).each { Statement s ->
            if (isDeclarativePipelineStep(s, false)) {
                found << s
            } else {
                Map b = matchBlockStatement(s)
                if (b != null) {
                    findPipelineSteps(b.body.code, found)
                }
            }
        }
    }

    // ModelParser.checkForNestedPipelineStep
    private void checkForNestedPipelineStep(Statement statement) {
        Map b = matchBlockStatement(statement)
        if (b != null) {
            if (b.name == 'pipeline') {
                error(statement, 'pipeline block must be at the top-level, not within another block.')
            }
            statements(b.body.code).each { checkForNestedPipelineStep(it) }
        }
    }

    // ASTParserUtils.isDeclarativePipelineStep
    private static boolean isDeclarativePipelineStep(Statement stmt, boolean topLevel) {
        Map b = matchBlockStatement(stmt)
        if (b != null && b.name == 'pipeline' && b.args.size() == 1) {
            if (topLevel) {
                return true
            }
            List<Statement> block = statements(b.body.code)
            return block.any { matchMethodName(matchMethodCall(it)) == 'agent' } &&
                    block.any { matchMethodName(matchMethodCall(it)) == 'stages' }
        }
        false
    }

    // ------------------------------------------------------------------------------------------
    // pipeline { } - ModelParser.parsePipelineStep and ModelValidatorImpl.validateElement(ModelASTPipelineDef)

    private void parsePipelineStep(Statement pst) {
        Map pipelineBlock = matchBlockStatement(pst)
        Set<String> seen = new HashSet<>()
        boolean hasStages = false
        boolean hasAgent = false
        statements(pipelineBlock.body.code).each { Statement stmt ->
            MethodCallExpression mc = matchMethodCall(stmt)
            if (mc == null) {
                error(stmt, "Not a valid section definition: \"${sourceText(stmt)}\". Some extra configuration is required.")
                return
            }
            String name = parseMethodName(mc)
            if (!seen.add(name)) {
                error(stmt, "Multiple occurrences of the ${name} section")
            }
            switch (name) {
                case 'stages':
                    hasStages = true
                    parseStages(stmt, false)
                    break
                case 'environment':
                    parseEnvironment(stmt)
                    break
                case 'post':
                    parsePost(stmt)
                    break
                case 'agent':
                    hasAgent = true
                    parseAgent(stmt)
                    break
                case 'tools':
                    parseTools(stmt)
                    break
                case 'options':
                    parseOptions(stmt, false)
                    break
                case 'parameters':
                    parseMethodCallSection(stmt, 'parameters', 'Build parameters', 'Expected a build parameter definition')
                    break
                case 'triggers':
                    parseMethodCallSection(stmt, 'triggers', 'Triggers', 'Expected a trigger')
                    break
                case 'libraries':
                    parseLibraries(stmt)
                    break
                case 'properties':
                    error(stmt, 'The \u2018properties\u2019 section has been renamed as of version 0.8. Use \u2018options\u2019 instead.')
                    break
                case 'wrappers':
                    error(stmt, "The 'wrappers' section has been removed as of version 0.8. Use 'options' instead.")
                    break
                case 'jobProperties':
                    error(stmt, 'The \u2018jobProperties\u2019 section has been renamed as of version 0.7. Use \u2018properties\u2019 instead.')
                    break
                case 'notifications':
                    error(stmt, 'The \u2018notifications\u2019 section has been removed as of version 0.6. Use \u2018post\u2019 for all post-build actions.')
                    break
                case 'postBuild':
                    error(stmt, 'The \u2018postBuild\u2019 section has been renamed as of version 0.6. Use \u2018post\u2019 for all post-build actions.')
                    break
                default:
                    error(stmt, "Undefined section \"${name}\"")
            }
        }
        if (!hasStages) {
            error(pst, 'Missing required section "stages"')
        }
        if (!hasAgent) {
            error(pst, 'Missing required section "agent"')
        }
    }

    // ------------------------------------------------------------------------------------------
    // stages / stage / parallel - ModelParser.parseStages, parseStage, parseParallel and
    // ModelValidatorImpl.validateElement(ModelASTStages), validateElement(ModelASTStage, boolean)

    private void parseStages(Statement stmt, boolean withinParallel) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, 'Expected a block for stages')
            return
        }
        List<String> names = []
        statements(m.body.code).each { Statement s ->
            String n = parseStage(s, withinParallel)
            if (n != null) {
                names << n
            }
        }
        if (names.isEmpty()) {
            error(stmt, 'No stages specified')
        }
        names.findAll { n -> names.count(n) > 1 }.unique().each { String n ->
            error(stmt, "Duplicate stage name: \"${n}\"")
        }
    }

    private String parseStage(Statement stmt, boolean withinParallel) {
        MethodCallExpression call = matchMethodCall(stmt)
        if (call == null || matchMethodName(call) != 'stage') {
            error(stmt, 'Expected a stage')
            return null
        }
        List<Expression> args = argList(call)
        if (args.isEmpty() || args[0] instanceof ClosureExpression) {
            error(stmt, 'Expected a stage name but did not find any')
            return null
        }
        String name = parseStringLiteral(args[0])
        if (args.size() < 2 || !(args[1] instanceof ClosureExpression)) {
            error(stmt, 'Stage does not have a block')
            return name
        }
        Set<String> seen = new HashSet<>()
        int branches = 0
        int branchCount = 0
        boolean hasParallel = false
        boolean hasMatrix = false
        boolean hasStages = false
        Statement agentStmt = null
        Statement toolsStmt = null
        statements(((ClosureExpression) args[1]).code).each { Statement s ->
            MethodCallExpression mc = matchMethodCall(s)
            if (mc == null) {
                error(stmt, "Not a valid stage section definition: \"${sourceText(s)}\". Some extra configuration is required.")
                return
            }
            String section = parseMethodName(mc)
            if (!seen.add(section)) {
                error(stmt, "Multiple occurrences of the ${section} section")
            }
            switch (section) {
                case 'agent':
                    agentStmt = s
                    parseAgent(s)
                    break
                case 'when':
                    parseWhen(s)
                    break
                case 'steps':
                    Map stepsBlock = matchBlockStatement(s)
                    if (stepsBlock == null) {
                        error(s, 'Expected a block for steps')
                        break
                    }
                    List<Statement> body = statements(stepsBlock.body.code)
                    Map parallel = body.size() == 1 ? matchParallel(body[0]) : null
                    if (parallel != null) {
                        parallel.branches.each { String k, ClosureExpression v -> parseBranch(v, s) }
                        branchCount += parallel.branches.size()
                    } else {
                        parseBranch(stepsBlock.body, s)
                        branchCount += 1
                    }
                    branches++
                    break
                case 'post':
                    parsePost(s)
                    break
                case 'options':
                    parseOptions(s, true)
                    break
                case 'input':
                    parseInput(s)
                    break
                case 'tools':
                    toolsStmt = s
                    parseTools(s)
                    break
                case 'environment':
                    parseEnvironment(s)
                    break
                case 'parallel':
                    hasParallel = true
                    parseStages(s, true)
                    break
                case 'matrix':
                    hasMatrix = true  // accepted here; running one is a harness error (not emulated)
                    break
                case 'failFast':
                    parseBooleanMethod(mc)
                    break
                case 'stages':
                    hasStages = true
                    parseStages(s, false)
                    break
                default:
                    error(stmt, "Unknown stage section \"${section}\". Starting with version 0.5, steps in a stage must be in a \u2018steps\u2019 block.")
            }
        }
        int count = (branches > 0 ? 1 : 0) + (hasParallel ? 1 : 0) + (hasMatrix ? 1 : 0) + (hasStages ? 1 : 0)
        if (withinParallel && (branchCount > 1 || hasParallel || hasMatrix)) {
            error(stmt, '"matrix" or "parallel" cannot be nested inside another "matrix" or "parallel".')
        } else if (count > 1) {
            error(stmt, "Only one of \"matrix\", \"parallel\", \"stages\", or \"steps\" allowed for stage \"${name}\"")
        } else if (count == 0) {
            error(stmt, "Expected one of \"steps\", \"stages\", or \"parallel\" for stage \"${name}\"")
        } else if (hasParallel || hasMatrix) {
            if (agentStmt != null) {
                error(agentStmt, "\"agent\" is not allowed in stage \"${name}\" as it contains parallel or matrix stages")
            }
            if (toolsStmt != null) {
                error(toolsStmt, "\"tools\" is not allowed in stage \"${name}\" as it contains parallel or matrix stages")
            }
        }
        name
    }

    // ModelParser.matchParallel: `parallel a: { }, b: { }, failFast: true` as the only step
    private Map matchParallel(Statement st) {
        MethodCallExpression whole = matchMethodCall(st)
        if (whole == null || matchMethodName(whole) != 'parallel') {
            return null
        }
        Map<String, ClosureExpression> branches = new LinkedHashMap<>()
        List<Expression> args = argList(whole)
        if (args.size() == 1 && args[0] instanceof MapExpression) {
            ((MapExpression) args[0]).mapEntryExpressions.each { MapEntryExpression e ->
                String key = matchStringLiteral(e.keyExpression)
                if (key == 'failFast') {
                    if (!(e.valueExpression instanceof ConstantExpression) || !(((ConstantExpression) e.valueExpression).value instanceof Boolean)) {
                        error(e.keyExpression, 'Expected a boolean with failFast')
                    }
                } else if (!(e.valueExpression instanceof ClosureExpression)) {
                    error(e.keyExpression, 'Expected closure or failFast')
                } else {
                    branches[parseStringLiteral(e.keyExpression)] = (ClosureExpression) e.valueExpression
                }
            }
        }
        [branches: branches]
    }

    // ModelParser.parseBranch + ModelValidatorImpl.validateElement(ModelASTBranch)
    private void parseBranch(ClosureExpression body, ASTNode where) {
        List<Statement> steps = statements(body.code)
        if (steps.isEmpty()) {
            error(where, 'No steps specified for branch')
        }
        steps.each { parseStep(it) }
    }

    // ModelParser.parseStep + ModelValidatorImpl.validateElement(ModelASTStep) + BlockedStepsAndMethodCalls
    private void parseStep(Statement st) {
        MethodCallExpression mc = matchMethodCall(st)
        if (mc == null) {
            error(st, 'Expected a step')
            return
        }
        String name = parseMethodName(mc)
        if (name == 'script' || name == 'expression') {
            if (matchBlockStatement(st) == null) {
                error(st, "${name == 'script' ? 'Script' : 'When'} step without a block")
            }
            return
        }
        if (Catalog.BLOCKED_IN_STEPS.containsKey(name)) {
            error(st, "Invalid step \"${name}\" used - not allowed in this context - ${Catalog.BLOCKED_IN_STEPS[name]}")
        }
        List<Expression> args = argList(mc)
        Map bs = matchBlockStatement(st)
        if (bs != null) {
            args = args.subList(0, args.size() - 1)
            statements(bs.body.code).each { parseStep(it) }
        }
        Catalog.Spec spec = Catalog.STEPS[name]
        if (spec != null && !(name in globalVars)) {
            validateDescribable(st, name, parseArgumentList(args), spec, spec.takesBlock)
        }
    }

    // ------------------------------------------------------------------------------------------
    // when - ModelParser.parseWhen, parseWhenContent; ModelValidatorImpl.validateElement(ModelASTWhen),
    // validateElement(ModelASTWhenCondition)

    private void parseWhen(Statement statement) {
        Map m = matchBlockStatement(statement)
        if (m == null) {
            error(statement, 'Expected a block for when')
            return
        }
        int conditions = 0
        statements(m.body.code).each { Statement s ->
            MethodCallExpression mc = matchMethodCall(s)
            if (mc == null) {
                error(statement, 'Expected a when condition')
                return
            }
            String name = parseMethodName(mc)
            if (name in ['beforeAgent', 'beforeInput', 'beforeOptions']) {
                parseBooleanMethod(mc)
            } else {
                conditions++
                validateWhenCondition(s)
            }
        }
        if (conditions == 0) {
            error(statement, 'Empty when closure, remove the property or add some content.')
        }
    }

    private void validateWhenCondition(Statement st) {
        MethodCallExpression mc = matchMethodCall(st)
        if (mc == null) {
            error(st, 'Expected a when condition')
            return
        }
        String name = parseMethodName(mc)
        if (name == 'expression') {
            if (matchBlockStatement(st) == null) {
                error(st, 'When step without a block')
            }
            return
        }
        List<Expression> args = argList(mc)
        Map bs = matchBlockStatement(st)
        List<Statement> children = []
        Map parsedArgs
        if (bs != null) {
            args = args.subList(0, args.size() - 1)
            parsedArgs = args.isEmpty() ? null : parseArgumentList(args)
            children = statements(bs.body.code)
        } else {
            parsedArgs = parseArgumentList(args)
        }
        if (!(name in Catalog.WHEN_CONDITIONS)) {
            error(st, "Unknown conditional ${name}. Valid conditionals are: ${Catalog.WHEN_CONDITIONS.join(', ')}")
            return
        }
        Integer allowedChildren = Catalog.WHEN_CHILDREN[name] ?: 0
        if (allowedChildren != 0) {
            if (parsedArgs != null) {
                error(st, "No additional arguments are allowed for children when condition \"${name}\".")
            } else if (allowedChildren < 0 && children.isEmpty()) {
                error(st, "Nested when condition \"${name}\" requires at least one child condition.")
            } else if (allowedChildren > 0 && children.size() != allowedChildren) {
                error(st, "Nested when condition \"${name}\" requires exactly ${allowedChildren} child condition(s).")
            } else {
                children.each { validateWhenCondition(it) }
            }
        } else if (!children.isEmpty()) {
            error(st, "No children when conditions are allowed for when condition \"${name}\".")
        } else {
            validateDescribable(st, name, parsedArgs, Catalog.SYMBOLS[name], false)
        }
    }

    // ------------------------------------------------------------------------------------------
    // environment - ModelParser.parseEnvironment, ModelValidatorImpl.validateElement(ModelASTEnvironment)

    private void parseEnvironment(Statement stmt) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, 'Expected a block for environment')
            return
        }
        Set<String> keys = new LinkedHashSet<>()
        boolean errorEncountered = false
        statements(m.body.code).each { Statement s ->
            if (s instanceof ExpressionStatement) {
                Expression exp = ((ExpressionStatement) s).expression
                if (exp instanceof BinaryExpression && ((BinaryExpression) exp).operation.type == Types.EQUAL) {
                    BinaryExpression b = (BinaryExpression) exp
                    String key = parseStringLiteral(b.leftExpression)
                    if (!keys.add(key)) {
                        error(b.leftExpression, "Duplicate environment variable name: \"${key}\"")
                        return
                    }
                    if (!validEnvIdentifier(key)) {
                        error(b.leftExpression, invalidIdentifier(key))
                    }
                    Expression right = b.rightExpression
                    if (right instanceof ConstantExpression || right instanceof GStringExpression) {
                        return
                    } else if (right instanceof MethodCallExpression) {
                        MethodCallExpression call = (MethodCallExpression) right
                        if (matchMethodName(call) == 'credentials') {
                            argList(call).each { Expression a ->
                                if (!(a instanceof ConstantExpression) && !(a instanceof GStringExpression)) {
                                    error(call, 'Internal function call parameters must be strings.')
                                }
                            }
                        }
                        return
                    } else if (right instanceof BinaryExpression) {
                        if (((BinaryExpression) right).operation.type == Types.PLUS) {
                            checkEnvConcat((BinaryExpression) right)
                        } else {
                            error(right, 'Environment variable values can only be joined together with \u2018+\u2019s.')
                        }
                        return
                    } else {
                        error(right, 'Environment variable values must either be single quoted, double quoted, or function calls.')
                        return
                    }
                } else {
                    String text = sourceText(exp)
                    if (text.contains('=')) {
                        error(exp, invalidIdentifier(text.split('=')[0].trim()))
                    } else {
                        error(exp, "\"${text}\" is not a valid environment expression. Use \"key = value\" pairs with valid Java/shell keys.")
                    }
                }
            }
            errorEncountered = true
        }
        if (errorEncountered) {
            error(stmt, 'Expected name=value pairs')
        }
        if (keys.isEmpty() && !errorEncountered) {
            error(stmt, 'No variables specified for environment')
        }
    }

    private void checkEnvConcat(BinaryExpression exp) {
        [exp.leftExpression, exp.rightExpression].each { Expression e ->
            if (e instanceof BinaryExpression) {
                if (((BinaryExpression) e).operation.type == Types.PLUS) {
                    checkEnvConcat((BinaryExpression) e)
                } else {
                    error(e, 'Environment variable values can only be joined together with \u2018+\u2019s.')
                }
            } else if (!(e instanceof ConstantExpression) && !(e instanceof GStringExpression)) {
                error(e, 'Environment variable values to be concatenated together must be single or double quoted.')
            }
        }
    }

    private static boolean validEnvIdentifier(String i) {
        i ==~ /[a-zA-Z_]+[a-zA-Z0-9_]*/
    }

    private static String invalidIdentifier(String key) {
        "\"${key}\" is not a valid identifier and cannot be used for an environment variable. Identifiers must start with a letter or underscore and can contain only letters, numbers or underscores."
    }

    // ------------------------------------------------------------------------------------------
    // agent - ModelParser.parseAgent, ModelValidatorImpl.validateElement(ModelASTAgent)

    private static final Map<String, List<String>> AGENT_PARAMS = [label: ['label', 'customWorkspace'], node: ['label', 'customWorkspace'],
                                                                    kubernetes: Catalog.KUBERNETES_AGENT_PARAMS]

    private void parseAgent(Statement st) {
        Map m = matchBlockStatement(st)
        MethodCallExpression mc = matchMethodCall(st)
        if (m == null) {
            if (mc == null) {
                error(st, 'Expected an agent')
                return
            }
            List<Expression> args = argList(mc)
            if (args.isEmpty()) {
                error(st, 'No argument for agent')
            } else if (args.size() > 1) {
                error(st, 'Only "agent none", "agent any" or "agent {...}" are allowed.')
            } else if (!(matchStringLiteral(args[0]) in ['any', 'none'])) {
                error(st, 'Only "agent none", "agent any" or "agent {...}" are allowed.')
            }
            return
        }
        List<Statement> block = statements(m.body.code)
        if (block.isEmpty()) {
            error(st, 'Expected an agent')
        } else if (block.size() > 1) {
            error(st, 'Only one agent type is allowed per agent section')
        } else {
            MethodCallExpression typeMeth = matchMethodCall(block[0])
            if (typeMeth == null) {
                error(st, 'Expected an agent')
                return
            }
            String type = matchMethodName(typeMeth)
            if (!(type in Catalog.AGENT_TYPES)) {
                error(typeMeth, "Invalid agent type \"${type}\" specified. Must be one of ${Catalog.AGENT_TYPES}")
                return
            }
            List<Expression> args = argList(typeMeth)
            if (args.size() == 1 && args[0] instanceof ClosureExpression) {
                Map<String, Expression> vars = [:]
                statements(((ClosureExpression) args[0]).code).each { Statement s ->
                    MethodCallExpression kv = matchMethodCall(s)
                    if (kv == null) {
                        error(s, 'Expected to find \u2018someKey "someValue"\u2019')
                        return
                    }
                    String k = matchMethodName(kv)
                    List<Expression> kvArgs = argList(kv)
                    if (kvArgs.isEmpty()) {
                        error(kv, "No argument for map key \"${k}\"")
                    } else if (kvArgs.size() > 1) {
                        error(kv, "Too many arguments for map key \"${k}\"")
                    }
                    vars[k] = kvArgs ? kvArgs[0] : null
                    if (!(k in AGENT_PARAMS[type])) {
                        error(kv, "Invalid config option \"${k}\" for agent type \"${type}\". Valid config options are ${AGENT_PARAMS[type]}")
                    }
                }
                // label and node require a label (their constructor's parameter); kubernetes has a no-argument
                // constructor (KubernetesDeclarativeAgent), so every option is optional.
                if (type != 'kubernetes' && !vars.containsKey('label')) {
                    error(typeMeth, "Missing required parameter for agent type \"${type}\": label")
                }
            } else if (type in ['label', 'node'] && args.size() != 1) {
                error(typeMeth, "No argument for agent key \"${type}\"")
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // tools - ModelParser.parseTools, ModelValidatorImpl.validateElement(ModelASTTools)

    private void parseTools(Statement stmt) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, 'Expected a block for tools')
            return
        }
        List<Statement> body = statements(m.body.code)
        if (body.isEmpty()) {
            error(stmt, 'No tools specified')
        }
        body.each { Statement s ->
            MethodCallExpression mc = matchMethodCall(s)
            if (mc == null) {
                error(stmt, 'Expected to find \u2018someTool "someVersion"\u2019')
                return
            }
            String type = matchMethodName(mc)
            List<Expression> args = argList(mc)
            if (args.isEmpty()) {
                error(mc, "No argument for tool \"${type}\"")
            } else if (args.size() > 1) {
                error(mc, "Too many arguments for tool \"${type}\"")
            } else if (!toolInstallations.containsKey(type)) {
                error(mc, "Invalid tool type \"${type}\". Valid tool types: ${toolInstallations.keySet().sort()}")
            } else {
                String version = matchStringLiteral(args[0])
                List<String> installed = toolInstallations[type]
                if (version != null && !(version in installed)) {
                    error(args[0], "Tool type \"${type}\" does not have an install of \"${version}\" configured - did you mean \"${Catalog.nearest(version, installed)}\"?")
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // options / triggers / parameters - ModelParser.parseOptions, parseTriggers, parseBuildParameters;
    // ModelValidatorImpl.validateElement(ModelASTOptions / ModelASTTriggers / ModelASTBuildParameters /
    // ModelASTOption / ModelASTTrigger / ModelASTBuildParameter / ModelASTMethodCall)

    private void parseOptions(Statement stmt, boolean inStage) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, 'Expected a block for options')
            return
        }
        List<String> names = []
        statements(m.body.code).each { Statement s ->
            String name = parseSectionMethodCall(s, 'Options', 'Expected an option')
            if (name == null) {
                return
            }
            names << name
            List<String> stageAllowed = Catalog.allowedStageOptions
            List<String> allowed = Catalog.allowedOptions
            if (inStage && !(name in stageAllowed)) {
                error(s, "Invalid option type \"${name}\". Valid option types: ${stageAllowed}")
            } else if (!inStage && !(name in allowed)) {
                error(s, "Invalid option type \"${name}\". Valid option types: ${allowed}")
            } else {
                validateMethodCall(matchMethodCall(s))
            }
        }
        if (statements(m.body.code).isEmpty()) {
            error(stmt, 'options can not be empty')
        }
        names.findAll { n -> names.count(n) > 1 }.unique().each { error(stmt, "Duplicate option name: \"${it}\"") }
    }

    private void parseMethodCallSection(Statement stmt, String section, String pronoun, String expected) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, "Expected a block for ${section}")
            return
        }
        List<String> names = []
        statements(m.body.code).each { Statement s ->
            String name = parseSectionMethodCall(s, pronoun, expected)
            if (name == null) {
                return
            }
            names << name
            if (section == 'triggers') {
                if (!(name in Catalog.TRIGGERS)) {
                    error(s, "Invalid trigger type \"${name}\". Valid trigger types: ${Catalog.TRIGGERS}")
                    return
                }
                validateMethodCall(matchMethodCall(s))
            } else {
                if (!Catalog.PARAMETER_TYPES.containsKey(name)) {
                    error(s, "Invalid parameter type \"${name}\". Valid parameter types: ${Catalog.PARAMETER_TYPES.keySet().sort()}")
                    return
                }
                validateMethodCall(matchMethodCall(s), Catalog.PARAMETER_TYPES[name])
            }
        }
        if (statements(m.body.code).isEmpty()) {
            error(stmt, "${section} can not be empty")
        }
        if (section == 'triggers') {
            names.findAll { n -> names.count(n) > 1 }.unique().each { error(stmt, "Duplicate trigger name: \"${it}\"") }
        }
    }

    /** Shared shape check of parseOption/parseTrigger/parseBuildParameter; returns the name or null. */
    private String parseSectionMethodCall(Statement s, String pronoun, String expected) {
        MethodCallExpression mc = matchMethodCall(s)
        if (mc == null) {
            if (s instanceof ExpressionStatement && ((ExpressionStatement) s).expression instanceof MapExpression) {
                error(s, "${pronoun} cannot be defined as maps")
            } else {
                error(s, expected)
            }
            return null
        }
        if (matchBlockStatement(s) != null) {
            error(s, "${pronoun} definitions cannot have blocks")
            return null
        }
        String name = parseMethodName(mc)
        List<Expression> args = argList(mc)
        boolean named = args.any { it instanceof MapExpression }
        if (named && args.size() > 1) {
            error(s, 'Cannot mix named and unnamed arguments')
            return null
        }
        name
    }

    // ModelValidatorImpl.validateElement(ModelASTMethodCall)
    private void validateMethodCall(MethodCallExpression mc, Catalog.Spec given = null) {
        String name = matchMethodName(mc)
        if (name in ['node', 'stage', 'properties', 'parallel']) {
            String why = name == 'node' ? 'The node step cannot be called as an argument to a method in Declarative Pipelines' : Catalog.BLOCKED_IN_STEPS[name]
            error(mc, "Invalid step \"${name}\" used - not allowed in this context - ${why}")
            return
        }
        Catalog.Spec spec = given ?: (Catalog.SYMBOLS[name] ?: Catalog.STEPS[name])
        List<Expression> args = argList(mc)
        args.each { Expression a ->
            if (a instanceof ClosureExpression) {
                error(mc, 'Method call arguments')
            }
        }
        if (spec == null) {
            return
        }
        if (args.size() == 1 && args[0] instanceof MapExpression) {
            ((MapExpression) args[0]).mapEntryExpressions.each { MapEntryExpression e ->
                String key = matchStringLiteral(e.keyExpression)
                Catalog.Param p = spec.param(key)
                if (p == null) {
                    error(e.keyExpression, "Invalid parameter \"${key}\", did you mean \"${Catalog.nearest(key, spec.params*.name)}\"?")
                    return
                }
                if (e.valueExpression instanceof ClosureExpression) {
                    error(e, 'Method call arguments')
                } else if (e.valueExpression instanceof MethodCallExpression) {
                    validateMethodCall((MethodCallExpression) e.valueExpression)
                } else {
                    checkType(e.valueExpression, p.type, key)
                }
            }
        } else if (args.size() > 1) {
            error(mc, "Arguments to \"${name}\" must be explicitly named.")
        } else {
            List<Catalog.Param> required = spec.requiredParams
            if (required.size() != args.size()) {
                if (!(required.size() == 1 && args.isEmpty() && required[0].type == 'Boolean')) {
                    error(mc, "\"${name}\" should have ${required.size()} arguments but has ${args.size()} arguments instead.")
                }
            } else {
                required.eachWithIndex { Catalog.Param p, int i ->
                    if (args[i] instanceof MethodCallExpression) {
                        validateMethodCall((MethodCallExpression) args[i])
                    } else {
                        checkType(args[i], p.type, null)
                    }
                }
            }
        }
    }

    // ModelValidatorImpl.validateDescribable (steps and when conditions)
    private void validateDescribable(ASTNode element, String name, Map args, Catalog.Spec spec, boolean takesClosure) {
        if (spec == null || args == null) {
            return
        }
        if (args.kind == 'named') {
            boolean valid = true
            args.entries.each { Map e ->
                Catalog.Param p = spec.param(e.key)
                if (p == null) {
                    error(e.keyNode, "Invalid parameter \"${e.key}\", did you mean \"${Catalog.nearest(e.key, spec.params*.name)}\"?")
                    valid = false
                    return
                }
                String key = e.key
                if (args.entries.size() == 1 && spec.soleRequired == p && !takesClosure) {
                    key = null
                }
                if (!checkType(e.value, p.type, key)) {
                    valid = false
                }
            }
            if (valid) {
                spec.requiredParams.each { Catalog.Param p ->
                    if (!args.entries.any { it.key == p.name }) {
                        error(element, "Missing required parameter: \"${p.name}\"")
                    }
                }
            }
        } else if (args.kind == 'positional') {
            error(element, "Arguments to \"${name}\" must be explicitly named.")
        } else {
            Catalog.Param p = spec.soleRequired
            if (p == null && !takesClosure) {
                error(element, 'Step does not take a single required parameter - use named parameters instead')
            } else if (p != null) {
                checkType(args.value, p.type, null)
            }
        }
    }

    // ModelValidatorImpl.validateParameterType: only literal values are checked
    private boolean checkType(Expression v, String type, String key) {
        if (!(v instanceof ConstantExpression) || ((ConstantExpression) v).value == null) {
            return true
        }
        Object value = ((ConstantExpression) v).value
        boolean bad = false
        if (type == 'String' && (value instanceof Integer || value instanceof Boolean)) {
            bad = true
        } else if (type == 'int' && (value instanceof String || value instanceof Boolean)) {
            bad = true
        } else if ((type == 'List' || type == 'Map') && !(value instanceof Collection || value instanceof Map)) {
            bad = true
        }
        if (bad) {
            String erased = Catalog.erasedTypeName(type)
            if (key != null) {
                error(v, "Expecting \"${erased}\" for parameter \"${key}\" but got \"${value}\" of type ${value.getClass()} instead")
            } else {
                error(v, "Expecting \"${erased}\" but got \"${value}\" of type ${value.getClass()} instead")
            }
        }
        !bad
    }

    // ------------------------------------------------------------------------------------------
    // post - ModelParser.parseBuildConditionResponder, parseBuildCondition;
    // ModelValidatorImpl.validateElement(ModelASTBuildConditionsContainer / ModelASTBuildCondition)

    private void parsePost(Statement stmt) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, 'Expected a block')
            return
        }
        List<String> names = []
        statements(m.body.code).each { Statement s ->
            Map b = matchBlockStatement(s)
            if (b == null) {
                error(s, "The \u2018post\u2019 section can only contain build condition names with code blocks. Valid condition names are ${Catalog.POST_CONDITIONS}")
                return
            }
            names << b.name
            if (!(b.name in Catalog.POST_CONDITIONS)) {
                error(s, "Invalid condition \"${b.name}\" - valid conditions are ${Catalog.POST_CONDITIONS}")
            }
            parseBranch(b.body, s)
        }
        if (names.isEmpty()) {
            error(stmt, 'post can not be empty')
        }
        names.findAll { n -> names.count(n) > 1 }.unique().each { error(stmt, "Duplicate build condition name: \"${it}\"") }
    }

    // ------------------------------------------------------------------------------------------
    // input and libraries - ModelParser.parseInput, parseLibraries

    private void parseInput(Statement statement) {
        Map m = matchBlockStatement(statement)
        if (m == null) {
            error(statement, 'Expected a block for input')
            return
        }
        boolean hasMessage = false
        statements(m.body.code).each { Statement s ->
            MethodCallExpression mc = matchMethodCall(s)
            if (mc == null) {
                error(statement, "Not a valid section definition: \"${sourceText(s)}\". Some extra configuration is required.")
                return
            }
            String name = parseMethodName(mc)
            if (name == 'message') {
                hasMessage = true
            } else if (!(name in ['id', 'ok', 'submitter', 'submitterParameter', 'parameters'])) {
                error(mc, "Not a valid field for input: \"${name}\"")
            }
        }
        if (!hasMessage) {
            error(statement, 'No message specified for input')
        }
    }

    private void parseLibraries(Statement stmt) {
        Map m = matchBlockStatement(stmt)
        if (m == null) {
            error(stmt, 'Expected a block for libraries')
            return
        }
        List<Statement> body = statements(m.body.code)
        if (body.isEmpty()) {
            error(stmt, 'libraries can not be empty')
        }
        body.each { Statement s ->
            MethodCallExpression mc = matchMethodCall(s)
            if (mc == null || mc.methodAsString != 'lib' || argList(mc).size() != 1 || !(argList(mc)[0] instanceof ConstantExpression)) {
                error(stmt, "Expected a \"lib(...)\" but got ${sourceText(s)}")
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Helpers: ASTParserUtils and ModelParser.parseMethodName/parseStringLiteral/parseArgumentList

    private Boolean parseBooleanMethod(MethodCallExpression mc) {
        List<Expression> args = argList(mc)
        Expression a = args ? args[0] : null
        if (!(a instanceof ConstantExpression) || !(((ConstantExpression) a).value instanceof Boolean)) {
            error(mc.method, "Expected a boolean with ${matchMethodName(mc)}")
            return null
        }
        (Boolean) ((ConstantExpression) a).value
    }

    private String parseMethodName(MethodCallExpression mc) {
        String s = matchMethodName(mc)
        if (s == null) {
            if (mc.objectExpression instanceof VariableExpression && !((VariableExpression) mc.objectExpression).isThisExpression()) {
                error(mc, 'Method calls on objects not allowed outside "script" blocks.')
            } else {
                error(mc, 'Expected a symbol')
            }
            s = 'error'
        }
        s
    }

    private String parseStringLiteral(Expression exp) {
        String s = matchStringLiteral(exp)
        if (s == null) {
            error(exp, 'Expected string literal')
        }
        s ?: 'error'
    }

    private static String matchStringLiteral(Expression exp) {
        if (exp instanceof ConstantExpression) {
            Object v = ((ConstantExpression) exp).value
            return v instanceof String ? (String) v : null
        } else if (exp instanceof VariableExpression) {
            return ((VariableExpression) exp).name
        }
        null
    }

    private static Map parseArgumentList(List<Expression> args) {
        if (args.isEmpty()) {
            return [kind: 'named', entries: []]
        }
        if (args.size() == 1) {
            if (args[0] instanceof MapExpression &&
                    !((MapExpression) args[0]).mapEntryExpressions.any { matchStringLiteral(it.keyExpression) == '$class' }) {
                return [kind: 'named', entries: ((MapExpression) args[0]).mapEntryExpressions.collect { MapEntryExpression e ->
                    [key: matchStringLiteral(e.keyExpression), keyNode: e.keyExpression, value: e.valueExpression]
                }]
            }
            return [kind: 'single', value: args[0]]
        }
        [kind: 'positional', values: args]
    }

    static MethodCallExpression matchMethodCall(Statement st) {
        if (st instanceof ExpressionStatement && ((ExpressionStatement) st).expression instanceof MethodCallExpression) {
            return (MethodCallExpression) ((ExpressionStatement) st).expression
        }
        null
    }

    static String matchMethodName(MethodCallExpression mc) {
        if (mc == null) {
            return null
        }
        Expression lhs = mc.objectExpression
        if (lhs instanceof VariableExpression && ((VariableExpression) lhs).name == 'this') {
            return mc.methodAsString
        }
        null
    }

    static Map matchBlockStatement(Statement st) {
        MethodCallExpression mc = matchMethodCall(st)
        String name = matchMethodName(mc)
        if (mc == null || name == null) {
            return null
        }
        List<Expression> args = argList(mc)
        if (args && args.last() instanceof ClosureExpression) {
            return [call: mc, name: name, body: args.last(), args: args]
        }
        null
    }

    static List<Expression> argList(MethodCallExpression mc) {
        Expression a = mc.arguments
        if (a instanceof TupleExpression) {
            List<Expression> out = []
            ((TupleExpression) a).expressions.each { Expression e ->
                if (e instanceof NamedArgumentListExpression || !(e instanceof TupleExpression)) {
                    out << e
                }
            }
            return out
        }
        [a]
    }

    static List<Statement> statements(Statement code) {
        code instanceof BlockStatement ? ((BlockStatement) code).statements : (code == null ? [] : [code])
    }

    // Utils.getSourceTextForASTNode
    private String sourceText(ASTNode n) {
        if (n.lineNumber < 1) {
            return n.text
        }
        StringBuilder out = new StringBuilder()
        for (int x = n.lineNumber; x <= n.lastLineNumber; x++) {
            String line = lines[x - 1]
            if (x == n.lastLineNumber) {
                line = line.substring(0, Math.min(line.length(), n.lastColumnNumber - 1))
            }
            if (x == n.lineNumber) {
                line = line.substring(Math.min(line.length(), n.columnNumber - 1))
            }
            out.append(line).append('\n')
        }
        out.toString().trim()
    }

    private void error(ASTNode node, String message) {
        problems << new Problem(line: Math.max(node?.lineNumber ?: 1, 1), column: Math.max(node?.columnNumber ?: 1, 1),
                message: message.toString())
    }
}
