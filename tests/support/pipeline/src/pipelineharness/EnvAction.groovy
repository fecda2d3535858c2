package pipelineharness

/**
 * The `env` global (workflow-cps EnvActionImpl): reading a property gives the effective value in
 * the current context (so inside withEnv the block's value wins over env.X = ...), writing sets
 * the build-wide value as String.valueOf(value).
 */
class EnvAction extends GroovyObjectSupport {
    private final Build build

    EnvAction(Build build) {
        this.build = build
    }

    @Override
    Object getProperty(String name) {
        build.effectiveEnv().get(name)
    }

    @Override
    void setProperty(String name, Object value) {
        build.setEnv(name, value)
    }

    /** EnvActionImpl.getEnvironment() */
    Map<String, String> getEnvironment() {
        new TreeMap<String, String>(build.effectiveEnv())
    }

    @Override
    Object invokeMethod(String name, Object args) {
        if (name == 'getEnvironment') {
            return getEnvironment()
        }
        if (name == 'getProperty') {
            return getProperty(((Object[]) args)[0].toString())
        }
        if (name == 'setProperty') {
            setProperty(((Object[]) args)[0].toString(), ((Object[]) args)[1])
            return null
        }
        throw new MissingMethodException(name, EnvAction, (Object[]) args)
    }

    String toString() { 'org.jenkinsci.plugins.workflow.cps.EnvActionImpl' }
}
