package pipelineharness

import groovy.json.JsonSlurper
import org.codehaus.groovy.ast.AnnotationNode
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.DynamicVariable
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.ModuleNode
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.DeclarationExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.ListExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.messages.ExceptionMessage
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

/**
 * One harness process serves many requests (one JVM per test session): `run` compiles, validates
 * and runs a Jenkinsfile against a library and a scenario; `calls` lists what Groovy files call.
 * Compiled library and Jenkinsfile classes are cached by content.
 */
class Harness {
    final Map plugins
    private final Map<String, Library> libraries = [:]
    private final Map<String, Class> scripts = [:]

    Harness(File pluginsJson) {
        plugins = (Map) new JsonSlurper().parse(pluginsJson)
        checkCatalog()
    }

    /** Every emulated step and symbol must be listed in plugins.json with the plugin that provides it. */
    private void checkCatalog() {
        Map steps = (Map) plugins.steps
        Map symbols = (Map) plugins.symbols
        List<String> missing = Catalog.STEPS.keySet().findAll { !steps.containsKey(it) }.collect { "step ${it}" } +
                (Catalog.SYMBOLS.keySet() + Catalog.PARAMETER_TYPES.keySet()).findAll { !symbols.containsKey(it) }.collect { "symbol ${it}" }
        if (missing) {
            throw new HarnessError("harness: plugins.json does not say which plugin provides: ${missing.join(', ')}")
        }
    }

    Map handle(Map request) {
        switch (request.action) {
            case 'run': return run(request)
            case 'calls': return calls(request)
            case 'catalog': return [steps: Catalog.STEPS.keySet().sort(),
                                    symbols: (Catalog.SYMBOLS.keySet() + Catalog.PARAMETER_TYPES.keySet()).unique().sort()]
        }
        throw new HarnessError("harness: unknown action ${request.action}")
    }

    // ------------------------------------------------------------------------------------------
    // run

    private Library library(Map spec) {
        if (spec == null || spec.root == null) {
            return null
        }
        File root = new File(spec.root.toString())
        String key = "${root.canonicalPath}\n${spec.name}\n${Library.fingerprint(root)}"
        Library lib = libraries[key]
        if (lib == null) {
            lib = new Library((spec.name ?: 'enadu').toString(), root)
            libraries[key] = lib
        }
        lib
    }

    /** Runs a request; with `live` the build runs in live mode (see Live), one build per JVM. */
    Map run(Map request, Live live = null) {
        String text = request.jenkinsfileText ?: new File(request.jenkinsfile.toString()).getText('UTF-8')
        Map scenario = (Map) (request.scenario ?: [:])
        Library lib = library((Map) request.library)

        Map parsed = parse(text)
        if (parsed.errors) {
            return invalid(parsed.errors)
        }
        ModuleNode module = (ModuleNode) parsed.module
        List<String> wanted = libraryAnnotations(module)
        List<String> unknown = wanted.findAll { String id -> lib == null || id.split('@')[0] != lib.name }
        if (unknown) {
            return invalid(["WorkflowScript: Loading libraries failed: Could not find any definition of libraries ${unknown}".toString()])
        }
        Library loaded = wanted || ((Map) request.library)?.implicit ? lib : null
        Validator validator = new Validator(text, loaded?.varNames ?: [], (Map) (scenario.tools ?: [:]))
        validator.validate(module)
        if (validator.problems) {
            return invalid(validator.problems.collect { it.toString() })
        }
        Class cls
        try {
            cls = scriptClass(text)
        } catch (MultipleCompilationErrorsException e) {
            return invalid(compileErrors(e))
        }

        Build build = new Build(scenario, loaded, live)
        build.scriptClasses[cls.name] = cls
        wanted.each { String id ->
            List<String> parts = id.split('@') as List
            build.event('library', [name: parts[0], version: parts.size() > 1 ? parts[1] : null])
        }
        PipelineScript script = (PipelineScript) cls.newInstance()
        script.binding = new Binding()
        script.bindBuild(build)
        Throwable error = null
        try {
            script.run()
        } catch (HarnessError e) {
            return [harnessError: e.message, trace: build.trace, log: build.log]
        } catch (Throwable t) {
            error = t
        }
        String result = build.currentResult
        if (error != null) {
            result = Build.worse(result, error instanceof FlowInterruptedException ? ((FlowInterruptedException) error).result : 'FAILURE')
            if (live != null && error instanceof FlowInterruptedException) {
                build.log(error.message)  // FlowInterruptedException.handle prints each CauseOfInterruption
            } else {
                build.log(error instanceof AbortException ? "ERROR: ${error.message}" : error.toString())
            }
        }
        build.log("Finished: ${result}")
        Map answer = [
            valid: true,
            result: result,
            error: error == null ? null : [type: error.getClass().name, message: error.message, at: scriptFrames(error)],
            durationMs: build.now() - build.startTime,
            stages: build.stages.collect { [name: it.name, status: it.status, parent: it.parent] },
            trace: build.trace,
            log: build.log,
            leaks: build.leaks,
            violations: build.violations,
            env: new TreeMap(build.runEnv),
            files: build.files.collectEntries { k, v -> [(k): [size: v.length, sha256: Build.sha256(v)]] },
        ]
        if (live != null) {
            answer.error?.putAll(error instanceof FlowInterruptedException ?
                    [cause: ((FlowInterruptedException) error).causeType, actualInterruption: ((FlowInterruptedException) error).actualInterruption] : [:])
            answer.scms = build.scms
            answer.startTime = build.startTime
            File ws = new File(build.workspace)
            answer.files = LiveDsl.matching(ws, '**').collectEntries { String rel ->
                File f = new File(ws, rel)
                [("${build.workspace}/${rel}".toString()): [size: f.length(), sha256: f.length() <= 16 * 1024 * 1024 ? Build.sha256(f.bytes) : null]]
            }
        }
        answer
    }

