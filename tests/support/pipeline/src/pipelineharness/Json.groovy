package pipelineharness

/** Turns values recorded from pipeline code into plain JSON data (GStrings become Strings). */
class Json {
    static Object clean(Object v) {
        if (v == null || v instanceof Boolean || v instanceof Number) {
            return v
        } else if (v instanceof CharSequence) {
            return v.toString()
        } else if (v instanceof Describable) {
            Map m = [$symbol: ((Describable) v).symbol]
            m.putAll((Map) clean(((Describable) v).args))
            return m
        } else if (v instanceof Map) {
            Map out = new LinkedHashMap()
            ((Map) v).each { k, val -> out[k.toString()] = clean(val) }
            return out
        } else if (v instanceof Collection || v instanceof Object[]) {
            return v.collect { clean(it) }
        } else if (v instanceof Closure) {
            return '<closure>'
        } else if (v instanceof byte[]) {
            return "<${((byte[]) v).length} bytes>".toString()
        }
        v.toString()
    }
}
