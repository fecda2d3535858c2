package pipelineharness

/** options, triggers and parameters: each call is a symbol; nested calls (logRotator) are arguments. */
class SectionCapture {
    List<Describable> items = []
    Map<String, Catalog.Spec> specs

    def methodMissing(String name, Object argsObj) {
        Object[] args = (Object[]) argsObj
        Catalog.Spec spec = specs?.get(name) ?: Catalog.SYMBOLS[name] ?: Catalog.STEPS[name]
        Map named
        if (args.length == 0) {
            named = [:]
        } else if (args.length == 1 && args[0] instanceof Map) {
            named = new LinkedHashMap((Map) args[0])
        } else {
            named = [(spec?.soleArgumentKey ?: 'value'): args[0]]
        }
        named.values().each { v -> if (v instanceof Describable) { items.remove(v) } }
        Describable d = new Describable(name, named)
        items << d
        d
    }
}