    /** Where in the Jenkinsfile or the library an error came from (the frames of script classes). */
    private static List<String> scriptFrames(Throwable t) {
        t.stackTrace.findAll { StackTraceElement f -> f.fileName?.endsWith('.groovy') && !f.className.startsWith('pipelineharness.') }
                .collect { StackTraceElement f -> "${f.fileName}:${f.lineNumber}".toString() }.unique().take(10)
    }

    private static Map invalid(List<String> errors) {
        [valid: false, result: 'FAILURE', errors: errors, stages: [], trace: [], leaks: [], violations: [],
         log: ['org.codehaus.groovy.control.MultipleCompilationErrorsException: startup failed:'] + errors + ["${errors.size()} error${errors.size() == 1 ? '' : 's'}".toString(), 'Finished: FAILURE']]
    }

    /** Parses to the CONVERSION phase, where Jenkins' ModelParser looks at the AST. */
    private static Map parse(String text) {
        CompilationUnit cu = new CompilationUnit(Library.compilerConfiguration(), null, new GroovyClassLoader(Harness.classLoader))
        cu.addSource('WorkflowScript.groovy', text)
        try {
            cu.compile(Phases.CONVERSION)
        } catch (MultipleCompilationErrorsException e) {
            return [errors: compileErrors(e)]
        }
        [module: cu.AST.modules[0]]
    }

    private synchronized Class scriptClass(String text) {
        String key = Build.sha256(text.getBytes('UTF-8'))
        Class c = scripts[key]
        if (c == null) {
            GroovyClassLoader loader = new GroovyClassLoader(Harness.classLoader, Library.compilerConfiguration())
            c = loader.parseClass(new GroovyCodeSource(text, 'WorkflowScript.groovy', '/groovy/shell'))
            scripts[key] = c
        }
        c
    }

    /** The messages as Jenkins prints them: "WorkflowScript: 3: unexpected token: } @ line 3, column 1." */
    private static List<String> compileErrors(MultipleCompilationErrorsException e) {
        e.errorCollector.errors.collect { Object m ->
            if (m instanceof SyntaxErrorMessage) {
                def se = ((SyntaxErrorMessage) m).cause
                return "WorkflowScript: ${se.line}: ${se.originalMessage} @ line ${se.line}, column ${se.startColumn}.".toString()
            } else if (m instanceof ExceptionMessage) {
                return "WorkflowScript: ${((ExceptionMessage) m).cause.message}".toString()
            }
            "WorkflowScript: ${m}".toString()
        }
    }

    /** The identifiers of @Library('name@version') annotations (on `_`, an import, or a declaration). */
    private static List<String> libraryAnnotations(ModuleNode module) {
        List<AnnotationNode> annotations = []
        module.imports.each { annotations.addAll(it.annotations) }
        module.statementBlock.statements.each { Statement s ->
            if (s instanceof ExpressionStatement && ((ExpressionStatement) s).expression instanceof DeclarationExpression) {
                annotations.addAll(((DeclarationExpression) ((ExpressionStatement) s).expression).annotations)
            }
        }
        List<String> ids = []
        annotations.findAll { it.classNode.nameWithoutPackage == 'Library' }.each { AnnotationNode a ->
            Expression v = a.getMember('value')
            if (v instanceof ConstantExpression) {
                ids << ((ConstantExpression) v).value.toString()
            } else if (v instanceof ListExpression) {
                ((ListExpression) v).expressions.each { ids << ((ConstantExpression) it).value.toString() }
            }
        }
        ids
    }

    // ------------------------------------------------------------------------------------------
    // calls: what a Groovy file calls on itself and which undeclared names it reads

    Map calls(Map request) {
        Map out = [:]
        ((List) request.files).each { Object path ->
            File f = new File(path.toString())
            String className = f.name == 'Jenkinsfile' ? 'WorkflowScript' : f.name.replaceAll(/\.groovy$/, '')
            CompilationUnit cu = new CompilationUnit(Library.compilerConfiguration(), null, new GroovyClassLoader(Harness.classLoader))
            cu.addSource("${className}.groovy", f.getText('UTF-8'))
            try {
                cu.compile(Phases.SEMANTIC_ANALYSIS)
            } catch (CompilationFailedException e) {
                out[path.toString()] = [error: e.message]
                return
            }
            List<Map> calls = []
            List<Map> variables = []
            Set<String> methods = new TreeSet<>()
            CodeVisitorSupport visitor = new CodeVisitorSupport() {
                @Override
                void visitMethodCallExpression(MethodCallExpression call) {
                    if (call.implicitThis && call.methodAsString != null) {
                        calls << [name: call.methodAsString, line: call.lineNumber]
                    }
                    super.visitMethodCallExpression(call)
                }

                @Override
                void visitVariableExpression(VariableExpression v) {
                    if (v.accessedVariable instanceof DynamicVariable) {
                        variables << [name: v.name, line: v.lineNumber]
                    }
                    super.visitVariableExpression(v)
                }
            }
            cu.AST.classes.each { ClassNode cn ->
                cn.methods.each { MethodNode mn ->
                    if (mn.name == 'main' && mn.static) {
                        return  // the generated entry point of a script class (InvokerHelper.runScript)
                    }
                    if (!mn.synthetic && mn.name != 'run') {
                        methods << mn.name
                    }
                    mn.code?.visit(visitor)
                }
            }
            out[path.toString()] = [calls: calls, variables: variables, methods: methods as List]
        }
        [files: out]
    }
}
