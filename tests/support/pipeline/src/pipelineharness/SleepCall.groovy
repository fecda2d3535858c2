package pipelineharness

import org.codehaus.groovy.ast.ClassCodeExpressionTransformer
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.classgen.GeneratorContext
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.customizers.CompilationCustomizer

/**
 * `sleep 5` inside a closure is the sleep step in Jenkins (CpsScript.sleep), but plain Groovy
 * resolves it to the closure's own DefaultGroovyStaticMethods.sleep(Object, long) - five
 * milliseconds, and no step. This makes such calls `this.sleep(...)` (the script's, i.e.
 * PipelineScript.sleep). It runs at CANONICALIZATION, after the phases that validation and the
 * `calls` action look at.
 */
class SleepCall extends CompilationCustomizer {
    SleepCall() {
        super(CompilePhase.CANONICALIZATION)
    }

    @Override
    void call(SourceUnit source, GeneratorContext context, ClassNode classNode) {
        new ClassCodeExpressionTransformer() {
            int closures = 0

            @Override
            protected SourceUnit getSourceUnit() { source }

            @Override
            Expression transform(Expression e) {
                if (e instanceof ClosureExpression) {
                    closures++
                    try {
                        ((ClosureExpression) e).code?.visit(this)
                        return e
                    } finally {
                        closures--
                    }
                }
                if (e instanceof MethodCallExpression) {
                    MethodCallExpression call = (MethodCallExpression) e
                    if (closures > 0 && call.implicitThis && call.methodAsString == 'sleep') {
                        MethodCallExpression explicit = new MethodCallExpression(new VariableExpression('this'), 'sleep',
                                transform(call.arguments))
                        explicit.implicitThis = false
                        explicit.sourcePosition = call
                        return explicit
                    }
                }
                super.transform(e)
            }
        }.visitClass(classNode)
    }
}
