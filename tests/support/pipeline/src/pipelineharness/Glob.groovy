package pipelineharness

import org.apache.tools.ant.types.selectors.SelectorUtils

/**
 * Ant-style path patterns, as Declarative's Comparator.GLOB matches them: it calls Ant's
 * SelectorUtils.matchPath (when/utils/Comparator.java), which Debian's Groovy ships in its lib/
 * ('**' matches any number of directories, '*' characters within one, '?' one character).
 */
class Glob {
    static boolean matches(String pattern, String path, boolean caseSensitive) {
        SelectorUtils.matchPath(pattern, path ?: '', caseSensitive)
    }
}
