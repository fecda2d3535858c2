package pipelineharness

/**
 * Ant-style path patterns as Declarative's Comparator.GLOB uses them (Ant SelectorUtils.matchPath):
 * '**' matches any number of directories, '*' any characters within one segment, '?' one character.
 * A pattern ending in '/' matches everything below it, as in Ant.
 */
class Glob {
    static boolean matches(String pattern, String path, boolean caseSensitive) {
        String p = pattern.endsWith('/') ? pattern + '**' : pattern
        List<String> pat = p.tokenize('/')
        List<String> str = path.tokenize('/')
        match(pat, 0, str, 0, caseSensitive)
    }

    private static boolean match(List<String> pat, int pi, List<String> str, int si, boolean cs) {
        if (pi == pat.size()) {
            return si == str.size()
        }
        if (pat[pi] == '**') {
            for (int k = si; k <= str.size(); k++) {
                if (match(pat, pi + 1, str, k, cs)) {
                    return true
                }
            }
            return false
        }
        if (si == str.size()) {
            return false
        }
        segment(pat[pi], str[si], cs) && match(pat, pi + 1, str, si + 1, cs)
    }

    private static boolean segment(String pattern, String name, boolean cs) {
        StringBuilder re = new StringBuilder()
        pattern.each { String ch ->
            if (ch == '*') {
                re.append('[^/]*')
            } else if (ch == '?') {
                re.append('[^/]')
            } else {
                re.append(java.util.regex.Pattern.quote(ch))
            }
        }
        int flags = cs ? 0 : (java.util.regex.Pattern.CASE_INSENSITIVE | java.util.regex.Pattern.UNICODE_CASE)
        java.util.regex.Pattern.compile(re.toString(), flags).matcher(name).matches()
    }
}
