package pipelineharness

/**
 * The `name value` lines of an agent block such as `kubernetes { yaml ...; retries 2 }`, evaluated as
 * Declarative does when the agent starts (Validator has checked the names against the agent type's
 * options). A class of its own: Groovy allows no methodMissing on a static inner class.
 */
class AgentOptionsCapture {
    Map<String, Object> options = [:]

    Object methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        options[name] = a.length == 1 ? a[0] : a as List
        null
    }
}
