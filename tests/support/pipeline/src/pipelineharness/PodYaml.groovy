package pipelineharness

/**
 * What the harness needs from a podTemplate's `yaml`: the names of spec.containers and
 * metadata.namespace. The kubernetes plugin parses the whole pod (PodTemplateUtils.parseFromYaml, with
 * fabric8's Serialization); Groovy 2.4 has no YAML parser, so this reads block-style YAML only - the
 * style enadu-pipelines renders (agentpod.dump) and the plugin's README uses: `key:` lines indented by
 * spaces, sequences as `- ` items, scalars plain or quoted. Flow-style containers (`containers: [...]`) are
 * refused with a harness error rather than misread.
 */
class PodYaml {

    private static int indent(String line) {
        line.length() - line.replaceAll('^ +', '').length()
    }

    private static String scalar(String text) {
        String t = text.trim()
        if ((t.startsWith("'") && t.endsWith("'")) || (t.startsWith('"') && t.endsWith('"'))) {
            t = t.substring(1, t.length() - 1)
        }
        t
    }

    /** The lines of the mapping under `key:` at indent `at`, within the block of `parent:` at indent 0. */
    private static List<String> block(List<String> lines, String parent, String key) {
        int i = lines.findIndexOf { it == "${parent}:".toString() }
        if (i < 0) {
            return null
        }
        List<String> out = null
        int keyIndent = -1
        for (String line in lines.subList(i + 1, lines.size())) {
            if (!line.trim() || line.trim().startsWith('#')) {
                continue
            }
            int n = indent(line)
            if (n == 0) {
                break
            }
            if (out == null) {
                if (line.trim() ==~ /${key}:\s*\S.*/) {
                    throw new HarnessError("harness: the pod yaml's ${parent}.${key} is not in block style: ${line.trim()}")
                }
                if (line.trim() == "${key}:".toString() && (keyIndent < 0 || n == keyIndent)) {
                    keyIndent = n
                    out = []
                }
                continue
            }
            if (n < keyIndent || (n == keyIndent && !line.trim().startsWith('- '))) {
                break
            }
            out << line
        }
        out
    }

    static List<String> containerNames(String yaml) {
        List<String> lines = yaml.readLines()
        List<String> items = block(lines, 'spec', 'containers')
        if (items == null) {
            return []
        }
        int itemIndent = items ? indent(items[0]) : 0
        List<String> names = []
        items.each { String line ->
            int n = indent(line)
            String t = line.trim()
            if (n == itemIndent && t.startsWith('- ')) {
                t = t.substring(2).trim()
                n += 2
            }
            if (n == itemIndent + 2 && t.startsWith('name:')) {
                names << scalar(t.substring(5))
            }
        }
        names
    }

    static String namespace(String yaml) {
        List<String> lines = yaml.readLines()
        int i = lines.findIndexOf { it == 'metadata:' }
        if (i < 0) {
            return null
        }
        for (String line in lines.subList(i + 1, lines.size())) {
            if (line.trim() && indent(line) == 0) {
                break
            }
            if (line.trim().startsWith('namespace:') && indent(line) == 2) {
                return scalar(line.trim().substring(10))
            }
        }
        null
    }
}
