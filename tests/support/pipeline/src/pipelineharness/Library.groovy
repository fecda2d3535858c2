package pipelineharness

import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

/**
 * A shared library as Jenkins loads it (pipeline-groovy-lib): every vars/<name>.groovy is the
 * global variable <name>, compiled on first use as class <name>; resources/ is what
 * libraryResource serves.
 */
class Library {
    final String name
    final File root
    final Map<String, File> varFiles = new TreeMap<>()
    private final GroovyClassLoader loader
    private final Map<String, Class> classes = [:]
    private final Map<String, List> resourceCache = [:]

    Library(String name, File root) {
        this.name = name
        this.root = root
        File vars = new File(root, 'vars')
        if (vars.isDirectory()) {
            vars.listFiles().each { File f ->
                // Jenkins only treats files whose name is a Groovy identifier as global variables.
                if (f.name ==~ /[A-Za-z_$][A-Za-z0-9_$]*\.groovy/) {
                    varFiles[f.name[0..-8]] = f
                }
            }
        }
        this.loader = new GroovyClassLoader(Library.classLoader, compilerConfiguration())
    }

    /** Everything that decides what the compiled vars classes are. */
    static String fingerprint(File root) {
        File vars = new File(root, 'vars')
        List<File> files = vars.isDirectory() ? vars.listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name } : []
        Build.sha256(files.collect { "${it.name}\n${it.getText('UTF-8')}" }.join('\u0000').getBytes('UTF-8'))
    }

    /**
     * How Jenkins compiles Pipeline code: the Groovy 2.4 it embeds, with @Library and @NonCPS
     * imported automatically (CpsGroovyShellFactory), and our CpsScript stand-in as base class.
     */
    static CompilerConfiguration compilerConfiguration() {
        CompilerConfiguration config = new CompilerConfiguration()
        config.scriptBaseClass = PipelineScript.name
        config.addCompilationCustomizers(new ImportCustomizer()
                .addImports('org.jenkinsci.plugins.workflow.libs.Library', 'com.cloudbees.groovy.cps.NonCPS'))
        config.addCompilationCustomizers(new SleepCall())
        config
    }

    Set<String> getVarNames() { varFiles.keySet() }

    synchronized Class varClass(String varName) {
        Class c = classes[varName]
        if (c == null) {
            File f = varFiles[varName]
            c = loader.parseClass(new GroovyCodeSource(f.getText('UTF-8'), "${varName}.groovy", '/groovy/shell'))
            classes[varName] = c
        }
        c
    }

    /** The bytes of resources/<path>, or null (ResourceStep: "No such library resource ... could be found."). */
    byte[] resource(String path) {
        if (path.split('/').contains('..')) {
            return null
        }
        File f = new File(new File(root, 'resources'), path)
        if (!f.isFile()) {
            return null
        }
        List cached = resourceCache[path]
        if (cached == null || cached[0] != f.lastModified() || cached[1] != f.length()) {
            cached = [f.lastModified(), f.length(), f.bytes]
            resourceCache[path] = cached
        }
        (byte[]) cached[2]
    }
}
