/*
 * Compiles Pipeline scripts the way Jenkins does before running them: Groovy 2.4 (the version
 * Jenkins core embeds), with @Library and @NonCPS imported automatically (Jenkins'
 * CpsGroovyShellFactory adds these imports). Usage: groovy compile.groovy STUBS_DIR FILE...
 * Prints "ok FILE" or "error FILE: message" per file; exits 1 if any file failed.
 */
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.customizers.ImportCustomizer

String stubs = args[0]
CompilerConfiguration config = new CompilerConfiguration()
config.classpathList = [stubs]
config.addCompilationCustomizers(new ImportCustomizer()
        .addImports('org.jenkinsci.plugins.workflow.libs.Library', 'com.cloudbees.groovy.cps.NonCPS'))
int failures = 0
args.drop(1).each { String path ->
    GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader, config)
    CompilationUnit unit = new CompilationUnit(config, null, loader)
    File file = new File(path)
    // Jenkins compiles a Jenkinsfile as class WorkflowScript and vars/foo.groovy as class foo.
    String className = file.name == 'Jenkinsfile' ? 'WorkflowScript' : file.name.replaceAll(/\.groovy$/, '')
    unit.addSource(className + '.groovy', file.getText('UTF-8'))
    try {
        unit.compile(Phases.CLASS_GENERATION)
        println "ok ${path}"
    } catch (CompilationFailedException e) {
        failures++
        println "error ${path}: ${e.message.readLines().findAll { it.trim() }.take(3).join(' | ')}"
    }
}
System.exit(failures ? 1 : 0)
