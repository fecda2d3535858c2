/*
 * Evaluates a Jenkinsfile with a recording DSL and prints every call as JSON: step name, named
 * arguments, positional arguments. Closure arguments (pipeline { }, stage('x') { }, ...) are run
 * with the recorder as delegate, so every nested call is recorded too. This is not a Pipeline
 * interpreter (tests/support/pipeline is); it proves what *values* reach each call, e.g. that a
 * hostile string in enadu.yaml arrives as the same string and not as code.
 * Usage: groovy record.groovy STUBS_DIR JENKINSFILE
 */
import groovy.json.JsonOutput
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

class Recorder {
    List<Map> calls = []

    Object plain(Object value) {
        if (value instanceof Map) {
            return value.collectEntries { k, v -> [(k.toString()): plain(v)] }
        }
        if (value instanceof List) {
            return value.collect { plain(it) }
        }
        if (value instanceof CharSequence) {
            return value.toString()
        }
        return value
    }

    Object call(String name, Object[] args) {
        Map named = [:]
        List positional = []
        Closure body = null
        args.each { arg ->
            if (arg instanceof Map) {
                named.putAll(plain(arg))
            } else if (arg instanceof Closure) {
                body = arg
            } else {
                positional << plain(arg)
            }
        }
        calls << [step: name, args: named, positional: positional]
        if (body != null) {
            body.delegate = this
            body.resolveStrategy = Closure.DELEGATE_FIRST
            body.call()
        }
        return null
    }

    Object methodMissing(String name, Object args) {
        return call(name, args as Object[])
    }

    Object propertyMissing(String name) {
        if (name == 'env') {
            return [ENADU_IMAGE: '<env.ENADU_IMAGE>']
        }
        if (name == 'params') {
            return [:]  // build parameters: none set (a parameter read is then null)
        }
        return "<${name}>".toString()
    }
}

CompilerConfiguration config = new CompilerConfiguration()
config.classpathList = [args[0]]
config.addCompilationCustomizers(new ImportCustomizer().addImports('org.jenkinsci.plugins.workflow.libs.Library'))
Recorder recorder = new Recorder()
Script script = new GroovyShell(this.class.classLoader, new Binding(), config).parse(new File(args[1]).getText('UTF-8'))
script.metaClass.methodMissing = { String name, Object callArgs -> recorder.call(name, callArgs as Object[]) }
script.metaClass.propertyMissing = { String name -> recorder.propertyMissing(name) }
script.run()
println JsonOutput.toJson(recorder.calls)
