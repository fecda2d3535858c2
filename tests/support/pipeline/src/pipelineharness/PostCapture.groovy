package pipelineharness

/** post { }: condition name -> block. */
class PostCapture {
    Map<String, Closure> conditions = new LinkedHashMap<>()

    def methodMissing(String name, Object args) {
        conditions[name] = (Closure) ((Object[]) args)[0]
        null
    }
}

